// #/consistency: for each log, the checkpoint this browser verified last,
// the latest one, and a consistency proof between them checked on every
// visit; plus a check between any two checkpoint sizes.

import { getJson } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, count, localTime } from '../format.js';
import { LOGS } from '../logs.js';
import { consistencyCheck, pinnedKeys } from '../proofcheck.js';
import { getLast, noteHead, setLast } from '../pins.js';
import { code, disabledNote, errorBox, facts, field, formValue, isAbort, loading } from '../ui.js';
import { verifyPanel } from '../verifyview.js';

export const title = 'Consistency';

/** @typedef {import('../pins.js').LogName} LogName */
/** @typedef {import('../logs.js').CheckpointInfo} CheckpointInfo */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main } = ctx;
  replace(main,
    h('h1', null, 'Consistency'),
    h('p', { class: 'lead' },
      'A log must only ever grow. Each visit checks that the latest checkpoint extends the last one this browser verified, with a proof from the server checked here.'));
  for (const log of /** @type {LogName[]} */ (['evidence', 'audit'])) {
    const sec = h('section', { class: 'card log-section', 'aria-labelledby': `cs-${log}` },
      h('h2', { id: `cs-${log}` }, LOGS[log].title), loading());
    main.appendChild(sec);
    logSection(sec, log, ctx);
  }
}

/**
 * @param {string | null} note
 * @param {string} none text when there is no note
 */
function noteFacts(note, none) {
  const head = note ? noteHead(note) : null;
  if (!note || !head) return h('p', { class: 'muted' }, none);
  return h('div', null,
    facts([['Size', count(head.size)], ['Root', code(head.root)]]),
    h('details', null, h('summary', null, 'Signed note'), h('pre', { class: 'note-text' }, note)));
}

/**
 * @param {HTMLElement} sec
 * @param {LogName} log
 * @param {import('../app.js').PageContext} ctx
 */
async function logSection(sec, log, ctx) {
  const { signal } = ctx;
  const heading = /** @type {HTMLElement} */ (sec.firstChild);
  const pinSlot = h('div', { class: 'pin-slot' });
  const lastBox = h('div', null);
  const latestBox = h('div', null, loading());
  const panel = verifyPanel({ title: `${LOGS[log].title}: latest against last verified`, attrs: { 'data-log': log, 'data-check': 'latest' } });
  const pairBox = h('div', { class: 'pair-result' });
  replace(sec, heading,
    pinSlot,
    h('div', { class: 'grid two' },
      h('div', null, h('h3', null, 'Last verified in this browser'), lastBox),
      h('div', null, h('h3', null, 'Latest checkpoint'), latestBox)),
    panel.el,
    pairForm(log, ctx, pairBox),
    pairBox);

  const lastNote = getLast(log);
  replace(lastBox, noteFacts(lastNote, 'None yet: this browser has not verified a checkpoint of this log.'));
  let keys;
  try {
    keys = await pinnedKeys(log, pinSlot, signal, () => ctx.app.rerender());
  } catch (e) {
    if (isAbort(e)) return;
    const off = disabledNote(e);
    if (off) {
      replace(sec, heading, off);
      return;
    }
    replace(pinSlot, errorBox(e));
    panel.done([{ name: 'key', ok: false, detail: e instanceof Error ? e.message : String(e) }]);
    return;
  }
  /** @type {CheckpointInfo} */
  let latest;
  try {
    latest = await getJson(LOGS[log].latest, { signal });
  } catch (e) {
    if (isAbort(e)) return;
    replace(latestBox, errorBox(e));
    panel.neutral('Nothing to check yet: no checkpoint to compare.');
    return;
  }
  replace(latestBox,
    h('p', null, 'Signed ', h('time', { datetime: latest.created_at, title: localTime(latest.created_at) }, ago(new Date(latest.created_at))), '.'),
    noteFacts(latest.note, ''));

  // Without an earlier checkpoint, the latest is checked against itself:
  // that checks its signatures and makes it the starting point.
  const older = lastNote || latest.note;
  const r = await consistencyCheck(log, older, latest.note, keys, signal).catch((e) => {
    if (isAbort(e)) return null;
    return /** @type {import('../proofcheck.js').CheckResult} */ ({
      state: 'failed', steps: [{ name: 'consistency', ok: false, detail: String(e) }], text: '',
    });
  });
  if (!r || signal.aborted) return;
  if (r.state === 'neutral') {
    panel.neutral(r.text || 'Nothing to check yet.');
    return;
  }
  if (r.state === 'verified') {
    const stored = setLast(log, latest.note);
    if (stored) replace(lastBox, noteFacts(latest.note, ''));
    panel.done(r.steps, lastNote
      ? 'Consistent: the log verified here before is a prefix of the latest checkpoint.'
      : 'Latest checkpoint verified and kept as the starting point for later checks.');
    return;
  }
  panel.done(r.steps);
}

/**
 * Two sizes to check against each other.
 * @param {LogName} log
 * @param {import('../app.js').PageContext} ctx
 * @param {HTMLElement} out
 */
function pairForm(log, ctx, out) {
  const { signal } = ctx;
  return h('form', {
    class: 'pair',
    'aria-labelledby': `cs-pair-${log}`,
    on: {
      submit: async (e) => {
        e.preventDefault();
        const form = /** @type {HTMLFormElement} */ (e.currentTarget);
        const from = formValue(form, 'from');
        const to = formValue(form, 'to');
        if (!/^[0-9]+$/.test(from) || !/^[0-9]+$/.test(to)) {
          replace(out, h('div', { role: 'alert', class: 'alert error' }, 'Enter two tree sizes (whole numbers).'));
          return;
        }
        const panel = verifyPanel({ title: `${LOGS[log].title}: size ${from} against size ${to}`, attrs: { 'data-log': log, 'data-check': 'pair' } });
        replace(out, panel.el);
        if (BigInt(from) === 0n) {
          panel.neutral('Nothing to check yet: every log extends the empty tree.');
          return;
        }
        panel.running();
        try {
          const pin = await pinnedKeys(log, h('div'), signal, () => {});
          /** @type {[CheckpointInfo, CheckpointInfo]} */
          const [a, b] = await Promise.all([
            getJson(LOGS[log].checkpoint(from), { signal }),
            getJson(LOGS[log].checkpoint(to), { signal }),
          ]);
          const r = await consistencyCheck(log, a.note, b.note, pin, signal);
          if (r.state === 'neutral') panel.neutral(r.text || 'Nothing to check yet.');
          else panel.done(r.steps, `Consistent: size ${from} is a prefix of size ${to}.`);
        } catch (err) {
          if (isAbort(err)) return;
          panel.done([{ name: 'checkpoint', ok: false, detail: err instanceof Error ? err.message : String(err) }]);
        }
      },
    },
  },
  h('h3', { id: `cs-pair-${log}` }, `Check two ${LOGS[log].title.toLowerCase()} checkpoints`),
  h('div', { class: 'fields' },
    field({ label: 'Older tree size', name: 'from', type: 'number', attrs: { min: 0, step: 1, inputmode: 'numeric' } }),
    field({ label: 'Newer tree size', name: 'to', type: 'number', attrs: { min: 0, step: 1, inputmode: 'numeric' } })),
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Check')));
}
