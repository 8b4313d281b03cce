// The API client. The bearer token lives in memory; it is copied to
// sessionStorage (this tab only, gone when the tab closes) only when the
// user asks, and never to localStorage, which any later visit could read.

const TOKEN_KEY = 'evault.token';

/** @type {string | null} */
let token = null;

/** Restores a token kept for this tab, if any. */
export function loadToken() {
  try {
    token = sessionStorage.getItem(TOKEN_KEY);
  } catch {
    token = null;
  }
  return token;
}

/** @returns {string | null} */
export function getToken() {
  return token;
}

/** Whether the token was kept in sessionStorage. */
export function tokenKept() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) !== null;
  } catch {
    return false;
  }
}

/**
 * Sets the token in memory only; sessionStorage is left as it is (see
 * keepToken, called once the server accepted the token).
 * @param {string | null} t
 */
export function useToken(t) {
  token = t;
}

/**
 * Copies the current token to sessionStorage for this tab (keep), or
 * removes any kept token. Storage may be disabled: the in-memory token
 * still works.
 * @param {boolean} keep
 */
export function keepToken(keep) {
  try {
    if (keep && token !== null) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage may be disabled; the in-memory token still works.
  }
}

export function clearToken() {
  token = null;
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing kept
  }
}

/** An error reply (RFC 9457 problem) or a network failure. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} title
   * @param {string} detail
   */
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** Fired on `window` when the server answers 401, so the app can ask for sign-in. */
export const UNAUTHENTICATED = 'evault:unauthenticated';

/**
 * Query string from an object; empty values are left out, arrays repeat.
 * @param {{[k: string]: string | number | boolean | null | undefined | string[]}} params
 */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) {
      for (const x of v) if (x !== '') u.append(k, x);
    } else if (v !== null && v !== undefined && v !== '') {
      u.append(k, String(v));
    }
  }
  const q = u.toString();
  return q ? `?${q}` : '';
}

/**
 * Reads a problem reply into an ApiError.
 * @param {Response} resp
 */
async function problemOf(resp) {
  let title = resp.statusText || `HTTP ${resp.status}`;
  let detail = '';
  const type = resp.headers.get('content-type') || '';
  try {
    if (type.includes('json')) {
      const p = await resp.json();
      if (p && typeof p === 'object') {
        if (typeof p.title === 'string') title = p.title;
        if (typeof p.detail === 'string') detail = p.detail;
      }
    } else {
      detail = (await resp.text()).slice(0, 500);
    }
  } catch {
    // An unreadable body keeps the status line.
  }
  return new ApiError(resp.status, title, detail);
}

/**
 * Whether a path has a segment the URL parser resolves away ("." or "..",
 * also as %2e): fetch would then send the request, with the token, to
 * another path than the one built.
 * @param {string} path
 */
export function hasDotSegment(path) {
  const p = path.split(/[?#]/)[0];
  return p.split(/[/\\]/).some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg));
}

/**
 * @typedef {{method?: string, accept?: string, body?: unknown, signal?: AbortSignal,
 *   anonymous?: boolean}} RequestOptions
 */

/**
 * Sends a request to this origin's API with the token; throws ApiError on
 * any non-2xx reply (401 also fires UNAUTHENTICATED).
 * @param {string} path absolute path on this origin, e.g. `/api/v1/log`
 * @param {RequestOptions} [opts]
 * @returns {Promise<Response>}
 */
export async function request(path, opts = {}) {
  if (!path.startsWith('/') || path.startsWith('//')) throw new Error('API paths are same-origin');
  if (hasDotSegment(path)) throw new Error('API paths have no "." or ".." segments');
  /** @type {Record<string, string>} */
  const headers = { Accept: opts.accept || 'application/json' };
  if (token && !opts.anonymous) headers.Authorization = `Bearer ${token}`;
  /** @type {RequestInit} */
  const init = {
    method: opts.method || 'GET',
    headers,
    credentials: 'omit',
    cache: 'no-store',
    signal: opts.signal,
  };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Network error', 'The server could not be reached.');
  }
  if (!resp.ok) {
    const err = await problemOf(resp);
    if (resp.status === 401 && !opts.anonymous) {
      window.dispatchEvent(new CustomEvent(UNAUTHENTICATED, { detail: err }));
    }
    throw err;
  }
  return resp;
}

/**
 * GET (or other method) and parse JSON.
 * @param {string} path
 * @param {RequestOptions} [opts]
 * @returns {Promise<any>}
 */
export async function getJson(path, opts = {}) {
  const resp = await request(path, opts);
  return resp.json();
}

/**
 * The body as text, unparsed (proof bundles are verified from their raw
 * text so that integers beyond 2^53 are refused, not rounded).
 * @param {string} path
 * @param {RequestOptions} [opts]
 */
export async function getText(path, opts = {}) {
  const resp = await request(path, opts);
  return resp.text();
}

/**
 * POST JSON, parse the JSON reply.
 * @param {string} path
 * @param {unknown} body
 * @param {RequestOptions} [opts]
 * @returns {Promise<any>}
 */
export async function postJson(path, body, opts = {}) {
  const resp = await request(path, { ...opts, method: 'POST', body });
  return resp.json();
}

/** Path segment, escaped. @param {string | number} v */
export function seg(v) {
  return encodeURIComponent(String(v));
}
