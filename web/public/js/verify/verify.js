// What the dashboard calls: proof bundles, consistency proofs and payloads,
// verified step by step in the browser. Each function returns an Outcome
// listing the steps it ran, in order, up to the first failure; none of them
// throws (an exception inside a step is that step's failure).
//
// Ported from crates/verify/src/{bundle.rs,consistency.rs}; the checks are
// the Rust verifier's, split into steps a person can follow.

import { b64decode, hexEncode } from './bytes.js';
import { VerifyError } from './errors.js';
import { parseJson } from './json.js';
import { auditLeafData, checkAuditEvent, checkEvidenceRecord, evidenceLeafData } from './leaf.js';
import { canonicalize } from './jcs.js';
import { leafHash, verifyConsistency, verifyInclusion } from './merkle.js';
import {
  ALG_COSIGNATURE_V1, ALG_ED25519, ALG_MLDSA44, Verifiers, keyIdHex, openNote,
  parseCheckpoint, parseEd25519VerifierKey, parseVerifierKey,
} from './note.js';
import { sha256 } from './sha256.js';

/** @typedef {{name: string, ok: boolean, detail: string}} Step */
/** @typedef {{origin: string, size: bigint, root: Uint8Array, text: string}} Checkpoint */
/** @typedef {{ok: boolean, steps: Step[], failed: string|null, checkpoint: Checkpoint|null}} Outcome */

/** Runs named steps in order and stops at the first that fails. */
class Run {
  constructor() {
    /** @type {Step[]} */
    this.steps = [];
    /** @type {string | null} */
    this.failed = null;
    /** @type {Checkpoint | null} */
    this.checkpoint = null;
  }

  /**
   * Runs `fn` as step `name` unless a step failed already. `fn` returns the
   * success detail; whatever it throws becomes the failure detail.
   * @param {string} name
   * @param {() => Promise<string> | string} fn
   */
  async step(name, fn) {
    if (this.failed !== null) return;
    try {
      const detail = await fn();
      this.steps.push({ name, ok: true, detail });
    } catch (e) {
      this.fail(name, e);
    }
  }

  /**
   * @param {string} name
   * @param {unknown} e  an Error (its message is shown) or a sentence
   */
  fail(name, e) {
    if (this.failed !== null) return;
    const detail = e instanceof Error ? e.message : String(e);
    this.steps.push({ name, ok: false, detail: detail || 'failed' });
    this.failed = name;
  }

  /** @returns {Outcome} */
  outcome() {
    return {
      ok: this.failed === null && this.steps.length > 0,
      steps: this.steps,
      failed: this.failed,
      checkpoint: this.checkpoint,
    };
  }
}

/**
 * JSON given as text is parsed strictly (see json.js); an object is taken
 * as it is (its numbers are checked where they are read).
 * @param {unknown} value
 * @param {string} what
 */
function jsonValue(value, what) {
  if (typeof value !== 'string') return value;
  try {
    return parseJson(value);
  } catch (e) {
    throw new VerifyError('json', `${what} is ${e instanceof Error ? e.message : 'not valid JSON'}`);
  }
}

/**
 * @param {unknown} v
 * @param {string} what  e.g. "the proof bundle's leaf_index"
 */
function safeIndex(v, what) {
  // -0 too: serde refuses it as a float (JSON.parse turns "-0" into it).
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || Object.is(v, -0)) {
    throw new VerifyError('bundle', `${what} is not an integer from 0 to 2^53-1`);
  }
  return BigInt(v);
}

/**
 * The bundle's members, checked like the Rust `ProofBundle` reads them
 * (strict: no unknown members).
 * @param {unknown} raw
 */
function checkBundle(raw) {
  const b = jsonValue(raw, 'the proof bundle');
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw new VerifyError('bundle', 'the proof bundle is not a JSON object');
  }
  const obj = /** @type {Record<string, unknown>} */ (b);
  const known = ['record', 'leaf_index', 'tree_size', 'inclusion_proof', 'checkpoint'];
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      throw new VerifyError('bundle', `the proof bundle has a member this verifier does not know: ${JSON.stringify(k)}`);
    }
  }
  for (const k of known) {
    if (!Object.prototype.hasOwnProperty.call(obj, k)) {
      throw new VerifyError('bundle', `the proof bundle has no "${k}"`);
    }
  }
  const proof = obj.inclusion_proof;
  if (!Array.isArray(proof) || !proof.every((p) => typeof p === 'string')) {
    throw new VerifyError('bundle', 'the proof bundle\'s inclusion_proof is not a list of base64 strings');
  }
  if (typeof obj.checkpoint !== 'string') {
    throw new VerifyError('bundle', 'the proof bundle\'s checkpoint is not text');
  }
  return {
    record: obj.record,
    leafIndex: safeIndex(obj.leaf_index, "the proof bundle's leaf_index"),
    treeSize: safeIndex(obj.tree_size, "the proof bundle's tree_size"),
    inclusionProof: /** @type {string[]} */ (proof),
    checkpoint: obj.checkpoint,
  };
}

/**
 * Proof hashes from base64; element i that is not base64 of 32 bytes is
 * named (bundle.rs BadProofEncoding).
 * @param {string[]} list
 * @param {string} what
 */
function decodeHashes(list, what) {
  return list.map((p, i) => {
    const h = b64decode(p);
    if (!h || h.length !== 32) {
      throw new VerifyError('proof-encoding', `${what} element ${i} is not a base64 SHA-256 hash`);
    }
    return h;
  });
}

/**
 * Pinned keys: strings or lists of strings, one key per line (blank lines
 * and surrounding spaces ignored, as `evault verify --key` reads a file).
 * @param {unknown} keys
 * @returns {Promise<{verifiers: Verifiers, detail: string}>}
 */
async function loadKeys(keys) {
  const list = typeof keys === 'string' ? [keys] : keys;
  if (!Array.isArray(list)) throw new VerifyError('key', 'the pinned keys are not a list of key texts');
  /** @type {string[]} */
  const texts = [];
  for (const k of list) {
    if (typeof k !== 'string') throw new VerifyError('key', 'a pinned key is not text');
    for (const line of k.split('\n')) {
      const t = line.trim();
      if (t !== '' && !texts.includes(t)) texts.push(t);
    }
  }
  if (texts.length === 0) throw new VerifyError('key', 'no verifier key is pinned for this log');
  const verifiers = new Verifiers();
  /** @type {string[]} */
  const ignored = [];
  for (const text of texts) {
    let k;
    try {
      k = await parseVerifierKey(text);
      if (k.alg === ALG_MLDSA44) {
        // The vault may sign with ML-DSA-44 beside Ed25519; the browser
        // checks the Ed25519 line, and the ML-DSA line is skipped.
        ignored.push(`${k.name}+${keyIdHex(k.keyId)}`);
        continue;
      }
      if (k.alg === ALG_COSIGNATURE_V1) {
        throw new VerifyError('key', "it is a witness's cosignature key, not a log's key");
      }
      if (k.alg !== ALG_ED25519) {
        throw new VerifyError('key', `its signature type 0x${k.alg.toString(16).padStart(2, '0')} is not Ed25519`);
      }
      verifiers.add(await parseEd25519VerifierKey(text));
    } catch (e) {
      const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
      throw new VerifyError('key', `the pinned key ${shown} is not usable: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (verifiers.size === 0) {
    throw new VerifyError('key', 'no Ed25519 key is pinned (ML-DSA-44 keys are not checked in the browser)');
  }
  let detail = `using ${verifiers.size === 1 ? 'the pinned key' : `${verifiers.size} pinned keys`} ${verifiers.names().join(', ')}`;
  if (ignored.length) detail += `; ML-DSA-44 key ${ignored.join(', ')} not checked in the browser`;
  return { verifiers, detail };
}

/**
 * Opens a checkpoint note, turning the note errors into sentences.
 * @param {string} note
 * @param {Verifiers} verifiers
 * @param {string} what  e.g. "the checkpoint"
 */
async function openSigned(note, verifiers, what) {
  try {
    return await openNote(note, verifiers);
  } catch (e) {
    if (e instanceof VerifyError && e.code === 'note-unverified') {
      const sigs = /** @type {{name: string, keyId: number}[]} */ (e.data.unverified ?? []);
      const by = sigs.map((s) => `${s.name}+${keyIdHex(s.keyId)}`).join(', ');
      throw new VerifyError('signature', `${what} is not signed by a pinned key${by ? `; it is signed by ${by}` : ''}`);
    }
    if (e instanceof VerifyError && e.code === 'note-invalid-signature') {
      throw new VerifyError('signature', `${what} carries an ${e.message}: it was altered or forged`);
    }
    throw new VerifyError('signature', `${what} is not a valid signed note: ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * @param {import('./note.js').Note} note
 */
function signers(note) {
  return note.verified.map((s) => `${s.name}+${keyIdHex(s.keyId)}`).join(', ');
}

/**
 * @param {string} text
 * @param {string} what
 */
function parseBody(text, what) {
  try {
    return parseCheckpoint(text);
  } catch (e) {
    throw new VerifyError('checkpoint', `${what} is signed but ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * The origin check of bundle.rs/consistency.rs `open_checkpoint`: with an
 * expected origin (the pinned one), a checkpoint of any other log is
 * refused, however well it is signed.
 * @param {import('./note.js').CheckpointBody} body
 * @param {unknown} origin  the expected origin, or null/undefined for any
 * @param {string} what  e.g. "the checkpoint"
 */
function checkOrigin(body, origin, what) {
  if (origin === null || origin === undefined) return;
  if (typeof origin !== 'string') {
    throw new VerifyError('checkpoint', 'the pinned origin of this log is not text');
  }
  if (body.origin !== origin) {
    const which = what === 'the checkpoint' ? '' : `${what} is a `;
    throw new VerifyError(
      'checkpoint',
      `${which}checkpoint of ${JSON.stringify(body.origin)}, but this log is ${JSON.stringify(origin)}`,
    );
  }
}

/**
 * Verifies a proof bundle: the record's leaf is in the tree a pinned key
 * signed.
 *
 * kind: 'evidence' | 'audit'. bundle: the JSON proof bundle from
 * GET /api/v1/evidence/{id}/proof or GET /api/v1/audit/events/{id}/proof
 * ({record, leaf_index, tree_size, inclusion_proof, checkpoint}), as an
 * object or as the response text (preferred: text is parsed strictly, so
 * an integer above 2^53-1 is refused instead of rounded).
 * fetched: the record/event as fetched separately (GET /api/v1/evidence/{id}
 * or /api/v1/audit/events/{id}), object or text, or null to skip that step.
 * keys: verifier keys in note text format (the user's pinned keys), a
 * string or a list; the checkpoint must carry a valid Ed25519 signature by
 * at least one of them.
 * origin: the log's pinned origin, or null (or left out) to accept any;
 * when given, the checkpoint must be of that log (bundle.rs WrongOrigin).
 *
 * Steps, in order, stopping at the first failure: 'record' (bundle.record
 * equals fetched; only when fetched != null), 'leaf' (leaf data recomputed
 * from bundle.record, strict), 'key' (the keys parse), 'signature'
 * (checkpoint note opens with one of the keys), 'checkpoint' (checkpoint
 * parses; its origin is `origin` when one is given; its size equals
 * bundle.tree_size; leaf_index < size), 'inclusion'
 * (RFC 9162 inclusion of the leaf hash at leaf_index against the
 * checkpoint root). A bundle that is not a valid bundle at all fails the
 * first step. `checkpoint` in the outcome is set once the checkpoint's
 * signature verified and its body parsed.
 *
 * @param {'evidence' | 'audit'} kind
 * @param {unknown} bundle
 * @param {unknown} fetched
 * @param {string | string[]} keys
 * @param {string | null} [origin]
 * @returns {Promise<Outcome>}
 */
export async function verifyProofBundle(kind, bundle, fetched, keys, origin = null) {
  const run = new Run();
  try {
    const first = fetched != null ? 'record' : 'leaf';
    if (kind !== 'evidence' && kind !== 'audit') {
      run.fail(first, `unknown kind of proof ${JSON.stringify(kind)} (want evidence or audit)`);
      return run.outcome();
    }
    const what = kind === 'evidence' ? 'record' : 'event';
    const check = kind === 'evidence' ? checkEvidenceRecord : checkAuditEvent;
    /** @type {ReturnType<typeof checkBundle>} */
    let b;
    try {
      b = checkBundle(bundle);
    } catch (e) {
      run.fail(first, e);
      return run.outcome();
    }

    if (fetched != null) {
      await run.step('record', () => {
        const mine = check(b.record, `the proof bundle's ${what}`);
        const theirs = check(jsonValue(fetched, `the fetched ${what}`), `the fetched ${what}`);
        // Equal as the Rust types compare them: absent labels equal {}, and
        // a null option equals an absent one.
        if (canonicalize(mine) !== canonicalize(theirs)) {
          throw new VerifyError('record', `the proof bundle is for a different ${what} than the one fetched`);
        }
        return `the proof bundle carries the ${what} fetched from the vault`;
      });
    }

    /** @type {Uint8Array} */
    let leaf = new Uint8Array(0);
    await run.step('leaf', async () => {
      const rec = check(b.record, `the proof bundle's ${what}`);
      if (BigInt(rec.leaf_index) !== b.leafIndex) {
        throw new VerifyError(
          'leaf',
          `the bundle's leaf index ${b.leafIndex} differs from the ${what}'s own ${rec.leaf_index}`,
        );
      }
      const data = kind === 'evidence' ? evidenceLeafData(rec) : auditLeafData(rec);
      leaf = await leafHash(data);
      return `leaf hash ${hexEncode(leaf)} recomputed from the ${what} (${data.length} bytes of canonical JSON)`;
    });

    /** @type {Verifiers} */
    let verifiers = new Verifiers();
    await run.step('key', async () => {
      const loaded = await loadKeys(keys);
      verifiers = loaded.verifiers;
      return loaded.detail;
    });

    /** @type {import('./note.js').Note | null} */
    let note = null;
    await run.step('signature', async () => {
      note = await openSigned(b.checkpoint, verifiers, 'the checkpoint');
      return `the checkpoint is signed by ${signers(note)}`;
    });

    /** @type {import('./note.js').CheckpointBody | null} */
    let cp = null;
    await run.step('checkpoint', () => {
      if (!note) throw new VerifyError('checkpoint', 'no signed checkpoint to read');
      const text = note.text;
      const body = parseBody(text, 'the checkpoint');
      cp = body;
      run.checkpoint = { origin: body.origin, size: body.size, root: body.root, text };
      checkOrigin(body, origin, 'the checkpoint');
      if (body.size !== b.treeSize) {
        throw new VerifyError(
          'checkpoint',
          `the bundle claims tree size ${b.treeSize} but the checkpoint is for ${body.size}`,
        );
      }
      if (b.leafIndex >= body.size) {
        throw new VerifyError('checkpoint', `leaf index ${b.leafIndex} is not below the tree size ${body.size}`);
      }
      return `checkpoint of ${body.origin} at tree size ${body.size}`;
    });

    await run.step('inclusion', async () => {
      const c = cp;
      if (!c) throw new VerifyError('inclusion', 'no checkpoint to check against');
      const proof = decodeHashes(b.inclusionProof, 'inclusion proof');
      try {
        await verifyInclusion(leaf, b.leafIndex, c.size, proof, c.root);
      } catch (e) {
        if (e instanceof VerifyError && e.code === 'root-mismatch') {
          throw new VerifyError('inclusion', "the inclusion proof does not lead to the checkpoint's root");
        }
        throw new VerifyError('inclusion', `inclusion proof: ${e instanceof Error ? e.message : e}`);
      }
      return `the ${what} is leaf ${b.leafIndex} of the ${c.size}-leaf tree the checkpoint signs`;
    });
  } catch (e) {
    // Not reached by design (every step catches); kept so nothing escapes.
    run.fail('internal', e);
  }
  return run.outcome();
}

/**
 * The proof argument: base64 strings, or the API's {from, to, proof}
 * reply (strict), whose sizes must then be the checkpoints'.
 * @param {unknown} raw
 * @returns {{hashes: string[], from: bigint | null, to: bigint | null}}
 */
function consistencyArg(raw) {
  const v = jsonValue(raw, 'the consistency proof');
  if (Array.isArray(v)) {
    if (!v.every((p) => typeof p === 'string')) {
      throw new VerifyError('proof', 'the consistency proof is not a list of base64 strings');
    }
    return { hashes: /** @type {string[]} */ (v), from: null, to: null };
  }
  if (typeof v === 'object' && v !== null) {
    const o = /** @type {Record<string, unknown>} */ (v);
    for (const k of Object.keys(o)) {
      if (!['from', 'to', 'proof'].includes(k)) {
        throw new VerifyError('proof', `the consistency proof has a member this verifier does not know: ${JSON.stringify(k)}`);
      }
    }
    const inner = consistencyArg(Array.isArray(o.proof) ? o.proof : null);
    return {
      hashes: inner.hashes,
      from: safeIndex(o.from, 'the consistency proof\'s "from"'),
      to: safeIndex(o.to, 'the consistency proof\'s "to"'),
    };
  }
  throw new VerifyError('proof', 'the consistency proof is not a list of base64 strings');
}

/**
 * Verifies that the newer checkpoint's tree extends the older one's: nothing
 * the older one committed to was removed or rewritten.
 *
 * oldNote, newNote: signed checkpoint notes (text). proof: the RFC 6962
 * consistency proof as base64 strings (or the API's {from, to, proof}).
 * keys: as for verifyProofBundle; both notes must open with one of them.
 * origin: the log's pinned origin, or null (or left out) to accept any;
 * when given, both checkpoints must be of that log.
 *
 * Steps: 'key', 'signature' (both notes open with one of the keys),
 * 'checkpoint' (both parse, both of `origin` when given, same origin, old
 * size <= new size),
 * 'consistency' (RFC 9162 consistency proof from old to new; equal sizes
 * need equal roots and an empty proof; an old size of 0 is refused, as RFC
 * 9162 does: the empty tree proves nothing, so there is nothing to check
 * yet). `checkpoint` in the outcome is the newer checkpoint.
 *
 * @param {string} oldNote
 * @param {string} newNote
 * @param {string[] | {from: number, to: number, proof: string[]}} proof
 * @param {string | string[]} keys
 * @param {string | null} [origin]
 * @returns {Promise<Outcome>}
 */
export async function verifyConsistencyProof(oldNote, newNote, proof, keys, origin = null) {
  const run = new Run();
  try {
    /** @type {Verifiers} */
    let verifiers = new Verifiers();
    await run.step('key', async () => {
      const loaded = await loadKeys(keys);
      verifiers = loaded.verifiers;
      return loaded.detail;
    });

    /** @type {import('./note.js').Note[]} */
    let notes = [];
    await run.step('signature', async () => {
      const o = await openSigned(oldNote, verifiers, 'the older checkpoint');
      const n = await openSigned(newNote, verifiers, 'the newer checkpoint');
      notes = [o, n];
      const a = signers(o);
      const c = signers(n);
      return a === c ? `both checkpoints are signed by ${a}` : `the older checkpoint is signed by ${a}, the newer by ${c}`;
    });

    /** @type {import('./note.js').CheckpointBody[]} */
    let cps = [];
    await run.step('checkpoint', () => {
      const o = parseBody(notes[0].text, 'the older checkpoint');
      const n = parseBody(notes[1].text, 'the newer checkpoint');
      cps = [o, n];
      run.checkpoint = { origin: n.origin, size: n.size, root: n.root, text: notes[1].text };
      checkOrigin(o, origin, 'the older checkpoint');
      checkOrigin(n, origin, 'the newer checkpoint');
      if (o.origin !== n.origin) {
        throw new VerifyError('checkpoint', `the checkpoints are of different logs: ${JSON.stringify(o.origin)} and ${JSON.stringify(n.origin)}`);
      }
      if (o.size > n.size) {
        throw new VerifyError(
          'checkpoint',
          `the older checkpoint has size ${o.size} but the newer only ${n.size}: the log shrank, or the two are the wrong way round`,
        );
      }
      return `two checkpoints of ${n.origin}, tree sizes ${o.size} and ${n.size}`;
    });

    await run.step('consistency', async () => {
      const [o, n] = cps;
      if (o.size === 0n) {
        throw new VerifyError('consistency', 'nothing to check yet: the older checkpoint is of the empty tree, which every tree extends');
      }
      const arg = consistencyArg(proof);
      if (arg.from !== null && (arg.from !== o.size || arg.to !== n.size)) {
        throw new VerifyError(
          'consistency',
          `the proof is from size ${arg.from} to ${arg.to} but the checkpoints are of sizes ${o.size} and ${n.size}`,
        );
      }
      const hashes = decodeHashes(arg.hashes, 'consistency proof');
      try {
        await verifyConsistency(o.size, n.size, hashes, o.root, n.root);
      } catch (e) {
        if (e instanceof VerifyError && e.code === 'root-mismatch') {
          throw new VerifyError(
            'consistency',
            o.size === n.size
              ? 'the two checkpoints are of the same size but have different roots: the log was rewritten (a fork)'
              : 'the newer tree does not extend the older one: the log was rewritten, or the proof is wrong',
          );
        }
        throw new VerifyError('consistency', `consistency proof: ${e instanceof Error ? e.message : e}`);
      }
      return o.size === n.size
        ? `both checkpoints sign the same tree of ${n.size} leaves`
        : `the tree of ${n.size} leaves extends the tree of ${o.size} leaves`;
    });
  } catch (e) {
    run.fail('internal', e);
  }
  return run.outcome();
}

/**
 * Verifies a downloaded payload against its evidence record.
 * Step 'payload': SHA-256 and size of the bytes equal the record's.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @param {unknown} record  the evidence record, object or text
 * @returns {Promise<Outcome>}
 */
export async function verifyPayload(bytes, record) {
  const run = new Run();
  await run.step('payload', async () => {
    const data = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
    if (!(data instanceof Uint8Array)) throw new VerifyError('payload', 'the payload is not bytes');
    const rec = checkEvidenceRecord(jsonValue(record, 'the record'));
    if (data.length !== rec.size) {
      throw new VerifyError('payload', `the payload is ${data.length} bytes but the record says ${rec.size}`);
    }
    const digest = hexEncode(await sha256(data));
    if (digest !== rec.sha256) {
      throw new VerifyError('payload', `the payload's SHA-256 is ${digest} but the record says ${rec.sha256}`);
    }
    return `the payload's SHA-256 and size (${data.length} bytes) match the record`;
  });
  return run.outcome();
}
