// liftwatch console: the alarm-load page of an operator desk (ISA-18.2 / EEMUA 191), #/alarm-load.
// Loaded before pages.js (its PAGES table names renderAlarmLoad); uses console.js's and pages.js's
// helpers (el, tr, api, figure, table, address) when it runs.
"use strict";

async function renderAlarmLoad(root, where, current) {
  const desks = await api("GET", "/api/v1/desks");
  if (!current()) return;
  if (!desks.length) {
    root.replaceChildren(el("h2", {}, tr("pages.nav.alarm-load")), el("p", { class: "empty", "data-testid": "no-desks" },
      tr("console.load.no_desks")));
    return;
  }
  const p = where.params;
  const desk = desks.some((d) => d.name === p.get("desk")) ? p.get("desk") : desks[0].name;
  const day = /^\d{4}-\d{2}-\d{2}$/.test(p.get("day") || "") ? p.get("day") : new Date().toISOString().slice(0, 10);
  const start = new Date(`${day}T00:00:00Z`);
  const end = new Date(start.getTime() + 24 * 3600 * 1000);
  const query = new URLSearchParams({ desk, from: start.toISOString(), to: end.toISOString() });
  const load = await api("GET", `/api/v1/alarm-load?${query}`);
  if (!current()) return;
  const form = el("form", { class: "controls", "data-testid": "load-form" },
    el("label", {}, tr("console.load.desk"), " ", el("select", { name: "desk", "data-testid": "load-desk" },
      desks.map((d) => el("option", { value: d.name, selected: d.name === desk }, `${d.name} (${d.districts.join(", ")})`)))),
    el("label", {}, tr("console.load.day"), " ", el("input", { type: "date", name: "day", value: day })),
    el("button", { type: "submit" }, tr("console.load.show")),
    el("a", { href: `/api/v1/alarm-load?${query}&format=csv`, download: "alarm-load.csv", "data-testid": "load-csv" },
      tr("console.load.csv")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = address("alarm-load", Object.fromEntries(new FormData(form).entries()));
  });
  const flood = load.flood_minutes > 0;
  root.replaceChildren(
    el("h2", {}, tr("pages.nav.alarm-load")), form,
    el("div", { class: "figures" },
      figure("load-alarms", tr("console.load.alarms"), load.alarms, String(load.alarms)),
      figure("load-average", tr("console.load.average"), load.average_per_10_min, number(load.average_per_10_min)),
      figure("load-peak", tr("console.load.peak"), load.peak_per_10_min,
        load.peak_at ? `${load.peak_per_10_min} · ${formatTime(load.peak_at).slice(11, 16)}` : "0"),
      figure("load-flood", tr("console.load.flood"), load.flood_minutes,
        `${load.flood_minutes} min${flood ? " ⚠" : ""}`),
      figure("load-chattering", tr("console.load.chattering"), load.chattering, String(load.chattering)),
      figure("load-stale", tr("console.load.stale"), load.stale, String(load.stale)),
      figure("load-shelved", tr("console.load.shelved"), load.shelved, String(load.shelved)),
      figure("load-oos", tr("console.load.out_of_service"), load.out_of_service, String(load.out_of_service))),
    el("h3", {}, tr("console.load.bad_actors")),
    load.bad_actors.length
      ? table("load-bad-actors", [tr("console.col.elevator"), tr("console.col.fault"), tr("console.load.alarms")],
        load.bad_actors.map((a) => [a.registration_code || "—", tr(`common.fault.${a.code}`), a.alarms]))
      : el("p", { class: "empty" }, tr("console.load.none")));
}
