// Base64, hex and the strict JSON reader.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { b64decode, b64encode, bytesEqual, hexDecode, hexEncode, isWellFormed } from '../public/js/verify/bytes.js';
import { parseJson } from '../public/js/verify/json.js';

test('base64 is canonical, as crates/note/src/b64.rs decodes it', () => {
  assert.equal(b64encode(Uint8Array.of(0xff, 0xee, 0x01)), '/+4B');
  assert.deepEqual(b64decode('/+4B'), Uint8Array.of(0xff, 0xee, 0x01));
  assert.deepEqual(b64decode('AQ=='), Uint8Array.of(1));
  assert.deepEqual(b64decode('AQI='), Uint8Array.of(1, 2));
  assert.deepEqual(b64decode(''), new Uint8Array(0));
  // Missing padding, non-zero pad bits, URL alphabet, whitespace, misplaced
  // or excess padding, non-ASCII.
  for (const bad of ['AQ', 'AR==', 'AQJ=', '_-4B', 'AQ== ', ' AQ==', 'A Q==', 'AQ==\n', 'A===', '====',
    'AQ==AQ==', 'A=Q=', 'AQ=A', 'AQ=', 'é===', 'AQ\u00a0=']) {
    assert.equal(b64decode(bad), null, JSON.stringify(bad));
  }
  // Round trip over every length and byte value.
  for (let n = 0; n < 70; n++) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n) & 0xff);
    const s = b64encode(b);
    assert.equal(s, Buffer.from(b).toString('base64'));
    assert.deepEqual(b64decode(s), b);
  }
});

test('hex is lower-case', () => {
  assert.equal(hexEncode(Uint8Array.of(0, 0xab, 0xff)), '00abff');
  assert.deepEqual(hexDecode('00abff'), Uint8Array.of(0, 0xab, 0xff));
  assert.equal(hexDecode('00ABFF'), null);
  assert.equal(hexDecode('0'), null);
  assert.equal(hexDecode('zz'), null);
});

test('byte equality and well-formed strings', () => {
  assert.ok(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1)));
  assert.ok(isWellFormed('a😀b'));
  assert.ok(!isWellFormed('a\ud800b'));
  assert.ok(!isWellFormed('a\udc00'));
  assert.ok(!isWellFormed('\ude00\ud83d'));
});

test('strict JSON: what JSON.parse accepts and we refuse', () => {
  assert.deepEqual(parseJson(' {"a":[1,-2,0,true,false,null,"x\\u00e9\\ud83d\\ude00"]} '), {
    a: [1, -2, 0, true, false, null, 'xé😀'],
  });
  assert.equal(parseJson('9007199254740991'), Number.MAX_SAFE_INTEGER);
  for (const bad of [
    '9007199254740992', // 2^53: JSON.parse gives it, but so it does for 2^53 + 1
    '9007199254740993',
    '18446744073709551615',
    '-9007199254740992',
    '1.5', '1e3', '1.0', '201.0', '2.01e2',
    '{"a":1,"a":2}',
    '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\ud800"',
    '"a\nb"', '"\\x41"', "'a'",
    '01', '+1', '.5', '-', '[1,]', '{"a":1,}', '{a:1}', '[1 2]',
    '', ' ', 'nul', 'true false', '\ufeff{}', '[' .repeat(200) + ']'.repeat(200),
  ]) {
    assert.throws(() => parseJson(bad), { code: 'json' }, JSON.stringify(bad));
  }
});

test('strict JSON: "__proto__" is a plain member, not a prototype', () => {
  const v = /** @type {Record<string, unknown>} */ (parseJson('{"__proto__":{"polluted":true},"a":1}'));
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v), ['__proto__', 'a']);
  assert.equal(/** @type {any} */ ({}).polluted, undefined);
});
