// The one way the pages talk to the bridge: JSON over fetch, the session cookie, the CSRF header.

let csrfToken = null;

/** An answer other than 2xx; `message` is the API's own explanation, ready to show. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token GET /api/me hands out; every change must echo it (another site cannot read it). */
export function setCsrfToken(token) {
  csrfToken = token;
}

/**
 * Call the API.
 * @param {string} path e.g. "/api/tickets?mine=true"
 * @param {{method?: string, body?: unknown, redirectOn401?: boolean}} options
 * @returns {Promise<any>} the decoded JSON, or null for an empty answer
 * @throws {ApiError} for any answer other than 2xx
 */
export async function api(path, { method = "GET", body, redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && redirectOn401) {
    // The session ran out (or never was): nothing on this page can work until sign-in.
    window.location.assign("/login");
    throw new ApiError(401, "signed out");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) throw new ApiError(response.status, explain(data, response));
  return data;
}

/** "/api/tickets" + {mine: true, status: ["new", "assigned"]} -> "/api/tickets?mine=true&status=new&status=assigned" */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) query.append(name, String(one));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function explain(data, response) {
  if (!data) return `${response.status} ${response.statusText}`;
  const problems = Array.isArray(data.problems)
    ? data.problems.map((p) => `${p.where}: ${p.problem}`).join("; ")
    : "";
  const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail ?? data);
  return problems ? `${detail}: ${problems}` : detail;
}
