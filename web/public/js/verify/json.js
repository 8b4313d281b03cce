// A strict JSON parser for what the API returns (RFC 8259), refusing what
// JSON.parse would silently change or pick:
// - numbers that are not integers, or not exactly representable (above
//   2^53 - 1): JSON.parse rounds them, and a rounded size or index would
//   be checked as if the server had sent it;
// - -0: serde_json reads it as the float -0.0, which no integer member takes
//   (JSON.parse gives -0, which reads as 0 and would verify);
// - duplicate member names: JSON.parse keeps the last, the Rust verifier
//   (serde) refuses them in records and bundles;
// - lone surrogate escapes such as "\ud800", which have no UTF-8 form (serde
//   refuses them; TextEncoder would turn them into U+FFFD).
// Objects are built with defineProperty, so a "__proto__" member is data.

import { VerifyError } from './errors.js';

const MAX_DEPTH = 128; // serde_json's recursion limit

/**
 * Parses JSON text strictly (see above); objects are plain objects.
 * @param {string} text
 * @returns {unknown}
 */
export function parseJson(text) {
  if (typeof text !== 'string') throw new VerifyError('json', 'not JSON text');
  let i = 0;
  const fail = (/** @type {string} */ what) =>
    new VerifyError('json', `not valid JSON at character ${i}: ${what}`);
  const ws = () => {
    while (i < text.length) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else break;
    }
  };

  const hex4 = () => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw fail('bad \\u escape');
    i += 4;
    return parseInt(h, 16);
  };

  /** @returns {string} */
  const string = () => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) throw fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) throw fail('control character in string');
      if (c >= 0xd800 && c <= 0xdfff) {
        // Raw surrogates must come in pairs (the text itself is UTF-16).
        const next = text.charCodeAt(i + 1);
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          i += 2;
          continue;
        }
        throw fail('lone surrogate');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      i++;
      const e = text[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const u = hex4();
          if (u >= 0xd800 && u <= 0xdbff) {
            if (text.slice(i, i + 2) !== '\\u') throw fail('lone surrogate escape');
            i += 2;
            const lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) throw fail('lone surrogate escape');
            out += String.fromCharCode(u, lo);
          } else if (u >= 0xdc00 && u <= 0xdfff) {
            throw fail('lone surrogate escape');
          } else {
            out += String.fromCharCode(u);
          }
          break;
        }
        default:
          throw fail('bad escape');
      }
      start = i;
    }
  };

  const number = () => {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) throw fail('bad number');
    if (m[1] !== undefined || m[2] !== undefined) {
      throw fail(`${m[0]} is not an integer (every number here is one)`);
    }
    if (m[0] === '-0') throw fail('-0 is not an integer (serde reads it as a float)');
    const n = Number(m[0]);
    if (!Number.isSafeInteger(n)) {
      throw fail(`${m[0]} is beyond 2^53-1, which JavaScript cannot hold exactly`);
    }
    i += m[0].length;
    return n;
  };

  /**
   * @param {number} depth
   * @returns {unknown}
   */
  const value = (depth) => {
    if (depth > MAX_DEPTH) throw fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      /** @type {Record<string, unknown>} */
      const obj = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw fail('expected a member name');
        const key = string();
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          throw fail(`duplicate member ${JSON.stringify(key)}`);
        }
        ws();
        if (text[i] !== ':') throw fail('expected ":"');
        i++;
        const v = value(depth + 1);
        Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        throw fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      /** @type {unknown[]} */
      const arr = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        throw fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    for (const [word, v] of /** @type {const} */ ([['true', true], ['false', false], ['null', null]])) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    throw fail(i >= text.length ? 'unexpected end' : 'unexpected character');
  };

  const v = value(0);
  ws();
  if (i !== text.length) throw fail('trailing characters');
  return v;
}
