// Ed25519 edge cases: verify.js must agree with ed25519-dalek's
// verify_strict, which the Rust side uses.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import {
  L, SMALL_ORDER_ENCODINGS, isCanonicalScalar, isSmallOrder, isValidPointEncoding, leToBigInt,
  verifyEd25519,
} from '../public/js/verify/ed25519.js';
import { hexDecode, hexEncode } from '../public/js/verify/bytes.js';
import { ALG_ED25519, Verifiers, keyId, openNote, parseEd25519VerifierKey } from '../public/js/verify/note.js';
import { signer, toB64 } from './helpers.mjs';

/** @param {string} h */
const hex = (h) => /** @type {Uint8Array} */ (hexDecode(h));
const enc = new TextEncoder();

// --- a small reference implementation of edwards25519, for the tests ---
const P = (1n << 255n) - 19n;
const D = (-121665n * inv(121666n)) % P + P;
const SQRT_M1 = pow(2n, (P - 1n) / 4n);
/** @param {bigint} a */
function mod(a) {
  const r = a % P;
  return r < 0n ? r + P : r;
}
/** @param {bigint} b @param {bigint} e */
function pow(b, e) {
  let r = 1n;
  b = mod(b);
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
  }
  return r;
}
/** @param {bigint} a */
function inv(a) {
  return pow(a, P - 2n);
}
/** Square root mod p (p = 5 mod 8), or null. @param {bigint} a */
function sqrt(a) {
  let r = pow(a, (P + 3n) / 8n);
  if (mod(r * r - a) !== 0n) r = mod(r * SQRT_M1);
  return mod(r * r - a) === 0n ? r : null;
}
/**
 * Decompression exactly as curve25519-dalek: y reduced mod p, the root of
 * x^2 chosen by the sign bit, x = 0 with the sign bit set allowed.
 * @param {Uint8Array} b
 * @returns {[bigint, bigint] | null}
 */
function decompress(b) {
  const n = leToBigInt(b);
  const y = mod(n & ((1n << 255n) - 1n));
  const x2 = mod((y * y - 1n) * inv(D * y * y + 1n));
  let x = sqrt(x2);
  if (x === null) return null;
  if ((x & 1n) !== (n >> 255n)) x = mod(-x);
  return [x, y];
}
/** Complete twisted Edwards addition (a = -1). @param {[bigint, bigint]} p @param {[bigint, bigint]} q @returns {[bigint, bigint]} */
function add([x1, y1], [x2, y2]) {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inv(1n + t)), mod((y1 * y2 + x1 * x2) * inv(1n - t))];
}
/** @param {[bigint, bigint]} p @param {number} k */
function mul(p, k) {
  /** @type {[bigint, bigint]} */
  let r = [0n, 1n];
  for (let i = 0; i < k; i++) r = add(r, p);
  return r;
}
/** @param {[bigint, bigint]} p */
const isIdentity = ([x, y]) => x === 0n && y === 1n;
// -----------------------------------------------------------------------

test('the small-order list is exactly every encoding of the 8 torsion points', () => {
  assert.equal(SMALL_ORDER_ENCODINGS.length, 14);
  assert.equal(new Set(SMALL_ORDER_ENCODINGS).size, 14);
  const points = new Set();
  const ys = new Set();
  for (const h of SMALL_ORDER_ENCODINGS) {
    const pt = decompress(hex(h));
    assert.ok(pt, `${h} decompresses`);
    assert.ok(isValidPointEncoding(hex(h)), h);
    assert.ok(isIdentity(mul(pt, 8)), `${h} has order dividing 8`);
    points.add(`${pt[0]},${pt[1]}`);
    ys.add(pt[1]);
  }
  // The torsion subgroup of edwards25519 has 8 elements: all are here.
  assert.equal(points.size, 8);
  // And every encoding of each of them (y or y + p below 2^255, either
  // sign bit where it decompresses to the same point) is listed.
  for (const y of ys) {
    for (const yy of [y, y + P]) {
      if (yy >= 1n << 255n) continue;
      for (const sign of [0n, 1n]) {
        const n = yy | (sign << 255n);
        const b = new Uint8Array(32);
        for (let i = 0; i < 32; i++) b[i] = Number((n >> BigInt(8 * i)) & 0xffn);
        const pt = decompress(b);
        if (pt && points.has(`${pt[0]},${pt[1]}`)) {
          assert.ok(isSmallOrder(b), `${hexEncode(b)} is missing from the list`);
        }
      }
    }
  }
  // The order-8 ones really are of order 8.
  for (const h of SMALL_ORDER_ENCODINGS.slice(10)) {
    assert.ok(!isIdentity(mul(/** @type {[bigint, bigint]} */ (decompress(hex(h))), 4)), h);
  }
});

test('point validity follows dalek decompression', () => {
  const y2 = new Uint8Array(32);
  y2[0] = 2;
  assert.equal(isValidPointEncoding(y2), false); // key.rs invalid_point_is_rejected
  assert.equal(decompress(y2), null);
  const base = hex('5866666666666666666666666666666666666666666666666666666666666666');
  assert.ok(isValidPointEncoding(base));
  // Agreement with the reference on a spread of encodings.
  for (let i = 0; i < 200; i++) {
    const b = new Uint8Array(32).map((_, j) => (i * 37 + j * 101 + (i >> 2) * j) & 0xff);
    assert.equal(isValidPointEncoding(b), decompress(b) !== null, hexEncode(b));
  }
  assert.equal(isValidPointEncoding(new Uint8Array(31)), false);
});

test('a valid signature is accepted: RFC 8032 test 1 and a fresh key', async () => {
  const pk = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const sig = hex(
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  );
  assert.equal(await verifyEd25519(pk, new Uint8Array(0), sig), true);
  assert.equal(await verifyEd25519(pk, Uint8Array.of(0), sig), false);

  const s = signer('k', new Uint8Array(32).fill(1));
  const msg = enc.encode('msg\n');
  const good = s.sign(msg);
  assert.equal(await verifyEd25519(s.publicKey, msg, good), true);
  // Wrong lengths (verifier.rs verify_rejects_wrong_lengths).
  assert.equal(await verifyEd25519(s.publicKey, msg, good.subarray(0, 63)), false);
  assert.equal(await verifyEd25519(s.publicKey, msg, Uint8Array.of(...good, 0)), false);
  assert.equal(await verifyEd25519(s.publicKey, msg, new Uint8Array(0)), false);
});

test('a non-canonical S (S + L) is refused', async () => {
  const s = signer('k', new Uint8Array(32).fill(2));
  const msg = enc.encode('hello\n');
  const sig = s.sign(msg);
  let n = leToBigInt(sig.subarray(32)) + L; // same value mod L, below 2^256
  const bad = Uint8Array.from(sig);
  for (let i = 32; i < 64; i++, n >>= 8n) bad[i] = Number(n & 0xffn);
  assert.equal(isCanonicalScalar(bad.subarray(32)), false);
  assert.equal(await verifyEd25519(s.publicKey, msg, bad), false);

  const lBytes = new Uint8Array(32);
  let l = L;
  for (let i = 0; i < 32; i++, l >>= 8n) lBytes[i] = Number(l & 0xffn);
  assert.equal(isCanonicalScalar(lBytes), false);
  lBytes[0] -= 1;
  assert.equal(isCanonicalScalar(lBytes), true);
});

test('small-order keys and R values are refused, though plain WebCrypto accepts one', async (t) => {
  // The identity as public key with R = identity, S = 0 satisfies the
  // cofactorless equation for every message (verifier.rs verify_rejects_weak_key).
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const sig = new Uint8Array(64);
  sig[0] = 1;
  const msg = enc.encode('anything\n');
  const raw = await crypto.subtle.importKey('raw', identity, { name: 'Ed25519' }, false, ['verify']);
  // The pre-checks matter: WebCrypto alone takes this forgery (for every
  // message), so without them verifyEd25519 would too.
  assert.equal(await crypto.subtle.verify('Ed25519', raw, sig, msg), true, 'plain WebCrypto accepts the identity-key forgery');
  assert.equal(await crypto.subtle.verify('Ed25519', raw, sig, enc.encode('any other message')), true);
  t.diagnostic('plain WebCrypto accepts the identity-key forgery; verifyEd25519 refuses it');
  assert.equal(await verifyEd25519(identity, msg, sig), false);

  for (const h of SMALL_ORDER_ENCODINGS) {
    const a = hex(h);
    assert.equal(await verifyEd25519(a, msg, Uint8Array.of(...a, ...new Uint8Array(32))), false, h);
  }
  // A genuine key with a small-order R.
  const s = signer('k', new Uint8Array(32).fill(3));
  for (const h of SMALL_ORDER_ENCODINGS) {
    assert.equal(await verifyEd25519(s.publicKey, msg, Uint8Array.of(...hex(h), ...new Uint8Array(32))), false, h);
  }
});

test('a small-order key parses (as in Rust) but its "signatures" reject the note', async () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const id = await keyId('weak', ALG_ED25519, identity);
  const idHex = id.toString(16).padStart(8, '0');
  const key = await parseEd25519VerifierKey(`weak+${idHex}+${toB64(Uint8Array.of(1, ...identity))}`);
  const known = new Verifiers();
  known.add(key);
  const sig = new Uint8Array(68);
  sig.set(hex(idHex), 0);
  sig[4] = 1;
  const note = `anything\n\n\u2014 weak ${toB64(sig)}\n`;
  await assert.rejects(openNote(note, known), { code: 'note-invalid-signature' });
});

/** @param {bigint} n 32 bytes, little-endian */
function scalarBytes(n) {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}

test('a genuine key with R = identity: WebCrypto accepts it, verifyEd25519 refuses (the small-order R check)', async () => {
  // A signature that passes the cofactorless equation [S]B = R + [k]A with
  // a small-order R under a genuine (prime-order, not small-order) key:
  // R = the identity, S = k·a mod L with k = SHA-512(R || A || M) mod L
  // and a the key's secret scalar. Only the isSmallOrder(R) check refuses
  // it: A is a valid point not of small order, R a valid point encoding, S
  // canonical. verify_strict refuses it (R is of small order).
  const seed = new Uint8Array(32).fill(7);
  const s = signer('k', seed);
  const hs = createHash('sha512').update(seed).digest();
  const clamped = Uint8Array.from(hs.subarray(0, 32));
  clamped[0] &= 248;
  clamped[31] &= 127;
  clamped[31] |= 64;
  const a = leToBigInt(clamped);
  const r = hex('0100000000000000000000000000000000000000000000000000000000000000');
  assert.ok(isSmallOrder(r) && isValidPointEncoding(r));
  assert.ok(!isSmallOrder(s.publicKey) && isValidPointEncoding(s.publicKey));
  for (const text of ['checkpoint\n', 'anything\n', '']) {
    const msg = enc.encode(text);
    const k = leToBigInt(createHash('sha512').update(r).update(s.publicKey).update(msg).digest()) % L;
    const sig = Uint8Array.of(...r, ...scalarBytes((k * a) % L));
    assert.ok(isCanonicalScalar(sig.subarray(32)));
    // Plain WebCrypto (the same engine verifyEd25519 calls) accepts it.
    const raw = await crypto.subtle.importKey('raw', s.publicKey, { name: 'Ed25519' }, false, ['verify']);
    assert.equal(await crypto.subtle.verify('Ed25519', raw, sig, msg), true, `WebCrypto accepts R = identity for ${JSON.stringify(text)}`);
    // verifyEd25519 does not.
    assert.equal(await verifyEd25519(s.publicKey, msg, sig), false, JSON.stringify(text));
    // A real signature of the same message by the same key still verifies.
    assert.equal(await verifyEd25519(s.publicKey, msg, s.sign(msg)), true);
  }
});
