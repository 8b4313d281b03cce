// The dashboard's OIDC sign-in in a real browser: Debian's Chromium,
// driven by playwright-core (never a browser download, never bypassCSP),
// against a real `evault serve` configured with the mock issuer of
// oidc-issuer.mjs as an `[[oidc]]` issuer with `[oidc.dashboard]`.
//
// The user clicks "Sign in with <issuer>" and lands on the overview signed
// in as the issuer's subject, through the authorization code flow with
// PKCE (S256), state and nonce; the code leaves the address bar; a forged
// or replayed state is refused without a token exchange; a reply naming
// another issuer (RFC 9207 iss) is refused; a validly signed ID token for
// another nonce is refused; no CSP violation, no page error.
//
// Environment: EVAULT_URL (the server), EVAULT_ISSUER (the mock issuer's
// URL), EVAULT_SUBJECT (its subject, default alice), EVAULT_CHROMIUM
// (default /usr/bin/chromium). Prints `ok - …` / `not ok - …` lines and
// exits 1 on any failure.

import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

const BASE = (process.env.EVAULT_URL || '').replace(/\/+$/, '');
const ISSUER = process.env.EVAULT_ISSUER || '';
const SUBJECT = process.env.EVAULT_SUBJECT || 'alice';
if (!BASE || !ISSUER) {
  console.error('set EVAULT_URL and EVAULT_ISSUER');
  process.exit(2);
}
const PRINCIPAL = `${ISSUER}#${SUBJECT}`;
const REDIRECT_URI = `${BASE}/ui/`;

let failures = 0;

/**
 * @param {boolean} ok
 * @param {string} what
 * @param {unknown} [detail] shown on failure
 */
function check(ok, what, detail) {
  if (ok) {
    console.log(`ok - ${what}`);
  } else {
    failures += 1;
    console.log(`not ok - ${what}${detail === undefined ? '' : ` (${typeof detail === 'string' ? detail : JSON.stringify(detail)})`}`);
  }
}

/** @param {string} s */
function s256(s) {
  return createHash('sha256').update(s, 'ascii').digest('base64url');
}

/**
 * Asks the mock issuer for a code as the dashboard would, without a
 * browser; returns the code.
 * @param {string} challenge
 */
async function codeFor(challenge) {
  const u = new URL(`${ISSUER}/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: 'evault-dashboard', redirect_uri: REDIRECT_URI, scope: 'openid',
    state: 'node-state', nonce: 'node-nonce', code_challenge: challenge, code_challenge_method: 'S256',
  })) u.searchParams.set(k, v);
  const resp = await fetch(u, { redirect: 'manual' });
  const back = new URL(resp.headers.get('location') || 'about:blank');
  return back.searchParams.get('code') || '';
}

/**
 * @param {string} code
 * @param {string} verifier
 */
async function exchange(code, verifier) {
  const resp = await fetch(`${ISSUER}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI,
      client_id: 'evault-dashboard', code_verifier: verifier,
    }),
  });
  return { status: resp.status, body: /** @type {Record<string, unknown>} */ (await resp.json()) };
}

/** The mock issuer itself does PKCE: a wrong verifier gets 400. */
async function issuerChecks() {
  const disco = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
  check(disco.issuer === ISSUER && disco.token_endpoint === `${ISSUER}/token`, 'the mock issuer\'s discovery document names it', disco);
  const verifier = 'v'.repeat(43);
  const code = await codeFor(s256(verifier));
  check(code.length > 0, 'the mock issuer redirects with a code');
  const wrong = await exchange(code, 'w'.repeat(43));
  check(wrong.status === 400 && wrong.body.error === 'invalid_grant', 'the mock issuer refuses a wrong code_verifier with 400', wrong);
  const burnt = await exchange(code, verifier);
  check(burnt.status === 400, 'a code is burnt by a failed exchange', burnt);
}

const NO_CODE_ALERT = 'No sign-in was started in this tab.';
const STATE_ALERT = 'The sign-in reply does not match the request (state).';

async function main() {
  await issuerChecks();

  const config = await (await fetch(`${BASE}/ui/config.json`)).json();
  const listed = Array.isArray(config.oidc) ? config.oidc.find((/** @type {{issuer: string}} */ p) => p.issuer === ISSUER) : null;
  check(listed && listed.authorization_endpoint === `${ISSUER}/authorize` && listed.token_endpoint === `${ISSUER}/token`,
    '/ui/config.json lists the issuer with its endpoints', config);

  const browser = await chromium.launch({
    executablePath: process.env.EVAULT_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);

    /** @type {string[]} */
    const violations = [];
    /** @type {string[]} */
    const pageErrors = [];
    /** @type {string[]} */
    const consoleErrors = [];
    // Every document of the tab reports CSP violations here; the init
    // script runs before the page's own (and is not subject to its CSP).
    await page.exposeBinding('__evaultCspViolation', (_source, /** @type {string} */ what) => {
      violations.push(what);
    });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        const report = /** @type {(what: string) => void} */ (/** @type {any} */ (window).__evaultCspViolation);
        report(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });

    /** Authorization requests the browser made. @type {URL[]} */
    const authorizeRequests = [];
    /** Token requests: their form bodies. @type {URLSearchParams[]} */
    const tokenRequests = [];
    /** Navigations back to the dashboard with a code. @type {string[]} */
    const callbacks = [];
    page.on('request', (r) => {
      const u = r.url();
      if (u.startsWith(`${ISSUER}/authorize`)) authorizeRequests.push(new URL(u));
      if (u.startsWith(`${ISSUER}/token`) && r.method() === 'POST') tokenRequests.push(new URLSearchParams(r.postData() || ''));
      if (r.isNavigationRequest() && u.startsWith(`${REDIRECT_URI}?`)) callbacks.push(u);
    });

    const who = page.locator('#who strong');
    /** Clicks `button` and waits until the issuer's (or a forged) reply has loaded as a new document. */
    const clickAndComeBack = async (/** @type {import('playwright-core').Locator} */ button) => {
      const back = page.waitForEvent('framenavigated', {
        predicate: (f) => f === page.mainFrame() && f.url().startsWith(`${REDIRECT_URI}?`),
      });
      await button.click();
      await back;
    };
    const signInButton = page.getByRole('button', { name: `Sign in with ${ISSUER}` });

    // --- The page offers the issuer, and may call its token endpoint. ---
    const first = await page.goto(`${BASE}/ui/`);
    const csp = (first && first.headers()['content-security-policy']) || '';
    const connect = (/connect-src ([^;]*)/.exec(csp) || ['', ''])[1].split(' ');
    check(connect.includes(new URL(ISSUER).origin), 'the page\'s CSP connect-src allows the token endpoint\'s origin', csp);
    await signInButton.waitFor();
    check(new URL(page.url()).hash.startsWith('#/signin'), 'not signed in, the dashboard shows the sign-in page', page.url());

    // --- Sign in. ---
    const t0 = Date.now();
    await signInButton.click();
    await page.waitForURL((u) => u.hash === '#/overview');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await who.waitFor();
    console.log(`# signed in in ${Date.now() - t0} ms`);
    check((await who.textContent()) === PRINCIPAL, `the header shows the signed-in principal ${PRINCIPAL}`, await who.textContent());
    const roles = await page.locator('#who .muted').textContent();
    check(roles === ' (auditor)', 'with the roles from the issuer\'s roles claim', roles);
    check(await page.locator('nav.site-nav').isVisible(), 'the site navigation is shown');
    check(await page.locator('#signout').isVisible(), 'the sign-out button is shown');
    // The overview's API calls carry the OIDC token and the server accepts it.
    const originFact = page.locator('article', { has: page.locator('#ov-evidence') }).getByText('test.example/oidc', { exact: true });
    await originFact.waitFor();
    check(true, 'the overview loads the evidence log with the OIDC token');

    const here = new URL(page.url());
    check(here.search === '' && !page.url().includes('code=') && !page.url().includes('state='),
      'the code and state are gone from the address bar', page.url());
    const storage = await page.evaluate(() => ({
      pending: sessionStorage.getItem('evault.oidc'),
      token: sessionStorage.getItem('evault.token'),
      search: location.search,
    }));
    check(storage.pending === null, 'the pending sign-in (verifier, state, nonce) is removed from sessionStorage', storage);
    check(storage.token === null, 'the token stays in memory only (keep unticked)', storage);

    // --- The browser's half of PKCE, as seen on the wire. ---
    check(authorizeRequests.length === 1, 'one authorization request', authorizeRequests.map(String));
    check(tokenRequests.length === 1, 'one token request', tokenRequests.map(String));
    const aq = authorizeRequests[0] ? authorizeRequests[0].searchParams : new URLSearchParams();
    const tq = tokenRequests[0] || new URLSearchParams();
    check(aq.get('response_type') === 'code' && aq.get('client_id') === 'evault-dashboard'
      && aq.get('redirect_uri') === REDIRECT_URI && aq.get('code_challenge_method') === 'S256'
      && (aq.get('state') || '').length >= 16 && (aq.get('nonce') || '').length >= 16
      && (aq.get('scope') || '').split(' ').includes('openid'),
    'the authorization request asks for a code with S256, state, nonce and the /ui/ redirect URI', String(authorizeRequests[0]));
    check(!aq.has('code_verifier') && !String(authorizeRequests[0]).includes(tq.get('code_verifier') || '\u0000'),
      'the code verifier never goes to the authorization endpoint');
    check(tq.get('grant_type') === 'authorization_code' && tq.get('redirect_uri') === REDIRECT_URI
      && tq.get('client_id') === 'evault-dashboard',
    'the token request is an authorization_code grant for the same client and redirect URI', String(tq));
    check(s256(tq.get('code_verifier') || '') === aq.get('code_challenge'),
      'SHA-256 of the verifier sent to the token endpoint is the challenge sent to the authorization endpoint');
    const callback = callbacks[0] ? new URL(callbacks[0]) : null;
    check(callback !== null && callback.searchParams.get('state') === aq.get('state')
      && tq.get('code') === callback.searchParams.get('code'),
    'the issuer\'s redirect carried the state back, and its code was exchanged', callbacks);
    check(callback !== null && callback.searchParams.get('iss') === ISSUER,
      'the issuer\'s redirect names it (RFC 9207 iss), and the dashboard accepts its own issuer', callbacks);

    // --- A replayed reply (the code and state just used), in a new load of the tab: no sign-in is pending. ---
    const tokensBefore = tokenRequests.length;
    await page.goto(callbacks[0] || `${REDIRECT_URI}?code=x&state=y`);
    let alert = page.getByRole('alert').filter({ hasText: NO_CODE_ALERT });
    await alert.waitFor();
    check(true, 'a replayed code and state with no sign-in pending show an alert');
    check(new URL(page.url()).hash.startsWith('#/signin') && (await who.count()) === 0, 'and do not sign in', page.url());
    check(new URL(page.url()).search === '', 'and the replayed code leaves the address bar', page.url());

    // --- A forged state while a sign-in is pending: the issuer's reply is
    // swapped for an attacker's (another code, a state of their choosing). ---
    /** @param {string} location */
    const redirectAuthorizeTo = (location) => page.route((u) => u.href.startsWith(`${ISSUER}/authorize`),
      (route) => route.fulfill({ status: 302, headers: { Location: location, 'Cache-Control': 'no-store' } }));
    await redirectAuthorizeTo(`${REDIRECT_URI}?code=forged-code&state=forged`);
    await clickAndComeBack(signInButton);
    alert = page.getByRole('alert').filter({ hasText: STATE_ALERT });
    await alert.waitFor();
    check(true, 'a forged state is refused with an alert');
    check((await who.count()) === 0 && new URL(page.url()).hash.startsWith('#/signin'), 'and does not sign in', page.url());
    check(new URL(page.url()).search === '', 'and the forged code leaves the address bar', page.url());
    await page.unrouteAll();

    // --- The earlier reply replayed while a new sign-in is pending: its
    // state is not this sign-in's. ---
    if (callbacks[0]) {
      await redirectAuthorizeTo(callbacks[0]);
      await clickAndComeBack(signInButton);
      alert = page.getByRole('alert').filter({ hasText: STATE_ALERT });
      await alert.waitFor();
      check((await who.count()) === 0, 'an earlier reply replayed into a new sign-in is refused (state)');
      await page.unrouteAll();
    }
    check(tokenRequests.length === tokensBefore, 'no refused reply reached the token endpoint', tokenRequests.map(String));
    const pendingAfter = await page.evaluate(() => sessionStorage.getItem('evault.oidc'));
    check(pendingAfter === null, 'a refused reply also clears the pending sign-in', pendingAfter);

    // --- The server verifies the token itself: an ID token whose
    // signature was tampered with on the way is refused, and not kept
    // even with "keep" ticked. ---
    await page.route((u) => u.href === `${ISSUER}/token`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      const [head, claims, sig] = String(body.id_token).split('.');
      const bytes = Buffer.from(sig, 'base64url');
      bytes[0] ^= 1;
      body.id_token = `${head}.${claims}.${bytes.toString('base64url')}`;
      await route.fulfill({ response, json: body });
    });
    await page.locator('#keep').check();
    await clickAndComeBack(signInButton);
    alert = page.getByRole('alert').filter({ hasText: 'The server refused the token' });
    await alert.waitFor();
    check(true, 'an ID token with a bad signature is refused by the server, with an alert');
    console.log(`# ${(await alert.textContent() || '').trim()}`);
    const refused = await page.evaluate(() => ({ token: sessionStorage.getItem('evault.token'), hash: location.hash }));
    check((await who.count()) === 0 && refused.token === null && refused.hash.startsWith('#/signin'),
      'and does not sign in, nor keep the token', refused);
    await page.unrouteAll();

    // --- The issuer says no (the user denied consent): its error, with
    // this sign-in's state, is shown. ---
    await page.route((u) => u.href.startsWith(`${ISSUER}/authorize`), (route) => {
      const state = new URL(route.request().url()).searchParams.get('state') || '';
      const back = new URL(REDIRECT_URI);
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'the user said no');
      back.searchParams.set('state', state);
      return route.fulfill({ status: 302, headers: { Location: back.toString() } });
    });
    await clickAndComeBack(signInButton);
    alert = page.getByRole('alert').filter({ hasText: 'The issuer refused: access_denied (the user said no)' });
    await alert.waitFor();
    check((await who.count()) === 0 && new URL(page.url()).search === '', 'an issuer\'s error reply is shown, and does not sign in', page.url());
    await page.unrouteAll();

    // --- A reply that names another issuer (RFC 9207 iss; a mix-up
    // attack): refused before any token exchange. ---
    const tokensBeforeIss = tokenRequests.length;
    await page.route((u) => u.href.startsWith(`${ISSUER}/authorize`), async (route) => {
      const response = await route.fetch({ maxRedirects: 0 });
      const back = new URL(response.headers().location || REDIRECT_URI);
      back.searchParams.set('iss', 'https://issuer.attacker.example');
      await route.fulfill({ status: 302, headers: { Location: back.toString(), 'Cache-Control': 'no-store' } });
    });
    await clickAndComeBack(signInButton);
    alert = page.getByRole('alert').filter({ hasText: 'The sign-in reply comes from another issuer than the one asked (iss).' });
    // Refused, or (were the check missing) signed in: whichever shows first.
    const issOutcome = await Promise.race([
      alert.waitFor().then(() => 'refused'),
      who.waitFor().then(() => 'signed in'),
    ]).catch((e) => String(e));
    check(issOutcome === 'refused' && (await who.count()) === 0 && tokenRequests.length === tokensBeforeIss,
      'a reply naming another issuer (iss) is refused with an alert, without a token exchange',
      { issOutcome, tokenExchanges: tokenRequests.length - tokensBeforeIss });
    await page.unrouteAll();
    if (issOutcome === 'signed in') {
      await page.locator('#signout').click();
      await page.waitForURL((u) => u.hash.startsWith('#/signin'));
    }

    // --- An ID token for another nonce: validly signed by the issuer (the
    // server accepts it), but not this sign-in's, so the dashboard refuses
    // it and never uses it. ---
    const WRONG_NONCE = 'a-nonce-this-tab-never-asked-for';
    await page.route((u) => u.href.startsWith(`${ISSUER}/authorize`), (route) => {
      const u = new URL(route.request().url());
      if (u.searchParams.has('mock_nonce')) return route.continue();
      u.searchParams.set('mock_nonce', WRONG_NONCE);
      return route.fulfill({ status: 302, headers: { Location: u.toString(), 'Cache-Control': 'no-store' } });
    });
    /** @type {string[]} */
    const issuedIdTokens = [];
    await page.route((u) => u.href === `${ISSUER}/token`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      if (typeof body.id_token === 'string') issuedIdTokens.push(body.id_token);
      await route.fulfill({ response, json: body });
    });
    /** @type {string[]} */
    const bearers = [];
    /** @param {import('playwright-core').Request} r */
    const onApi = (r) => {
      if (r.url().startsWith(`${BASE}/api/`)) bearers.push(r.headers().authorization || '');
    };
    page.on('request', onApi);
    await page.locator('#keep').check();
    await clickAndComeBack(signInButton);
    alert = page.getByRole('alert').filter({ hasText: 'The ID token does not match the request (nonce).' });
    await alert.waitFor();
    page.off('request', onApi);
    await page.unrouteAll();
    const wrongToken = issuedIdTokens[0] || '';
    /** @type {Record<string, unknown>} */
    let wrongClaims = {};
    try {
      wrongClaims = JSON.parse(Buffer.from(wrongToken.split('.')[1] || '', 'base64url').toString('utf8'));
    } catch {
      wrongClaims = {};
    }
    check(issuedIdTokens.length === 1 && wrongClaims.nonce === WRONG_NONCE,
      'the mock issuer minted an ID token for another nonce (mock_nonce)', wrongClaims);
    const refusedNonce = await page.evaluate(() => ({ token: sessionStorage.getItem('evault.token'), hash: location.hash }));
    check((await who.count()) === 0 && refusedNonce.token === null && refusedNonce.hash.startsWith('#/signin'),
      'an ID token with another nonce is refused with an alert: not signed in, nothing kept', refusedNonce);
    check(wrongToken !== '' && !bearers.some((b) => b.includes(wrongToken)),
      'and the dashboard never sent it to the server', bearers.filter((b) => b !== ''));
    const serverSays = await fetch(`${BASE}/api/v1/whoami`, { headers: { Authorization: `Bearer ${wrongToken}` } });
    check(serverSays.status === 200,
      'that ID token is otherwise valid (the server itself accepts it): only the dashboard\'s nonce check stops it', serverSays.status);
    await page.locator('#keep').uncheck();

    // --- After the refusals, a real sign-in still works, returns to the
    // page asked for, and with "keep" ticked survives a reload. ---
    await page.goto(`${BASE}/ui/#/audit`);
    await page.waitForURL((u) => u.hash.startsWith('#/signin?next='));
    await page.locator('#keep').check();
    await signInButton.click();
    await page.waitForURL((u) => u.hash === '#/audit');
    await who.waitFor();
    check((await who.textContent()) === PRINCIPAL, 'signing in again after the refusals works', await who.textContent());
    check(new URL(page.url()).search === '', 'and leaves no code in the address bar', page.url());
    check(true, 'and returns to the page asked for before signing in (#/audit)');
    await page.reload();
    await who.waitFor();
    check((await who.textContent()) === PRINCIPAL && new URL(page.url()).hash === '#/audit',
      'a kept OIDC token survives a reload of the tab', page.url());
    await page.locator('#signout').click();
    await page.waitForURL((u) => u.hash.startsWith('#/signin'));
    const afterSignOut = await page.evaluate(() => sessionStorage.getItem('evault.token'));
    check((await who.count()) === 0 && afterSignOut === null, 'signing out forgets the kept token', afterSignOut);

    const consoleCount = consoleErrors.length;
    check(violations.length === 0, 'no securitypolicyviolation event', violations);
    // The detector itself works: a fetch to an origin connect-src does not
    // allow is reported.
    await page.evaluate(() => fetch('http://127.0.0.1:9/').catch(() => {}));
    // The report is an event: wait for it (up to a minute) rather than a
    // fixed time.
    for (let i = 0; i < 1200 && !violations.some((v) => v.startsWith('connect-src')); i++) {
      await new Promise((r) => { setTimeout(r, 50); });
    }
    check(violations.some((v) => v.startsWith('connect-src')), 'the violation detector sees a deliberate connect-src violation', violations);
    const cspConsole = consoleErrors.slice(0, consoleCount).filter((t) => /Content Security Policy|Trusted Type/i.test(t));
    check(cspConsole.length === 0, 'no CSP complaint on the console', cspConsole);
    check(pageErrors.length === 0, 'no uncaught page error', pageErrors);
    await context.close();
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  failures += 1;
  console.log(`not ok - the OIDC sign-in test stopped: ${e instanceof Error ? e.stack || e.message : String(e)}`);
}
console.log(failures === 0 ? '# all OIDC sign-in checks passed' : `# ${failures} OIDC sign-in check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
