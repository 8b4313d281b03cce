// Proof checks shared by the record, audit event and consistency pages:
// key pinning, inclusion of one entry, and the log's history since the
// checkpoint this browser verified last.

import { getJson, getText } from './api.js';
import { h, replace } from './dom.js';
import { LOGS } from './logs.js';
import { pinNotice } from './pinview.js';
import { checkPin, getLast, noteHead, setLast } from './pins.js';
import { isAbort } from './ui.js';
import { verifyConsistencyProof, verifyProofBundle } from './verify/verify.js';

/** @typedef {import('./verifyview.js').Step} Step */
/** @typedef {import('./pins.js').LogName} LogName */
/** @typedef {import('./verifyview.js').Panel} Panel */

/**
 * Fetches the log's keys, checks them against the pin (pinning on first
 * use) and shows the pin notice in `slot`.
 * @param {LogName} log
 * @param {HTMLElement} slot
 * @param {AbortSignal} signal
 * @param {() => void} onTrusted re-run after the user adopted new keys
 * @returns {Promise<string[]>} the pinned keys, which verification uses
 */
export async function pinnedKeys(log, slot, signal, onTrusted) {
  const info = await getJson(LOGS[log].info, { signal });
  const st = checkPin(log, info);
  replace(slot, pinNotice(log, st, onTrusted));
  return st.pin.keys;
}

/**
 * @param {unknown} e
 * @param {string} name
 * @returns {Step}
 */
function fetchFailure(e, name) {
  const msg = e instanceof Error ? e.message : String(e);
  return { name, ok: false, detail: `could not fetch: ${msg}` };
}

/**
 * @typedef {{state: 'verified' | 'failed' | 'neutral', steps: Step[], text: string}} CheckResult
 */

/**
 * Checks that `olderNote` and `newerNote` are views of one append-only log:
 * signatures with the pinned keys and an RFC 6962 consistency proof. Notes
 * may come in either order (a server showing a smaller tree than one seen
 * before must still be a prefix of it).
 * @param {LogName} log
 * @param {string} oldNote
 * @param {string} newNote
 * @param {string[]} keys
 * @param {AbortSignal} signal
 * @returns {Promise<CheckResult>}
 */
export async function consistencyCheck(log, oldNote, newNote, keys, signal) {
  const a = noteHead(oldNote);
  const b = noteHead(newNote);
  if (!a || !b) {
    return { state: 'failed', steps: [{ name: 'checkpoint', ok: false, detail: 'not a checkpoint note' }], text: '' };
  }
  if (a.size === 0n) {
    return { state: 'neutral', steps: [], text: 'Nothing to check yet: the older checkpoint is of an empty tree.' };
  }
  if (b.size === 0n) {
    return {
      state: 'failed',
      steps: [{ name: 'consistency', ok: false, detail: `the log now shows an empty tree, but a tree of size ${a.size} was seen` }],
      text: '',
    };
  }
  const [lo, hi] = a.size <= b.size ? [oldNote, newNote] : [newNote, oldNote];
  const loSize = a.size <= b.size ? a.size : b.size;
  const hiSize = a.size <= b.size ? b.size : a.size;
  /** @type {string[]} */
  let proof;
  try {
    const r = await getJson(`${LOGS[log].consistency}?from=${loSize}&to=${hiSize}`, { signal });
    proof = Array.isArray(r.proof) ? r.proof : [];
  } catch (e) {
    if (isAbort(e)) throw e;
    return { state: 'failed', steps: [fetchFailure(e, 'consistency')], text: '' };
  }
  const outcome = await verifyConsistencyProof(lo, hi, proof, keys);
  // The core also handles equal sizes (equal roots, empty proof).
  const steps = outcome.steps;
  const ok = steps.length > 0 && steps.every((st) => st.ok);
  return { state: ok ? 'verified' : 'failed', steps, text: '' };
}

/**
 * The 'history' step: the checkpoint just verified against the last one
 * this browser verified; on success it becomes the last one (never a
 * smaller one).
 * @param {LogName} log
 * @param {string} newNote a checkpoint whose signature was verified
 * @param {string[]} keys
 * @param {AbortSignal} signal
 * @returns {Promise<Step>}
 */
export async function historyStep(log, newNote, keys, signal) {
  const last = getLast(log);
  const head = noteHead(newNote);
  if (!head) return { name: 'history', ok: false, detail: 'the checkpoint is not a note' };
  if (!last) {
    setLast(log, newNote);
    return { name: 'history', ok: true, detail: `first checkpoint verified in this browser (size ${head.size}); kept to check the log's history next time` };
  }
  if (last === newNote) {
    return { name: 'history', ok: true, detail: `same checkpoint as the one last verified here (size ${head.size})` };
  }
  const lastHead = noteHead(last);
  const r = await consistencyCheck(log, last, newNote, keys, signal);
  if (r.state === 'neutral') {
    setLast(log, newNote);
    return { name: 'history', ok: true, detail: 'nothing to check yet (the last verified tree was empty)' };
  }
  if (r.state === 'verified') {
    const stored = setLast(log, newNote);
    const from = lastHead ? lastHead.size : 0n;
    return {
      name: 'history',
      ok: true,
      detail: stored
        ? `consistent with the checkpoint last verified here (size ${from} → ${head.size})`
        : `an older tree (size ${head.size}) than the one last verified here (size ${from}), and a prefix of it`,
    };
  }
  const bad = r.steps.find((st) => !st.ok);
  return {
    name: 'history',
    ok: false,
    detail: `not consistent with the checkpoint last verified here${bad ? ` (${bad.name}: ${bad.detail})` : ''}`,
  };
}

/**
 * The whole check of one entry: pins, entry, proof bundle (raw text),
 * inclusion, then history. Shows the result in `panel`.
 * @param {LogName} log
 * @param {string} id
 * @param {{panel: Panel, pinSlot: HTMLElement, signal: AbortSignal, rerun: () => void,
 *   record?: string | null}} ctx `record`: the entry's response text, as already fetched
 */
export async function verifyEntry(log, id, ctx) {
  const { panel, pinSlot, signal } = ctx;
  panel.running();
  replace(panel.extra);
  let keys;
  try {
    keys = await pinnedKeys(log, pinSlot, signal, () => {
      // The notice and its button go away: keep focus on the result.
      panel.el.focus();
      ctx.rerun();
    });
  } catch (e) {
    if (isAbort(e)) return;
    panel.done([fetchFailure(e, 'key')]);
    return;
  }
  let record = ctx.record ?? null;
  let proofText;
  try {
    if (!record) record = await getText(LOGS[log].entry(id), { signal });
    proofText = await getText(LOGS[log].proof(id), { signal });
  } catch (e) {
    if (isAbort(e)) return;
    panel.done([fetchFailure(e, record ? 'proof' : 'record')]);
    // A record newer than the latest checkpoint has no proof for a moment.
    replace(panel.extra, h('button', { type: 'button', class: 'secondary', on: { click: () => { panel.el.focus(); ctx.rerun(); } } }, 'Try again'));
    return;
  }
  const outcome = await verifyProofBundle(log, proofText, record, keys);
  if (signal.aborted) return;
  const steps = outcome.steps.slice();
  if (!outcome.ok && steps.every((st) => st.ok)) {
    steps.push({ name: outcome.failed || 'proof', ok: false, detail: 'verification failed' });
  }
  if (outcome.ok) {
    // The note text as served: strings survive JSON.parse intact.
    let note = '';
    try {
      const parsed = JSON.parse(proofText);
      note = typeof parsed.checkpoint === 'string' ? parsed.checkpoint : '';
    } catch {
      note = '';
    }
    try {
      steps.push(note
        ? await historyStep(log, note, keys, signal)
        : { name: 'history', ok: false, detail: 'the proof bundle has no checkpoint note' });
    } catch (e) {
      if (isAbort(e)) return;
      steps.push(fetchFailure(e, 'history'));
    }
  }
  if (signal.aborted) return;
  panel.done(steps);
}
