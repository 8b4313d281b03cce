// A tiny OIDC issuer for the dashboard's sign-in test (node:http and
// node:crypto only): authorization code flow with PKCE (RFC 7636, S256
// only) for one public client, ID tokens signed with an ES256 key it makes
// at start. No login form: /authorize signs in OIDC_SUBJECT at once.
//
// Listens on 127.0.0.1 on a free port and prints its base URL (also its
// issuer) as the first line of stdout.
//
// Environment: OIDC_CLIENT_ID (default evault-dashboard), OIDC_AUDIENCE
// (the tokens' aud; default the client id, as for any ID token),
// OIDC_SUBJECT (default alice), OIDC_ROLES (comma-separated, default
// auditor), OIDC_ROLES_CLAIM (default roles), OIDC_JWKS_FILE (also write
// the JWKS there).
//
// Redirect URIs: http on a loopback host, any port, path /ui/ (the
// dashboard's; RFC 8252 §7.3 lets loopback redirects vary the port). The
// token endpoint answers CORS for the origins of redirect URIs it issued
// codes to. Replies to /authorize name the issuer (RFC 9207 `iss`).
//
// Test switch: `mock_nonce=<value>` on /authorize (not part of OIDC) puts
// that nonce in the ID token instead of the one asked for, so a test can
// get a validly signed ID token for another sign-in.

import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

const CLIENT_ID = process.env.OIDC_CLIENT_ID || 'evault-dashboard';
const AUDIENCE = process.env.OIDC_AUDIENCE || CLIENT_ID;
const SUBJECT = process.env.OIDC_SUBJECT || 'alice';
const ROLES = (process.env.OIDC_ROLES || 'auditor').split(',').filter(Boolean);
const ROLES_CLAIM = process.env.OIDC_ROLES_CLAIM || 'roles';
/** How long a code may wait for its exchange. */
const CODE_TTL_MS = 60_000;
/** Token lifetime in seconds. */
const TOKEN_TTL = 600;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KID = `mock-${randomBytes(6).toString('hex')}`;
const JWKS = {
  keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'ES256' }],
};

/**
 * @typedef {{challenge: string, redirectUri: string, nonce: string, scope: string,
 *   expires: number}} PendingCode
 */
/** Codes not yet exchanged; each is used at most once. @type {Map<string, PendingCode>} */
const codes = new Map();
/** Origins of the redirect URIs codes were issued to. @type {Set<string>} */
const corsOrigins = new Set();

/** @param {Buffer | string} b */
function b64url(b) {
  return Buffer.from(b).toString('base64url');
}

/**
 * A compact JWS (ES256, raw r||s signature) of `claims`.
 * @param {Record<string, unknown>} claims
 * @param {string} typ
 */
function jws(claims, typ) {
  const input = `${b64url(JSON.stringify({ alg: 'ES256', kid: KID, typ }))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

/** @param {string} uri */
function okRedirectUri(uri) {
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)
      && u.port !== '' && u.pathname === '/ui/' && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
function json(res, status, body, headers = {}) {
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

/**
 * An OAuth error for the token endpoint (RFC 6749 §5.2).
 * @param {import('node:http').ServerResponse} res
 * @param {Record<string, string>} cors
 * @param {string} error
 * @param {string} description
 */
function tokenError(res, cors, error, description) {
  json(res, 400, { error, error_description: description }, cors);
}

/** @param {import('node:http').IncomingMessage} req */
async function readBody(req) {
  /** @type {Buffer[]} */
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const server = createServer(async (req, res) => {
  const base = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  const url = new URL(req.url || '/', base);
  try {
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      json(res, 200, {
        issuer: base,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        jwks_uri: `${base}/jwks.json`,
        response_types_supported: ['code'],
        grant_types_supported: ['authorization_code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
        code_challenge_methods_supported: ['S256'],
        authorization_response_iss_parameter_supported: true,
        token_endpoint_auth_methods_supported: ['none'],
        scopes_supported: ['openid', 'profile'],
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/jwks.json') {
      json(res, 200, JWKS);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/authorize') {
      authorize(res, url.searchParams, base);
      return;
    }
    if (url.pathname === '/token') {
      const origin = req.headers.origin;
      /** @type {Record<string, string>} */
      const cors = origin && corsOrigins.has(origin)
        ? { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' }
        : { Vary: 'Origin' };
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          ...cors,
          'Access-Control-Allow-Methods': 'POST',
          'Access-Control-Allow-Headers': 'Content-Type, Accept',
          'Access-Control-Max-Age': '60',
        });
        res.end();
        return;
      }
      if (req.method !== 'POST') {
        json(res, 405, { error: 'invalid_request', error_description: 'POST only' }, { ...cors, Allow: 'POST, OPTIONS' });
        return;
      }
      await token(req, res, base, cors);
      return;
    }
    json(res, 404, { error: 'not_found' });
  } catch (e) {
    json(res, 500, { error: 'server_error', error_description: String(e) });
  }
});

/**
 * GET /authorize: checks the request, then sends the browser straight back
 * with a code (the user is signed in already, and consents).
 * @param {import('node:http').ServerResponse} res
 * @param {URLSearchParams} q
 * @param {string} issuer this issuer, named in the reply (RFC 9207)
 */
function authorize(res, q, issuer) {
  const redirectUri = q.get('redirect_uri') || '';
  // Without a valid client and redirect URI, never redirect (RFC 6749
  // §4.1.2.1): tell the user instead.
  if (q.get('client_id') !== CLIENT_ID) {
    json(res, 400, { error: 'invalid_client', error_description: 'unknown client_id' });
    return;
  }
  if (!okRedirectUri(redirectUri)) {
    json(res, 400, { error: 'invalid_request', error_description: 'redirect_uri not registered' });
    return;
  }
  const back = new URL(redirectUri);
  const state = q.get('state') || '';
  /** @param {string} error @param {string} description */
  const refuse = (error, description) => {
    back.searchParams.set('error', error);
    back.searchParams.set('error_description', description);
    if (state) back.searchParams.set('state', state);
    back.searchParams.set('iss', issuer);
    res.writeHead(302, { Location: back.toString(), 'Cache-Control': 'no-store' });
    res.end();
  };
  if (q.get('response_type') !== 'code') return refuse('unsupported_response_type', 'code only');
  if (!state) return refuse('invalid_request', 'state is required');
  if (!(q.get('scope') || '').split(' ').includes('openid')) return refuse('invalid_scope', 'openid is required');
  if (!q.get('nonce')) return refuse('invalid_request', 'nonce is required');
  if (q.get('code_challenge_method') !== 'S256') return refuse('invalid_request', 'code_challenge_method must be S256');
  const challenge = q.get('code_challenge') || '';
  // base64url of a SHA-256 digest: 43 characters.
  if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) return refuse('invalid_request', 'bad code_challenge');
  const code = randomBytes(24).toString('base64url');
  codes.set(code, {
    challenge,
    redirectUri,
    // The test switch: another nonce than the one asked for.
    nonce: q.has('mock_nonce') ? q.get('mock_nonce') || '' : q.get('nonce') || '',
    scope: q.get('scope') || '',
    expires: Date.now() + CODE_TTL_MS,
  });
  corsOrigins.add(back.origin);
  back.searchParams.set('code', code);
  back.searchParams.set('state', state);
  back.searchParams.set('iss', issuer);
  res.writeHead(302, { Location: back.toString(), 'Cache-Control': 'no-store' });
  res.end();
}

/**
 * POST /token: exchanges a code for tokens, checking the PKCE verifier.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {string} issuer
 * @param {Record<string, string>} cors
 */
async function token(req, res, issuer, cors) {
  const type = (req.headers['content-type'] || '').split(';')[0].trim();
  if (type !== 'application/x-www-form-urlencoded') {
    return tokenError(res, cors, 'invalid_request', 'form body expected');
  }
  const f = new URLSearchParams(await readBody(req));
  if (f.get('grant_type') !== 'authorization_code') {
    return tokenError(res, cors, 'unsupported_grant_type', 'authorization_code only');
  }
  if (f.get('client_id') !== CLIENT_ID) return tokenError(res, cors, 'invalid_client', 'unknown client_id');
  const code = f.get('code') || '';
  const pending = codes.get(code);
  // A code is good for one exchange, right or wrong (RFC 6749 §4.1.2).
  codes.delete(code);
  if (!pending || pending.expires < Date.now()) return tokenError(res, cors, 'invalid_grant', 'unknown, used or expired code');
  if (f.get('redirect_uri') !== pending.redirectUri) return tokenError(res, cors, 'invalid_grant', 'redirect_uri mismatch');
  const verifier = f.get('code_verifier') || '';
  // RFC 7636 §4.1: 43 to 128 unreserved characters.
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return tokenError(res, cors, 'invalid_grant', 'bad code_verifier');
  const challenge = createHash('sha256').update(verifier, 'ascii').digest('base64url');
  if (challenge !== pending.challenge) return tokenError(res, cors, 'invalid_grant', 'code_verifier does not match');
  const now = Math.floor(Date.now() / 1000);
  const common = { iss: issuer, sub: SUBJECT, aud: AUDIENCE, iat: now, exp: now + TOKEN_TTL, [ROLES_CLAIM]: ROLES };
  json(res, 200, {
    token_type: 'Bearer',
    expires_in: TOKEN_TTL,
    scope: pending.scope,
    id_token: jws({ ...common, nonce: pending.nonce, azp: CLIENT_ID, auth_time: now }, 'JWT'),
    access_token: jws({ ...common, client_id: CLIENT_ID, jti: randomBytes(12).toString('base64url') }, 'at+jwt'),
  }, cors);
}

server.listen(0, '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  if (process.env.OIDC_JWKS_FILE) writeFileSync(process.env.OIDC_JWKS_FILE, JSON.stringify(JWKS));
  process.stdout.write(`http://127.0.0.1:${port}\n`);
});

for (const sig of /** @type {const} */ (['SIGTERM', 'SIGINT'])) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
