// The admin API client: same-origin fetch with the session cookie, the CSRF
// token on every state-changing call, and one place that notices a lost
// session (401) so the app can go back to the login page.
let csrf = null;
let onLost = () => {};

export function setCsrf(token) {
  csrf = token || null;
}

export function onSessionLost(fn) {
  onLost = fn;
}

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const msg = (body && body.error && body.error.message) || (body && body.text) || `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
  // Validation errors as [{path, message}] (config and model edits).
  get errors() {
    return Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

export async function api(path, { method = "GET", body, quiet401 = false } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrf) headers["x-csrf-token"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { text };
    }
  }
  if (!r.ok) {
    if (r.status === 401 && !quiet401) onLost();
    throw new ApiError(r.status, data, r.headers.get("retry-after"));
  }
  return data;
}

// A query string from an object, leaving out empty values.
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  const s = p.toString();
  return s ? "?" + s : "";
}

export const enc = encodeURIComponent;
