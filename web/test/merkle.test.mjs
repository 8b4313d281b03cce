// The public RFC 6962 / RFC 9162 vectors the Rust merkle crate passes
// (crates/merkle/tests/conformance.rs), run against merkle.js.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  consistencyProofLen, inclusionProofLen, leafHash, nodeHash, rootFromInclusionProof,
  verifyConsistency, verifyInclusion,
} from '../public/js/verify/merkle.js';
import { VerifyError } from '../public/js/verify/errors.js';
import { hexDecode, hexEncode } from '../public/js/verify/bytes.js';
import { CONFORMANCE, RefTree, b64, filesUnder, refLeafHash, refNodeHash } from './helpers.mjs';

const DIR = join(CONFORMANCE, 'merkle');

/**
 * Reads a vector file; sizes and indexes can be 2^64 - 1, beyond what
 * JSON.parse keeps exact, so they are quoted first and read as BigInt.
 * @param {string} path
 */
function readVector(path) {
  const text = readFileSync(path, 'utf8').replace(/"(leafIdx|treeSize|size1|size2)":\s*(\d+)/g, '"$1":"$2"');
  return JSON.parse(text);
}

/** @param {string[] | null} list */
const hashes = (list) => (list ?? []).map(b64);

test('the conformance vectors are where the Rust tests read them', () => {
  assert.ok(existsSync(DIR), `missing ${DIR}`);
});

/**
 * Runs every vector under conformance/merkle/<kind>: a valid proof must
 * verify, every wantErr case must be rejected with a VerifyError.
 * @param {import('node:test').TestContext} t
 * @param {string} kind
 * @param {(v: any) => Promise<unknown>} verify
 */
async function runVectors(t, kind, verify) {
  const files = filesUnder(join(DIR, kind), '.json');
  assert.ok(files.length > 50, `expected the full ${kind} vector set, found ${files.length}`);
  let ok = 0;
  let rejected = 0;
  for (const f of files) {
    const v = readVector(f);
    let err = null;
    try {
      await verify(v);
    } catch (e) {
      assert.ok(e instanceof VerifyError, `${f}: ${e}`);
      err = e;
    }
    assert.equal(err !== null, v.wantErr, `${f}: ${v.desc}: wantErr=${v.wantErr}, got ${err}`);
    if (err) rejected++;
    else ok++;
  }
  assert.ok(ok > 0 && rejected > 0, `${ok} verified, ${rejected} rejected`);
  assert.equal(ok + rejected, files.length);
  t.diagnostic(`${kind} vectors: ${ok} verified, ${rejected} rejected`);
}

test('inclusion vectors: every valid proof verifies, every wantErr case is rejected', (t) =>
  runVectors(t, 'inclusion', (v) =>
    verifyInclusion(b64(v.leafHash), BigInt(v.leafIdx), BigInt(v.treeSize), hashes(v.proof), b64(v.root))));

test('consistency vectors: every valid proof verifies, every wantErr case is rejected', (t) =>
  runVectors(t, 'consistency', (v) =>
    verifyConsistency(BigInt(v.size1), BigInt(v.size2), hashes(v.proof), b64(v.root1), b64(v.root2))));

test('known answers: roots of every prefix, and every proof between them', async () => {
  const ka = JSON.parse(readFileSync(join(DIR, 'known-answers.json'), 'utf8'));
  const inputs = ka.leaf_inputs_hex.map((/** @type {string} */ h) => /** @type {Uint8Array} */ (hexDecode(h)));
  const roots = ka.root_hashes_by_size_hex;
  assert.equal(roots.length, inputs.length + 1);
  assert.ok(inputs.length > 0);

  const tree = new RefTree();
  assert.equal(hexEncode(tree.root()), roots[0]);
  for (let i = 0; i < inputs.length; i++) {
    const leaf = await leafHash(inputs[i]);
    assert.deepEqual(leaf, refLeafHash(inputs[i]));
    tree.push(leaf);
    assert.equal(hexEncode(tree.root()), roots[i + 1], `size ${i + 1}`);
  }
  const n = inputs.length;
  for (let size = 1; size <= n; size++) {
    const root = /** @type {Uint8Array} */ (hexDecode(roots[size]));
    for (let idx = 0; idx < size; idx++) {
      const proof = tree.inclusion(idx, size);
      assert.equal(proof.length, inclusionProofLen(BigInt(idx), BigInt(size)));
      await verifyInclusion(tree.leaves[idx], idx, size, proof, root);
      assert.deepEqual(await rootFromInclusionProof(tree.leaves[idx], idx, size, proof), root);
    }
    for (let old = 1; old <= size; old++) {
      const proof = tree.consistency(old, size);
      assert.equal(proof.length, consistencyProofLen(BigInt(old), BigInt(size)));
      const oldRoot = /** @type {Uint8Array} */ (hexDecode(roots[old]));
      await verifyConsistency(old, size, proof, oldRoot, root);
    }
  }
});

test('a larger tree: every inclusion and consistency proof up to 70 leaves', async () => {
  const tree = new RefTree();
  for (let i = 0; i < 70; i++) tree.push(refLeafHash(Uint8Array.of(i, i >> 8)));
  for (const size of [1, 2, 3, 7, 8, 9, 31, 32, 33, 64, 65, 70]) {
    const root = tree.root(size);
    for (let idx = 0; idx < size; idx++) {
      await verifyInclusion(tree.leaves[idx], idx, size, tree.inclusion(idx, size), root);
    }
    for (let old = 1; old <= size; old++) {
      await verifyConsistency(old, size, tree.consistency(old, size), tree.root(old), root);
    }
  }
});

test('leaf and node hashes are RFC 6962 domain-separated', async () => {
  const a = await leafHash(new TextEncoder().encode('x'));
  assert.deepEqual(a, refLeafHash(new TextEncoder().encode('x')));
  assert.deepEqual(await nodeHash(a, a), refNodeHash(a, a));
  assert.notDeepEqual(await nodeHash(a, a), await leafHash(new Uint8Array([...a, ...a])));
});

test('merkle errors say why, like the Rust VerifyError', async () => {
  const h = new Uint8Array(32);
  /** @param {() => Promise<unknown>} f @param {string} code @param {RegExp} msg */
  const rejects = (f, code, msg) =>
    assert.rejects(f, (e) => e instanceof VerifyError && e.code === code && msg.test(e.message));
  await rejects(() => verifyInclusion(h, 5n, 5n, [], h), 'index-out-of-range', /leaf index 5 is not below tree size 5/);
  await rejects(() => verifyInclusion(h, 0n, 2n, [], h), 'wrong-proof-length', /proof has 0 hashes, expected 1/);
  await rejects(() => verifyInclusion(h, 0n, 1n, [], new Uint8Array(31)), 'bad-hash-length', /root is 31 bytes/);
  await rejects(() => verifyInclusion(h, 0n, 2n, [new Uint8Array(33)], h), 'bad-hash-length', /proof element/);
  await rejects(() => verifyInclusion(h, 0n, 2n, [h], h), 'root-mismatch', /does not lead/);
  await rejects(() => verifyConsistency(3n, 2n, [], h, h), 'sizes-reversed', /old tree size 3 is larger/);
  await rejects(() => verifyConsistency(0n, 2n, [], h, h), 'empty-old-tree', /empty old tree/);
  await rejects(() => verifyConsistency(2n, 2n, [h], h, h), 'wrong-proof-length', /expected 0/);
  await rejects(() => verifyInclusion(h, -1, 2n, [h], h), 'bad-number', /leaf index/);
  await rejects(() => verifyInclusion(h, 0, 2 ** 64, [h], h), 'bad-number', /tree size/);
  await rejects(() => verifyInclusion(h, 0n, 1n << 64n, [h], h), 'bad-number', /tree size/);
});

test('proof lengths at the 64-bit edge', () => {
  // A tree of 2^64 - 1 leaves is 64 levels deep; its last leaf sits on the
  // right spine, which has one level fewer.
  const max = (1n << 64n) - 1n;
  assert.equal(inclusionProofLen(0n, max), 64);
  assert.equal(inclusionProofLen(max - 1n, max), 63);
  assert.equal(inclusionProofLen(max, max), 0);
  assert.equal(consistencyProofLen(1n, max), 64);
  // The first 2^63 leaves are the left subtree: the proof is its sibling.
  assert.equal(consistencyProofLen(1n << 63n, max), 1);
});
