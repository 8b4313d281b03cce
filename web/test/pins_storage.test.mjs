// Pins when the browser's storage refuses (disabled, blocked or full):
// verification must still be possible, with the pins in memory, and the
// trouble is reported (pinview.js shows it). Its own file: pins.js keeps
// that memory per page, as a browser tab would.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { installStorage, quotaError } from './storage.mjs';
import { signer } from './helpers.mjs';

const storage = installStorage();
const { checkPin, forgetPin, getLast, getPin, setLast, storageTrouble, trustServerKeys } = await import('../public/js/pins.js');

const EV = 'vault.example/evidence';
const key = signer(EV, new Uint8Array(32).fill(1)).vkey;
const key2 = signer(EV, new Uint8Array(32).fill(2)).vkey;
const note = (/** @type {number} */ n) => `${EV}\n${n}\nAAAA\n\n— x y\n`;

test('storage that refuses writes: pins and the last checkpoint live in memory, and that is reported', () => {
  storage.failWrites = quotaError();
  assert.equal(storageTrouble(), '');
  const st = checkPin('evidence', { origin: EV, verifier_keys: [key] });
  assert.equal(st.state, 'first-use');
  assert.match(storageTrouble(), /QuotaExceededError/);
  assert.equal(storage.map.size, 0);
  // Still pinned for this page: the next check matches instead of pinning again.
  assert.deepEqual(getPin('evidence')?.keys, [key]);
  assert.equal(checkPin('evidence', { origin: EV, verifier_keys: [key] }).state, 'match');
  assert.equal(setLast('evidence', note(7)), true);
  assert.equal(getLast('evidence'), note(7));
  assert.equal(setLast('evidence', note(5)), false);
  trustServerKeys('evidence', checkPin('evidence', { origin: EV, verifier_keys: [key, key2] }));
  assert.deepEqual(getPin('evidence')?.keys, [key, key2]);
  // Forgetting works too (removeItem throws as well).
  forgetPin('evidence');
  assert.equal(getPin('evidence'), null);
  assert.equal(getLast('evidence'), null);

  // Storage that works again takes each value at its next write; from
  // then on memory no longer shadows it.
  storage.failWrites = null;
  checkPin('evidence', { origin: EV, verifier_keys: [key] });
  assert.ok(storage.map.get('evault.pin.evidence'));
  assert.equal(setLast('evidence', note(9)), true);
  assert.equal(storage.map.get('evault.last.evidence'), note(9));
  storage.map.set('evault.last.evidence', note(11));
  assert.equal(getLast('evidence'), note(11));
});

test('storage that refuses reads too (disabled): first use every page, never an exception', () => {
  storage.failReads = new DOMException('The operation is insecure.', 'SecurityError');
  storage.failWrites = storage.failReads;
  assert.equal(checkPin('audit', { origin: `${EV}/audit`, verifier_keys: [signer(`${EV}/audit`, new Uint8Array(32).fill(5)).vkey] }).state, 'first-use');
  assert.ok(getPin('audit'));
  assert.match(storageTrouble(), /SecurityError/);
});
