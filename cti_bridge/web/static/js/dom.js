// Small helpers to build elements, and the labels of what /api/meta describes (categories,
// priorities, statuses). Text always goes in as text nodes: ticket fields come from callers.

import { label, t } from "./i18n.js";

const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "hidden", "open"]);

/**
 * Build an HTML element.
 * @param {string} tag
 * @param {object} attrs class, dataset, on<event> listeners, properties, or plain attributes
 * @param {...(Node|string|number|null|false|Array)} children
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  const properties = [];
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) properties.push([name, value]);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  // After the children: a <select>'s value only sticks once its options exist.
  for (const [name, value] of properties) el[name] = value;
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an SVG element; attributes are set as given (class, x, y, width…). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Call `fn` once things have been quiet for `ms`: many live events, one reload. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** True while the user types somewhere: single-key shortcuts must then stay out of the way. */
export function typingIn(target) {
  if (!(target instanceof Element)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

// -- what /api/meta describes ---------------------------------------------------------------

let meta = { categories: [], priorities: [], fields: [], agents: [], statuses: [] };

export function setMeta(value) {
  meta = value;
}

export function getMeta() {
  return meta;
}

/** "技术故障/网络问题/登录异常" in the current language (the store keeps the Chinese path). */
export function categoryLabel(path) {
  if (!path || path === "-") return "";
  const names = path.split("/");
  const shown = [];
  let level = meta.categories;
  for (const name of names) {
    const node = (level || []).find((n) => n.zh === name || n.en === name || n.key === name);
    shown.push(node ? label(node) : name);
    level = node ? node.children : [];
  }
  return shown.join(" / ");
}

export function priorityName(code) {
  const found = meta.priorities.find((p) => p.code === code);
  return found ? label(found) : code || "";
}

export function agentName(id) {
  if (!id) return t("ticket.unassigned");
  const found = meta.agents.find((a) => a.id === id);
  return found ? found.name : id;
}

export function statusBadge(status) {
  return h("span", { class: `badge status status-${status}` }, t(`status.${status}`));
}

/** "P2 紧急"; `short`: "P2" only, for narrow tables (the name stays in the tooltip). */
export function priorityBadge(code, short = false) {
  const name = priorityName(code);
  return h(
    "span",
    { class: `badge priority priority-${code}`, title: `${code} ${name}` },
    name && name !== code && !short ? `${code} ${name}` : code,
  );
}

export function vipBadge() {
  return h("span", { class: "badge vip" }, t("vip"));
}

/** What the site's CRM said about a caller (ScreenPop.crm, or a ticket's crm.profile). */
export function crmDetails(profile, { orders = 5 } = {}) {
  const shown = (profile.orders || []).slice(0, orders);
  return [
    h(
      "p",
      { class: "crm-name" },
      h("strong", {}, profile.name || "–"),
      " ",
      profile.vip ? vipBadge() : null,
      " ",
      profile.tier ? h("span", { class: "badge tier" }, profile.tier) : null,
    ),
    profile.company ? h("p", { class: "crm-company" }, profile.company) : null,
    profile.external_id ? h("p", { class: "muted" }, t("crm.externalId", { id: profile.external_id })) : null,
    profile.email ? h("p", { class: "muted" }, profile.email) : null,
    profile.notes ? h("p", { class: "notes" }, profile.notes) : null,
    shown.length
      ? h(
          "div",
          { class: "crm-orders" },
          h("span", { class: "muted" }, t("crm.orders")),
          h(
            "ul",
            { "data-testid": "crm-orders" },
            shown.map((o) => h("li", {}, [o.id, o.date, o.total, o.status, o.summary].filter(Boolean).join(" · "))),
          ),
        )
      : null,
  ];
}
