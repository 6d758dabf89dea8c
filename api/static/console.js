// liftwatch operator console: live incident board, one-click actions, rescue-code lookup.
// Plain JavaScript, no build step, no network beyond this API (works offline).
"use strict";

// The incident vocabulary, filled once from GET /api/v1/catalog (loadCatalog) before the board loads:
// the server's lifecycle owns it, the console only reads it.
const SEVERITY_RANK = {}; // severity -> 0 for the most urgent
const OPEN = new Set(); // statuses that still need someone
// Which actions each status offers, in lifecycle order (the server is the judge; this only hides noise).
const NEXT = {};
// What the signed-in caller may do (the server's access policy), refreshed at every sign-in.
const YOUR_ACTIONS = new Set();
// Escalation (level 2 district rescue team, 3 fire brigade) is for people still trapped or at risk.
const ESCALATABLE = new Set();
let MAX_ESCALATION = 0;
const CAUSES = [];

async function loadCatalog() {
  const catalog = await api("GET", "/api/v1/catalog");
  YOUR_ACTIONS.clear();
  catalog.your_actions.forEach((action) => YOUR_ACTIONS.add(action));
  if (OPEN.size) return;
  catalog.severities.forEach((severity, rank) => { SEVERITY_RANK[severity] = rank; });
  for (const { status, open, at_risk: atRisk, actions } of catalog.statuses) {
    if (open) OPEN.add(status);
    // Once nobody is at risk any more the incident is closed with a cause: escalation and the
    // false-alarm verdict are offered only before that (the server still accepts them).
    NEXT[status] = actions.filter((a) => a !== "escalate" && (atRisk || a !== "false-alarm"));
    if (atRisk && actions.includes("escalate")) ESCALATABLE.add(status);
  }
  MAX_ESCALATION = catalog.max_escalation_level;
  CAUSES.push(...catalog.close_causes);
}

const state = {
  lang: "zh", texts: {}, me: null, incidents: new Map(), lastChange: 0, source: null,
  sound: true, audio: null, beeps: 0, fresh: new Set(), pending: null, loaded: false, alarmed: new Set(),
  feedLive: false, // the server's own feed reaches Kafka (event: feed); false = changes are not coming
  panel: null, // what the side panel shows: { kind: "incident", id } or { kind: "elevator", code }
  panelSeq: 0, // bumped by every request to show something: a slower, older request then renders nothing
  panelNotice: null, // { id, key }: a notice shown on that incident's panel until another one is opened
};

// Claim the side panel for what the operator asked for last (set before any request, so a feed
// refresh of the previous incident that answers later does not overwrite it).
function claimPanel(panel) {
  // A notice belongs to the incident it was given for: it survives that panel's re-renders (a live
  // change re-draws it) and goes when the operator opens something else.
  if (state.panelNotice && !(panel.kind === "incident" && panel.id === state.panelNotice.id)) state.panelNotice = null;
  state.panel = panel;
  return ++state.panelSeq;
}

const $ = (id) => document.getElementById(id);

function tr(key, params) {
  let text = state.texts[key] ?? key;
  for (const [name, value] of Object.entries(params || {})) text = text.replaceAll(`{${name}}`, value);
  return text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, path, body) {
  const options = { method, headers: { "Accept-Language": state.lang }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401 && path !== "/api/v1/session") {
    showLogin();
    throw new Error(tr("errors.unauthenticated"));
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

// --- language ---------------------------------------------------------------------------------

function preferredLanguage() {
  const saved = localStorage.getItem("liftwatch.lang");
  if (saved === "zh" || saved === "en") return saved;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const primary = tag.toLowerCase().split("-")[0];
    if (primary === "zh" || primary === "en") return primary;
  }
  return document.documentElement.dataset.defaultLang || "zh";
}

async function setLanguage(lang, remember) {
  state.lang = lang;
  if (remember) localStorage.setItem("liftwatch.lang", lang);
  state.texts = await api("GET", `/api/v1/i18n/${lang}`);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = tr("console.title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = tr(node.dataset.t);
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  $("search-code").placeholder = tr("console.search.placeholder");
  $("action-note").placeholder = tr("console.note.placeholder");
  renderChrome();
  renderBoard();
  if (typeof pagesLanguageChanged === "function") pagesLanguageChanged(); // pages.js
}

// --- time -------------------------------------------------------------------------------------

function formatTime(iso) {
  if (!iso) return "";
  const zone = state.me ? state.me.timezone : "Asia/Shanghai";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}:${get("second")}`;
}

// "YYYY-MM-DD", <br>, "HH:MM:SS": a board cell that never breaks inside a date.
function dateAndTime(iso) {
  const [date, time] = formatTime(iso).split(" ");
  return [date, el("br"), time];
}

function duration(ms) {
  const total = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

// One deadline clock: counts down to the deadline, then up as overdue; stops when met.
function clock(label, deadlineIso, doneIso) {
  const node = el("span", { class: "clock", "data-deadline": deadlineIso, "data-done": doneIso || "" });
  node.dataset.label = label;
  updateClock(node);
  return node;
}

function updateClock(node) {
  const label = tr(node.dataset.label);
  const deadline = Date.parse(node.dataset.deadline);
  if (node.dataset.done) {
    const late = Date.parse(node.dataset.done) > deadline;
    node.className = "clock " + (late ? "late" : "met");
    node.textContent = `${label}: ${tr(late ? "common.deadline.missed" : "common.deadline.met")}`;
    return;
  }
  const left = deadline - Date.now();
  node.className = "clock" + (left < 0 ? " late" : "");
  node.textContent = `${label}: ` + (left >= 0 ? tr("common.deadline.remaining", { time: duration(left) })
    : tr("common.deadline.overdue", { time: duration(left) }));
}

// --- board ------------------------------------------------------------------------------------

function sortKey(incident) {
  const deadline = incident.arrived_at ? Infinity : Date.parse(incident.arrival_deadline_at || "") || Infinity;
  return [SEVERITY_RANK[incident.severity] ?? 9, deadline, Date.parse(incident.detected_at)];
}

function compare(a, b) {
  const ka = sortKey(a), kb = sortKey(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
  return b.id - a.id;
}

function allowedActions(incident) {
  return (NEXT[incident.status] || []).filter((action) => YOUR_ACTIONS.has(action));
}

function canEscalate(incident) {
  return YOUR_ACTIONS.has("escalate") && ESCALATABLE.has(incident.status)
    && incident.escalation_level < MAX_ESCALATION;
}

// A deadline passed without its step: the board then offers escalation right in the row.
function deadlineMissed(incident) {
  const now = Date.now();
  const late = (deadline, done) => deadline && !done && Date.parse(deadline) < now;
  return incident.dispatch_deadline_missed || incident.arrival_deadline_missed
    || late(incident.dispatch_deadline_at, incident.dispatched_at) || late(incident.arrival_deadline_at, incident.arrived_at);
}

function actionLabel(incident, action) {
  if (action !== "escalate") return tr(`common.action.${action}`);
  return tr("console.escalate.to", { target: tr(`console.escalation.level.${incident.escalation_level + 1}`) });
}

function row(incident) {
  const trapped = incident.code === "trapped_passenger";
  const classes = [incident.severity, trapped ? "trapped" : "", state.fresh.has(incident.id) ? "fresh" : ""];
  const deadlines = [];
  if (incident.dispatch_deadline_at) {
    deadlines.push(clock("common.deadline.dispatch", incident.dispatch_deadline_at, incident.dispatched_at));
  }
  if (incident.arrival_deadline_at) {
    deadlines.push(clock("common.deadline.arrival", incident.arrival_deadline_at, incident.arrived_at));
  }
  const offered = [...allowedActions(incident), ...(canEscalate(incident) && deadlineMissed(incident) ? ["escalate"] : [])];
  const actions = offered.map((action, index) =>
    el("button", {
      type: "button", class: [index === 0 ? "primary" : "", action === "escalate" ? "escalate" : ""].join(" ").trim(),
      "data-action": action, onclick: () => openAction(incident, action),
    }, actionLabel(incident, action)));
  const elevator = incident.registration_code
    ? el("a", { href: "#", class: "elevator", onclick: (e) => { e.preventDefault(); showElevator(incident.registration_code); } },
      incident.rescue_code || "", el("br"), el("span", { class: "code" }, incident.registration_code))
    : el("span", { class: "code" }, incident.terminal_id);
  return el("tr", { class: classes.join(" "), "data-incident": incident.id, "data-code": incident.code },
    el("td", {}, el("span", { class: `sev ${incident.severity}` }, tr(`common.severity.${incident.severity}`))),
    el("td", { class: "fault" }, el("a", {
      href: "#", class: "incident-link", "data-testid": "open-incident",
      onclick: (e) => { e.preventDefault(); showIncident(incident.id); },
    }, tr(`common.fault.${incident.code}`))),
    el("td", {}, elevator),
    el("td", { class: "addr" }, incident.address || "", el("br"), el("span", { class: "code" }, incident.district || "")),
    el("td", {}, incident.maintainer || ""),
    el("td", { "data-testid": "status" }, tr(`common.status.${incident.status}`), assigneeTag(incident), suppressionTag(incident), stormTag(incident)),
    el("td", { class: "when" }, ...dateAndTime(incident.detected_at)),
    el("td", {}, deadlines),
    el("td", { class: "actions" }, actions));
}

function renderBoard() {
  if (!state.me) return;
  const open = [...state.incidents.values()].filter((i) => OPEN.has(i.status)).sort(compare);
  $("rows").replaceChildren(...groupedRows(open));
  $("empty").hidden = open.length > 0;
  const bySeverity = { critical: 0, major: 0, minor: 0 };
  let trapped = 0;
  for (const incident of open) {
    bySeverity[incident.severity] = (bySeverity[incident.severity] || 0) + 1;
    if (incident.code === "trapped_passenger") trapped += 1;
  }
  $("count").replaceChildren(
    el("span", { class: "chip total" }, String(open.length)),
    el("span", { class: "chip trapped" + (trapped ? " on" : ""), "data-testid": "trapped-count" },
      tr("console.board.trapped_open", { count: trapped })),
    ...Object.entries(bySeverity).map(([severity, n]) =>
      el("span", { class: `chip sev-${severity}` }, `${tr(`common.severity.${severity}`)} ${n}`)));
}

function renderChrome() {
  if (!state.me) return;
  const who = { name: state.me.name, role: tr(`common.role.${state.me.role}`), firm: state.me.maintainer };
  $("user").textContent = $("user").title = tr(state.me.maintainer ? "console.user.firm" : "console.user", who);
  $("sound").textContent = tr(state.sound ? "console.board.sound_on" : "console.board.sound_off");
  $("zone").textContent = tr("console.timezone", { zone: state.me.timezone });
  const live = state.source && state.source.readyState === EventSource.OPEN && state.feedLive;
  $("feed-state").textContent = tr(live ? "console.board.live" : "console.board.offline");
  $("feed-state").className = "feed" + (live ? "" : " down");
}

async function loadBoard() {
  // Every open incident, page by page; the feed resumes after the first page's newest change,
  // so a change made while the later pages load is replayed (and applied idempotently).
  const items = [];
  let cursor = null, lastChange = null;
  do {
    const query = "open=true&limit=500" + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
    const page = await api("GET", `/api/v1/incidents?${query}`);
    if (lastChange === null) lastChange = page.last_change_id;
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  const known = state.incidents, reload = state.loaded;
  state.incidents = new Map(items.map((i) => [i.id, i]));
  state.lastChange = lastChange;
  state.loaded = true;
  // A reload (after an outage or a reset) must not swallow the cue of a critical incident opened meanwhile.
  if (reload) {
    for (const incident of items) if (incident.severity === "critical" && !known.has(incident.id)) alarm(incident);
  }
  renderBoard();
  connectFeed();
}

function connectFeed() {
  if (state.source) state.source.close();
  // EventSource resends Last-Event-ID itself on reconnection; `after` covers the first connection.
  const source = new EventSource(`/api/v1/incidents/stream?after=${state.lastChange}`);
  state.source = source;
  source.onopen = renderChrome;
  source.onerror = () => {
    renderChrome();
    // EventSource retries by itself, except after an HTTP error (expired session, server gone):
    // then reload the board, which shows the login screen if the session has ended.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (state.source === source && state.me) loadBoard().catch(() => {}); }, 5000);
    }
  };
  source.addEventListener("incident", (event) => onChange(JSON.parse(event.data)));
  source.addEventListener("reset", () => { source.close(); loadBoard(); });
  source.addEventListener("feed", (event) => {
    const live = JSON.parse(event.data).live === true;
    const recovered = live && !state.feedLive && state.feedWasLive;
    state.feedLive = live;
    state.feedWasLive = state.feedWasLive || live;
    renderChrome();
    // Back after an outage: reload rather than trust that nothing was missed meanwhile.
    if (recovered) loadBoard().catch(() => {});
  });
}

async function onChange(change) {
  state.lastChange = Math.max(state.lastChange, change.change_id);
  const known = state.incidents.has(change.incident_id);
  if (state.panel && state.panel.kind === "incident" && state.panel.id === change.incident_id) {
    showIncident(change.incident_id).catch(() => {});
  }
  if (!OPEN.has(change.status)) {
    state.incidents.delete(change.incident_id);
    renderBoard();
    return;
  }
  let detail;
  try { detail = await api("GET", `/api/v1/incidents/${change.incident_id}`); } catch (_) { return; }
  state.incidents.set(detail.incident.id, detail.incident);
  if (!known && detail.incident.severity === "critical") alarm(detail.incident);
  renderBoard();
}

function alarm(incident) {
  if (state.alarmed.has(incident.id)) return; // once per incident, whichever path saw it first
  state.alarmed.add(incident.id);
  state.fresh.add(incident.id);
  setTimeout(() => { state.fresh.delete(incident.id); renderBoard(); }, 6000);
  const banner = $("alert-banner");
  banner.textContent = tr("console.board.new_critical", {
    fault: tr(`common.fault.${incident.code}`), address: incident.address || incident.terminal_id,
  });
  banner.hidden = false;
  setTimeout(() => { banner.hidden = true; }, 15000);
  if (state.sound) beep();
}

function beep() {
  try {
    state.audio = state.audio || new AudioContext();
    const ctx = state.audio;
    for (let i = 0; i < 3; i++) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.35);
      osc.stop(ctx.currentTime + i * 0.35 + 0.2);
    }
    state.beeps += 1;
    document.body.dataset.beeps = String(state.beeps); // lets the browser test see the cue
  } catch (_) { /* audio blocked until the first click; the banner still shows */ }
}

// --- actions ----------------------------------------------------------------------------------

function openAction(incident, action) {
  state.pending = { incident, action };
  $("action-title").textContent = `${actionLabel(incident, action)} · ${tr(`common.fault.${incident.code}`)} · ${incident.address || incident.terminal_id}`;
  const isClose = action === "close" || action === "false-alarm";
  $("cause-row").hidden = !isClose;
  const select = $("action-cause");
  select.replaceChildren(...(action === "false-alarm" ? [el("option", { value: "" }, "—")] : []),
    ...CAUSES.map((c) => el("option", { value: c }, tr(`common.cause.${c}`))));
  $("action-note").value = "";
  $("action-note").required = action === "close"; // the contract: closed with a cause and a note
  $("action-error").hidden = true;
  $("action-dialog").showModal();
  $("action-note").focus();
}

async function submitAction(event) {
  event.preventDefault();
  const { incident, action } = state.pending;
  const body = { note: $("action-note").value };
  if (!$("cause-row").hidden && $("action-cause").value) body.cause = $("action-cause").value;
  try {
    const updated = await api("POST", `/api/v1/incidents/${incident.id}/${action}`, body);
    if (OPEN.has(updated.status)) state.incidents.set(updated.id, updated);
    else state.incidents.delete(updated.id);
    $("action-dialog").close();
    renderBoard();
    if (state.panel && state.panel.kind === "incident" && state.panel.id === updated.id) showIncident(updated.id);
  } catch (error) {
    $("action-error").textContent = tr("console.action.failed", { message: error.message });
    $("action-error").hidden = false;
  }
}

// --- elevator detail --------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function clockTime(iso) {
  return formatTime(iso).slice(11, 16);
}

// Speed (left axis, blue) and floor (right axis, orange) over the bucketed hour, with its time span.
function chart(points) {
  const W = 400, H = 170, left = 30, right = 26, top = 8, bottom = 20;
  const svg = svgNode("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.dataset.testid = "telemetry-chart";
  if (!points.length) return svg;
  const t0 = Date.parse(points[0].t), t1 = Date.parse(points[points.length - 1].t) || t0 + 1;
  const maxSpeed = Math.max(0.5, ...points.map((p) => p.speed_max));
  const floors = points.map((p) => p.floor), fMin = Math.min(...floors), fMax = Math.max(fMin + 1, ...floors);
  const plotW = W - left - right, plotH = H - top - bottom;
  const x = (p) => left + ((Date.parse(p.t) - t0) / Math.max(1, t1 - t0)) * plotW;
  const ySpeed = (v) => top + plotH - (v / maxSpeed) * plotH;
  const yFloor = (f) => top + plotH - ((f - fMin) / (fMax - fMin)) * plotH;
  for (let i = 0; i <= 4; i++) {
    const y = top + (plotH * i) / 4;
    svg.append(svgNode("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
  }
  const label = (px, py, text, anchor, cls) =>
    svg.append(svgNode("text", { x: px, y: py, "text-anchor": anchor, class: cls }, text));
  label(left - 4, top + 8, maxSpeed.toFixed(1), "end", "axis speed");
  label(left - 4, top + plotH, "0", "end", "axis speed");
  label(W - right + 4, top + 8, String(fMax), "start", "axis floor");
  label(W - right + 4, top + plotH, String(fMin), "start", "axis floor");
  label(left, H - 5, clockTime(points[0].t), "start", "axis");
  label(W - right, H - 5, clockTime(points[points.length - 1].t), "end", "axis");
  const line = (values, cls) => svg.append(svgNode("polyline", {
    points: values.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "), class: `series ${cls}`,
  }));
  line(points.map((p) => [x(p), ySpeed(p.speed_avg)]), "speed");
  line(points.map((p) => [x(p), yFloor(p.floor)]), "floor");
  return svg;
}

function field(key, value) {
  return [el("dt", {}, tr(key)), el("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
}

// An elevator's registry record as dt/dd pairs: the detail panel and the elevator page (pages.js),
// which adds its own facts (``extra``) before the terminal.
function elevatorFacts(elevator, ...extra) {
  return [
    field("console.detail.rescue_code", elevator.rescue_code),
    field("console.detail.registration_code", elevator.registration_code),
    field("console.col.address", `${elevator.address} (${elevator.district})`),
    field("console.detail.kind", tr(`common.kind_elevator.${elevator.kind}`)),
    field("console.col.maintainer", elevator.maintainer),
    field("console.detail.use_unit", elevator.use_unit),
    field("console.detail.floors", `${elevator.bottom_floor} … ${elevator.top_floor}`),
    field("console.detail.rated_speed", `${elevator.rated_speed} m/s`),
    field("console.detail.installed_on", elevator.installed_on),
    field("console.detail.next_inspection_due", elevator.next_inspection_due),
    ...extra,
    field("console.detail.terminal", elevator.terminal_id),
  ].flat();
}

function closeButton() {
  return el("button", {
    type: "button", class: "ghost close", "data-testid": "close-detail",
    onclick: () => { $("detail").hidden = true; state.panel = null; },
  }, tr("console.detail.close"));
}

async function showElevator(registrationCode, preloaded) {
  const panel = $("detail");
  const seq = claimPanel({ kind: "elevator", code: registrationCode });
  const elevator = preloaded || await api("GET", `/api/v1/elevators/${registrationCode}`);
  const [series, history] = await Promise.all([
    api("GET", `/api/v1/elevators/${elevator.registration_code}/telemetry?points=120`),
    api("GET", `/api/v1/incidents?registration_code=${elevator.registration_code}&limit=20`),
  ]);
  if (seq !== state.panelSeq) return;
  panel.replaceChildren(
    closeButton(),
    el("h2", {}, tr("console.detail.title")),
    el("dl", {}, elevatorFacts(elevator)),
    el("h3", {}, tr("console.detail.telemetry")),
    series.points.length ? chart(series.points) : el("p", { class: "empty" }, tr("console.detail.no_telemetry")),
    el("p", { class: "legend" }, el("span", { class: "speed" }, "— " + tr("console.detail.speed")), " ",
      el("span", { class: "floor" }, "— " + tr("console.detail.floor"))),
    callForm(elevator),
    elevatorStates(elevator),
    el("h3", {}, tr("console.detail.history")),
    el("ul", { class: "history" }, history.items.map((i) => el("li", {},
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); showIncident(i.id); } },
        `${formatTime(i.detected_at)} ${tr(`common.fault.${i.code}`)}`),
      ` · ${tr(`common.status.${i.status}`)}`))));
  panel.hidden = false;
}

// The step of a trail row, with which deadline was missed or which level was reached.
function stepText(event) {
  const data = event.data || {};
  let text = tr(`common.kind.${event.kind}`);
  if (event.kind === "deadline_missed" && data.deadline) text += ` · ${tr(`common.deadline.${data.deadline}`)}`;
  if (event.kind === "escalated" && data.level) text += ` → ${tr(`console.escalation.level.${data.level}`)}`;
  return text + centreStepText(event);
}

async function showIncident(id) {
  const panel = $("detail");
  const seq = claimPanel({ kind: "incident", id });
  const { incident, events, latest_telemetry: latest, deliveries } = await api("GET", `/api/v1/incidents/${id}`);
  if (seq !== state.panelSeq) return;
  const deadlines = [];
  if (incident.dispatch_deadline_at) {
    deadlines.push(clock("common.deadline.dispatch", incident.dispatch_deadline_at, incident.dispatched_at));
  }
  if (incident.arrival_deadline_at) {
    deadlines.push(clock("common.deadline.arrival", incident.arrival_deadline_at, incident.arrived_at));
  }
  const offered = OPEN.has(incident.status)
    ? [...allowedActions(incident), ...(canEscalate(incident) ? ["escalate"] : [])] : [];
  const actions = offered.map((action) =>
    el("button", {
      type: "button", class: action === "escalate" ? "escalate" : "", "data-action": action,
      onclick: () => openAction(incident, action),
    }, actionLabel(incident, action)));
  const elevator = incident.registration_code
    ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); showElevator(incident.registration_code); } },
      `${incident.rescue_code || ""} · ${tr("console.incident.open_elevator")}`)
    : incident.terminal_id;
  const yesNo = (value) => value === null || value === undefined ? null : tr(value ? "console.yes" : "console.no");
  panel.replaceChildren(
    closeButton(),
    el("h2", {}, el("span", { class: `sev ${incident.severity}` }, tr(`common.severity.${incident.severity}`)), " ",
      tr(`common.fault.${incident.code}`), el("span", { class: "code" }, ` #${incident.id}`)),
    el("dl", {},
      field("console.col.status", tr(`common.status.${incident.status}`)),
      field("console.col.elevator", elevator),
      field("console.col.address", `${incident.address || ""} (${incident.district || ""})`),
      field("console.col.maintainer", incident.maintainer),
      field("console.col.detected", formatTime(incident.detected_at)),
      incident.detected_late
        ? field("console.incident.detected_late", el("span", { class: "late", "data-testid": "detected-late" },
          tr("console.incident.detected_late_note", { opened: formatTime(incident.opened_at) })))
        : [],
      field("console.incident.occurrences",
        incident.occurrences + (incident.chattering ? ` (${tr("console.incident.chattering")})` : "")),
      field("console.incident.escalation",
        `${incident.escalation_level} · ${tr(`console.escalation.level.${incident.escalation_level}`)}`),
      incident.close_cause ? field("console.incident.cause", tr(`common.cause.${incident.close_cause}`)) : []),
    deadlines.length ? el("div", { class: "deadlines" }, deadlines) : [],
    actions.length ? el("div", { class: "actions" }, actions) : [],
    centreWork(incident),
    shelfForm(incident),
    el("h3", {}, tr("console.detail.trail")),
    events.length ? el("table", { class: "trail", "data-testid": "trail" },
      el("thead", {}, el("tr", {}, el("th", {}, tr("console.incident.time")), el("th", {}, tr("console.incident.step")),
        el("th", {}, tr("console.incident.actor")), el("th", {}, tr("console.incident.note")))),
      el("tbody", {}, events.map((e) => el("tr", {},
        el("td", { class: "when" }, formatTime(e.at)), el("td", {}, stepText(e)),
        el("td", {}, e.actor), el("td", {}, e.note)))))
      : el("p", { class: "empty" }, tr("console.incident.no_events")),
    deliveriesSection(deliveries || []),
    el("h3", {}, tr("console.incident.latest")),
    latest ? el("dl", {},
      field("console.incident.sampled_at", formatTime(latest.ts)),
      field("console.detail.mode", tr(`console.mode.${latest.mode}`)),
      field("console.detail.floor", latest.floor),
      field("console.detail.speed", Number(latest.speed).toFixed(2)),
      field("console.detail.door", tr(`console.door.${latest.door}`)),
      field("console.detail.occupied", yesNo(latest.occupied)))
      : el("p", { class: "empty" }, tr("console.detail.no_telemetry")));
  if (state.panelNotice && state.panelNotice.id === id) {
    panel.prepend(el("p", { class: "notice", "data-testid": "call-joined" }, tr(state.panelNotice.key)));
  }
  panel.hidden = false;
}

async function searchRescueCode(event) {
  event.preventDefault();
  const code = $("search-code").value.trim();
  claimPanel({ kind: "lookup", code });
  try {
    const elevator = await api("GET", `/api/v1/elevators/by-rescue-code/${encodeURIComponent(code)}`);
    await showElevator(elevator.registration_code, elevator);
  } catch (error) {
    $("detail").replaceChildren(el("p", { class: "error" }, error.status === 404 ? tr("console.search.not_found") : error.message));
    $("detail").hidden = false;
  }
}

// --- the centre's work: calls, comments, assignment (issue 17) -------------------------------------

const CENTRE_ROLES = new Set(["operator", "admin"]);

function isCentre() {
  return state.me && CENTRE_ROLES.has(state.me.role);
}

// Who holds an incident, on the board's status cell.
function assigneeTag(incident) {
  if (!incident.assignee) return null;
  return el("span", { class: "assignee", "data-testid": "assignee" }, tr("console.centre.held_by", { name: incident.assignee }));
}

// The trail row's details of a call (the caller's number) or a hand-over (to whom).
function centreStepText(event) {
  const data = event.data || {};
  if (event.kind === "assigned") return ` → ${data.to || tr("console.centre.nobody")}`;
  if ((event.kind === "opened" || event.kind === "called") && data.source === "call") {
    return ` · ${tr("console.centre.by_call")}` + (data.caller_phone ? ` ${data.caller_phone}` : "");
  }
  return "";
}

// The rescue-code lookup's action: the operator on the phone opens an incident for this elevator
// (or joins the one already open for the same fault: the server decides).
function callForm(elevator) {
  if (!isCentre()) return [];
  const codes = Object.keys(state.texts).filter((k) => k.startsWith("common.fault.")).map((k) => k.slice(13))
    .filter((code) => code !== "unregistered_terminal" && code !== "terminal_offline");
  const select = el("select", { "data-testid": "call-code" },
    codes.map((code) => el("option", { value: code, selected: code === "trapped_passenger" }, tr(`common.fault.${code}`))));
  const phone = el("input", { type: "tel", maxlength: "30", "data-testid": "call-phone", placeholder: tr("console.centre.phone") });
  const note = el("textarea", { rows: "2", maxlength: "2000", "data-testid": "call-note", placeholder: tr("console.note.placeholder") });
  const error = el("p", { class: "error", hidden: true });
  const submit = async (event) => {
    event.preventDefault();
    const body = { registration_code: elevator.registration_code, code: select.value, source: "call", note: note.value };
    if (phone.value.trim()) body.caller_phone = phone.value.trim();
    try {
      const result = await api("POST", "/api/v1/incidents", body);
      state.incidents.set(result.incident.id, result.incident);
      renderBoard();
      state.panelNotice = result.joined ? { id: result.incident.id, key: "console.centre.joined" } : null;
      await showIncident(result.incident.id);
    } catch (failure) {
      error.textContent = tr("console.action.failed", { message: failure.message });
      error.hidden = false;
    }
  };
  return el("form", { class: "call", "data-testid": "call-form", onsubmit: submit },
    el("h3", {}, tr("console.centre.call_title")),
    el("label", {}, tr("console.col.fault"), " ", select), phone, note, error,
    el("button", { type: "submit", class: "primary", "data-testid": "call-open" }, tr("console.centre.open_incident")));
}

// The incident panel's assignment line and comment box.
function centreWork(incident) {
  const parts = [];
  const holder = el("p", { class: "assignment", "data-testid": "assignment" },
    incident.assignee ? tr("console.centre.held_by", { name: incident.assignee }) : tr("console.centre.unclaimed"));
  const assign = async (name) => {
    try {
      await api("PUT", `/api/v1/incidents/${incident.id}/assignee`, { assignee: name });
      await showIncident(incident.id);
    } catch (failure) {
      holder.textContent = tr("console.action.failed", { message: failure.message });
    }
  };
  if (isCentre() && OPEN.has(incident.status)) {
    if (incident.assignee !== state.me.name) {
      holder.append(" ", el("button", { type: "button", "data-testid": "claim", onclick: () => assign(state.me.name) },
        tr("console.centre.claim")));
    }
    const other = el("input", { size: "12", "data-testid": "handover-name", placeholder: tr("console.centre.operator") });
    holder.append(" ", other, el("button", { type: "button", "data-testid": "handover",
      onclick: () => other.value.trim() && assign(other.value.trim()) }, tr("console.centre.hand_over")));
    if (incident.assignee) {
      holder.append(" ", el("button", { type: "button", class: "ghost", "data-testid": "release-claim",
        onclick: () => assign(null) }, tr("console.centre.release")));
    }
  }
  parts.push(holder);
  if (state.me.role !== "regulator") {
    const text = el("textarea", { rows: "2", maxlength: "2000", "data-testid": "comment-text",
      placeholder: tr("console.centre.comment_placeholder") });
    const error = el("p", { class: "error", hidden: true });
    const submit = async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      try {
        await api("POST", `/api/v1/incidents/${incident.id}/comments`, { note: text.value });
        await showIncident(incident.id);
      } catch (failure) {
        error.textContent = tr("console.action.failed", { message: failure.message });
        error.hidden = false;
      }
    };
    parts.push(el("form", { class: "comment", onsubmit: submit }, text, error,
      el("button", { type: "submit", "data-testid": "comment-add" }, tr("console.centre.comment"))));
  }
  return el("div", { class: "centre" }, parts);
}

// --- recorded but not notified: maintenance windows, shelves, out of service (issue 17) ------------

const SAFETY_CODES = new Set(["trapped_passenger", "overspeed"]); // never shelved nor silenced (server-side too)
const SHELF_MINUTES = [30, 60, 120, 240, 480];
const WINDOW_HOURS = [1, 2, 4, 8, 24, 72];

function suppressionTag(incident) {
  if (!incident.suppressed) return null;
  return el("span", { class: `suppressed ${incident.suppressed}`, "data-testid": "suppressed" },
    tr(`console.suppressed.${incident.suppressed}`));
}

// A small form: a select of durations, a reason, a button; `send(value, reason)` does the request.
function durationForm(testid, options, label, submitText, send) {
  const select = el("select", { "data-testid": `${testid}-duration` }, options.map(([value, text]) => el("option", { value }, text)));
  const reason = el("input", { maxlength: "500", required: true, "data-testid": `${testid}-reason`, placeholder: tr("console.suppressed.reason") });
  const error = el("p", { class: "error", hidden: true });
  const submit = async (event) => {
    event.preventDefault();
    try {
      await send(Number(select.value), reason.value);
    } catch (failure) {
      error.textContent = tr("console.action.failed", { message: failure.message });
      error.hidden = false;
    }
  };
  return el("form", { class: "duration", "data-testid": `${testid}-form`, onsubmit: submit },
    options.length ? el("label", {}, label, " ", select) : el("span", {}, label), reason, error, el("button", { type: "submit", "data-testid": `${testid}-submit` }, submitText));
}

// The incident panel: shelve this (elevator, fault) for a while, or take the shelf off.
function shelfForm(incident) {
  if (!isCentre() || !incident.registration_code || SAFETY_CODES.has(incident.code) || !OPEN.has(incident.status)) return [];
  if (incident.suppressed === "shelved") {
    const unshelve = async () => {
      const shelves = await api("GET", `/api/v1/shelves?registration_code=${incident.registration_code}`);
      for (const shelf of shelves.filter((s) => s.code === incident.code)) await api("DELETE", `/api/v1/shelves/${shelf.id}`);
      await showIncident(incident.id);
    };
    return el("div", { class: "shelf" }, el("button", { type: "button", "data-testid": "unshelve", onclick: unshelve },
      tr("console.suppressed.unshelve")));
  }
  const options = SHELF_MINUTES.map((m) => [m, tr("console.suppressed.minutes", { minutes: m })]);
  return durationForm("shelf", options, tr("console.suppressed.shelve_for"), tr("console.suppressed.shelve"), async (minutes, reason) => {
    await api("POST", "/api/v1/shelves", { registration_code: incident.registration_code, code: incident.code, minutes, reason });
    const refreshed = await api("GET", `/api/v1/incidents/${incident.id}`);
    state.incidents.set(incident.id, refreshed.incident);
    renderBoard();
    await showIncident(incident.id);
  });
}

// The elevator panel: its maintenance windows (declare one), and whether it is out of service.
function elevatorStates(elevator) {
  const box = el("div", { class: "states", "data-testid": "elevator-states" });
  const role = state.me.role;
  const code = elevator.registration_code;
  const refresh = async () => {
    const [windows, out] = await Promise.all([
      api("GET", `/api/v1/maintenance-windows?registration_code=${code}`),
      api("GET", `/api/v1/out-of-service?registration_code=${code}`),
    ]);
    const parts = [el("h3", {}, tr("console.suppressed.windows"))];
    parts.push(windows.length ? el("ul", { "data-testid": "windows" }, windows.map((w) =>
      el("li", {}, `${formatTime(w.starts_at)} – ${formatTime(w.ends_at)} · ${w.reason} · ${w.created_by}`)))
      : el("p", { class: "empty" }, tr("console.suppressed.no_windows")));
    if (role !== "regulator") {
      const options = WINDOW_HOURS.map((h) => [h, tr("console.suppressed.hours", { hours: h })]);
      parts.push(durationForm("window", options, tr("console.suppressed.window_for"), tr("console.suppressed.declare"),
        async (hours, reason) => {
          const ends = new Date(Date.now() + hours * 3600 * 1000).toISOString();
          await api("POST", "/api/v1/maintenance-windows", { registration_code: code, ends_at: ends, reason });
          await refresh();
          await loadBoard();
        }));
    }
    if (out.length) {
      parts.push(el("p", { class: "suppressed out_of_service", "data-testid": "out-of-service" },
        tr("console.suppressed.out_of_service_since", { since: formatTime(out[0].since), reason: out[0].reason })));
    }
    if (role !== "operator") {
      parts.push(out.length
        ? el("button", { type: "button", "data-testid": "back-in-service", onclick: async () => {
          await api("DELETE", `/api/v1/elevators/${code}/out-of-service`); await refresh(); await loadBoard();
        } }, tr("console.suppressed.back_in_service"))
        : durationForm("oos", [], tr("console.suppressed.out_of_service"), tr("console.suppressed.take_out"), async (_, reason) => {
          await api("PUT", `/api/v1/elevators/${code}/out-of-service`, { reason }); await refresh(); await loadBoard();
        }));
    }
    box.replaceChildren(...parts);
  };
  refresh().catch((failure) => box.replaceChildren(el("p", { class: "error" }, failure.message)));
  return box;
}

// --- storms: incident groups and inhibition (issue 17) ---------------------------------------------

state.expandedGroups = new Set();

function groupMembers(open, leaderId) {
  return open.filter((i) => i.group_id === leaderId && i.id !== leaderId);
}

// A group shows as its leader's row with "+N" (expand) and "acknowledge all"; members only when expanded.
// A member whose leader is no longer open shows as a row of its own.
function groupedRows(open) {
  const openIds = new Set(open.map((i) => i.id));
  const rows = [];
  for (const incident of open) {
    const grouped = incident.group_id && incident.group_id !== incident.id && openIds.has(incident.group_id);
    if (grouped && !state.expandedGroups.has(incident.group_id)) continue;
    const node = row(incident);
    if (grouped) node.classList.add("member");
    if (incident.group_id === incident.id) {
      const members = groupMembers(open, incident.id);
      if (members.length) node.querySelector("td.actions").prepend(groupControls(incident, members));
    }
    rows.push(node);
  }
  return rows;
}

function groupControls(leader, members) {
  const expanded = state.expandedGroups.has(leader.id);
  const toggle = el("button", { type: "button", class: "group", "data-testid": "group-toggle", onclick: () => {
    if (expanded) state.expandedGroups.delete(leader.id); else state.expandedGroups.add(leader.id);
    renderBoard();
  } }, tr(expanded ? "console.storm.collapse" : "console.storm.expand", { count: members.length }));
  const parts = [toggle];
  const waiting = [leader, ...members].filter((i) => i.status === "detected").length;
  if (isCentre() && waiting > 1) {
    parts.push(el("button", { type: "button", class: "primary", "data-testid": "group-acknowledge", onclick: async () => {
      await api("POST", `/api/v1/incident-groups/${leader.id}/acknowledge`, { note: "" });
      await loadBoard();
    } }, tr("console.storm.acknowledge_all", { count: waiting })));
  }
  return el("span", { class: "group-controls" }, parts);
}

function stormTag(incident) {
  if (!incident.inhibited_by) return null;
  return el("span", { class: "suppressed inhibited", "data-testid": "inhibited" },
    tr("console.storm.inhibited", { id: incident.inhibited_by }));
}

// --- notifications of an incident, every channel (issue 17) ---------------------------------------

function deliveriesSection(deliveries) {
  if (!deliveries.length) return [];
  return el("div", { class: "deliveries" }, el("h3", {}, tr("console.notify.title")),
    el("table", { class: "trail", "data-testid": "deliveries" },
      el("thead", {}, el("tr", {}, ...["receiver", "step", "status", "attempts"].map((k) => el("th", {}, tr(`console.notify.${k}`))))),
      el("tbody", {}, deliveries.map((d) => el("tr", { class: `delivery ${d.status}` },
        el("td", {}, `${d.receiver} (${tr(`console.notify.channel.${d.channel}`)})`),
        el("td", {}, tr(`common.kind.${d.kind}`)),
        el("td", { title: d.last_error || "" }, tr(`console.notify.status.${d.status}`) + (d.sent_at ? ` · ${formatTime(d.sent_at)}` : "")),
        el("td", {}, String(d.attempts)))))));
}

// --- session ----------------------------------------------------------------------------------

function showLogin() {
  state.me = null;
  state.loaded = false;
  state.incidents = new Map();
  if (state.source) state.source.close();
  $("login").hidden = false;
  for (const id of ["board", "detail", "search", "feed-state", "sound", "logout"]) $(id).hidden = true;
  $("user").textContent = "";
  if (typeof pagesSignedOut === "function") pagesSignedOut(); // pages.js
}

async function start() {
  try {
    state.me = await api("GET", "/api/v1/me");
  } catch (_) {
    showLogin();
    return;
  }
  await loadCatalog();
  $("login").hidden = true;
  for (const id of ["board", "search", "feed-state", "sound", "logout"]) $(id).hidden = false;
  renderChrome();
  await loadBoard();
  if (typeof pagesSignedIn === "function") pagesSignedIn(); // pages.js: navigation and the page of the address
}

async function login(event) {
  event.preventDefault();
  const token = $("login-token").value.trim();
  const response = await fetch("/api/v1/session", {
    method: "POST", headers: { Authorization: `Bearer ${token}`, "Accept-Language": state.lang },
    credentials: "same-origin",
  });
  if (!response.ok) {
    $("login-error").textContent = tr("console.login.failed");
    $("login-error").hidden = false;
    return;
  }
  $("login-token").value = "";
  $("login-error").hidden = true;
  await start();
}

async function logout() {
  await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin" });
  showLogin();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("search").addEventListener("submit", searchRescueCode);
  $("action-form").addEventListener("submit", submitAction);
  $("action-cancel").addEventListener("click", () => $("action-dialog").close());
  // Enter confirms (the note is optional): click, type, Enter. Shift+Enter starts a new line.
  $("action-note").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("action-form").requestSubmit();
    }
  });
  $("logout").addEventListener("click", logout);
  $("sound").addEventListener("click", () => { state.sound = !state.sound; if (state.sound) beep(); renderChrome(); });
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang, true));
  }
  setInterval(() => { for (const node of document.querySelectorAll(".clock")) updateClock(node); renderChrome(); }, 1000);
  await setLanguage(preferredLanguage(), false);
  await start();
});
