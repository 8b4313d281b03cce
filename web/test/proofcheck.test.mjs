// The history checks of proofcheck.js against a log built here: a latest
// checkpoint older than the last verified one is never "consistent"; an
// older proof checkpoint is fine for inclusion but never becomes the last
// verified one; the pinned origin is enforced; and the record the server
// sends must be the one asked for. fetch is answered from the log.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { installStorage } from './storage.mjs';
import { RefTree, checkpointText, refLeafHash, signNote, signer, toB64 } from './helpers.mjs';

const storage = installStorage();
const { consistencyCheck, entryIdFailure, historyStep, latestCheck } = await import('../public/js/proofcheck.js');
const { getLast, setLast } = await import('../public/js/pins.js');

const ORIGIN = 'vault.example/evidence';
const key = signer(ORIGIN, new Uint8Array(32).fill(3));
const PINNED = { keys: [key.vkey], origin: ORIGIN };

/** @param {number} n @param {number} [salt] */
function makeTree(n, salt = 0) {
  return new RefTree(Array.from({ length: n }, (_, i) => refLeafHash(new TextEncoder().encode(`leaf ${i} ${salt}`))));
}
const tree = makeTree(20);
const fork = makeTree(20, 1);
/** @param {number} n @param {RefTree} [t] */
const note = (n, t = tree) => signNote(checkpointText(ORIGIN, n, t.root(n)), [key]);

/** The consistency requests made. @type {string[]} */
let asked = [];
/** What the server's consistency proofs come from (a lying server forks). */
let served = tree;

globalThis.fetch = /** @type {typeof fetch} */ (async (input) => {
  const u = new URL(String(input), 'http://vault.test');
  asked.push(`${u.pathname}${u.search}`);
  if (u.pathname === '/api/v1/tree/consistency') {
    const from = Number(u.searchParams.get('from'));
    const to = Number(u.searchParams.get('to'));
    const body = { from, to, proof: served.consistency(from, to).map(toB64) };
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  }
  return new Response('{"title":"Not Found"}', { status: 404, headers: { 'content-type': 'application/problem+json' } });
});

const signal = new AbortController().signal;

beforeEach(() => {
  storage.clear();
  asked = [];
  served = tree;
});

/** @param {import('../public/js/proofcheck.js').CheckResult} r */
const lastStep = (r) => r.steps[r.steps.length - 1];

test('latest against last: a grown log is consistent, an equal one too', async () => {
  const r = await latestCheck('evidence', note(7), note(12), PINNED, signal);
  assert.equal(r.state, 'verified', JSON.stringify(r.steps));
  assert.deepEqual(asked, ['/api/v1/tree/consistency?from=7&to=12']);
  assert.equal((await latestCheck('evidence', note(12), note(12), PINNED, signal)).state, 'verified');
  // No last one: the latest is checked against itself.
  assert.equal((await latestCheck('evidence', null, note(12), PINNED, signal)).state, 'verified');
});

test('latest against last: a latest checkpoint older than the last verified one fails, prefix or not', async () => {
  // A genuine older checkpoint (a prefix): still failed, never green.
  const r = await latestCheck('evidence', note(12), note(7), PINNED, signal);
  assert.equal(r.state, 'failed', JSON.stringify(r.steps));
  const bad = lastStep(r);
  assert.equal(bad.name, 'consistency');
  assert.equal(bad.ok, false);
  assert.match(bad.detail, /^the server's latest checkpoint \(size 7\) is older than one this browser already verified \(size 12\); it is a prefix of that one/);
  assert.ok(r.steps.slice(0, -1).every((s) => s.ok), JSON.stringify(r.steps));
  assert.deepEqual(r.steps.map((s) => s.name), ['key', 'signature', 'checkpoint', 'consistency']);
  // The prefix proof ran from the smaller size to the larger.
  assert.deepEqual(asked, ['/api/v1/tree/consistency?from=7&to=12']);

  // An older checkpoint of another tree (a split view): failed, and it says it is no prefix.
  const split = await latestCheck('evidence', note(12), note(7, fork), PINNED, signal);
  assert.equal(split.state, 'failed');
  assert.match(lastStep(split).detail, /older than one this browser already verified \(size 12\); and it is not shown to be a prefix of that one \(consistency: /);
  // An empty tree after a tree of 12: failed.
  const empty = await latestCheck('evidence', note(12), note(0), PINNED, signal);
  assert.equal(empty.state, 'failed');
  assert.match(lastStep(empty).detail, /size 0\) is older than one this browser already verified \(size 12\)/);
});

test('latest against last: a checkpoint of another origin than the pinned one fails at "checkpoint"', async () => {
  const other = signNote(checkpointText('elsewhere.example/log', 12, tree.root(12)), [key]);
  const r = await latestCheck('evidence', note(7), other, PINNED, signal);
  assert.equal(r.state, 'failed');
  assert.equal(lastStep(r).name, 'checkpoint');
  assert.match(lastStep(r).detail, /newer checkpoint is a checkpoint of "elsewhere\.example\/log", but this log is "vault\.example\/evidence"/);
  // Two checkpoints of that other log signed by the pinned key, consistent
  // with each other: only the pinned origin tells they are not this log's.
  const both = (/** @type {number} */ n) => signNote(checkpointText('elsewhere.example/log', n, tree.root(n)), [key]);
  assert.equal((await consistencyCheck('evidence', both(7), both(12), { keys: PINNED.keys, origin: /** @type {any} */ (null) }, signal)).state, 'verified');
  const pinnedOrigin = await consistencyCheck('evidence', both(7), both(12), PINNED, signal);
  assert.equal(pinnedOrigin.state, 'failed');
  assert.match(lastStep(pinnedOrigin).detail, /older checkpoint is a checkpoint of "elsewhere\.example\/log", but this log is "vault\.example\/evidence"/);
});

test('consistencyCheck never swaps: an "older" note larger than the "newer" fails without asking the server', async () => {
  const r = await consistencyCheck('evidence', note(12), note(7), PINNED, signal);
  assert.equal(r.state, 'failed');
  assert.match(lastStep(r).detail, /older checkpoint has size 12 but the newer only 7/);
  assert.deepEqual(asked, []);
});

test('history: first, same, grown, and a lying consistency proof', async () => {
  let s = await historyStep('evidence', note(7), PINNED, signal);
  assert.ok(s.ok && /first checkpoint verified/.test(s.detail), s.detail);
  assert.equal(getLast('evidence'), note(7));
  s = await historyStep('evidence', note(7), PINNED, signal);
  assert.ok(s.ok && /same checkpoint/.test(s.detail), s.detail);
  s = await historyStep('evidence', note(12), PINNED, signal);
  assert.ok(s.ok && /size 7 → 12/.test(s.detail), s.detail);
  assert.equal(getLast('evidence'), note(12));
  served = fork;
  s = await historyStep('evidence', note(15), PINNED, signal);
  assert.equal(s.ok, false);
  assert.match(s.detail, /not consistent with the checkpoint last verified here/);
  assert.equal(getLast('evidence'), note(12));
});

test('history: a proof checkpoint older than the last verified one is fine if a prefix, and never becomes the last', async () => {
  setLast('evidence', note(12));
  const s = await historyStep('evidence', note(7), PINNED, signal);
  assert.equal(s.ok, true, s.detail);
  assert.match(s.detail, /^the proof's checkpoint \(size 7\) is older than the one last verified here \(size 12\), and a prefix of it: an older checkpoint still proves inclusion; the last verified checkpoint stays at size 12$/);
  assert.deepEqual(asked, ['/api/v1/tree/consistency?from=7&to=12']);
  assert.equal(getLast('evidence'), note(12), 'the older checkpoint was stored as the last verified one');

  // An older checkpoint that is not a prefix of the last verified one: failed.
  const f = await historyStep('evidence', note(7, fork), PINNED, signal);
  assert.equal(f.ok, false);
  assert.match(f.detail, /older than the one last verified here \(size 12\), and not a prefix of it \(consistency: /);
  assert.equal(getLast('evidence'), note(12));
});

test('the record and the proof bundle must be the one the page asked for', () => {
  const A = '0190f3c2-6b1d-7e4a-9c3f-2d5e8a1b4c70';
  const B = '0190f3c2-6b1d-7e4a-9c3f-2d5e8a1b4c71';
  const rec = (/** @type {string} */ id) => JSON.stringify({ id, leaf_index: 1 });
  const bundle = (/** @type {string} */ id) => JSON.stringify({ record: { id, leaf_index: 1 }, leaf_index: 1 });
  assert.equal(entryIdFailure('evidence', A, rec(A), bundle(A)), null);
  // B's record and B's (valid) proof for A: refused at 'record'.
  const both = entryIdFailure('evidence', A, rec(B), bundle(B));
  assert.deepEqual(both, { name: 'record', ok: false, detail: `asked for record ${A}, the server sent record ${B}` });
  assert.match(entryIdFailure('evidence', A, rec(A), bundle(B))?.detail || '', new RegExp(`asked for the proof of record ${A}, the server sent the proof of record ${B}`));
  assert.match(entryIdFailure('audit', A, rec(B), bundle(A))?.detail || '', /asked for event .* sent event/);
  // A duplicate "id" (JSON.parse would keep the last) is no id at all.
  const dup = `{"id":"${A}","leaf_index":1,"id":"${B}"}`;
  assert.match(entryIdFailure('evidence', A, dup, bundle(A))?.detail || '', /has no id/);
  assert.match(entryIdFailure('evidence', A, rec(A), '{"record":5}')?.detail || '', /carries no record id/);
  assert.match(entryIdFailure('evidence', A, 'not json', bundle(A))?.detail || '', /has no id/);
});
