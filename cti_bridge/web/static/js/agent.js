// The agent desk: the screen-pop of the call ringing or answered now, the agent's and the
// team's tickets, and the ticket being worked.

import { agentName, categoryLabel, crmDetails, debounce, fill, h, priorityBadge, statusBadge, typingIn, vipBadge } from "./dom.js";
import { formatTime, t } from "./i18n.js";
import { connectLive, failed, startPage, toast } from "./shell.js";
import { OPEN_STATUSES, TicketList } from "./ticket-list.js";
import { TicketView } from "./ticket-view.js";

const RECENT_POPS = 6;

const search = document.getElementById("search");
const statusFilter = document.getElementById("status-filter");
const scopeButtons = [...document.querySelectorAll("[data-scope]")];
const popSlot = document.getElementById("pop-slot");
const recentPops = document.getElementById("recent-pops");
const recentPopList = document.getElementById("recent-pop-list");
const announce = document.getElementById("announce");

let scope = "mine";
let live = null;
let pops = []; // newest first; pops[0] is on the card unless dismissed
let popShown = false;
let lastOpened = null; // focus goes back to its row when the ticket is closed

const list = new TicketList({
  list: document.getElementById("ticket-list"),
  summary: document.getElementById("list-summary"),
  onOpen: (number) => openTicket(number),
});

const view = new TicketView(document.getElementById("ticket-host"), {
  empty: () =>
    h(
      "div",
      { class: "placeholder" },
      h("p", {}, t("ticket.none")),
      h("p", { class: "muted" }, t("help.agent")),
    ),
  onClose: () => {
    list.markCurrent(null);
    if (!list.focusRow(lastOpened)) search.focus();
  },
  onChanged: () => reloadList(),
});

function openTicket(number) {
  lastOpened = number;
  list.markCurrent(number);
  view.open(number);
}

// -- the ticket list ------------------------------------------------------------------------

function fillStatusFilter() {
  const chosen = statusFilter.value || "open";
  fill(
    statusFilter,
    h("option", { value: "open" }, t("list.statusOpen")),
    h("option", { value: "all" }, t("list.statusAll")),
    ["new", "assigned", "in_progress", "waiting", "resolved", "closed"].map((s) => h("option", { value: s }, t(`status.${s}`))),
  );
  statusFilter.value = chosen;
}

function statuses() {
  const chosen = statusFilter.value;
  if (chosen === "open") return OPEN_STATUSES;
  if (chosen === "all") return [];
  return [chosen];
}

function reloadList() {
  return list.load({ q: search.value.trim(), mine: scope === "mine", status: statuses() });
}

const reloadSoon = debounce(reloadList, 300);

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
statusFilter.addEventListener("change", reloadList);
for (const button of scopeButtons) {
  button.addEventListener("click", () => {
    scope = button.dataset.scope;
    for (const b of scopeButtons) b.setAttribute("aria-pressed", String(b === button));
    reloadList();
  });
}

// -- screen-pops ----------------------------------------------------------------------------

/** The screen-pop message in one shape (see cti_bridge/screenpop/payload.py ScreenPop). */
function readPop(payload) {
  const call = payload.call || {};
  const ticket = payload.ticket || {};
  // `caller` is the bridge's best knowledge (customer record, caller ID, the caller's ticket);
  // a message from before it existed still has the call's and the ticket's own fields.
  const caller = payload.caller || {
    number: call.caller_number,
    name: payload.customer?.name || call.caller_name || ticket.caller_name,
  };
  const history = payload.history || {};
  return {
    raw: payload,
    event: payload.event || "ringing",
    reason: payload.reason || null,
    at: payload.event_at || payload.sent_at || new Date().toISOString(),
    callId: call.linkedid ? `${call.pbx}/${call.linkedid}` : `${Date.now()}`,
    caller: { number: caller.number || null, name: caller.name || null },
    queue: call.queue,
    customer: payload.customer || history.customer || null,
    ticket: payload.ticket || {},
    created: payload.ticket_created,
    recent: payload.recent_tickets || history.recent_tickets || (Array.isArray(history) ? history : []),
    open: payload.open_tickets || history.open_tickets || [],
    answered: Boolean(call.answered_at),
    crmStatus: payload.crm_status || "off",
    crm: payload.crm || null,
  };
}

function onScreenPop(message) {
  const pop = readPop(message.payload || message);
  if (pop.event === "cancelled") {
    withdrawPop(pop);
    return;
  }
  if (pop.event === "enriched") {
    onEnriched(pop);
    return;
  }
  // A ring can come after its call's answer (the pipeline pops an answer at once while the
  // ring waits in the call's lane for its ticket): an answered call never goes back to ringing.
  if (pop.event === "ringing" && pops.some((p) => p.callId === pop.callId && p.event === "answered")) return;
  // A call rings, then is answered: one entry per call, showing its latest state.
  pops = [pop, ...pops.filter((p) => p.callId !== pop.callId)].slice(0, RECENT_POPS);
  popShown = true;
  drawPops(true);
  announce.textContent = t("pop.arrived", { caller: callerText(pop.caller) });
  document.title = `☎ ${pop.caller.name || pop.caller.number || ""} · cti-bridge`;
  reloadSoon(); // the call may have made a ticket
}

/** The phone stopped ringing without this agent, or the caller was transferred away: the pop
 * leaves the desk (it stays in the recent list, marked withdrawn). */
function withdrawPop(pop) {
  const shown = pops.find((p) => p.callId === pop.callId);
  // An answered call stays on the desk unless it left this agent by a transfer.
  if (!shown || (shown.event === "answered" && pop.reason !== "transferred")) return;
  pops = pops.map((p) => (p.callId === pop.callId ? { ...p, event: "cancelled", reason: pop.reason } : p));
  if (pops[0].callId === pop.callId) popShown = false;
  drawPops();
  const reason = pop.reason ? t(`pop.reason.${pop.reason}`) : "";
  announce.textContent = t("pop.withdrawn", { caller: pop.caller.number || t("pop.unknownCaller"), reason });
  document.title = "cti-bridge";
}

/** The CRM's answer for a call already popped: its card is redrawn in place, with no new alert. */
function onEnriched(pop) {
  const earlier = pops.find((p) => p.callId === pop.callId);
  pop.event = earlier ? earlier.event : pop.answered ? "answered" : "ringing";
  pop.at = earlier ? earlier.at : pop.at;
  pop.reason = earlier ? earlier.reason : null;
  if (!earlier) {
    onScreenPop({ payload: { ...pop.raw, event: pop.event } });
    return;
  }
  pops = pops.map((p) => (p.callId === pop.callId ? pop : p));
  drawPops();
  reloadSoon(); // the CRM may have named the ticket
}

/** "Browser Caller · +14155570001": who is calling, in words, for the screen reader and toasts. */
function callerText(caller) {
  return [caller.name, caller.number].filter(Boolean).join(" · ") || t("pop.unknownCaller");
}

/** "Transferred by Agent Four (blind)": the caller comes from a colleague, who said what. */
function transferLine(transfers) {
  const last = transfers[transfers.length - 1];
  if (!last || !last.from_agent) return null;
  return h(
    "span",
    { class: "badge pop-transferred", "data-testid": "pop-transferred" },
    t("pop.transferredFrom", { agent: agentName(last.from_agent), kind: t(`transfer.${last.kind}`) }),
  );
}

function drawPops(fresh = false) {
  const pop = pops[0];
  if (popShown && pop) {
    const card = popCard(pop);
    if (fresh) card.classList.add("fresh");
    fill(popSlot, card);
  } else {
    fill(popSlot);
  }
  const older = popShown ? pops.slice(1) : pops;
  recentPops.hidden = older.length === 0;
  fill(
    recentPopList,
    older.map((p) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "recent-pop", onclick: () => openTicket(p.ticket.number) },
          h("span", { class: "muted" }, formatTime(p.at)),
          h("span", { class: "mono" }, p.caller.number || t("pop.withheld")),
          h("span", {}, p.caller.name || p.crm?.name || ""),
          h("span", { class: "row-number" }, p.ticket.number || ""),
        ),
      ),
    ),
  );
}

function popCard(pop) {
  const ticket = pop.ticket;
  const customer = pop.customer;
  const openCount = pop.open.length;
  return h(
    "section",
    { class: `pop pop-${pop.event}`, "data-testid": "screenpop", dataset: { event: pop.event }, "aria-labelledby": "pop-title" },
    h(
      "header",
      { class: "pop-head" },
      h("span", { class: `badge pop-event pop-event-${pop.event}` }, t(`pop.${pop.event}`)),
      h("h2", { id: "pop-title" }, t("pop.title")),
      h("time", { class: "muted" }, formatTime(pop.at)),
      h("button", { type: "button", class: "btn-icon", "aria-label": t("pop.dismiss"), title: "Esc", onclick: dismissPop }, "×"),
    ),
    h(
      "div",
      { class: "pop-caller", "data-testid": "pop-caller" },
      // The number first, as agents read it back; a withheld one says so, the name stays.
      h("span", { class: "pop-number" }, pop.caller.number || (pop.caller.name ? t("pop.withheld") : t("pop.unknownCaller"))),
      pop.caller.name ? h("span", { class: "pop-caller-name", "data-testid": "pop-caller-name" }, pop.caller.name) : null,
      pop.queue ? h("span", { class: "muted" }, t("pop.queue", { queue: pop.queue })) : null,
      transferLine(pop.raw?.transfers || []),
    ),
    h(
      "div",
      { class: "pop-customer", "data-testid": "pop-customer" },
      customer
        ? [
            h("strong", {}, customer.name),
            customer.vip ? vipBadge() : null,
            customer.tier && customer.tier !== "standard" ? h("span", { class: "badge tier" }, customer.tier) : null,
            customer.company ? h("span", { class: "pop-company" }, customer.company) : null,
          ]
        : pop.crm?.name
          ? [h("strong", {}, pop.crm.name), h("span", { class: "badge crm" }, t("crm.tag"))]
          : h("span", { class: "muted" }, t("pop.notCustomer")),
    ),
    popCrm(pop),
    h(
      "div",
      { class: "pop-ticket-box" },
      h(
        "div",
        { class: "pop-ticket-line" },
        ticket.priority ? priorityBadge(ticket.priority) : null,
        ticket.status ? statusBadge(ticket.status) : null,
        h("span", { class: "muted" }, pop.created === false ? t("pop.existingTicket") : pop.created ? t("pop.newTicket") : ""),
      ),
      h("div", { class: "pop-subject" }, ticket.subject || ""),
      ticket.category ? h("div", { class: "muted" }, categoryLabel(ticket.category)) : null,
      h(
        "button",
        { type: "button", class: "btn btn-primary pop-open", "data-testid": "pop-ticket", onclick: () => openTicket(ticket.number) },
        t("pop.open", { number: ticket.number || "" }),
      ),
    ),
    h(
      "div",
      { class: "pop-history", "data-testid": "pop-history" },
      h(
        "h3",
        { class: "section-title" },
        t("pop.history"),
        openCount ? h("span", { class: "badge" }, t("pop.openTickets", { n: openCount })) : null,
      ),
      pop.recent.length
        ? h(
            "ul",
            {},
            pop.recent.map((item) =>
              h(
                "li",
                {},
                h(
                  "button",
                  { type: "button", class: "history-ticket", dataset: { number: item.number }, onclick: () => openTicket(item.number) },
                  h("span", { class: "row-number" }, item.number),
                  statusBadge(item.status),
                  h("span", { class: "history-subject" }, item.subject || ""),
                  h("span", { class: "muted" }, formatTime(item.created_at)),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("pop.noHistory")),
    ),
  );
}

/** The CRM's part of the card: its answer, or where the lookup is (nothing when there is no CRM). */
function popCrm(pop) {
  if (pop.crmStatus === "off") return null;
  const attrs = { class: "pop-crm", "data-testid": "pop-crm", dataset: { status: pop.crmStatus } };
  if (pop.crmStatus !== "found" || !pop.crm) return h("div", attrs, h("span", { class: "muted" }, t(`crm.${pop.crmStatus}`)));
  return h("div", attrs, h("span", { class: "section-title" }, t("crm.title")), crmDetails(pop.crm, { orders: 3 }));
}

function dismissPop() {
  popShown = false;
  document.title = "cti-bridge";
  drawPops();
}

// -- live events ----------------------------------------------------------------------------

const refreshTicketSoon = debounce(() => view.refresh(), 300);

function onTicket(message) {
  reloadSoon();
  if (message.payload?.ticket?.number === view.number) refreshTicketSoon();
}

function notify(message) {
  const n = message.payload || {};
  toast({
    title: n.title || n.kind || "",
    body: n.body || "",
    kind: String(n.kind || "").startsWith("sla") ? "warning" : "info",
    actionLabel: n.ticket_number ? n.ticket_number : undefined,
    onAction: () => openTicket(n.ticket_number),
    timeout: 20000,
  });
}

function callback(message) {
  const c = message.payload || {};
  const number = c.ticket?.number;
  toast({
    title: t("toast.callback", { number: number || "" }),
    body: [c.caller?.name || c.customer?.name, c.call?.caller_number, c.explanation].filter(Boolean).join(" · "),
    kind: "warning",
    actionLabel: number,
    onAction: () => openTicket(number),
    timeout: 30000,
  });
  reloadSoon();
}

function slaNotice(message) {
  const s = message.payload || {};
  const number = s.ticket?.number;
  toast({
    title: t("toast.sla", { state: t(s.event === "sla_breached" ? "sla.breached" : "sla.warning"), number }),
    body: s.ticket?.subject || "",
    kind: s.event === "sla_breached" ? "error" : "warning",
    actionLabel: number,
    onAction: () => openTicket(number),
  });
  onTicket(message);
}

function resync() {
  reloadList();
  view.refresh();
}

// -- keys -------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.key === "/" && !typingIn(event.target) && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    search.focus();
    search.select();
  } else if (event.key === "Escape") {
    if (view.closeArticle()) return;
    if (view.isOpen) view.close();
    else if (popShown) dismissPop();
  }
});

// -- start ------------------------------------------------------------------------------------

async function main() {
  const { me } = await startPage({
    onLanguage: () => {
      fillStatusFilter();
      list.draw();
      drawPops();
      if (view.isOpen) view.relabel();
      else view.showEmpty();
      live?.relabel();
    },
  });
  if (!me.user.agent_id) {
    // Someone without calls of their own (a supervisor looking in) starts with the team.
    scope = "team";
    for (const b of scopeButtons) b.setAttribute("aria-pressed", String(b.dataset.scope === "team"));
  }
  fillStatusFilter();
  view.showEmpty();
  live = connectLive({
    screenpop: onScreenPop,
    ticket: onTicket,
    sla: slaNotice,
    notifications: notify,
    callbacks: callback,
    lagged: () => {
      toast({ title: t("toast.lagged") });
      resync();
    },
    resync,
  });
  await reloadList();
}

main().catch(failed);
