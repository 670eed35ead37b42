// The live inspector's page: the feed (Server-Sent Events) into a table, filters kept in
// the URL, a details pane, a hand-drawn rates chart, and the panels. No library, no build.
"use strict";

const FILTERS = ["source", "type", "event", "userId", "messageId", "outcome"];
const MAX_ROWS = 1000; // kept in the page; older ones are dropped
const CHART_SECONDS = 120; // the chart's span; the feed keeps five minutes
const COLORS = ["#1a7f37", "#cf222e", "#8250df", "#0969da", "#bc4c00", "#9a6700", "#57606a",
  "#1b7c83", "#bf3989", "#4d2d00"];

const $ = (selector) => document.querySelector(selector);
const state = { rows: [], seen: new Set(), paused: false, waiting: [], source: null, selected: null,
  rates: new Map(), filters: {} };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function filtersFromUrl() {
  const query = new URLSearchParams(location.search);
  const form = $("#filters");
  const filters = {};
  for (const name of FILTERS) {
    const value = query.get(name) || "";
    form.elements[name].value = value;
    if (value) filters[name] = value;
  }
  return filters;
}

function matches(row, filters) {
  for (const [name, value] of Object.entries(filters)) {
    if (name === "userId") {
      if (row.userId !== value && row.anonymousId !== value) return false;
    } else if ((row[name] || "") !== value) return false;
  }
  return true;
}

function time(ms) {
  const at = new Date(ms);
  return at.toLocaleTimeString([], { hour12: false }) + "." +
    String(at.getMilliseconds()).padStart(3, "0");
}

function rowElement(row) {
  const tr = el("tr", { "data-outcome": row.outcome, "data-message-id": row.messageId || "",
    "data-user-id": row.userId || "", "data-anonymous-id": row.anonymousId || "" },
  el("td", {}, time(row.at)), el("td", {}, row.source || "–"), el("td", {}, row.route || "–"),
  el("td", {}, row.type || "–"), el("td", {}, row.event || ""),
  el("td", {}, row.userId || row.anonymousId || "–"),
  el("td", { class: "outcome o-" + row.outcome }, row.outcome),
  el("td", { class: "reason" }, row.reason || ""));
  tr.addEventListener("click", () => showDetails(row, tr));
  return tr;
}

function add(row) {
  // A reconnection (new filters, a network blip) sends the last minutes again.
  const key = `${row.stream} ${row.entryId} ${row.outcome} ${row.at}`;
  if (state.seen.has(key)) return;
  state.seen.add(key);
  state.rows.push(row);
  if (state.rows.length > MAX_ROWS) {
    for (const old of state.rows.splice(0, state.rows.length - MAX_ROWS)) {
      state.seen.delete(`${old.stream} ${old.entryId} ${old.outcome} ${old.at}`);
    }
  }
  if (!matches(row, state.filters)) return;
  const body = $("#rows tbody");
  body.prepend(rowElement(row));
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  $("#empty").hidden = true;
}

function render() {
  const body = $("#rows tbody");
  body.replaceChildren();
  const shown = state.rows.filter((row) => matches(row, state.filters));
  for (const row of shown.reverse()) body.append(rowElement(row));
  $("#empty").hidden = shown.length > 0;
}

function connect() {
  if (state.source) state.source.close();
  const query = new URLSearchParams(state.filters);
  const source = new EventSource("/v1/inspector/feed?" + query.toString());
  state.source = source;
  setStatus("connecting…", "");
  source.addEventListener("row", (message) => {
    const row = JSON.parse(message.data);
    if (state.paused) state.waiting.push(row);
    else add(row);
  });
  source.addEventListener("ready", () => setStatus(state.paused ? "paused" : "live",
    state.paused ? "paused" : "live"));
  source.addEventListener("rates", (message) => {
    state.rates.clear();
    addRates(JSON.parse(message.data));
  });
  source.addEventListener("stats", (message) => {
    const stats = JSON.parse(message.data);
    addRates(stats.rates);
    const note = $("#sampled");
    if (stats.matched > stats.shown || stats.unread > 0) {
      note.hidden = false;
      note.textContent = `sampled: showing ${stats.shown} of ${stats.matched} a second` +
        (stats.unread ? ` (${stats.unread} more not read)` : "");
    } else note.hidden = true;
  });
  source.addEventListener("failed", (message) => {
    setStatus("feed failed: " + JSON.parse(message.data).error, "");
  });
  source.onerror = () => setStatus("reconnecting…", "");
}

function setStatus(text, kind) {
  const status = $("#status");
  status.textContent = text;
  status.className = "status " + kind;
}

// ---- the details pane ----

async function showDetails(row, tr) {
  for (const selected of document.querySelectorAll("#rows tr.selected")) {
    selected.classList.remove("selected");
  }
  tr.classList.add("selected");
  state.selected = row;
  const facts = $("#facts");
  facts.replaceChildren();
  const fact = (name, value) => { if (value) facts.append(el("dt", {}, name), el("dd", {}, value)); };
  fact("outcome", row.outcome);
  fact("reason", row.reason);
  fact("messageId", row.messageId);
  fact("received", new Date(row.at).toISOString());
  fact("source", row.source);
  fact("route", row.route);
  fact("stored in", row.stream && row.entryId ? `${row.stream} ${row.entryId}` : "");
  $("#json").textContent = pretty(row.data);
  $("#details").hidden = false;
  const deliveries = $("#deliveries");
  deliveries.textContent = "…";
  if (row.source) sourceFacts(row.source, fact);
  if (!row.messageId) { deliveries.textContent = "no messageId: nothing to look up"; return; }
  const answer = await fetch("/v1/events/" + encodeURIComponent(row.messageId));
  if (state.selected !== row) return;
  if (!answer.ok) { deliveries.textContent = "not found in the event index"; return; }
  const found = await answer.json();
  if (found.route && !found.refused) fact("accepted on", found.route);
  if (found.message && row.outcome === "accepted") $("#json").textContent = pretty(found.message);
  const groups = Object.entries(found.groups || {});
  if (!groups.length) { deliveries.textContent = found.refused ? "refused: not stored" :
    "no consumer group reads this stream yet"; return; }
  const table = el("table", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "status"),
    el("th", {}, "attempts"), el("th", {}, "error")));
  for (const [name, group] of groups) {
    table.append(el("tr", {}, el("td", {}, name), el("td", {}, group.status),
      el("td", {}, String(group.attempts ?? "–")), el("td", {}, group.error || "")));
  }
  deliveries.replaceChildren(table);
}

function sourceFacts(id, fact) {
  const source = (state.sources || []).find((s) => s.id === id);
  if (!source) return;
  fact("IP policy", (source.policies && source.policies.ip) || "keep (default)");
  fact("keys", (source.keys || []).map((k) => k.key).join(", ") || "–");
}

function pretty(data) {
  if (data === undefined || data === null || data === "") return "(not kept)";
  if (typeof data !== "string") return JSON.stringify(data, null, 2);
  try { return JSON.stringify(JSON.parse(data), null, 2); } catch { return data; }
}

// ---- the rates chart: an SVG polyline per series, drawn by hand ----

function addRates(rates) {
  for (const [second, source, outcome, count] of rates) {
    const key = `${source || "?"} ${outcome}`;
    if (!state.rates.has(key)) state.rates.set(key, new Map());
    const series = state.rates.get(key);
    series.set(second, (series.get(second) || 0) + count);
  }
  drawChart();
}

function drawChart() {
  const svg = $("#chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const now = Math.floor(Date.now() / 1000);
  const start = now - CHART_SECONDS;
  let top = 1;
  const series = [...state.rates.entries()].map(([key, points]) => {
    for (const second of points.keys()) if (second < start) points.delete(second);
    for (const count of points.values()) top = Math.max(top, count);
    return [key, points];
  }).filter(([, points]) => points.size).slice(0, COLORS.length);
  const legend = $("#legend");
  legend.replaceChildren();
  series.forEach(([key, points], index) => {
    const coords = [];
    for (let second = start; second <= now; second++) {
      const x = ((second - start) / CHART_SECONDS) * 600;
      const y = 155 - ((points.get(second) || 0) / top) * 145;
      coords.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    }
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[index]);
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
    const swatch = el("i");
    swatch.style.background = COLORS[index];
    legend.append(el("li", {}, swatch, key));
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "4"); label.setAttribute("y", "14");
  label.setAttribute("font-size", "11"); label.setAttribute("fill", "#667085");
  label.textContent = `${top}/s`;
  svg.append(label);
}

// ---- the panels ----

async function getJson(url) {
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`${url}: ${answer.status}`);
  return answer.json();
}

async function loadGroups() {
  const body = $("#groups tbody");
  try {
    const { groups } = await getJson("/v1/inspector/groups");
    body.replaceChildren(...groups.map((group) => {
      const button = el("button", { type: "button", textContent: "Re-drive",
        disabled: group.deadLetters === 0 || group.redriveAsked });
      button.addEventListener("click", () => redrive(group.group));
      return el("tr", {}, el("td", {}, group.group), el("td", {}, String(group.consumers)),
        el("td", {}, group.lag === null ? "?" : String(group.lag)),
        el("td", {}, String(group.pending)), el("td", {}, String(group.deadLetters)),
        el("td", {}, group.redriveAsked ? "asked…" : button));
    }));
    $("#groups-note").textContent = groups.length ? "" : "No consumer group yet (no worker ran).";
  } catch (error) { $("#groups-note").textContent = String(error); }
}

async function redrive(group) {
  const answer = await fetch(`/v1/inspector/groups/${encodeURIComponent(group)}/redrive`,
    { method: "POST" });
  $("#groups-note").textContent = answer.ok
    ? `Re-drive of ${group} asked: a running worker of the group takes it within seconds.`
    : `Re-drive of ${group}: ${(await answer.json()).Details || answer.status}`;
  loadGroups();
}

async function loadSources() {
  const { sources, mode } = await getJson("/v1/sources");
  state.sources = sources;
  const ids = mode === "open" ? ["default"] : sources.map((s) => s.id);
  $("#source-ids").replaceChildren(...ids.map((id) => el("option", { value: id })));
  $("#test-source").replaceChildren(...ids.map((id) => el("option", { value: id }, id)));
  $("#sources tbody").replaceChildren(...sources.map((s) => el("tr", {},
    el("td", {}, s.id), el("td", {}, s.enabled ? "yes" : "no"), el("td", {}, s.origin || ""),
    el("td", {}, (s.keys || []).map((k) => k.key).join(", ") || "–"))));
  if (mode === "open") $("#sources tbody").append(el("tr", {}, el("td", { colSpan: 4 },
    "open mode: every writeKey is accepted as source \"default\"")));
}

async function loadRegulations() {
  const { data } = await getJson("/v1/regulations");
  $("#regulations tbody").replaceChildren(...data.regulations.map((r) => el("tr", {},
    el("td", {}, r.id), el("td", {}, r.regulationType),
    el("td", {}, r.subjectIds.join(", ")), el("td", {}, r.overallStatus))));
}

async function sendTestEvent(event) {
  event.preventDefault();
  const source = $("#test-source").value;
  const answer = await fetch("/v1/inspector/test-event", { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ source }) });
  const body = await answer.json();
  $("#test-note").textContent = answer.ok
    ? `Sent ${body.messageId} for ${body.source}: watch it arrive above.`
    : `Not sent: ${body.Details || body.Message}`;
}

// ---- wiring ----

function applyFilters(event) {
  if (event) event.preventDefault();
  const form = $("#filters");
  const filters = {};
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) filters[name] = value;
  }
  state.filters = filters;
  const query = new URLSearchParams(filters).toString();
  history.replaceState(null, "", query ? "?" + query : location.pathname);
  render(); // what is shown already
  connect(); // and the matches of the last minutes, then what arrives
}

function start() {
  state.filters = filtersFromUrl();
  $("#filters").addEventListener("submit", applyFilters);
  $("#reset").addEventListener("click", () => {
    for (const name of FILTERS) $("#filters").elements[name].value = "";
    applyFilters();
  });
  $("#pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("#pause").textContent = state.paused ? "Resume" : "Pause";
    setStatus(state.paused ? "paused" : "live", state.paused ? "paused" : "live");
    if (!state.paused) { for (const row of state.waiting.splice(0)) add(row); }
  });
  $("#clear").addEventListener("click", () => { state.rows = []; render(); }); // seen stays
  $("#close").addEventListener("click", () => { $("#details").hidden = true; });
  $("#copy").addEventListener("click", () => navigator.clipboard.writeText($("#json").textContent));
  $("#test-form").addEventListener("submit", sendTestEvent);
  connect();
  loadSources().catch(() => {});
  loadRegulations().catch(() => {});
  loadGroups();
  setInterval(loadGroups, 5000);
  setInterval(drawChart, 1000);
}

document.addEventListener("DOMContentLoaded", start);
