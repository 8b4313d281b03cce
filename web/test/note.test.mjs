// Signed notes, verifier keys and checkpoints against the Go sumdb/note
// vectors the Rust note crate passes (crates/note/tests/conformance.rs),
// and the Rust unit tests' rules (note.rs, key.rs, checkpoint.rs).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { VerifyError } from '../public/js/verify/errors.js';
import {
  ALG_COSIGNATURE_V1, ALG_ED25519, MAX_SIGNATURES, Verifiers, isValidName, keyId,
  openCheckpoint, openNote, parseCheckpoint, parseEd25519VerifierKey, parseVerifierKey,
} from '../public/js/verify/note.js';
import { CONFORMANCE, checkpointText, signNote, signer, toB64 } from './helpers.mjs';

const V = JSON.parse(readFileSync(join(CONFORMANCE, 'note', 'go-sumdb-note.json'), 'utf8'));
const PETER_SIG = V.signed_note_expected.slice(V.text.length + 1);
const ENOCH_SIG = V.two_signature_note.slice(V.signed_note_expected.length);
const TEXT = V.text;

/** @param {string[]} keys */
async function verifiers(keys) {
  const v = new Verifiers();
  for (const k of keys) v.add(await parseEd25519VerifierKey(k));
  return v;
}

/** @param {string} line */
function sigOf(line) {
  const parts = line.trim().split(' ');
  return parts[2];
}
const peterSig = { name: 'PeterNeumann', keyId: 0xc74f20a3, base64: sigOf(PETER_SIG) };
const enochSig = { name: 'EnochRoot', keyId: 0xaf0cfe78, base64: sigOf(ENOCH_SIG) };

/**
 * @param {Promise<unknown>} p
 * @param {string} code
 * @param {string} [message]
 */
async function rejectsWith(p, code, message) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof VerifyError, String(e));
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.equal(e.message, message);
    return true;
  });
}

test('the vectors file is present and complete', () => {
  assert.ok(TEXT.endsWith('\n'));
  assert.equal(V.rejected_verifier_keys.length, 2);
  assert.ok(V.signed_note_expected.startsWith(TEXT));
  assert.ok(V.two_signature_note.startsWith(V.signed_note_expected));
});

test("the test signer reproduces Go's signed note byte for byte", () => {
  // Ed25519 is deterministic; this checks the helper that signs the
  // checkpoints of the other tests.
  // PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>; base64 may hold '+'.
  const seed = Buffer.from(V.signer_key.split('+').slice(4).join('+'), 'base64').subarray(1);
  const s = signer('PeterNeumann', seed);
  assert.equal(s.vkey, V.verifier_key);
  assert.equal(signNote(TEXT, [s]), V.signed_note_expected);
});

test('keys parse and agree', async () => {
  const peter = await parseEd25519VerifierKey(V.verifier_key);
  assert.equal(peter.name, 'PeterNeumann');
  assert.equal(peter.keyId, 0xc74f20a3);
  assert.equal(peter.alg, ALG_ED25519);
  assert.equal(peter.publicKey.length, 32);
  assert.equal(await keyId('PeterNeumann', ALG_ED25519, peter.publicKey), 0xc74f20a3);
  assert.notEqual(await keyId('PeterNeumann', ALG_COSIGNATURE_V1, peter.publicKey), 0xc74f20a3);
  const enoch = await parseEd25519VerifierKey(V.other_verifier_key);
  assert.equal(enoch.name, 'EnochRoot');
  assert.equal(enoch.keyId, 0xaf0cfe78);
  // Upper-case key IDs are accepted, as Go and Rust accept them.
  const upper = await parseVerifierKey(V.verifier_key.replace('c74f20a3', 'C74F20A3'));
  assert.equal(upper.keyId, 0xc74f20a3);
});

test('every proper substring of the verifier key is rejected', async () => {
  const key = V.verifier_key;
  let n = 0;
  for (let i = 0; i <= key.length; i++) {
    for (let j = i + 1; j <= key.length; j++) {
      if (i === 0 && j === key.length) continue;
      await assert.rejects(parseEd25519VerifierKey(key.slice(i, j)), VerifyError, key.slice(i, j));
      n++;
    }
  }
  assert.equal(n, (key.length * (key.length + 1)) / 2 - 1);
});

test('every single-byte increment of the verifier key is rejected', async () => {
  const key = V.verifier_key;
  for (let i = 0; i < key.length; i++) {
    const m = key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) + 1) + key.slice(i + 1);
    await assert.rejects(parseEd25519VerifierKey(m), VerifyError, m);
  }
});

test('the listed bad verifier keys are rejected', async () => {
  // Non-zero pad bits (which the canonical decoder refuses first) and an
  // unknown algorithm.
  await rejectsWith(parseEd25519VerifierKey(V.rejected_verifier_keys[0]), 'key-invalid-base64');
  await rejectsWith(
    parseEd25519VerifierKey(V.rejected_verifier_keys[1]),
    'key-unsupported-alg',
    'unsupported key algorithm 0x65 (want 0x01)',
  );
});

test('verifier key errors, in the Rust order', async () => {
  /** @type {[string, string][]} */
  const cases = [
    ['PeterNeumann', 'key-missing-field'],
    ['PeterNeumann+c74f20a3', 'key-missing-field'],
    ['+c74f20a3+ARpc', 'key-invalid-name'],
    ['Peter Neumann+c74f20a3+ARpc', 'key-invalid-name'],
    ['PeterNeumann+c74f20a+ARpc', 'key-invalid-id'],
    ['PeterNeumann+c74f20a30+ARpc', 'key-invalid-id'],
    ['PeterNeumann+c74f20ag+ARpc', 'key-invalid-id'],
    ['PeterNeumann+-74f20a3+ARpc', 'key-invalid-id'],
    ['PeterNeumann+c74f20a3+AR!c', 'key-invalid-base64'],
    ['PeterNeumann+c74f20a3+ARp', 'key-invalid-base64'],
    ['PeterNeumann+c74f20a3+', 'key-empty'],
  ];
  for (const [text, code] of cases) await rejectsWith(parseVerifierKey(text), code);
  await rejectsWith(
    parseVerifierKey(V.verifier_key.replace('c74f20a3', 'c74f20a4')),
    'key-id-mismatch',
    'key ID c74f20a4 does not match the key (computed c74f20a3)',
  );
  // Wrong lengths, with matching key IDs.
  const p = await parseVerifierKey(V.verifier_key);
  for (const len of [0, 31, 33, 64]) {
    const key = new Uint8Array(len).fill(7);
    key.set(p.publicKey.subarray(0, Math.min(len, 32)));
    const id = (await keyId('PeterNeumann', ALG_ED25519, key)).toString(16).padStart(8, '0');
    const text = `PeterNeumann+${id}+${toB64(Uint8Array.of(1, ...key))}`;
    await rejectsWith(parseEd25519VerifierKey(text), 'key-wrong-length', `wrong key length ${len} (want 32)`);
  }
  // y = 2 is not on the curve.
  const y = new Uint8Array(32);
  y[0] = 2;
  const id = (await keyId('bad', ALG_ED25519, y)).toString(16).padStart(8, '0');
  await rejectsWith(parseEd25519VerifierKey(`bad+${id}+${toB64(Uint8Array.of(1, ...y))}`), 'key-invalid-point');
});

test('key names', () => {
  for (const ok of ['PeterNeumann', 'example.com/log42', 'quasimodo.example/salvatore', '日本語']) {
    assert.ok(isValidName(ok), ok);
  }
  for (const bad of ['', 'a+b', 'a b', 'a\tb', 'a\nb', 'a\u00a0b', 'a\u2003b', 'a\u3000b', 'a\u0001b', 'a\u0085b']) {
    assert.ok(!isValidName(bad), JSON.stringify(bad));
  }
  // U+FEFF is not White_Space (JavaScript's \s would say it is).
  assert.ok(isValidName('a\ufeffb'));
});

test('the signed note verifies', async () => {
  const n = await openNote(V.signed_note_expected, await verifiers([V.verifier_key]));
  assert.equal(n.text, TEXT);
  assert.deepEqual(n.verified, [peterSig]);
  assert.deepEqual(n.unverified, []);
});

test('a two-signature note opens with either key alone, and with both', async () => {
  let n = await openNote(V.two_signature_note, await verifiers([V.verifier_key]));
  assert.deepEqual(n.verified, [peterSig]);
  assert.deepEqual(n.unverified, [enochSig]);
  n = await openNote(V.two_signature_note, await verifiers([V.other_verifier_key]));
  assert.deepEqual(n.verified, [enochSig]);
  assert.deepEqual(n.unverified, [peterSig]);
  n = await openNote(V.two_signature_note, await verifiers([V.verifier_key, V.other_verifier_key]));
  assert.deepEqual(n.verified, [peterSig, enochSig]);
  assert.deepEqual(n.unverified, []);
});

test('the one-signature note does not open with the other key', async () => {
  await assert.rejects(openNote(V.signed_note_expected, await verifiers([V.other_verifier_key])), (e) => {
    assert.ok(e instanceof VerifyError);
    assert.equal(e.code, 'note-unverified');
    assert.equal(e.message, 'note has no verifiable signatures');
    assert.deepEqual(e.data.unverified, [peterSig]);
    return true;
  });
  await assert.rejects(openNote(V.two_signature_note, new Verifiers()), (e) => {
    assert.ok(e instanceof VerifyError);
    assert.deepEqual(e.data.unverified, [peterSig, enochSig]);
    return true;
  });
});

test('a key sharing only the name or only the ID is unknown, not invalid', async () => {
  const other = signer('PeterNeumann', new Uint8Array(32).fill(9));
  await rejectsWith(openNote(V.signed_note_expected, await verifiers([other.vkey])), 'note-unverified');
});

test('tampered text fails with either key, and a merged blank line has no signatures', async () => {
  const tampered = V.two_signature_note.replace('problem,', 'problem;');
  await rejectsWith(
    openNote(tampered, await verifiers([V.verifier_key, V.other_verifier_key])),
    'note-invalid-signature',
    'invalid signature for key PeterNeumann+c74f20a3',
  );
  await rejectsWith(
    openNote(tampered, await verifiers([V.other_verifier_key])),
    'note-invalid-signature',
    'invalid signature for key EnochRoot+af0cfe78',
  );
  const merged = V.signed_note_expected.replace('is.\n\n', 'is.\n');
  await rejectsWith(openNote(merged, await verifiers([V.verifier_key])), 'note-missing-signature-block');
});

test("Go's invalid-signature case: 4 base64 characters inserted", async () => {
  const at = TEXT.length + 1 + 60;
  const tampered = `${V.signed_note_expected.slice(0, at)}ABCD${V.signed_note_expected.slice(at)}`;
  await rejectsWith(openNote(tampered, await verifiers([V.verifier_key])), 'note-invalid-signature');
});

test('an invalid signature by a known key rejects the note even after a valid one', async () => {
  const s = signer('n.example', new Uint8Array(32).fill(1));
  const good = signNote(TEXT, [s]);
  const line = good.slice(TEXT.length + 1, -1);
  const chars = [...line];
  const mid = chars.length - 10;
  chars[mid] = chars[mid] === 'A' ? 'B' : 'A';
  await rejectsWith(openNote(`${good}${chars.join('')}\n`, await verifiers([s.vkey])), 'note-invalid-signature');
});

test('duplicated verified and unverified signature lines', async () => {
  const enochAbcd = `${ENOCH_SIG.slice(0, 62)}ABCD${ENOCH_SIG.slice(62)}`;
  const msg = `${TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}${enochAbcd}`;
  const n = await openNote(msg, await verifiers([V.verifier_key]));
  assert.deepEqual(n.verified, [peterSig]);
  assert.equal(n.unverified.length, 2);
  assert.deepEqual(n.unverified[0], enochSig);
  assert.ok(n.unverified[1].base64.includes('ABCD'));
});

test('malformed notes: every rule has its error', async () => {
  const v = await verifiers([V.verifier_key]);
  const noNl = PETER_SIG.slice(0, -1);
  const L = 4; // line number of the first signature line
  const SIG64 = 'x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=';
  /** @type {[string, string, string?][]} */
  const cases = [
    [TEXT, 'note-missing-signature-block'],
    [`${TEXT}\n`, 'note-empty-signature-block'],
    [`${TEXT}\n${noNl}`, 'note-missing-final-newline'],
    [`\u0001${TEXT}\n${PETER_SIG}`, 'note-control-character', 'malformed note: control character at byte offset 0'],
    [`${TEXT}\n${noNl}\r\n`, 'note-control-character', `malformed note: control character at byte offset ${TEXT.length + 1 + Buffer.byteLength(noNl)}`],
    [`\ud800${TEXT}\n${PETER_SIG}`, 'note-not-utf8'],
    [`${TEXT}\n\u2014 Bad Name ${SIG64}\n`, 'note-bad-base64', `malformed note: line ${L}: signature is not base64`],
    [`${TEXT}\n\u2014 Bad+Name ${SIG64}\n`, 'note-invalid-key-name'],
    [`${TEXT}\n\u2014 Bad\u00a0Name ${SIG64}\n`, 'note-invalid-key-name'],
    [`${TEXT}\n${PETER_SIG}Unexpected line.\n`, 'note-missing-em-dash', `malformed note: line ${L + 1}: signature line does not begin with "\u2014 "`],
    [`${TEXT}\n- PeterNeumann AAAAAAAA\n`, 'note-missing-em-dash'],
    [`${TEXT}\n\u2014PeterNeumann AAAAAAAA\n`, 'note-missing-em-dash'],
    [`${TEXT}\n\u2014 PeterNeumann\n`, 'note-missing-space'],
    [`${TEXT}\n\u2014  AAAAAAAA\n`, 'note-invalid-key-name'],
    [`${TEXT}\n\u2014 PeterNeumann AAAA!AAA\n`, 'note-bad-base64'],
    [`${TEXT}\n\u2014 PeterNeumann AAAAAAA\n`, 'note-bad-base64'],
    [`${TEXT}\n\u2014 PeterNeumann AAAAAAAA \n`, 'note-bad-base64'],
    [`${TEXT}\n\u2014 PeterNeumann x08gow==\n`, 'note-signature-too-short', `malformed note: line ${L}: signature is 4 bytes (minimum 5)`],
    [`${TEXT}\n\u2014 PeterNeumann \n`, 'note-signature-too-short', `malformed note: line ${L}: signature is 0 bytes (minimum 5)`],
  ];
  for (const [msg, code, message] of cases) await rejectsWith(openNote(msg, v), code, message);
});

test('100 signature lines are accepted, 101 refused', async () => {
  const v = await verifiers([V.verifier_key]);
  const ok = await openNote(`${TEXT}\n${PETER_SIG.repeat(MAX_SIGNATURES)}`, v);
  assert.equal(ok.verified.length, 1);
  const tooMany = `${TEXT}\n${PETER_SIG.repeat(MAX_SIGNATURES + 1)}`;
  await rejectsWith(openNote(tooMany, v), 'note-too-many-signatures', 'malformed note: 101 signature lines (maximum 100)');
  await rejectsWith(openNote(tooMany, new Verifiers()), 'note-too-many-signatures');
});

test('sixteen signers: all verify; with one known, fifteen are unverified', async () => {
  const signers = Array.from({ length: 16 }, (_, i) => signer(`s${i}.example`, new Uint8Array(32).fill(i + 1)));
  const msg = signNote(TEXT, signers);
  const all = await openNote(msg, await verifiers(signers.map((s) => s.vkey)));
  assert.equal(all.verified.length, 16);
  assert.deepEqual(all.verified.map((s) => s.name), signers.map((s) => s.name));
  const one = await openNote(msg, await verifiers([signers[7].vkey]));
  assert.equal(one.verified.length, 1);
  assert.equal(one.unverified.length, 15);
});

test('texts with empty lines and Unicode open to the same text', async () => {
  const s = signer('PeterNeumann', new Uint8Array(32).fill(5));
  const v = await verifiers([s.vkey]);
  for (const text of ['\n', '\n\n', 'a\n\nb\n', 'a\n\n\n', 'line\n\n\u2014 PeterNeumann AAAA\n', 'ünïcödé ✓\n']) {
    const n = await openNote(signNote(text, [s]), v);
    assert.equal(n.text, text);
    assert.equal(n.verified.length, 1);
  }
});

test('ambiguous keys are refused', async () => {
  const v = await verifiers([V.verifier_key]);
  assert.throws(() => v.add(/** @type {any} */ ({ name: 'PeterNeumann', keyId: 0xc74f20a3 })), /ambiguous key PeterNeumann\+c74f20a3/);
});

const ROOT64 = 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=';
const SPEC = `example.com/behind-the-sofa\n20852163\n${ROOT64}\n`;

test('checkpoint: the C2SP example, extensions and size extremes', () => {
  const c = parseCheckpoint(SPEC);
  assert.equal(c.origin, 'example.com/behind-the-sofa');
  assert.equal(c.size, 20852163n);
  assert.deepEqual([...c.root.subarray(0, 4)], [0x0a, 0xc5, 0x18, 0x6a]);
  assert.deepEqual(c.extensions, []);
  const ext = parseCheckpoint(`evault.example/log\n0\n${ROOT64}\next one\n\u2014 ünïcode\n`);
  assert.deepEqual(ext.extensions, ['ext one', '\u2014 ünïcode']);
  assert.equal(parseCheckpoint(`o\n18446744073709551615\n${ROOT64}\n`).size, (1n << 64n) - 1n);
  assert.equal(parseCheckpoint(`o\n0\n${ROOT64}\n`).size, 0n);
});

test('checkpoint: every rule has its error', () => {
  const over = `${(1n << 64n) - 1n}0`;
  /** @type {[string, string][]} */
  const cases = [
    [SPEC.trimEnd(), 'checkpoint-missing-final-newline'],
    ['', 'checkpoint-missing-final-newline'],
    ['\n', 'checkpoint-too-few-lines'],
    ['o\n5\n', 'checkpoint-too-few-lines'],
    [`\n5\n${ROOT64}\n`, 'checkpoint-empty-origin'],
    [`o\u0001\n5\n${ROOT64}\n`, 'checkpoint-control-character'],
    [`o\n5\r\n${ROOT64}\n`, 'checkpoint-control-character'],
    [`o\n5\n${ROOT64}\nx\ty\n`, 'checkpoint-control-character'],
    [`o\n\n${ROOT64}\n`, 'checkpoint-empty-size'],
    [`o\n+5\n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n-5\n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n 5\n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n5 \n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n0x5\n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n١\n${ROOT64}\n`, 'checkpoint-size-not-decimal'],
    [`o\n05\n${ROOT64}\n`, 'checkpoint-size-leading-zero'],
    [`o\n00\n${ROOT64}\n`, 'checkpoint-size-leading-zero'],
    [`o\n${over}\n${ROOT64}\n`, 'checkpoint-size-overflow'],
    ['o\n5\n\n', 'checkpoint-empty-root'],
    ['o\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n', 'checkpoint-root-not-base64'],
    ['o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n', 'checkpoint-root-not-base64'],
    ['o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n', 'checkpoint-root-not-base64'],
    ['o\n5\nAAAA\n', 'checkpoint-root-length'],
    [`o\n5\n${toB64(new Uint8Array(33))}\n`, 'checkpoint-root-length'],
    [`o\n5\n${ROOT64}\n\n`, 'checkpoint-empty-extension'],
    [`o\n5\n${ROOT64}\next\n\nmore\n`, 'checkpoint-empty-extension'],
  ];
  for (const [text, code] of cases) {
    assert.throws(() => parseCheckpoint(text), (e) => e instanceof VerifyError && e.code === code, JSON.stringify(text));
  }
  assert.throws(() => parseCheckpoint('o\n5\nAAAA\n'), { message: 'malformed checkpoint: root hash is 3 bytes, want 32' });
  assert.throws(() => parseCheckpoint(`o\n5\n${ROOT64}\n\n`), { message: 'malformed checkpoint: line 4: empty extension line' });
});

test('a signed checkpoint opens with its verifiers, ignoring other lines', async () => {
  const log = signer('vault.example/log', new Uint8Array(32).fill(3));
  const witness = signer('witness.example', new Uint8Array(32).fill(4));
  const text = checkpointText('vault.example/log', 13, new Uint8Array(32).fill(0xab));
  // An ML-DSA-44 line (type 0x06 key ID, 2,432 bytes) by the same name and a
  // witness cosignature: both unknown here, so both skipped.
  const mldsa = `\u2014 vault.example/log ${toB64(new Uint8Array(2432).fill(6))}\n`;
  const note = `${signNote(text, [log, witness])}${mldsa}`;
  const cp = await openCheckpoint(note, await verifiers([log.vkey]));
  assert.equal(cp.origin, 'vault.example/log');
  assert.equal(cp.size, 13n);
  assert.equal(cp.text, text);
  assert.deepEqual(cp.verifiedBy, [`vault.example/log+${log.keyId.toString(16).padStart(8, '0')}`]);
});
