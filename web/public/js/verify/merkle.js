// RFC 6962 hashing and RFC 9162 proof verification, ported from
// crates/merkle/src/verify.rs (same decisions, same reasons for refusal).
//
// Indexes and sizes are BigInt: a log may hold up to 2^64 - 1 leaves and the
// conformance vectors test the edges. Edge cases the RFC leaves open are
// decided as the Rust code and the transparency-dev/merkle vectors decide
// them: consistency from size 0 is refused (an empty tree proves nothing),
// and equal sizes verify iff the proof is empty and the roots are equal.

import { bytesEqual, concat } from './bytes.js';
import { VerifyError } from './errors.js';
import { sha256 } from './sha256.js';

export const HASH_SIZE = 32;
const U64_MAX = (1n << 64n) - 1n;

/**
 * RFC 6962 leaf hash SHA-256(0x00 || data); the prefix keeps leaves and
 * interior nodes apart (no second preimages).
 * @param {Uint8Array} data
 */
export function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

/**
 * RFC 6962 interior node hash SHA-256(0x01 || left || right).
 * @param {Uint8Array} left
 * @param {Uint8Array} right
 */
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/**
 * An index or size as a u64 BigInt (numbers must be safe integers).
 * @param {bigint | number} x
 * @param {string} what
 * @returns {bigint}
 */
export function toU64(x, what) {
  if (typeof x === 'number' && Number.isSafeInteger(x)) x = BigInt(x);
  if (typeof x !== 'bigint' || x < 0n || x > U64_MAX) {
    throw new VerifyError('bad-number', `${what} is not an integer from 0 to 2^64-1`);
  }
  return x;
}

/** @param {bigint} x */
function bitLength(x) {
  return x === 0n ? 0 : x.toString(2).length;
}

/** @param {bigint} x */
function popCount(x) {
  let n = 0;
  for (const c of x.toString(2)) if (c === '1') n++;
  return n;
}

/** @param {bigint} x  x > 0 */
function trailingZeros(x) {
  let n = 0n;
  while (((x >> n) & 1n) === 0n) n++;
  return n;
}

/** @param {bigint} x */
function isPowerOfTwo(x) {
  return x > 0n && (x & (x - 1n)) === 0n;
}

/**
 * @param {Uint8Array} bytes
 * @param {string} what
 */
function checkHash(bytes, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== HASH_SIZE) {
    const len = bytes instanceof Uint8Array ? bytes.length : 0;
    throw new VerifyError('bad-hash-length', `${what} is ${len} bytes, expected ${HASH_SIZE}`);
  }
}

/**
 * @param {number} expected
 * @param {number} got
 */
function wrongLength(expected, got) {
  return new VerifyError('wrong-proof-length', `proof has ${got} hashes, expected ${expected}`);
}

/**
 * Number of hashes in the inclusion proof of `index` in a tree of `size`.
 * @param {bigint} index
 * @param {bigint} size
 */
export function inclusionProofLen(index, size) {
  if (index >= size) return 0;
  // Levels where the path has a sibling: the bits below the highest bit
  // where index and the last index differ, plus the set bits above it.
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

/**
 * Number of hashes in the consistency proof from `size1` to `size2`.
 * @param {bigint} size1
 * @param {bigint} size2
 */
export function consistencyProofLen(size1, size2) {
  if (size1 === 0n || size1 >= size2) return 0;
  const level = trailingZeros(size1);
  const index = (size1 - 1n) >> level;
  const p = inclusionProofLen(index, ((size2 - 1n) >> level) + 1n);
  // A power-of-two old tree is a node of the new one and is left out.
  return isPowerOfTwo(size1) ? p : p + 1;
}

/**
 * Root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1-5).
 * @param {Uint8Array} leaf  the leaf hash
 * @param {bigint | number} index
 * @param {bigint | number} size
 * @param {Uint8Array[]} proof
 * @returns {Promise<Uint8Array>}
 */
export async function rootFromInclusionProof(leaf, index, size, proof) {
  const idx = toU64(index, 'leaf index');
  const sz = toU64(size, 'tree size');
  if (idx >= sz) {
    throw new VerifyError('index-out-of-range', `leaf index ${idx} is not below tree size ${sz}`);
  }
  const expected = inclusionProofLen(idx, sz);
  if (proof.length !== expected) throw wrongLength(expected, proof.length);
  checkHash(leaf, 'leaf hash');
  for (const p of proof) checkHash(p, 'proof element');

  let fn = idx;
  let sn = sz - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw wrongLength(expected, proof.length);
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw wrongLength(expected, proof.length);
  return r;
}

/**
 * Checks that `leaf` is leaf `index` of the tree of `size` leaves with root
 * `root` (RFC 9162 §2.1.3.2); throws VerifyError if not.
 * @param {Uint8Array} leaf
 * @param {bigint | number} index
 * @param {bigint | number} size
 * @param {Uint8Array[]} proof
 * @param {Uint8Array} root
 * @returns {Promise<void>}
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  checkHash(root, 'root');
  const computed = await rootFromInclusionProof(leaf, index, size, proof);
  if (!bytesEqual(computed, root)) {
    throw new VerifyError('root-mismatch', 'proof does not lead to the claimed root');
  }
}

/**
 * Checks that the tree of `size2` leaves with root `root2` extends the tree
 * of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2); throws
 * VerifyError if not.
 * @param {bigint | number} size1
 * @param {bigint | number} size2
 * @param {Uint8Array[]} proof
 * @param {Uint8Array} root1
 * @param {Uint8Array} root2
 * @returns {Promise<void>}
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  const s1 = toU64(size1, 'old tree size');
  const s2 = toU64(size2, 'new tree size');
  if (s1 > s2) {
    throw new VerifyError(
      'sizes-reversed',
      `old tree size ${s1} is larger than new tree size ${s2}`,
    );
  }
  if (s1 === 0n) {
    throw new VerifyError('empty-old-tree', 'consistency with an empty old tree cannot be proven');
  }
  if (s1 === s2) {
    // RFC 9162 step 1: nothing to prove but that the roots are the same.
    if (proof.length !== 0) throw wrongLength(0, proof.length);
    if (!(root1 instanceof Uint8Array && root2 instanceof Uint8Array && bytesEqual(root1, root2))) {
      throw new VerifyError('root-mismatch', 'proof does not lead to the claimed root');
    }
    return;
  }
  const expected = consistencyProofLen(s1, s2);
  if (proof.length !== expected) throw wrongLength(expected, proof.length);
  checkHash(root1, 'first root');
  checkHash(root2, 'second root');
  for (const p of proof) checkHash(p, 'proof element');

  // Step 2: a power-of-two old tree is a node of the new tree; the proof
  // omits it, so seed the path with the old root.
  const path = isPowerOfTwo(s1) ? [root1, ...proof] : [...proof];
  let fn = s1 - 1n;
  let sn = s2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  if (path.length === 0) throw wrongLength(expected, 0);
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw wrongLength(expected, path.length);
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw wrongLength(expected, path.length);
  if (!bytesEqual(fr, root1) || !bytesEqual(sr, root2)) {
    throw new VerifyError('root-mismatch', 'proof does not lead to the claimed root');
  }
}
