// A list of tickets from GET /api/tickets: one focusable row per ticket, Enter opens it.

import { api, withQuery } from "./api.js";
import { categoryLabel, fill, h, priorityBadge, statusBadge, vipBadge } from "./dom.js";
import { formatTime, t } from "./i18n.js";

export const OPEN_STATUSES = ["new", "assigned", "in_progress", "waiting"];

export class TicketList {
  /**
   * @param {{list: HTMLElement, summary: HTMLElement, onOpen: (number: string) => void}} parts
   */
  constructor({ list, summary, onOpen }) {
    this.list = list;
    this.summary = summary;
    this.onOpen = onOpen;
    this.page = null;
    this.searching = false;
    this.loadedQuery = null; // the search words the rows on show answer
    this.current = null;
    this.seq = 0;
    list.addEventListener("keydown", (event) => this.arrowKeys(event));
  }

  /**
   * Load and draw.
   * @param {{q?: string, mine?: boolean, status?: string[], limit?: number}} query
   */
  async load({ q = "", mine = false, status = [], limit = 100 } = {}) {
    const seq = ++this.seq;
    if (!this.page) fill(this.summary, t("list.loading"));
    const params = q ? { q, limit } : { mine: mine || undefined, status, limit };
    try {
      const page = await api(withQuery("/api/tickets", params));
      if (seq !== this.seq) return; // a newer query answered first
      this.page = page;
      this.searching = Boolean(q);
      this.loadedQuery = q;
      this.draw();
    } catch (error) {
      if (seq === this.seq) fill(this.summary, h("span", { class: "error-text" }, t("error.load", { msg: error.message })));
    }
  }

  draw() {
    if (!this.page) return;
    const { items, total } = this.page;
    // Keep keyboard focus on the same ticket across a redraw (live updates redraw often).
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.number : null;
    fill(this.summary, this.searching ? t("list.results", { n: total }) : t("list.count", { n: total }));
    fill(
      this.list,
      items.length ? items.map((item) => this.row(item)) : h("p", { class: "empty muted" }, t("list.empty")),
    );
    if (focused) this.focusRow(focused);
  }

  row(item) {
    return h(
      "button",
      {
        type: "button",
        class: "ticket-row",
        "data-testid": "ticket-row",
        dataset: { number: item.number },
        "aria-current": item.number === this.current ? "true" : undefined,
        onclick: () => this.onOpen(item.number),
      },
      h(
        "span",
        { class: "row-top" },
        h("span", { class: "row-number" }, item.number),
        priorityBadge(item.priority),
        statusBadge(item.status),
        h("span", { class: "row-time", title: t("ticket.created", { at: formatTime(item.created_at) }) }, formatTime(item.updated_at)),
      ),
      h("span", { class: "row-subject" }, item.subject || "–"),
      h(
        "span",
        { class: "row-meta" },
        item.vip ? vipBadge() : null,
        h("span", {}, item.customer || item.caller_name || item.caller_number || ""),
        item.category ? h("span", { class: "muted" }, categoryLabel(item.category)) : null,
      ),
    );
  }

  /** Show which ticket is open. */
  markCurrent(number) {
    this.current = number;
    for (const row of this.list.querySelectorAll(".ticket-row")) {
      if (row.dataset.number === number) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
  }

  focusRow(number) {
    const row = [...this.list.querySelectorAll(".ticket-row")].find((r) => r.dataset.number === number);
    row?.focus();
    return Boolean(row);
  }

  focusFirst() {
    this.list.querySelector(".ticket-row")?.focus();
  }

  arrowKeys(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const rows = [...this.list.querySelectorAll(".ticket-row")];
    const at = rows.indexOf(document.activeElement);
    if (at < 0) return;
    event.preventDefault();
    const next = rows[Math.min(rows.length - 1, Math.max(0, at + (event.key === "ArrowDown" ? 1 : -1)))];
    next.focus();
  }
}
