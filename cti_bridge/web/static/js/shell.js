// What the agent and supervisor pages share: who is signed in, the top bar (language,
// sign-out, live indicator), the live event stream and the toasts.

import { api, setCsrfToken } from "./api.js";
import { fill, h, setMeta } from "./dom.js";
import { guessLanguage, setLanguage, t, translatePage } from "./i18n.js";

/**
 * Sign-in check, language, form metadata and the top bar's controls.
 * @param {{onLanguage: () => void}} page called after the language changed, to redraw
 * @returns {Promise<{me: object, meta: object}>}
 */
export async function startPage({ onLanguage }) {
  setLanguage(guessLanguage());
  translatePage();
  const me = await api("/api/me"); // a 401 goes to /login
  setCsrfToken(me.csrf_token);
  setLanguage(me.user.language || guessLanguage());
  const meta = await api("/api/meta");
  setMeta(meta);
  translatePage();

  const userName = document.getElementById("user-name");
  userName.textContent = me.user.name || me.user.id;
  userName.title = `${me.user.id} · ${me.user.role}${me.team ? ` · ${me.team}` : ""}`;
  // Supervisors move between both pages; an agent has only the agent desk.
  document.getElementById("nav").hidden = me.user.role === "agent";

  const select = document.querySelector("[data-testid=language]");
  select.value = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
  select.addEventListener("change", async () => {
    setLanguage(select.value); // redraw at once; saving follows
    translatePage();
    onLanguage();
    try {
      await api("/api/me", { method: "PATCH", body: { language: select.value } });
    } catch (error) {
      toast({ title: t("error.load", { msg: error.message }), kind: "error" });
    }
  });

  document.querySelector("[data-testid=sign-out]").addEventListener("click", async () => {
    try {
      await api("/api/session", { method: "DELETE" });
    } finally {
      window.location.assign("/login");
    }
  });
  return { me, meta };
}

/**
 * Listen to /api/events and keep the connection indicator current.
 * @param {Record<string, (data: object) => void>} handlers by event name; `resync` is
 *   called after a reconnect and after `lagged`, when events may have been missed
 */
export function connectLive(handlers) {
  const indicator = document.querySelector("[data-testid=connection]");
  let source = null;
  let everOpen = false;

  const show = (state) => {
    indicator.dataset.state = state;
    const text = indicator.querySelector(".conn-text");
    if (text) text.textContent = t(`conn.${state}`);
    indicator.title = t(`conn.${state}`);
  };

  const open = () => {
    show("connecting");
    source = new EventSource("/api/events");
    source.addEventListener("open", () => {
      show("open");
      if (everOpen) handlers.resync?.(); // what happened while away was not streamed
      everOpen = true;
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        show("connecting"); // the browser retries by itself
        return;
      }
      // Refused for good (e.g. the session ended): /api/me sends a signed-out user to
      // /login; otherwise try again in a while.
      show("closed");
      source.close();
      api("/api/me")
        .catch(() => {})
        .finally(() => setTimeout(open, 5000));
    });
    for (const [name, handle] of Object.entries(handlers)) {
      if (name === "resync") continue;
      source.addEventListener(name, (event) => {
        let data = {};
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        handle(data);
      });
    }
  };
  show("connecting");
  open();
  // Redraw the indicator's words when the language changes.
  return { relabel: () => show(indicator.dataset.state) };
}

const TOAST_LIMIT = 5;

/**
 * A short notice in the corner.
 * @param {{title: string, body?: string, kind?: string, actionLabel?: string, onAction?: () => void, timeout?: number}} notice
 */
export function toast({ title, body = "", kind = "info", actionLabel, onAction, timeout = 12000 }) {
  const list = document.getElementById("toasts");
  const item = h(
    "li",
    { class: `toast toast-${kind}` },
    h(
      "div",
      { class: "toast-text" },
      h("strong", {}, title),
      body ? h("span", {}, body) : null,
    ),
    actionLabel
      ? h(
          "button",
          {
            type: "button",
            class: "btn btn-small",
            onclick: () => {
              item.remove();
              onAction();
            },
          },
          actionLabel,
        )
      : null,
    h(
      "button",
      { type: "button", class: "btn-icon", "aria-label": t("toast.close"), onclick: () => item.remove() },
      "×",
    ),
  );
  list.prepend(item);
  while (list.children.length > TOAST_LIMIT) list.lastElementChild.remove();
  if (timeout) setTimeout(() => item.remove(), timeout);
}

/** A page that could not start: say why (a signed-out user is on the way to /login). */
export function failed(error) {
  if (error?.status === 401) return;
  toast({ title: t("error.load", { msg: error?.message || String(error) }), kind: "error", timeout: 0 });
}

/** An error message inside a panel, in place of what could not be loaded. */
export function showLoadError(el, error) {
  fill(el, h("p", { class: "error-text" }, t("error.load", { msg: error.message })));
}
