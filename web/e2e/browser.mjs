// The dashboard's acceptance test in a real browser: Debian's Chromium,
// driven by playwright-core (never a browser download), against a real
// `evault serve` that crates/cli/tests/dashboard.rs starts.
//
// It signs in, ingests through the API, finds the record with the
// Evidence search and sees the browser verify it; it rewrites the
// server's replies (inclusion proof, checkpoint root, a checkpoint signed
// by a foreign key, the record, a consistency proof, a rolled-back latest
// checkpoint, another record's valid proof, checkpoints of other sizes,
// error statuses) and sees the failed step; a pin of another origin or key
// fails until trusted, and only the latest of two runs shows; ids that are
// not UUIDs make no request; pins can be forgotten from the keyboard;
// tokens are kept only once accepted; storage that refuses leaves
// verification working; XSS probes in labels, content types, principals and audit fields
// stay inert text; no CSP or Trusted Types violation in the whole run; a
// keyboard-only walk through every page; axe-core on every page in light
// and dark; an export bundle from the Bundles page. With
// EVAULT_SCREENSHOTS set it writes the screenshots there.
//
// Environment: EVAULT_URL, EVAULT_TOKEN (every role), EVAULT_XSS_TOKEN
// (an ingester whose principal is EVAULT_XSS_PRINCIPAL, markup),
// EVAULT_AUDITOR_TOKEN (auditor only), EVAULT_CHROMIUM, and optionally
// EVAULT_SCREENSHOTS (a directory).
//
// Output: one `ok - …` / `not ok - …` line per check, a summary, and a
// non-zero exit status when any check failed.

import { chromium } from 'playwright-core';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { verifyProofBundle } from '../public/js/verify/verify.js';

/** @typedef {import('playwright-core').Browser} Browser */
/** @typedef {import('playwright-core').BrowserContext} BrowserContext */
/** @typedef {import('playwright-core').Page} Page */
/** @typedef {import('playwright-core').Route} Route */

const STARTED = Date.now();
const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {string} name */
function env(name) {
  const v = process.env[name];
  if (!v) {
    console.log(`not ok - environment: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const BASE = env('EVAULT_URL').replace(/\/+$/, '');
const ORIGIN = new URL(BASE).origin;
const TOKEN = env('EVAULT_TOKEN');
const XSS_TOKEN = env('EVAULT_XSS_TOKEN');
const XSS_PRINCIPAL = env('EVAULT_XSS_PRINCIPAL');
const AUDITOR_TOKEN = env('EVAULT_AUDITOR_TOKEN');
const CHROMIUM = process.env.EVAULT_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.EVAULT_SCREENSHOTS || '';
const AXE_SOURCE = readFileSync(join(WEB, 'node_modules/axe-core/axe.min.js'), 'utf8');

/** A short tag that keeps this run's records apart from any earlier run's. */
const RUN = randomBytes(3).toString('hex');
/** Markup that must stay text wherever the dashboard shows it. */
const IMG = '<img src=x onerror=alert(1)>';
const SCRIPT = '"><script>alert(1)</script>';
const JS_URL = 'javascript:alert(1)';
const XSS_TYPE = `text/plain; note="${IMG}"`;
/**
 * Console messages about the CSP or Trusted Types ("… violates the
 * following Content Security Policy directive …", "This document requires
 * 'TrustedHTML' assignment.").
 */
const CSP_CONSOLE = /content[- ]security[- ]policy|trusted[- ]?types?\b|Trusted(HTML|Script|ScriptURL)\b/i;
/** Each page's wait, in ms (a run that hangs fails instead). */
const WAIT = 60_000; // generous: CI runs this beside the instrumented test suite on 2 cores

// ---------------------------------------------------------------------------
// Reporting

let passed = 0;
/** @type {string[]} */
const failed = [];

/** @param {unknown} v */
function short(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  const one = String(s).replace(/\s*\n\s*/g, ' | ');
  return one.length > 700 ? `${one.slice(0, 700)}…` : one;
}

/**
 * One check: `ok - name`, or `not ok - name (saw: …)`.
 * @param {string} name
 * @param {boolean} ok
 * @param {unknown} [saw] what was seen, shown on failure
 */
function check(name, ok, saw = '') {
  if (ok) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed.push(name);
    console.log(`not ok - ${name}${saw === '' ? '' : ` (saw: ${short(saw)})`}`);
  }
  return ok;
}

/**
 * Runs a part of the test; an unexpected error fails that part (with the
 * error) and the run goes on with the next.
 * @param {string} name
 * @param {() => Promise<void>} fn
 */
async function part(name, fn) {
  console.log(`# ${name}`);
  try {
    await fn();
  } catch (e) {
    check(`${name}: ran to the end`, false, e instanceof Error ? e.message.split('\n').slice(0, 6).join('\n') : e);
  }
}

/**
 * Polls `get` until `ok` holds (an expect-like wait, no fixed sleep).
 * @template T
 * @param {() => Promise<T>} get
 * @param {(v: T) => boolean} ok
 * @param {{timeout?: number, what?: string}} [o]
 * @returns {Promise<T>}
 */
async function poll(get, ok, o = {}) {
  const deadline = Date.now() + (o.timeout ?? WAIT);
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${o.what || 'a condition'}; last saw ${short(v)}`);
    await new Promise((r) => { setTimeout(r, 50); });
  }
}

// ---------------------------------------------------------------------------
// The API, from Node

/**
 * @param {string} path
 * @param {{method?: string, token?: string | null, headers?: Record<string, string>, body?: string | Uint8Array<ArrayBuffer>}} [o]
 */
async function api(path, o = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', ...(o.headers || {}) };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(BASE + path, { method: o.method || 'GET', headers, body: o.body });
  const text = await resp.text();
  /** @type {any} */
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: resp.status, headers: resp.headers, text, json };
}

/**
 * @typedef {{id: string, leaf_index: number, content_type: string, size: number,
 *   labels: Record<string, string>, ingested_by: string}} Rec
 */

/**
 * POST /api/v1/evidence in raw mode: the body is the payload, labels as
 * `label=k=v` query parameters and/or one `X-Evault-Label` header.
 * @param {{payload: string | Uint8Array<ArrayBuffer>, type: string, labels?: string[], headerLabel?: string, token?: string}} o
 * @returns {Promise<Rec>}
 */
async function ingest(o) {
  const q = new URLSearchParams();
  for (const l of o.labels || []) q.append('label', l);
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': o.type };
  if (o.headerLabel) headers['X-Evault-Label'] = o.headerLabel;
  const qs = q.toString();
  const r = await api(`/api/v1/evidence${qs ? `?${qs}` : ''}`, { method: 'POST', token: o.token, headers, body: o.payload });
  if ((r.status !== 201 && r.status !== 200) || !r.json || !r.json.record) {
    throw new Error(`POST /api/v1/evidence (${o.type}): ${r.status} ${r.text}`);
  }
  return r.json.record;
}

/**
 * Waits until a signed checkpoint of `log` covers leaf `index`.
 * @param {'evidence' | 'audit'} log
 * @param {number} index
 * @returns {Promise<number>} the checkpoint size
 */
function waitCovered(log, index) {
  const path = log === 'evidence' ? '/api/v1/log' : '/api/v1/audit/log';
  return poll(async () => {
    const r = await api(path);
    return typeof r.json?.checkpoint_size === 'number' ? r.json.checkpoint_size : -1;
  }, (n) => n > index, { what: `a ${log} checkpoint over leaf ${index}` });
}

/**
 * Every audit event matching `query`, over all pages.
 * @param {string} query
 * @returns {Promise<any[]>}
 */
async function auditEvents(query) {
  /** @type {any[]} */
  const out = [];
  let cursor = '';
  for (let i = 0; i < 100; i++) {
    const r = await api(`/api/v1/audit?${query}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (r.status !== 200) throw new Error(`GET /api/v1/audit?${query}: ${r.status} ${r.text}`);
    out.push(...r.json.items);
    if (!r.json.next_cursor) break;
    cursor = r.json.next_cursor;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Forging and tampering

/** A base64 hash with its first bit flipped. @param {string} b64 */
function flip(b64) {
  const b = Buffer.from(b64, 'base64');
  b[0] ^= 0x80;
  return b.toString('base64');
}

/**
 * The same checkpoint (origin, size, root) as a C2SP signed note signed by
 * a fresh Ed25519 key that is not the log's, under the same key name.
 * @param {string} note
 * @returns {{note: string, key: string}} the note and its verifier key
 */
function foreignNote(note) {
  const body = `${note.split('\n\n')[0]}\n`;
  const name = body.split('\n')[0];
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  const pub = Buffer.from(String(jwk.x), 'base64url');
  const keyId = createHash('sha256')
    .update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.of(0x01), pub]))
    .digest()
    .subarray(0, 4);
  const sig = sign(null, Buffer.from(body), privateKey);
  return {
    note: `${body}\n— ${name} ${Buffer.concat([keyId, sig]).toString('base64')}\n`,
    key: `${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.of(0x01), pub]).toString('base64')}`,
  };
}

/**
 * Rewrites the JSON replies to requests `match` accepts while `run` runs.
 * @param {Page} page
 * @param {(u: URL) => boolean} match
 * @param {(body: any) => any} edit
 * @param {() => Promise<void>} run
 */
async function tampered(page, match, edit, run) {
  let hits = 0;
  /** @param {Route} route */
  const handler = async (route) => {
    const resp = await route.fetch();
    const body = JSON.stringify(edit(await resp.json()));
    hits += 1;
    /** @type {Record<string, string>} */
    const headers = {};
    for (const [k, v] of Object.entries(resp.headers())) if (k !== 'content-length') headers[k] = v;
    await route.fulfill({ status: resp.status(), headers, body });
  };
  /** @param {URL} u */
  const matcher = (u) => match(u);
  await page.route(matcher, handler);
  try {
    await run();
  } finally {
    await page.unroute(matcher, handler);
  }
  return hits;
}

/**
 * Answers requests `match` accepts with a reply made here (never reaching
 * the server) while `run` runs.
 * @param {Page} page
 * @param {(u: URL) => boolean} match
 * @param {(u: URL) => {status?: number, body: string, contentType?: string}} reply
 * @param {() => Promise<void>} run
 */
async function answered(page, match, reply, run) {
  let hits = 0;
  /** @param {Route} route */
  const handler = async (route) => {
    const r = reply(new URL(route.request().url()));
    hits += 1;
    await route.fulfill({
      status: r.status ?? 200,
      contentType: r.contentType ?? (r.status && r.status >= 400 ? 'application/problem+json' : 'application/json'),
      headers: { 'Cache-Control': 'no-store' },
      body: r.body,
    });
  };
  /** @param {URL} u */
  const matcher = (u) => match(u);
  await page.route(matcher, handler);
  try {
    await run();
  } finally {
    await page.unroute(matcher, handler);
  }
  return hits;
}

/**
 * A localStorage value of the page, or with `value` (null removes) sets it.
 * @param {Page} page
 * @param {string} key
 * @param {string | null} [value]
 * @returns {Promise<string | null>}
 */
function storage(page, key, value) {
  return page.evaluate(([k, v, set]) => {
    if (set) {
      if (v === null) localStorage.removeItem(k);
      else localStorage.setItem(k, /** @type {string} */ (v));
    }
    return localStorage.getItem(k);
  }, /** @type {[string, string | null, boolean]} */ ([key, value ?? null, value !== undefined]));
}

/** The tree size of a checkpoint note (NaN without one). @param {string | null} note */
const sizeOf = (note) => Number((note || '').split('\n')[1]);

// ---------------------------------------------------------------------------
// The browser

/**
 * What the run watches for in every context.
 * @typedef {{csp: string[], cspConsole: string[], dialogs: string[], foreign: string[],
 *   pageErrors: string[], consoleErrors: string[]}} Watch
 */
/** @returns {Watch} */
const newWatch = () => ({ csp: [], cspConsole: [], dialogs: [], foreign: [], pageErrors: [], consoleErrors: [] });
const watch = newWatch();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});

// A run that hangs fails.
const deadline = setTimeout(() => {
  console.log('not ok - the browser test finished within 20 minutes');
  process.exit(1);
}, 20 * 60_000);
deadline.unref();

/**
 * A context whose CSP violations (through an init script, which runs via
 * the DevTools protocol), console, dialogs and requests are watched.
 * @param {string} label
 * @param {{colorScheme?: 'light' | 'dark', viewport?: {width: number, height: number}, sink?: Watch}} [o]
 */
async function newContext(label, o = {}) {
  const sink = o.sink || watch;
  const ctx = await browser.newContext({
    viewport: o.viewport || { width: 1280, height: 800 },
    colorScheme: o.colorScheme || 'light',
    reducedMotion: 'reduce',
    locale: 'en-GB',
    timezoneId: 'UTC',
    acceptDownloads: true,
  });
  await ctx.exposeBinding('__evaultCspViolation', (_source, /** @type {any} */ v) => {
    sink.csp.push(`${label}: ${v && v.directive} blocked ${v && v.blocked} ${v && v.sample} at ${v && v.url}`);
  });
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      /** @type {any} */ (window).__evaultCspViolation({
        directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, url: e.documentURI,
      });
    });
  });
  ctx.on('request', (req) => {
    const u = req.url();
    if (!(u.startsWith(`${ORIGIN}/`) || u.startsWith('blob:') || u.startsWith('data:'))) sink.foreign.push(`${label}: ${req.method()} ${u}`);
  });
  ctx.on('dialog', (d) => {
    sink.dialogs.push(`${label}: ${d.type()} ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  ctx.on('console', (m) => {
    const t = m.text();
    if (CSP_CONSOLE.test(t)) sink.cspConsole.push(`${label}: ${t}`);
    else if (m.type() === 'error') sink.consoleErrors.push(`${label}: ${t}`);
  });
  ctx.on('weberror', (e) => {
    sink.pageErrors.push(`${label}: ${e.error().message}`);
  });
  return ctx;
}

/**
 * Goes to an in-app route as a link would (a hash change), or re-renders
 * it when the page is there already; returns once #main holds that route's
 * page (app.js marks it with data-route when it clears the page before),
 * so nothing read afterwards can be the page before's.
 * @param {Page} page
 * @param {string} hash
 */
async function go(page, hash) {
  if (!page.url().startsWith(`${BASE}/ui/`)) {
    await page.goto(`${BASE}/ui/${hash}`);
  } else if (await page.evaluate(() => location.hash) === hash) {
    await page.reload();
  } else {
    await page.evaluate((h) => { location.hash = h; }, hash);
  }
  await page.waitForFunction((h) => location.hash === h && document.getElementById('main')?.getAttribute('data-route') === h,
    hash, { timeout: WAIT });
}

/** The record page's verification panel (never another page's). */
const RECORD_PANEL = '[data-testid=verify-result][data-page=record]';
/** The audit event page's verification panel. */
const AUDIT_PANEL = '[data-testid=verify-result][data-page=audit-event]';
/** A consistency page panel of `log`: the latest-against-last check, or the pair form's. */
const consistencyPanel = (/** @type {string} */ log, check = 'latest') =>
  `[data-testid=verify-result][data-page=consistency][data-log=${log}][data-check=${check}]`;

/**
 * Signs in on #/signin by pasting the token (kept for this tab, so reloads
 * keep the session).
 * @param {Page} page
 * @param {string} token
 */
async function signIn(page, token) {
  if (!page.url().startsWith(`${BASE}/ui/`)) await page.goto(`${BASE}/ui/`);
  await page.waitForFunction(() => location.hash.startsWith('#/signin'));
  await page.getByLabel('Access token', { exact: true }).fill(token);
  await page.getByRole('checkbox', { name: /^Keep for this tab/ }).check();
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForFunction(() => location.hash === '#/overview', null, { timeout: WAIT });
}

/** Waits until nothing in #main says "Loading…". @param {Page} page */
async function settled(page) {
  await page.waitForFunction(() => {
    const main = document.getElementById('main');
    return !!main && main.childElementCount > 0 && !main.querySelector('.loading');
  }, null, { timeout: WAIT });
}

/**
 * @typedef {{state: string, failed: string, steps: Array<{name: string, ok: boolean, detail: string}>,
 *   verdict: string, verdictVisible: boolean}} PanelResult
 */

/**
 * Waits for a verification panel to finish and reads it (by default the
 * record page's).
 * @param {Page} page
 * @param {string} [sel]
 * @returns {Promise<PanelResult>}
 */
async function panel(page, sel = RECORD_PANEL) {
  await page.waitForFunction((s) => {
    const el = document.querySelector(s);
    return !!el && el.getAttribute('data-state') !== 'running';
  }, sel, { timeout: WAIT });
  const r = await page.$eval(sel, (el) => ({
    state: el.getAttribute('data-state') || '',
    failed: el.querySelector('[data-testid=verify-failed-step]')?.textContent || '',
    steps: [...el.querySelectorAll('[data-testid=verify-step]')].map((li) => ({
      name: li.getAttribute('data-step') || '',
      ok: li.getAttribute('data-ok') === 'true',
      detail: (li.textContent || '').replace(/\s+/g, ' ').trim(),
    })),
    verdict: (el.querySelector('.verdict')?.textContent || '').trim(),
  }));
  const verdictVisible = await page.locator(sel).locator('.verdict').isVisible();
  return { ...r, verdictVisible };
}

/** @param {PanelResult} r */
function describe(r) {
  const bad = r.steps.find((s) => !s.ok);
  return `data-state=${r.state} failed-step=${r.failed || '-'} steps=[${r.steps.map((s) => `${s.name}:${s.ok ? 'ok' : 'FAIL'}`).join(' ')}]`
    + ` verdict="${r.verdict}"${bad ? ` failing: ${bad.detail}` : ''}`;
}

const RECORD_STEPS = ['record', 'leaf', 'key', 'signature', 'checkpoint', 'inclusion', 'history'];

/**
 * Checks a panel verified with every step ok and "verified" in view.
 * @param {string} name
 * @param {PanelResult} r
 * @param {string[]} [steps] the step names expected, in order
 */
function expectVerified(name, r, steps) {
  const namesOk = !steps || JSON.stringify(r.steps.map((s) => s.name)) === JSON.stringify(steps);
  return check(name,
    r.state === 'verified' && r.steps.length > 0 && r.steps.every((s) => s.ok) && namesOk
      && r.verdictVisible && /\bverified\b/i.test(r.verdict),
    describe(r));
}

/**
 * Checks a panel failed at `step`, the steps before it ok, "failed" in view.
 * @param {string} name
 * @param {PanelResult} r
 * @param {string} step
 */
function expectFailed(name, r, step) {
  const i = r.steps.findIndex((s) => !s.ok);
  return check(name,
    r.state === 'failed' && r.failed === step && i >= 0 && r.steps[i].name === step
      && r.steps.slice(0, i).every((s) => s.ok) && r.verdictVisible && /\bfailed\b/i.test(r.verdict),
    describe(r));
}

/**
 * axe-core on the page as it is; serious and critical violations fail.
 * axe is evaluated through the DevTools protocol, so the page's CSP does
 * not apply to loading it; what it does in the page is still under the
 * page's Trusted Types (any violation would be counted).
 * @param {Page} page
 * @param {string} name
 */
async function axe(page, name) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  /** @type {Array<{id: string, impact: string | null, help: string, nodes: string[]}>} */
  const found = await page.evaluate(async () => {
    const w = /** @type {any} */ (window);
    const res = await w.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 4).map((/** @type {any} */ n) => n.target.join(' ')),
    }));
  });
  const serious = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(`axe: ${name}: no serious or critical violations`, serious.length === 0,
    serious.map((v) => `${v.id} (${v.impact}: ${v.help}) at ${v.nodes.join(', ')}`).join('; '));
  const minor = found.filter((v) => !serious.includes(v));
  if (minor.length) console.log(`# axe: ${name}: minor/moderate: ${minor.map((v) => `${v.id} (${v.impact})`).join(', ')}`);
}

/**
 * A screenshot of the viewport, without a caret, focus ring or animation,
 * when EVAULT_SCREENSHOTS is set: from the top of the page, or with `at`
 * (a selector) at the top of the viewport.
 * @param {Page} page
 * @param {string} file
 * @param {string} [at]
 */
async function shot(page, file, at = '') {
  if (!SHOTS) return;
  await page.evaluate(async (sel) => {
    const a = document.activeElement;
    if (a instanceof HTMLElement) a.blur();
    const el = sel ? document.querySelector(sel) : null;
    if (el) el.scrollIntoView({ block: 'start' });
    else window.scrollTo(0, 0);
    await document.fonts.ready;
  }, at);
  await page.screenshot({ path: join(SHOTS, file), animations: 'disabled', caret: 'hide', scale: 'css' });
  console.log(`# wrote ${join(SHOTS, file)}`);
}

/**
 * Nothing executable came out of the probes: no element with an event
 * handler attribute anywhere, no img[src=x], script, frame or object in
 * #main, no link leaving the app.
 * @param {Page} page
 * @param {string} where
 */
async function inert(page, where) {
  const found = await page.evaluate(() => {
    /** @type {string[]} */
    const out = [];
    for (const el of document.querySelectorAll('*')) {
      for (const a of el.getAttributeNames()) if (/^on/i.test(a)) out.push(`<${el.tagName.toLowerCase()} ${a}>`);
    }
    for (const el of document.querySelectorAll('img[src="x"]')) out.push(`<img src=${el.getAttribute('src')}>`);
    const main = document.getElementById('main');
    if (main) {
      for (const el of main.querySelectorAll('script, iframe, object, embed, frame, foreignObject')) out.push(`<${el.tagName.toLowerCase()}> in #main`);
      for (const el of main.querySelectorAll('img, image, svg [href], svg [*|href]')) {
        const src = el.getAttribute('src') || el.getAttribute('href') || el.getAttributeNS('http://www.w3.org/1999/xlink', 'href') || '';
        if (!src.startsWith('/ui/s/')) out.push(`<${el.tagName.toLowerCase()} src=${src}> in #main`);
      }
      for (const el of main.querySelectorAll('[href]')) {
        const h = el.getAttribute('href') || '';
        if (!h.startsWith('#/') && !/^\/(?![/\\])/.test(h)) out.push(`href=${h}`);
      }
    }
    return out;
  });
  check(`${where}: the probes stay inert (no injected element, handler or link)`, found.length === 0, found.join(', '));
}

/**
 * `text` is shown, as text, inside `scope` (default #main).
 * @param {Page} page
 * @param {string} text
 * @param {string} where
 * @param {string} [scope]
 */
async function seesText(page, text, where, scope = '#main') {
  const loc = page.locator(scope).getByText(text, { exact: false }).first();
  let ok = true;
  try {
    await loc.waitFor({ state: 'visible', timeout: WAIT });
  } catch {
    ok = false;
  }
  check(`${where}: shows ${JSON.stringify(text)} as text`, ok,
    ok ? '' : await page.locator(scope).innerText().catch((e) => String(e)));
}

/**
 * What has keyboard focus, in words.
 * @param {Page} page
 */
function focused(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    if (!a) return { tag: '', id: '', text: '', href: '', nav: false, role: '' };
    return {
      tag: a.tagName.toLowerCase(),
      id: a.id,
      text: (a.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 60),
      href: a.getAttribute('href') || '',
      nav: !!a.closest('nav.site-nav'),
      role: a.getAttribute('role') || a.getAttribute('type') || '',
    };
  });
}

/** @typedef {Awaited<ReturnType<typeof focused>>} Focus */

/**
 * Waits until focus is on #main (and the navigation marks `nav` as the
 * current page, when given); returns what has focus then, or after the
 * wait ran out.
 * @param {Page} page
 * @param {string} [nav]
 */
async function focusOnMain(page, nav = '') {
  await page.waitForFunction((n) => document.activeElement?.id === 'main'
    && (!n || document.querySelector('nav.site-nav a[aria-current=page]')?.textContent === n), nav, { timeout: WAIT })
    .catch(() => {});
  return focused(page);
}

/**
 * Presses Tab (or Shift+Tab) until `want` holds for the focused element.
 * @param {Page} page
 * @param {(f: Focus) => boolean} want
 * @param {{back?: boolean, max?: number, what?: string}} [o]
 */
async function tabTo(page, want, o = {}) {
  /** @type {string[]} */
  const path = [];
  for (let i = 0; i < (o.max || 80); i++) {
    await page.keyboard.press(o.back ? 'Shift+Tab' : 'Tab');
    const f = await focused(page);
    if (want(f)) return f;
    path.push(`${f.tag}${f.id ? `#${f.id}` : ''}${f.text ? `"${f.text.slice(0, 20)}"` : ''}`);
  }
  throw new Error(`${o.back ? 'Shift+Tab' : 'Tab'} never reached ${o.what || 'the element'}; focus went ${path.join(' → ')}`);
}

// ---------------------------------------------------------------------------
// The run

/** @type {Rec[]} */
const seeded = [];
/** @type {Rec | null} */
let target = null;

await part('the server sends a strict CSP on every /ui/ reply', async () => {
  const ui = await api('/ui/', { token: null, headers: { Accept: 'text/html' } });
  const cfg = await api('/ui/config.json', { token: null });
  const html = ui.text;
  const asset = (html.match(/\/ui\/s\/[0-9a-f]+\/js\/app\.js/) || [''])[0];
  const js = asset ? await api(asset, { token: null, headers: { Accept: '*/*' } }) : null;
  for (const [what, r] of /** @type {Array<[string, Awaited<ReturnType<typeof api>> | null]>} */ ([
    ['/ui/', ui], ['/ui/config.json', cfg], [asset || 'the app.js asset', js]])) {
    const csp = r ? r.headers.get('content-security-policy') || '' : '';
    check(`CSP of ${what}: default-src 'self', frame-ancestors 'none', base-uri 'none', nothing unsafe-`,
      !!r && r.status === 200 && csp.includes("default-src 'self'") && csp.includes("frame-ancestors 'none'")
        && csp.includes("base-uri 'none'") && !csp.includes('unsafe-'),
      r ? `${r.status} ${csp}` : 'no app.js link in /ui/');
  }
  const csp = ui.headers.get('content-security-policy') || '';
  check("CSP of /ui/ requires Trusted Types with no policy and no inline script", csp.includes("require-trusted-types-for 'script'")
    && csp.includes("trusted-types 'none'") && /script-src 'self'(;|$)/.test(csp), csp);
});

await part('the CSP violation watch catches a deliberate violation (control)', async () => {
  const control = newWatch();
  const ctx = await newContext('control', { sink: control });
  const page = await ctx.newPage();
  await page.goto(`${BASE}/ui/`);
  await page.locator('#token').waitFor();
  const threw = await page.evaluate(() => {
    try {
      Reflect.set(document.createElement('div'), 'inner' + 'HTML', '<b>x</b>');
      return false;
    } catch {
      return true;
    }
  });
  await page.evaluate(() => {
    const s = document.createElement('style');
    s.textContent = 'body { outline: 0 }';
    document.head.appendChild(s);
  });
  const seen = await poll(async () => control.csp.length, (n) => n >= 2, { timeout: WAIT, what: 'two violation reports' }).catch(() => control.csp.length);
  check('control: Trusted Types refuses an HTML string and both violations are reported',
    threw && seen >= 2 && control.csp.some((v) => v.includes('trusted-types')) && control.csp.some((v) => v.includes('style-src')),
    `threw=${threw} ${control.csp.join(' ; ')}`);
  const logged = await poll(async () => control.cspConsole.length, (n) => n >= 2, { timeout: WAIT, what: 'two console reports' })
    .catch(() => control.cspConsole.length);
  check('control: the console watch sees both violations too', logged >= 2, control.cspConsole);
  // axe finds a violation that is there (an unlabelled field), so a clean
  // report later means something.
  await page.evaluate(() => {
    const input = document.createElement('input');
    input.id = 'axe-control';
    document.getElementById('main')?.appendChild(input);
  });
  await page.evaluate(AXE_SOURCE);
  const ids = await page.evaluate(async () => {
    const res = await /** @type {any} */ (window).axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((/** @type {any} */ v) => `${v.id}:${v.impact}`);
  });
  check('control: axe reports an unlabelled field as a critical "label" violation', ids.includes('label:critical'), ids);
  await ctx.close();
});

await part('seed: realistic records and a checkpoint over them', async () => {
  const json = (/** @type {unknown} */ o) => JSON.stringify(o, null, 2);
  const specs = [
    { type: 'application/json', labels: ['case=4711', `batch=${RUN}`, 'custodian=j.doe', 'source=mail-gateway'],
      payload: json({ from: 'j.doe@example.com', to: 'legal@example.com', subject: 'Contract draft v3', received: '2026-03-02T09:14:00Z' }) },
    { type: 'application/pdf', labels: ['case=4711', `batch=${RUN}`, 'custodian=j.doe', 'exhibit=A-12'],
      payload: `%PDF-1.7\n% contract draft ${RUN}\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n` },
    { type: 'text/csv', labels: ['case=4711', `batch=${RUN}`, 'source=erp-export'],
      payload: `invoice,amount,currency\nINV-1001,1200.00,EUR\nINV-1002,830.50,EUR\n# ${RUN}\n` },
    { type: 'image/png', labels: ['case=4712', `batch=${RUN}`, 'device=camera-3', 'site=warehouse-b'],
      payload: Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...Buffer.from(RUN)]) },
    { type: 'text/plain', labels: ['case=4712', `batch=${RUN}`, 'source=chat-export'],
      payload: `[09:12] alice: the shipment left at 08:50\n[09:13] bob: confirmed (${RUN})\n` },
    { type: 'application/json', labels: ['case=4713', `batch=${RUN}`, 'source=access-log'],
      payload: json({ user: 'm.roe', door: 'B-2', at: '2026-03-02T21:03:11Z', run: RUN }) },
  ];
  for (const s of specs) seeded.push(await ingest(s));
  target = seeded[0];
  const size = await waitCovered('evidence', Math.max(...seeded.map((r) => r.leaf_index)));
  check(`seeded ${seeded.length} records through POST /api/v1/evidence; a checkpoint covers them`, size > target.leaf_index, size);
});

/** @type {BrowserContext} */
const mainCtx = await newContext('main');
const page = await mainCtx.newPage();

await part('sign in, find the record through the Evidence search, see it verified', async () => {
  if (!target) throw new Error('no record was seeded');
  const rec = target;
  await page.goto(`${BASE}/ui/`);
  await page.waitForFunction(() => location.hash.startsWith('#/signin'));
  check('a visitor without a token lands on #/signin', page.url().includes('#/signin'), page.url());
  await signIn(page, TOKEN);
  const who = await page.locator('#who').innerText();
  check('signed in: #/overview, the header names the principal', who.includes('test:cli'), who);
  await page.locator('[data-testid=key-pinned][data-log=audit]').waitFor({ timeout: WAIT });
  const pins = await page.locator('[data-testid=key-pinned]').count();
  check('the overview pins both logs\' keys on first use', pins === 2, `${pins} key-pinned notes`);
  const navs = await page.locator('nav.site-nav a').allInnerTexts();
  check('the navigation offers Overview, Evidence, Consistency, Audit, Tasks, Bundles',
    JSON.stringify(navs) === JSON.stringify(['Overview', 'Evidence', 'Consistency', 'Audit', 'Tasks', 'Bundles']), navs);

  await page.getByRole('link', { name: 'Evidence', exact: true }).click();
  await page.getByLabel('Label', { exact: true }).fill(`batch=${RUN}`);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForFunction((q) => location.hash.startsWith('#/evidence?') && decodeURIComponent(location.hash).includes(q), `label=batch=${RUN}`);
  const rows = await poll(() => page.locator('[data-testid=evidence-row]').allInnerTexts(),
    (t) => t.length === seeded.length && t.every((x) => x.includes(`batch=${RUN}`)), { what: `${seeded.length} rows labelled batch=${RUN}` })
    .catch((e) => [String(e)]);
  check(`the Evidence search by label batch=${RUN} lists exactly this run's ${seeded.length} records`,
    rows.length === seeded.length && rows.some((x) => x.includes(rec.id)), rows);
  await page.locator('[data-testid=evidence-row]').filter({ hasText: rec.id }).getByRole('link', { name: rec.id }).click();
  await page.waitForFunction((id) => location.hash === `#/record/${id}`, rec.id);
  const r = await panel(page);
  expectVerified('the record page verifies the record in the browser: every step ok, "verified" shown', r, RECORD_STEPS);
  await seesText(page, 'custodian', 'the record page');
});

await part('tampered replies fail verification at the right step', async () => {
  if (!target) throw new Error('no record');
  const id = target.id;
  const proofPath = `/api/v1/evidence/${id}/proof`;
  const recordPath = `/api/v1/evidence/${id}`;

  // (a) one inclusion proof hash changed
  let hits = await tampered(page, (u) => u.pathname === proofPath, (b) => ({
    ...b, inclusion_proof: b.inclusion_proof.map((/** @type {string} */ p, /** @type {number} */ i) => (i === 0 ? flip(p) : p)),
  }), async () => {
    await page.reload();
    expectFailed('tamper (a): a changed inclusion proof hash fails at "inclusion"', await panel(page), 'inclusion');
  });
  check('tamper (a): the rewritten proof was served', hits > 0, `${hits} replies rewritten`);

  // (b) the checkpoint's root changed: its signature no longer matches
  hits = await tampered(page, (u) => u.pathname === proofPath, (b) => {
    const lines = b.checkpoint.split('\n');
    lines[2] = flip(lines[2]);
    return { ...b, checkpoint: lines.join('\n') };
  }, async () => {
    await page.reload();
    expectFailed('tamper (b): a checkpoint with a changed root fails at "signature"', await panel(page), 'signature');
  });
  check('tamper (b): the rewritten checkpoint was served', hits > 0, `${hits} replies rewritten`);

  // (c) a checkpoint signed by a foreign Ed25519 key under the log's name
  const bundle = (await api(proofPath)).json;
  const forged = foreignNote(bundle.checkpoint);
  const forgedBundle = JSON.stringify({ ...bundle, checkpoint: forged.note });
  const selfCheck = await verifyProofBundle('evidence', forgedBundle, null, [forged.key]);
  check('tamper (c): the forged note is a valid signed note under the foreign key (checked in Node)',
    selfCheck.ok, selfCheck.steps.map((s) => `${s.name}:${s.ok ? 'ok' : s.detail}`).join(' '));
  hits = await tampered(page, (u) => u.pathname === proofPath, (b) => ({ ...b, checkpoint: forged.note }), async () => {
    await page.reload();
    const r = await panel(page);
    expectFailed('tamper (c): a checkpoint signed by a foreign key fails at "signature"', r, 'signature');
    const sig = r.steps.find((s) => s.name === 'signature');
    check('tamper (c): the signature step says the checkpoint is not signed by a pinned key',
      !!sig && sig.detail.includes('not signed by a pinned key'), sig ? sig.detail : r.steps);
  });
  check('tamper (c): the forged checkpoint was served', hits > 0, `${hits} replies rewritten`);

  // (d) the record as fetched (not the bundle) carries another label
  hits = await tampered(page, (u) => u.pathname === recordPath, (rec) => ({
    ...rec, labels: { ...rec.labels, case: '9999' },
  }), async () => {
    await page.reload();
    expectFailed('tamper (d): a record whose label was changed fails at "record"', await panel(page), 'record');
  });
  check('tamper (d): the rewritten record was served', hits > 0, `${hits} replies rewritten`);

  await page.reload();
  expectVerified('with the replies untouched again the record verifies', await panel(page), RECORD_STEPS);
});

await part('a tampered consistency proof fails once the log has grown', async () => {
  if (!target) throw new Error('no record');
  const latest = (/** @type {string} */ log) => consistencyPanel(log);
  await go(page, '#/consistency');
  expectVerified('consistency page: the evidence log\'s latest checkpoint checks out', await panel(page, latest('evidence')));
  expectVerified('consistency page: the audit log\'s latest checkpoint checks out', await panel(page, latest('audit')));
  const lastSize = await page.evaluate(() => Number((localStorage.getItem('evault.last.evidence') || '').split('\n')[1]));
  const grown = await ingest({
    type: 'application/json', labels: ['case=4711', `batch=${RUN}`, 'source=mail-gateway'],
    payload: JSON.stringify({ subject: 'Re: Contract draft v3', run: RUN }),
  });
  seeded.push(grown);
  const size = await waitCovered('evidence', Math.max(grown.leaf_index, lastSize));
  check('the log grew past the checkpoint this browser verified last', size > lastSize, `last verified ${lastSize}, now ${size}`);
  const hits = await tampered(page, (u) => u.pathname === '/api/v1/tree/consistency', (b) => ({
    ...b, proof: b.proof.length ? [flip(b.proof[0]), ...b.proof.slice(1)] : [Buffer.alloc(32, 1).toString('base64')],
  }), async () => {
    await page.reload();
    expectFailed('tamper (e): a changed consistency proof fails at "consistency" on the consistency page',
      await panel(page, latest('evidence')), 'consistency');
    expectVerified('tamper (e): the audit log, not tampered with, still checks out', await panel(page, latest('audit')));
    await go(page, `#/record/${target?.id}`);
    expectFailed('tamper (e): the same on the record page fails at "history"', await panel(page), 'history');
  });
  check('tamper (e): the rewritten consistency proofs were served', hits >= 2, `${hits} replies rewritten`);
  const kept = await page.evaluate(() => Number((localStorage.getItem('evault.last.evidence') || '').split('\n')[1]));
  check('a failed check does not move the last verified checkpoint', kept === lastSize, `${lastSize} → ${kept}`);
  await go(page, '#/consistency');
  expectVerified('untampered, the grown log is consistent with the last verified checkpoint', await panel(page, latest('evidence')));
});

await part('a latest checkpoint older than the last verified one is never "Consistent"; an older proof still proves inclusion', async () => {
  if (!target) throw new Error('no record');
  const rec = target;
  await go(page, '#/consistency');
  expectVerified('rollback: before, the latest checkpoint checks out', await panel(page, consistencyPanel('evidence')));
  const lastNote = await storage(page, 'evault.last.evidence');
  const lastSize = sizeOf(lastNote);
  /** @type {Array<{size: number, note: string, created_at: string}>} */
  const list = (await api('/api/v1/checkpoints?limit=100')).json.items;
  const older = list.filter((c) => c.size < lastSize && c.size > rec.leaf_index).at(-1);
  if (!older) throw new Error(`no checkpoint older than ${lastSize} covers leaf ${rec.leaf_index}: ${list.map((c) => c.size)}`);

  // The server's "latest" is a genuine older checkpoint (a stale or split view).
  let hits = await answered(page, (u) => u.pathname === '/api/v1/checkpoints/latest', () => ({ body: JSON.stringify(older) }), async () => {
    await page.reload();
    const r = await panel(page, consistencyPanel('evidence'));
    expectFailed(`rollback: a latest checkpoint (size ${older.size}) older than the last verified one (size ${lastSize}) fails at "consistency"`, r, 'consistency');
    const st = r.steps.find((x) => x.name === 'consistency');
    check('rollback: the step says the latest checkpoint is older than one this browser already verified, and that it is a prefix of it',
      !!st && st.detail.includes(`the server's latest checkpoint (size ${older.size}) is older than one this browser already verified (size ${lastSize})`)
        && st.detail.includes('it is a prefix of that one'), st ? st.detail : r.steps);
    check('rollback: the verdict is not "Consistent"', r.state === 'failed' && !/consistent/i.test(r.verdict), r.verdict);
    expectVerified('rollback: the audit log, not rolled back, still checks out', await panel(page, consistencyPanel('audit')));
  });
  check('rollback: the older checkpoint was served as the latest', hits > 0, `${hits} replies`);
  check('rollback: the last verified checkpoint stays the larger one', (await storage(page, 'evault.last.evidence')) === lastNote,
    sizeOf(await storage(page, 'evault.last.evidence')));

  // The record's proof against that older checkpoint: inclusion holds.
  const proofPath = `/api/v1/evidence/${rec.id}/proof`;
  const olderProof = await api(`${proofPath}?tree_size=${older.size}`);
  if (olderProof.status !== 200) throw new Error(`GET ${proofPath}?tree_size=${older.size}: ${olderProof.status} ${olderProof.text}`);
  hits = await answered(page, (u) => u.pathname === proofPath, () => ({ body: olderProof.text }), async () => {
    await go(page, `#/record/${rec.id}`);
    const r = await panel(page);
    expectVerified('an older proof checkpoint: the record verifies (an older checkpoint still proves inclusion)', r, RECORD_STEPS);
    const hist = r.steps.find((x) => x.name === 'history');
    check('an older proof checkpoint: the history step says it is older than the last verified one, and a prefix of it',
      !!hist && hist.detail.includes(`the proof's checkpoint (size ${older.size}) is older than the one last verified here (size ${lastSize}), and a prefix of it`),
      hist ? hist.detail : r.steps);
  });
  check('an older proof checkpoint was served', hits > 0, `${hits} replies`);
  check('an older proof checkpoint does not become the last verified one', (await storage(page, 'evault.last.evidence')) === lastNote,
    sizeOf(await storage(page, 'evault.last.evidence')));
});

await part('the pinned origin and keys decide: another origin fails at "checkpoint", another key at "signature"; trusting fixes it', async () => {
  if (!target) throw new Error('no record');
  const rec = target;
  const pinKey = 'evault.pin.evidence';
  const pinText = await storage(page, pinKey);
  if (!pinText) throw new Error('no evidence pin');
  const pin = JSON.parse(pinText);
  const serverOrigin = (await api('/api/v1/log')).json.origin;
  const trust = page.locator('[data-testid=key-changed][data-log=evidence]').getByRole('button', { name: "Trust the server's new keys" });

  // (1) The pin names another origin (same keys): the checkpoint is well
  // signed by a pinned key, but of another log than the pinned one.
  await storage(page, pinKey, JSON.stringify({ ...pin, origin: 'other.example/log' }));
  await go(page, `#/record/${rec.id}`);
  let r = await panel(page);
  expectFailed('pinned origin: a checkpoint of another origin than the pinned one fails at "checkpoint" on the record page', r, 'checkpoint');
  const cp = r.steps.find((x) => x.name === 'checkpoint');
  check('pinned origin: the step says whose checkpoint it is and which log is pinned',
    !!cp && cp.detail.includes(`checkpoint of ${JSON.stringify(serverOrigin)}, but this log is "other.example/log"`), cp ? cp.detail : r.steps);
  check('pinned origin: the key-changed notice is shown', await page.locator('[data-testid=key-changed][data-log=evidence]').isVisible());
  await go(page, '#/consistency');
  r = await panel(page, consistencyPanel('evidence'));
  expectFailed('pinned origin: the consistency page fails at "checkpoint" too', r, 'checkpoint');
  await go(page, `#/record/${rec.id}`);
  await panel(page);
  await trust.click();
  r = await panel(page);
  expectVerified('pinned origin: after "Trust the server\'s new keys" the record verifies', r, RECORD_STEPS);
  const adopted = JSON.parse((await storage(page, pinKey)) || '{}');
  check('pinned origin: the pin now holds the server\'s origin', adopted.origin === serverOrigin, adopted);

  // (2) The pin holds another key (same origin): the checkpoint is not
  // signed by a pinned key.
  const bundle = (await api(`/api/v1/evidence/${rec.id}/proof`)).json;
  const foreign = foreignNote(bundle.checkpoint);
  await storage(page, pinKey, JSON.stringify({ ...pin, keys: [foreign.key] }));
  await go(page, `#/record/${rec.id}`);
  r = await panel(page);
  check('a changed key: the key-changed notice is shown', await page.locator('[data-testid=key-changed][data-log=evidence]').isVisible());
  expectFailed('a changed key: with only the old pinned key the record page fails at "signature"', r, 'signature');
  await trust.click();
  r = await panel(page);
  expectVerified('a changed key: after "Trust the server\'s new keys" the record verifies', r, RECORD_STEPS);
  const rotated = JSON.parse((await storage(page, pinKey)) || '{}');
  check('a changed key: the server\'s keys joined the pinned one (a rotation keeps old keys)',
    Array.isArray(rotated.keys) && rotated.keys[0] === foreign.key && pin.keys.every((/** @type {string} */ k) => rotated.keys.includes(k)), rotated);

  // (3) Two runs in one panel: the first run's proof is held back while
  // "Trust" starts a second; only the second may show its verdict.
  await storage(page, pinKey, JSON.stringify({ ...pin, keys: [foreign.key] }));
  const proofPath = `/api/v1/evidence/${rec.id}/proof`;
  /** @type {() => void} */
  let release = () => {};
  const released = new Promise((res) => { release = () => res(undefined); });
  /** @type {() => void} */
  let holding = () => {};
  const held = new Promise((res) => { holding = () => res(undefined); });
  let requests = 0;
  /** @type {string[]} */
  const aborted = [];
  /** @type {Promise<void>} */
  let first = Promise.resolve();
  /** @param {import('playwright-core').Request} req */
  const onFailed = (req) => {
    if (new URL(req.url()).pathname === proofPath) aborted.push(req.failure()?.errorText || 'failed');
  };
  page.on('requestfailed', onFailed);
  /** @param {Route} route */
  const handler = async (route) => {
    requests += 1;
    if (requests === 1) {
      first = (async () => {
        holding();
        await released;
        await route.continue().catch(() => {});
      })();
      return first;
    }
    return route.continue();
  };
  /** @param {URL} u */
  const matcher = (u) => u.pathname === proofPath;
  await page.route(matcher, handler);
  /** @type {string[]} */
  const states = [];
  try {
    await go(page, `#/record/${rec.id}`);
    await held;
    await trust.click();
    r = await panel(page);
    expectVerified('two runs: the run started by "Trust" verifies while the first still waits for its proof', r, RECORD_STEPS);
    release();
    await first;
    // The first run has its reply (or was aborted): watch the panel for a
    // while; it must stay the second run's.
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      states.push((await page.locator(RECORD_PANEL).getAttribute('data-state')) || '');
      await new Promise((res) => { setTimeout(res, 50); });
    }
  } finally {
    release();
    await page.unroute(matcher, handler);
    page.off('requestfailed', onFailed);
  }
  check('two runs: the superseded run never writes to the panel', states.length > 0 && states.every((x) => x === 'verified'),
    [...new Set(states)]);
  const after = await panel(page);
  expectVerified('two runs: the panel still shows the second run\'s verdict', after, RECORD_STEPS);
  check('two runs: the superseded run\'s proof request was aborted', aborted.length >= 1, { requests, aborted });
  await storage(page, pinKey, pinText);
});

await part('the record or event verified is the one in the address', async () => {
  if (!target) throw new Error('no record');
  const rec = target;
  const other = seeded.find((x) => x.id !== rec.id);
  if (!other) throw new Error('no second record');
  const otherRecord = await api(`/api/v1/evidence/${other.id}`);
  const otherProof = await api(`/api/v1/evidence/${other.id}/proof`);
  const keys = JSON.parse((await storage(page, 'evault.pin.evidence')) || '{}').keys;
  const alone = await verifyProofBundle('evidence', otherProof.text, otherRecord.text, keys);
  check('wrong record: the other record\'s reply and proof verify on their own (checked in Node)', alone.ok,
    alone.steps.map((x) => `${x.name}:${x.ok ? 'ok' : x.detail}`).join(' '));
  const hits = await answered(page, (u) => u.pathname === `/api/v1/evidence/${rec.id}` || u.pathname === `/api/v1/evidence/${rec.id}/proof`,
    (u) => ({ body: u.pathname.endsWith('/proof') ? otherProof.text : otherRecord.text }), async () => {
      await go(page, `#/record/${rec.id}`);
      const r = await panel(page);
      expectFailed('wrong record: another record and its valid proof, sent for this id, fail at "record"', r, 'record');
      const st = r.steps.find((x) => x.name === 'record');
      check('wrong record: the step names the id asked for and the one sent',
        !!st && st.detail.includes(`asked for record ${rec.id}, the server sent record ${other.id}`), st ? st.detail : r.steps);
      check('wrong record: the metadata says the server sent another record', await page.locator('[data-testid=wrong-id]').isVisible());
    });
  check('wrong record: both replies were rewritten', hits >= 2, `${hits} replies`);

  const events = (await api('/api/v1/audit?limit=2')).json.items;
  if (events.length < 2) throw new Error('fewer than two audit events');
  await waitCovered('audit', Math.max(events[0].leaf_index, events[1].leaf_index));
  const [ea, eb] = events;
  const ebEvent = await api(`/api/v1/audit/events/${eb.id}`);
  const ebProof = await api(`/api/v1/audit/events/${eb.id}/proof`);
  const evHits = await answered(page, (u) => u.pathname === `/api/v1/audit/events/${ea.id}` || u.pathname === `/api/v1/audit/events/${ea.id}/proof`,
    (u) => ({ body: u.pathname.endsWith('/proof') ? ebProof.text : ebEvent.text }), async () => {
      await go(page, `#/audit/${ea.id}`);
      const r = await panel(page, AUDIT_PANEL);
      expectFailed('wrong event: another audit event and its valid proof, sent for this id, fail at "record"', r, 'record');
    });
  check('wrong event: both replies were rewritten', evHits >= 2, `${evHits} replies`);
  await go(page, `#/audit/${ea.id}`);
  expectVerified('untouched, the audit event verifies', await panel(page, AUDIT_PANEL));
});

await part('ids that are not UUIDs never reach the API', async () => {
  for (const hash of ['#/record/..', '#/record/%2e%2e', '#/record/.', '#/audit/..', '#/audit/%2E%2E', '#/record/NOT-AN-ID']) {
    /** @type {string[]} */
    const apiRequests = [];
    /** @param {import('playwright-core').Request} req */
    const onRequest = (req) => {
      const u = new URL(req.url());
      if (u.pathname.startsWith('/api/')) apiRequests.push(`${req.method()} ${u.pathname}`);
    };
    page.on('request', onRequest);
    try {
      await go(page, hash);
      await page.locator('[data-testid=not-an-id]').waitFor({ timeout: WAIT });
      await settled(page);
    } finally {
      page.off('request', onRequest);
    }
    const text = await page.locator('[data-testid=not-an-id]').innerText();
    check(`${hash}: "Not a … id" is shown and no API request is made`, /^✗ Not an? (record|audit event) id\./.test(text) && apiRequests.length === 0,
      { text, apiRequests });
  }
});

await part('the consistency page: errors are errors, and the pair form checks the sizes it was asked for', async () => {
  const latestPath = '/api/v1/checkpoints/latest';
  const problem = (/** @type {number} */ status, /** @type {string} */ title) =>
    ({ status, body: JSON.stringify({ type: 'about:blank', title, status, detail: 'injected by the test' }) });
  await go(page, '#/consistency');
  let hits = await answered(page, (u) => u.pathname === latestPath, () => problem(503, 'Service Unavailable'), async () => {
    await page.reload();
    const r = await panel(page, consistencyPanel('evidence'));
    expectFailed('latest checkpoint 503: a failure at "checkpoint", not "nothing to check"', r, 'checkpoint');
  });
  hits += await answered(page, (u) => u.pathname === latestPath, () => problem(403, 'Forbidden'), async () => {
    await page.reload();
    expectFailed('latest checkpoint 403: a failure at "checkpoint"', await panel(page, consistencyPanel('evidence')), 'checkpoint');
  });
  hits += await answered(page, (u) => u.pathname === latestPath, () => problem(404, 'Not Found'), async () => {
    // This browser verified a checkpoint of the log before: "none signed"
    // now is a rollback, not an empty log.
    const last = await storage(page, 'evault.last.evidence');
    check('a checkpoint of the evidence log was verified here before', sizeOf(last) > 0, last);
    await page.reload();
    expectFailed('latest checkpoint 404 after one was verified here: a failure at "consistency"',
      await panel(page, consistencyPanel('evidence')), 'consistency');
    // A browser that never verified one: nothing to check yet.
    await storage(page, 'evault.last.evidence', null);
    try {
      await page.reload();
      const r = await panel(page, consistencyPanel('evidence'));
      check('latest checkpoint 404 in a browser that verified none: neutral, nothing to check',
        r.state === 'neutral' && /nothing to check/i.test(r.verdict), describe(r));
    } finally {
      await storage(page, 'evault.last.evidence', last);
    }
  });
  const real = (await api(latestPath)).json;
  hits += await answered(page, (u) => u.pathname === latestPath, () => ({ body: JSON.stringify({ ...real, note: 5 }) }), async () => {
    await page.reload();
    expectFailed('a latest checkpoint whose note is not text: a failure, not a panel running forever',
      await panel(page, consistencyPanel('evidence')), 'checkpoint');
  });
  check('the latest checkpoint replies were replaced', hits >= 4, `${hits} replies`);
  await page.reload();
  expectVerified('untouched again, the latest checkpoint checks out', await panel(page, consistencyPanel('evidence')));

  /** @type {Array<{size: number, note: string, created_at: string}>} */
  const list = (await api('/api/v1/checkpoints?limit=100')).json.items.filter((/** @type {{size: number}} */ x) => x.size > 0);
  if (list.length < 2) throw new Error(`fewer than two checkpoints: ${list.map((x) => x.size)}`);
  const [a, c] = [list[0], list[list.length - 1]];
  const b = c;
  const sec = page.locator('section[data-log=evidence]');
  const submit = async (/** @type {number} */ from, /** @type {number} */ to) => {
    await sec.getByLabel('Older tree size').fill(String(from));
    await sec.getByLabel('Newer tree size').fill(String(to));
    await sec.getByRole('button', { name: 'Check', exact: true }).click();
  };
  await submit(c.size, a.size);
  const order = sec.locator('[data-testid=pair-order]');
  await order.waitFor({ timeout: WAIT });
  check('pair: an older size above the newer one is refused with a message, not swapped',
    (await order.innerText()).includes(`The older size (${c.size}) is larger than the newer size (${a.size})`)
      && (await sec.locator(consistencyPanel('evidence', 'pair')).count()) === 0, await order.innerText());
  await submit(a.size, c.size);
  let r = await panel(page, consistencyPanel('evidence', 'pair'));
  expectVerified(`pair: size ${a.size} against size ${c.size} is consistent`, r);
  check('pair: the verdict names the sizes verified', r.verdict.includes(`size ${c.size} extends the one of size ${a.size}`), r.verdict);
  // The server answers the older size with a checkpoint of another size.
  hits = await answered(page, (u) => u.pathname === `/api/v1/checkpoints/${a.size}`, () => ({ body: JSON.stringify(b) }), async () => {
    await submit(a.size, c.size);
    r = await panel(page, consistencyPanel('evidence', 'pair'));
    expectFailed('pair: a checkpoint of another size than asked fails at "checkpoint"', r, 'checkpoint');
    const st = r.steps.find((x) => x.name === 'checkpoint');
    check('pair: the step names the size asked for and the one sent',
      !!st && st.detail.includes(`asked for the older checkpoint of size ${a.size}, the server sent one of size ${b.size}`), st ? st.detail : r.steps);
  });
  check('pair: the checkpoint reply was replaced', hits > 0, `${hits} replies`);
});

await part('Forget pinned keys: a confirmation, from the keyboard; the next check pins on first use again', async () => {
  await go(page, '#/consistency');
  await panel(page, consistencyPanel('evidence'));
  await panel(page, consistencyPanel('audit'));
  const before = JSON.parse((await storage(page, 'evault.pin.evidence')) || '{}');
  const auditBefore = await storage(page, 'evault.pin.audit');
  const openName = "Forget the evidence log's pinned keys…";
  const yesName = "Forget the evidence log's keys";
  await page.locator('#main').focus();
  let f = await tabTo(page, (x) => x.tag === 'button' && x.text === openName, { what: `the "${openName}" button` });
  await page.keyboard.press('Enter');
  f = await focused(page);
  check('forget: Enter opens the confirmation and focus moves to its confirm button', f.tag === 'button' && f.text === yesName, f);
  check('forget: nothing is forgotten before confirming', (await storage(page, 'evault.pin.evidence')) !== null);
  await axe(page, 'consistency with the forget confirmation open');
  await page.keyboard.press('Escape');
  f = await focused(page);
  check('forget: Escape cancels and focus returns to the button', f.tag === 'button' && f.text === openName, f);
  check('forget: cancelling forgets nothing', JSON.parse((await storage(page, 'evault.pin.evidence')) || '{}').pinned_at === before.pinned_at);
  await page.keyboard.press('Enter');
  await tabTo(page, (x) => x.tag === 'button' && x.text === 'Cancel', { what: 'the Cancel button', max: 3 });
  await tabTo(page, (x) => x.tag === 'button' && x.text === yesName, { back: true, what: 'the confirm button', max: 3 });
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=key-pinned][data-log=evidence][data-pin-state=first-use]').waitFor({ timeout: WAIT });
  const r = await panel(page, consistencyPanel('evidence'));
  const after = JSON.parse((await storage(page, 'evault.pin.evidence')) || '{}');
  check('forget: confirmed, the evidence log is pinned again on first use (a new pin)', after.pinned_at !== before.pinned_at
    && JSON.stringify(after.keys) === JSON.stringify(before.keys), { before, after });
  expectVerified('forget: the latest checkpoint is verified as the new starting point', r);
  check('forget: the audit log\'s pin is untouched', (await storage(page, 'evault.pin.audit')) === auditBefore);
});

await part('Bundles: an export bundle runs to success and can be downloaded; Tasks lists it', async () => {
  await page.getByRole('link', { name: 'Bundles', exact: true }).click();
  await page.waitForFunction(() => location.hash === '#/bundles');
  await page.getByLabel('Label', { exact: true }).fill(`batch=${RUN}`);
  await page.getByRole('checkbox', { name: 'Include payloads' }).check();
  await page.getByRole('button', { name: 'Start export', exact: true }).click();
  const card = page.locator('[data-testid=bundle-task]');
  await card.waitFor({ timeout: WAIT });
  /** @type {string[]} */
  const states = [];
  const final = await poll(async () => {
    const s = (await card.getAttribute('data-state')) || '';
    if (states[states.length - 1] !== s) states.push(s);
    return s;
  }, (s) => ['succeeded', 'failed', 'cancelled'].includes(s), { timeout: 60_000, what: 'the export to finish' });
  check('the export task reaches data-state="succeeded"', final === 'succeeded', `states ${states.join(' → ')}; ${await card.innerText()}`);
  const bar = await card.locator('progress').evaluate((p) => {
    const el = /** @type {HTMLProgressElement} */ (p);
    return { value: el.value, max: el.max };
  });
  check('its progress bar is full', bar.max > 0 && bar.value === bar.max, bar);
  const taskId = (await card.locator('h2 .mono').innerText()).trim();
  const download = card.getByRole('button', { name: /^Download/ });
  check('a Download button is offered', await download.isVisible(), await card.innerText());
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), download.click()]);
  check('Download saves the bundle (.evb) after checking its SHA-256', dl.suggestedFilename().endsWith('.evb'), dl.suggestedFilename());
  await seesText(page, 'SHA-256 checked', 'Bundles');
  await page.getByRole('link', { name: 'Tasks', exact: true }).click();
  const row = page.locator(`[data-testid=task-row][data-task-id="${taskId}"]`);
  const state = await row.waitFor({ timeout: WAIT }).then(() => row.getAttribute('data-state')).catch((e) => String(e));
  check('the Tasks page lists the export task as succeeded', state === 'succeeded', `${taskId}: ${state}`);

  // A task that reports no SHA-256: the file is saved, and the words say
  // there was nothing to check it against.
  const hits = await tampered(page, (u) => u.pathname === '/api/v1/tasks', (body) => ({
    ...body,
    items: body.items.map((/** @type {any} */ t) => (t.result ? { ...t, result: { ...t.result, sha256: null } } : t)),
  }), async () => {
    await go(page, '#/tasks');
    await row.waitFor({ timeout: WAIT });
    const [dl2] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), row.getByRole('button', { name: /^Download/ }).click()]);
    const status = await row.locator('[data-testid=download-status]').innerText();
    check('a result whose task reported no SHA-256 is saved saying there was no digest to check against, not "SHA-256 checked"',
      /no digest to check against/.test(status) && !/SHA-256 checked/.test(status) && dl2.suggestedFilename().endsWith('.evb'), status);
  });
  check('the task list was served without the SHA-256', hits > 0, `${hits} replies`);
});

await part('axe and screenshots: every page in light and dark', async () => {
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  if (!target) throw new Error('no record');
  const rec = target;
  const auditEv = (await api('/api/v1/audit?operation=evidence.put&limit=1')).json.items[0];
  for (const scheme of /** @type {Array<'light' | 'dark'>} */ (['light', 'dark'])) {
    const ctx = await newContext(`pages-${scheme}`, { colorScheme: scheme });
    const p = await ctx.newPage();
    await p.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
    await p.goto(`${BASE}/ui/`);
    await p.locator('#token').waitFor();
    const bg = await p.evaluate(() => {
      const m = getComputedStyle(document.body).backgroundColor.match(/\d+(\.\d+)?/g) || ['0', '0', '0'];
      const [r, g, b] = m.map(Number);
      return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    });
    check(`${scheme}: the page follows the ${scheme} colour scheme`, scheme === 'dark' ? bg < 0.35 : bg > 0.65, `background luminance ${bg.toFixed(2)}`);
    await settled(p);
    await axe(p, `sign-in (${scheme})`);
    await shot(p, `signin-${scheme}.png`);
    await signIn(p, TOKEN);

    await p.locator('[data-testid=key-pinned][data-log=audit]').waitFor({ timeout: WAIT });
    await p.waitForFunction(() => document.querySelectorAll('svg.chart').length >= 3, null, { timeout: WAIT });
    await settled(p);
    await axe(p, `overview (${scheme})`);
    await shot(p, `overview-${scheme}.png`);

    await go(p, '#/evidence');
    await p.locator('[data-testid=evidence-row]').first().waitFor({ timeout: WAIT });
    await settled(p);
    await axe(p, `evidence (${scheme})`);
    await shot(p, `evidence-${scheme}.png`);

    await go(p, `#/record/${rec.id}`);
    expectVerified(`record page verifies (${scheme})`, await panel(p), RECORD_STEPS);
    await axe(p, `record (${scheme})`);
    await shot(p, `record-${scheme}.png`);

    await go(p, '#/consistency');
    await panel(p, consistencyPanel('evidence'));
    await panel(p, consistencyPanel('audit'));
    await settled(p);
    await axe(p, `consistency (${scheme})`);
    await shot(p, `consistency-${scheme}.png`);

    await go(p, '#/audit');
    await p.locator('[data-testid=audit-row]').first().waitFor({ timeout: WAIT });
    await settled(p);
    await axe(p, `audit (${scheme})`);
    await shot(p, `audit-${scheme}.png`);

    await go(p, `#/audit/${auditEv.id}`);
    expectVerified(`audit event page verifies (${scheme})`, await panel(p, AUDIT_PANEL));
    await axe(p, `audit event (${scheme})`);
    await shot(p, `audit-event-${scheme}.png`);

    await go(p, '#/bundles');
    await settled(p);
    await p.getByRole('button', { name: 'Start export', exact: true }).click();
    await p.locator('[data-testid=bundle-task][data-state=succeeded]').waitFor({ timeout: 60_000 });
    await p.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid=task-row]')];
      return rows.length > 0 && rows.every((r) => ['succeeded', 'failed', 'cancelled'].includes(r.getAttribute('data-state') || ''));
    }, null, { timeout: WAIT });
    await settled(p);
    await axe(p, `bundles (${scheme})`);
    await shot(p, `bundles-${scheme}.png`);

    await go(p, '#/tasks');
    await p.locator('[data-testid=task-row]').first().waitFor({ timeout: WAIT });
    await p.waitForFunction(() => [...document.querySelectorAll('[data-testid=task-row]')]
      .every((r) => ['succeeded', 'failed', 'cancelled'].includes(r.getAttribute('data-state') || '')), null, { timeout: WAIT });
    await settled(p);
    await axe(p, `tasks (${scheme})`);
    await shot(p, `tasks-${scheme}.png`);
    await ctx.close();
  }

  const phone = await newContext('phone', { viewport: { width: 390, height: 844 } });
  const pp = await phone.newPage();
  await signIn(pp, TOKEN);
  await go(pp, `#/record/${rec.id}`);
  expectVerified('record page verifies on a phone-sized screen', await panel(pp), RECORD_STEPS);
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check('the phone-sized record page does not scroll sideways', overflow <= 0, `${overflow}px wider than the screen`);
  await axe(pp, 'record (phone, light)');
  await shot(pp, 'record-phone-light.png', RECORD_PANEL);
  await phone.close();
});

await part('XSS probes in labels, content types, principals and audit fields stay inert', async () => {
  const labels = [`note=${IMG}`, `quote=${SCRIPT}`, `link=${JS_URL}`, `batch=${RUN}`];
  const mine = await ingest({ type: XSS_TYPE, labels, payload: `probe as test:cli ${RUN}` });
  const theirs = await ingest({
    type: XSS_TYPE, token: XSS_TOKEN, labels: labels.slice(1), headerLabel: labels[0], payload: `probe as markup principal ${RUN}`,
  });
  check('the server keeps the probes as given (labels, content type, principal)',
    mine.labels.note === IMG && mine.labels.quote === SCRIPT && mine.labels.link === JS_URL && mine.content_type === XSS_TYPE
      && theirs.ingested_by === XSS_PRINCIPAL && theirs.labels.note === IMG,
    { mine, theirs });
  // A token whose JWS header names a markup key id: refused, and the audit
  // event's reason quotes the kid.
  const enc = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const badToken = `${enc({ alg: 'HS256', typ: 'JWT', kid: IMG })}.${enc({ sub: 'probe', roles: ['auditor'] })}.${Buffer.alloc(32).toString('base64url')}`;
  const refused = await api('/api/v1/whoami', { token: badToken });
  check('a token with a markup kid is refused (401)', refused.status === 401, `${refused.status} ${refused.text}`);
  const kidEvent = await poll(async () => (await auditEvents('outcome=unauthenticated&principal=anonymous'))
    .find((e) => typeof e.reason === 'string' && e.reason.includes(IMG)), (e) => !!e, { what: 'the audit event of the markup kid' });
  const markupFields = Object.entries(kidEvent).filter(([, v]) => typeof v === 'string' && v.includes('<')).map(([k]) => k);
  check('the markup kid reaches the audit log (in the event\'s reason)', markupFields.includes('reason'), kidEvent);
  const putEvent = await poll(async () => (await auditEvents(`principal=${encodeURIComponent(XSS_PRINCIPAL)}&operation=evidence.put`)).at(-1),
    (e) => !!e, { what: 'the evidence.put event of the markup principal' });
  await waitCovered('evidence', Math.max(mine.leaf_index, theirs.leaf_index));
  await waitCovered('audit', Math.max(kidEvent.leaf_index, putEvent.leaf_index));

  // The Evidence list, searched by the markup label.
  await go(page, '#/evidence');
  await page.getByLabel('Label', { exact: true }).fill(`note=${IMG}`);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const rows = await poll(() => page.locator('[data-testid=evidence-row]').allInnerTexts(),
    (t) => t.length >= 2 && t.every((x) => x.includes(IMG)), { what: 'the probe records' }).catch((e) => [String(e)]);
  check('Evidence: the search by the markup label finds both probe records', rows.some((x) => x.includes(mine.id)) && rows.some((x) => x.includes(theirs.id)), rows);
  for (const t of [`note=${IMG}`, `quote=${SCRIPT}`, `link=${JS_URL}`, XSS_TYPE, XSS_PRINCIPAL]) await seesText(page, t, 'Evidence list');
  await inert(page, 'Evidence list');

  // The record pages.
  for (const [who, rec] of /** @type {Array<[string, Rec]>} */ ([['test:cli', mine], ['the markup principal', theirs]])) {
    await go(page, `#/record/${rec.id}`);
    expectVerified(`record of ${who} with markup labels verifies`, await panel(page), RECORD_STEPS);
    for (const t of [IMG, SCRIPT, JS_URL, XSS_TYPE]) await seesText(page, t, `record page (${who})`);
    if (rec === theirs) await seesText(page, XSS_PRINCIPAL, `record page (${who})`);
    await inert(page, `record page (${who})`);
  }

  // The Audit list, filtered by the markup principal, and its events.
  await go(page, `#/audit?principal=${encodeURIComponent(XSS_PRINCIPAL)}`);
  await page.locator('[data-testid=audit-row]').first().waitFor({ timeout: WAIT });
  await settled(page);
  await seesText(page, XSS_PRINCIPAL, 'Audit list');
  const principalField = await page.getByLabel('Principal', { exact: true }).inputValue();
  check('Audit list: the filter field holds the markup principal as its value', principalField === XSS_PRINCIPAL, principalField);
  await inert(page, 'Audit list');
  await go(page, `#/audit/${putEvent.id}`);
  expectVerified('audit event of the markup principal verifies', await panel(page, AUDIT_PANEL));
  await seesText(page, XSS_PRINCIPAL, 'audit event page (principal)');
  await inert(page, 'audit event page (principal)');
  await go(page, `#/audit/${kidEvent.id}`);
  expectVerified('audit event with the markup kid verifies', await panel(page, AUDIT_PANEL));
  await seesText(page, IMG, 'audit event page (reason)');
  await inert(page, 'audit event page (reason)');
  await go(page, '#/audit?outcome=unauthenticated');
  await page.locator('[data-testid=audit-row][data-outcome=unauthenticated]').first().waitFor({ timeout: WAIT });
  await settled(page);
  await inert(page, 'Audit list (unauthenticated)');

  // The Overview's content-type chart, and its table.
  await go(page, '#/overview');
  const types = page.locator('article', { has: page.getByRole('heading', { name: 'Records by content type' }) });
  await types.locator('svg.chart').waitFor({ timeout: WAIT });
  const inChart = await types.locator('svg.chart').evaluate((el) => el.textContent || '');
  check('Overview: the content-type chart holds the markup content type as SVG text', inChart.includes(XSS_TYPE), inChart);
  await types.getByText('Show as table').click();
  await seesText(page, XSS_TYPE, 'Overview content-type table', 'article:has(#ch-types) table');
  await inert(page, 'Overview');

  // Signed in as the markup principal itself.
  const xctx = await newContext('xss-ingester');
  const xp = await xctx.newPage();
  await signIn(xp, XSS_TOKEN);
  await seesText(xp, XSS_PRINCIPAL, 'header of the markup principal', '#who');
  await xp.locator('#main').getByText(`Only records ingested by ${XSS_PRINCIPAL}`).first().waitFor({ timeout: WAIT }).catch(() => {});
  await seesText(xp, `Only records ingested by ${XSS_PRINCIPAL}`, 'Overview of the markup principal');
  await inert(xp, 'Overview of the markup principal');
  await go(xp, '#/evidence');
  await xp.locator('[data-testid=evidence-row]').first().waitFor({ timeout: WAIT });
  const own = await xp.locator('[data-testid=evidence-row]').allInnerTexts();
  check('an ingester sees only its own records', own.length > 0 && own.every((t) => t.includes(XSS_PRINCIPAL)), own);
  await inert(xp, 'Evidence list of the markup principal');
  await go(xp, '#/audit');
  const forbidden = xp.locator('[data-testid=forbidden]');
  const fb = await forbidden.first().waitFor({ timeout: WAIT }).then(() => forbidden.first().innerText()).catch((e) => String(e));
  check('an ingester gets a 403 note on the Audit page', /may not see/i.test(fb), fb);
  await xctx.close();
});

await part('an auditor-only token reads and verifies', async () => {
  if (!target) throw new Error('no record');
  const ctx = await newContext('auditor');
  const p = await ctx.newPage();
  await signIn(p, AUDITOR_TOKEN);
  const who = await p.locator('#who').innerText();
  check('auditor: the header names test:auditor (auditor)', who.includes('test:auditor') && who.includes('auditor'), who);
  await go(p, `#/record/${target.id}`);
  expectVerified('auditor: another principal\'s record verifies', await panel(p), RECORD_STEPS);
  await go(p, '#/tasks');
  await settled(p);
  const tasks = await p.locator('[data-testid=task-row]').count();
  check('auditor: the Tasks page lists only the auditor\'s own tasks (none)', tasks === 0, `${tasks} rows`);
  await ctx.close();
});

await part('a token is kept for the tab only once the server accepted it', async () => {
  const ctx = await newContext('keep-after-whoami');
  const p = await ctx.newPage();
  await p.goto(`${BASE}/ui/`);
  await p.waitForFunction(() => location.hash.startsWith('#/signin'));
  /** @type {Array<string | null>} */
  const keptWhileAsked = [];
  await p.route((u) => u.pathname === '/api/v1/whoami', async (route) => {
    keptWhileAsked.push(await p.evaluate(() => sessionStorage.getItem('evault.token')));
    await route.fulfill({
      status: 503, contentType: 'application/problem+json',
      body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'injected by the test' }),
    });
  });
  await p.getByLabel('Access token', { exact: true }).fill(TOKEN);
  await p.getByRole('checkbox', { name: /^Keep for this tab/ }).check();
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.getByRole('alert').filter({ hasText: 'Service Unavailable' }).waitFor({ timeout: WAIT });
  check('keep: while /whoami is asked, the token is not in sessionStorage yet', keptWhileAsked.length === 1 && keptWhileAsked[0] === null, keptWhileAsked);
  const afterFailure = await p.evaluate(() => ({ token: sessionStorage.getItem('evault.token'), hash: location.hash }));
  check('keep: a token /whoami did not accept is not kept, and does not sign in', afterFailure.token === null && afterFailure.hash.startsWith('#/signin'), afterFailure);
  await p.unrouteAll();
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.waitForFunction(() => location.hash === '#/overview', null, { timeout: WAIT });
  const kept = await p.evaluate(() => sessionStorage.getItem('evault.token'));
  check('keep: once accepted, the token is kept for the tab', kept === TOKEN);
  await ctx.close();
});

await part('storage that refuses: verification still works with pins in memory, and the page says so', async () => {
  const ctx = await newContext('storage-refused');
  await ctx.addInitScript(() => {
    const refuse = () => { throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); };
    Storage.prototype.setItem = refuse;
    Storage.prototype.removeItem = refuse;
  });
  const p = await ctx.newPage();
  await signIn(p, TOKEN);
  if (!target) throw new Error('no record');
  await go(p, `#/record/${target.id}`);
  expectVerified('storage refused: the record still verifies (pins kept in memory)', await panel(p), RECORD_STEPS);
  const note = p.locator('[data-testid=pin-storage]').first();
  const text = await note.waitFor({ timeout: WAIT }).then(() => note.innerText()).catch((e) => String(e));
  check('storage refused: the page says the pins last for this page only', /kept in this page's memory only/.test(text) && /QuotaExceededError/.test(text), text);
  await go(p, '#/consistency');
  expectVerified('storage refused: the consistency page checks out too', await panel(p, consistencyPanel('evidence')));
  await ctx.close();

  // sessionStorage that throws when the issuer's reply comes back: the
  // page must not stay at "Loading…".
  const blocked = newWatch();
  const bctx = await newContext('session-storage-blocked', { sink: blocked });
  await bctx.addInitScript(() => {
    Object.defineProperty(window, 'sessionStorage', {
      configurable: true,
      get() { throw new DOMException('The operation is insecure.', 'SecurityError'); },
    });
  });
  const bp = await bctx.newPage();
  await bp.goto(`${BASE}/ui/?code=x&state=y`);
  const alert = bp.getByRole('alert').filter({ hasText: 'blocks sessionStorage' });
  const shown = await alert.waitFor({ timeout: WAIT }).then(() => true).catch(() => false);
  const loading = await bp.locator('#main .loading').count();
  check('sessionStorage blocked at the sign-in reply: an alert instead of "Loading…" forever', shown && loading === 0,
    { shown, loading, main: await bp.locator('#main').innerText() });
  check('sessionStorage blocked: no uncaught error', blocked.pageErrors.length === 0, blocked.pageErrors);
  check('sessionStorage blocked: the code leaves the address bar', new URL(bp.url()).search === '', bp.url());
  await bctx.close();
});

await part('keyboard only: sign in, every nav link, a record', async () => {
  const ctx = await newContext('keyboard');
  const p = await ctx.newPage();
  await p.goto(`${BASE}/ui/`);
  await p.locator('#token').waitFor();
  await p.keyboard.press('Tab');
  let f = await focused(p);
  check('keyboard: the first Tab stop is the skip link', f.text === 'Skip to content', f);
  await p.keyboard.press('Enter');
  f = await focusOnMain(p);
  check('keyboard: Enter on the skip link moves focus to #main', f.id === 'main', f);
  f = await tabTo(p, (x) => x.id === 'token', { what: 'the token field' });
  await p.keyboard.type(TOKEN);
  f = await tabTo(p, (x) => x.id === 'keep', { what: 'the "Keep for this tab" checkbox', max: 3 });
  await p.keyboard.press('Space');
  const kept = await p.locator('#keep').isChecked();
  check('keyboard: Space ticks "Keep for this tab"', kept, f);
  await tabTo(p, (x) => x.id === 'token', { back: true, what: 'the token field', max: 3 });
  await p.keyboard.press('Enter');
  await p.waitForFunction(() => location.hash === '#/overview', null, { timeout: WAIT });
  f = await focusOnMain(p, 'Overview');
  check('keyboard: Enter in the token field signs in; focus is on #main', f.id === 'main', f);

  for (const name of ['Evidence', 'Consistency', 'Audit', 'Tasks', 'Bundles', 'Overview']) {
    const link = await tabTo(p, (x) => x.nav && x.text === name, { back: true, what: `the ${name} link` });
    await p.keyboard.press('Enter');
    const hash = `#/${name.toLowerCase()}`;
    await p.waitForFunction((h) => location.hash === h, hash, { timeout: WAIT });
    f = await focusOnMain(p, name);
    const current = await p.locator('nav.site-nav a[aria-current=page]').innerText();
    check(`keyboard: Shift+Tab reaches "${name}", Enter opens ${hash}, focus moves to #main`,
      link.href === hash && f.id === 'main' && current === name, { link, focus: f, current });
  }

  await tabTo(p, (x) => x.nav && x.text === 'Evidence', { back: true, what: 'the Evidence link' });
  await p.keyboard.press('Enter');
  await p.waitForFunction(() => location.hash === '#/evidence');
  await p.locator('[data-testid=evidence-row]').first().waitFor({ timeout: WAIT });
  const recLink = await tabTo(p, (x) => x.href.startsWith('#/record/'), { what: 'a record link', max: 120 });
  await p.keyboard.press('Enter');
  await p.waitForFunction((h) => location.hash === h, recLink.href, { timeout: WAIT });
  const r = await panel(p);
  f = await focusOnMain(p, 'Evidence');
  check('keyboard: Tab reaches a record in the list, Enter opens it, focus moves to #main', f.id === 'main', f);
  expectVerified('keyboard: the record opened from the keyboard verifies', r, RECORD_STEPS);
  await tabTo(p, (x) => x.tag === 'button' && x.text === 'Download payload', { what: 'the Download payload button' });
  const [dl] = await Promise.all([p.waitForEvent('download', { timeout: WAIT }), p.keyboard.press('Space')]);
  const step = p.locator('[data-testid=payload-step]');
  const ok = await step.waitFor({ timeout: WAIT }).then(() => step.getAttribute('data-ok')).catch((e) => String(e));
  check('keyboard: Space on "Download payload" saves it after its hash checks out', ok === 'true', `${ok} ${dl.suggestedFilename()}`);
  await ctx.close();
});

await mainCtx.close();
await browser.close();

console.log('# the whole run');
check('no Content Security Policy violation event in the whole run', watch.csp.length === 0, watch.csp);
check('no console message about the Content Security Policy or Trusted Types', watch.cspConsole.length === 0, watch.cspConsole);
check('no dialog opened (alert, confirm, prompt)', watch.dialogs.length === 0, watch.dialogs);
check(`no request left ${ORIGIN} (blob: and data: aside)`, watch.foreign.length === 0, watch.foreign);
check('no uncaught error in any page', watch.pageErrors.length === 0, watch.pageErrors);
if (watch.consoleErrors.length) {
  console.log(`# console errors (not failures: refused requests log these): ${short(watch.consoleErrors.slice(0, 8))}`);
}

const secs = ((Date.now() - STARTED) / 1000).toFixed(1);
console.log(`# ${passed} passed, ${failed.length} failed, in ${secs} s`);
if (failed.length) {
  for (const f of failed) console.log(`#   failed: ${f}`);
  process.exit(1);
}
