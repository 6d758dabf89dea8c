// liftwatch console pages beyond the live board: an address per page (#/stats, #/league, ...),
// role-aware navigation, the regulators' and firms' workspaces. Plain JavaScript, no build step;
// shares console.js's helpers (state, tr, el, api, formatTime) and loads after it. Charts: uPlot,
// vendored in this folder (docs/dependencies.md).
"use strict";

const EVERYONE = ["admin", "operator", "regulator", "maintainer"];
const OVERSIGHT = ["admin", "operator", "regulator"];
// The pages, in navigation order. `roles` only hides links and pages a role has no use for: the
// API decides what each caller may read (a firm gets 404 for anything not its own).
const PAGES = [
  { name: "board", roles: EVERYONE },
  { name: "stats", roles: EVERYONE, render: renderStats },
  { name: "league", roles: OVERSIGHT, render: renderLeague },
  { name: "risk", roles: OVERSIGHT, render: renderRisk },
  { name: "orders", roles: ["admin", "regulator", "maintainer"], render: renderOrders },
  { name: "map", roles: OVERSIGHT, render: renderMap },
  { name: "fleet", roles: ["admin", "maintainer"], render: renderFleet },
  { name: "history", roles: OVERSIGHT, render: renderHistory },
  { name: "alarm-load", roles: OVERSIGHT, render: renderAlarmLoad }, // alarmload.js (issue 17)
  { name: "elevators", roles: EVERYONE, hidden: true, render: renderElevator },
];

const pages = { seq: 0, charts: [], scopes: null, districts: null };

// "#/stats?month=2026-03&scope=city" -> { name: "stats", arg: null, params }; "#/elevators/X" -> arg "X".
function parseAddress(hash) {
  const [path, query] = (hash || "").replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "board", arg: rest.length ? decodeURIComponent(rest.join("/")) : null,
    params: new URLSearchParams(query || "") };
}

function address(name, params) {
  const query = params ? new URLSearchParams(params).toString() : "";
  return `#/${name === "board" ? "" : name}${query ? "?" + query : ""}`;
}

function visiblePages() {
  const role = state.me ? state.me.role : null;
  return PAGES.filter((p) => !p.hidden && p.roles.includes(role));
}

function renderNav() {
  const current = parseAddress(location.hash).name;
  $("nav").replaceChildren(...visiblePages().map((p) => el("a", {
    href: address(p.name), "data-page": p.name, "aria-current": p.name === current ? "page" : null,
  }, tr(`pages.nav.${p.name}`))));
}

function destroyCharts() {
  for (const chart of pages.charts) chart.destroy();
  pages.charts = [];
}

// Shows the page of the current address (the live board for "#/").
async function route() {
  if (!state.me) return;
  const where = parseAddress(location.hash);
  renderNav();
  const page = PAGES.find((p) => p.name === where.name);
  const onBoard = where.name === "board";
  $("board").hidden = !onBoard;
  if (!onBoard) $("detail").hidden = true;
  $("page").hidden = onBoard;
  document.body.dataset.page = where.name;
  if (onBoard) return;
  destroyCharts();
  const seq = ++pages.seq;
  const root = $("page");
  try {
    if (!page) {
      root.replaceChildren(el("p", { class: "empty", "data-testid": "no-page" }, tr("pages.not_found")));
    } else if (!page.roles.includes(state.me.role)) {
      root.replaceChildren(el("p", { class: "empty", "data-testid": "forbidden" }, tr("pages.forbidden")));
    } else {
      root.replaceChildren(el("p", { class: "empty" }, tr("pages.loading")));
      await page.render(root, where, () => seq === pages.seq);
    }
  } catch (error) {
    if (seq === pages.seq) {
      root.replaceChildren(el("p", { class: "error", "data-testid": "page-error" },
        tr("pages.failed", { message: error.message })));
    }
  }
  // Set when the page is drawn (or refused): what tests and the map benchmark wait for.
  if (seq === pages.seq) root.dataset.ready = String(seq);
}

// Hooks called by console.js.
function pagesSignedIn() { $("nav").hidden = false; route(); }
function pagesSignedOut() { $("nav").hidden = true; $("page").hidden = true; destroyCharts(); }
function pagesLanguageChanged() { if (state.me) route(); }

window.addEventListener("hashchange", route);

// --- shared pieces ------------------------------------------------------------------------------

function number(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US",
    { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function percent(share) {
  return share === null || share === undefined ? "—" : `${number(share * 100, 1)}%`;
}

function minutes(seconds) {
  return seconds === null || seconds === undefined ? "—" : number(seconds / 60, 1);
}

// A figure with its raw value kept on the node (the browser test compares it with the API's).
function figure(testid, label, value, text) {
  return el("div", { class: "figure", "data-testid": testid, "data-value": value === null ? "null" : String(value) },
    el("span", { class: "label" }, label), el("strong", {}, text));
}

function table(testid, headers, rows) {
  return el("table", { class: "data", "data-testid": testid },
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: rows.length && isNumeric(rows[0][i]) ? "num" : null }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
      el("td", { class: isNumeric(c) ? "num" : null }, c))))));
}

function isNumeric(cell) {
  return typeof cell === "number" || (typeof cell === "string" && /^[\d.,%—-]+$/.test(cell));
}

const PALETTE = ["#1d4ed8", "#c4161c", "#d9780f", "#1f7a3a", "#7c3aed", "#0e7490", "#6b7380"];

// A uPlot line chart of monthly values; null values leave a gap. Series: [{ label, values }].
function trendChart(testid, title, months, series, { yFormat } = {}) {
  const holder = el("div", { class: "chart", "data-testid": testid }, el("h4", {}, title));
  const x = months.map((m) => Date.UTC(Number(m.slice(0, 4)), Number(m.slice(5, 7)) - 1, 1) / 1000);
  const options = {
    width: 440, height: 200,
    series: [{ label: tr("reports.col.month"), value: (u, v) => (v === null ? "" : new Date(v * 1000).toISOString().slice(0, 7)) },
      ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2,
        points: { size: 5 }, value: (u, v) => (v === null ? "—" : (yFormat || number)(v)) }))],
    axes: [{ values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(2, 7)) },
      { size: 64, values: (u, ticks) => ticks.map((t) => (yFormat || number)(t)) }],
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    legend: { show: true },
  };
  // uPlot measures its container: render once the holder is in the document.
  requestAnimationFrame(() => {
    if (!holder.isConnected) return;
    pages.charts.push(new uPlot(options, [x, ...series.map((s) => s.values)], holder));
  });
  return holder;
}

// --- statistics -------------------------------------------------------------------------------

function lastMonth() {
  const zone = state.me ? state.me.timezone : "Asia/Shanghai";
  const [year, month] = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit" })
    .format(new Date()).split("-").map(Number);
  const previous = month === 1 ? [year - 1, 12] : [year, month - 1];
  return `${previous[0]}-${String(previous[1]).padStart(2, "0")}`;
}

async function statsScopes() {
  if (!pages.scopes) pages.scopes = await api("GET", "/api/v1/stats/scopes");
  return pages.scopes;
}

function defaultScope(scopes) {
  return scopes.city ? "city" : `maintainer:${scopes.firms[0].id}`;
}

// The scope picker: a kind, then which district / firm / use unit (use units are searched).
function scopePicker(scopes, scope) {
  const [kind, value] = scope.includes(":") ? [scope.slice(0, scope.indexOf(":")), scope.slice(scope.indexOf(":") + 1)]
    : [scope, ""];
  const kinds = scopes.city ? ["city", "district", "maintainer", "use_unit"] : ["maintainer"];
  const kindSelect = el("select", { "data-testid": "scope-kind" },
    kinds.map((k) => el("option", { value: k, selected: k === kind }, tr(`pages.stats.kind.${k}`))));
  const valueHolder = el("span", { class: "scope-value" });
  const fill = () => {
    const chosen = kindSelect.value;
    let input = null;
    if (chosen === "district") {
      input = el("select", { "data-testid": "scope-value" },
        scopes.districts.map((d) => el("option", { value: d, selected: d === value }, d)));
    } else if (chosen === "maintainer") {
      input = el("select", { "data-testid": "scope-value" },
        scopes.firms.map((f) => el("option", { value: String(f.id), selected: String(f.id) === value }, f.name)));
    } else if (chosen === "use_unit") {
      const list = el("datalist", { id: "use-units" });
      input = el("input", { "data-testid": "scope-value", list: "use-units", value: kind === "use_unit" ? value : "",
        placeholder: tr("pages.stats.use_unit_search"), size: 24 });
      input.addEventListener("input", async () => {
        const q = input.value.trim();
        if (!q) return;
        const found = await api("GET", `/api/v1/stats/scopes?use_unit=${encodeURIComponent(q)}`);
        list.replaceChildren(...found.use_units.map((u) => el("option", { value: String(u.id) }, u.name)));
      });
      valueHolder.replaceChildren(input, list);
      return;
    }
    valueHolder.replaceChildren(...(input ? [input] : []));
  };
  kindSelect.addEventListener("change", fill);
  fill();
  const read = () => {
    const chosen = kindSelect.value;
    const input = valueHolder.querySelector("[data-testid=scope-value]");
    return chosen === "city" ? "city" : `${chosen}:${input ? input.value.trim() : ""}`;
  };
  return { nodes: [kindSelect, valueHolder], read };
}

async function renderStats(root, where, current) {
  const scopes = await statsScopes();
  const month = /^\d{4}-\d{2}$/.test(where.params.get("month") || "") ? where.params.get("month") : lastMonth();
  const scope = where.params.get("scope") || defaultScope(scopes);
  const report = await api("GET",
    `/api/v1/stats/monthly?month=${month}&scope=${encodeURIComponent(scope)}&trend=12`);
  if (!current()) return;

  const monthInput = el("input", { type: "month", value: month, "data-testid": "month", required: true });
  const picker = scopePicker(scopes, scope);
  const form = el("form", { class: "controls", "data-testid": "stats-form" },
    el("label", {}, tr("pages.stats.month"), " ", monthInput),
    el("label", {}, tr("pages.stats.scope"), " ", ...picker.nodes),
    el("button", { type: "submit", "data-testid": "stats-show" }, tr("pages.stats.show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = address("stats", { month: monthInput.value, scope: picker.read() });
  });

  const exportUrl = (format) => `/api/v1/stats/monthly/export?${new URLSearchParams(
    { month: report.month, scope: report.scope, format, lang: state.lang })}`;
  const downloads = el("p", { class: "downloads" }, tr("pages.stats.download"), ": ",
    ["csv", "xlsx", "pdf"].map((f) => el("a", { href: exportUrl(f), download: "", "data-testid": `export-${f}` },
      f.toUpperCase())));

  const arrive = report.rescue.steps.find((s) => s.step === "arrive");
  const summary = el("div", { class: "figures", "data-testid": "stats-summary" },
    figure("elevators", tr("reports.metric.elevators"), report.elevators, number(report.elevators, 0)),
    figure("incidents", tr("reports.metric.incidents"), report.incidents, number(report.incidents, 0)),
    figure("per_10k", tr("reports.metric.per_10k"), report.per_10k, number(report.per_10k)),
    figure("entrapments", tr("reports.metric.entrapments"), report.entrapments, number(report.entrapments, 0)),
    figure("entrapments_per_10k", tr("pages.stats.entrapments_per_10k"),
      report.elevators ? report.entrapments * 10000 / report.elevators : null,
      number(report.elevators ? report.entrapments * 10000 / report.elevators : null)),
    figure("false_alarms", tr("reports.metric.false_alarms"), report.false_alarms, number(report.false_alarms, 0)),
    figure("arrive_median", tr("pages.stats.arrive_median"), arrive.median_s, minutes(arrive.median_s)),
    figure("arrive_p90", tr("pages.stats.arrive_p90"), arrive.p90_s, minutes(arrive.p90_s)),
    figure("arrived_30", tr("reports.metric.arrived_30"), report.rescue.arrived_within_30min_share,
      percent(report.rescue.arrived_within_30min_share)),
    figure("coverage", tr("reports.metric.coverage"), report.coverage.coverage, percent(report.coverage.coverage)));

  const codes = table("stats-codes", [tr("reports.col.code"), tr("reports.col.incidents"), tr("reports.col.per_10k"),
    tr("reports.col.entrapments"), tr("reports.col.false_alarms")],
  report.codes.map((c) => [tr(`common.fault.${c.code}`), c.incidents, number(c.per_10k), c.entrapments, c.false_alarms]));
  codes.querySelectorAll("tbody tr").forEach((row, i) => { row.dataset.code = report.codes[i].code; });
  const ages = table("stats-ages", [tr("reports.col.band"), tr("reports.col.elevators"), tr("reports.col.incidents"),
    tr("reports.col.per_10k"), tr("reports.col.entrapments")],
  report.age_bands.map((a) => [tr(`reports.band.${a.band}`), a.elevators, a.incidents, number(a.per_10k), a.entrapments]));
  ages.querySelectorAll("tbody tr").forEach((row, i) => { row.dataset.band = report.age_bands[i].band; });
  const rescue = table("stats-rescue", [tr("reports.col.step"), tr("reports.col.count"), tr("reports.col.median"),
    tr("reports.col.p90")],
  report.rescue.steps.map((s) => [tr(`reports.step.${s.step}`), s.count, minutes(s.median_s), minutes(s.p90_s)]));
  const firms = table("stats-firms", [tr("reports.col.firm"), tr("reports.col.elevators"), tr("reports.col.incidents"),
    tr("reports.col.per_100"), tr("reports.col.entrapments"), tr("reports.col.dispatch_missed"),
    tr("reports.col.arrival_missed"), tr("reports.col.repeats"), tr("reports.col.false_alarms")],
  report.firms.map((f) => [f.name, f.elevators, f.incidents, number(f.per_100), f.entrapments, f.dispatch_missed,
    f.arrival_missed, f.repeats, f.false_alarms]));

  const trend = report.trend;
  const months = trend.map((p) => p.month);
  const codeNames = [...new Set(trend.flatMap((p) => Object.keys(p.codes)))]
    .sort((a, b) => trend.reduce((n, p) => n + (p.codes[b] || 0) - (p.codes[a] || 0), 0)).slice(0, PALETTE.length);
  const charts = el("div", { class: "charts" },
    trendChart("chart-rates", tr("pages.stats.chart.rates"), months, [
      { label: tr("pages.stats.series.faults"), values: trend.map((p) => p.per_10k) },
      { label: tr("pages.stats.series.entrapments"), values: trend.map((p) => p.entrapments_per_10k) }]),
    trendChart("chart-rescue", tr("pages.stats.chart.rescue"), months, [
      { label: tr("pages.stats.series.median"), values: trend.map((p) => p.arrive_median_s === null ? null : p.arrive_median_s / 60) },
      { label: tr("pages.stats.series.p90"), values: trend.map((p) => p.arrive_p90_s === null ? null : p.arrive_p90_s / 60) }]),
    trendChart("chart-within", tr("pages.stats.chart.within"), months, [
      { label: tr("pages.stats.series.within"),
        values: trend.map((p) => p.arrived_within_30min_share === null ? null : p.arrived_within_30min_share * 100) }]),
    trendChart("chart-codes", tr("pages.stats.chart.codes"), months,
      codeNames.map((code) => ({ label: tr(`common.fault.${code}`), values: trend.map((p) => p.codes[code] || 0) }))),
    trendChart("chart-ages", tr("pages.stats.chart.ages"), months,
      report.age_bands.map((a) => ({ label: tr(`reports.band.${a.band}`), values: trend.map((p) => p.age_bands[a.band]) }))));

  const scopeName = (() => {
    const [kind, value] = [report.scope.split(":")[0], report.scope.split(":").slice(1).join(":")];
    const firm = kind === "maintainer" ? scopes.firms.find((f) => String(f.id) === value) : null;
    return tr(`reports.scope.${kind}`, { value: firm ? firm.name : value });
  })();
  root.replaceChildren(
    el("h2", {}, tr("pages.stats.title"), " ", el("span", { class: "count", "data-testid": "stats-scope" },
      `${scopeName} · ${report.month}`)),
    form, downloads,
    report.complete ? [] : el("p", { class: "note", "data-testid": "preliminary" }, tr("pages.stats.preliminary")),
    summary,
    el("h3", {}, tr("pages.stats.trend")), charts,
    el("div", { class: "tables" },
      el("section", {}, el("h3", {}, tr("reports.section.codes")), codes),
      el("section", {}, el("h3", {}, tr("reports.section.age")), ages),
      el("section", {}, el("h3", {}, tr("reports.section.rescue")), rescue)),
    el("h3", {}, tr("reports.section.firms")), firms);
}

// --- firm league --------------------------------------------------------------------------------

const LEAGUE_WINDOWS = [3, 6, 12];
const LEAGUE_FLAGS = ["dispatch_missed_share", "arrival_missed_share", "repeat_share", "false_alarm_share",
  "entrapments_per_10k"];
// Columns: key, header text key, how a cell shows, the value sorted on.
const LEAGUE_COLUMNS = [
  ["name", "reports.col.firm", (f) => f.name, (f) => f.name],
  ["elevators", "reports.col.elevators", (f) => number(f.elevators, 0), (f) => f.elevators],
  ["incidents", "reports.col.incidents", (f) => number(f.incidents, 0), (f) => f.incidents],
  ["entrapments", "reports.col.entrapments", (f) => number(f.entrapments, 0), (f) => f.entrapments],
  ["entrapments_per_10k", "pages.league.entrapments_per_10k", (f) => number(f.entrapments_per_10k),
    (f) => f.entrapments_per_10k],
  ["dispatch_missed_share", "reports.col.dispatch_missed",
    (f) => `${f.dispatch_missed} · ${percent(f.dispatch_missed_share)}`, (f) => f.dispatch_missed_share],
  ["arrival_missed_share", "reports.col.arrival_missed",
    (f) => `${f.arrival_missed} · ${percent(f.arrival_missed_share)}`, (f) => f.arrival_missed_share],
  ["repeat_share", "reports.col.repeats", (f) => `${f.repeats} · ${percent(f.repeat_share)}`, (f) => f.repeat_share],
  ["false_alarm_share", "reports.col.false_alarms", (f) => `${f.false_alarms} · ${percent(f.false_alarm_share)}`,
    (f) => f.false_alarm_share],
];

function thresholdText(name, value) {
  return tr(`pages.league.flag.${name}`) + " > " + (name === "entrapments_per_10k" ? number(value) : percent(value));
}

async function renderLeague(root, where, current) {
  const months = LEAGUE_WINDOWS.includes(Number(where.params.get("months"))) ? Number(where.params.get("months")) : 3;
  const end = /^\d{4}-\d{2}$/.test(where.params.get("end") || "") ? where.params.get("end") : lastMonth();
  const league = await api("GET", `/api/v1/stats/league?months=${months}&end=${end}`);
  if (!current()) return;
  const sortKey = LEAGUE_COLUMNS.some((c) => c[0] === where.params.get("sort")) ? where.params.get("sort") : null;
  const descending = where.params.get("order") !== "asc";
  const firms = [...league.firms];
  if (sortKey) {
    const value = LEAGUE_COLUMNS.find((c) => c[0] === sortKey)[3];
    firms.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === y) return a.name.localeCompare(b.name);
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
  }
  const link = (params) => address("league", { months, end, ...(sortKey ? { sort: sortKey, order: descending ? "desc" : "asc" } : {}), ...params });
  const windows = el("p", { class: "controls" }, tr("pages.league.window"), " ",
    LEAGUE_WINDOWS.map((m) => el("a", { href: link({ months: m }), class: "window", "data-testid": `window-${m}`,
      "aria-current": m === months ? "true" : null }, tr("pages.league.months", { n: m }))),
    el("label", {}, tr("pages.league.end"), " ", el("input", { type: "month", value: end, "data-testid": "league-end",
      onchange: (e) => { location.hash = link({ end: e.target.value }); } })));
  const head = el("tr", {}, LEAGUE_COLUMNS.map(([key, label]) => el("th", {
    "data-sort": key, class: key === "name" ? null : "num", "aria-sort": key === sortKey ? (descending ? "descending" : "ascending") : null,
    onclick: () => { location.hash = link({ sort: key, order: key === sortKey && descending ? "asc" : "desc" }); },
  }, tr(label), key === sortKey ? (descending ? " ▼" : " ▲") : "")), el("th", {}, tr("pages.league.flags")), el("th", {}));
  const body = el("tbody", {});
  for (const firm of firms) {
    const evidenceRow = el("tr", { class: "evidence", hidden: true }, el("td", { colspan: LEAGUE_COLUMNS.length + 2 }));
    const row = el("tr", { class: firm.flags.length ? "flagged" : null, "data-firm": String(firm.maintainer_id) },
      LEAGUE_COLUMNS.map(([key, , show]) => el("td", { class: key === "name" ? null : "num", "data-key": key }, show(firm))),
      el("td", { "data-testid": "flags" }, firm.flags.map((f) => el("span", { class: "chip flag" }, tr(`pages.league.flag.${f}`)))),
      el("td", {}, el("button", { type: "button", "data-testid": "evidence", onclick: () => toggleEvidence(firm, evidenceRow, months, end) },
        tr("pages.league.evidence")), " ", orderLink({ maintainer_id: firm.maintainer_id })));
    body.append(row, evidenceRow);
  }
  const bounds = league.thresholds;
  root.replaceChildren(
    el("h2", {}, tr("pages.league.title"), " ", el("span", { class: "count", "data-testid": "league-window" },
      `${league.first_month} … ${league.last_month}`)),
    windows,
    el("p", { class: "note", "data-testid": "thresholds" }, tr("pages.league.rule", {
      rules: LEAGUE_FLAGS.map((name) => thresholdText(name, bounds[name])).join("; "),
      entrapments: bounds.min_entrapments, incidents: bounds.min_incidents })),
    el("table", { class: "data league", "data-testid": "league" }, el("thead", {}, head), body));
}

async function toggleEvidence(firm, row, months, end) {
  row.hidden = !row.hidden;
  if (row.hidden || row.dataset.loaded) return;
  const found = await api("GET", `/api/v1/stats/league/${firm.maintainer_id}/evidence?months=${months}&end=${end}`);
  row.dataset.loaded = "1";
  row.firstChild.replaceChildren(found.items.length ? table("evidence-" + firm.maintainer_id,
    [tr("console.col.detected"), tr("console.col.fault"), tr("console.col.elevator"), tr("console.col.district"),
      tr("pages.league.reasons")],
    found.items.map((i) => [
      el("a", { href: "#", class: "incident-link", "data-incident": String(i.id),
        onclick: (e) => { e.preventDefault(); showIncident(i.id); } }, formatTime(i.detected_at)),
      tr(`common.fault.${i.code}`),
      i.registration_code ? el("a", { href: address(`elevators/${i.registration_code}`) }, i.registration_code) : "—",
      i.district || "—",
      i.reasons.map((r) => tr(`pages.league.reason.${r}`)).join(", ")]))
    : el("p", { class: "empty" }, tr("pages.league.no_evidence")));
}

// --- fleet risk -----------------------------------------------------------------------------------

const RISK_LISTS = ["overdue", "uninsured", "old", "repeat", "offline"];
const RISK_PAGE = 100;

function elevatorLink(code) {
  return el("a", { href: address(`elevators/${code}`), class: "elevator-link" }, code);
}

function riskRow(item) {
  return el("tr", { "data-elevator": item.registration_code },
    el("td", { class: "num", "data-key": "score" }, String(item.score)),
    el("td", {}, elevatorLink(item.registration_code)),
    el("td", {}, item.rescue_code), el("td", {}, item.district), el("td", {}, item.address),
    el("td", {}, item.maintainer),
    el("td", { class: item.days_overdue > 0 ? "late" : null }, item.next_inspection_due || "—"),
    el("td", {}, item.insured === null ? "—" : tr(item.insured ? "console.yes" : "console.no")),
    el("td", {}, item.terminal_id ? (item.last_seen_at ? formatTime(item.last_seen_at) : "—") : ""),
    el("td", { class: "num" }, String(item.repeats)),
    el("td", {}, item.lists.map((name) => el("span", { class: "chip" }, tr(`pages.risk.list.${name}`)))),
    el("td", {}, orderLink({ registration_code: item.registration_code })));
}

async function renderRisk(root, where, current) {
  const list = RISK_LISTS.includes(where.params.get("list")) ? where.params.get("list") : null;
  const district = where.params.get("district") || null;
  const query = (extra) => new URLSearchParams(Object.fromEntries(Object.entries(
    { list, district, ...extra }).filter(([, v]) => v !== null && v !== undefined)));
  const found = await api("GET", `/api/v1/stats/risk?${query({ limit: RISK_PAGE })}`);
  if (!current()) return;
  const link = (params) => address("risk", Object.fromEntries(Object.entries({ list, district, ...params })
    .filter(([, v]) => v !== null && v !== undefined)));
  const tabs = el("p", { class: "controls tabs" },
    [null, ...RISK_LISTS].map((name) => el("a", {
      href: link({ list: name }), class: "window", "data-testid": `risk-tab-${name || "next"}`,
      "aria-current": name === list ? "true" : null,
    }, tr(`pages.risk.list.${name || "next"}`), name ? el("span", { class: "n", "data-testid": `risk-count-${name}` },
      ` ${found.counts[name]}`) : "")));
  const districtRows = found.districts.map((d) => el("tr", { "data-district": d.district,
    class: d.district === district ? "current" : null },
  el("td", {}, el("a", { href: link({ district: d.district === district ? null : d.district }) }, d.district)),
  el("td", { class: "num" }, number(d.elevators, 0)),
  RISK_LISTS.map((name) => el("td", { class: "num", "data-key": name }, number(d[name], 0)))));
  const districts = el("table", { class: "data", "data-testid": "risk-districts" },
    el("thead", {}, el("tr", {}, el("th", {}, tr("pages.risk.col.district")),
      el("th", { class: "num" }, tr("pages.risk.col.elevators")),
      RISK_LISTS.map((name) => el("th", { class: "num" }, tr(`pages.risk.list.${name}`))))),
    el("tbody", {}, districtRows));
  const body = el("tbody", {}, found.items.map(riskRow));
  const shown = el("span", { "data-testid": "risk-shown" });
  const more = el("button", { type: "button", "data-testid": "risk-more" }, tr("pages.risk.more"));
  const update = () => {
    const count = body.children.length;
    shown.textContent = tr("pages.risk.shown", { shown: number(count, 0), total: number(found.total, 0) });
    more.hidden = count >= found.total;
  };
  more.addEventListener("click", async () => {
    const next = await api("GET", `/api/v1/stats/risk?${query({ limit: RISK_PAGE, offset: body.children.length })}`);
    body.append(...next.items.map(riskRow));
    update();
  });
  update();
  const exportUrl = (format) => `/api/v1/stats/risk/export?${query({ format, lang: state.lang })}`;
  root.replaceChildren(
    el("h2", {}, tr("pages.risk.title"), " ", el("span", { class: "count" },
      district ? `${district} · ` : "", tr(`pages.risk.list.${list || "next"}`))),
    tabs,
    el("p", { class: "downloads" }, tr("pages.stats.download"), ": ",
      ["csv", "xlsx"].map((f) => el("a", { href: exportUrl(f), download: "", "data-testid": `risk-export-${f}` },
        f.toUpperCase()))),
    list ? [] : el("p", { class: "note", "data-testid": "score-rule" }, tr("pages.risk.score_rule")),
    el("h3", {}, tr("pages.risk.by_district"), district
      ? el("a", { href: link({ district: null }), class: "reset" }, ` · ${tr("pages.risk.all_districts")}`) : ""),
    districts,
    el("h3", {}, tr(`pages.risk.list.${list || "next"}`), " ", shown),
    el("table", { class: "data", "data-testid": "risk-items" },
      el("thead", {}, el("tr", {}, ["score", "registration_code", "rescue_code", "district", "address", "maintainer",
        "next_inspection_due", "insured", "last_seen_at", "repeats", "lists"].map((c) =>
        el("th", { class: c === "score" || c === "repeats" ? "num" : null }, tr(`pages.risk.col.${c}`))), el("th", {}))),
      body),
    more);
}

// --- my fleet ----------------------------------------------------------------------------------

const FLEET_PAGE = 100;

function fleetRow(item) {
  const late = item.next_inspection_due && item.next_inspection_due < new Date().toISOString().slice(0, 10);
  return el("tr", { "data-elevator": item.registration_code },
    el("td", {}, elevatorLink(item.registration_code)), el("td", {}, item.rescue_code),
    el("td", {}, item.address), el("td", {}, item.district),
    el("td", {}, item.terminal_id ? el("span", { class: `chip ${item.online ? "online" : "offline"}`, "data-testid": "online" },
      tr(item.online ? "pages.fleet.online" : "pages.fleet.offline")) : "—"),
    el("td", { class: "when" }, item.sample_at ? formatTime(item.sample_at) : "—"),
    el("td", { "data-key": "mode" }, item.mode ? tr(`console.mode.${item.mode}`) : "—",
      item.maintenance_until ? el("span", { class: "chip", "data-testid": "in-window" },
        tr("pages.fleet.window_until", { time: formatTime(item.maintenance_until).slice(5, 16) })) : "",
      item.out_of_service ? el("span", { class: "chip" }, tr("pages.fleet.out_of_service")) : ""),
    el("td", { class: "num", "data-key": "open" }, String(item.open_incidents)),
    el("td", { class: late ? "late" : null }, item.next_inspection_due || "—"),
    el("td", { class: "num" }, String(item.repeats)));
}

async function renderFleet(root, where, current) {
  const q = (where.params.get("q") || "").trim();
  const query = (extra) => new URLSearchParams({ ...(q ? { q } : {}), limit: FLEET_PAGE, ...extra });
  const found = await api("GET", `/api/v1/fleet?${query({})}`);
  if (!current()) return;
  const search = el("input", { type: "search", value: q, "data-testid": "fleet-q", size: 30,
    placeholder: tr("pages.fleet.search") });
  const form = el("form", { class: "controls" }, search,
    el("button", { type: "submit", "data-testid": "fleet-search" }, tr("console.search.submit")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = address("fleet", search.value.trim() ? { q: search.value.trim() } : null);
  });
  const body = el("tbody", {}, found.items.map(fleetRow));
  const shown = el("span", { "data-testid": "fleet-shown" });
  const more = el("button", { type: "button" }, tr("pages.risk.more"));
  const update = () => {
    shown.textContent = tr("pages.risk.shown", { shown: number(body.children.length, 0), total: number(found.total, 0) });
    more.hidden = body.children.length >= found.total;
  };
  more.addEventListener("click", async () => {
    const next = await api("GET", `/api/v1/fleet?${query({ offset: body.children.length })}`);
    body.append(...next.items.map(fleetRow));
    update();
  });
  update();
  root.replaceChildren(
    el("h2", {}, tr("pages.fleet.title"), " ", el("span", { class: "count" }, state.me.maintainer || ""), " ", shown),
    form,
    el("table", { class: "data", "data-testid": "fleet" },
      el("thead", {}, el("tr", {}, ["registration_code", "rescue_code", "address", "district"].map((c) =>
        el("th", {}, tr(`pages.risk.col.${c}`))),
      el("th", {}, tr("pages.fleet.state")), el("th", {}, tr("pages.fleet.sample_at")), el("th", {}, tr("console.detail.mode")),
      el("th", { class: "num" }, tr("pages.fleet.open_incidents")), el("th", {}, tr("pages.risk.col.next_inspection_due")),
      el("th", { class: "num" }, tr("pages.risk.col.repeats")))),
      body),
    more);
}

// --- one elevator --------------------------------------------------------------------------------

const TELEMETRY_WINDOWS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400 };

function timeChart(testid, title, times, series, scales) {
  const holder = el("div", { class: "chart wide", "data-testid": testid }, el("h4", {}, title));
  const zone = state.me ? state.me.timezone : "Asia/Shanghai";
  const options = {
    width: 900, height: 220, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5,
      scale: s.scale || "y", value: (u, v) => (v === null ? "—" : number(v)) }))],
    axes: [{}, ...scales.map((scale, i) => ({ scale, side: i === 0 ? 3 : 1, size: 50,
      grid: { show: i === 0 }, values: (u, ticks) => ticks.map((t) => number(t)) }))],
    scales: Object.fromEntries(scales.map((s) => [s, { auto: true }])),
  };
  requestAnimationFrame(() => {
    if (!holder.isConnected) return;
    pages.charts.push(new uPlot(options, [times, ...series.map((s) => s.values)], holder));
  });
  return holder;
}

async function renderElevator(root, where, current) {
  const code = where.arg || "";
  const windowName = TELEMETRY_WINDOWS[where.params.get("window")] ? where.params.get("window") : "24h";
  const until = new Date();
  const since = new Date(until.getTime() - TELEMETRY_WINDOWS[windowName] * 1000);
  let elevator;
  try {
    elevator = await api("GET", `/api/v1/elevators/${encodeURIComponent(code)}`);
  } catch (error) {
    if (error.status === 404 || error.status === 422) {
      root.replaceChildren(el("p", { class: "empty", "data-testid": "elevator-missing" }, tr("pages.elevator.not_found")));
      return;
    }
    throw error;
  }
  const [series, usage, history] = await Promise.all([
    api("GET", `/api/v1/elevators/${code}/telemetry?points=300&since=${since.toISOString()}&until=${until.toISOString()}`),
    api("GET", `/api/v1/fleet/${code}/usage?days=30`),
    api("GET", `/api/v1/incidents?registration_code=${code}&limit=100`),
  ]);
  if (!current()) return;
  const windows = el("p", { class: "controls" }, tr("pages.elevator.window"), " ",
    Object.keys(TELEMETRY_WINDOWS).map((name) => el("a", { href: address(`elevators/${code}`, { window: name }),
      class: "window", "aria-current": name === windowName ? "true" : null, "data-testid": `window-${name}` },
    tr(`pages.elevator.window.${name}`))));
  const times = series.points.map((p) => Date.parse(p.t) / 1000);
  const telemetry = series.points.length
    ? [timeChart("chart-telemetry", tr("pages.elevator.chart.motion"), times, [
      { label: tr("console.detail.speed"), values: series.points.map((p) => p.speed_avg), scale: "speed" },
      { label: tr("console.detail.floor"), values: series.points.map((p) => p.floor), scale: "floor" }], ["speed", "floor"]),
    timeChart("chart-door", tr("pages.elevator.chart.door"), times, [
      { label: tr("pages.elevator.door_open"), values: series.points.map((p) => p.door_open_share * 100) }], ["y"])]
    : el("p", { class: "empty" }, tr("console.detail.no_telemetry"));
  const usageChart = trendDays("chart-usage", tr("pages.elevator.chart.usage"), usage.per_day, [
    { label: tr("pages.elevator.trips"), values: usage.per_day.map((d) => d.trips) },
    { label: tr("pages.elevator.door_cycles"), values: usage.per_day.map((d) => d.door_cycles) }]);
  const incidents = history.items.length ? table("elevator-incidents",
    [tr("console.col.detected"), tr("console.col.fault"), tr("console.col.status"), tr("console.col.maintainer")],
    history.items.map((i) => [
      el("a", { href: "#", class: "incident-link", "data-incident": String(i.id),
        onclick: (e) => { e.preventDefault(); showIncident(i.id); } }, formatTime(i.detected_at)),
      tr(`common.fault.${i.code}`), tr(`common.status.${i.status}`), i.maintainer || "—"]))
    : el("p", { class: "empty" }, tr("pages.elevator.no_incidents"));
  root.replaceChildren(
    el("h2", {}, tr("console.detail.title"), " ", el("span", { class: "count" }, `${elevator.rescue_code} · ${elevator.address}`),
      " ", orderLink({ registration_code: elevator.registration_code })),
    el("dl", { class: "facts", "data-testid": "elevator-facts" }, elevatorFacts(elevator,
      field("pages.risk.col.insured", elevator.insured === null || elevator.insured === undefined ? null
        : tr(elevator.insured ? "console.yes" : "console.no")))),
    el("h3", {}, tr("pages.elevator.usage")),
    el("div", { class: "figures", "data-testid": "usage" },
      figure("trips", tr("pages.elevator.trips_30"), usage.trips, number(usage.trips, 0)),
      figure("door_cycles", tr("pages.elevator.door_cycles_30"), usage.door_cycles, number(usage.door_cycles, 0)),
      figure("availability", tr("pages.elevator.availability"), usage.availability, percent(usage.availability)),
      figure("observed", tr("pages.elevator.observed"), usage.observed_share, percent(usage.observed_share))),
    el("div", { class: "charts" }, usageChart),
    el("h3", {}, tr("pages.elevator.telemetry")), windows, el("div", { class: "charts" }, telemetry),
    el("h3", {}, tr("console.detail.history")), incidents);
}

// A per-day chart (x: the days, labelled MM-DD).
function trendDays(testid, title, perDay, series) {
  const holder = el("div", { class: "chart wide", "data-testid": testid }, el("h4", {}, title));
  const x = perDay.map((d, i) => i);
  const options = {
    width: 900, height: 200,
    series: [{ label: tr("pages.elevator.day"), value: (u, v) => (v === null ? "" : perDay[v].day) },
      ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { size: 4 } }))],
    axes: [{ values: (u, ticks) => ticks.map((t) => (perDay[t] ? perDay[t].day.slice(5) : "")) }, { size: 50 }],
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
  };
  requestAnimationFrame(() => {
    if (!holder.isConnected) return;
    pages.charts.push(new uPlot(options, [x, ...series.map((s) => s.values)], holder));
  });
  return holder;
}

// --- history ------------------------------------------------------------------------------------

// "+08:00" for a site-local day in the site's zone (the API takes times with an offset).
function zoneOffset(day, zone) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
    .formatToParts(new Date(`${day}T12:00:00Z`)).find((p) => p.type === "timeZoneName").value;
  return name === "GMT" ? "+00:00" : name.slice(3);
}

function siteDay(offsetDays) {
  const zone = state.me ? state.me.timezone : "Asia/Shanghai";
  const now = new Date(Date.now() + offsetDays * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now);
}

function historyRow(item) {
  return el("tr", { "data-incident": String(item.id) },
    el("td", { class: "when" }, el("a", { href: "#", class: "incident-link", "data-incident": String(item.id),
      onclick: (e) => { e.preventDefault(); showIncident(item.id); } }, formatTime(item.detected_at))),
    el("td", {}, tr(`common.fault.${item.code}`)), el("td", {}, tr(`common.status.${item.status}`)),
    el("td", {}, item.close_cause ? tr(`common.cause.${item.close_cause}`) : "—"),
    el("td", {}, item.registration_code ? elevatorLink(item.registration_code) : "—"),
    el("td", {}, item.address || "—"), el("td", {}, item.district || "—"), el("td", {}, item.maintainer || "—"),
    el("td", { class: "num" }, minutes(item.arrive_s)),
    el("td", {}, item.registration_code ? orderLink({ incident_id: item.id }) : null));
}

async function renderHistory(root, where, current) {
  const p = where.params;
  const zone = state.me.timezone;
  const since = /^\d{4}-\d{2}-\d{2}$/.test(p.get("since") || "") ? p.get("since") : siteDay(-30);
  const until = /^\d{4}-\d{2}-\d{2}$/.test(p.get("until") || "") ? p.get("until") : siteDay(0);
  const chosen = { district: p.get("district") || "", maintainer_id: p.get("maintainer_id") || "",
    code: p.get("code") || "", cause: p.get("cause") || "", q: p.get("q") || "" };
  const query = (extra) => {
    const next = new Date(`${until}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    const end = next.toISOString().slice(0, 10);
    const params = new URLSearchParams({ since: `${since}T00:00:00${zoneOffset(since, zone)}`,
      until: `${end}T00:00:00${zoneOffset(end, zone)}` });
    for (const [name, value] of Object.entries(chosen)) if (value) params.set(name, value);
    for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
    return params;
  };
  const [scopes, found] = await Promise.all([statsScopes(), api("GET", `/api/v1/history?${query({ limit: 100 })}`)]);
  if (!current()) return;
  const labels = { district: "pages.history.col.district", maintainer_id: "pages.history.col.maintainer",
    code: "pages.history.col.code", cause: "pages.history.col.close_cause" };
  const select = (name, options) => el("label", {}, tr(labels[name]), " ",
    el("select", { name, "data-testid": `history-${name}` },
      el("option", { value: "" }, tr("pages.history.any")),
      options.map(([value, label]) => el("option", { value, selected: String(value) === chosen[name] }, label))));
  const codes = Object.keys(state.texts).filter((k) => k.startsWith("common.fault.")).map((k) => k.slice(13));
  const form = el("form", { class: "controls", "data-testid": "history-form" },
    el("label", {}, tr("pages.history.since"), " ", el("input", { type: "date", name: "since", value: since })),
    el("label", {}, tr("pages.history.until"), " ", el("input", { type: "date", name: "until", value: until })),
    scopes.city ? select("district", scopes.districts.map((d) => [d, d])) : [],
    scopes.city ? select("maintainer_id", scopes.firms.map((f) => [f.id, f.name])) : [],
    select("code", codes.map((c) => [c, tr(`common.fault.${c}`)])),
    select("cause", CAUSES.map((c) => [c, tr(`common.cause.${c}`)])),
    el("input", { type: "search", name: "q", value: chosen.q, placeholder: tr("pages.history.q"), size: 22,
      "data-testid": "history-q" }),
    el("button", { type: "submit", "data-testid": "history-search" }, tr("pages.history.search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v));
    location.hash = address("history", data);
  });
  const body = el("tbody", {}, found.items.map(historyRow));
  let cursor = found.next_cursor;
  const more = el("button", { type: "button", hidden: !cursor, "data-testid": "history-more" }, tr("pages.risk.more"));
  more.addEventListener("click", async () => {
    const next = await api("GET", `/api/v1/history?${query({ limit: 100, cursor })}`);
    body.append(...next.items.map(historyRow));
    cursor = next.next_cursor;
    more.hidden = !cursor;
  });
  const exportUrl = (format) => `/api/v1/history/export?${query({ format, lang: state.lang })}`;
  root.replaceChildren(
    el("h2", {}, tr("pages.history.title")), form,
    el("p", { class: "downloads" }, tr("pages.stats.download"), ": ",
      ["csv", "xlsx"].map((f) => el("a", { href: exportUrl(f), download: "", "data-testid": `history-export-${f}` },
        f.toUpperCase()))),
    found.items.length ? el("table", { class: "data", "data-testid": "history" },
      el("thead", {}, el("tr", {}, ["detected_at", "code", "status", "close_cause", "registration_code", "address",
        "district", "maintainer", "arrive_s"].map((c) => el("th", { class: c === "arrive_s" ? "num" : null },
        tr(`pages.history.col.${c}`))), el("th", {}))),
      body) : el("p", { class: "empty", "data-testid": "history-empty" }, tr("pages.history.none")),
    more);
}

// --- rectification orders -----------------------------------------------------------------------

const ORDER_VIEWS = ["open", "answered", "overdue", "closed", "all"];
const ORDER_OPENERS = ["admin", "regulator"];

function mayOpenOrders() {
  return state.me && ORDER_OPENERS.includes(state.me.role);
}

// A link that opens the order form for an elevator, an incident or a firm (for those who may order).
function orderLink(target) {
  if (!mayOpenOrders()) return null;
  return el("a", { href: address("orders", target), class: "order-link", "data-testid": "order-link" },
    tr("pages.orders.new"));
}

function orderTarget(order) {
  if (order.registration_code) return [elevatorLink(order.registration_code), order.address ? ` ${order.address}` : ""];
  return tr("pages.orders.whole_firm");
}

async function showOrder(order, holder) {
  const found = await api("GET", `/api/v1/orders/${order.id}`);
  const note = el("textarea", { rows: 2, maxlength: 2000, "data-testid": "order-note", required: true,
    placeholder: tr("pages.orders.note") });
  const error = el("p", { class: "error", hidden: true });
  const buttons = found.order.actions.map((action) => el("button", { type: "button", "data-order-action": action,
    onclick: async () => {
      if (!note.value.trim()) { note.reportValidity(); return; }
      try {
        await api("POST", `/api/v1/orders/${order.id}/${action}`, { note: note.value.trim() });
        route();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    } }, tr(`pages.orders.action.${action}`)));
  holder.replaceChildren(
    table(`order-trail-${order.id}`, [tr("console.incident.time"), tr("console.incident.step"),
      tr("console.incident.actor"), tr("console.incident.note")],
    found.events.map((e) => [formatTime(e.at), tr(`pages.orders.kind.${e.kind}`), e.actor, e.note])),
    buttons.length ? el("div", { class: "order-actions" }, note, el("div", {}, buttons), error) : []);
}

function newOrderForm(where) {
  const p = where.params;
  const target = p.get("registration_code") ? ["registration_code", p.get("registration_code")]
    : p.get("incident_id") ? ["incident_id", p.get("incident_id")]
      : p.get("maintainer_id") ? ["maintainer_id", p.get("maintainer_id")] : null;
  if (!mayOpenOrders()) return [];
  const due = new Date(Date.now() + 30 * 86400000).toISOString().slice(0, 10);
  const kind = el("select", { name: "kind", "data-testid": "order-kind" },
    ["registration_code", "incident_id", "maintainer_id"].map((k) =>
      el("option", { value: k, selected: target && target[0] === k }, tr(`pages.orders.target.${k}`))));
  const value = el("input", { name: "value", value: target ? target[1] : "", required: true, size: 22,
    "data-testid": "order-target" });
  const title = el("input", { name: "title", maxlength: 200, required: true, size: 30, "data-testid": "order-title",
    placeholder: tr("pages.orders.title_placeholder") });
  const dueOn = el("input", { type: "date", name: "due_on", value: due, required: true, "data-testid": "order-due" });
  const note = el("input", { name: "note", maxlength: 2000, required: true, size: 30, "data-testid": "order-new-note",
    placeholder: tr("pages.orders.note") });
  const error = el("p", { class: "error", hidden: true, "data-testid": "order-error" });
  const form = el("form", { class: "controls new-order", "data-testid": "order-form", open: target ? true : null },
    el("strong", {}, tr("pages.orders.new")), kind, value, title,
    el("label", {}, tr("pages.orders.due_on"), " ", dueOn), note,
    el("button", { type: "submit", "data-testid": "order-submit" }, tr("pages.orders.submit")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { title: title.value.trim(), due_on: dueOn.value, note: note.value.trim() };
    body[kind.value] = kind.value === "registration_code" ? value.value.trim() : Number(value.value);
    try {
      const created = await api("POST", "/api/v1/orders", body);
      location.hash = address("orders", { view: "open", order: created.order.id });
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
  return form;
}

async function renderOrders(root, where, current) {
  const view = ORDER_VIEWS.includes(where.params.get("view")) ? where.params.get("view") : "open";
  const query = view === "overdue" ? "overdue=true" : view === "all" ? "" : `status=${view}`;
  const found = await api("GET", `/api/v1/orders?${query}`);
  if (!current()) return;
  const tabs = el("p", { class: "controls tabs" }, ORDER_VIEWS.map((name) => el("a", {
    href: address("orders", { view: name }), class: "window", "data-testid": `orders-${name}`,
    "aria-current": name === view ? "true" : null }, tr(`pages.orders.view.${name}`))));
  const body = el("tbody", {});
  const wanted = where.params.get("order");
  for (const order of found.items) {
    const detail = el("tr", { class: "evidence", hidden: true }, el("td", { colspan: 8 }));
    const open = () => { detail.hidden = !detail.hidden; if (!detail.hidden) showOrder(order, detail.firstChild); };
    body.append(el("tr", { "data-order": String(order.id), class: order.overdue ? "flagged" : null },
      el("td", {}, el("a", { href: "#", class: "incident-link", "data-testid": "open-order",
        onclick: (e) => { e.preventDefault(); open(); } }, `#${order.id} ${order.title}`)),
      el("td", {}, orderTarget(order)), el("td", {}, order.maintainer),
      el("td", { "data-testid": "order-status" }, tr(`pages.orders.status.${order.status}`)),
      el("td", { class: order.overdue ? "late" : null }, order.due_on, order.overdue ? ` · ${tr("pages.orders.overdue")}` : ""),
      el("td", {}, order.opened_by), el("td", { class: "when" }, formatTime(order.opened_at))), detail);
    if (String(order.id) === wanted) open();
  }
  root.replaceChildren(
    el("h2", {}, tr("pages.orders.heading")), newOrderForm(where), tabs,
    found.items.length ? el("table", { class: "data", "data-testid": "orders" },
      el("thead", {}, el("tr", {}, ["title", "target", "maintainer", "status", "due_on", "opened_by", "opened_at"].map((c) =>
        el("th", {}, tr(`pages.orders.col.${c}`))))), body)
      : el("p", { class: "empty", "data-testid": "orders-empty" }, tr("pages.orders.none")));
}

// --- map ------------------------------------------------------------------------------------------

const CITY_BOX = [120.8, 30.6, 122.0, 31.9]; // Shanghai: the box the API defaults to
const MAP_W = 1000, MAP_H = 760, MAP_CELLS = 60;
const MAP_REFRESH_MS = 30000; // open incidents move on the map this often while it is shown

async function districtOutlines() {
  if (!pages.districts) {
    const response = await fetch("/static/shanghai-districts.geojson", { credentials: "same-origin" });
    pages.districts = await response.json();
  }
  return pages.districts;
}

// Equirectangular projection of a box onto the drawing, x scaled by cos(latitude) so shapes keep their proportions.
function projection(box) {
  const [w, s, e, n] = box;
  const k = Math.cos(((s + n) / 2) * Math.PI / 180);
  const scale = Math.min(MAP_W / ((e - w) * k), MAP_H / (n - s));
  const ox = (MAP_W - (e - w) * k * scale) / 2, oy = (MAP_H - (n - s) * scale) / 2;
  return { x: (lon) => ox + (lon - w) * k * scale, y: (lat) => oy + (n - lat) * scale,
    lon: (x) => w + (x - ox) / (k * scale), lat: (y) => n - (y - oy) / scale };
}

function outlinePath(geometry, p) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  return polygons.flatMap((rings) => rings.map((ring) =>
    "M" + ring.map(([lon, lat]) => `${p.x(lon).toFixed(1)},${p.y(lat).toFixed(1)}`).join("L") + "Z")).join("");
}

async function renderMap(root, where, current) {
  const asked = (where.params.get("box") || "").split(",").map(Number);
  const box = asked.length === 4 && asked.every(Number.isFinite) && asked[0] < asked[2] && asked[1] < asked[3]
    ? asked : CITY_BOX;
  const started = performance.now();
  const [outlines, data] = await Promise.all([districtOutlines(), api("GET",
    `/api/v1/stats/map?west=${box[0]}&south=${box[1]}&east=${box[2]}&north=${box[3]}&cells=${MAP_CELLS}`)]);
  if (!current()) return;
  const p = projection(box);
  const svg = svgNode("svg", { viewBox: `0 0 ${MAP_W} ${MAP_H}`, class: "city-map", role: "img" });
  svg.dataset.testid = "map";
  const outlineLayer = svgNode("g", { class: "districts" });
  for (const feature of outlines.features) {
    const path = svgNode("path", { d: outlinePath(feature.geometry, p), class: "district" });
    path.append(svgNode("title", {}, feature.properties.name));
    outlineLayer.append(path);
  }
  svg.append(outlineLayer);
  const clusterLayer = svgNode("g", { class: "clusters" });
  const cellW = (box[2] - box[0]) / MAP_CELLS, cellH = (box[3] - box[1]) / MAP_CELLS;
  for (const c of data.clusters) {
    const r = Math.min(22, 3 + Math.sqrt(c.elevators) * 0.9);
    const cls = c.trapped ? "cluster trapped" : c.incidents ? "cluster incident" : c.overdue ? "cluster overdue" : "cluster";
    const g = svgNode("g", { class: cls, transform: `translate(${p.x(c.lon).toFixed(1)},${p.y(c.lat).toFixed(1)})` });
    g.dataset.elevators = String(c.elevators);
    g.append(svgNode("circle", { r: r.toFixed(1) }));
    if (c.elevators > 1 && r > 8) g.append(svgNode("text", { "text-anchor": "middle", dy: "0.35em" }, String(c.elevators)));
    g.append(svgNode("title", {}, tr("pages.map.cluster", { elevators: c.elevators, incidents: c.incidents, overdue: c.overdue })));
    g.addEventListener("click", () => {
      if (c.registration_code) { location.hash = address(`elevators/${c.registration_code}`); return; }
      const zoom = [c.lon - cellW * 2, c.lat - cellH * 2, c.lon + cellW * 2, c.lat + cellH * 2].map((v) => v.toFixed(5));
      location.hash = address("map", { box: zoom.join(",") });
    });
    clusterLayer.append(g);
  }
  svg.append(clusterLayer);
  const incidentLayer = svgNode("g", { class: "incidents" });
  for (const i of data.incidents) {
    const marker = svgNode("path", { d: "M0,-9 L6,3 L-6,3 Z", class: `incident-marker ${i.severity}`,
      transform: `translate(${p.x(i.lon).toFixed(1)},${p.y(i.lat).toFixed(1)})` });
    marker.dataset.incident = String(i.id);
    marker.append(svgNode("title", {}, `${tr(`common.fault.${i.code}`)} · ${i.address}`));
    marker.addEventListener("click", () => showIncident(i.id));
    incidentLayer.append(marker);
  }
  svg.append(incidentLayer);
  const zoomed = box !== CITY_BOX;
  root.replaceChildren(
    el("h2", {}, tr("pages.map.title"), " ", el("span", { class: "count", "data-testid": "map-summary" },
      tr("pages.map.summary", { elevators: number(data.elevators, 0), incidents: number(data.incidents.length, 0),
        unplaced: number(data.unplaced, 0) }))),
    el("p", { class: "controls" }, zoomed ? el("a", { href: address("map"), "data-testid": "map-city" }, tr("pages.map.city")) : [],
      el("span", { class: "legend-map" }, el("span", { class: "dot trapped" }), tr("pages.map.legend.trapped"),
        el("span", { class: "dot incident" }), tr("pages.map.legend.incident"),
        el("span", { class: "dot overdue" }), tr("pages.map.legend.overdue"),
        el("span", { class: "dot" }), tr("pages.map.legend.fleet"))),
    svg);
  root.dataset.loadMs = String(Math.round(performance.now() - started));
  clearTimeout(pages.mapTimer);
  pages.mapTimer = setTimeout(() => { if (current() && !document.hidden) route(); }, MAP_REFRESH_MS);
}

// --- links from the side panel ------------------------------------------------------------------

// The board's side panel (console.js) shows an elevator or an incident: add the way to the elevator's
// page and, for those who may, to a rectification order on it. Watched here so console.js stays as is.
function decorateDetail() {
  const panel = $("detail");
  if (panel.hidden || !state.panel || panel.querySelector(".page-links")) return;
  const links = [];
  if (state.panel.kind === "elevator" && state.panel.code) {
    links.push(el("a", { href: address(`elevators/${state.panel.code}`), "data-testid": "detail-elevator-page" },
      tr("pages.detail.elevator_page")));
    links.push(orderLink({ registration_code: state.panel.code }));
  } else if (state.panel.kind === "incident") {
    links.push(orderLink({ incident_id: state.panel.id }));
  }
  const shown = links.filter(Boolean);
  if (shown.length) panel.append(el("p", { class: "page-links" }, shown.flatMap((l, i) => (i ? [" · ", l] : [l]))));
}

document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(decorateDetail).observe($("detail"), { childList: true, attributes: true, attributeFilter: ["hidden"] });
});
