// The cost dashboard: a client of the JSON API (/v1/usage and friends), nothing more.
// The API key lives in sessionStorage (this tab only) and goes out as an Authorization header;
// never in the URL, never logged. Filters live in the URL's hash, so a link can be shared.
"use strict";

const KEY = "smallcode.dashboard.key";
const PAGE = 10;
const SESSIONS = 50; // the costliest agent sessions shown; the rest are counted
const PLOT = { responsive: true, displayModeBar: false };
const COLORS = { local: "#2a9d8f", cloud: "#e76f51", escalated: "#f4a261",
                 spend: "#e76f51", counterfactual: "#264653", kept: "#2a9d8f" };
const REASONS = { confident: "confident (kept local)", low_confidence: "low confidence",
                  failed_checks: "failed checks", early_abort: "early abort",
                  multi_file: "multi-file", context: "context too long", task_type: "task type",
                  privacy: "privacy (kept local)", budget: "budget (kept local)",
                  forced: "forced", requested: "tier requested" };

const $ = (id) => document.getElementById(id);
const state = { who: null, timer: null, cursors: [], before: null, rows: [], busy: false,
                again: false, refreshS: 5 };

// ---- formatting ------------------------------------------------------------------------
const usd = (v) => "$" + (Math.abs(v) >= 100 ? v.toFixed(2) : v.toFixed(4));
const pct = (v) => (100 * v).toFixed(1) + "%";
const int = (v) => Math.round(v).toLocaleString("en-US");
const ms = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms");

// ---- filters in the URL hash --------------------------------------------------------------
function readFilters() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const period = ["1", "7", "30", "90"].includes(hash.get("period")) ? hash.get("period") : "30";
  const route = ["local", "cloud"].includes(hash.get("route")) ? hash.get("route") : "";
  return { period, team: hash.get("team") || "", route };
}

function writeFilters(filters) {
  const hash = new URLSearchParams();
  hash.set("period", filters.period);
  if (filters.team) hash.set("team", filters.team);
  if (filters.route) hash.set("route", filters.route);
  history.replaceState(null, "", "#" + hash.toString());
}

function filters() {
  const f = readFilters();
  if (state.who && !state.who.admin) f.team = state.who.team;
  return f;
}

function dayString(date) { return date.toISOString().slice(0, 10); }

function window_(f) {
  const today = new Date();
  const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(),
                                  today.getUTCDate() - (Number(f.period) - 1)));
  const days = [];
  for (let d = new Date(first); d <= today; d.setUTCDate(d.getUTCDate() + 1)) days.push(dayString(d));
  return { from: days[0], to: dayString(today), days };
}

// ---- the API ---------------------------------------------------------------------------
class SignedOut extends Error {}

async function api(path, params) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new SignedOut("signed out");
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v != null) query.set(k, v);
  const url = path + (query.toString() ? "?" + query : "");
  const response = await fetch(url, { headers: { Authorization: "Bearer " + key },
                                      cache: "no-store" });
  const body = await response.json();
  if (response.status === 401) throw new SignedOut(body.error ? body.error.message : "signed out");
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

async function session(key) {
  const response = await fetch("/dashboard/session", {
    method: "POST", headers: { Authorization: "Bearer " + key }, cache: "no-store" });
  return response.json();
}

// ---- sign-in ---------------------------------------------------------------------------
function showSignIn(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.who = null;
  $("dashboard").hidden = true;
  $("whoami").hidden = true;
  $("signin").hidden = false;
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.body.dataset.state = "signed-out";
}

async function signIn(key, fromForm) {
  const answer = await session(key);
  if (!answer.signed_in) {
    sessionStorage.removeItem(KEY);
    showSignIn(fromForm ? answer.message : "");
    return;
  }
  sessionStorage.setItem(KEY, key);
  state.who = answer;
  state.refreshS = answer.refresh_s || 5;
  $("signin").hidden = true;
  $("dashboard").hidden = false;
  $("whoami").hidden = false;
  $("who").textContent = answer.admin ? "admin key · every team" : "team " + answer.team;
  const team = $("f-team");
  team.disabled = !answer.admin;
  if (!answer.admin) team.replaceChildren(new Option(answer.team, answer.team));
  syncControls();
  state.cursors = [];
  state.before = null;
  await refresh();
  state.timer = setInterval(refresh, state.refreshS * 1000);
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  showSignIn(message);
}

// ---- controls ----------------------------------------------------------------------------
function syncControls() {
  const f = filters();
  $("f-period").value = f.period;
  $("f-route").value = f.route;
  const team = $("f-team");
  if (f.team && ![...team.options].some((o) => o.value === f.team)) team.add(new Option(f.team, f.team));
  team.value = f.team;
}

function onFilter() {
  writeFilters({ period: $("f-period").value, team: $("f-team").value, route: $("f-route").value });
  state.cursors = [];
  state.before = null;
  refresh(true);
}

function setTeams(teams) {
  if (!state.who || !state.who.admin) return;
  const select = $("f-team");
  const chosen = filters().team;
  const names = [...new Set([...teams, ...(chosen ? [chosen] : [])])].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join("\n") === names.join("\n")) return;
  select.replaceChildren(new Option("all teams", ""), ...names.map((n) => new Option(n, n)));
  select.value = chosen;
}

// ---- refresh -----------------------------------------------------------------------------
// One refresh at a time: a timer tick while one runs is skipped; a change of filter or page
// (`changed`) runs again once it lands, and the landing one, asked with the old filters, draws
// nothing (so the page never shows one filter's figures under another's controls).
async function refresh(changed) {
  if (!state.who) return;
  if (state.busy) {
    if (changed === true) state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  const f = filters();
  const w = window_(f);
  const scope = { from: w.from, to: w.to, team: f.team, route: f.route };
  try {
    const [totals, days, reasons, hist, budgets, page, sessions, teams] = await Promise.all([
      api("/v1/usage", scope),
      api("/v1/usage", { ...scope, group_by: "day" }),
      api("/v1/usage", { ...scope, group_by: "reason" }),
      api("/v1/usage/histograms", scope),
      api("/v1/usage/budgets", { team: f.team }),
      api("/v1/usage/entries", { ...scope, limit: PAGE, before: state.before }),
      // Every route: a session's turns are not kept per route.
      api("/v1/usage", { from: w.from, to: w.to, team: f.team, group_by: "session", limit: SESSIONS }),
      state.who.admin ? api("/v1/usage", { from: w.from, to: w.to, group_by: "team" }) : null,
    ]);
    if (state.again) return;
    if (teams) setTeams(teams.data.map((row) => row.team));
    renderTiles(totals.totals, budgets.data);
    renderCharts(w.days, days.data, reasons.data, hist, totals.totals.tasks);
    renderTable(page);
    renderSessions(sessions, f.route);
    document.body.dataset.state = totals.totals.tasks ? "loaded" : "empty";
    document.body.dataset.refreshed = String(Date.now());
    $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (error) {
    if (error instanceof SignedOut) signOut(error.message);
    else $("status").textContent = "could not refresh: " + error.message;
  } finally {
    state.busy = false;
    if (state.again) refresh(true);
  }
}

// ---- tiles -------------------------------------------------------------------------------
function tile(id, value, text, note) {
  const el = $(id);
  el.dataset.value = String(value);
  el.querySelector(".v").textContent = text;
  el.querySelector("small").textContent = note || "";
}

function renderTiles(t, budgets) {
  tile("tile-tasks", t.tasks, int(t.tasks), `${int(t.local)} local · ${int(t.cloud)} cloud`);
  tile("tile-local-share", t.local_share, pct(t.local_share), `${int(t.local)} of ${int(t.tasks)} tasks`);
  tile("tile-spend", t.cloud_spend_usd, usd(t.cloud_spend_usd), `${int(t.tokens.cloud)} cloud tokens`);
  tile("tile-counterfactual", t.counterfactual_usd, usd(t.counterfactual_usd), "every task priced at the cloud model");
  tile("tile-savings", t.savings_usd, usd(t.savings_usd), `${t.savings_pct.toFixed(1)}% of all-cloud`);
  $("tile-savings").dataset.pct = String(t.savings_pct);
  tile("tile-escalation", t.escalation_rate, pct(t.escalation_rate), `${int(t.escalated)} local answers escalated`);
  const wasted = t.escalated_local_attempts;
  tile("tile-wasted", wasted.usd, usd(wasted.usd), `${int(wasted.tokens)} tokens · ${ms(wasted.ms)} of local time`);
  $("tile-wasted").dataset.tokens = String(wasted.tokens);
  if (!budgets.length) {
    tile("tile-budget", 0, "no budget", "none set for this scope");
    $("tile-budget").dataset.budget = "0";
  } else {
    const spent = budgets.reduce((s, b) => s + b.spent_usd, 0);
    const limit = budgets.reduce((s, b) => s + b.budget_usd, 0);
    tile("tile-budget", spent, `${(100 * spent / limit).toFixed(1)}%`,
         `${usd(spent)} of ${usd(limit)} · ` + budgets.map((b) => `${b.team || "key " + b.key_id}: ${b.used_pct.toFixed(1)}% this ${b.period}`).join(" · "));
    $("tile-budget").dataset.budget = String(limit);
  }
}

// ---- charts -----------------------------------------------------------------------------
function layout(extra) {
  return { margin: { l: 48, r: 12, t: 8, b: 40 }, height: 260, autosize: true,
           paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
           font: { family: "system-ui, sans-serif", size: 12, color: "#1d3557" },
           legend: { orientation: "h", y: -0.22 }, ...extra };
}

function noData(id) {
  const el = $(id);
  if (window.Plotly) Plotly.purge(el);
  el.replaceChildren();
  const p = document.createElement("p");
  p.className = "no-data";
  p.textContent = "no data yet";
  el.appendChild(p);
  el.dataset.points = "0";
}

function plot(id, traces, extra) {
  const el = $(id);
  const empty = el.querySelector(".no-data");
  if (empty) empty.remove();
  Plotly.react(el, traces, layout(extra), PLOT);
  el.dataset.points = String(traces.reduce((n, t) => n + t.y.filter((v) => v !== null).length, 0));
}

function renderCharts(dayList, dayRows, reasonRows, hist, tasks) {
  if (!tasks) {
    ["chart-spend", "chart-counts", "chart-reasons", "chart-latency", "chart-confidence"].forEach(noData);
    return;
  }
  const byDay = Object.fromEntries(dayRows.map((r) => [r.day, r]));
  const get = (day, f) => (byDay[day] ? f(byDay[day]) : 0);
  plot("chart-spend", [
    { type: "scatter", mode: "lines+markers", name: "cloud spend", x: dayList,
      y: dayList.map((d) => get(d, (r) => r.cloud_spend_usd)), line: { color: COLORS.spend } },
    { type: "scatter", mode: "lines+markers", name: "all-cloud counterfactual", x: dayList,
      y: dayList.map((d) => get(d, (r) => r.counterfactual_usd)), line: { color: COLORS.counterfactual, dash: "dot" } },
  ], { yaxis: { tickprefix: "$", rangemode: "tozero" }, xaxis: { type: "date" } });
  plot("chart-counts", [
    { type: "bar", name: "local", x: dayList, y: dayList.map((d) => get(d, (r) => r.local)), marker: { color: COLORS.local } },
    { type: "bar", name: "cloud (direct)", x: dayList, y: dayList.map((d) => get(d, (r) => r.cloud - r.escalated)), marker: { color: COLORS.cloud } },
    { type: "bar", name: "escalated", x: dayList, y: dayList.map((d) => get(d, (r) => r.escalated)), marker: { color: COLORS.escalated } },
  ], { barmode: "stack", xaxis: { type: "date" } });
  const reasons = [...reasonRows].sort((a, b) => a.tasks - b.tasks);
  plot("chart-reasons", [
    { type: "bar", orientation: "h", name: "tasks", y: reasons.map((r) => REASONS[r.reason] || r.reason),
      x: reasons.map((r) => r.tasks), marker: { color: reasons.map((r) => (r.local >= r.cloud ? COLORS.local : COLORS.cloud)) },
      hovertemplate: "%{y}: %{x} tasks<extra></extra>" },
  ], { margin: { l: 150, r: 12, t: 8, b: 32 }, showlegend: false });
  // plot() counts y values; for the horizontal bars the values are on x.
  $("chart-reasons").dataset.points = String(reasons.length);

  const latency = hist.latency_ms;
  const routes = Object.keys(latency.routes);
  const used = Math.max(0, ...routes.map((r) => latency.routes[r].reduce((last, c, i) => (c ? i : last), 0)));
  const labels = latency.le.slice(0, used + 1).map((le) => (le === "+Inf" ? "longer" : "≤ " + ms(Number(le))));
  if (!routes.length) noData("chart-latency");
  else plot("chart-latency", routes.map((r) => ({
    type: "bar", name: r, x: labels, y: latency.routes[r].slice(0, used + 1), marker: { color: COLORS[r] } })),
    { barmode: "group", xaxis: { type: "category" }, yaxis: { title: { text: "tasks" } } });

  const c = hist.confidence;
  const kept = c.kept.reduce((a, b) => a + b, 0);
  const escalated = c.escalated.reduce((a, b) => a + b, 0);
  if (!kept && !escalated) noData("chart-confidence");
  else plot("chart-confidence", [
    { type: "bar", name: "kept local", x: c.bins.map((b) => b + c.width / 2), y: c.kept, width: c.width * 0.9, marker: { color: COLORS.kept } },
    { type: "bar", name: "escalated", x: c.bins.map((b) => b + c.width / 2), y: c.escalated, width: c.width * 0.9, marker: { color: COLORS.escalated } },
  ], { barmode: "stack", xaxis: { range: [0, 1], title: { text: "confidence" } }, yaxis: { title: { text: "answers" } } });
}

// ---- the table of recent tasks -------------------------------------------------------------
function cell(row, text, numeric) {
  const td = row.insertCell();
  td.textContent = text;
  if (numeric) td.className = "n";
}

function renderTable(page) {
  const body = $("tasks").tBodies[0];
  body.replaceChildren();
  state.rows = page.data;
  for (const e of page.data) {
    const tr = body.insertRow();
    tr.dataset.id = e.id;
    tr.tabIndex = 0;
    cell(tr, new Date(e.time * 1000).toISOString().replace("T", " ").slice(0, 19));
    cell(tr, e.team);
    cell(tr, e.task_type || "—");
    cell(tr, e.route + (e.escalated ? " ↑" : ""));
    cell(tr, REASONS[e.reason] || e.reason);
    cell(tr, e.confidence == null ? "—" : e.confidence.toFixed(3), true);
    cell(tr, int(e.tokens.prompt + e.tokens.completion), true);
    cell(tr, usd(e.cost_usd), true);
    cell(tr, ms(e.latency_ms), true);
  }
  $("tasks-empty").hidden = page.data.length > 0;
  state.nextBefore = page.next_before;
  $("older").disabled = !page.has_more;
  $("newer").disabled = state.cursors.length === 0;
}

// ---- agent sessions (Claude Code, Codex, opencode: one session, many turns) ----------------
function shortId(id) {
  return id.length <= 24 ? id : id.slice(0, 13) + "…" + id.slice(-6);
}

function renderSessions(found, route) {
  const body = $("sessions").tBodies[0];
  body.replaceChildren();
  for (const s of found.data) {
    const tr = body.insertRow();
    cell(tr, s.team);
    const id = document.createElement("code");
    id.textContent = shortId(s.session);
    id.title = s.session;
    tr.insertCell().appendChild(id);
    cell(tr, s.last_day);
    if (s.first_day !== s.last_day) tr.cells[2].title = "first active " + s.first_day;
    cell(tr, int(s.tasks), true);
    cell(tr, `${int(s.local)} · ${int(s.cloud)}`, true);
    tr.cells[4].title = `${int(s.escalated)} escalated from local`;
    cell(tr, pct(s.local_share), true);
    cell(tr, int(s.tokens.prompt + s.tokens.completion), true);
    cell(tr, usd(s.cloud_spend_usd), true);
    cell(tr, usd(s.counterfactual_usd), true);
    cell(tr, `${usd(s.savings_usd)} (${s.savings_pct.toFixed(1)}%)`, true);
  }
  const all = found.sessions;
  $("sessions-empty").hidden = all.count > 0;
  $("sessions-summary").textContent = !all.count ? "" :
    `${int(all.count)} session${all.count === 1 ? "" : "s"} · ${int(all.tasks)} turns · ` +
    `${pct(all.local_share)} served locally · ${usd(all.cloud_spend_usd)} spent · ` +
    `all-cloud ${usd(all.counterfactual_usd)} · saved ${usd(all.savings_usd)}` +
    (route ? " · every route (sessions are not kept per route)" : "");
  const more = all.count - found.data.length;
  $("sessions-more").hidden = !found.has_more;
  $("sessions-more").textContent = found.has_more
    ? `the ${found.data.length} costliest shown; ${int(more)} more session${more === 1 ? "" : "s"} not shown` : "";
}

function older() {
  if (state.nextBefore == null) return;
  state.cursors.push(state.before);
  state.before = state.nextBefore;
  refresh(true);
}

function newer() {
  if (!state.cursors.length) return;
  state.before = state.cursors.pop();
  refresh(true);
}

async function openRecord(id) {
  try {
    const entry = await api("/v1/usage/entries/" + encodeURIComponent(id));
    $("record-id").textContent = entry.id;
    const summary = $("record-summary");
    summary.replaceChildren();
    const rec = entry.record || {};
    const facts = [["team", entry.team], ["route", entry.route + (entry.escalated ? " (escalated)" : "")],
                   ["reason", entry.reason], ["detail", rec.detail || "—"],
                   ["confidence", entry.confidence == null ? "—" : entry.confidence.toFixed(3) +
                     (rec.threshold != null ? ` (threshold ${rec.threshold})` : "")],
                   ["cost", usd(entry.cost_usd) + ` (all-cloud ${usd(entry.counterfactual_usd)})`],
                   ["latency", ms(entry.latency_ms)]];
    for (const [k, v] of facts) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      summary.append(dt, dd);
    }
    $("record-json").textContent = entry.record ? JSON.stringify(entry.record, null, 2)
      : "(no route record was kept for this entry)";
    $("record").showModal();
  } catch (error) {
    if (error instanceof SignedOut) signOut(error.message);
    else $("status").textContent = "could not open the record: " + error.message;
  }
}

// ---- wiring ------------------------------------------------------------------------------
function start() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    $("api-key").value = "";
    if (key) signIn(key, true);
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  for (const id of ["f-period", "f-team", "f-route"]) $(id).addEventListener("change", onFilter);
  $("older").addEventListener("click", older);
  $("newer").addEventListener("click", newer);
  $("record-close").addEventListener("click", () => $("record").close());
  const body = $("tasks").tBodies[0];
  body.addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (row) openRecord(row.dataset.id);
  });
  body.addEventListener("keydown", (event) => {
    const row = event.target.closest("tr");
    if (row && event.key === "Enter") openRecord(row.dataset.id);
  });
  window.addEventListener("hashchange", () => { if (state.who) { syncControls(); onFilter(); } });
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key, false);
  else showSignIn("");
}

start();
