// The supervisor's view: queues and calls now, tickets near or past their SLA, and the KPIs
// of a period as charts that follow the live ticket events.

import { api, withQuery } from "./api.js";
import { categoryChart, csatChart, responseChart, slaChart, volumeChart } from "./charts.js";
import { agentName, debounce, fill, h, priorityBadge, typingIn } from "./dom.js";
import {
  formatDateInput,
  formatDuration,
  formatDurationShort,
  formatPercent,
  formatWallTime,
  parseDateInput,
  t,
} from "./i18n.js";
import { connectLive, failed, showLoadError, startPage, toast } from "./shell.js";
import { OPEN_STATUSES, TicketList } from "./ticket-list.js";
import { TicketView } from "./ticket-view.js";

const LIVE_EVERY_MS = 5000;
const SLA_EVERY_MS = 30000;

const liveCalls = document.getElementById("live-calls");
const queues = document.getElementById("queues");
const agentStates = document.getElementById("agent-states");
const slaWatch = document.getElementById("sla-watch");
const period = document.getElementById("period");
const kpiError = document.getElementById("kpi-error");
const search = document.getElementById("search");

let live = null;
let lastLive = null;
let lastSla = null;
let lastReport = null;
let lastOpened = null;

const list = new TicketList({
  list: document.getElementById("ticket-list"),
  summary: document.getElementById("list-summary"),
  onOpen: (number) => openTicket(number),
});

const view = new TicketView(document.getElementById("drawer"), {
  onClose: () => {
    list.markCurrent(null);
    // Back to where the supervisor was: the row, else the search box.
    const row = document.querySelector(`[data-open-ticket="${lastOpened}"]`);
    if (row) row.focus();
    else if (!list.focusRow(lastOpened)) search.focus();
  },
  onChanged: () => {
    reloadList();
    loadSla();
    loadKpiSoon();
  },
});

function openTicket(number) {
  lastOpened = number;
  list.markCurrent(number);
  view.open(number);
}

function ticketLink(number) {
  return h("button", { type: "button", class: "link-btn", dataset: { openTicket: number }, onclick: () => openTicket(number) }, number);
}

// -- calls and queues -------------------------------------------------------------------------

/** Each agent as the PBX's queues know them: logged in, paused (and why), logged out; on a call. */
function drawAgentStates(agents, onCall) {
  fill(
    agentStates,
    agents.length
      ? agents.map((agent) => {
          const state = onCall.has(agent.agent_id) ? "on_call" : agent.status;
          return h(
            "li",
            { class: `agent-state agent-${state}`, dataset: { agent: agent.agent_id, state } },
            h("span", { class: "agent-name" }, agentName(agent.agent_id)),
            h("span", { class: `badge state-${state}` }, t(`agentState.${state}`)),
            agent.reason ? h("span", { class: "muted" }, agent.reason) : null,
            agent.queues.length ? h("span", { class: "muted" }, agent.queues.join(", ")) : null,
          );
        })
      : h("li", { class: "muted" }, t("sup.noAgentStates")),
  );
}

async function loadLive() {
  try {
    lastLive = await api("/api/calls/live");
    drawLive();
  } catch (error) {
    showLoadError(liveCalls, error);
  }
}

function drawLive() {
  if (!lastLive) return;
  const { calls, queues: byQueue, agents_on_call: onCall, agents = [] } = lastLive;
  drawAgentStates(agents, new Set(onCall));
  document.getElementById("live-count").textContent = String(calls.length);
  document.getElementById("agents-on-call").textContent = onCall.length
    ? t("sup.agentsOnCall", { list: onCall.map(agentName).join(", ") })
    : "";
  const names = Object.keys(byQueue).sort();
  fill(
    queues,
    names.length
      ? names.map((name) =>
          h(
            "div",
            { class: "queue", dataset: { queue: name } },
            h("span", { class: "queue-name" }, name),
            h(
              "span",
              { class: "queue-stat" },
              h("span", { class: "queue-count waiting", dataset: { waiting: byQueue[name].waiting } }, String(byQueue[name].waiting)),
              t("sup.waiting"),
            ),
            h(
              "span",
              { class: "queue-stat" },
              h("span", { class: "queue-count talking", dataset: { talking: byQueue[name].talking } }, String(byQueue[name].talking)),
              t("sup.talking"),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("sup.noQueues")),
  );
  fill(
    liveCalls,
    calls.length
      ? h(
          "table",
          { class: "data-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, t("col.caller")),
              h("th", {}, t("col.queue")),
              h("th", {}, t("col.agent")),
              h("th", {}, t("col.state")),
              h("th", { class: "num" }, t("col.duration")),
            ),
          ),
          h(
            "tbody",
            {},
            calls.map((call) => {
              const talking = call.answered_at !== null && call.answered_at !== undefined;
              return h(
                "tr",
                { dataset: { linkedid: call.linkedid } },
                h("td", {}, h("span", { class: "mono" }, call.caller_number || "–"), call.caller_name ? h("div", { class: "muted" }, call.caller_name) : null),
                h("td", {}, call.queue || "–"),
                h("td", {}, call.agent_id ? agentName(call.agent_id) : (call.rang_agents || []).map(agentName).join(", ") || "–"),
                h("td", {}, callState(call, talking)),
                // Counts up between refreshes (see the ticker below).
                h("td", { class: "num", dataset: { since: talking ? call.answered_at : call.started_at } }, ""),
              );
            }),
          ),
        )
      : h("p", { class: "muted" }, t("sup.noCalls")),
  );
  tick();
}

function callState(call, talking) {
  // Agents' phones ringing, or the caller still waiting in the queue for one to be free.
  const state = talking ? "talking" : call.rang_agents?.length ? "ringing" : "queued";
  const look = { talking: "status-resolved", ringing: "status-in_progress", queued: "status-waiting" }[state];
  return h("span", { class: `badge ${look}` }, t(`call.${state}`));
}

function tick() {
  const now = Date.now() / 1000;
  for (const cell of liveCalls.querySelectorAll("[data-since]")) {
    cell.textContent = formatDuration(Math.floor(now - Number(cell.dataset.since))); // whole seconds tick
  }
}

// -- SLA watch ----------------------------------------------------------------------------------

async function loadSla() {
  try {
    lastSla = await api("/api/sla/watch");
    drawSla();
  } catch (error) {
    showLoadError(slaWatch, error);
  }
}

function drawSla() {
  if (!lastSla) return;
  document.getElementById("sla-count").textContent = String(lastSla.length);
  fill(
    slaWatch,
    lastSla.length
      ? h(
          "table",
          { class: "data-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, t("col.ticket")),
              h("th", {}, `${t("col.subject")} · ${t("col.assignee")}`),
              h("th", {}, t("col.priority")),
              h("th", { class: "num" }, `${t("col.target")} · ${t("col.due")}`),
            ),
          ),
          h(
            "tbody",
            {},
            lastSla.map((item) =>
              h(
                "tr",
                { class: `row-${item.state}`, dataset: { number: item.number, state: item.state } },
                h("td", {}, ticketLink(item.number)),
                h(
                  "td",
                  { class: "ellipsis", title: item.subject },
                  item.subject,
                  h("div", { class: "muted" }, agentName(item.assignee)),
                ),
                h("td", {}, priorityBadge(item.priority, true)),
                h(
                  "td",
                  { class: "num" },
                  h("span", { class: `badge sla sla-${item.state}` }, t(`sla.${item.target}`)),
                  h(
                    "div",
                    { class: item.remaining_seconds < 0 ? "over" : "muted" },
                    item.remaining_seconds < 0
                      ? t("sla.over", { d: formatDuration(-item.remaining_seconds) })
                      : t("sla.left", { d: formatDuration(item.remaining_seconds) }),
                  ),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("sup.noSla")),
  );
}

// -- KPIs -----------------------------------------------------------------------------------------

function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * A day typed in the page's format (2026/12/04, Dec 4, 2026), with the browser's calendar
 * behind the button beside it. `day` is the day as the API wants it, "YYYY-MM-DD", or "".
 */
class DateBox {
  constructor(input) {
    this.input = input;
    this.picker = input.parentElement.querySelector(".date-picker");
    this.day = "";
    input.addEventListener("change", () => this.read());
    this.picker.addEventListener("change", () => {
      if (this.picker.value) this.set(this.picker.value);
    });
    input.parentElement.querySelector(".date-pick").addEventListener("click", () => {
      this.picker.value = this.day;
      try {
        this.picker.showPicker();
      } catch {
        input.focus(); // no calendar in this browser: type the date
      }
    });
  }

  /** Take what was typed: a date becomes this box's day (and is written back in the page's format). */
  read() {
    const day = parseDateInput(this.input.value);
    this.input.setCustomValidity(day ? "" : t("sup.badDate"));
    if (day) this.set(day);
    return day;
  }

  set(day) {
    this.day = day;
    this.input.value = formatDateInput(day);
    this.input.setCustomValidity("");
  }

  relabel() {
    if (this.day && parseDateInput(this.input.value) === this.day) this.input.value = formatDateInput(this.day);
  }
}

const fromBox = new DateBox(period.elements.from);
const toBox = new DateBox(period.elements.to);

/** The last seven days, counted in the bridge's days rather than this browser's. */
async function defaultPeriod() {
  const today = new Date();
  fromBox.set(isoDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6)));
  toBox.set(isoDay(today));
  // A report counts days in the zone of the bridge's SLA calendar: near midnight that can
  // be another date than here. The default report says what "today" is over there.
  try {
    const report = await api("/api/reports/kpi");
    const day = String(report.period?.as_of || "").slice(0, 10);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return;
    const [y, m, d] = day.split("-").map(Number);
    toBox.set(day);
    fromBox.set(new Date(Date.UTC(y, m - 1, d - 6)).toISOString().slice(0, 10));
  } catch {
    // Keep this browser's dates; loadKpi will show what is wrong.
  }
}

async function loadKpi() {
  const from = fromBox.read();
  const to = toBox.read();
  if (!from || !to) {
    kpiError.textContent = t("sup.badDate");
    kpiError.hidden = false;
    return;
  }
  try {
    const report = await api(withQuery("/api/reports/kpi", { from, to }));
    lastReport = { report, from, to };
    kpiError.hidden = true;
    drawKpi();
  } catch (error) {
    kpiError.textContent = error.message;
    kpiError.hidden = false;
  }
}

const loadKpiSoon = debounce(loadKpi, 1000);

function drawKpi() {
  if (!lastReport) return;
  const { report, from, to } = lastReport;
  const set = (id, text) => {
    document.querySelector(`[data-testid=${id}]`).textContent = text;
  };
  set("kpi-tickets", String(report.tickets));
  set("kpi-open", String(report.open));
  set("kpi-resolved", String(report.resolved));
  set("kpi-frt", formatDurationShort(report.first_response_seconds?.mean));
  set("kpi-resolution", formatDurationShort(report.resolution_seconds?.mean));
  set("kpi-csat", report.csat?.mean ? report.csat.mean.toFixed(2) : "–");
  set("kpi-sla", formatPercent(report.sla?.resolution?.rate));
  set("kpi-fcr", formatPercent(report.first_contact_resolution?.rate));
  set("kpi-transferred", formatPercent(report.transfers?.tickets?.rate));
  set("kpi-callback-made", formatPercent(report.callbacks?.made?.rate));
  set("kpi-time-to-callback", formatDurationShort(report.callbacks?.time_to_callback_seconds?.p50));
  set("kpi-interrupted", String(report.volumes?.calls_by_outcome?.interrupted || 0));
  set("kpi-reopened", formatPercent(report.reopened?.rate));
  // In the zone the bridge counts its days in, like from and to: not moved to this browser's.
  const asOf = formatWallTime(report.period?.as_of);
  document.getElementById("as-of").textContent = asOf ? t("sup.asOf", { at: asOf }) : "";

  volumeChart(document.getElementById("chart-volume"), report.volumes?.by_day || {}, from, to);
  responseChart(document.getElementById("chart-response"), report.first_response_seconds, report.resolution_seconds);
  csatChart(document.getElementById("chart-csat"), report.csat);
  slaChart(document.getElementById("chart-sla"), report.sla);
  categoryChart(document.getElementById("chart-category"), report.volumes?.by_category_group);
  document.getElementById("note-volume").textContent = t("chart.total", { n: report.tickets });
  document.getElementById("note-csat").textContent = report.csat?.count
    ? t("chart.csatMean", { v: report.csat.mean.toFixed(2), n: report.csat.count })
    : "";
}

period.addEventListener("submit", (event) => {
  event.preventDefault();
  loadKpi();
});

// -- tickets ------------------------------------------------------------------------------------

function reloadList() {
  const q = search.value.trim();
  return list.load({ q, status: q ? [] : OPEN_STATUSES, limit: 50 });
}

const reloadListSoon = debounce(reloadList, 300);
search.addEventListener("input", debounce(reloadList, 250));
search.addEventListener("keydown", async (event) => {
  if (event.key === "Enter") reloadList();
  if (event.key === "ArrowDown") {
    event.preventDefault();
    // Typed fast: the rows on show may still answer the previous words.
    if (list.loadedQuery !== search.value.trim()) await reloadList();
    list.focusFirst();
  }
});

// -- live events --------------------------------------------------------------------------------

const loadLiveSoon = debounce(loadLive, 300);
const loadSlaSoon = debounce(loadSla, 300);
const refreshTicketSoon = debounce(() => view.refresh(), 300);

function onTicket(message) {
  loadLiveSoon();
  loadSlaSoon();
  loadKpiSoon();
  reloadListSoon();
  if (message.payload?.ticket?.number === view.number) refreshTicketSoon();
}

function onSla(message) {
  const s = message.payload || {};
  const number = s.ticket?.number;
  toast({
    title: t("toast.sla", { state: t(s.event === "sla_breached" ? "sla.breached" : "sla.warning"), number }),
    body: s.reason || s.ticket?.subject || "",
    kind: s.event === "sla_breached" ? "error" : "warning",
    actionLabel: number,
    onAction: () => openTicket(number),
  });
  loadSlaSoon();
  if (number === view.number) refreshTicketSoon();
}

function notify(message) {
  const n = message.payload || {};
  toast({
    title: n.title || n.kind || "",
    body: n.body || "",
    kind: String(n.kind || "").startsWith("sla") ? "warning" : "info",
    actionLabel: n.ticket_number || undefined,
    onAction: () => openTicket(n.ticket_number),
  });
}

function resync() {
  loadLive();
  loadSla();
  loadKpi();
  reloadList();
  view.refresh();
}

// -- keys ---------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.key === "/" && !typingIn(event.target) && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    search.focus();
    search.select();
  } else if (event.key === "Escape") {
    if (view.closeArticle()) return;
    view.close();
  }
});

// -- start --------------------------------------------------------------------------------------

async function main() {
  const { me } = await startPage({
    onLanguage: () => {
      fromBox.relabel();
      toBox.relabel();
      drawLive();
      drawSla();
      drawKpi();
      list.draw();
      view.relabel();
      live?.relabel();
    },
  });
  if (me.user.role === "agent") {
    window.location.replace("/agent"); // the KPIs and other teams are not theirs to see
    return;
  }
  await defaultPeriod();
  live = connectLive({
    screenpop: () => loadLiveSoon(),
    ticket: onTicket,
    sla: onSla,
    notifications: notify,
    callbacks: () => loadLiveSoon(),
    state: () => loadLiveSoon(), // an agent logged in or out of a queue, paused or unpaused
    lagged: () => {
      toast({ title: t("toast.lagged") });
      resync();
    },
    resync,
  });
  setInterval(loadLive, LIVE_EVERY_MS);
  setInterval(loadSla, SLA_EVERY_MS);
  setInterval(tick, 1000);
  await Promise.all([loadLive(), loadSla(), loadKpi(), reloadList()]);
}

main().catch(failed);
