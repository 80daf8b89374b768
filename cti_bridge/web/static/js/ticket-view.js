// One ticket, worked in full: fields, state changes, comments, recordings with their
// transcripts, knowledge-base suggestions, SLA and history. Shared by both pages.

import { api } from "./api.js";
import {
  agentName,
  categoryLabel,
  crmDetails,
  fill,
  getMeta,
  h,
  priorityBadge,
  priorityName,
  statusBadge,
  vipBadge,
} from "./dom.js";
import { currentLanguage, formatDateTime, formatDuration, formatTime, label, t } from "./i18n.js";

// These are columns of the ticket itself; every other field lives in `detail.fields`.
const COLUMN_FIELDS = new Set(["subject", "category", "description"]);
// The resolution is written in the close box, where it is used.
const NOT_IN_FORM = new Set(["resolution"]);
// Transitions offered as plain buttons in the action bar, in the order work goes.
const BAR_ACTIONS = ["start", "resume", "wait", "assign", "close", "reopen"];

export class TicketView {
  /**
   * @param {HTMLElement} host where the view is drawn
   * @param {{onClose?: () => void, onChanged?: (number: string) => void, empty?: () => Node}} hooks
   */
  constructor(host, { onClose = () => {}, onChanged = () => {}, empty = () => null } = {}) {
    this.host = host;
    this.onClose = onClose;
    this.onChanged = onChanged;
    this.empty = empty;
    this.number = null;
    this.detail = null;
    this.formDirty = false;
    this.recordingsKey = "";
    this.loadSeq = 0;
    this.showEmpty();
  }

  get isOpen() {
    return this.number !== null;
  }

  showEmpty() {
    fill(this.host, this.empty());
  }

  /** Show ticket `number` (again, if it is open already: then only refreshed). */
  async open(number) {
    if (number === this.number && this.detail) {
      await this.refresh();
      this.heading?.focus();
      return;
    }
    this.number = number;
    this.detail = null;
    this.formDirty = false;
    this.recordingsKey = "";
    this.build(number);
    const seq = ++this.loadSeq;
    try {
      const detail = await api(`/api/tickets/${encodeURIComponent(number)}`);
      if (seq !== this.loadSeq || number !== this.number) return; // another ticket was opened meanwhile
      this.render(detail);
      this.loadSuggestions();
    } catch (error) {
      if (seq === this.loadSeq) this.showError(error.message);
    }
    this.heading?.focus();
  }

  close() {
    if (!this.isOpen) return;
    for (const audio of this.host.querySelectorAll("audio")) audio.pause();
    this.number = null;
    this.detail = null;
    this.loadSeq++;
    this.showEmpty();
    this.onClose();
  }

  /** Reload from the API: after our own change, or when a live event says it changed. */
  async refresh() {
    if (!this.isOpen) return;
    const number = this.number;
    const seq = ++this.loadSeq;
    try {
      const detail = await api(`/api/tickets/${encodeURIComponent(number)}`);
      if (seq === this.loadSeq && number === this.number) this.render(detail);
    } catch (error) {
      if (number === this.number) this.showError(error.message);
    }
  }

  /** Redraw in the new language, keeping whatever the user has typed. */
  relabel() {
    if (!this.detail) return;
    const typed = this.formDirty ? this.readForm() : null;
    const resolution = this.resolutionInput.value;
    const comment = this.commentInput.value;
    const number = this.number;
    const detail = this.detail;
    const focus = focusKey(this.root);
    this.build(number);
    this.recordingsKey = "";
    this.render(detail, typed);
    if (focus) this.root.querySelector(focus)?.focus({ preventScroll: true });
    this.formDirty = typed !== null;
    this.resolutionInput.value = resolution;
    this.commentInput.value = comment;
    this.loadSuggestions();
  }

  // -- the skeleton: built once per opened ticket, so typing survives refreshes ------------

  build(number) {
    this.heading = h("h2", { class: "ticket-title", tabindex: "-1", id: "ticket-heading" }, number);
    this.badges = h("div", { class: "ticket-badges" });
    this.slaBadges = h("div", { class: "sla-badges" });
    this.error = h("p", { class: "error-text ticket-error", "data-testid": "ticket-error", role: "alert", hidden: true });
    this.notice = h("p", { class: "notice", role: "status" });
    this.actions = h("div", { class: "action-bar", "aria-label": t("ticket.actions"), role: "group" });
    this.form = h("form", { class: "fields-form", "data-testid": "ticket-fields", novalidate: true });
    this.form.addEventListener("input", () => {
      this.formDirty = true;
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveFields();
    });
    this.resolutionInput = h("textarea", {
      id: "ticket-resolution",
      "data-testid": "resolution",
      rows: "3",
      maxlength: "10000",
    });
    this.resolutionDirty = false;
    this.resolutionInput.addEventListener("input", () => {
      this.resolutionDirty = true;
    });
    this.closeButtons = h("div", { class: "button-row" });
    this.closeBox = h(
      "section",
      { class: "panel-section close-box" },
      h("label", { class: "section-title", for: "ticket-resolution" }, t("ticket.resolution")),
      this.resolutionInput,
      this.closeButtons,
    );
    this.commentInput = h("textarea", {
      id: "ticket-comment",
      "data-testid": "comment-text",
      rows: "2",
      maxlength: "20000",
      placeholder: t("ticket.commentPlaceholder"),
    });
    this.commentVisible = h("input", { type: "checkbox", id: "ticket-comment-visible" });
    const commentSend = h(
      "button",
      { type: "button", class: "btn", "data-testid": "comment-send", onclick: () => this.sendComment() },
      t("ticket.commentSend"),
    );
    // Ctrl+Enter sends, as in chat tools agents know.
    this.commentInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) this.sendComment();
    });
    const commentBox = h(
      "section",
      { class: "panel-section comment-box" },
      h("label", { class: "section-title", for: "ticket-comment" }, t("ticket.comment")),
      this.commentInput,
      h(
        "div",
        { class: "button-row" },
        h("label", { class: "check" }, this.commentVisible, t("ticket.customerVisible")),
        commentSend,
      ),
    );
    this.history = h("ol", { class: "history", "data-testid": "ticket-history" });
    this.customer = h("div", { class: "side-block" });
    this.crm = h("div", { class: "side-block ticket-crm", "data-testid": "ticket-crm" });
    this.crmSection = h("section", { class: "side-section", hidden: true }, h("h3", { class: "section-title" }, t("crm.title")), this.crm);
    this.sla = h("div", { class: "side-block" });
    this.recordings = h("div", { class: "recordings" });
    this.kbList = h("div", { class: "kb-list-box" });
    this.article = h("div", { class: "kb-article", hidden: true });
    this.kb = h("div", { class: "kb", "data-testid": "kb-suggestions" }, this.kbList, this.article);
    this.calls = h("div", { class: "side-block" });

    this.root = h(
      "section",
      {
        class: "ticket",
        "data-testid": "ticket-view",
        "data-number": number,
        "data-status": "",
        "aria-labelledby": "ticket-heading",
      },
      h(
        "header",
        { class: "ticket-head" },
        h("div", { class: "ticket-head-main" }, this.heading, this.badges),
        this.slaBadges,
        h(
          "button",
          { type: "button", class: "btn-icon", "aria-label": t("ticket.close"), title: "Esc", onclick: () => this.close() },
          "×",
        ),
      ),
      h(
        "div",
        { class: "ticket-body" },
        h(
          "div",
          { class: "ticket-main" },
          this.actions,
          this.error,
          this.notice,
          h("section", { class: "panel-section" }, h("h3", { class: "section-title" }, t("ticket.fields")), this.form),
          this.closeBox,
          commentBox,
          h("section", { class: "panel-section" }, h("h3", { class: "section-title" }, t("ticket.history")), this.history),
        ),
        h(
          "aside",
          { class: "ticket-side" },
          h("section", { class: "side-section" }, h("h3", { class: "section-title" }, t("ticket.customer")), this.customer),
          this.crmSection,
          h("section", { class: "side-section" }, h("h3", { class: "section-title" }, t("ticket.sla")), this.sla),
          h(
            "section",
            { class: "side-section" },
            h("h3", { class: "section-title" }, t("ticket.recordings")),
            this.recordings,
          ),
          h("section", { class: "side-section" }, h("h3", { class: "section-title" }, t("ticket.kb")), this.kb),
          h("section", { class: "side-section" }, h("h3", { class: "section-title" }, t("ticket.calls")), this.calls),
        ),
      ),
    );
    this.actions.append(h("span", { class: "muted" }, t("ticket.loading")));
    fill(this.host, this.root);
  }

  // -- drawing -------------------------------------------------------------------------------

  render(detail, typed = null) {
    // Redrawing replaces buttons and inputs: keep the keyboard where it was.
    const focus = focusKey(this.root);
    this.draw(detail, typed);
    if (focus && !this.root.contains(document.activeElement)) {
      (this.root.querySelector(focus) || this.heading).focus({ preventScroll: true });
    }
  }

  draw(detail, typed) {
    this.detail = detail;
    this.root.dataset.status = detail.status;
    this.root.dataset.number = detail.number;
    fill(this.heading, h("span", { class: "ticket-number" }, detail.number), " ", detail.subject || "");
    fill(
      this.badges,
      statusBadge(detail.status),
      priorityBadge(detail.priority),
      detail.customer?.vip ? vipBadge() : null,
      h("span", { class: "meta-item" }, `${t("ticket.assignee")}: ${agentName(detail.assignee)}`),
      h("span", { class: "meta-item" }, t("ticket.created", { at: formatDateTime(detail.created_at) })),
      detail.category ? h("span", { class: "meta-item" }, categoryLabel(detail.category)) : null,
    );
    fill(this.slaBadges, (detail.sla || []).map((target) => slaBadge(target)));
    this.renderActions(detail);
    if (!this.formDirty || typed) this.renderForm(detail, typed);
    this.renderCloseBox(detail);
    this.renderHistory(detail);
    this.renderCustomer(detail);
    this.renderCrm(detail);
    this.renderSla(detail);
    this.renderRecordings(detail);
    this.renderCalls(detail);
  }

  renderActions(detail) {
    const allowed = new Set(detail.allowed || []);
    const reason = this.actions.querySelector("input[name=reason]")?.value || "";
    const parts = [];
    for (const action of BAR_ACTIONS.filter((a) => allowed.has(a))) {
      if (action === "wait") {
        const on = h(
          "select",
          { name: "wait-on", "aria-label": t("ticket.waitOn") },
          h("option", { value: "customer" }, t("wait.customer")),
          h("option", { value: "third_party" }, t("wait.third_party")),
        );
        parts.push(
          h("span", { class: "joined" }, on, this.actionButton("wait", () => ({ on: on.value }))),
        );
      } else if (action === "assign") {
        const meta = getMeta();
        const to = h(
          "select",
          { name: "assignee", "aria-label": t("ticket.assignTo") },
          meta.agents.map((a) => h("option", { value: a.id, selected: a.id === detail.assignee }, a.name)),
        );
        parts.push(h("span", { class: "joined" }, to, this.actionButton("assign", () => ({ assignee: to.value }))));
      } else {
        parts.push(this.actionButton(action, () => ({}), action === "start" || action === "resume"));
      }
    }
    if (getMeta().can_dial && detail.caller_number && detail.status !== "closed") {
      parts.push(
        h(
          "button",
          {
            type: "button",
            class: "btn btn-call",
            "data-testid": "dial",
            title: t("ticket.dialHint", { number: detail.caller_number }),
            onclick: () => this.dial(),
          },
          t("ticket.dial"),
        ),
      );
    }
    const reasonInput = h("input", {
      name: "reason",
      class: "reason",
      maxlength: "1000",
      placeholder: t("ticket.reason"),
      "aria-label": t("ticket.reason"),
      value: reason,
    });
    fill(this.actions, parts, reasonInput);
  }

  /** Click-to-dial: the agent's phone rings, then the customer's; the call joins this ticket. */
  async dial() {
    const number = this.detail.number;
    try {
      await api(`/api/tickets/${encodeURIComponent(number)}/dial`, { method: "POST", body: {} });
      this.showNotice(t("ticket.dialing", { number: this.detail.caller_number }));
    } catch (error) {
      this.showError(error.message);
    }
  }

  actionButton(action, extra, primary = false) {
    return h(
      "button",
      {
        type: "button",
        class: primary ? "btn btn-primary" : "btn",
        dataset: { action },
        onclick: () => this.transition({ action, ...extra() }),
      },
      t(`action.${action}`),
    );
  }

  renderForm(detail, typed) {
    const meta = getMeta();
    const specs = meta.fields.filter((spec) => !NOT_IN_FORM.has(spec.name));
    // What an agent fills in during the call first; the rest below.
    const first = ["subject", "category", "urgency", "description"];
    const order = (spec) => {
      const at = first.indexOf(spec.name);
      if (at >= 0) return at;
      return spec.type === "multi_choice" || spec.type === "long_text" ? 6 : 5;
    };
    specs.sort((a, b) => order(a) - order(b));
    const valueOf = (name) => (typed && name in typed ? typed[name] : fieldValue(detail, name));
    const controls = [];
    for (const spec of specs) {
      controls.push(fieldControl(spec, valueOf(spec.name)));
      if (spec.name === "category") {
        controls.push(prioritySelect(typed?.__priority ?? detail.priority, detail.allowed?.includes("change_priority")));
      }
    }
    const save = h(
      "button",
      { type: "submit", class: "btn btn-primary", "data-testid": "save-fields", disabled: detail.status === "closed" },
      t("ticket.save"),
    );
    fill(this.form, h("div", { class: "form-grid" }, controls), h("div", { class: "button-row" }, save));
    if (detail.status === "closed") {
      for (const el of this.form.elements) el.disabled = true; // reopen first
    }
  }

  renderCloseBox(detail) {
    const closed = detail.status === "closed";
    this.closeBox.hidden = closed;
    if (!this.resolutionDirty) this.resolutionInput.value = detail.fields?.resolution || "";
    const allowed = new Set(detail.allowed || []);
    fill(
      this.closeButtons,
      allowed.has("resolve")
        ? h(
            "button",
            { type: "button", class: "btn", dataset: { action: "resolve" }, onclick: () => this.resolve() },
            t("action.resolve"),
          )
        : null,
      closed
        ? null
        : h(
            "button",
            {
              type: "button",
              class: "btn btn-primary",
              "data-testid": "close-with-resolution",
              onclick: () => this.closeWithResolution(),
            },
            t("ticket.closeWithResolution"),
          ),
    );
  }

  renderHistory(detail) {
    const entries = [...(detail.history || [])].reverse(); // newest first: what just happened
    fill(this.history, entries.map((entry) => historyItem(entry)));
  }

  renderCustomer(detail) {
    const c = detail.customer;
    if (!c) {
      fill(
        this.customer,
        h("p", { class: "muted" }, t("ticket.noCustomer")),
        detail.caller_number ? h("p", { class: "mono" }, detail.caller_number, detail.caller_name ? ` · ${detail.caller_name}` : "") : null,
      );
      return;
    }
    fill(
      this.customer,
      h("p", { class: "customer-name" }, c.name, " ", c.vip ? vipBadge() : null, c.tier && c.tier !== "standard" ? h("span", { class: "badge tier" }, c.tier) : null),
      c.company ? h("p", {}, c.company) : null,
      detail.caller_number ? h("p", { class: "mono" }, detail.caller_number) : null,
      c.email ? h("p", { class: "muted" }, c.email) : null,
      c.notes ? h("p", { class: "notes" }, c.notes) : null,
    );
  }

  /** What the site's CRM said about the caller, kept with the ticket (none: no CRM, or not asked). */
  renderCrm(detail) {
    const crm = detail.crm;
    this.crmSection.hidden = !crm;
    if (!crm) return fill(this.crm);
    this.crm.dataset.found = String(crm.found);
    fill(
      this.crm,
      crm.found && crm.profile ? crmDetails(crm.profile) : h("p", { class: "muted" }, t("crm.not_found")),
      h("p", { class: "muted" }, t("crm.asOf", { at: formatDateTime(crm.fetched_at) })),
    );
  }

  renderSla(detail) {
    const targets = detail.sla || [];
    fill(
      this.sla,
      targets.length
        ? h(
            "ul",
            { class: "sla-list" },
            targets.map((target) =>
              h(
                "li",
                {},
                h("span", {}, t(`sla.${target.target}`)),
                slaBadge(target, false),
                h("span", { class: "muted" }, slaTiming(target)),
              ),
            ),
          )
        : h("p", { class: "muted" }, "–"),
    );
  }

  renderRecordings(detail) {
    const recordings = detail.recordings || [];
    const transcripts = detail.transcripts || [];
    // Redrawn only when something changed: a redraw would stop the audio being played.
    const key = JSON.stringify([
      recordings.map((r) => [r.id, r.status, r.transcription]),
      transcripts.map((tr) => tr.recording_id),
      currentLanguage(),
    ]);
    if (key === this.recordingsKey) return;
    this.recordingsKey = key;
    if (!recordings.length) {
      fill(this.recordings, h("p", { class: "muted" }, t("ticket.noRecordings")));
      return;
    }
    fill(
      this.recordings,
      recordings.map((recording) =>
        recordingBlock(recording, transcripts.find((tr) => tr.recording_id === recording.id)),
      ),
    );
  }

  renderCalls(detail) {
    const calls = detail.calls || [];
    fill(
      this.calls,
      calls.length
        ? h(
            "ul",
            { class: "call-list" },
            calls.map((call) =>
              h(
                "li",
                {},
                h("span", { class: "mono" }, call.caller_number || "–"),
                h("span", {}, t(`call.${call.direction}`)),
                call.queue ? h("span", { class: "muted" }, call.queue) : null,
                call.agent_id ? h("span", {}, agentName(call.agent_id)) : null,
                h("span", { class: "muted" }, formatTime(call.started_at)),
                call.talk_seconds !== null && call.talk_seconds !== undefined
                  ? h("span", { class: "muted" }, t("call.talk", { d: formatDuration(call.talk_seconds) }))
                  : null,
                call.outcome ? h("span", { class: "badge outcome" }, t(`outcome.${call.outcome}`)) : null,
              ),
            ),
          )
        : h("p", { class: "muted" }, t("ticket.noCalls")),
    );
  }

  // -- knowledge base ------------------------------------------------------------------------

  async loadSuggestions() {
    const number = this.number;
    this.article.hidden = true;
    this.kbList.hidden = false;
    try {
      const suggestions = await api(`/api/tickets/${encodeURIComponent(number)}/suggestions`);
      if (number !== this.number) return;
      fill(
        this.kbList,
        suggestions.length
          ? h(
              "ul",
              { class: "kb-list" },
              suggestions.map((s) =>
                h(
                  "li",
                  {},
                  h(
                    "button",
                    { type: "button", class: "kb-item", dataset: { article: s.id }, onclick: () => this.showArticle(s.id) },
                    h("strong", {}, s.title),
                    h("span", { class: "kb-snippet" }, marked(s.snippet)),
                    s.category ? h("span", { class: "muted" }, categoryLabel(s.category)) : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("ticket.noKb")),
      );
    } catch (error) {
      if (number === this.number) fill(this.kbList, h("p", { class: "error-text" }, error.message));
    }
  }

  async showArticle(id) {
    try {
      const article = await api(`/api/kb/articles/${id}`);
      const back = h(
        "button",
        {
          type: "button",
          class: "btn btn-small",
          onclick: () => {
            this.article.hidden = true;
            this.kbList.hidden = false;
            this.kbList.querySelector(`[data-article="${id}"]`)?.focus();
          },
        },
        `← ${t("ticket.kbBack")}`,
      );
      fill(
        this.article,
        back,
        h("h4", { tabindex: "-1" }, article.title),
        article.category ? h("p", { class: "muted" }, categoryLabel(article.category)) : null,
        h("div", { class: "kb-body" }, article.body),
        article.tags?.length ? h("p", { class: "tags" }, article.tags.map((tag) => h("span", { class: "tag" }, tag))) : null,
      );
      this.kbList.hidden = true;
      this.article.hidden = false;
      this.article.querySelector("h4").focus();
    } catch (error) {
      this.showError(error.message);
    }
  }

  /** Esc first leaves an open article; true when it did. */
  closeArticle() {
    if (!this.article || this.article.hidden) return false;
    this.article.querySelector("button")?.click();
    return true;
  }

  // -- changes -------------------------------------------------------------------------------

  readForm() {
    const values = {};
    for (const spec of getMeta().fields) {
      if (NOT_IN_FORM.has(spec.name)) continue;
      values[spec.name] = readControl(this.form, spec);
    }
    values.__priority = this.form.elements.priority?.value;
    return values;
  }

  async saveFields() {
    const detail = this.detail;
    if (!detail) return;
    const typed = this.readForm();
    const changes = {};
    for (const spec of getMeta().fields) {
      if (NOT_IN_FORM.has(spec.name)) continue;
      const before = normalise(spec, fieldValue(detail, spec.name));
      if (JSON.stringify(before) !== JSON.stringify(typed[spec.name])) changes[spec.name] = typed[spec.name];
    }
    const priority = typed.__priority;
    const priorityChanged = priority && priority !== detail.priority;
    if (!Object.keys(changes).length && !priorityChanged) {
      this.showNotice(t("ticket.noChanges"));
      return;
    }
    await this.change(async () => {
      if (Object.keys(changes).length) {
        await api(`/api/tickets/${encodeURIComponent(detail.number)}`, { method: "PATCH", body: { fields: changes } });
      }
      if (priorityChanged) {
        await api(`/api/tickets/${encodeURIComponent(detail.number)}/transitions`, {
          method: "POST",
          body: { action: "priority", priority },
        });
      }
      this.formDirty = false;
      return t("ticket.saved");
    });
    this.loadSuggestions(); // new words, perhaps other articles
  }

  async transition(body) {
    const reason = this.actions.querySelector("input[name=reason]")?.value.trim();
    if (reason) body.reason = reason;
    await this.change(async () => {
      const result = await api(`/api/tickets/${encodeURIComponent(this.number)}/transitions`, { method: "POST", body });
      this.root.dataset.status = result.status;
      const input = this.actions.querySelector("input[name=reason]");
      if (input) input.value = "";
      return t("ticket.done");
    });
  }

  async resolve() {
    const resolution = this.resolutionInput.value.trim();
    if (!resolution) return this.needResolution();
    await this.transition({ action: "resolve", resolution });
    this.resolutionDirty = false;
  }

  async closeWithResolution() {
    const resolution = this.resolutionInput.value.trim();
    if (!resolution && this.detail?.status !== "resolved") return this.needResolution();
    // The API walks a ticket still being worked through start and resolve before closing.
    await this.transition({ action: "close", resolution: resolution || undefined });
    this.resolutionDirty = false;
  }

  needResolution() {
    this.showError(t("ticket.needResolution"));
    this.resolutionInput.focus();
  }

  async sendComment() {
    const text = this.commentInput.value.trim();
    if (!text) {
      this.commentInput.focus();
      return;
    }
    await this.change(async () => {
      await api(`/api/tickets/${encodeURIComponent(this.number)}/comments`, {
        method: "POST",
        body: { text, customer_visible: this.commentVisible.checked },
      });
      this.commentInput.value = "";
      this.commentVisible.checked = false;
      return t("ticket.done");
    });
  }

  /** Run one change: its error next to the form, else reload the ticket and tell the page. */
  async change(work) {
    if (this.busy) return; // a double click sends one change, not two
    this.busy = true;
    this.clearMessages();
    const buttons = [...this.root.querySelectorAll("button")];
    for (const b of buttons) b.setAttribute("aria-busy", "true");
    try {
      const message = await work();
      await this.refresh();
      this.showNotice(message);
      this.onChanged(this.number);
    } catch (error) {
      this.showError(error.message);
    } finally {
      for (const b of buttons) b.removeAttribute("aria-busy");
      this.busy = false;
    }
  }

  clearMessages() {
    if (!this.error) return;
    this.error.hidden = true;
    this.error.textContent = "";
    this.notice.textContent = "";
  }

  showError(message) {
    if (!this.error) return;
    this.notice.textContent = "";
    this.error.textContent = message;
    this.error.hidden = false;
    this.error.scrollIntoView({ block: "nearest" });
  }

  showNotice(message) {
    if (!this.notice) return;
    this.notice.textContent = message;
    const shown = message;
    setTimeout(() => {
      if (this.notice.textContent === shown) this.notice.textContent = "";
    }, 4000);
  }
}

/** A selector that finds the focused control again after a redraw, if it is in `root`. */
function focusKey(root) {
  const el = document.activeElement;
  if (!el || !root.contains(el) || el === root) return null;
  if (el.dataset.action) return `[data-action="${el.dataset.action}"]`;
  if (el.dataset.testid) return `[data-testid="${el.dataset.testid}"]`;
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.name) return `[name="${CSS.escape(el.name)}"]`;
  return null;
}

// -- fields ---------------------------------------------------------------------------------

function fieldValue(detail, name) {
  return COLUMN_FIELDS.has(name) ? detail[name] : detail.fields?.[name];
}

/** A stored value in the shape `readControl` gives, so unchanged fields compare equal. */
function normalise(spec, value) {
  if (spec.type === "boolean") return Boolean(value);
  if (value === undefined || value === null || value === "") return null;
  if (spec.type === "multi_choice") {
    const list = Array.isArray(value) ? value : [value];
    return list.length ? list : null;
  }
  if (spec.type === "number" || spec.type === "integer") return Number(value);
  return typeof value === "string" ? value.trim() || null : value;
}

function readControl(form, spec) {
  const el = form.elements[spec.name];
  switch (spec.type) {
    case "boolean":
      return el.checked;
    case "multi_choice": {
      const picked = [...form.querySelectorAll(`input[name="${spec.name}"]:checked`)].map((box) => box.value);
      return picked.length ? picked : null;
    }
    case "number":
    case "integer":
      return el.value === "" ? null : Number(el.value);
    case "category": {
      // Down to the first empty level: a path has no gaps.
      const names = [];
      for (const box of form.querySelectorAll(".category-level")) {
        const name = box.hidden ? "" : box.value.trim();
        if (!name) break;
        names.push(name);
      }
      return names.length ? names.join("/") : null;
    }
    default:
      return el.value.trim() || null;
  }
}

function fieldControl(spec, value) {
  const id = `field-${spec.name}`;
  const title = label(spec);
  const wide = spec.type === "long_text" || spec.name === "subject" || spec.type === "category" || spec.type === "multi_choice";
  const wrap = (control, labelFor = id) =>
    h("div", { class: wide ? "field wide" : "field" }, h("label", { for: labelFor }, title), control);
  switch (spec.type) {
    case "long_text":
      return wrap(h("textarea", { id, name: spec.name, rows: spec.name === "description" ? "4" : "2", maxlength: spec.max_length, value: value ?? "" }));
    case "category":
      return categoryControl(spec, value);
    case "priority":
      return wrap(
        h(
          "select",
          { id, name: spec.name, value: value ?? "" },
          h("option", { value: "" }, "–"),
          getMeta().priorities.map((p) => h("option", { value: p.code }, `${p.code} ${label(p)}`)),
        ),
      );
    case "choice":
      return wrap(
        h(
          "select",
          { id, name: spec.name, value: value ?? "" },
          h("option", { value: "" }, "–"),
          spec.choices.map((choice) => h("option", { value: choice }, choice)),
        ),
      );
    case "multi_choice": {
      const picked = new Set(Array.isArray(value) ? value : value ? [value] : []);
      return h(
        "fieldset",
        { class: "field wide choices" },
        h("legend", {}, title),
        spec.choices.map((choice) =>
          h("label", { class: "check" }, h("input", { type: "checkbox", name: spec.name, value: choice, checked: picked.has(choice) }), choice),
        ),
      );
    }
    case "boolean":
      return h(
        "div",
        { class: "field" },
        h("label", { class: "check" }, h("input", { type: "checkbox", id, name: spec.name, checked: Boolean(value) }), title),
      );
    default: {
      const types = { number: "number", integer: "number", date: "date", phone: "tel", email: "email" };
      return wrap(
        h("input", {
          id,
          name: spec.name,
          type: types[spec.type] || "text",
          step: spec.type === "integer" ? "1" : spec.type === "number" ? "any" : undefined,
          min: spec.minimum ?? undefined,
          max: spec.maximum ?? undefined,
          maxlength: spec.max_length ?? undefined,
          title: spec.pattern ? spec.pattern : undefined,
          value: value ?? "",
        }),
      );
    }
  }
}

/** A path's segment is this node: by its Chinese label (as stored), its English label or key. */
function isNode(node, segment) {
  return node.zh === segment || node.en === segment || node.key === segment;
}

/**
 * Three boxes, one per level (大类 → 子类 → 场景), each showing its own level of the path.
 *
 * With a tree, each select offers the children of the node chosen above it. A segment the
 * tree does not hold (the tree changed since the ticket was filed) stays in its own level's
 * select, marked, so a save that did not touch the category keeps it. Without a tree (any text
 * is a category) the levels are three text boxes.
 */
function categoryControl(spec, path) {
  const names = path ? path.split("/").map((name) => name.trim()) : [];
  // Deeper than three levels (free text can be): the rest stays together in the last box, so
  // an untouched category reads back as it was stored.
  if (names.length > 3) names.splice(2, names.length, names.slice(2).join("/"));
  const tree = getMeta().categories || [];
  const attrs = (n) => ({
    class: "category-level",
    name: `category-${n}`,
    id: `field-category-${n}`,
    "aria-label": t(`ticket.categoryLevel${n}`),
  });
  const row = (levels) =>
    h(
      "div",
      { class: "field wide" },
      h("label", { for: "field-category-1" }, label(spec)),
      h("div", { class: "category-row" }, levels),
    );
  if (!tree.length) {
    return row(
      [1, 2, 3].map((n) =>
        h("input", { ...attrs(n), type: "text", maxlength: "100", placeholder: t(`ticket.categoryLevel${n}`), value: names[n - 1] || "" }),
      ),
    );
  }
  const levels = [1, 2, 3].map((n) => h("select", attrs(n)));
  // The children of what is chosen above `depth`; nothing below a segment the tree does not hold.
  const nodesAt = (depth) => {
    let nodes = tree;
    for (let i = 0; i < depth; i++) {
      const chosen = nodes.find((n) => n.zh === levels[i].value);
      nodes = chosen ? chosen.children || [] : [];
    }
    return nodes;
  };
  const refill = (from) => {
    for (let depth = from; depth < levels.length; depth++) {
      const select = levels[depth];
      const nodes = nodesAt(depth);
      const wanted = names[depth] || "";
      const node = nodes.find((n) => isNode(n, wanted));
      const options = nodes.map((n) => h("option", { value: n.zh }, label(n)));
      if (wanted && !node) {
        options.push(h("option", { value: wanted, class: "not-in-tree", title: t("ticket.notInTree") }, `${wanted} *`));
      }
      fill(select, h("option", { value: "" }, t("ticket.choose")), options);
      select.value = node ? node.zh : wanted;
      select.disabled = options.length === 0;
      // Below a chosen node without children the path is complete: no empty select there.
      select.hidden = options.length === 0 && depth > 0 && Boolean(levels[depth - 1].value);
    }
  };
  levels.forEach((select, depth) =>
    select.addEventListener("change", () => {
      // From here down the selects say what is chosen; the stored path is let go below it.
      names.splice(depth, names.length, select.value);
      names.length = depth + 1;
      refill(depth + 1);
    }),
  );
  refill(0);
  return row(levels);
}

function prioritySelect(code, changeable) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: "field-priority" }, t("ticket.priority")),
    h(
      "select",
      { id: "field-priority", name: "priority", value: code, disabled: !changeable },
      getMeta().priorities.map((p) => h("option", { value: p.code }, `${p.code} ${label(p)}`)),
    ),
  );
}

// -- history, SLA, recordings -------------------------------------------------------------------

function historyItem(entry) {
  const data = entry.data || {};
  const from = entry.from_status ?? data.from_status;
  const to = entry.to_status ?? data.to_status;
  const details = [];
  if (from && to && from !== to) details.push(h("span", { class: "transition" }, statusBadge(from), " → ", statusBadge(to)));
  if (data.to) details.push(h("span", {}, `→ ${agentName(data.to)}`));
  if (entry.kind === "priority_changed") {
    details.push(h("span", {}, `${data.previous ?? ""} → ${data.priority} ${priorityName(data.priority)}`));
  }
  if (data.waiting_on) details.push(h("span", {}, t(`wait.${data.waiting_on}`)));
  if (data.changes && typeof data.changes === "object") {
    const fields = getMeta().fields;
    const shown = Object.entries(data.changes).map(([name, value]) => {
      const spec = fields.find((f) => f.name === name);
      const text = name === "category" ? categoryLabel(value) : Array.isArray(value) ? value.join(", ") : value ?? "∅";
      return `${spec ? label(spec) : name}: ${text}`;
    });
    details.push(h("span", { class: "changes" }, shown.join(" · ")));
  }
  if (entry.kind === "call_ended" && data.talk_seconds != null) {
    details.push(h("span", {}, t("call.talk", { d: formatDuration(data.talk_seconds) })));
  }
  if (data.score != null) details.push(h("span", {}, `★ ${data.score}`));
  if (entry.kind === "caller_enriched") details.push(h("span", {}, data.found ? data.name || "" : t("crm.not_found")));
  if (data.target) details.push(h("span", {}, t(`sla.${data.target}`)));
  const why = data.why ? h("span", { class: "muted" }, data.why) : null;
  return h(
    "li",
    { class: `history-item kind-${entry.kind}` },
    h(
      "div",
      { class: "history-line" },
      h("time", { datetime: new Date(entry.at * 1000).toISOString(), title: formatDateTime(entry.at) }, formatTime(entry.at)),
      h("strong", {}, t(`kind.${entry.kind}`)),
      h("span", { class: "actor" }, ["system", "crm"].includes(entry.actor) ? t(`actor.${entry.actor}`) : agentName(entry.actor)),
      details,
      why,
    ),
    entry.reason ? h("div", { class: "history-reason" }, entry.reason) : null,
    entry.kind === "commented" && data.text
      ? h(
          "div",
          { class: `history-comment ${data.visibility === "customer" ? "to-customer" : ""}` },
          h("span", { class: "tag" }, data.visibility === "customer" ? t("history.toCustomer") : t("history.internal")),
          " ",
          data.text,
        )
      : null,
  );
}

function slaTiming(target) {
  if (target.state === "met") return "";
  const remaining = target.remaining_seconds;
  if (remaining === null || remaining === undefined) return "";
  const text = remaining < 0 ? t("sla.over", { d: formatDuration(-remaining) }) : t("sla.left", { d: formatDuration(remaining) });
  return target.running === false && target.state !== "breached" ? `${text} · ${t("sla.paused")}` : text;
}

function slaBadge(target, withName = true) {
  const state = target.state;
  const text = withName ? `${t(`sla.${target.target}`)} · ${t(`sla.${state}`)}` : t(`sla.${state}`);
  const timing = slaTiming(target);
  return h("span", { class: `badge sla sla-${state}`, title: timing }, withName && timing && state !== "met" ? `${text} · ${timing}` : text);
}

function recordingBlock(recording, transcript) {
  const parts = [
    h(
      "div",
      { class: "recording-head" },
      h("span", {}, `#${recording.id}`),
      recording.duration_seconds ? h("span", { class: "muted" }, formatDuration(recording.duration_seconds)) : null,
      recording.status !== "linked" ? h("span", { class: "badge" }, recording.status) : null,
    ),
  ];
  let audio = null;
  if (recording.status === "linked") {
    audio = h("audio", { controls: true, preload: "metadata", src: recording.audio_url, "data-testid": "recording-audio" });
    parts.push(audio);
  }
  if (transcript && transcript.words?.length) {
    parts.push(transcriptBlock(transcript, audio));
  } else if (transcript?.text) {
    parts.push(h("p", { class: "transcript-text" }, transcript.text));
  } else {
    parts.push(h("p", { class: "muted" }, t("ticket.noTranscript", { state: recording.transcription || "–" })));
  }
  return h("div", { class: "recording" }, parts);
}

/** Words as spans: the one being heard is marked, a click plays from that word. */
function transcriptBlock(transcript, audio) {
  // Chinese is written without spaces between words; other languages need them.
  const spaced = !String(transcript.language || "").startsWith("zh");
  const spans = transcript.words.map((w) =>
    h(
      "span",
      {
        class: "word",
        dataset: { start: w.start, end: w.end },
        title: `${formatClock(w.start)} · ${Math.round((w.conf ?? 1) * 100)}%`,
      },
      w.word,
    ),
  );
  const box = h("div", { class: "transcript", "data-testid": "transcript", lang: transcript.language || undefined });
  spans.forEach((span, i) => {
    if (i && spaced) box.append(" ");
    if ((transcript.words[i].conf ?? 1) < 0.6) span.classList.add("unsure");
    box.append(span);
  });
  if (!audio) return box;
  let current = null;
  audio.addEventListener("timeupdate", () => {
    const now = audio.currentTime;
    // The word whose time contains now, else the last one started (silence between words).
    let found = null;
    for (const span of spans) {
      if (Number(span.dataset.start) <= now + 0.01) found = span;
      else break;
    }
    if (found && now > Number(found.dataset.end) + 0.6) found = null;
    if (found === current) return;
    current?.classList.remove("current");
    found?.classList.add("current");
    current = found;
    if (found) keepVisible(box, found);
  });
  box.addEventListener("click", (event) => {
    const word = event.target.closest?.(".word");
    if (!word) return;
    audio.currentTime = Number(word.dataset.start);
    audio.play().catch(() => {}); // a browser may refuse to autoplay; the seek still holds
  });
  return box;
}

function keepVisible(box, el) {
  const top = el.offsetTop - box.offsetTop;
  if (top < box.scrollTop || top + el.offsetHeight > box.scrollTop + box.clientHeight) {
    box.scrollTop = Math.max(0, top - box.clientHeight / 3);
  }
}

function formatClock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** The API marks the matched words of a snippet with [brackets]. */
function marked(snippet) {
  if (!snippet) return "";
  return snippet.split(/(\[[^\]]*\])/).map((part) => (part.startsWith("[") && part.endsWith("]") ? h("mark", {}, part.slice(1, -1)) : part));
}
