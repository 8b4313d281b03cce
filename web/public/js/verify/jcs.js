// RFC 8785 JSON Canonicalization Scheme for the values evault leaves hold:
// objects, arrays, strings, integers, booleans and null.
//
// JSON.stringify of a string is exactly JCS's string form (minimal escapes:
// \" \\ \b \f \n \r \t, other controls as lower-case \u00xx, everything
// else literal, including U+2028/U+2029 and DEL), which is also what
// serde_json writes for the Rust side. Keys sort by UTF-16 code units,
// which is what the default Array.prototype.sort compares.

import { isWellFormed, utf8Encode } from './bytes.js';
import { VerifyError } from './errors.js';

/**
 * The canonical JSON text of `value`.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalize(value) {
  return write(value, 0);
}

/**
 * The UTF-8 bytes of the canonical JSON text of `value`.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function canonicalBytes(value) {
  return utf8Encode(canonicalize(value));
}

/**
 * @param {string} s
 */
function str(s) {
  // A lone surrogate has no UTF-8 form; RFC 8785 §3.2.2.2 says to fail.
  if (!isWellFormed(s)) throw new VerifyError('jcs', 'a string holds a lone UTF-16 surrogate');
  return JSON.stringify(s);
}

/**
 * @param {unknown} v
 * @param {number} depth
 * @returns {string}
 */
function write(v, depth) {
  if (depth > 128) throw new VerifyError('jcs', 'value nested too deeply');
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number') {
    // Every number in an evault leaf is an integer; above 2^53-1 a double
    // no longer holds it exactly (RFC 8785 §3.2.2.3, I-JSON).
    if (!Number.isSafeInteger(v)) {
      throw new VerifyError('jcs', `${v} is not an integer JSON carries exactly (at most 2^53-1)`);
    }
    return String(v); // -0 is written "0", as JCS wants
  }
  if (Array.isArray(v)) return `[${v.map((x) => write(x, depth + 1)).join(',')}]`;
  if (typeof v === 'object') {
    // Plain objects only: a Map, Date or class instance has no JCS form.
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      const o = /** @type {Record<string, unknown>} */ (v);
      const keys = Object.keys(o).sort();
      return `{${keys.map((k) => `${str(k)}:${write(o[k], depth + 1)}`).join(',')}}`;
    }
  }
  throw new VerifyError('jcs', `a ${typeof v} cannot be written as canonical JSON`);
}
