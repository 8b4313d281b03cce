// The app shell: theme, sign-in state, hash router and navigation.

import { ApiError, UNAUTHENTICATED, clearToken, getJson, getToken, keepToken, loadToken, useToken } from './api.js';
import { completeLogin, loadConfig } from './auth.js';
import { h, replace } from './dom.js';
import { errorBox, isAbort } from './ui.js';
import * as overview from './pages/overview.js';
import * as evidence from './pages/evidence.js';
import * as record from './pages/record.js';
import * as consistency from './pages/consistency.js';
import * as audit from './pages/audit.js';
import * as auditEvent from './pages/audit_event.js';
import * as tasks from './pages/tasks.js';
import * as bundles from './pages/bundles.js';
import * as signin from './pages/signin.js';
import * as notFound from './pages/notfound.js';

/** @typedef {{principal: string, roles: string[], auth_method: string}} Session */
/**
 * What a page gets. `signal` aborts when the user leaves the page, ending
 * its fetches and streams.
 * @typedef {{main: HTMLElement, params: string[], query: URLSearchParams, signal: AbortSignal,
 *   app: App}} PageContext
 */
/** @typedef {{title: string, render: (ctx: PageContext) => Promise<void> | void}} Page */
/**
 * @typedef {{session: Session | null, config: import('./auth.js').UiConfig,
 *   signIn: (token: string, keep: boolean) => Promise<void>, signOut: () => void,
 *   navigate: (hash: string) => void, rerender: () => void, notice: string}} App
 */

/** @type {Array<{re: RegExp, page: Page, nav: string | null, open?: boolean}>} */
const ROUTES = [
  { re: /^\/signin$/, page: signin, nav: null, open: true },
  { re: /^\/overview$/, page: overview, nav: 'overview' },
  { re: /^\/evidence$/, page: evidence, nav: 'evidence' },
  { re: /^\/record\/([^/]+)$/, page: record, nav: 'evidence' },
  { re: /^\/consistency$/, page: consistency, nav: 'consistency' },
  { re: /^\/audit$/, page: audit, nav: 'audit' },
  { re: /^\/audit\/([^/]+)$/, page: auditEvent, nav: 'audit' },
  { re: /^\/tasks$/, page: tasks, nav: 'tasks' },
  { re: /^\/bundles$/, page: bundles, nav: 'bundles' },
];

const THEME_KEY = 'evault.theme';

/** @param {string} t */
function applyTheme(t) {
  const theme = t === 'light' || t === 'dark' ? t : 'auto';
  document.documentElement.setAttribute('data-theme', theme);
  return theme;
}

function initTheme() {
  let saved = 'auto';
  try {
    saved = localStorage.getItem(THEME_KEY) || 'auto';
  } catch {
    // storage disabled: follow the system
  }
  const theme = applyTheme(saved);
  const sel = document.getElementById('theme');
  if (sel instanceof HTMLSelectElement) {
    sel.value = theme;
    sel.addEventListener('change', () => {
      const t = applyTheme(sel.value);
      try {
        localStorage.setItem(THEME_KEY, t);
      } catch {
        // the choice lasts for this page only
      }
    });
  }
}

const main = /** @type {HTMLElement} */ (document.getElementById('main'));

/** @type {AbortController | null} */
let current = null;
let firstRender = true;

/** @type {App} */
const app = {
  session: null,
  config: { version: '', oidc: [] },
  notice: '',
  async signIn(token, keep) {
    // In memory while the server is asked; kept for the tab (if asked)
    // only once it accepted the token, so a refused or unchecked token
    // never outlives this page.
    const before = getToken();
    useToken(token);
    let who;
    try {
      who = await getJson('/api/v1/whoami');
    } catch (e) {
      // A 401 cleared the token already (UNAUTHENTICATED); otherwise the
      // token in use before, if any, stays in use.
      if (getToken() === token) useToken(before);
      throw e;
    }
    keepToken(keep);
    app.session = who;
    app.notice = '';
    showUser();
  },
  signOut() {
    clearToken();
    app.session = null;
    showUser();
    app.navigate('#/signin');
  },
  navigate(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  },
  rerender() {
    render();
  },
};

function showUser() {
  const who = document.getElementById('who');
  const out = document.getElementById('signout');
  if (who) {
    replace(who, app.session
      ? [h('span', { class: 'sr-only' }, 'Signed in as '), h('strong', null, app.session.principal),
        app.session.roles.length ? h('span', { class: 'muted' }, ` (${app.session.roles.join(', ')})`) : null]
      : []);
  }
  if (out instanceof HTMLButtonElement) out.hidden = !app.session || app.session.auth_method === 'none';
}

/** @param {string | null} nav */
function markNav(nav) {
  for (const a of document.querySelectorAll('nav.site-nav a')) {
    if (a.getAttribute('data-nav') === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const navEl = document.querySelector('nav.site-nav');
  if (navEl instanceof HTMLElement) navEl.hidden = !app.session;
}

/** Splits `#/path?query` into its parts. */
function parseHash() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(1) : '/overview';
  const q = raw.indexOf('?');
  return {
    path: q < 0 ? raw : raw.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)),
  };
}

async function render() {
  if (current) current.abort();
  const ctl = new AbortController();
  current = ctl;
  const { path, query } = parseHash();
  const route = ROUTES.find((r) => r.re.test(path));
  if (route && !route.open && !app.session) {
    const next = location.hash.startsWith('#/') ? location.hash : '#/overview';
    location.replace(`#/signin?next=${encodeURIComponent(next)}`);
    return;
  }
  const page = route ? route.page : notFound;
  const m = route ? route.re.exec(path) : null;
  /** @type {string[]} */
  let params = [];
  try {
    params = m ? m.slice(1).map((x) => decodeURIComponent(x)) : [];
  } catch {
    params = [];
  }
  markNav(route ? route.nav : null);
  document.title = `${page.title} — Merkle Evidence Vault`;
  main.replaceChildren();
  // Which route the content of main is for (tests wait for it: the
  // content of the page before is gone by then).
  main.setAttribute('data-route', location.hash);
  if (!firstRender) main.focus();
  firstRender = false;
  try {
    await page.render({ main, params, query, signal: ctl.signal, app });
  } catch (e) {
    if (isAbort(e) || ctl.signal.aborted) return;
    main.appendChild(errorBox(e));
  }
}

async function start() {
  initTheme();
  document.getElementById('signout')?.addEventListener('click', () => app.signOut());
  // The skip link focuses main itself: its fragment would be read as a route.
  document.querySelector('.skip-link')?.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener(UNAUTHENTICATED, () => {
    const wasSignedIn = app.session !== null || getToken() !== null;
    clearToken();
    app.session = null;
    showUser();
    if (!location.hash.startsWith('#/signin')) {
      app.notice = wasSignedIn ? 'The server refused the token (expired or revoked). Sign in again.' : '';
      location.replace(`#/signin?next=${encodeURIComponent(location.hash || '#/overview')}`);
    }
  });
  window.addEventListener('hashchange', () => {
    render();
  });

  app.config = await loadConfig();
  /** @type {import('./auth.js').LoginResult} */
  let login = null;
  try {
    login = await completeLogin();
  } catch (e) {
    login = { error: `The sign-in could not be completed: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (login && 'error' in login) {
    app.notice = login.error;
  } else if (login) {
    try {
      await app.signIn(login.token, login.keep);
      location.replace(login.next);
    } catch (e) {
      app.notice = e instanceof ApiError ? `The server refused the token: ${e.detail || e.title}` : String(e);
    }
  }
  if (!app.session) {
    loadToken();
    try {
      // Also succeeds without a token when the server runs without auth.
      app.session = await getJson('/api/v1/whoami', { anonymous: getToken() === null });
    } catch (e) {
      // Only a refusal drops the kept token; a server that is down keeps it.
      if (e instanceof ApiError && e.status === 401) clearToken();
      app.session = null;
    }
  }
  showUser();
  await render();
}

start().catch((e) => {
  // Whatever went wrong, the page must not stay at "Loading…".
  replace(main,
    h('h1', null, 'The dashboard could not start'),
    errorBox(e),
    h('p', null, 'Reload the page to try again. If this browser blocks site storage, allow it for this site.'));
});
