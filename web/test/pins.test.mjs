// Key pins (pins.js): trust on first use, the "trust new keys" path, and
// the rule that the evidence log and the audit log never share an origin
// or a key (neither at first use nor by trusting).

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { installStorage } from './storage.mjs';
import { signer } from './helpers.mjs';

const storage = installStorage();
const { checkPin, forgetPin, getLast, getPin, setLast, storageTrouble, trustServerKeys } = await import('../public/js/pins.js');

const EV = 'vault.example/evidence';
const AU = 'vault.example/evidence/audit';
const evKey = signer(EV, new Uint8Array(32).fill(1)).vkey;
const evKey2 = signer(EV, new Uint8Array(32).fill(2)).vkey;
const auKey = signer(AU, new Uint8Array(32).fill(3)).vkey;
const auKey2 = signer(AU, new Uint8Array(32).fill(4)).vkey;

/** @param {string} origin @param {string[]} keys */
const info = (origin, keys) => ({ origin, verifier_key: keys[keys.length - 1], verifier_keys: keys });

beforeEach(() => storage.clear());

test('first use pins, the same offer matches, another key or origin is a change', () => {
  const first = checkPin('evidence', info(EV, [evKey]));
  assert.equal(first.state, 'first-use');
  assert.deepEqual(getPin('evidence')?.keys, [evKey]);
  assert.equal(getPin('evidence')?.origin, EV);
  assert.equal(first.clash, '');
  assert.equal(checkPin('evidence', info(EV, [evKey])).state, 'match');
  const rotated = checkPin('evidence', info(EV, [evKey, evKey2]));
  assert.equal(rotated.state, 'changed');
  assert.deepEqual(rotated.unknown, [evKey2]);
  const renamed = checkPin('evidence', info('elsewhere.example/log', [evKey]));
  assert.equal(renamed.state, 'changed');
  assert.equal(storageTrouble(), '');
});

test('trusting a rotation adds the key; trusting another origin replaces the pin and drops the last checkpoint', () => {
  checkPin('evidence', info(EV, [evKey]));
  trustServerKeys('evidence', checkPin('evidence', info(EV, [evKey, evKey2])));
  assert.deepEqual(getPin('evidence')?.keys, [evKey, evKey2]);
  assert.equal(checkPin('evidence', info(EV, [evKey2])).state, 'match');

  setLast('evidence', `${EV}\n5\nAAAA\n\n— x y\n`);
  assert.ok(getLast('evidence'));
  const other = 'elsewhere.example/log';
  const otherKey = signer(other, new Uint8Array(32).fill(9)).vkey;
  trustServerKeys('evidence', checkPin('evidence', info(other, [otherKey])));
  assert.deepEqual(getPin('evidence'), { ...getPin('evidence'), origin: other, keys: [otherKey] });
  assert.equal(getLast('evidence'), null);
});

test("the audit log never pins or adopts the evidence log's origin or keys, nor the reverse", () => {
  assert.equal(checkPin('evidence', info(EV, [evKey])).state, 'first-use');
  // First use of the audit log, but the server offers the evidence log's
  // origin, or its key (under any name), or both: nothing is pinned.
  for (const offer of [info(EV, [auKey]), info(AU, [evKey]), info(EV, [evKey]), info(AU, [auKey, evKey])]) {
    const st = checkPin('audit', offer);
    assert.equal(st.state, 'refused', JSON.stringify(offer));
    assert.deepEqual(st.pin.keys, []);
    assert.match(st.clash, /evidence log/);
    assert.equal(getPin('audit'), null);
    assert.throws(() => trustServerKeys('audit', st), /Not trusted: .*never share an origin or a key/);
    assert.equal(getPin('audit'), null);
  }
  // The same key material under another name is the same key.
  const material = evKey.split('+').slice(2).join('+');
  const renamed = `${AU}+00000000+${material}`;
  assert.equal(checkPin('audit', info(AU, [renamed])).state, 'refused');

  // The audit log pinned properly; then the server swaps in the evidence
  // log's description for it: a change, and trusting it is refused.
  assert.equal(checkPin('audit', info(AU, [auKey])).state, 'first-use');
  const swapped = checkPin('audit', info(EV, [evKey]));
  assert.equal(swapped.state, 'changed');
  assert.notEqual(swapped.clash, '');
  assert.throws(() => trustServerKeys('audit', swapped), /Not trusted/);
  assert.deepEqual(getPin('audit')?.keys, [auKey]);
  assert.equal(getPin('audit')?.origin, AU);
  // A rotation that adds the evidence log's key to the audit log: refused too.
  const mixed = checkPin('audit', info(AU, [auKey, evKey]));
  assert.equal(mixed.state, 'changed');
  assert.throws(() => trustServerKeys('audit', mixed), /Not trusted/);
  assert.deepEqual(getPin('audit')?.keys, [auKey]);
  // And the reverse: the evidence log adopting the audit log's.
  const reverse = checkPin('evidence', info(EV, [evKey, auKey]));
  assert.equal(reverse.state, 'changed');
  assert.throws(() => trustServerKeys('evidence', reverse), /Not trusted/);
  assert.deepEqual(getPin('evidence')?.keys, [evKey]);
  // A genuine audit key rotation is still trusted.
  trustServerKeys('audit', checkPin('audit', info(AU, [auKey, auKey2])));
  assert.deepEqual(getPin('audit')?.keys, [auKey, auKey2]);
});

test('trusting checks the other pin as it is at the click, not as it was', () => {
  checkPin('audit', info(AU, [auKey]));
  const st = checkPin('audit', info(AU, [auKey, evKey2]));
  assert.equal(st.clash, ''); // evKey2 is nobody's yet
  // Meanwhile the evidence log was pinned with that key.
  checkPin('evidence', info(EV, [evKey2]));
  assert.throws(() => trustServerKeys('audit', st), /Not trusted/);
  assert.deepEqual(getPin('audit')?.keys, [auKey]);
});

test('forgetting a pin forgets its last checkpoint, and only that log', () => {
  checkPin('evidence', info(EV, [evKey]));
  checkPin('audit', info(AU, [auKey]));
  setLast('evidence', `${EV}\n5\nAAAA\n\n— x y\n`);
  setLast('audit', `${AU}\n3\nAAAA\n\n— x y\n`);
  forgetPin('evidence');
  assert.equal(getPin('evidence'), null);
  assert.equal(getLast('evidence'), null);
  assert.ok(getPin('audit'));
  assert.ok(getLast('audit'));
  assert.equal(checkPin('evidence', info(EV, [evKey])).state, 'first-use');
});

test('the last verified checkpoint is a high-water mark', () => {
  const note = (/** @type {number} */ n) => `${EV}\n${n}\nAAAA\n\n— x y\n`;
  assert.equal(setLast('evidence', note(7)), true);
  assert.equal(setLast('evidence', note(5)), false);
  assert.equal(getLast('evidence'), note(7));
  assert.equal(setLast('evidence', note(9)), true);
  assert.equal(getLast('evidence'), note(9));
  assert.equal(setLast('evidence', 'not a note'), false);
});

test('key material is all the base64, which may itself hold a "+"', () => {
  // Two different keys whose base64 shares the part after its last '+':
  // not the same key, so no clash.
  checkPin('evidence', info(EV, [`${EV}+01020304+AQAAAAAA+BBBBBBBB`]));
  const other = checkPin('audit', info(AU, [`${AU}+05060708+AQCCCCCC+BBBBBBBB`]));
  assert.equal(other.clash, '');
  assert.equal(other.state, 'first-use');
  // The very same material under another name is a clash.
  assert.notEqual(checkPin('audit', info(AU, [`${AU}+00000000+AQAAAAAA+BBBBBBBB`])).clash, '');
});
