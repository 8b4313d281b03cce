// The dashboard's in-browser verification, timed in Node 20 (the same
// WebCrypto API Chromium gives the page): one inclusion proof bundle and one
// consistency proof at a tree of 2^20 + 12,345 leaves, each beside the bare
// WebCrypto calls that verification cannot avoid (one SHA-256 per proof
// hash plus the leaf, one Ed25519 verify per checkpoint), measured in the
// same run.
//
//   node bench/dashboard_verify.mjs [ROUNDS]

import { createHash } from 'node:crypto';

import { evidenceLeafData } from '../web/public/js/verify/leaf.js';
import { verifyConsistencyProof, verifyProofBundle } from '../web/public/js/verify/verify.js';
import { RefTree, checkpointText, refLeafHash, signNote, signer, toB64 } from '../web/test/helpers.mjs';

const ROUNDS = Number(process.argv[2] ?? 2000);
const SIZE = 2 ** 20 + 12345;
const OLD = 2 ** 19 + 777;
const ORIGIN = 'vault.example/evidence';
const INDEX = 654321;

const payload = Buffer.from('bench payload');
const record = {
  id: '01936f0e-8f3a-7cc2-9b1e-000000654321',
  leaf_index: INDEX,
  content_type: 'application/json',
  sha256: createHash('sha256').update(payload).digest('hex'),
  size: payload.length,
  labels: { pipeline: 'release', commit: 'ab12' },
  ingested_at: '2026-11-30T11:30:00.123Z',
  ingested_by: 'sa:ci',
};

process.stderr.write(`building a tree of ${SIZE} leaves...\n`);
const leaves = new Array(SIZE);
for (let i = 0; i < SIZE; i++) {
  leaves[i] = createHash('sha256').update(`leaf ${i}`).digest();
}
leaves[INDEX] = refLeafHash(evidenceLeafData(record));
const tree = new RefTree(leaves);
const key = signer(ORIGIN, new Uint8Array(32).fill(7));
const note = signNote(checkpointText(ORIGIN, SIZE, tree.root(SIZE)), [key]);
const oldNote = signNote(checkpointText(ORIGIN, OLD, tree.root(OLD)), [key]);
const path = tree.inclusion(INDEX, SIZE);
const consistency = tree.consistency(OLD, SIZE);
const bundleText = JSON.stringify({
  record,
  leaf_index: INDEX,
  tree_size: SIZE,
  inclusion_proof: path.map(toB64),
  checkpoint: note,
});
const recordText = JSON.stringify(record);
const proofB64 = consistency.map(toB64);

/** @param {string} what @param {() => Promise<unknown>} fn */
async function time(what, fn) {
  for (let i = 0; i < Math.min(100, ROUNDS); i++) await fn(); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ROUNDS; i++) await fn();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / ROUNDS;
  return { what, us };
}

// The unavoidable WebCrypto work of each check, nothing else.
const subtle = globalThis.crypto.subtle;
const leafData = evidenceLeafData(record);
const node = new Uint8Array(65);
const body = new TextEncoder().encode(note.slice(0, note.indexOf('\n\n') + 1));
const sigLine = note.slice(note.indexOf('\n\n') + 2).trim().split(' ')[2];
const sig = Buffer.from(sigLine, 'base64').subarray(4);
const pk = key.publicKey;
/** @param {number} hashes @param {number} verifies */
async function rawCrypto(hashes, verifies) {
  await subtle.digest('SHA-256', leafData);
  for (let i = 0; i < hashes; i++) await subtle.digest('SHA-256', node);
  for (let i = 0; i < verifies; i++) {
    const k = await subtle.importKey('raw', pk, { name: 'Ed25519' }, false, ['verify']);
    await subtle.verify('Ed25519', k, sig, body);
  }
}

const sanity = await verifyProofBundle('evidence', bundleText, recordText, [key.vkey]);
const sanity2 = await verifyConsistencyProof(oldNote, note, proofB64, [key.vkey]);
if (!sanity.ok || !sanity2.ok) {
  throw new Error(`the bench's own inputs do not verify: ${JSON.stringify([sanity, sanity2])}`);
}

const rows = [
  await time(`baseline: WebCrypto SHA-256 x${path.length + 1} + Ed25519 x1`, () => rawCrypto(path.length, 1)),
  await time(`verifyProofBundle (${path.length} hashes)`, () => verifyProofBundle('evidence', bundleText, recordText, [key.vkey])),
  await time(`baseline: WebCrypto SHA-256 x${consistency.length * 2} + Ed25519 x2`, () => rawCrypto(consistency.length * 2 - 1, 2)),
  await time(`verifyConsistencyProof (${consistency.length} hashes)`, () => verifyConsistencyProof(oldNote, note, proofB64, [key.vkey])),
];
console.log(`Node ${process.version}, tree size ${SIZE}, ${ROUNDS} rounds each`);
console.log('| check | µs per check | vs its baseline |');
console.log('|---|---|---|');
for (let i = 0; i < rows.length; i += 2) {
  const [base, it] = [rows[i], rows[i + 1]];
  console.log(`| ${base.what} | ${base.us.toFixed(1)} | 1× |`);
  console.log(`| ${it.what} | ${it.us.toFixed(1)} | ${(it.us / base.us).toFixed(2)}× |`);
}
