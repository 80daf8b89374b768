// The sign-in page: POST /api/session, then the page that suits the user's role.

import { api, ApiError } from "./api.js";
import { guessLanguage, setLanguage, t, translatePage } from "./i18n.js";

const form = document.getElementById("login");
const error = document.querySelector("[data-testid=login-error]");
const submit = form.querySelector("button[type=submit]");
const language = document.getElementById("language");

setLanguage(guessLanguage());
translatePage();
language.value = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
language.addEventListener("change", () => {
  setLanguage(language.value); // remembered in this browser; saved to the user once signed in
  translatePage();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username || !password) {
    showError(t("login.failed"));
    (username ? form.elements.password : form.elements.username).focus();
    return;
  }
  error.hidden = true;
  submit.disabled = true;
  submit.textContent = t("login.busy");
  try {
    const me = await api("/api/session", {
      method: "POST",
      body: { username, password },
      redirectOn401: false,
    });
    const supervises = me.user.role === "supervisor" || me.user.role === "admin";
    window.location.assign(supervises ? "/supervisor" : "/agent");
  } catch (failure) {
    // A 401 says only "wrong name or password", on purpose; anything else is worth showing.
    showError(failure instanceof ApiError && failure.status === 401 ? t("login.failed") : failure.message);
    form.elements.password.select();
  } finally {
    submit.disabled = false;
    submit.textContent = t("login.submit");
  }
});

function showError(message) {
  error.textContent = message;
  error.hidden = false;
}
