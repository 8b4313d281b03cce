// Ed25519 signature verification with WebCrypto, made to agree with the
// Rust side's ed25519-dalek `VerifyingKey::verify_strict`.
//
// WebCrypto implementations (OpenSSL in Node, BoringSSL in Chromium) run the
// cofactorless RFC 8032 check and refuse S >= L and an R that is not the
// canonical encoding of the recomputed point, as dalek does. What they do
// not do is refuse small-order points: with the identity as public key,
// R = identity and S = 0 "verify" for every message. verify_strict refuses
// a public key A or a signature R of small order, so we check that first.
// We also refuse S >= L ourselves rather than trust every engine to.
//
// Public keys are checked like dalek's `VerifyingKey::from_bytes` (the Rust
// key parser): the 32 bytes must decompress to a curve point. Decompression
// there masks the sign bit, reduces y modulo p (so y in [p, 2^255) is taken
// as y - p) and does not refuse "negative zero" (x = 0 with the sign bit
// set); `isValidPointEncoding` follows the same rules.

import { VerifyError } from './errors.js';
import { hexDecode, hexEncode } from './bytes.js';
import { subtle } from './sha256.js';

const P = (1n << 255n) - 19n;
/** Edwards d = -121665/121666 mod p. */
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
/** Order of the prime-order subgroup, L = 2^252 + 27742317777372353535851937790883648493. */
export const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/**
 * Every encoding that dalek decompresses to one of the 8 points of small
 * order (order dividing 8), which `verify_strict` refuses as A or R. The
 * small-order points have y in {1, -1, 0, y8, -y8} (identity, order 2,
 * the two points of order 4, the four of order 8). Each is listed with
 * its canonical encoding, with the sign bit set where x = 0 (dalek accepts
 * it), and with y + p where that still fits in 255 bits (y = 0 and y = 1):
 * 8 canonical and 6 non-canonical encodings, the same list as libsodium's
 * and "Taming the many EdDSAs" (Chalkias et al., 2020). The tests derive it
 * again with curve arithmetic.
 */
export const SMALL_ORDER_ENCODINGS = [
  // identity (0, 1): canonical, sign bit set, y = p + 1, both
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // order 2 (0, -1): canonical, sign bit set
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // order 4 (±sqrt(-1), 0): both signs, and y = p with both signs
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  // order 8: y = y8 and y = -y8, both signs of x
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
];
const SMALL_ORDER = new Set(SMALL_ORDER_ENCODINGS);

/**
 * Little-endian bytes as a BigInt.
 * @param {Uint8Array} bytes
 */
export function leToBigInt(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/**
 * @param {bigint} b
 * @param {bigint} e
 */
function powMod(b, e) {
  let r = 1n;
  b %= P;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}

/**
 * Whether 32 bytes decompress to a point of the curve, as dalek's
 * `CompressedEdwardsY::decompress` decides: x^2 = (y^2 - 1) / (d y^2 + 1)
 * must have a solution (d y^2 + 1 is never 0, as -1/d is not a square).
 * @param {Uint8Array} bytes
 */
export function isValidPointEncoding(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) return false;
  const y = (leToBigInt(bytes) & ((1n << 255n) - 1n)) % P;
  const yy = (y * y) % P;
  const u = (yy - 1n + P) % P;
  const v = (D * yy + 1n) % P;
  // u/v is a square (or 0) iff u*v is: Euler's criterion.
  const chi = powMod(u * v, (P - 1n) / 2n);
  return chi === 0n || chi === 1n;
}

/**
 * Whether the encoding is of a small-order point (see SMALL_ORDER_ENCODINGS).
 * @param {Uint8Array} bytes  32 bytes
 */
export function isSmallOrder(bytes) {
  return SMALL_ORDER.has(hexEncode(bytes));
}

/**
 * Whether a 32-byte little-endian scalar is canonical (below L).
 * @param {Uint8Array} bytes
 */
export function isCanonicalScalar(bytes) {
  return bytes.length === 32 && leToBigInt(bytes) < L;
}

/** @type {Promise<boolean> | null} */
let supported = null;

/**
 * Whether this engine's WebCrypto verifies Ed25519 (Chromium 137+,
 * Firefox 129+, Safari 17+, Node 20). Cached.
 * @returns {Promise<boolean>}
 */
export function ed25519Supported() {
  if (!supported) {
    // The RFC 8032 test 1 public key, a valid point.
    const pk = /** @type {Uint8Array<ArrayBuffer>} */ (
      hexDecode('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    );
    supported = subtle()
      .importKey('raw', pk, { name: 'Ed25519' }, false, ['verify'])
      .then(() => true, () => false);
  }
  return supported;
}

/**
 * Verifies an Ed25519 signature as ed25519-dalek's `verify_strict` does.
 * Returns false for any invalid signature; throws VerifyError only if the
 * engine cannot verify Ed25519 at all (or there is no secure context).
 * @param {Uint8Array} publicKey  32 bytes
 * @param {Uint8Array} message
 * @param {Uint8Array} signature  64 bytes: R || S
 * @returns {Promise<boolean>}
 */
export async function verifyEd25519(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  const s = signature.subarray(32);
  if (!isCanonicalScalar(s)) return false;
  if (!isValidPointEncoding(publicKey) || !isValidPointEncoding(r)) return false;
  if (isSmallOrder(publicKey) || isSmallOrder(r)) return false;
  const api = subtle();
  /** @type {CryptoKey} */
  let key;
  try {
    key = await api.importKey(
      'raw',
      /** @type {Uint8Array<ArrayBuffer>} */ (publicKey),
      { name: 'Ed25519' },
      false,
      ['verify'],
    );
  } catch (e) {
    if (!(await ed25519Supported())) {
      throw new VerifyError(
        'ed25519-unsupported',
        "this browser's WebCrypto cannot verify Ed25519 signatures; use a current browser",
      );
    }
    return false; // an engine that refuses this key would not verify with it
  }
  try {
    return await api.verify(
      { name: 'Ed25519' },
      key,
      /** @type {Uint8Array<ArrayBuffer>} */ (signature),
      /** @type {Uint8Array<ArrayBuffer>} */ (message),
    );
  } catch {
    return false;
  }
}
