// Mutation fuzzing of the verification core ("fuzz every parser").
//
// Valid proof bundles, signed checkpoints, consistency proofs and payloads
// are built here on node:crypto (helpers.mjs), mutated many times, and each
// outcome is judged by an oracle that knows what the input *means*, not how
// the verifier works: a mutant that means something else must fail, one
// that means the same must verify, and nothing may throw or return a
// malformed Outcome. Meaning is decided on the JSON.parse value (so member
// order, whitespace and escapes are neutral) with the equivalences the
// formats define (FORMATS.md, leaf.js): an absent option equals null,
// absent labels equal {}, a record's idempotency_key is not in the leaf,
// signature lines by keys not pinned are skipped (C2SP signed-note). The
// expected (pinned) origin is drawn too: left out or null admits any, the
// log's own admits its checkpoints, any other string none. The
// low-level parsers are fuzzed against independent references: JSON.parse
// (plus what json.js refuses by design), Buffer's base64, and specs of the
// checkpoint and verifier key texts written out here.
//
// Deterministic: one seed drives everything (FUZZ_SEED=0x… to change it);
// a failure names the seed, the case and the mutation. FUZZ_SCALE=n runs n
// times the iterations. Hangs: each test has a timeout (an await that never
// settles) and each case a time limit (a blow-up); a synchronous endless
// loop cannot be interrupted in-process and shows as a run that never ends.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import { b64decode, b64encode, hexDecode, hexEncode } from '../public/js/verify/bytes.js';
import { VerifyError } from '../public/js/verify/errors.js';
import { canonicalize } from '../public/js/verify/jcs.js';
import { parseJson } from '../public/js/verify/json.js';
import { auditLeafData, evidenceLeafData } from '../public/js/verify/leaf.js';
import { Verifiers, openNote, parseCheckpoint, parseEd25519VerifierKey, parseVerifierKey } from '../public/js/verify/note.js';
import { verifyConsistencyProof, verifyPayload, verifyProofBundle } from '../public/js/verify/verify.js';
import { RefTree, checkpointText, refLeafHash, sha256Sync, signNote, signer, toB64 } from './helpers.mjs';

// ---------------------------------------------------------------------------
// Seed, PRNG, failure reports

const DEFAULT_SEED = 0x5eed2026;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : DEFAULT_SEED;
const SCALE = process.env.FUZZ_SCALE ? Math.max(0.01, Number(process.env.FUZZ_SCALE)) : 1;
/** A single input taking longer than this is reported (a hang or a blow-up). */
const SLOW_MS = 2000;

/** @param {number} n */
const iters = (n) => Math.max(1, Math.round(n * SCALE));

/** mulberry32: small, fast, and the same sequence on every engine. */
class Rng {
  /** @param {number} seed */
  constructor(seed) {
    this.s = seed >>> 0;
  }

  u32() {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, n). @param {number} n */
  int(n) {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** @param {number} p */
  chance(p) {
    return this.u32() / 2 ** 32 < p;
  }

  /** @template T @param {readonly T[]} xs @returns {T} */
  pick(xs) {
    return xs[this.int(xs.length)];
  }

  /** @param {number} n */
  bytes(n) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/**
 * Each test draws from its own stream, derived from the seed and its name,
 * so a test's cases do not depend on which other tests ran.
 * @param {string} name
 */
function rngFor(name) {
  const h = sha256Sync(new TextEncoder().encode(`${SEED}:${name}`));
  return new Rng(Buffer.from(h).readUInt32BE(0));
}

/** @param {unknown} v */
function show(v) {
  const s = typeof v === 'string' ? JSON.stringify(v) : v instanceof Uint8Array ? `bytes ${toB64(v)}` : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 1500 ? `${s.slice(0, 1500)}…` : s;
}

/**
 * Runs one case; a failure is rethrown with what reproduces it.
 * @param {string} suite
 * @param {number} i
 * @param {string} how  the mutation
 * @param {Record<string, unknown>} inputs
 * @param {() => Promise<void> | void} fn
 */
async function fuzzCase(suite, i, how, inputs, fn) {
  const t0 = performance.now();
  try {
    await fn();
    const ms = performance.now() - t0;
    assert.ok(ms < SLOW_MS, `took ${ms.toFixed(0)} ms`);
  } catch (e) {
    const lines = Object.entries(inputs).map(([k, v]) => `  ${k}: ${show(v)}`);
    throw new Error(
      `fuzz ${suite}, case ${i} (${how}) failed with FUZZ_SEED=0x${SEED.toString(16)}` +
        `${SCALE !== 1 ? ` FUZZ_SCALE=${SCALE}` : ''} (node --test test/fuzz.test.mjs)\n` +
        `${lines.join('\n')}\n${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}

// ---------------------------------------------------------------------------
// Small independent references

/** @param {unknown} v @returns {v is Record<string, unknown>} */
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** @param {object} o @param {string} k */
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
/** @param {Record<string, unknown>} o @param {readonly string[]} keys */
const sameKeys = (o, keys) => Object.keys(o).length === keys.length && keys.every((k) => has(o, k));
/** A JSON integer every verifier reads exactly (serde's u64 refuses -0: it is a float there). @param {unknown} v */
const isU53 = (v) => Number.isSafeInteger(v) && /** @type {number} */ (v) >= 0 && !Object.is(v, -0);
/** @param {string} s */
const utf8 = (s) => new TextEncoder().encode(s);
/** Lossy, as a browser's response.text() decodes (U+FFFD for bad bytes). */
const LOSSY = new TextDecoder();
/** @param {Uint8Array} b */
const hex = (b) => Buffer.from(b).toString('hex');
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Canonical padded base64 (RFC 4648 §3.5), judged by Buffer. @param {string} s */
function isCanonicalB64(s) {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 && Buffer.from(s, 'base64').toString('base64') === s;
}

/** A note key name (C2SP): non-empty, no Unicode space, '+' or control character. @param {string} s */
function isKeyName(s) {
  return s.length > 0 && !LONE_SURROGATE.test(s) && !/[\p{White_Space}+\u0000-\u001f]/u.test(s);
}

/**
 * RFC 8785 for what the fixtures hold (strings, safe integers, objects):
 * sorted members, JSON.stringify's strings and numbers.
 * @param {unknown} v
 * @returns {string}
 */
function jcs(v) {
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** @param {string} text */
function strictAccepts(text) {
  try {
    parseJson(text);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Fixtures: two logs, their bundles, notes and consistency proofs

const ORIGIN = 'vault.example/log';
const AUDIT_ORIGIN = 'vault.example/log/audit';
const logKey = signer(ORIGIN, new Uint8Array(32).fill(11));
const auditKey = signer(AUDIT_ORIGIN, new Uint8Array(32).fill(12));
const witness = signer('witness.example/w1', new Uint8Array(32).fill(13));
/** Same name as the log's key, another key: signs nothing here. */
const stranger = signer(ORIGIN, new Uint8Array(32).fill(14));

/**
 * A verifier key text for any signature type (parseVerifierKey does not
 * look inside the key data).
 * @param {string} name
 * @param {number} alg
 * @param {Uint8Array} key
 */
function vkeyOf(name, alg, key) {
  const data = Buffer.concat([Uint8Array.of(alg), key]);
  const id = sha256Sync(utf8(name), Uint8Array.of(0x0a), data).subarray(0, 4);
  return `${name}+${hex(id)}+${data.toString('base64')}`;
}
/** @type {Map<string, string>} */
const mldsaKeys = new Map();
/** An ML-DSA-44 key (1312 bytes) is skipped by the browser (verify.js loadKeys). @param {string} name */
function mldsaKey(name) {
  if (!mldsaKeys.has(name)) mldsaKeys.set(name, vkeyOf(name, 0x06, new Rng(6).bytes(1312)));
  return /** @type {string} */ (mldsaKeys.get(name));
}
/** A witness cosignature key is refused as a log key. */
const cosigKey = vkeyOf('witness.example/w1', 0x04, witness.publicKey);
/** A well-formed Ed25519 key (a small-order point) that verifies nothing. @param {string} name */
const zeroKey = (name) => vkeyOf(name, 0x01, new Uint8Array(32));
/**
 * Keys that may be pinned beside a log's key without changing a verdict:
 * they parse and are usable (or skipped, ML-DSA) but signed nothing here,
 * or signed as well (the witness).
 * @param {ReturnType<typeof signer>} key
 */
const usableKeys = (key) => [key.vkey, witness.vkey, mldsaKey(key.name), stranger.vkey, zeroKey(key.name)];

/** @param {number} i */
const payloadOf = (i) => utf8(`payload ${i} \u00e9\u{1f600}`);

/** @param {number} i */
function evidenceRecord(i) {
  const payload = payloadOf(i);
  return {
    id: `0193a5b2-7c1d-7e4f-8a90-${String(i).padStart(12, '0')}`,
    leaf_index: i,
    content_type: 'application/json',
    sha256: hex(sha256Sync(payload)),
    size: payload.length,
    labels: { commit: `ab${i}`, 'pipe line': 'r\u00e9\u2028lease \u{1f600}', empty: '' },
    ingested_at: '2026-11-23T11:30:00.123Z',
    ingested_by: 'sa:ci',
    ...(i % 2 ? { idempotency_key: `retry-${i}` } : {}),
  };
}

/** @param {number} i */
function auditEvent(i) {
  return {
    id: `0193a5b2-7c1d-7e4f-8a90-${String(i).padStart(12, '0')}`,
    leaf_index: i,
    time: '2026-11-23T11:30:00.123Z',
    request_id: `req-${i}`,
    principal: 'sa:ci',
    ...(i % 2 ? { key_id: `k${i}` } : {}),
    auth_method: 'service-account',
    protocol: 'http',
    operation: 'evidence.put',
    resource: `/api/v1/evidence/${i}`,
    outcome: i % 3 ? 'success' : 'denied',
    status: i % 3 ? 201 : 403,
    client: '192.0.2.7:51234',
    params_digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    ...(i % 3 ? {} : { reason: 'not allowed' }),
  };
}

/** The leaf data as FORMATS.md defines it, without leaf.js. @param {'evidence' | 'audit'} kind @param {Record<string, unknown>} r */
function leafDataOf(kind, r) {
  const { leaf_index: _, idempotency_key: __, ...rest } = r;
  return utf8(jcs({ ...rest, v: kind === 'evidence' ? 'evault/evidence/v1' : 'evault/audit/v1' }));
}

const LOG_SIZE = 11;

/**
 * A log of LOG_SIZE leaves; checkpoints are signed by the log's key and a
 * witness (a line the verifier skips unless the witness key is pinned).
 * @param {'evidence' | 'audit'} kind
 */
function makeLog(kind) {
  const items = Array.from({ length: LOG_SIZE }, (_, i) => (kind === 'evidence' ? evidenceRecord(i) : auditEvent(i)));
  const tree = new RefTree(items.map((r) => refLeafHash(leafDataOf(kind, r))));
  const key = kind === 'evidence' ? logKey : auditKey;
  const origin = kind === 'evidence' ? ORIGIN : AUDIT_ORIGIN;
  return {
    kind,
    items,
    tree,
    key,
    origin,
    /** @param {number} size */
    body: (size) => checkpointText(origin, size, tree.root(size)),
    /** @param {number} size */
    note: (size) => signNote(checkpointText(origin, size, tree.root(size)), [key, witness]),
  };
}

const LOGS = { evidence: makeLog('evidence'), audit: makeLog('audit') };

/** @typedef {ReturnType<typeof makeLog>} Log */
/**
 * @typedef {{pinned: {name: string, keyId: number}[], key: ReturnType<typeof signer>, resign: ('size' | 'root')[]}} NoteCtx
 * `resign`: what a checkpoint re-signed by the log's own key may change
 * (a lying log, not a tampered note). A Merkle root does not commit to the
 * tree size, so a consistency proof cannot catch a size the log lies about
 * (a 7->10 proof also checks as 7->11 against the same roots); a bundle's
 * tree_size can.
 */
/**
 * @typedef {{kind: 'evidence' | 'audit', log: Log, value: Record<string, any>, text: string,
 *   record: Record<string, any>, recordText: string, keys: string, allowedKeys: string[], signerKeys: string[],
 *   noteCtx: NoteCtx}} BundleFixture
 */

/**
 * A proof bundle as the server sends it (compact JSON text).
 * @param {Log} log
 * @param {number} index
 * @param {number} size
 * @returns {BundleFixture}
 */
function bundleFixture(log, index, size) {
  const value = {
    record: log.items[index],
    leaf_index: index,
    tree_size: size,
    inclusion_proof: log.tree.inclusion(index, size).map(toB64),
    checkpoint: log.note(size),
  };
  return {
    kind: log.kind,
    log,
    value,
    text: JSON.stringify(value),
    record: log.items[index],
    recordText: JSON.stringify(log.items[index]),
    keys: log.key.vkey,
    // Keys that may be pinned beside the log's without changing the verdict.
    allowedKeys: usableKeys(log.key),
    // Keys that signed every note: pinning one of them is enough.
    signerKeys: [log.key.vkey, witness.vkey],
    noteCtx: { pinned: [log.key], key: log.key, resign: ['size', 'root'] },
  };
}

const BUNDLES = [
  ...[[6, 11], [10, 11], [0, 1], [3, 4], [8, 9]].map(([i, n]) => bundleFixture(LOGS.evidence, i, n)),
  ...[[5, 11], [0, 11], [1, 2], [7, 8]].map(([i, n]) => bundleFixture(LOGS.audit, i, n)),
];

/**
 * @typedef {{log: Log, from: number, to: number, oldNote: string, newNote: string,
 *   proof: string[], proofValue: unknown, proofText: string}} ConsistencyFixture
 */
/** @type {ConsistencyFixture[]} */
const CONSISTENCY = [[3, 11], [4, 8], [11, 11], [1, 2], [7, 10]].flatMap(([from, to]) =>
  [true, false].map((withSizes) => {
    const log = LOGS.evidence;
    const proof = log.tree.consistency(from, to).map(toB64);
    const proofValue = withSizes ? { from, to, proof } : proof;
    return { log, from, to, oldNote: log.note(from), newNote: log.note(to), proof, proofValue, proofText: JSON.stringify(proofValue) };
  }),
);

// ---------------------------------------------------------------------------
// What inputs mean (the oracle)

const BUNDLE_MEMBERS = ['record', 'leaf_index', 'tree_size', 'inclusion_proof', 'checkpoint'];
const EVIDENCE_MEMBERS = ['id', 'leaf_index', 'content_type', 'sha256', 'size', 'labels', 'ingested_at', 'ingested_by', 'idempotency_key'];

/**
 * A record with the format's equivalences applied: absent options equal
 * null, absent labels equal {} (serde defaults); without a fetched record
 * to compare with, the idempotency_key (not in the leaf) means nothing.
 * @param {unknown} v
 * @param {'evidence' | 'audit'} kind
 * @param {boolean} ignoreIdempotencyKey
 */
function normRecord(v, kind, ignoreIdempotencyKey) {
  if (!isObject(v)) return v;
  const out = { ...v };
  if (kind === 'evidence') {
    if (!has(out, 'labels')) out.labels = {};
    if (out.idempotency_key === null) delete out.idempotency_key;
    if (ignoreIdempotencyKey && typeof out.idempotency_key === 'string') delete out.idempotency_key;
  } else {
    for (const k of ['key_id', 'reason']) if (out[k] === null) delete out[k];
  }
  return out;
}

/**
 * @param {unknown} v
 * @param {Record<string, unknown>} original
 * @param {'evidence' | 'audit'} kind
 * @param {boolean} ignoreIdempotencyKey
 */
const recordMeans = (v, original, kind, ignoreIdempotencyKey) =>
  isDeepStrictEqual(normRecord(v, kind, ignoreIdempotencyKey), normRecord(original, kind, ignoreIdempotencyKey));

/**
 * A signature line's key name and ID, or null when the line is malformed
 * (C2SP signed-note: "— name base64(keyid || sig)", the signature at
 * least one byte).
 * @param {string} line
 */
function sigLine(line) {
  if (!line.startsWith('\u2014 ')) return null;
  const rest = line.slice(2);
  const sp = rest.indexOf(' ');
  if (sp < 0) return null;
  const name = rest.slice(0, sp);
  const sig = rest.slice(sp + 1);
  if (!isKeyName(name) || !isCanonicalB64(sig)) return null;
  const raw = Buffer.from(sig, 'base64');
  return raw.length < 5 ? null : { name, keyId: raw.readUInt32BE(0) };
}

/** @param {string} note */
const noteBody = (note) => note.slice(0, note.lastIndexOf('\n\n') + 1);

/**
 * Whether note `m` says what note `original` says to a verifier pinning
 * `pinned`: the signed text byte for byte, one of the original lines by a
 * pinned key, and every other line either a copy of an original pinned
 * line or a well-formed line by a key not pinned (skipped). Anything else
 * changes the signed text or a signature, or is malformed.
 * @param {unknown} m
 * @param {string} original
 * @param {{name: string, keyId: number}[]} pinned
 */
function noteMeans(m, original, pinned) {
  if (typeof m !== 'string') return false;
  const split = m.lastIndexOf('\n\n');
  if (split < 0 || m.slice(0, split + 1) !== noteBody(original)) return false;
  const sigs = m.slice(split + 2);
  if (!sigs.endsWith('\n')) return false;
  const lines = sigs.slice(0, -1).split('\n');
  if (lines.length > 100) return false;
  const isPinned = (/** @type {{name: string, keyId: number}} */ s) =>
    pinned.some((k) => k.name === s.name && k.keyId === s.keyId);
  const originalPinned = new Set(
    original.slice(noteBody(original).length + 1, -1).split('\n').filter((l) => {
      const s = sigLine(l);
      return s !== null && isPinned(s);
    }),
  );
  let signed = false;
  for (const line of lines) {
    if (originalPinned.has(line)) {
      signed = true;
      continue;
    }
    const s = sigLine(line);
    if (!s || isPinned(s)) return false;
  }
  return signed;
}

/**
 * The pinned key texts, as the verifier reads them: one per line, blank
 * lines and surrounding white space ignored, the key ID's hex case free.
 * @param {unknown} keys
 */
function keySet(keys) {
  const list = typeof keys === 'string' ? [keys] : Array.isArray(keys) ? keys : null;
  if (!list || !list.every((k) => typeof k === 'string')) return null;
  const set = new Set();
  for (const k of /** @type {string[]} */ (list)) {
    for (const line of k.split('\n')) {
      const t = line.trim();
      if (t === '') continue;
      const m = /^([^+]*)\+([0-9A-Fa-f]{8})\+(.*)$/s.exec(t);
      set.add(m ? `${m[1]}+${m[2].toLowerCase()}+${m[3]}` : t);
    }
  }
  return set;
}

/**
 * Whether `keys` pins what the original keys pin, for the verdict: only
 * usable keys (the log's, the witness's, an ML-DSA key the browser skips),
 * at least one that signed the notes.
 * @param {unknown} keys
 * @param {{allowedKeys: string[], signerKeys: string[]}} fx
 */
function keysMean(keys, fx) {
  const set = keySet(keys);
  return set !== null && [...set].every((k) => fx.allowedKeys.includes(k)) && fx.signerKeys.some((k) => set.has(k));
}

/**
 * The expected origin a case passes: left out, null (both: any origin),
 * the log's own, or another (the other log's, a near miss, empty).
 * @param {Rng} rng
 * @param {Log} log
 * @returns {string | null | undefined}
 */
function pickOrigin(rng, log) {
  const other = log.kind === 'evidence' ? AUDIT_ORIGIN : ORIGIN;
  if (rng.chance(0.2)) return rng.pick([other, `${log.origin} `, log.origin.toUpperCase(), `${log.origin}\n`, '']);
  return rng.pick([undefined, undefined, null, log.origin, log.origin]);
}

/**
 * Whether an expected origin admits the log's checkpoints: none given,
 * or exactly its origin (a mutated note that verifies keeps its body, so
 * its origin is the log's).
 * @param {string | null | undefined} origin
 * @param {Log} log
 */
function originMeans(origin, log) {
  return origin === undefined || origin === null || origin === log.origin;
}

/**
 * Whether the evidence record is one the strict format accepts (for the
 * payload check, which reads size and sha256 only).
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
function validEvidence(v) {
  if (!isObject(v) || !Object.keys(v).every((k) => EVIDENCE_MEMBERS.includes(k))) return false;
  const strings = ['id', 'content_type', 'sha256', 'ingested_at', 'ingested_by'];
  if (!strings.every((k) => has(v, k) && typeof v[k] === 'string')) return false;
  if (!['leaf_index', 'size'].every((k) => has(v, k) && isU53(v[k]))) return false;
  if (has(v, 'labels') && !(isObject(v.labels) && Object.values(v.labels).every((x) => typeof x === 'string'))) return false;
  return !has(v, 'idempotency_key') || v.idempotency_key === null || typeof v.idempotency_key === 'string';
}

/**
 * An argument as the caller passes it (text, or the JSON.parse value) and
 * whether it means the original: text must parse strictly (json.js) and
 * its JSON.parse value mean the original; a value must mean it.
 * @param {string} text
 * @param {boolean} asValue
 * @param {(v: unknown) => boolean} means
 * @returns {{arg: unknown, ok: boolean, value: unknown, parsed: boolean}}
 */
function argument(text, asValue, means) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { arg: text, ok: false, value: undefined, parsed: false };
  }
  if (asValue) {
    // A string is taken as JSON text again.
    const ok = typeof value === 'string' ? argument(value, false, means).ok : means(value);
    return { arg: value, ok, value, parsed: true };
  }
  return { arg: text, ok: strictAccepts(text) && means(value), value, parsed: true };
}

// ---------------------------------------------------------------------------
// Outcome shape

const BUNDLE_STEPS = ['record', 'leaf', 'key', 'signature', 'checkpoint', 'inclusion'];
const CONSISTENCY_STEPS = ['key', 'signature', 'checkpoint', 'consistency'];
const PAYLOAD_STEPS = ['payload'];

/**
 * Checks the Outcome contract: ok is boolean; steps a non-empty list of
 * {name, ok, detail} in the documented order; a failure is the last step
 * and named by `failed`; success means every step ran and passed.
 * @param {unknown} out
 * @param {string[]} order  the steps a success runs, in order
 */
function checkOutcome(out, order) {
  assert.ok(isObject(out), 'the outcome is not an object');
  const o = /** @type {Record<string, unknown>} */ (out);
  assert.equal(typeof o.ok, 'boolean', 'ok is not a boolean');
  assert.ok(Array.isArray(o.steps) && o.steps.length > 0, 'no steps');
  const steps = /** @type {unknown[]} */ (o.steps);
  let last = -1;
  for (const s of steps) {
    assert.ok(isObject(s), 'a step is not an object');
    assert.equal(typeof s.name, 'string');
    assert.equal(typeof s.ok, 'boolean');
    assert.ok(typeof s.detail === 'string' && s.detail.length > 0, `step ${String(s.name)} has no detail`);
    const at = order.indexOf(/** @type {string} */ (s.name));
    assert.ok(at > last, `step ${String(s.name)} out of order (an exception escaped a step?): ${show(steps)}`);
    last = at;
  }
  const typed = /** @type {{name: string, ok: boolean, detail: string}[]} */ (steps);
  if (o.ok) {
    assert.equal(o.failed, null);
    assert.deepEqual(typed.map((s) => s.name), order);
    assert.ok(typed.every((s) => s.ok));
    // A verified proof names the checkpoint it was checked against.
    const cp = o.checkpoint;
    if (order !== PAYLOAD_STEPS) {
      assert.ok(isObject(cp) && typeof cp.origin === 'string' && typeof cp.size === 'bigint' && cp.root instanceof Uint8Array);
    }
  } else {
    const end = typed[typed.length - 1];
    assert.equal(o.failed, end.name, 'failed does not name the last step');
    assert.equal(end.ok, false, 'the last step of a failure passed');
    assert.ok(typed.slice(0, -1).every((s) => s.ok), 'a step before the last failed');
  }
}

/**
 * Runs a verify function that must not throw, checks its Outcome and the
 * verdict.
 * @param {() => Promise<unknown>} call
 * @param {string[]} order
 * @param {boolean} expected
 */
async function verdict(call, order, expected) {
  let out;
  try {
    out = await call();
  } catch (e) {
    assert.fail(`threw ${e instanceof Error ? e.stack : String(e)}`);
  }
  checkOutcome(out, order);
  const o = /** @type {{ok: boolean, steps: unknown}} */ (out);
  assert.equal(o.ok, expected, `expected ${expected ? 'success' : 'failure'}, got ${show(o.steps)}`);
  return o.ok;
}

// ---------------------------------------------------------------------------
// Mutators

/** Fragments that break or bend JSON, notes and keys. */
const FRAGMENTS = [
  '"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\n', '\n\n', '\t', '\r', '\r\n', '0', '1', '9', '-', '+', '.', 'e',
  'E', 'a', 'A', '=', '==', '/', '\u0000', '\u001f', '\u007f', '\u00e9', 'e\u0301', '\u2014', '\u2014 ', '\u2028',
  '\u00a0', '\ufeff', '\ufffd', '\u{1f600}', '\ud800', '\udc00', '\\u0000', '\\ud800', '\\udc00', '\\ud83d\\ude00',
  '\\u0041', '\\/', '\\n', 'null', 'true', '1e3', '-0', '__proto__', '\u202e', '\u0130',
];
const WHITESPACE = [' ', '\n', '\t', '\r', '  '];

/** @typedef {{text: string, how: string}} Mutant */

/** @param {Rng} rng @param {string} tok */
function numberEdit(rng, tok) {
  const n = Number(tok);
  return rng.pick([
    String(n + 1), String(n - 1), String(-n), '-0', '0', '1e3', `${tok}.0`, `${tok}e0`, `${tok}E+0`, '9007199254740991',
    '9007199254740992', '9007199254740993', '18446744073709551615', '18446744073709551616', '-1', '0.5', '1E400',
    `0${tok}`, `+${tok}`, `${tok}${tok}`, `"${tok}"`, 'NaN', 'Infinity', ` ${tok} `, String(n * 2), '65536', '65535',
  ]);
}

/**
 * Generic edits of any text: corrupted transfers, hand edits, injections.
 * @param {Rng} rng
 * @param {string} s
 * @returns {Mutant}
 */
function mutateText(rng, s) {
  const at = rng.int(s.length + 1);
  const len = rng.chance(0.8) ? 1 + rng.int(4) : 1 + rng.int(40);
  switch (rng.int(10)) {
    case 0: {
      // A flipped bit in the UTF-8 bytes, decoded as a browser would.
      const b = utf8(s);
      if (b.length === 0) return { text: 'x', how: 'text: insert into empty' };
      const k = rng.int(b.length);
      const bit = rng.int(8);
      b[k] ^= 1 << bit;
      return { text: LOSSY.decode(b), how: `text: flip bit ${bit} of byte ${k}` };
    }
    case 1: {
      const b = utf8(s);
      if (b.length === 0) return { text: '\u0000', how: 'text: byte into empty' };
      const k = rng.int(b.length);
      b[k] = rng.int(256);
      return { text: LOSSY.decode(b), how: `text: byte ${k} := ${b[k]}` };
    }
    case 2:
      return { text: s.slice(0, at) + s.slice(at + len), how: `text: delete ${len} at ${at}` };
    case 3: {
      const f = rng.pick(FRAGMENTS);
      return { text: s.slice(0, at) + f + s.slice(at), how: `text: insert ${JSON.stringify(f)} at ${at}` };
    }
    case 4: {
      const piece = s.slice(at, at + len);
      const to = rng.chance(0.5) ? at : rng.int(s.length + 1);
      return { text: s.slice(0, to) + piece + s.slice(to), how: `text: duplicate ${JSON.stringify(piece)} at ${to}` };
    }
    case 5:
      return { text: s.slice(0, at), how: `text: truncate at ${at}` };
    case 6: {
      const f = rng.pick(FRAGMENTS);
      return { text: s.slice(0, at) + f + s.slice(at + 1), how: `text: replace char ${at} by ${JSON.stringify(f)}` };
    }
    case 7:
      if (at + 1 >= s.length) return { text: s.slice(0, -1), how: 'text: drop last' };
      return { text: s.slice(0, at) + s[at + 1] + s[at] + s.slice(at + 2), how: `text: transpose ${at}` };
    case 8: {
      const toks = [...s.matchAll(/-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)];
      if (toks.length === 0) return { text: s + '0', how: 'text: append 0' };
      const m = rng.pick(toks);
      const to = numberEdit(rng, m[0]);
      const i = /** @type {number} */ (m.index);
      return { text: s.slice(0, i) + to + s.slice(i + m[0].length), how: `text: number ${m[0]} at ${i} -> ${to}` };
    }
    default: {
      const w = rng.pick(WHITESPACE);
      return { text: s.slice(0, at) + w + s.slice(at), how: `text: whitespace ${JSON.stringify(w)} at ${at}` };
    }
  }
}

/**
 * JSON text of `v` written with random but meaning-preserving choices
 * (member order, white space, \u escapes of any character, \/) and,
 * optionally, forms json.js refuses by design (numbers as 1.0 / 1e0 / -0,
 * duplicate members). Always valid JSON.
 * @param {Rng} rng
 * @param {unknown} v
 * @param {{escape?: number, space?: number, shuffle?: boolean, altNumbers?: number, duplicates?: number}} o
 * @returns {string}
 */
function writeJson(rng, v, o) {
  const ws = () => (o.space && rng.chance(o.space) ? rng.pick(WHITESPACE) : '');
  /** @param {string} s */
  const str = (s) => {
    let out = '"';
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      const must = c < 0x20 || c === 0x22 || c === 0x5c;
      if (!must && !(o.escape && rng.chance(o.escape))) {
        out += s[k];
      } else if (rng.chance(0.5) && '"\\/\b\f\n\r\t'.includes(s[k])) {
        out += JSON.stringify(s[k]).slice(1, -1).replace(/^\/$/, '\\/');
      } else {
        const h = c.toString(16).padStart(4, '0');
        out += `\\u${rng.chance(0.5) ? h : h.toUpperCase()}`;
      }
    }
    return `${out}"`;
  };
  /** @param {unknown} x @returns {string} */
  const write = (x) => {
    if (typeof x === 'string') return str(x);
    if (typeof x === 'number') {
      if (o.altNumbers && rng.chance(o.altNumbers) && Number.isSafeInteger(x)) {
        return rng.pick([`${x}.0`, `${x}e0`, `${x}E+0`, `${x}0e-1`, x === 0 ? '-0' : String(x), x === 0 ? '-0' : `${x}.00`]);
      }
      return JSON.stringify(x);
    }
    if (Array.isArray(x)) return `[${ws()}${x.map((e) => `${ws()}${write(e)}${ws()}`).join(',')}${ws()}]`;
    if (isObject(x)) {
      const keys = Object.keys(x);
      if (o.shuffle) {
        for (let k = keys.length - 1; k > 0; k--) {
          const j = rng.int(k + 1);
          [keys[k], keys[j]] = [keys[j], keys[k]];
        }
      }
      const members = [];
      for (const k of keys) {
        if (o.duplicates && rng.chance(o.duplicates)) {
          members.push(`${ws()}${str(k)}${ws()}:${ws()}${write(rng.chance(0.5) ? x[k] : randomValue(rng, 3))}`);
        }
        members.push(`${ws()}${str(k)}${ws()}:${ws()}${write(x[k])}${ws()}`);
      }
      return `{${members.join(',')}${keys.length ? '' : ws()}}`;
    }
    return JSON.stringify(x);
  };
  return `${ws()}${write(v)}${ws()}`;
}

/** The same value, written another way (what a proxy or another server might send). @param {Rng} rng @param {unknown} v */
function reformat(rng, v) {
  switch (rng.int(4)) {
    case 0:
      return JSON.stringify(v);
    case 1:
      return JSON.stringify(v, null, rng.pick([1, 2, '\t']));
    default:
      return writeJson(rng, v, { shuffle: true, escape: rng.pick([0, 0.02, 0.2]), space: rng.pick([0, 0.1, 0.5]) });
  }
}

/**
 * Every place in a JSON value: its holder and key (the root's holder is a
 * one-member object).
 * @param {{v: unknown}} root
 */
function slots(root) {
  /** @type {{holder: any, key: string | number, path: string}[]} */
  const out = [];
  /** @param {any} holder @param {string | number} key @param {string} path */
  const walk = (holder, key, path) => {
    out.push({ holder, key, path });
    const x = holder[key];
    if (Array.isArray(x)) x.forEach((_, i) => walk(x, i, `${path}[${i}]`));
    else if (isObject(x)) Object.keys(x).forEach((k) => walk(x, k, `${path}.${k}`));
  };
  walk(root, 'v', '$');
  return out;
}

/** @param {Record<string, unknown>} o @param {string} k @param {unknown} v */
function setMember(o, k, v) {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

const MEMBER_NAMES = [
  ...BUNDLE_MEMBERS, ...EVIDENCE_MEMBERS, 'time', 'request_id', 'principal', 'key_id', 'auth_method', 'protocol',
  'operation', 'resource', 'outcome', 'status', 'client', 'params_digest', 'reason', 'from', 'to', 'proof', 'x', 'v',
  '__proto__', 'constructor', 'Leaf_index', 'leaf_index ', '',
];

/** @param {Rng} rng @param {number} depth @returns {unknown} */
function randomValue(rng, depth) {
  switch (rng.int(depth > 2 ? 5 : 7)) {
    case 0:
      return rng.pick([null, true, false]);
    case 1:
      return rng.pick([0, 1, -1, 7, 201, 65535, 65536, 2 ** 53 - 1, -(2 ** 31), rng.int(1000)]);
    case 2:
      return rng.pick([0.5, -1.5, 1e21, 2 ** 53 + 2, 1e-7, 2 ** 64]);
    case 3:
    case 4: {
      let s = '';
      const n = rng.int(8);
      for (let i = 0; i < n; i++) {
        s += rng.pick(['a', 'b', 'Z', '\u00e9', '\u0000', '\u001f', '"', '\\', '/', '\u2028', '\u{1f600}', '\ud800', '\udc00', '\ufeff', ' ', '\u007f', '\u00df', '\n']);
      }
      return s;
    }
    case 5:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    default: {
      /** @type {Record<string, unknown>} */
      const o = {};
      const n = rng.int(4);
      for (let i = 0; i < n; i++) setMember(o, rng.pick(['a', 'b', 'leaf_index', '__proto__', 'x\u00e9', '']), randomValue(rng, depth + 1));
      return o;
    }
  }
}

/**
 * A structural edit of one place in the value (number, string, array,
 * object edits), or a note edit where the place is a note.
 * @param {Rng} rng
 * @param {unknown} value
 * @param {NoteCtx | null} noteCtx
 * @returns {{value: unknown, how: string}}
 */
function mutateValue(rng, value, noteCtx) {
  const root = { v: structuredClone(value) };
  const all = slots(root);
  const { holder, key, path } = rng.pick(all);
  const x = holder[key];
  /** @param {unknown} v @param {string} what */
  const set = (v, what) => {
    holder[key] = v;
    return { value: root.v, how: `value ${path}: ${what}` };
  };
  const remove = () => {
    if (holder === root) return set(undefined, 'removed');
    if (Array.isArray(holder)) holder.splice(/** @type {number} */ (key), 1);
    else delete holder[key];
    return { value: root.v, how: `value ${path}: removed` };
  };
  if (rng.chance(0.1)) return set(randomValue(rng, 2), 'replaced by a random value');
  if (typeof x === 'number') {
    const to = rng.pick([x + 1, x - 1, -x, x * 2, 0, -1, 2 ** 53, 2 ** 53 + 2, 1e21, 0.5, x + 0.5, 65536, null, String(x), true]);
    return set(to, `number -> ${show(to)}`);
  }
  if (typeof x === 'string') {
    if (noteCtx && key === 'checkpoint' && rng.chance(0.7)) {
      const m = mutateNote(rng, x, noteCtx);
      return set(m.text, m.how);
    }
    const i = rng.int(x.length + 1);
    const c = rng.pick(FRAGMENTS);
    const to = rng.pick([
      x.slice(0, i) + c + x.slice(i), x.slice(0, i) + x.slice(i + 1), x.slice(0, i) + c + x.slice(i + 1), '', x.toUpperCase(),
      x.normalize('NFD'), x + x, x.slice(0, -1), ` ${x}`, `${x}\u0000`, `\ufeff${x}`, null, 0, [], {}, [x],
    ]);
    return set(to, `string -> ${show(to)}`);
  }
  if (Array.isArray(x)) {
    const a = x.slice();
    const i = rng.int(a.length + 1);
    const j = rng.int(a.length);
    switch (rng.int(7)) {
      case 0:
        if (a.length > 1 && !isDeepStrictEqual(a[i % a.length], a[j])) {
          [a[i % a.length], a[j]] = [a[j], a[i % a.length]];
          return set(a, `swap items ${i % a.length} and ${j}`);
        }
        return set(a.slice(1), 'drop first item');
      case 1:
        a.splice(i, 1);
        return set(a, `drop item ${i}`);
      case 2:
        if (a.length) a.splice(i, 0, a[j]);
        return set(a, `duplicate item ${j} at ${i}`);
      case 3:
        a.splice(i, 0, rng.pick(['', 'AAAA', toB64(new Uint8Array(32)), null, 0]));
        return set(a, `insert an item at ${i}`);
      case 4:
        return set(a.reverse(), 'reverse');
      case 5:
        return set([], 'empty');
      default:
        return remove();
    }
  }
  if (isObject(x)) {
    const keys = Object.keys(x);
    switch (rng.int(5)) {
      case 0: {
        if (!keys.length) return set(null, 'null');
        const k = rng.pick(keys);
        delete x[k];
        return set(x, `remove member ${JSON.stringify(k)}`);
      }
      case 1:
      case 2: {
        const k = rng.pick(MEMBER_NAMES);
        // A copy of a sibling, or '' / null (null is "absent" for an option, '' is not).
        const r = rng.int(4);
        const v = r === 0 && keys.length ? structuredClone(x[rng.pick(keys)]) : r === 1 ? '' : r === 2 ? null : randomValue(rng, 2);
        setMember(x, k, v);
        return set(x, `member ${JSON.stringify(k)} := ${show(v)}`);
      }
      case 3: {
        if (!keys.length) return set(null, 'null');
        const k = rng.pick(keys);
        const to = rng.pick([k.toUpperCase(), `${k} `, `${k}\u0000`, k.slice(1), `_${k}`]);
        /** @type {Record<string, unknown>} */
        const y = {};
        for (const kk of keys) setMember(y, kk === k ? to : kk, x[kk]);
        return set(y, `rename member ${JSON.stringify(k)} -> ${JSON.stringify(to)}`);
      }
      default:
        return remove();
    }
  }
  return set(rng.pick([0, '', false, [], {}]), `literal ${show(x)} replaced`);
}

/**
 * A mutant of JSON text: a text edit, a structural edit, or (neutral) the
 * same value written another way.
 * @param {Rng} rng
 * @param {string} text  valid JSON
 * @param {NoteCtx | null} noteCtx
 * @returns {Mutant}
 */
function mutateJson(rng, text, noteCtx) {
  const r = rng.int(20);
  if (r < 9) return mutateText(rng, text);
  const v = JSON.parse(text);
  if (r < 11) return { text: reformat(rng, v), how: 'reformatted (neutral)' };
  if (r < 13) {
    return { text: writeJson(rng, v, { altNumbers: 0.3, duplicates: 0.1, escape: 0.05 }), how: 'written with 1.0/1e0/-0 numbers or duplicate members' };
  }
  const record = isObject(v) && isObject(v.record) ? v.record : isObject(v) && has(v, 'leaf_index') && has(v, 'id') ? v : null;
  if (record && r < 15) {
    // The optional members, where absent, null, '' and {} mean different
    // things (or the same) depending on the member and the kind.
    const k = rng.pick(['idempotency_key', 'labels', 'key_id', 'reason']);
    const to = rng.pick([undefined, null, '', 'x', {}, []]);
    if (to === undefined) delete record[k];
    else setMember(record, k, to);
    return { text: JSON.stringify(v), how: `optional member ${k} := ${show(to)}` };
  }
  if (noteCtx && isObject(v) && typeof v.checkpoint === 'string' && r < 17) {
    const m = mutateNote(rng, v.checkpoint, noteCtx);
    return { text: rng.chance(0.8) ? JSON.stringify({ ...v, checkpoint: m.text }) : reformat(rng, { ...v, checkpoint: m.text }), how: m.how };
  }
  const m = mutateValue(rng, v, noteCtx);
  const out = m.value === undefined ? '' : rng.chance(0.8) ? JSON.stringify(m.value) : reformat(rng, m.value);
  return { text: out, how: m.how };
}

/**
 * Canonical base64 of the same bytes with one bit flipped.
 * @param {string} b64
 * @param {Rng} rng
 * @param {number} [from]  first byte that may change
 * @param {number} [to]  byte after the last that may change
 */
function flipInB64(b64, rng, from = 0, to) {
  const raw = Buffer.from(b64, 'base64');
  const k = from + rng.int((to ?? raw.length) - from);
  raw[k] ^= 1 << rng.int(8);
  return raw.toString('base64');
}

/**
 * A mutant of a signed note: text edits anywhere, or edits of the
 * signature block (lines copied, dropped, reordered, added by unknown or
 * pinned keys, signatures, key IDs, names, the em dash, padding) or, where
 * `resign`, a different checkpoint signed by the log's own key.
 * @param {Rng} rng
 * @param {string} note
 * @param {NoteCtx} ctx
 * @returns {Mutant}
 */
function mutateNote(rng, note, ctx) {
  const body = noteBody(note);
  const lines = note.slice(body.length + 1, -1).split('\n');
  const pinnedAt = lines.findIndex((l) => l.startsWith(`\u2014 ${ctx.key.name} `));
  const pinned = lines[pinnedAt];
  const sig = pinned.slice(`\u2014 ${ctx.key.name} `.length);
  /** @param {string[]} ls @param {string} how */
  const withLines = (ls, how) => ({ text: `${body}\n${ls.map((l) => `${l}\n`).join('')}`, how: `note: ${how}` });
  /** @param {string} line @param {string} how */
  const replacePinned = (line, how) => withLines(lines.map((l, i) => (i === pinnedAt ? line : l)), how);
  const r = rng.int(19 + (ctx.resign.length ? 1 : 0));
  if (r < 5) {
    const m = mutateText(rng, note);
    return { text: m.text, how: `note ${m.how}` };
  }
  switch (r) {
    case 5: {
      const i = rng.int(lines.length);
      return withLines([...lines.slice(0, i + 1), lines[i], ...lines.slice(i + 1)], `copy line ${i}`);
    }
    case 6: {
      const i = rng.int(lines.length);
      return withLines(lines.filter((_, j) => j !== i), `drop line ${i}`);
    }
    case 7:
      return withLines(lines.slice().reverse(), 'reverse lines');
    case 8: {
      // A well-formed line by a key not pinned: skipped.
      const name = rng.pick([ctx.key.name, 'other.example/log', witness.name, '\u00e9t\u00e9']);
      const line = `\u2014 ${name} ${toB64(rng.bytes(4 + rng.pick([1, 64, 68, 2432])))}`;
      const i = rng.int(lines.length + 1);
      return withLines([...lines.slice(0, i), line, ...lines.slice(i)], `unknown key's line at ${i}`);
    }
    case 9:
      return replacePinned(`\u2014 ${ctx.key.name} ${flipInB64(sig, rng, 4)}`, 'signature bit flipped');
    case 10:
      return replacePinned(`\u2014 ${ctx.key.name} ${flipInB64(sig, rng, 0, 4)}`, 'key ID changed');
    case 11: {
      const to = rng.pick([ctx.key.name.toUpperCase(), `${ctx.key.name}x`, witness.name, ctx.key.name.slice(0, -1), '']);
      return replacePinned(`\u2014 ${to} ${sig}`, `key name -> ${JSON.stringify(to)}`);
    }
    case 12: {
      const to = rng.pick(['-', '--', '\u2013', '\u2014\u2014', '']);
      return replacePinned(`${to} ${pinned.slice(2)}`, `em dash -> ${JSON.stringify(to)}`);
    }
    case 13: {
      // Same bytes in a form only a lenient decoder takes.
      const to = rng.pick([sig.replace(/=+$/, ''), `${sig.slice(0, -2)}${sig.at(-2) === 'A' ? 'B' : 'A'}=`, `${sig}=`, ` ${sig}`, sig.replace(/\//g, '_')]);
      return replacePinned(`\u2014 ${ctx.key.name} ${to}`, `signature base64 -> ${JSON.stringify(to)}`);
    }
    case 14: {
      const to = rng.pick(['  ', '\t', '\u00a0', ' \u200b']);
      return replacePinned(`\u2014 ${ctx.key.name}${to}${sig}`, `separator -> ${JSON.stringify(to)}`);
    }
    case 15: {
      // The pinned key's valid signature of another text: invalid here.
      const other = body.replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`);
      return withLines([...lines, ctx.key.line(other).slice(0, -1)], "the key's signature of another text added");
    }
    case 16:
      return { text: note.replace(/\n/g, '\r\n'), how: 'note: CRLF line ends' };
    case 17: {
      // Up to 100 lines open; more are malformed (Go's note.Open limit).
      const n = rng.pick([100 - lines.length, 101 - lines.length]);
      const extra = Array.from({ length: n }, (_, i) => `\u2014 other.example/k${i} ${toB64(rng.bytes(68))}`);
      return withLines([...lines, ...extra], `${n} unknown keys' lines added`);
    }
    case 18: {
      const to = rng.pick([`${body}extension line\n`, body.replace(/\n$/, '\n\n'), `${body.slice(0, -1)} \n`, body.replace('\n', '\n\n')]);
      return { text: `${to}\n${lines.map((l) => `${l}\n`).join('')}`, how: 'note: body edited, signature kept' };
    }
    default: {
      // Another checkpoint properly signed by the log's key: the size or
      // root it commits to differs from what the proof is for.
      const m = /^(.*)\n(\d+)\n(.*)\n/.exec(body);
      if (!m) throw new Error('not a checkpoint');
      const what = rng.pick(ctx.resign);
      const size = what === 'size' ? String(Number(m[2]) + rng.pick([1, -1])) : m[2];
      const root = what === 'root' ? flipInB64(m[3], rng) : m[3];
      const text = `${m[1]}\n${size}\n${root}\n`;
      return { text: signNote(text, [ctx.key, witness]), how: `note: re-signed with size ${size}, root ${root}` };
    }
  }
}

/**
 * A mutant of the pinned keys: text edits, or edits that keep or change
 * the keys pinned (hex case, white space, copies, other usable keys,
 * unusable ones, another key of the same name).
 * @param {Rng} rng
 * @param {string} keys
 * @returns {{keys: string | string[], how: string}}
 */
function mutateKeys(rng, keys) {
  const r = rng.int(12);
  if (r < 5) {
    const m = mutateText(rng, keys);
    return { keys: m.text, how: `keys ${m.how}` };
  }
  const [name, id, data] = [keys.slice(0, keys.indexOf('+')), keys.split('+')[1], keys.split('+').slice(2).join('+')];
  switch (r) {
    case 5:
      return { keys: `${name}+${id.toUpperCase()}+${data}`, how: 'keys: key ID upper-case' };
    case 6: {
      const pad = rng.pick(['\n', ' ', '\t', '\r\n', '\n\n  ', '\u00a0']);
      return { keys: `${pad}${keys}${rng.pick(['', pad])}`, how: `keys: padded with ${JSON.stringify(pad)}` };
    }
    case 7:
      return { keys: rng.chance(0.5) ? `${keys}\n${keys}` : [keys, keys, ''], how: 'keys: repeated' };
    case 8: {
      const extra = rng.pick([witness.vkey, mldsaKey(name), cosigKey, stranger.vkey, zeroKey(name)]);
      return { keys: rng.chance(0.5) ? `${keys}\n${extra}` : [extra, keys], how: `keys: ${extra.slice(0, 40)}… added` };
    }
    case 9: {
      const to = rng.pick([stranger.vkey, mldsaKey(name), cosigKey, witness.vkey]);
      return { keys: to, how: `keys: replaced by ${to.slice(0, 40)}…` };
    }
    case 10:
      return { keys: rng.pick(['', '\n', [], ['']]), how: 'keys: none' };
    default: {
      const to = `${name}+${id}+${flipInB64(data, rng, 1)}`;
      return { keys: to, how: 'keys: key data bit flipped' };
    }
  }
}

// ---------------------------------------------------------------------------
// The valid inputs verify

test('fuzz fixtures: every valid input verifies', async () => {
  for (const fx of BUNDLES) {
    for (const bundle of [fx.text, fx.value]) {
      for (const fetched of [null, fx.recordText, fx.record]) {
        const out = await verifyProofBundle(fx.kind, bundle, fetched, fx.keys);
        checkOutcome(out, fetched === null ? BUNDLE_STEPS.slice(1) : BUNDLE_STEPS);
        assert.equal(out.ok, true, show(out.steps));
      }
    }
    // The leaf data written here from FORMATS.md is leaf.js's.
    const leaf = fx.kind === 'evidence' ? evidenceLeafData(fx.record) : auditLeafData(fx.record);
    assert.deepEqual(leaf, leafDataOf(fx.kind, fx.record));
  }
  for (const c of CONSISTENCY) {
    for (const proof of [c.proofText, c.proofValue]) {
      const out = await verifyConsistencyProof(c.oldNote, c.newNote, /** @type {any} */ (proof), [c.log.key.vkey]);
      checkOutcome(out, CONSISTENCY_STEPS);
      assert.equal(out.ok, true, `${c.from}->${c.to}: ${show(out.steps)}`);
    }
  }
  for (let i = 0; i < 3; i++) {
    const out = await verifyPayload(payloadOf(i), JSON.stringify(evidenceRecord(i)));
    checkOutcome(out, PAYLOAD_STEPS);
    assert.equal(out.ok, true, show(out.steps));
  }
});

// ---------------------------------------------------------------------------
// Regressions found by this fuzzer

test('fuzz regression: -0 is not an integer (it verified as 0; serde refuses it)', async () => {
  // Found as `"leaf_index":-0` in a bundle and a payload's record: json.js
  // and the integer readers took -0 (JSON.parse's value too) and read it
  // as 0, so the mutant verified; serde_json reads -0 as a float, which
  // the Rust verifier's u64 members refuse.
  for (const text of ['-0', '[-0]', '{"a":-0}']) {
    assert.throws(() => parseJson(text), { code: 'json' }, text);
  }
  assert.deepEqual(parseJson('[0,-1,10]'), [0, -1, 10]);
  const fx = BUNDLES.find((b) => b.kind === 'evidence' && b.value.leaf_index === 0);
  assert.ok(fx);
  const keys = fx.keys;
  /** @param {unknown} out @param {string} failed */
  const failsAt = (out, failed) => {
    checkOutcome(out, BUNDLE_STEPS);
    const o = /** @type {{ok: boolean, failed: string}} */ (out);
    assert.equal(o.ok, false);
    assert.equal(o.failed, failed);
  };
  const inRecord = fx.text.replace('"leaf_index":0,', '"leaf_index":-0,');
  const inBundle = fx.text.replace(/,"leaf_index":0,/, ',"leaf_index":-0,');
  assert.notEqual(inRecord, fx.text);
  assert.notEqual(inBundle, fx.text);
  for (const text of [inRecord, inBundle]) {
    failsAt(await verifyProofBundle('evidence', text, null, keys), 'leaf');
    failsAt(await verifyProofBundle('evidence', JSON.parse(text), null, keys), 'leaf');
  }
  const fetched = fx.recordText.replace('"leaf_index":0,', '"leaf_index":-0,');
  failsAt(await verifyProofBundle('evidence', fx.text, fetched, keys), 'record');
  failsAt(await verifyProofBundle('evidence', fx.text, JSON.parse(fetched), keys), 'record');
  const record = JSON.stringify(evidenceRecord(0)).replace('"leaf_index":0,', '"leaf_index":-0,');
  for (const r of [record, JSON.parse(record)]) {
    const out = await verifyPayload(payloadOf(0), r);
    checkOutcome(out, PAYLOAD_STEPS);
    assert.equal(out.ok, false);
  }
});

// ---------------------------------------------------------------------------
// The verify functions

test('fuzz: proof bundles (evidence and audit records, fetched records, pinned keys)', { timeout: 180_000 }, async (t) => {
  const rng = rngFor('bundles');
  // The expected origin comes from a stream of its own, so the mutants
  // stay those of the bundles stream.
  const originRng = rngFor('bundles-origin');
  const n = iters(1500);
  let verified = 0;
  let wrongOrigin = 0;
  for (let i = 0; i < n; i++) {
    const fx = rng.pick(BUNDLES);
    const origin = pickOrigin(originRng, fx.log);
    const withFetched = rng.chance(0.4);
    const asValue = rng.chance(0.2);
    const target = rng.pick(withFetched ? ['bundle', 'bundle', 'bundle', 'fetched', 'keys'] : ['bundle', 'bundle', 'bundle', 'keys']);
    let bundleText = fx.text;
    let fetchedText = fx.recordText;
    /** @type {string | string[]} */
    let keys = fx.keys;
    let how;
    if (target === 'bundle') ({ text: bundleText, how } = mutateJson(rng, fx.text, fx.noteCtx));
    else if (target === 'fetched') ({ text: fetchedText, how } = mutateJson(rng, fx.recordText, null));
    else ({ keys, how } = mutateKeys(rng, fx.keys));

    const bundle = argument(bundleText, asValue, (v) => isObject(v) && sameKeys(v, BUNDLE_MEMBERS)
      && Object.is(v.leaf_index, fx.value.leaf_index) && Object.is(v.tree_size, fx.value.tree_size)
      && isDeepStrictEqual(v.inclusion_proof, fx.value.inclusion_proof)
      && recordMeans(v.record, fx.record, fx.kind, !withFetched)
      && noteMeans(v.checkpoint, fx.value.checkpoint, fx.noteCtx.pinned));
    const fetched = withFetched ? argument(fetchedText, asValue, (v) => recordMeans(v, fx.record, fx.kind, false)) : null;
    // A fetched value of null means "no fetched record": that step is skipped.
    const skipFetched = fetched === null || (asValue && fetched.parsed && fetched.value == null);
    const expected = bundle.ok && (skipFetched || fetched.ok) && keysMean(keys, fx) && originMeans(origin, fx.log);
    if (!originMeans(origin, fx.log)) wrongOrigin++;
    const order = skipFetched ? BUNDLE_STEPS.slice(1) : BUNDLE_STEPS;
    await fuzzCase('bundles', i, `${fx.kind} ${target}${asValue ? ' as value' : ''}: ${how}`,
      { bundle: bundle.arg, fetched: fetched?.arg ?? null, keys, origin },
      async () => {
        const call = origin === undefined
          ? () => verifyProofBundle(fx.kind, bundle.arg, fetched?.arg ?? null, keys)
          : () => verifyProofBundle(fx.kind, bundle.arg, fetched?.arg ?? null, keys, origin);
        if (await verdict(call, order, expected)) verified++;
      });
  }
  t.diagnostic(`${n} mutants, ${verified} meant the same and verified, ${n - verified} failed as they must (${wrongOrigin} with another expected origin)`);
  assert.ok(wrongOrigin > n / 20, `${wrongOrigin} cases expected another origin`);
  // The oracle must see both verdicts often, or it tests little.
  assert.ok(verified > n / 20 && verified < n - n / 4, `${verified} of ${n} verified`);
});

test('fuzz: consistency proofs (both notes, the proof, pinned keys)', { timeout: 180_000 }, async (t) => {
  const rng = rngFor('consistency');
  const originRng = rngFor('consistency-origin');
  const n = iters(700);
  let verified = 0;
  for (let i = 0; i < n; i++) {
    const c = rng.pick(CONSISTENCY);
    const origin = pickOrigin(originRng, c.log);
    const key = c.log.key;
    const fx = { allowedKeys: usableKeys(key), signerKeys: [key.vkey, witness.vkey] };
    /** @type {NoteCtx} */
    const ctx = { pinned: [key], key, resign: ['root'] };
    const target = rng.pick(['old', 'new', 'proof', 'proof', 'keys']);
    const asValue = rng.chance(0.3);
    let { oldNote, newNote, proofText } = c;
    /** @type {string | string[]} */
    let keys = key.vkey;
    let how;
    if (target === 'old') ({ text: oldNote, how } = mutateNote(rng, c.oldNote, ctx));
    else if (target === 'new') ({ text: newNote, how } = mutateNote(rng, c.newNote, ctx));
    else if (target === 'proof') ({ text: proofText, how } = mutateJson(rng, c.proofText, null));
    else ({ keys, how } = mutateKeys(rng, key.vkey));

    // The proof: the hashes, as a list or as {from, to, proof} with the
    // checkpoints' sizes.
    const proof = argument(proofText, asValue, (v) => (Array.isArray(v)
      ? isDeepStrictEqual(v, c.proof)
      : isObject(v) && sameKeys(v, ['from', 'to', 'proof']) && Object.is(v.from, c.from) && Object.is(v.to, c.to)
        && isDeepStrictEqual(v.proof, c.proof)));
    const expected = noteMeans(oldNote, c.oldNote, ctx.pinned) && noteMeans(newNote, c.newNote, ctx.pinned)
      && proof.ok && keysMean(keys, fx) && originMeans(origin, c.log);
    await fuzzCase('consistency', i, `${c.from}->${c.to} ${target}${asValue ? ' as value' : ''}: ${how}`,
      { oldNote, newNote, proof: proof.arg, keys, origin },
      async () => {
        const call = origin === undefined
          ? () => verifyConsistencyProof(oldNote, newNote, /** @type {any} */ (proof.arg), keys)
          : () => verifyConsistencyProof(oldNote, newNote, /** @type {any} */ (proof.arg), keys, origin);
        if (await verdict(call, CONSISTENCY_STEPS, expected)) verified++;
      });
  }
  t.diagnostic(`${n} mutants, ${verified} meant the same and verified`);
  assert.ok(verified > n / 20 && verified < n - n / 4, `${verified} of ${n} verified`);
});

test('fuzz: payloads against their records', { timeout: 60_000 }, async (t) => {
  const rng = rngFor('payloads');
  const n = iters(400);
  let verified = 0;
  for (let i = 0; i < n; i++) {
    const k = rng.int(4);
    const payload = payloadOf(k);
    const recordText = JSON.stringify(evidenceRecord(k));
    let bytes = payload;
    let text = recordText;
    let how;
    if (rng.chance(0.3)) {
      const b = payload.slice();
      const r = rng.int(4);
      if (r === 0) b[rng.int(b.length)] ^= 1 << rng.int(8);
      bytes = r === 0 ? b : r === 1 ? b.slice(0, rng.int(b.length)) : r === 2 ? Buffer.concat([b, rng.bytes(1 + rng.int(3))]) : b;
      how = ['bit flipped', 'truncated', 'extended', 'unchanged'][r];
    } else {
      ({ text, how } = mutateJson(rng, recordText, null));
    }
    const asValue = rng.chance(0.3);
    const same = bytes.length === payload.length && Buffer.compare(Buffer.from(bytes), Buffer.from(payload)) === 0;
    const record = argument(text, asValue, (v) => validEvidence(v) && v.size === payload.length && v.sha256 === hex(sha256Sync(payload)));
    const arg = rng.chance(0.3) ? new Uint8Array(bytes).buffer : new Uint8Array(bytes);
    await fuzzCase('payloads', i, `payload ${k}: ${how}`, { bytes, record: record.arg }, async () => {
      if (await verdict(() => verifyPayload(arg, record.arg), PAYLOAD_STEPS, same && record.ok)) verified++;
    });
  }
  t.diagnostic(`${n} mutants, ${verified} verified`);
  assert.ok(verified > 0 && verified < n);
});

// ---------------------------------------------------------------------------
// The parsers

/**
 * Why json.js refuses text that JSON.parse accepts, or null: a duplicate
 * member name; a number with a fraction or exponent, beyond 2^53-1, or -0
 * (serde_json reads -0 as a float); a lone surrogate, raw or escaped, or a
 * pair whose halves are written differently (one raw, one \u-escaped: a raw
 * lone half has no UTF-8 form, so no server sent it); a value nested in
 * more than 128 arrays and objects (serde_json's limit). Written from the
 * grammar, apart from json.js; only for valid JSON.
 * @param {string} text  JSON.parse accepts it
 * @returns {string | null}
 */
function refusedByDesign(text) {
  /** @type {Set<string>[]} a set of names for an object, null-like for an array */
  const open = [];
  const kinds = /** @type {string[]} */ ([]);
  let i = 0;
  const skipWs = (/** @type {number} */ k) => {
    while (k < text.length && ' \t\n\r'.includes(text[k])) k++;
    return k;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // Code units with how each was written (raw or escaped).
      /** @type {{u: number, esc: boolean}[]} */
      const units = [];
      let j = i + 1;
      while (text[j] !== '"') {
        if (text[j] === '\\') {
          if (text[j + 1] === 'u') {
            units.push({ u: parseInt(text.slice(j + 2, j + 6), 16), esc: true });
            j += 6;
          } else {
            units.push({ u: JSON.parse(`"${text.slice(j, j + 2)}"`).charCodeAt(0), esc: true });
            j += 2;
          }
        } else {
          units.push({ u: text.charCodeAt(j), esc: false });
          j++;
        }
      }
      for (let k = 0; k < units.length; k++) {
        const { u, esc } = units[k];
        const hi = u >= 0xd800 && u <= 0xdbff;
        const lo = u >= 0xdc00 && u <= 0xdfff;
        if (hi) {
          const next = units[k + 1];
          if (!next || next.u < 0xdc00 || next.u > 0xdfff || next.esc !== esc) return 'lone surrogate';
          k++;
        } else if (lo) {
          return 'lone surrogate';
        }
      }
      const name = String.fromCharCode(...units.map((x) => x.u));
      const isName = kinds.at(-1) === '{' && text[skipWs(j + 1)] === ':';
      if (isName) {
        const names = open[open.length - 1];
        if (names.has(name)) return 'duplicate member';
        names.add(name);
      } else if (open.length > 128) {
        return 'too deep';
      }
      i = j + 1;
    } else if (c === '{' || c === '[') {
      if (open.length > 128) return 'too deep';
      open.push(new Set());
      kinds.push(c);
      i++;
    } else if (c === '}' || c === ']') {
      open.pop();
      kinds.pop();
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const tok = /** @type {RegExpExecArray} */ (/^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i)))[0];
      if (open.length > 128) return 'too deep';
      if (/[.eE]/.test(tok)) return 'not an integer';
      if (tok === '-0') return '-0';
      if (!Number.isSafeInteger(Number(tok))) return 'beyond 2^53-1';
      i += tok.length;
    } else if (c === 't' || c === 'f' || c === 'n') {
      if (open.length > 128) return 'too deep';
      i += c === 'f' ? 5 : 4;
    } else {
      i++; // white space, ',' and ':'
    }
  }
  return null;
}

/**
 * The differential check of one text: parseJson accepts exactly what
 * JSON.parse accepts minus what it refuses by design, with an equal value,
 * and fails only with its own error.
 * @param {string} text
 */
function checkJson(text) {
  let ref;
  let refOk = true;
  try {
    ref = JSON.parse(text);
  } catch {
    refOk = false;
  }
  let got;
  let gotOk = true;
  try {
    got = parseJson(text);
  } catch (e) {
    gotOk = false;
    assert.ok(e instanceof VerifyError && e.code === 'json', `threw ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(e.message.length > 0);
  }
  const reason = refOk ? refusedByDesign(text) : 'not JSON';
  assert.equal(gotOk, reason === null, `JSON.parse ${refOk ? 'accepts' : 'refuses'}, refused by design: ${reason}; parseJson ${gotOk ? 'accepts' : 'refuses'}`);
  if (gotOk) {
    assert.ok(isDeepStrictEqual(got, ref), `parseJson gives ${show(got)}, JSON.parse ${show(ref)}`);
    // What it accepts, it accepts as the value it is (re-encoded: the same text).
    assert.equal(JSON.stringify(got), JSON.stringify(ref));
  }
  return { refOk, gotOk, value: got };
}

test('fuzz: parseJson against JSON.parse', { timeout: 120_000 }, async (t) => {
  const rng = rngFor('json');
  const n = iters(6000);
  const seeds = [...BUNDLES.map((b) => b.text), ...BUNDLES.map((b) => b.recordText), ...CONSISTENCY.map((c) => c.proofText)];
  const tally = { accepted: 0, refusedByDesign: 0, notJson: 0 };
  for (let i = 0; i < n; i++) {
    let text;
    let how;
    const r = rng.int(10);
    if (r < 3) {
      // A random value, written validly, sometimes in forms refused by design.
      const v = randomValue(rng, 0);
      const o = { shuffle: true, escape: rng.pick([0, 0.1, 0.5]), space: rng.pick([0, 0.2]), altNumbers: rng.pick([0, 0.2]), duplicates: rng.pick([0, 0.1]) };
      text = writeJson(rng, v, o);
      how = `random value ${JSON.stringify(o)}`;
      if (rng.chance(0.4)) ({ text, how } = mutateText(rng, text));
    } else if (r < 8) {
      ({ text, how } = mutateJson(rng, rng.pick(seeds), null));
      if (rng.chance(0.3)) {
        const m = mutateText(rng, text);
        text = m.text;
        how += `; ${m.how}`;
      }
    } else if (r < 9) {
      // Around the depth limit.
      const d = 125 + rng.int(8);
      const [o, c] = rng.pick([['[', ']'], ['{"a":', '}'], ['[{"b":', '}]']]);
      const inner = rng.pick(['', '0', '"x"', '[]', '{}', 'null']);
      text = o.repeat(d) + inner + c.repeat(d);
      if (inner === '' && o !== '[') text = '[]';
      how = `nested ${d} x ${o} around ${JSON.stringify(inner)}`;
    } else {
      // Token soup.
      text = Array.from({ length: rng.int(12) }, () => rng.pick([...FRAGMENTS, '"a"', '1', '{}', '[]', '"', ':'])).join('');
      how = 'token soup';
    }
    await fuzzCase('json', i, how, { text }, () => {
      const { refOk, gotOk } = checkJson(text);
      if (gotOk) tally.accepted++;
      else if (refOk) tally.refusedByDesign++;
      else tally.notJson++;
    });
  }
  // Round trips of generated values: strict text in, the same value out.
  for (let i = 0; i < iters(1000); i++) {
    const v = randomValue(rng, 0);
    const text = JSON.stringify(v);
    await fuzzCase('json round trip', i, 'JSON.stringify of a random value', { text }, () => {
      const { gotOk, value } = checkJson(text);
      if (gotOk) {
        assert.ok(isDeepStrictEqual(value, v));
        let canon;
        try {
          canon = canonicalize(value);
        } catch (e) {
          assert.ok(e instanceof VerifyError);
          return;
        }
        assert.ok(isDeepStrictEqual(parseJson(canon), value));
        assert.equal(canonicalize(parseJson(canon)), canon);
      }
    });
  }
  t.diagnostic(`${n} texts: ${tally.accepted} accepted, ${tally.refusedByDesign} refused by design, ${tally.notJson} not JSON`);
  assert.ok(tally.accepted > n / 10 && tally.refusedByDesign > n / 50 && tally.notJson > n / 10, JSON.stringify(tally));
});

test('fuzz: base64 and hex against Buffer', { timeout: 60_000 }, async (t) => {
  const rng = rngFor('base64');
  const n = iters(6000);
  let accepted = 0;
  const valid = Array.from({ length: 40 }, (_, i) => toB64(rng.bytes(i)));
  const ALPHABET = ['A', 'Q', 'g', 'w', 'z', '0', '9', '+', '/', '=', '==', '-', '_', ' ', '\n', '\u00e9', '\ud800', '\u0000', 'AAAA'];
  for (let i = 0; i < n; i++) {
    // Round trip of bytes.
    const bytes = rng.bytes(rng.int(70));
    const enc = b64encode(bytes);
    assert.equal(enc, toB64(bytes), `b64encode of ${hex(bytes)}`);
    assert.deepEqual(b64decode(enc), bytes);
    assert.equal(hexEncode(bytes), hex(bytes));
    assert.deepEqual(hexDecode(hex(bytes)), bytes);

    // Strings near and far from canonical base64.
    let s;
    let how;
    if (rng.chance(0.6)) {
      ({ text: s, how } = mutateText(rng, rng.pick(valid)));
    } else {
      s = Array.from({ length: rng.int(14) }, () => rng.pick(ALPHABET)).join('');
      how = 'random';
    }
    await fuzzCase('base64', i, how, { s }, () => {
      const got = b64decode(s);
      assert.equal(got !== null, isCanonicalB64(s), `b64decode ${got ? 'accepts' : 'refuses'}`);
      if (got) {
        assert.deepEqual(got, new Uint8Array(Buffer.from(s, 'base64')));
        assert.equal(b64encode(got), s);
        accepted++;
      }
      const h = hexDecode(s.toLowerCase());
      assert.equal(h !== null, /^(?:[0-9a-f]{2})*$/.test(s.toLowerCase()));
      if (h) assert.equal(hexEncode(h), s.toLowerCase());
    });
  }
  t.diagnostic(`${n} strings, ${accepted} canonical base64`);
  assert.ok(accepted > n / 20);
});

/**
 * C2SP tlog-checkpoint, written out apart from note.js: origin, decimal
 * size (no leading zero, at most 2^64-1), canonical base64 of 32 bytes,
 * non-empty extension lines; each line ends in newline and holds no
 * control character.
 * @param {string} text
 */
function checkpointSpec(text) {
  if (LONE_SURROGATE.test(text) || !text.endsWith('\n')) return null;
  const lines = text.slice(0, -1).split('\n');
  if (lines.some((l) => /[\u0000-\u001f]/.test(l)) || lines.length < 3) return null;
  const [origin, size, root, ...extensions] = lines;
  if (origin === '' || !/^(0|[1-9][0-9]*)$/.test(size) || BigInt(size) >= 2n ** 64n) return null;
  if (!isCanonicalB64(root) || Buffer.from(root, 'base64').length !== 32) return null;
  if (extensions.some((e) => e === '')) return null;
  return { origin, size: BigInt(size), root: new Uint8Array(Buffer.from(root, 'base64')), extensions };
}

/**
 * A verifier key `<name>+<8 hex digits>+<base64(type || key)>`, written out
 * apart from note.js; the key ID must be the key's.
 * @param {string} text
 */
function keySpec(text) {
  const a = text.indexOf('+');
  const b = a < 0 ? -1 : text.indexOf('+', a + 1);
  if (b < 0) return null;
  const [name, id, data] = [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1)];
  if (!isKeyName(name) || !/^[0-9a-fA-F]{8}$/.test(id) || !isCanonicalB64(data) || data === '') return null;
  const raw = Buffer.from(data, 'base64');
  if (Buffer.from(sha256Sync(utf8(name), Uint8Array.of(0x0a), raw)).readUInt32BE(0) !== parseInt(id, 16)) return null;
  return { name, keyId: parseInt(id, 16), alg: raw[0], publicKey: new Uint8Array(raw.subarray(1)) };
}

test('fuzz: parseCheckpoint against the checkpoint format', { timeout: 60_000 }, async (t) => {
  const rng = rngFor('checkpoint');
  const n = iters(4000);
  const root = toB64(sha256Sync(utf8('root')));
  const seeds = [
    checkpointText(ORIGIN, 11, sha256Sync(utf8('r'))),
    checkpointText('o', 0, sha256Sync()),
    `${ORIGIN}\n18446744073709551615\n${root}\n`,
    `${ORIGIN}\n5\n${root}\next one\n\u2014 not a signature\n`,
    `\u00e9\u{1f600} origin with spaces\n1\n${root}\n`,
  ];
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    const seed = rng.pick(seeds);
    let { text, how } = mutateText(rng, seed);
    if (rng.chance(0.3)) {
      const lines = seed.slice(0, -1).split('\n');
      const k = rng.int(lines.length);
      lines[k] = rng.pick(['', '0', '00', '01', '-1', '+1', ' 1', '1 ', '1e3', '18446744073709551616', '\u0661',
        root.replace(/=$/, ''), `${root}=`, toB64(new Uint8Array(31)), toB64(new Uint8Array(33)), root.replace(/A/g, 'B'), 'x']);
      text = `${lines.join('\n')}\n`;
      how = `line ${k} -> ${JSON.stringify(lines[k])}`;
    }
    await fuzzCase('checkpoint', i, how, { text }, () => {
      const spec = checkpointSpec(text);
      let got = null;
      try {
        got = parseCheckpoint(text);
      } catch (e) {
        assert.ok(e instanceof VerifyError && e.code.startsWith('checkpoint-'), `threw ${e instanceof Error ? e.stack : String(e)}`);
      }
      assert.equal(got !== null, spec !== null, `parseCheckpoint ${got ? 'accepts' : 'refuses'}`);
      if (got) {
        accepted++;
        assert.deepEqual(got, spec);
        // What it accepts re-encodes to the same text.
        assert.equal(`${got.origin}\n${got.size}\n${b64encode(got.root)}\n${got.extensions.map((e) => `${e}\n`).join('')}`, text);
      }
    });
  }
  t.diagnostic(`${n} texts, ${accepted} checkpoints`);
  assert.ok(accepted > n / 20);
});

test('fuzz: parseVerifierKey against the key format', { timeout: 60_000 }, async (t) => {
  const rng = rngFor('keys');
  const n = iters(2500);
  const seeds = [logKey.vkey, auditKey.vkey, witness.vkey, mldsaKey(ORIGIN), cosigKey, vkeyOf('\u00e9', 0x01, new Uint8Array(32))];
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    const seed = rng.pick(seeds);
    const m = rng.chance(0.5) ? mutateText(rng, seed) : (() => {
      const k = mutateKeys(rng, seed);
      return { text: Array.isArray(k.keys) ? k.keys.join('\n') : k.keys, how: k.how };
    })();
    const text = m.text;
    await fuzzCase('verifier key', i, m.how, { text }, async () => {
      const spec = keySpec(text);
      /** @type {import('../public/js/verify/note.js').VerifierKey | null} */
      let got = null;
      try {
        got = await parseVerifierKey(text);
      } catch (e) {
        assert.ok(e instanceof VerifyError && e.code.startsWith('key-'), `threw ${e instanceof Error ? e.stack : String(e)}`);
      }
      assert.equal(got !== null, spec !== null, `parseVerifierKey ${got ? 'accepts' : 'refuses'}`);
      if (got && spec) {
        accepted++;
        assert.deepEqual({ name: got.name, keyId: got.keyId, alg: got.alg, publicKey: got.publicKey }, spec);
        assert.equal(`${got.name}+${got.keyId.toString(16).padStart(8, '0')}+${b64encode(Uint8Array.of(got.alg, ...got.publicKey))}`, text.replace(/\+[0-9A-F]{8}\+/i, (h) => h.toLowerCase()));
      }
      // The Ed25519 reader takes a subset: type 0x01, 32 bytes.
      try {
        await parseEd25519VerifierKey(text);
        assert.ok(spec && spec.alg === 0x01 && spec.publicKey.length === 32, 'parseEd25519VerifierKey accepts');
      } catch (e) {
        assert.ok(e instanceof VerifyError && e.code.startsWith('key-'), `threw ${e instanceof Error ? e.stack : String(e)}`);
      }
    });
  }
  t.diagnostic(`${n} texts, ${accepted} keys`);
  assert.ok(accepted > n / 20);
});

test('fuzz: openNote against the signed-note rules', { timeout: 60_000 }, async (t) => {
  const rng = rngFor('notes');
  const n = iters(1500);
  const verifiers = new Verifiers();
  verifiers.add(await parseEd25519VerifierKey(logKey.vkey));
  /** @type {NoteCtx} */
  const ctx = { pinned: [logKey], key: logKey, resign: [] };
  const notes = [LOGS.evidence.note(11), LOGS.evidence.note(1), signNote(`${ORIGIN}\n3\n${toB64(new Uint8Array(32))}\next\n`, [witness, logKey])];
  let opened = 0;
  for (let i = 0; i < n; i++) {
    const note = rng.pick(notes);
    const { text, how } = mutateNote(rng, note, ctx);
    await fuzzCase('note', i, how, { text }, async () => {
      const expected = noteMeans(text, note, ctx.pinned);
      let got = null;
      try {
        got = await openNote(text, verifiers);
      } catch (e) {
        assert.ok(e instanceof VerifyError && e.code.startsWith('note-'), `threw ${e instanceof Error ? e.stack : String(e)}`);
      }
      assert.equal(got !== null, expected, `openNote ${got ? 'opens' : 'refuses'} it`);
      if (got) {
        opened++;
        assert.equal(got.text, noteBody(note));
        assert.deepEqual(got.verified.map((s) => s.name), [logKey.name]);
      }
    });
  }
  t.diagnostic(`${n} notes, ${opened} opened`);
  assert.ok(opened > n / 20 && opened < n - n / 4);
});
