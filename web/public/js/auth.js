// OIDC sign-in: authorization code flow with PKCE (RFC 7636, S256) as a
// public client. The state, nonce and code verifier wait in sessionStorage
// (this tab only) while the browser is at the issuer; the code is
// exchanged at the token endpoint with fetch (allowed by connect-src).

import { followSignInUrl, okEndpoint } from './dom.js';

const PENDING_KEY = 'evault.oidc';

/**
 * @typedef {{issuer: string, client_id: string, authorization_endpoint: string,
 *   token_endpoint: string, scope: string, token?: string}} OidcProvider
 */
/** @typedef {{version: string, oidc: OidcProvider[]}} UiConfig */

/** @returns {Promise<UiConfig>} */
export async function loadConfig() {
  try {
    const resp = await fetch('/ui/config.json', { credentials: 'omit', cache: 'no-store' });
    if (!resp.ok) return { version: '', oidc: [] };
    const c = await resp.json();
    const oidc = Array.isArray(c.oidc) ? c.oidc.filter(validProvider) : [];
    return { version: typeof c.version === 'string' ? c.version : '', oidc };
  } catch {
    return { version: '', oidc: [] };
  }
}

/** @param {unknown} p @returns {p is OidcProvider} */
function validProvider(p) {
  if (!p || typeof p !== 'object') return false;
  const o = /** @type {Record<string, unknown>} */ (p);
  return typeof o.issuer === 'string' && typeof o.client_id === 'string'
    && typeof o.authorization_endpoint === 'string' && okEndpoint(o.authorization_endpoint)
    && typeof o.token_endpoint === 'string' && okEndpoint(o.token_endpoint);
}

/** @param {Uint8Array} bytes */
export function base64url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {number} n */
function randomString(n) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/**
 * The S256 code challenge of a verifier.
 * @param {string} verifier
 */
export async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export function redirectUri() {
  return `${location.origin}/ui/`;
}

/**
 * Sends the browser to the issuer's sign-in page.
 * @param {OidcProvider} p
 * @param {string} next route to return to, e.g. `#/overview`
 * @param {boolean} keep keep the token in sessionStorage for this tab
 */
export async function startLogin(p, next, keep) {
  const verifier = randomString(32);
  const state = randomString(16);
  const nonce = randomString(16);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({
    state, nonce, verifier, next, keep,
    issuer: p.issuer,
    client_id: p.client_id,
    token_endpoint: p.token_endpoint,
    token: p.token === 'access_token' ? 'access_token' : 'id_token',
  }));
  const url = new URL(p.authorization_endpoint);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', p.client_id);
  q.set('redirect_uri', redirectUri());
  q.set('scope', p.scope || 'openid');
  q.set('state', state);
  q.set('nonce', nonce);
  q.set('code_challenge', await challengeOf(verifier));
  q.set('code_challenge_method', 'S256');
  followSignInUrl(url.toString());
}

/**
 * The claims of a JWT, unverified (only to compare the nonce; the server
 * verifies the token itself).
 * @param {string} jwt
 * @returns {Record<string, unknown> | null}
 */
function claimsOf(jwt) {
  const part = jwt.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/**
 * @typedef {{token: string, next: string, keep: boolean} | {error: string} | null} LoginResult
 */

/**
 * Finishes a sign-in when the page was loaded by the issuer's redirect
 * (`?code=&state=` or `?error=`); null when it was not. The query is
 * removed from the address bar either way, so the code is not kept in
 * history.
 * @returns {Promise<LoginResult>}
 */
export async function completeLogin() {
  const q = new URLSearchParams(location.search);
  if (!q.has('code') && !q.has('error')) return null;
  history.replaceState(null, '', `${location.pathname}${location.hash}`);
  let raw;
  try {
    raw = sessionStorage.getItem(PENDING_KEY);
    sessionStorage.removeItem(PENDING_KEY);
  } catch {
    return { error: 'This browser blocks sessionStorage, where the sign-in waits while at the issuer: allow site storage, then sign in again.' };
  }
  if (!raw) return { error: 'No sign-in was started in this tab.' };
  /** @type {{state: string, nonce: string, verifier: string, next: string, keep: boolean,
   *   issuer: string, client_id: string, token_endpoint: string, token: string}} */
  let pending;
  try {
    pending = JSON.parse(raw);
  } catch {
    return { error: 'The pending sign-in is unreadable.' };
  }
  if (q.get('state') !== pending.state) return { error: 'The sign-in reply does not match the request (state).' };
  // RFC 9207: an issuer that names itself in its reply must be the one
  // this sign-in went to (a mix-up attack swaps in another issuer's reply).
  if (q.has('iss') && q.get('iss') !== pending.issuer) {
    return { error: 'The sign-in reply comes from another issuer than the one asked (iss).' };
  }
  if (q.has('error')) {
    return { error: `The issuer refused: ${q.get('error')}${q.get('error_description') ? ` (${q.get('error_description')})` : ''}` };
  }
  if (!okEndpoint(pending.token_endpoint)) return { error: 'Bad token endpoint.' };
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: q.get('code') || '',
    redirect_uri: redirectUri(),
    client_id: pending.client_id,
    code_verifier: pending.verifier,
  });
  let reply;
  try {
    const resp = await fetch(pending.token_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body,
      credentials: 'omit',
      cache: 'no-store',
    });
    reply = await resp.json();
    if (!resp.ok) {
      const why = reply && typeof reply.error === 'string' ? reply.error : `HTTP ${resp.status}`;
      return { error: `The token exchange failed: ${why}` };
    }
  } catch {
    return { error: 'The issuer\'s token endpoint could not be reached.' };
  }
  const idToken = typeof reply.id_token === 'string' ? reply.id_token : '';
  if (idToken) {
    const claims = claimsOf(idToken);
    if (!claims || claims.nonce !== pending.nonce) return { error: 'The ID token does not match the request (nonce).' };
  }
  const token = pending.token === 'access_token' ? reply.access_token : idToken;
  if (typeof token !== 'string' || !token) return { error: `The issuer sent no ${pending.token}.` };
  const next = typeof pending.next === 'string' && pending.next.startsWith('#/') ? pending.next : '#/overview';
  return { token, next, keep: pending.keep === true };
}
