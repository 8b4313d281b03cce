// #/consistency: for each log, the checkpoint this browser verified last,
// the latest one, and a consistency proof between them checked on every
// visit; plus a check between any two checkpoint sizes, and a way to forget
// a log's pinned keys.

import { ApiError, getJson } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, count, localTime } from '../format.js';
import { LOGS } from '../logs.js';
import { consistencyCheck, latestCheck, pinnedKeys, refusedStep } from '../proofcheck.js';
import { forgetPin, getLast, getPin, noteHead, setLast } from '../pins.js';
import { code, disabledNote, errorBox, facts, field, formValue, isAbort, loading } from '../ui.js';
import { verifyPanel } from '../verifyview.js';

export const title = 'Consistency';

/** @typedef {import('../pins.js').LogName} LogName */
/** @typedef {import('../logs.js').CheckpointInfo} CheckpointInfo */
/** @typedef {import('../verifyview.js').Step} Step */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, signal } = ctx;
  replace(main,
    h('h1', null, 'Consistency'),
    h('p', { class: 'lead' },
      'A log must only ever grow. Each visit checks that the latest checkpoint extends the last one this browser verified, with a proof from the server checked here.'));
  for (const log of /** @type {LogName[]} */ (['evidence', 'audit'])) {
    const sec = h('section', { class: 'card log-section', 'aria-labelledby': `cs-${log}`, 'data-log': log },
      h('h2', { id: `cs-${log}` }, LOGS[log].title), loading());
    main.appendChild(sec);
    logSection(sec, log, ctx).catch((e) => {
      // Not reached by design (logSection catches); never left unhandled.
      if (isAbort(e) || signal.aborted) return;
      sec.appendChild(errorBox(e));
    });
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
 * @param {unknown} e
 * @param {string} name
 * @returns {Step}
 */
function failure(e, name) {
  return { name, ok: false, detail: e instanceof Error ? e.message : String(e) };
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
  const panel = verifyPanel({
    title: `${LOGS[log].title}: latest against last verified`,
    page: 'consistency',
    attrs: { 'data-log': log, 'data-check': 'latest' },
  });
  const pairBox = h('div', { class: 'pair-result' });
  const forget = forgetControl(log, ctx);
  replace(sec, heading,
    pinSlot,
    h('div', { class: 'grid two' },
      h('div', null, h('h3', null, 'Last verified in this browser'), lastBox),
      h('div', null, h('h3', null, 'Latest checkpoint'), latestBox)),
    panel.el,
    pairForm(log, ctx, pairBox),
    pairBox,
    forget.el);
  try {
    await latestSection({ sec, heading, log, ctx, pinSlot, lastBox, latestBox, panel, forget });
  } catch (e) {
    if (isAbort(e) || signal.aborted) return;
    // Whatever went wrong, the panel must not stay "running".
    panel.done([failure(e, 'checkpoint')]);
  } finally {
    forget.refresh();
  }
}

/**
 * The latest-against-last check of one log's section.
 * @param {{sec: HTMLElement, heading: HTMLElement, log: LogName, ctx: import('../app.js').PageContext,
 *   pinSlot: HTMLElement, lastBox: HTMLElement, latestBox: HTMLElement,
 *   panel: import('../verifyview.js').Panel, forget: {el: HTMLElement, refresh: () => void}}} s
 */
async function latestSection(s) {
  const { sec, heading, log, ctx, pinSlot, lastBox, latestBox, panel, forget } = s;
  const { signal } = ctx;
  const lastNote = getLast(log);
  replace(lastBox, noteFacts(lastNote, 'None yet: this browser has not verified a checkpoint of this log.'));
  let pinned;
  try {
    pinned = await pinnedKeys(log, pinSlot, signal, () => ctx.app.rerender());
  } catch (e) {
    if (isAbort(e)) return;
    // "This server keeps no such log" is only believable for the audit log
    // (it can be off) and only while this browser knows nothing of it: a
    // log that was pinned or verified here and now is gone is a rollback.
    const off = log === 'audit' && !lastNote && !getPin(log) ? disabledNote(e) : null;
    if (off) {
      replace(sec, heading, off, forget.el);
      return;
    }
    replace(pinSlot, errorBox(e));
    panel.done([failure(e, 'key')]);
    return;
  }
  const refused = refusedStep(pinned);
  if (refused) {
    replace(latestBox);
    panel.done([refused]);
    return;
  }
  /** @type {CheckpointInfo} */
  let latest;
  try {
    latest = await getJson(LOGS[log].latest, { signal });
  } catch (e) {
    if (isAbort(e)) return;
    // Only "no checkpoint yet" is nothing to check; a refusal, a server
    // error or no answer at all is a failure to check.
    if (e instanceof ApiError && e.status === 404) {
      replace(latestBox, h('p', { class: 'muted' }, 'None signed yet.'));
      const seen = lastNote ? noteHead(lastNote) : null;
      if (lastNote) {
        // A log this browser saw signed now claims to have no checkpoint:
        // the same rollback as a smaller tree.
        panel.done([{
          name: 'consistency',
          ok: false,
          detail: `the server says no checkpoint is signed, but this browser verified one of size ${seen ? seen.size : '?'}`,
        }]);
        return;
      }
      panel.neutral('Nothing to check yet: the log has no checkpoint to compare.');
      return;
    }
    replace(latestBox, errorBox(e));
    panel.done([{ name: 'checkpoint', ok: false, detail: `could not fetch the latest checkpoint: ${e instanceof Error ? e.message : String(e)}` }]);
    return;
  }
  if (!latest || typeof latest !== 'object' || typeof latest.note !== 'string' || !noteHead(latest.note)) {
    replace(latestBox, h('p', { class: 'muted' }, 'The server\'s reply has no checkpoint note.'));
    panel.done([{ name: 'checkpoint', ok: false, detail: 'the latest checkpoint reply carries no checkpoint note' }]);
    return;
  }
  const created = typeof latest.created_at === 'string' ? latest.created_at : '';
  replace(latestBox,
    created
      ? h('p', null, 'Signed ', h('time', { datetime: created, title: localTime(created) }, ago(new Date(created))), '.')
      : null,
    noteFacts(latest.note, ''));

  // Without an earlier checkpoint, the latest is checked against itself:
  // that checks its signatures and makes it the starting point.
  const r = await latestCheck(log, lastNote, latest.note, pinned, signal).catch((e) => {
    if (isAbort(e)) return null;
    return /** @type {import('../proofcheck.js').CheckResult} */ ({
      state: 'failed', steps: [failure(e, 'consistency')], text: '',
    });
  });
  if (!r || signal.aborted) return;
  if (r.state === 'neutral') {
    panel.neutral(r.text || 'Nothing to check yet.');
    return;
  }
  if (r.state === 'verified') {
    // latestCheck verifies only a latest checkpoint at least as large as
    // the last verified one, so this never moves the mark back.
    const stored = setLast(log, latest.note);
    if (stored) replace(lastBox, noteFacts(latest.note, ''));
    const lastHead = lastNote ? noteHead(lastNote) : null;
    const latestHead = noteHead(latest.note);
    panel.done(r.steps, lastHead && latestHead
      ? `Consistent: the latest checkpoint (size ${latestHead.size}) extends the one verified here before (size ${lastHead.size}).`
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
  /** @type {AbortController | null} */
  let current = null;
  return h('form', {
    class: 'pair',
    'aria-labelledby': `cs-pair-${log}`,
    on: {
      submit: async (e) => {
        e.preventDefault();
        // A new check supersedes one still running.
        if (current) current.abort();
        const ctl = new AbortController();
        current = ctl;
        ctx.signal.addEventListener('abort', () => ctl.abort(), { once: true });
        const { signal } = ctl;
        const form = /** @type {HTMLFormElement} */ (e.currentTarget);
        const from = formValue(form, 'from');
        const to = formValue(form, 'to');
        if (!/^[0-9]{1,20}$/.test(from) || !/^[0-9]{1,20}$/.test(to)) {
          replace(out, h('div', { role: 'alert', class: 'alert error' }, 'Enter two tree sizes (whole numbers).'));
          return;
        }
        const fromSize = BigInt(from);
        const toSize = BigInt(to);
        if (fromSize > toSize) {
          replace(out, h('div', { role: 'alert', class: 'alert error', 'data-testid': 'pair-order' },
            `The older size (${fromSize}) is larger than the newer size (${toSize}). A log only grows, so an older tree is never the larger; enter the smaller size first.`));
          return;
        }
        const panel = verifyPanel({
          title: `${LOGS[log].title}: size ${fromSize} against size ${toSize}`,
          page: 'consistency',
          attrs: { 'data-log': log, 'data-check': 'pair' },
        });
        replace(out, panel.el);
        if (fromSize === 0n) {
          panel.neutral('Nothing to check yet: every log extends the empty tree.');
          return;
        }
        panel.running();
        try {
          const pinned = await pinnedKeys(log, h('div'), signal, () => {});
          const refused = refusedStep(pinned);
          if (refused) {
            panel.done([refused]);
            return;
          }
          /** @type {[CheckpointInfo, CheckpointInfo]} */
          const [a, b] = await Promise.all([
            getJson(LOGS[log].checkpoint(fromSize), { signal }),
            getJson(LOGS[log].checkpoint(toSize), { signal }),
          ]);
          if (signal.aborted) return;
          // The verdict is about the sizes asked for: the server's
          // checkpoints must be of those sizes (the size is a signed line
          // of the note, so what is compared here is what is verified).
          const sizeStep = sizeMismatch(a, fromSize, 'older') || sizeMismatch(b, toSize, 'newer');
          if (sizeStep) {
            panel.done([sizeStep]);
            return;
          }
          const r = await consistencyCheck(log, a.note, b.note, pinned, signal);
          if (signal.aborted) return;
          if (r.state === 'neutral') panel.neutral(r.text || 'Nothing to check yet.');
          else panel.done(r.steps, `Consistent, verified in your browser: the signed checkpoint of size ${toSize} extends the one of size ${fromSize}.`);
        } catch (err) {
          if (isAbort(err) || signal.aborted) return;
          panel.done([failure(err, 'checkpoint')]);
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

/**
 * The failed 'checkpoint' step when the server sent a checkpoint of
 * another size than the one asked for, or null.
 * @param {unknown} cp the server's reply
 * @param {bigint} asked
 * @param {string} which "older" or "newer"
 * @returns {Step | null}
 */
function sizeMismatch(cp, asked, which) {
  const note = cp && typeof cp === 'object' ? /** @type {Record<string, unknown>} */ (cp).note : null;
  const head = typeof note === 'string' ? noteHead(note) : null;
  if (!head) return { name: 'checkpoint', ok: false, detail: `the server sent no checkpoint note for size ${asked}` };
  if (head.size !== asked) {
    return {
      name: 'checkpoint',
      ok: false,
      detail: `asked for the ${which} checkpoint of size ${asked}, the server sent one of size ${head.size}`,
    };
  }
  return null;
}

/**
 * "Forget pinned keys": a button that opens a confirmation (Forget or
 * Cancel, Escape cancels), then forgets the log's pin and last verified
 * checkpoint and shows the page again (which pins on first use again).
 * @param {LogName} log
 * @param {import('../app.js').PageContext} ctx
 * @returns {{el: HTMLElement, refresh: () => void}}
 */
function forgetControl(log, ctx) {
  const which = LOGS[log].title.toLowerCase();
  const box = h('div', { class: 'forget', 'data-testid': 'forget-pin', 'data-log': log });
  const closed = () => {
    const open = h('button', {
      type: 'button',
      class: 'secondary',
      on: { click: () => opened() },
    }, `Forget the ${which}'s pinned keys…`);
    replace(box, h('h3', null, 'Pinned keys'),
      h('p', { class: 'muted' }, getPin(log)
        ? `This browser pinned the ${which}'s keys on first use. Forget them only if the operator confirms the log was replaced or its keys changed.`
        : `No keys of the ${which} are pinned in this browser.`),
      getPin(log) ? h('p', null, open) : null);
    return open;
  };
  const opened = () => {
    const cancel = () => {
      const open = closed();
      open.focus();
    };
    const yes = h('button', {
      type: 'button',
      class: 'danger',
      on: {
        click: () => {
          forgetPin(log);
          ctx.app.rerender();
        },
      },
    }, `Forget the ${which}'s keys`);
    const no = h('button', { type: 'button', class: 'secondary', on: { click: cancel } }, 'Cancel');
    const q = h('div', {
      role: 'group',
      class: 'confirm alert warn',
      'aria-labelledby': `forget-q-${log}`,
      on: {
        keydown: (/** @type {Event} */ ev) => {
          if (/** @type {KeyboardEvent} */ (ev).key === 'Escape') {
            ev.preventDefault();
            cancel();
          }
        },
      },
    },
    h('p', { id: `forget-q-${log}` },
      h('strong', null, `Forget the ${which}'s pinned keys and its last verified checkpoint? `),
      'The next check pins whatever keys the server offers then, and its history starts again from the latest checkpoint.'),
    h('p', { class: 'actions' }, yes, ' ', no));
    replace(box, h('h3', null, 'Pinned keys'), q);
    yes.focus();
  };
  closed();
  return {
    el: box,
    /** Shows the pin as it is now (after the check pinned on first use), unless a confirmation is open. */
    refresh() {
      if (!box.querySelector('.confirm')) closed();
    },
  };
}
