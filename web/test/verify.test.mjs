// The API the dashboard calls: verifyProofBundle, verifyConsistencyProof,
// verifyPayload, end to end over logs built here and signed with
// node:crypto, mirroring crates/verify's bundle and consistency tests.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { auditLeafData, evidenceLeafData } from '../public/js/verify/leaf.js';
import { verifyConsistencyProof, verifyPayload, verifyProofBundle } from '../public/js/verify/verify.js';
import { RefTree, checkpointText, refLeafHash, signNote, signer, toB64 } from './helpers.mjs';

const ORIGIN = 'vault.example/log';
const AUDIT_ORIGIN = 'vault.example/log/audit';
const logKey = signer(ORIGIN, new Uint8Array(32).fill(3));
const auditKey = signer(AUDIT_ORIGIN, new Uint8Array(32).fill(5));
const stranger = signer(ORIGIN, new Uint8Array(32).fill(4));
const witness = signer('witness.example/w1', new Uint8Array(32).fill(6));

/** @param {number} i */
function record(i) {
  const payload = Buffer.from(`payload ${i}`);
  return {
    id: `01936f0e-8f3a-7cc2-9b1e-${String(i).padStart(12, '0')}`,
    leaf_index: i,
    content_type: 'text/plain',
    sha256: createHash('sha256').update(payload).digest('hex'),
    size: payload.length,
    labels: { n: String(i), note: '<img src=x onerror=alert(1)>' },
    ingested_at: '2026-11-23T11:30:00.123Z',
    ingested_by: 'sa:ci',
  };
}

/** @param {number} i */
function event(i) {
  return {
    id: `01936f0e-8f3a-7cc2-9b1e-${String(i).padStart(12, '0')}`,
    leaf_index: i,
    time: '2026-11-23T11:30:00.123Z',
    request_id: `req-${i}`,
    principal: 'sa:ci',
    auth_method: 'service-account',
    protocol: 'http',
    operation: 'evidence.put',
    resource: '/api/v1/evidence/x',
    outcome: 'success',
    status: 201,
    client: '192.0.2.7:51234',
    params_digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  };
}

/**
 * A log of `n` leaves and its signed checkpoints.
 * @param {'evidence' | 'audit'} kind
 * @param {number} n
 * @param {number} [salt]  another salt gives another log (a fork)
 */
function makeLog(kind, n, salt = 0) {
  const items = Array.from({ length: n }, (_, i) => {
    const r = kind === 'evidence' ? record(i) : event(i);
    if (salt) /** @type {any} */ (r).labels = kind === 'evidence' ? { salt: String(salt) } : undefined;
    if (kind === 'audit' && salt) /** @type {any} */ (r).request_id += `-${salt}`;
    if (kind === 'audit') delete (/** @type {any} */ (r)).labels;
    return r;
  });
  const tree = new RefTree(items.map((r) => refLeafHash(kind === 'evidence' ? evidenceLeafData(r) : auditLeafData(r))));
  const origin = kind === 'evidence' ? ORIGIN : AUDIT_ORIGIN;
  const key = kind === 'evidence' ? logKey : auditKey;
  return {
    items,
    tree,
    /** @param {number} size @param {ReturnType<typeof signer>[]} [keys] */
    note: (size, keys = [key]) => signNote(checkpointText(origin, size, tree.root(size)), keys),
    /** @param {number} i @param {number} size */
    bundle(i, size) {
      return {
        record: /** @type {any} */ (structuredClone(items[i])),
        leaf_index: i,
        tree_size: size,
        inclusion_proof: tree.inclusion(i, size).map(toB64),
        checkpoint: this.note(size),
      };
    },
    /** @param {number} from @param {number} to */
    proof: (from, to) => tree.consistency(from, to).map(toB64),
  };
}

const EVIDENCE_STEPS = ['record', 'leaf', 'key', 'signature', 'checkpoint', 'inclusion'];

/**
 * @param {import('../public/js/verify/verify.js').Outcome} out
 * @param {string} failed
 * @param {RegExp} [detail]
 */
function failsAt(out, failed, detail) {
  assert.equal(out.ok, false, JSON.stringify(out.steps));
  assert.equal(out.failed, failed, JSON.stringify(out.steps));
  const last = out.steps[out.steps.length - 1];
  assert.equal(last.name, failed);
  assert.equal(last.ok, false);
  assert.ok(out.steps.slice(0, -1).every((s) => s.ok));
  if (detail) assert.match(last.detail, detail);
}

test('an evidence bundle verifies, every step in order', async () => {
  const log = makeLog('evidence', 13);
  const b = log.bundle(5, 13);
  const out = await verifyProofBundle('evidence', b, log.items[5], [logKey.vkey]);
  assert.equal(out.ok, true, JSON.stringify(out.steps));
  assert.equal(out.failed, null);
  assert.deepEqual(out.steps.map((s) => s.name), EVIDENCE_STEPS);
  assert.ok(out.steps.every((s) => s.ok && typeof s.detail === 'string' && s.detail.length > 0));
  assert.ok(out.checkpoint);
  assert.equal(out.checkpoint.origin, ORIGIN);
  assert.equal(out.checkpoint.size, 13n);
  assert.deepEqual(out.checkpoint.root, log.tree.root(13));
  assert.equal(out.checkpoint.text, checkpointText(ORIGIN, 13, log.tree.root(13)));
  assert.match(out.steps[3].detail, new RegExp(`signed by ${ORIGIN}\\+${logKey.keyId.toString(16).padStart(8, '0')}`));

  // Every leaf of several sizes, without the fetched record.
  for (const size of [1, 2, 7, 13]) {
    for (let i = 0; i < size; i++) {
      const o = await verifyProofBundle('evidence', log.bundle(i, size), null, logKey.vkey);
      assert.equal(o.ok, true, `${i}/${size}: ${JSON.stringify(o.steps)}`);
      assert.deepEqual(o.steps.map((s) => s.name), EVIDENCE_STEPS.slice(1));
    }
  }
});

test('the bundle as response text, and integers JSON.parse would round', async () => {
  const log = makeLog('evidence', 13);
  const text = JSON.stringify(log.bundle(5, 13));
  assert.equal((await verifyProofBundle('evidence', text, JSON.stringify(log.items[5]), [logKey.vkey])).ok, true);
  const big = text.replace('"tree_size":13', '"tree_size":9007199254740993');
  failsAt(await verifyProofBundle('evidence', big, null, [logKey.vkey]), 'leaf', /beyond 2\^53-1/);
  const bigSize = text.replace('"size":9,', '"size":18446744073709551616,');
  assert.notEqual(bigSize, text);
  failsAt(await verifyProofBundle('evidence', bigSize, null, [logKey.vkey]), 'leaf', /beyond 2\^53-1/);
  // As an object, a rounded number is refused where it is read.
  const obj = { ...log.bundle(5, 13), tree_size: 2 ** 53 };
  failsAt(await verifyProofBundle('evidence', obj, log.items[5], [logKey.vkey]), 'record', /tree_size is not an integer/);
  failsAt(await verifyProofBundle('evidence', '{"record":', null, [logKey.vkey]), 'leaf', /not valid JSON/);
  failsAt(await verifyProofBundle('evidence', text.replace('{', '{"x":1,'), null, [logKey.vkey]), 'leaf', /does not know: "x"/);
});

test('tampering with the record is caught', async () => {
  const log = makeLog('evidence', 13);
  // The fetched record differs from the bundle's.
  const other = { ...log.items[5], labels: { n: 'changed' } };
  failsAt(await verifyProofBundle('evidence', log.bundle(5, 13), other, [logKey.vkey]), 'record', /different record/);
  // Absent labels equal {} and a null idempotency key an absent one, as in Rust.
  const l0 = makeLog('evidence', 2);
  const b0 = l0.bundle(0, 2);
  b0.record.labels = {};
  /** @type {any} */ (b0.record).idempotency_key = null;
  const { labels: _, ...noLabels } = b0.record;
  failsAt(await verifyProofBundle('evidence', b0, noLabels, [logKey.vkey]), 'inclusion'); // passes 'record'
  // The bundle's record altered: its leaf is not in the tree.
  const b = log.bundle(5, 13);
  b.record.labels.n = '6';
  failsAt(await verifyProofBundle('evidence', b, null, [logKey.vkey]), 'inclusion', /does not lead to the checkpoint's root/);
  // A member the verifier does not know.
  const u = log.bundle(5, 13);
  /** @type {any} */ (u.record).approved = true;
  failsAt(await verifyProofBundle('evidence', u, null, [logKey.vkey]), 'leaf', /does not know: "approved"/);
  failsAt(await verifyProofBundle('evidence', u, log.items[5], [logKey.vkey]), 'record', /does not know: "approved"/);
  // The record's own index differs from the bundle's.
  const m = log.bundle(5, 13);
  m.record.leaf_index = 6;
  failsAt(await verifyProofBundle('evidence', m, null, [logKey.vkey]), 'leaf', /leaf index 5 differs from the record's own 6/);
  // An audit event is not an evidence record.
  const audit = makeLog('audit', 3);
  failsAt(await verifyProofBundle('evidence', audit.bundle(1, 3), null, [auditKey.vkey]), 'leaf', /does not know/);
});

test('keys: none, malformed, a stranger, a witness key, ML-DSA beside Ed25519', async () => {
  const log = makeLog('evidence', 13);
  const b = log.bundle(5, 13);
  failsAt(await verifyProofBundle('evidence', b, null, []), 'key', /no verifier key is pinned/);
  failsAt(await verifyProofBundle('evidence', b, null, ['  \n ']), 'key', /no verifier key is pinned/);
  failsAt(await verifyProofBundle('evidence', b, null, [`${logKey.vkey}x`]), 'key', /not usable/);
  failsAt(await verifyProofBundle('evidence', b, null, /** @type {any} */ (5)), 'key');
  // Several keys in one text, one per line, with spaces and duplicates.
  const several = ` ${stranger.vkey}\n\n${logKey.vkey} \n${logKey.vkey}\n`;
  assert.equal((await verifyProofBundle('evidence', b, null, several)).ok, true);

  const out = await verifyProofBundle('evidence', b, null, [stranger.vkey]);
  failsAt(out, 'signature', new RegExp(`not signed by a pinned key; it is signed by ${ORIGIN}\\+`));
  assert.equal(out.checkpoint, null);

  // A witness's cosignature/v1 key (type 0x04) is not a log key, and an
  // unknown type is refused.
  failsAt(await verifyProofBundle('evidence', b, null, [keyText('witness.example/w1', 0x04, witness.publicKey)]), 'key', /witness's cosignature key/);
  failsAt(await verifyProofBundle('evidence', b, null, [keyText(ORIGIN, 0x05, logKey.publicKey)]), 'key', /signature type 0x05 is not Ed25519/);

  // An ML-DSA-44 key (type 0x06) is set aside: the Ed25519 line is checked.
  const mldsa = keyText(ORIGIN, 0x06, new Uint8Array(1312).fill(9));
  const ok = await verifyProofBundle('evidence', b, null, [mldsa, logKey.vkey]);
  assert.equal(ok.ok, true, JSON.stringify(ok.steps));
  assert.match(ok.steps[1].detail, /ML-DSA-44 key .* not checked in the browser/);
  failsAt(await verifyProofBundle('evidence', b, null, [mldsa]), 'key', /no Ed25519 key is pinned/);
});

/**
 * A verifier key text of any signature type, with its key ID computed.
 * @param {string} name
 * @param {number} alg
 * @param {Uint8Array} pk
 */
function keyText(name, alg, pk) {
  const h = createHash('sha256').update(name).update(Uint8Array.of(0x0a, alg)).update(pk).digest();
  return `${name}+${h.subarray(0, 4).toString('hex')}+${toB64(Uint8Array.of(alg, ...pk))}`;
}

test('the checkpoint: signatures, other lines, sizes', async () => {
  const log = makeLog('evidence', 13);
  // Signed also by a witness and a second (rotated) log key, plus an
  // ML-DSA-44 line: lines of keys not pinned are skipped.
  const b = log.bundle(5, 13);
  b.checkpoint = `${log.note(13, [logKey, stranger, witness])}\u2014 ${ORIGIN} ${toB64(new Uint8Array(2432).fill(1))}\n`;
  assert.equal((await verifyProofBundle('evidence', b, null, [logKey.vkey])).ok, true);
  assert.equal((await verifyProofBundle('evidence', b, null, [stranger.vkey])).ok, true);
  // The checkpoint's text altered: the signature fails.
  const t = log.bundle(5, 13);
  t.checkpoint = t.checkpoint.replace('\n13\n', '\n14\n');
  failsAt(await verifyProofBundle('evidence', t, null, [logKey.vkey]), 'signature', /invalid signature for key/);
  // A malformed note.
  const mal = log.bundle(5, 13);
  mal.checkpoint = mal.checkpoint.replace('\n\n', '\n');
  failsAt(await verifyProofBundle('evidence', mal, null, [logKey.vkey]), 'signature', /no blank line/);
  // A signed text that is not a checkpoint.
  const notCp = log.bundle(5, 13);
  notCp.checkpoint = signNote('hello\n', [logKey]);
  failsAt(await verifyProofBundle('evidence', notCp, null, [logKey.vkey]), 'checkpoint', /signed but malformed checkpoint/);
  // The bundle's tree size is not the checkpoint's; the checkpoint is still reported.
  const s = log.bundle(5, 13);
  s.tree_size = 12;
  const out = await verifyProofBundle('evidence', s, null, [logKey.vkey]);
  failsAt(out, 'checkpoint', /claims tree size 12 but the checkpoint is for 13/);
  assert.equal(out.checkpoint?.size, 13n);
  // An index beyond the tree.
  const far = makeLog('evidence', 13).bundle(5, 5 + 1);
  far.leaf_index = 6;
  far.record.leaf_index = 6;
  failsAt(await verifyProofBundle('evidence', far, null, [logKey.vkey]), 'checkpoint', /leaf index 6 is not below the tree size 6/);
});

test('the inclusion proof: bad elements, wrong length, wrong position', async () => {
  const log = makeLog('evidence', 13);
  const b = log.bundle(5, 13);
  b.inclusion_proof[1] = 'nope';
  failsAt(await verifyProofBundle('evidence', b, null, [logKey.vkey]), 'inclusion', /inclusion proof element 1 is not a base64 SHA-256 hash/);
  const s = log.bundle(5, 13);
  s.inclusion_proof.pop();
  failsAt(await verifyProofBundle('evidence', s, null, [logKey.vkey]), 'inclusion', /proof has 3 hashes, expected 4/);
  const w = log.bundle(5, 13);
  w.inclusion_proof.reverse();
  failsAt(await verifyProofBundle('evidence', w, null, [logKey.vkey]), 'inclusion', /does not lead/);
  const bad = log.bundle(5, 13);
  /** @type {any} */ (bad).inclusion_proof = 'AAAA';
  failsAt(await verifyProofBundle('evidence', bad, null, [logKey.vkey]), 'leaf', /inclusion_proof is not a list/);
});

test('an audit bundle verifies with the audit key only', async () => {
  const log = makeLog('audit', 13);
  const b = log.bundle(5, 13);
  const out = await verifyProofBundle('audit', b, log.items[5], [auditKey.vkey]);
  assert.equal(out.ok, true, JSON.stringify(out.steps));
  assert.deepEqual(out.steps.map((s) => s.name), EVIDENCE_STEPS);
  assert.equal(out.checkpoint?.origin, AUDIT_ORIGIN);
  failsAt(await verifyProofBundle('audit', b, null, [logKey.vkey]), 'signature', /not signed by a pinned key/);
  const t = log.bundle(5, 13);
  t.record.outcome = 'denied';
  failsAt(await verifyProofBundle('audit', t, null, [auditKey.vkey]), 'inclusion', /does not lead/);
  // Pinning both logs' keys is fine: the audit key's line is the one checked.
  assert.equal((await verifyProofBundle('audit', log.bundle(5, 13), null, [logKey.vkey, auditKey.vkey])).ok, true);
});

test('never throws, whatever it is given', async () => {
  const log = makeLog('evidence', 3);
  /** @type {unknown[]} */
  const junk = [undefined, null, 0, '', '{', '[]', [], {}, { record: null }, 'null', Symbol('x'), () => {}];
  for (const j of junk) {
    for (const kind of ['evidence', 'audit', 'other', undefined]) {
      const out = await verifyProofBundle(/** @type {any} */ (kind), j, null, [logKey.vkey]);
      assert.equal(out.ok, false);
      assert.equal(out.steps.length, 1);
      assert.ok(out.steps[0].detail.length > 0);
    }
    const b = log.bundle(1, 3);
    const out = await verifyProofBundle('evidence', b, j === null || j === undefined ? { a: 1 } : j, /** @type {any} */ (j));
    assert.equal(out.ok, false);
    const c = await verifyConsistencyProof(/** @type {any} */ (j), /** @type {any} */ (j), /** @type {any} */ (j), /** @type {any} */ (j));
    assert.equal(c.ok, false);
    const p = await verifyPayload(/** @type {any} */ (j), j);
    assert.equal(p.ok, false);
  }
});

test('consistency: a genuine proof verifies and tampering is caught', async () => {
  const log = makeLog('evidence', 20);
  const [old, neu] = [log.note(7), log.note(20)];
  const out = await verifyConsistencyProof(old, neu, log.proof(7, 20), [logKey.vkey]);
  assert.equal(out.ok, true, JSON.stringify(out.steps));
  assert.deepEqual(out.steps.map((s) => s.name), ['key', 'signature', 'checkpoint', 'consistency']);
  assert.equal(out.checkpoint?.size, 20n);
  assert.equal(out.checkpoint?.origin, ORIGIN);
  // Every pair of sizes.
  for (let a = 1; a <= 20; a++) {
    for (const z of [a, a + 1, 20]) {
      if (z > 20) continue;
      const o = await verifyConsistencyProof(log.note(a), log.note(z), log.proof(a, z), logKey.vkey);
      assert.equal(o.ok, true, `${a}->${z}: ${JSON.stringify(o.steps)}`);
    }
  }
  const swapped = log.proof(7, 20);
  [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
  failsAt(await verifyConsistencyProof(old, neu, swapped, [logKey.vkey]), 'consistency', /does not extend the older one/);
  const bad = log.proof(7, 20);
  bad[0] = 'nope';
  failsAt(await verifyConsistencyProof(old, neu, bad, [logKey.vkey]), 'consistency', /element 0 is not a base64 SHA-256 hash/);
  failsAt(await verifyConsistencyProof(neu, old, log.proof(7, 20), [logKey.vkey]), 'checkpoint', /has size 20 but the newer only 7/);
  // A rewritten log: another tree of the same size.
  const forged = makeLog('evidence', 20, 1).note(20);
  failsAt(await verifyConsistencyProof(old, forged, log.proof(7, 20), [logKey.vkey]), 'consistency', /does not extend/);
  // A key that signed neither.
  failsAt(await verifyConsistencyProof(old, neu, log.proof(7, 20), [stranger.vkey]), 'signature', /older checkpoint is not signed by a pinned key/);
  // Checkpoints of two logs.
  const audit = makeLog('audit', 20);
  failsAt(
    await verifyConsistencyProof(old, audit.note(20), log.proof(7, 20), [logKey.vkey, auditKey.vkey]),
    'checkpoint',
    /different logs/,
  );
});

test('consistency: equal sizes, forks and the empty tree', async () => {
  const log = makeLog('evidence', 5);
  const same = await verifyConsistencyProof(log.note(5), log.note(5), [], [logKey.vkey]);
  assert.equal(same.ok, true, JSON.stringify(same.steps));
  failsAt(await verifyConsistencyProof(log.note(5), log.note(5), log.proof(4, 5), [logKey.vkey]), 'consistency', /expected 0/);
  const fork = makeLog('evidence', 5, 2).note(5);
  failsAt(await verifyConsistencyProof(log.note(5), fork, [], [logKey.vkey]), 'consistency', /same size but have different roots/);
  failsAt(await verifyConsistencyProof(log.note(0), log.note(5), [], [logKey.vkey]), 'consistency', /^nothing to check yet/);
});

test("consistency: the API's {from, to, proof} reply", async () => {
  const log = makeLog('evidence', 20);
  const reply = { from: 7, to: 20, proof: log.proof(7, 20) };
  assert.equal((await verifyConsistencyProof(log.note(7), log.note(20), reply, [logKey.vkey])).ok, true);
  assert.equal((await verifyConsistencyProof(log.note(7), log.note(20), /** @type {any} */ (JSON.stringify(reply)), [logKey.vkey])).ok, true);
  failsAt(
    await verifyConsistencyProof(log.note(7), log.note(20), { ...reply, from: 6 }, [logKey.vkey]),
    'consistency',
    /from size 6 to 20 but the checkpoints are of sizes 7 and 20/,
  );
  failsAt(
    await verifyConsistencyProof(log.note(7), log.note(20), /** @type {any} */ ({ ...reply, x: 1 }), [logKey.vkey]),
    'consistency',
    /does not know: "x"/,
  );
});

test('payload: digest and size against the record', async () => {
  const r = record(3);
  const bytes = new Uint8Array(Buffer.from('payload 3'));
  const out = await verifyPayload(bytes, r);
  assert.equal(out.ok, true, JSON.stringify(out.steps));
  assert.deepEqual(out.steps.map((s) => s.name), ['payload']);
  assert.equal(out.checkpoint, null);
  assert.equal((await verifyPayload(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), JSON.stringify(r))).ok, true);
  failsAt(await verifyPayload(new Uint8Array(Buffer.from('payload 4')), r), 'payload', /SHA-256 is [0-9a-f]{64} but the record says/);
  failsAt(await verifyPayload(new Uint8Array(Buffer.from('payload 33')), r), 'payload', /10 bytes but the record says 9/);
  failsAt(await verifyPayload(bytes, { ...r, extra: 1 }), 'payload', /does not know/);
});

test('the pinned origin: a checkpoint of another log fails at "checkpoint" (bundle.rs WrongOrigin)', async () => {
  const log = makeLog('evidence', 13);
  const b = log.bundle(5, 13);
  // The right origin, null and left out all verify.
  for (const origin of [ORIGIN, null, undefined]) {
    const out = await verifyProofBundle('evidence', b, log.items[5], [logKey.vkey], origin);
    assert.equal(out.ok, true, `${origin}: ${JSON.stringify(out.steps)}`);
    assert.deepEqual(out.steps.map((s) => s.name), EVIDENCE_STEPS);
  }
  // Another origin: the checkpoint is well signed by a pinned key, but of
  // another log.
  const out = await verifyProofBundle('evidence', b, log.items[5], [logKey.vkey], 'vault.example/other');
  failsAt(out, 'checkpoint', /^checkpoint of "vault\.example\/log", but this log is "vault\.example\/other"$/);
  assert.equal(out.steps[3].name, 'signature');
  assert.equal(out.steps[3].ok, true);
  // Case and trailing space matter (the origin line is compared exactly).
  failsAt(await verifyProofBundle('evidence', b, null, [logKey.vkey], ORIGIN.toUpperCase()), 'checkpoint', /but this log is/);
  failsAt(await verifyProofBundle('evidence', b, null, [logKey.vkey], `${ORIGIN} `), 'checkpoint', /but this log is/);
  // A log key that signs for two origins: the pin decides which log this is.
  const twoNames = makeLog('evidence', 13);
  const wrong = twoNames.bundle(5, 13);
  wrong.checkpoint = signNote(checkpointText('vault.example/elsewhere', 13, twoNames.tree.root(13)), [logKey]);
  assert.equal((await verifyProofBundle('evidence', wrong, null, [logKey.vkey])).ok, true);
  failsAt(await verifyProofBundle('evidence', wrong, null, [logKey.vkey], ORIGIN), 'checkpoint',
    /checkpoint of "vault\.example\/elsewhere", but this log is "vault\.example\/log"/);
  // The audit log's checkpoint is not the evidence log's.
  const audit = makeLog('audit', 3);
  failsAt(await verifyProofBundle('audit', audit.bundle(1, 3), null, [auditKey.vkey], ORIGIN), 'checkpoint',
    /checkpoint of "vault\.example\/log\/audit", but this log is "vault\.example\/log"/);
  assert.equal((await verifyProofBundle('audit', audit.bundle(1, 3), null, [auditKey.vkey], AUDIT_ORIGIN)).ok, true);
  // An origin that is not text is a failure, never an exception.
  failsAt(await verifyProofBundle('evidence', b, null, [logKey.vkey], /** @type {any} */ (5)), 'checkpoint', /pinned origin .* not text/);
});

test('the pinned origin: consistency proofs between checkpoints of another log fail at "checkpoint"', async () => {
  const log = makeLog('evidence', 20);
  const [old, neu] = [log.note(7), log.note(20)];
  for (const origin of [ORIGIN, null, undefined]) {
    assert.equal((await verifyConsistencyProof(old, neu, log.proof(7, 20), [logKey.vkey], origin)).ok, true, String(origin));
  }
  const out = await verifyConsistencyProof(old, neu, log.proof(7, 20), [logKey.vkey], 'vault.example/other');
  failsAt(out, 'checkpoint', /^the older checkpoint is a checkpoint of "vault\.example\/log", but this log is "vault\.example\/other"$/);
  // Both notes of another log than the pinned one, even consistent with each other.
  const elsewhere = (/** @type {number} */ n) => signNote(checkpointText('vault.example/elsewhere', n, log.tree.root(n)), [logKey]);
  assert.equal((await verifyConsistencyProof(elsewhere(7), elsewhere(20), log.proof(7, 20), [logKey.vkey])).ok, true);
  failsAt(await verifyConsistencyProof(elsewhere(7), elsewhere(20), log.proof(7, 20), [logKey.vkey], ORIGIN), 'checkpoint',
    /older checkpoint is a checkpoint of "vault\.example\/elsewhere"/);
  // Only the newer one of another log.
  failsAt(await verifyConsistencyProof(old, elsewhere(20), log.proof(7, 20), [logKey.vkey], ORIGIN), 'checkpoint',
    /^the newer checkpoint is a checkpoint of "vault\.example\/elsewhere", but this log is "vault\.example\/log"$/);
  failsAt(await verifyConsistencyProof(old, neu, log.proof(7, 20), [logKey.vkey], /** @type {any} */ ({})), 'checkpoint', /not text/);
});
