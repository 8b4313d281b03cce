// Proof checks shared by the record, audit event and consistency pages:
// key pinning, inclusion of one entry, and the log's history since the
// checkpoint this browser verified last.

import { getJson, getText } from './api.js';
import { h, replace } from './dom.js';
import { LOGS } from './logs.js';
import { pinNotice } from './pinview.js';
import { checkPin, getLast, noteHead, setLast } from './pins.js';
import { isAbort } from './ui.js';
import { parseJson } from './verify/json.js';
import { verifyConsistencyProof, verifyProofBundle } from './verify/verify.js';

/** @typedef {import('./verifyview.js').Step} Step */
/** @typedef {import('./pins.js').LogName} LogName */
/** @typedef {import('./verifyview.js').Panel} Panel */
/**
 * What verification uses from a pin: its keys and its origin. `state` and
 * `clash` as in PinStatus ('refused': nothing is pinned, `keys` is empty).
 * @typedef {{keys: string[], origin: string, state: import('./pins.js').PinStatus['state'], clash: string}} Pinned
 */

/**
 * Fetches the log's keys, checks them against the pin (pinning on first
 * use) and shows the pin notice in `slot`.
 * @param {LogName} log
 * @param {HTMLElement} slot
 * @param {AbortSignal} signal
 * @param {() => void} onTrusted re-run after the user adopted new keys
 * @returns {Promise<Pinned>} the pinned keys and origin, which verification uses
 */
export async function pinnedKeys(log, slot, signal, onTrusted) {
  const info = await getJson(LOGS[log].info, { signal });
  if (!info || typeof info !== 'object' || typeof info.origin !== 'string') {
    throw new Error('the log description has no origin');
  }
  const st = checkPin(log, info);
  replace(slot, pinNotice(log, st, onTrusted));
  return { keys: st.pin.keys, origin: st.pin.origin, state: st.state, clash: st.clash };
}

/**
 * The 'key' failure when nothing could be pinned, or null.
 * @param {Pinned} pinned
 * @returns {Step | null}
 */
export function refusedStep(pinned) {
  return pinned.state === 'refused'
    ? { name: 'key', ok: false, detail: `no key is pinned for this log: ${pinned.clash}` }
    : null;
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
 * Checks that `newNote` extends `oldNote`: both are views of one
 * append-only log of the pinned origin, signed with the pinned keys, and an
 * RFC 6962 consistency proof from the older size to the newer one checks
 * out. The order is the caller's: an "older" note larger than the "newer"
 * one fails (see latestCheck and historyStep for a checkpoint that went
 * backwards).
 * @param {LogName} log
 * @param {string} oldNote
 * @param {string} newNote
 * @param {Pick<Pinned, 'keys' | 'origin'>} pinned
 * @param {AbortSignal} signal
 * @returns {Promise<CheckResult>}
 */
export async function consistencyCheck(log, oldNote, newNote, pinned, signal) {
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
  if (a.size > b.size) {
    return {
      state: 'failed',
      steps: [{ name: 'checkpoint', ok: false, detail: `the older checkpoint has size ${a.size} but the newer only ${b.size}` }],
      text: '',
    };
  }
  /** @type {string[]} */
  let proof;
  try {
    const r = await getJson(`${LOGS[log].consistency}?from=${a.size}&to=${b.size}`, { signal });
    proof = r && Array.isArray(r.proof) ? r.proof : [];
  } catch (e) {
    if (isAbort(e)) throw e;
    return { state: 'failed', steps: [fetchFailure(e, 'consistency')], text: '' };
  }
  const outcome = await verifyConsistencyProof(oldNote, newNote, proof, pinned.keys, pinned.origin);
  // The core also handles equal sizes (equal roots, empty proof).
  const steps = outcome.steps;
  const ok = steps.length > 0 && steps.every((st) => st.ok);
  return { state: ok ? 'verified' : 'failed', steps, text: '' };
}

/**
 * The server's latest checkpoint against the last one this browser
 * verified (or, without one, against itself: that checks its signature).
 * A latest checkpoint smaller than the last verified one always fails: a
 * log only grows, and a server showing an older tree than one already
 * seen shows a stale or split view. The consistency proof from the smaller
 * to the larger is still checked, and its result is given in the detail.
 * @param {LogName} log
 * @param {string | null} lastNote
 * @param {string} latestNote
 * @param {Pick<Pinned, 'keys' | 'origin'>} pinned
 * @param {AbortSignal} signal
 * @returns {Promise<CheckResult>}
 */
export async function latestCheck(log, lastNote, latestNote, pinned, signal) {
  const latest = noteHead(latestNote);
  const last = lastNote ? noteHead(lastNote) : null;
  if (!latest) {
    return { state: 'failed', steps: [{ name: 'checkpoint', ok: false, detail: 'the latest checkpoint is not a checkpoint note' }], text: '' };
  }
  if (!lastNote || !last) return consistencyCheck(log, latestNote, latestNote, pinned, signal);
  if (latest.size >= last.size) return consistencyCheck(log, lastNote, latestNote, pinned, signal);

  const older = `the server's latest checkpoint (size ${latest.size}) is older than one this browser already verified (size ${last.size})`;
  const r = await consistencyCheck(log, latestNote, lastNote, pinned, signal);
  const steps = r.steps.filter((st) => st.ok && st.name !== 'consistency');
  let prefix;
  if (r.state === 'verified') {
    prefix = 'it is a prefix of that one, so this server shows an old view of the log (stale, or split from what others see)';
  } else if (r.state === 'neutral') {
    prefix = 'it is of the empty tree';
  } else {
    const bad = r.steps.find((st) => !st.ok);
    prefix = `and it is not shown to be a prefix of that one${bad ? ` (${bad.name}: ${bad.detail})` : ''}`;
  }
  steps.push({ name: 'consistency', ok: false, detail: `${older}; ${prefix}` });
  return { state: 'failed', steps, text: '' };
}

/**
 * The 'history' step: the checkpoint just verified against the last one
 * this browser verified; on success it becomes the last one (never a
 * smaller one). A checkpoint older than the last verified one still proves
 * inclusion, so it passes if it is a prefix of the last verified one, and
 * the last verified one stays.
 * @param {LogName} log
 * @param {string} newNote a checkpoint whose signature was verified
 * @param {Pick<Pinned, 'keys' | 'origin'>} pinned
 * @param {AbortSignal} signal
 * @returns {Promise<Step>}
 */
export async function historyStep(log, newNote, pinned, signal) {
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
  const from = lastHead ? lastHead.size : 0n;
  if (head.size < from) {
    // Consistency from the proof's (smaller) tree to the last verified one.
    const r = await consistencyCheck(log, newNote, last, pinned, signal);
    if (r.state === 'verified') {
      return {
        name: 'history',
        ok: true,
        detail: `the proof's checkpoint (size ${head.size}) is older than the one last verified here (size ${from}), `
          + `and a prefix of it: an older checkpoint still proves inclusion; the last verified checkpoint stays at size ${from}`,
      };
    }
    const bad = r.steps.find((st) => !st.ok);
    return {
      name: 'history',
      ok: false,
      detail: `the proof's checkpoint (size ${head.size}) is older than the one last verified here (size ${from}), `
        + `and not a prefix of it${bad ? ` (${bad.name}: ${bad.detail})` : ''}`,
    };
  }
  const r = await consistencyCheck(log, last, newNote, pinned, signal);
  if (r.state === 'neutral') {
    setLast(log, newNote);
    return { name: 'history', ok: true, detail: 'nothing to check yet (the last verified tree was empty)' };
  }
  if (r.state === 'verified') {
    setLast(log, newNote);
    return {
      name: 'history',
      ok: true,
      detail: `consistent with the checkpoint last verified here (size ${from} → ${head.size})`,
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
 * The `id` member of JSON text, read with the verifier's strict parser (so
 * a duplicate "id" cannot show one id here and another to the verifier);
 * null when there is none.
 * @param {string} text
 * @param {boolean} inBundle read `record.id` of a proof bundle
 * @returns {string | null}
 */
function idIn(text, inBundle) {
  let v;
  try {
    v = parseJson(text);
  } catch {
    return null;
  }
  if (inBundle) v = v && typeof v === 'object' ? /** @type {Record<string, unknown>} */ (v).record : null;
  const id = v && typeof v === 'object' && !Array.isArray(v) ? /** @type {Record<string, unknown>} */ (v).id : null;
  return typeof id === 'string' ? id : null;
}

/**
 * The 'record' step's first half: the record (or event) the server sent,
 * and the one in its proof bundle, are the one the page asked for. A
 * server could otherwise answer for record A with record B and B's valid
 * proof, verified under A's heading.
 * @param {LogName} log
 * @param {string} id the id in the page's address
 * @param {string} recordText
 * @param {string} proofText
 * @returns {Step | null} the failure, or null when both carry `id`
 */
export function entryIdFailure(log, id, recordText, proofText) {
  const what = log === 'evidence' ? 'record' : 'event';
  const fetched = idIn(recordText, false);
  if (fetched !== id) {
    return {
      name: 'record',
      ok: false,
      detail: fetched === null
        ? `the ${what} the server sent for ${id} has no id`
        : `asked for ${what} ${id}, the server sent ${what} ${fetched}`,
    };
  }
  const bundled = idIn(proofText, true);
  if (bundled !== id) {
    return {
      name: 'record',
      ok: false,
      detail: bundled === null
        ? `the proof bundle the server sent for ${what} ${id} carries no ${what} id`
        : `asked for the proof of ${what} ${id}, the server sent the proof of ${what} ${bundled}`,
    };
  }
  return null;
}

/**
 * The whole check of one entry: pins, entry, proof bundle (raw text),
 * inclusion, then history. Shows the result in `panel`; a later call on
 * the same panel supersedes this one (only the latest run renders).
 * @param {LogName} log
 * @param {string} id
 * @param {{panel: Panel, pinSlot: HTMLElement, signal: AbortSignal, rerun: () => void,
 *   record?: string | null}} ctx `record`: the entry's response text, as already fetched
 */
export async function verifyEntry(log, id, ctx) {
  const { panel, pinSlot } = ctx;
  const run = panel.begin(ctx.signal);
  const { signal } = run;
  run.running();
  run.extra();
  /** @type {Pinned} */
  let pinned;
  try {
    pinned = await pinnedKeys(log, pinSlot, signal, () => {
      // The notice and its button go away: keep focus on the result.
      panel.el.focus();
      ctx.rerun();
    });
  } catch (e) {
    if (isAbort(e)) return;
    run.done([fetchFailure(e, 'key')]);
    return;
  }
  const refused = refusedStep(pinned);
  if (refused) {
    run.done([refused]);
    return;
  }
  let record = ctx.record ?? null;
  let proofText;
  try {
    if (!record) record = await getText(LOGS[log].entry(id), { signal });
    proofText = await getText(LOGS[log].proof(id), { signal });
  } catch (e) {
    if (isAbort(e)) return;
    run.done([fetchFailure(e, record ? 'proof' : 'record')]);
    // A record newer than the latest checkpoint has no proof for a moment.
    run.extra(h('button', { type: 'button', class: 'secondary', on: { click: () => { panel.el.focus(); ctx.rerun(); } } }, 'Try again'));
    return;
  }
  const wrongId = entryIdFailure(log, id, record, proofText);
  if (wrongId) {
    run.done([wrongId]);
    return;
  }
  const outcome = await verifyProofBundle(log, proofText, record, pinned.keys, pinned.origin);
  if (!run.live()) return;
  const steps = outcome.steps.map((st) => (st.name === 'record' && st.ok
    ? { ...st, detail: `${st.detail}, and it is the one asked for (${id})` }
    : st));
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
        ? await historyStep(log, note, pinned, signal)
        : { name: 'history', ok: false, detail: 'the proof bundle has no checkpoint note' });
    } catch (e) {
      if (isAbort(e)) return;
      steps.push(fetchFailure(e, 'history'));
    }
  }
  run.done(steps);
}
