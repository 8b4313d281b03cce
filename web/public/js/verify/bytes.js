// Byte helpers: strict base64 and hex, UTF-8, comparisons.
//
// Base64 is decoded by hand because `atob` is lenient (it skips whitespace,
// accepts missing padding and non-zero pad bits). The Rust side
// (crates/note/src/b64.rs) accepts only canonical standard padded base64,
// so every string accepted here is exactly what `b64encode` gives for the
// decoded bytes, and both sides accept the same strings.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/**
 * Standard (RFC 4648 §4) base64 with padding.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function b64encode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + '=';
  }
  return out;
}

/**
 * Canonical standard base64: padding required, only the 64 characters and
 * trailing `=`, non-zero pad bits refused (RFC 4648 §3.5 allows that).
 * @param {string} text
 * @returns {Uint8Array | null} the bytes, or null if `text` is not canonical
 */
export function b64decode(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0) return null;
  let pad = 0;
  if (text.endsWith('==')) pad = 2;
  else if (text.endsWith('=')) pad = 1;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const last = i + 4 === text.length;
    /** @type {number[]} */
    const v = [];
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      if (last && j >= 4 - pad) {
        // Only the final quantum may hold padding, and only at its end.
        v.push(0);
        continue;
      }
      const x = c < 128 ? B64_VALUE[c] : -1;
      if (x < 0) return null;
      v.push(x);
    }
    const n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    if (last && pad === 2) {
      if (n & 0xffff) return null; // bits the padding drops must be zero
      out[o++] = n >> 16;
    } else if (last && pad === 1) {
      if (n & 0xff) return null;
      out[o++] = n >> 16;
      out[o++] = (n >> 8) & 0xff;
    } else {
      out[o++] = n >> 16;
      out[o++] = (n >> 8) & 0xff;
      out[o++] = n & 0xff;
    }
  }
  return out;
}

const HEX = '0123456789abcdef';

/**
 * Lower-case hex.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function hexEncode(bytes) {
  let out = '';
  for (const b of bytes) out += HEX[b >> 4] + HEX[b & 15];
  return out;
}

/**
 * Lower-case hex only (the form every evault format writes).
 * @param {string} text
 * @returns {Uint8Array | null} the bytes, or null if `text` is not lower-case hex
 */
export function hexDecode(text) {
  if (typeof text !== 'string' || text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) {
    return null;
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * UTF-8 bytes of a well-formed string (see `isWellFormed`: TextEncoder would
 * silently turn a lone surrogate into U+FFFD).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8Encode(text) {
  return encoder.encode(text);
}

/**
 * Strict UTF-8 decoding: invalid bytes throw instead of becoming U+FFFD.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function utf8Decode(bytes) {
  return decoder.decode(bytes);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether `text` is well-formed UTF-16 (no lone surrogates), so it has an
 * exact UTF-8 encoding. (String.prototype.isWellFormed is ES2024.)
 * @param {string} text
 */
export function isWellFormed(text) {
  return !LONE_SURROGATE.test(text);
}

/**
 * Byte equality that does not stop at the first difference (the values
 * compared are public, but there is no reason to leak where they differ).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Concatenation.
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
