// Leaf data byte for byte (docs/FORMATS.md examples and the Rust unit
// tests' cases) and RFC 8785 edge cases.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { utf8Decode } from '../public/js/verify/bytes.js';
import { canonicalize } from '../public/js/verify/jcs.js';
import {
  auditLeafData, checkAuditEvent, checkEvidenceRecord, evidenceLeafData,
} from '../public/js/verify/leaf.js';
import { REPO } from './helpers.mjs';

const FORMATS = readFileSync(join(REPO, 'docs', 'FORMATS.md'), 'utf8');

/**
 * The first ```json block after `heading` in FORMATS.md.
 * @param {string} heading
 */
function example(heading) {
  const at = FORMATS.indexOf(heading);
  assert.ok(at >= 0, `FORMATS.md has no ${heading}`);
  const m = /```json\n(.*)\n```/.exec(FORMATS.slice(at));
  assert.ok(m, `no JSON example after ${heading}`);
  return m[1];
}

const EVIDENCE_DOC = example('## Evidence leaf');
const AUDIT_DOC = example('### Leaf');

const EVIDENCE = {
  id: '01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a',
  leaf_index: 7,
  content_type: 'application/json',
  sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  size: 0,
  labels: { pipeline: 'release', commit: 'ab12' },
  ingested_at: '2026-11-23T11:30:00.123Z',
  ingested_by: 'sa:ci',
  idempotency_key: 'retry-1',
};

const AUDIT = {
  id: '01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a',
  leaf_index: 7,
  time: '2026-11-23T11:30:00.123Z',
  request_id: '01936f0e-8f39-7000-8000-000000000001',
  principal: 'sa:ci',
  key_id: 'k1',
  auth_method: 'service-account',
  protocol: 'http',
  operation: 'evidence.put',
  resource: '/api/v1/evidence/01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a',
  outcome: 'success',
  status: 201,
  client: '192.0.2.7:51234',
  params_digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
};

test('the FORMATS.md evidence leaf example, byte for byte', () => {
  assert.equal(utf8Decode(evidenceLeafData(EVIDENCE)), EVIDENCE_DOC);
  // Neither leaf_index nor idempotency_key is in the leaf.
  const moved = { ...EVIDENCE, leaf_index: 99 };
  delete (/** @type {any} */ (moved)).idempotency_key;
  assert.equal(utf8Decode(evidenceLeafData(moved)), EVIDENCE_DOC);
  assert.equal(utf8Decode(evidenceLeafData({ ...EVIDENCE, idempotency_key: null })), EVIDENCE_DOC);
});

test('the Rust evidence unit test: non-ASCII label keys and escapes', () => {
  const r = { ...EVIDENCE, labels: { pipeline: 'release', commit: 'ab12', 'é': '\u{1F600}"\n' } };
  assert.equal(
    utf8Decode(evidenceLeafData(r)),
    '{"content_type":"application/json","id":"01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a",' +
      '"ingested_at":"2026-11-23T11:30:00.123Z","ingested_by":"sa:ci",' +
      '"labels":{"commit":"ab12","pipeline":"release","é":"😀\\"\\n"},' +
      '"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",' +
      '"size":0,"v":"evault/evidence/v1"}',
  );
});

test('the FORMATS.md audit leaf example, byte for byte', () => {
  assert.equal(utf8Decode(auditLeafData(AUDIT)), AUDIT_DOC);
  assert.equal(utf8Decode(auditLeafData({ ...AUDIT, leaf_index: 99 })), AUDIT_DOC);
  // Absent and null options are both left out.
  const { key_id: _, ...noKey } = AUDIT;
  const a = utf8Decode(auditLeafData(noKey));
  assert.ok(!a.includes('key_id'));
  assert.equal(utf8Decode(auditLeafData({ ...noKey, key_id: null, reason: null })), a);
});

test('the Rust audit unit test: optional members and escapes', () => {
  const { key_id: _, ...e } = AUDIT;
  const got = utf8Decode(auditLeafData({ ...e, outcome: 'denied', status: 403, reason: 'needs role "admin"\n😀' }));
  assert.ok(!got.includes('key_id'), got);
  assert.ok(got.includes('"outcome":"denied",'), got);
  assert.ok(got.includes('"reason":"needs role \\"admin\\"\\n😀",'), got);
  assert.ok(got.includes('"status":403,'), got);
});

test('records are strict: unknown, missing and mistyped members are refused', () => {
  /** @param {unknown} r @param {RegExp} msg */
  const refusesEvidence = (r, msg) => assert.throws(() => evidenceLeafData(r), msg);
  refusesEvidence({ ...EVIDENCE, approved: true }, /does not know: "approved"/);
  refusesEvidence({ ...EVIDENCE, v: 'evault/evidence/v1' }, /does not know: "v"/);
  for (const k of ['id', 'leaf_index', 'content_type', 'sha256', 'size', 'ingested_at', 'ingested_by']) {
    const r = /** @type {Record<string, unknown>} */ ({ ...EVIDENCE });
    delete r[k];
    refusesEvidence(r, new RegExp(`has no "${k}"`));
  }
  refusesEvidence({ ...EVIDENCE, size: 2 ** 53 }, /"size" is not an integer/);
  refusesEvidence({ ...EVIDENCE, size: 1.5 }, /"size" is not an integer/);
  refusesEvidence({ ...EVIDENCE, size: -1 }, /"size" is not an integer/);
  refusesEvidence({ ...EVIDENCE, size: '0' }, /"size" is not an integer/);
  refusesEvidence({ ...EVIDENCE, leaf_index: 2 ** 64 }, /"leaf_index" is not an integer/);
  refusesEvidence({ ...EVIDENCE, id: null }, /"id" is not a string/);
  refusesEvidence({ ...EVIDENCE, labels: null }, /"labels" is not an object/);
  refusesEvidence({ ...EVIDENCE, labels: ['a'] }, /"labels" is not an object/);
  refusesEvidence({ ...EVIDENCE, labels: { a: 1 } }, /label "a" is not a string/);
  refusesEvidence({ ...EVIDENCE, idempotency_key: 5 }, /"idempotency_key" is not a string/);
  refusesEvidence([], /not a JSON object/);
  refusesEvidence(null, /not a JSON object/);
  // Absent labels are {} (serde default).
  const { labels: _, ...noLabels } = EVIDENCE;
  assert.deepEqual(checkEvidenceRecord(noLabels).labels, {});

  /** @param {unknown} e @param {RegExp} msg */
  const refusesAudit = (e, msg) => assert.throws(() => auditLeafData(e), msg);
  refusesAudit({ ...AUDIT, approved: true }, /does not know: "approved"/);
  refusesAudit({ ...AUDIT, outcome: 'Success' }, /outcome "Success" is not/);
  refusesAudit({ ...AUDIT, status: 65536 }, /"status" is not an integer from 0 to 65535/);
  refusesAudit({ ...AUDIT, status: 201.5 }, /"status"/);
  refusesAudit({ ...AUDIT, reason: 7 }, /"reason" is not a string/);
  const { status: _s, ...noStatus } = AUDIT;
  refusesAudit(noStatus, /has no "status"/);
  for (const o of ['success', 'denied', 'unauthenticated', 'failed']) {
    assert.equal(checkAuditEvent({ ...AUDIT, outcome: o }).outcome, o);
  }
  for (const s of [0, 7, 200, 65535]) assert.equal(checkAuditEvent({ ...AUDIT, status: s }).status, s);
});

test('JCS: keys sort by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
  const input = {
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  };
  assert.equal(
    canonicalize(input),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",' +
      '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
  // A non-BMP key sorts before U+FFFD in UTF-16 (0xD83D < 0xFFFD), after it
  // in code points: JCS wants the former.
  assert.equal(canonicalize({ '\ufffd': 1, '😀': 2 }), '{"😀":2,"\ufffd":1}');
  // Label keys in an evidence leaf follow the same order.
  const leaf = utf8Decode(evidenceLeafData({ ...EVIDENCE, labels: { '\ufffd': 'a', '😀': 'b', z: 'c' } }));
  assert.ok(leaf.includes('"labels":{"z":"c","😀":"b","\ufffd":"a"}'), leaf);
});

test('JCS: strings escape minimally (RFC 8785 and serde_json agree)', () => {
  assert.equal(canonicalize('\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/'), '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"');
  assert.equal(
    canonicalize('\u0000\u0001\b\t\n\u000b\f\r\u001f\u007f'),
    '"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u007f"',
  );
  // U+2028/U+2029 stay literal (JSON.stringify and serde_json both).
  assert.equal(canonicalize('a\u2028b\u2029c'), '"a\u2028b\u2029c"');
  // Markup is data: nothing to escape, nothing changed.
  const xss = '<img src=x onerror=alert(1)>';
  assert.equal(canonicalize(xss), `"${xss}"`);
  assert.equal(canonicalize('</script>'), '"</script>"');
  const leaf = utf8Decode(evidenceLeafData({ ...EVIDENCE, labels: { note: xss } }));
  assert.ok(leaf.includes(`"labels":{"note":"${xss}"}`), leaf);
  // A lone surrogate has no UTF-8 form: refused, not replaced.
  assert.throws(() => canonicalize('a\ud800'), /lone UTF-16 surrogate/);
  assert.throws(() => evidenceLeafData({ ...EVIDENCE, labels: { '\udc00': 'x' } }), /lone UTF-16 surrogate/);
});

test('JCS: integers only, exactly representable', () => {
  assert.equal(canonicalize([0, -0, 1, -1, 9007199254740991, true, false, null, [], {}]), '[0,0,1,-1,9007199254740991,true,false,null,[],{}]');
  for (const bad of [2 ** 53, 1.5, NaN, Infinity, -(2 ** 53), undefined, 1n, new Date(0), new Map()]) {
    assert.throws(() => canonicalize(bad), { code: 'jcs' }, String(bad));
  }
  assert.throws(() => canonicalize({ a: undefined }), { code: 'jcs' });
});
