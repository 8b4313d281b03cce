// C2SP signed notes, verifier keys and tlog checkpoints, ported from
// crates/note/src/{key.rs,note.rs,checkpoint.rs} rule for rule.
//
// Only Ed25519 signatures (type 0x01) are verified here. Lines by any key
// not given (ML-DSA-44 lines, witness cosignatures, other logs' keys) are
// skipped, as C2SP signed-note requires.

import { b64decode, concat, isWellFormed, utf8Encode } from './bytes.js';
import { isValidPointEncoding, verifyEd25519 } from './ed25519.js';
import { VerifyError } from './errors.js';
import { sha256 } from './sha256.js';

/** Signature type bytes (C2SP signed-note). */
export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
export const ALG_MLDSA44 = 0x06;

/** Go's note.Open limit, which the Rust side uses too. */
export const MAX_SIGNATURES = 100;

const SIG_PREFIX = '\u2014 '; // em dash, space
const U64_MAX = (1n << 64n) - 1n;

/**
 * @typedef {{name: string, keyId: number, alg: number, publicKey: Uint8Array, text: string}} VerifierKey
 * A parsed verifier key `<name>+<key ID>+<base64(type || public key)>`.
 */
/**
 * @typedef {{name: string, keyId: number, base64: string}} NoteSignature
 * One signature line: key name, key ID and the base64 of key ID || signature.
 */
/**
 * @typedef {{text: string, verified: NoteSignature[], unverified: NoteSignature[]}} Note
 */
/**
 * @typedef {{origin: string, size: bigint, root: Uint8Array, extensions: string[]}} CheckpointBody
 */
/**
 * @typedef {{origin: string, size: bigint, root: Uint8Array, text: string, extensions: string[], verifiedBy: string[]}} OpenedCheckpoint
 */

const INVALID_NAME_CHAR = /[\p{White_Space}+\u0000-\u001f]/u;

/**
 * A key name is non-empty, with no Unicode white space, no '+' and no ASCII
 * control character (key.rs `is_valid_name`; Rust's char::is_whitespace is
 * the Unicode White_Space property).
 * @param {string} name
 */
export function isValidName(name) {
  return name.length > 0 && isWellFormed(name) && !INVALID_NAME_CHAR.test(name);
}

/**
 * `SHA-256(name || 0x0A || alg || public key)[:4]` as an unsigned 32-bit number.
 * @param {string} name
 * @param {number} alg
 * @param {Uint8Array} publicKey
 */
export async function keyId(name, alg, publicKey) {
  const h = await sha256(concat(utf8Encode(name), Uint8Array.of(0x0a, alg), publicKey));
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

/** @param {number} id */
export function keyIdHex(id) {
  return id.toString(16).padStart(8, '0');
}

/**
 * Parses `<name>+<key ID>+<base64(type || key)>` and checks the key ID
 * against the name and key data (key.rs `parse_verifier_key`, same order
 * of checks). The type and key length are left to the caller.
 * @param {string} text
 * @returns {Promise<VerifierKey>}
 */
export async function parseVerifierKey(text) {
  const bad = (/** @type {string} */ code, /** @type {string} */ msg) => new VerifyError(code, msg);
  if (typeof text !== 'string') throw bad('key-missing-field', 'the key is not text');
  const a = text.indexOf('+');
  const b = a < 0 ? -1 : text.indexOf('+', a + 1);
  if (b < 0) {
    throw bad('key-missing-field', 'malformed key: want <name>+<hex key ID>+<base64 key data>');
  }
  const name = text.slice(0, a);
  const hex = text.slice(a + 1, b);
  if (!isValidName(name)) {
    throw bad('key-invalid-name', 'invalid key name: must be non-empty, without spaces, \'+\' or control characters');
  }
  if (!/^[0-9a-fA-F]{8}$/.test(hex)) {
    throw bad('key-invalid-id', 'malformed key ID: want exactly 8 hexadecimal digits');
  }
  const data = b64decode(text.slice(b + 1));
  if (!data) throw bad('key-invalid-base64', 'malformed key data: not standard base64');
  if (data.length === 0) throw bad('key-empty', 'malformed key data: empty');
  const declared = parseInt(hex, 16);
  const alg = data[0];
  const publicKey = data.slice(1);
  const computed = await keyId(name, alg, publicKey);
  if (computed !== declared) {
    throw bad(
      'key-id-mismatch',
      `key ID ${keyIdHex(declared)} does not match the key (computed ${keyIdHex(computed)})`,
    );
  }
  return { name, keyId: declared, alg, publicKey, text };
}

/**
 * Parses an Ed25519 verifier key (type 0x01, 32 bytes, a curve point), as
 * verifier.rs `Ed25519Verifier::from_verifier_key`.
 * @param {string} text
 * @returns {Promise<VerifierKey>}
 */
export async function parseEd25519VerifierKey(text) {
  const k = await parseVerifierKey(text);
  if (k.alg !== ALG_ED25519) {
    throw new VerifyError(
      'key-unsupported-alg',
      `unsupported key algorithm 0x${k.alg.toString(16).padStart(2, '0')} (want 0x01)`,
    );
  }
  if (k.publicKey.length !== 32) {
    throw new VerifyError('key-wrong-length', `wrong key length ${k.publicKey.length} (want 32)`);
  }
  if (!isValidPointEncoding(k.publicKey)) {
    throw new VerifyError('key-invalid-point', 'public key is not a valid Ed25519 point');
  }
  return k;
}

/**
 * A set of known Ed25519 keys, looked up by (name, key ID). Adding a second
 * key with the same pair is refused ("ambiguous key"), as verifier.rs does.
 */
export class Verifiers {
  constructor() {
    /** @type {Map<string, VerifierKey>} */
    this.byId = new Map();
  }

  /** @param {VerifierKey} key */
  add(key) {
    const id = `${key.name}+${keyIdHex(key.keyId)}`;
    if (this.byId.has(id)) throw new VerifyError('key-ambiguous', `ambiguous key ${id}`);
    this.byId.set(id, key);
  }

  /**
   * @param {string} name
   * @param {number} keyId
   */
  get(name, keyId) {
    return this.byId.get(`${name}+${keyIdHex(keyId)}`);
  }

  get size() {
    return this.byId.size;
  }

  /** `name+keyid` of every key, in the order added. */
  names() {
    return [...this.byId.keys()];
  }
}

/**
 * @param {number} line
 * @param {string} code
 * @param {string} what
 */
function malformed(line, code, what) {
  return new VerifyError(code, `malformed note: line ${line}: ${what}`);
}

/**
 * Opens a signed note (note.rs `open`): checks its form, verifies every
 * signature line by a known key, and skips lines by unknown keys.
 *
 * Throws VerifyError: `note-*` codes for a malformed note,
 * `note-invalid-signature` if a known key's signature does not verify
 * (C2SP: reject the whole note), `note-unverified` if no known key signed
 * it (the error's `data.unverified` lists the signatures it does carry).
 * @param {string} msg
 * @param {Verifiers} known
 * @returns {Promise<Note>}
 */
export async function openNote(msg, known) {
  if (typeof msg !== 'string') throw new VerifyError('note-not-text', 'malformed note: not text');
  // Valid UTF-8 (as a string: no lone surrogates), no ASCII control
  // character but newline.
  if (!isWellFormed(msg)) throw new VerifyError('note-not-utf8', 'malformed note: invalid UTF-8');
  const ctl = msg.search(/[\u0000-\u0009\u000b-\u001f]/);
  if (ctl >= 0) {
    const offset = utf8Encode(msg.slice(0, ctl)).length;
    throw new VerifyError('note-control-character', `malformed note: control character at byte offset ${offset}`);
  }
  // The text ends at the last blank line; the signature block follows.
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) {
    throw new VerifyError('note-missing-signature-block', 'malformed note: no blank line before signatures');
  }
  const text = msg.slice(0, split + 1);
  const sigs = msg.slice(split + 2);
  if (sigs === '') {
    throw new VerifyError('note-empty-signature-block', 'malformed note: no signature lines after blank line');
  }
  if (!sigs.endsWith('\n')) {
    throw new VerifyError('note-missing-final-newline', 'malformed note: last signature line does not end in newline');
  }
  const lines = sigs.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) {
    throw new VerifyError(
      'note-too-many-signatures',
      `malformed note: ${lines.length} signature lines (maximum ${MAX_SIGNATURES})`,
    );
  }

  /** @type {Note} */
  const note = { text, verified: [], unverified: [] };
  const textBytes = utf8Encode(text);
  const firstLine = text.split('\n').length - 1 + 2;
  const seenUnverified = new Set();
  const seenVerifiedLines = new Set();
  const verifiedKeys = new Set();

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const lineno = firstLine + i;
    if (!line.startsWith(SIG_PREFIX)) {
      throw malformed(lineno, 'note-missing-em-dash', 'signature line does not begin with "\u2014 "');
    }
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(' ');
    if (space < 0) throw malformed(lineno, 'note-missing-space', 'no space between key name and signature');
    const name = rest.slice(0, space);
    const sig64 = rest.slice(space + 1);
    if (!isValidName(name)) throw malformed(lineno, 'note-invalid-key-name', 'invalid key name');
    const raw = b64decode(sig64);
    if (!raw) throw malformed(lineno, 'note-bad-base64', 'signature is not base64');
    if (raw.length < 5) {
      throw malformed(lineno, 'note-signature-too-short', `signature is ${raw.length} bytes (minimum 5)`);
    }
    const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
    const signature = { name, keyId: id, base64: sig64 };

    const key = known.get(name, id);
    if (!key) {
      // Unknown key: skip it, but report it; identical lines once.
      if (!seenUnverified.has(line)) {
        seenUnverified.add(line);
        note.unverified.push(signature);
      }
      continue;
    }
    // Known key: every distinct signature by it must verify.
    if (seenVerifiedLines.has(line)) continue;
    seenVerifiedLines.add(line);
    if (!(await verifyEd25519(key.publicKey, textBytes, raw.subarray(4)))) {
      throw new VerifyError('note-invalid-signature', `invalid signature for key ${name}+${keyIdHex(id)}`);
    }
    const kid = `${name}+${keyIdHex(id)}`;
    if (!verifiedKeys.has(kid)) {
      verifiedKeys.add(kid);
      note.verified.push(signature);
    }
  }

  if (note.verified.length === 0) {
    throw new VerifyError('note-unverified', 'note has no verifiable signatures', {
      unverified: note.unverified,
    });
  }
  return note;
}

/**
 * Parses a C2SP tlog-checkpoint note text (checkpoint.rs `Checkpoint::parse`):
 * origin, decimal size without leading zeros, base64 32-byte root, then
 * optional non-empty extension lines, every line ending in newline.
 * @param {string} text
 * @returns {CheckpointBody}
 */
export function parseCheckpoint(text) {
  const bad = (/** @type {string} */ code, /** @type {string} */ what) =>
    new VerifyError(code, `malformed checkpoint: ${what}`);
  if (typeof text !== 'string' || !isWellFormed(text)) throw bad('checkpoint-not-utf8', 'invalid UTF-8');
  if (!text.endsWith('\n')) throw bad('checkpoint-missing-final-newline', 'does not end in newline');
  const lines = text.slice(0, -1).split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (/[\u0000-\u001f]/.test(lines[i])) throw bad('checkpoint-control-character', `line ${i + 1}: control character`);
  }
  if (lines.length < 3) {
    throw bad('checkpoint-too-few-lines', `${lines.length} lines, want at least origin, size and root hash`);
  }
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === '') throw bad('checkpoint-empty-origin', 'empty origin');
  if (sizeText === '') throw bad('checkpoint-empty-size', 'empty tree size');
  if (!/^[0-9]+$/.test(sizeText)) throw bad('checkpoint-size-not-decimal', 'tree size is not a decimal number');
  if (sizeText.length > 1 && sizeText.startsWith('0')) {
    throw bad('checkpoint-size-leading-zero', 'tree size has a leading zero');
  }
  const size = BigInt(sizeText);
  if (size > U64_MAX) throw bad('checkpoint-size-overflow', 'tree size does not fit in 64 bits');
  if (rootText === '') throw bad('checkpoint-empty-root', 'empty root hash');
  const root = b64decode(rootText);
  if (!root) throw bad('checkpoint-root-not-base64', 'root hash is not base64');
  if (root.length !== 32) throw bad('checkpoint-root-length', `root hash is ${root.length} bytes, want 32`);
  for (let i = 0; i < extensions.length; i++) {
    if (extensions[i] === '') throw bad('checkpoint-empty-extension', `line ${i + 4}: empty extension line`);
  }
  return { origin, size, root, extensions };
}

/**
 * Opens a checkpoint note with the known keys and parses its body.
 * @param {string} note
 * @param {Verifiers} known
 * @returns {Promise<OpenedCheckpoint>}
 */
export async function openCheckpoint(note, known) {
  const opened = await openNote(note, known);
  const body = parseCheckpoint(opened.text);
  return {
    ...body,
    text: opened.text,
    verifiedBy: opened.verified.map((s) => `${s.name}+${keyIdHex(s.keyId)}`),
  };
}
