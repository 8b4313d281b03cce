// Test support: paths, a reference Merkle tree and an Ed25519 note signer,
// built on node:crypto so they check the verify modules independently.

import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = join(WEB, '..');
export const CONFORMANCE = join(REPO, 'testdata', 'conformance');

/**
 * Every file under `dir` whose name ends with `ext`, sorted.
 * @param {string} dir
 * @param {string} ext
 * @returns {string[]}
 */
export function filesUnder(dir, ext) {
  /** @type {string[]} */
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, ext));
    else if (name.endsWith(ext)) out.push(p);
  }
  return out.sort();
}

/** @param {...Uint8Array} parts */
export function sha256Sync(...parts) {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** @param {Uint8Array} data */
export const refLeafHash = (data) => sha256Sync(Uint8Array.of(0), data);
/** @param {Uint8Array} l @param {Uint8Array} r */
export const refNodeHash = (l, r) => sha256Sync(Uint8Array.of(1), l, r);

/** Largest power of two below n (n > 1). @param {number} n */
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * RFC 6962 §2.1 reference tree over leaf hashes, straight from the
 * recursive definitions (MTH, PATH, PROOF/SUBPROOF).
 */
export class RefTree {
  /** @param {Uint8Array[]} leaves  leaf hashes */
  constructor(leaves = []) {
    this.leaves = leaves;
  }

  /** @param {Uint8Array} h */
  push(h) {
    this.leaves.push(h);
  }

  /** @param {number} [n] @param {number} [from] @returns {Uint8Array} */
  root(n = this.leaves.length, from = 0) {
    if (n === 0) return sha256Sync();
    if (n === 1) return this.leaves[from];
    const k = split(n);
    return refNodeHash(this.root(k, from), this.root(n - k, from + k));
  }

  /** @param {number} m @param {number} n @param {number} [from] @returns {Uint8Array[]} */
  inclusion(m, n, from = 0) {
    if (n <= 1) return [];
    const k = split(n);
    if (m < k) return [...this.inclusion(m, k, from), this.root(n - k, from + k)];
    return [...this.inclusion(m - k, n - k, from + k), this.root(k, from)];
  }

  /** @param {number} m @param {number} n */
  consistency(m, n) {
    return this.#subproof(m, n, true, 0);
  }

  /** @param {number} m @param {number} n @param {boolean} b @param {number} from @returns {Uint8Array[]} */
  #subproof(m, n, b, from) {
    if (m === n) return b ? [] : [this.root(m, from)];
    const k = split(n);
    if (m <= k) return [...this.#subproof(m, k, b, from), this.root(n - k, from + k)];
    return [...this.#subproof(m - k, n - k, false, from + k), this.root(k, from)];
  }
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * An Ed25519 note signer from a 32-byte seed, named `name`.
 * @param {string} name
 * @param {Uint8Array} seed
 */
export function signer(name, seed) {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  const h = sha256Sync(new TextEncoder().encode(name), Uint8Array.of(0x0a, 0x01), publicKey);
  const keyId = Buffer.from(h.subarray(0, 4)).readUInt32BE(0);
  const idHex = keyId.toString(16).padStart(8, '0');
  const vkey = `${name}+${idHex}+${Buffer.concat([Uint8Array.of(1), publicKey]).toString('base64')}`;
  return {
    name,
    keyId,
    publicKey,
    vkey,
    /** Raw 64-byte signature. @param {Uint8Array} msg */
    sign: (msg) => new Uint8Array(sign(null, msg, priv)),
    /** The note signature line for `text` (key ID || signature). @param {string} text */
    line(text) {
      const sig = sign(null, Buffer.from(text, 'utf8'), priv);
      return `\u2014 ${name} ${Buffer.concat([h.subarray(0, 4), sig]).toString('base64')}\n`;
    },
  };
}

/**
 * A signed note: text, blank line, one signature line per signer.
 * @param {string} text
 * @param {ReturnType<typeof signer>[]} signers
 */
export function signNote(text, signers) {
  return `${text}\n${signers.map((s) => s.line(text)).join('')}`;
}

/**
 * A checkpoint body.
 * @param {string} origin
 * @param {number | bigint} size
 * @param {Uint8Array} root
 */
export function checkpointText(origin, size, root) {
  return `${origin}\n${size}\n${Buffer.from(root).toString('base64')}\n`;
}

/** @param {string} s */
export const b64 = (s) => new Uint8Array(Buffer.from(s, 'base64'));
/** @param {Uint8Array} b */
export const toB64 = (b) => Buffer.from(b).toString('base64');
