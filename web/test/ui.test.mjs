// Small rules of the pages, checked without a browser: which ids reach
// the API, which paths request() refuses, and what a download says about
// its SHA-256.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { hasDotSegment, request } from '../public/js/api.js';
import { LOGS, isEntryId } from '../public/js/logs.js';
import { digestVerdict } from '../public/js/taskview.js';

const ID = '0190f3c2-6b1d-7e4a-9c3f-2d5e8a1b4c70';

test('record and event ids: lower-case hyphenated UUIDv7 only', () => {
  assert.ok(isEntryId(ID));
  for (const bad of ['..', '.', '%2e%2e', '', `${ID}/..`, `../${ID}`, ID.toUpperCase(), ID.replace(/-/g, ''),
    `{${ID}}`, `${ID} `, '0190f3c2-6b1d-4e4a-9c3f-2d5e8a1b4c70' /* v4 */, '0190f3c2-6b1d-7e4a-1c3f-2d5e8a1b4c70' /* variant */,
    `${ID}?x=1`, `${ID}#`, 5, null, undefined]) {
    assert.equal(isEntryId(bad), false, JSON.stringify(bad));
  }
  assert.equal(LOGS.evidence.proof(ID), `/api/v1/evidence/${ID}/proof`);
  assert.equal(LOGS.audit.entry(ID), `/api/v1/audit/events/${ID}`);
  // The path builders refuse anything else, so no caller can send "..".
  for (const bad of ['..', '.', '%2e%2e', 'x']) {
    assert.throws(() => LOGS.evidence.entry(bad), /not a record or event id/);
    assert.throws(() => LOGS.evidence.proof(bad), /not a record or event id/);
    assert.throws(() => LOGS.audit.entry(bad), /not a record or event id/);
    assert.throws(() => LOGS.audit.proof(bad), /not a record or event id/);
  }
});

test('request() refuses paths with dot segments before fetching', async () => {
  let fetched = 0;
  globalThis.fetch = /** @type {typeof fetch} */ (async () => {
    fetched += 1;
    return new Response('{}', { status: 200 });
  });
  for (const p of ['/api/v1/evidence/..', '/api/v1/evidence/../proof', '/api/v1/evidence/.', '/api/v1/a/%2e%2E/b',
    '/api/v1/a/.%2e/b', '/api/v1/a\\..\\b']) {
    assert.equal(hasDotSegment(p), true, p);
    await assert.rejects(request(p), /no "\." or "\.\." segments/, p);
  }
  for (const p of ['/api/v1/log', `/api/v1/evidence/${ID}/proof`, '/api/v1/evidence?label=a=..', '/api/v1/x.y', '/api/v1/...']) {
    assert.equal(hasDotSegment(p), false, p);
  }
  assert.equal(fetched, 0);
  await request('/api/v1/log');
  assert.equal(fetched, 1);
});

test('a downloaded result: checked against the reported SHA-256, or said to be unchecked', () => {
  const hex = 'ab'.repeat(32);
  /** @param {unknown} result */
  const t = (result) => /** @type {import('../public/js/sse.js').Task} */ (/** @type {unknown} */ ({
    id: ID, kind: 'export_bundle', state: 'succeeded', progress: { done: 1 }, cancel_requested: false, result,
  }));
  const ok = digestVerdict(t({ size: 3, sha256: hex, available: true }), hex, 2048);
  assert.equal(ok.save, true);
  assert.match(ok.text, /SHA-256 checked/);
  const upper = digestVerdict(t({ size: 3, sha256: hex.toUpperCase(), available: true }), hex, 2048);
  assert.equal(upper.save, true);
  const bad = digestVerdict(t({ size: 3, sha256: 'cd'.repeat(32), available: true }), hex, 2048);
  assert.equal(bad.save, false);
  assert.match(bad.text, /not the one the task reported.*not saved/);
  // No digest reported: saved, and the words say nothing was checked.
  for (const result of [null, undefined, { size: 3, available: true }, { size: 3, sha256: '', available: true }]) {
    const v = digestVerdict(t(result), hex, 2048);
    assert.equal(v.save, true);
    assert.doesNotMatch(v.text, /SHA-256 checked/);
    assert.match(v.text, /no digest to check against/);
    assert.match(v.text, new RegExp(hex));
  }
});
