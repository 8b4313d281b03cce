// How tasks are shown and acted on: state badge, progress bar, Cancel and
// Download. Shared by the tasks and bundles pages.

import { postJson, request } from './api.js';
import { h, replace } from './dom.js';
import { bytes, localTime } from './format.js';
import { FINAL_STATES, followTask } from './sse.js';
import { badge, errorBox, safeFilename, saveBlob } from './ui.js';

/** @typedef {import('./sse.js').Task} Task */

/**
 * A progress bar with its numbers in words.
 * @param {Task} t
 */
export function progressOf(t) {
  const { done, total } = t.progress || { done: 0 };
  const known = typeof total === 'number' && total > 0;
  const finished = t.state === 'succeeded';
  /** @type {import('./dom.js').Attrs} */
  const attrs = { 'aria-label': `Progress of task ${t.id}` };
  if (known) {
    attrs.max = total;
    attrs.value = Math.min(done, total);
  } else if (finished) {
    attrs.max = 1;
    attrs.value = 1;
  }
  // Without value the bar is indeterminate: running, size unknown yet.
  const bar = h('progress', attrs);
  const words = known ? `${done.toLocaleString()} / ${total.toLocaleString()}` : (done ? `${done.toLocaleString()} done` : '');
  return h('span', { class: 'progress' }, bar, words ? h('span', { class: 'muted' }, ` ${words}`) : null);
}

/**
 * What a downloaded result's SHA-256 says against the one the task
 * reported: saved only when they match, or (saying so) when the task
 * reported none, as there is then nothing to check against.
 * @param {Task} t
 * @param {string} hex the SHA-256 of the downloaded bytes, lower-case hex
 * @param {number} size the downloaded size in bytes
 * @returns {{save: boolean, text: string}}
 */
export function digestVerdict(t, hex, size) {
  const reported = t.result && typeof t.result.sha256 === 'string' ? t.result.sha256.trim().toLowerCase() : '';
  if (!reported) {
    return {
      save: true,
      text: `Saved (${bytes(size)}). Not checked: the task reported no SHA-256, so there was no digest to check against; the file's SHA-256 is ${hex}.`,
    };
  }
  if (reported !== hex) {
    return {
      save: false,
      text: `The downloaded file's SHA-256 (${hex}) is not the one the task reported (${reported}); not saved.`,
    };
  }
  return { save: true, text: `Saved (${bytes(size)}, SHA-256 checked against the one the task reported).` };
}

/**
 * Fetches a task's result with the token and saves it, after checking its
 * SHA-256 against the one the task reported.
 * @param {Task} t
 * @param {HTMLElement} status where errors go
 */
export async function downloadResult(t, status) {
  replace(status);
  try {
    const resp = await request(`/api/v1/tasks/${encodeURIComponent(t.id)}/result`, { accept: 'application/octet-stream' });
    const buf = await resp.arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    const v = digestVerdict(t, hex, buf.byteLength);
    if (!v.save) {
      replace(status, h('div', { role: 'alert', class: 'alert error' }, v.text));
      return;
    }
    const ext = t.kind === 'export_bundle' ? '.evb' : (t.kind === 'fsck' ? '.json' : '.bin');
    saveBlob(new Blob([buf], { type: 'application/octet-stream' }), safeFilename(`evault-${t.kind}-${t.id}${ext}`));
    replace(status, h('p', { class: 'muted', role: 'status', 'data-testid': 'download-status' }, v.text));
  } catch (e) {
    replace(status, errorBox(e));
  }
}

/**
 * Cancel and Download buttons as the task's state allows.
 * @param {Task} t
 * @param {(t: Task) => void} onUpdate
 * @param {HTMLElement} status
 */
export function actionsOf(t, onUpdate, status) {
  /** @type {HTMLElement[]} */
  const out = [];
  if ((t.state === 'pending' || t.state === 'running') && !t.cancel_requested) {
    out.push(h('button', {
      type: 'button',
      class: 'secondary',
      'aria-label': `Cancel task ${t.id}`,
      on: {
        click: async () => {
          replace(status);
          try {
            onUpdate(await postJson(`/api/v1/tasks/${encodeURIComponent(t.id)}/cancel`, undefined));
          } catch (e) {
            replace(status, errorBox(e));
          }
        },
      },
    }, 'Cancel'));
  } else if (t.cancel_requested && !FINAL_STATES.includes(t.state)) {
    out.push(h('span', { class: 'muted' }, 'cancelling…'));
  }
  if (t.state === 'succeeded' && t.result && t.result.available) {
    out.push(h('button', {
      type: 'button',
      'aria-label': `Download the result of task ${t.id}`,
      on: { click: () => downloadResult(t, status) },
    }, 'Download'));
  }
  return out;
}

/**
 * A table row for a task that keeps itself current over SSE while the task
 * runs. Cells are updated in place so a focused button survives updates
 * that do not change the state.
 * @param {Task} task
 * @param {AbortSignal} signal
 * @param {boolean} [live] follow it over SSE (browsers allow only a few
 *   open connections per server, so a long list follows only some)
 */
export function taskRow(task, signal, live = true) {
  // Focus lands on the state when the button that had it goes away.
  const stateCell = h('td', { tabindex: -1 });
  const progressCell = h('td');
  const actionsCell = h('div', { class: 'actions-cell' });
  const status = h('div', { class: 'row-status' });
  const finishedCell = h('td');
  const tr = h('tr', { 'data-testid': 'task-row', 'data-task-id': task.id },
    h('td', null, h('span', { class: 'mono nowrap' }, task.id)),
    h('td', null, task.kind),
    stateCell,
    progressCell,
    h('td', null, h('time', { datetime: task.created }, localTime(task.created))),
    finishedCell,
    h('td', null, actionsCell, status));
  /** @type {string | null} */
  let shownState = null;
  let shownCancel = false;
  /** @param {Task} t */
  const update = (t) => {
    tr.setAttribute('data-state', t.state);
    replace(progressCell, progressOf(t));
    if (t.state !== shownState || t.cancel_requested !== shownCancel) {
      shownState = t.state;
      shownCancel = t.cancel_requested;
      const focused = actionsCell.contains(document.activeElement);
      replace(stateCell, badge(t.state), t.error ? h('div', { class: 'error-text' }, t.error) : null);
      replace(actionsCell, actionsOf(t, update, status));
      replace(finishedCell, t.finished ? h('time', { datetime: t.finished }, localTime(t.finished)) : '—');
      if (focused) {
        const b = actionsCell.querySelector('button');
        if (b) b.focus();
        else stateCell.focus();
      }
    }
  };
  update(task);
  if (live && !FINAL_STATES.includes(task.state)) followTask(task.id, update, signal);
  return tr;
}

/** How many tasks of one list are followed live at once. */
export const MAX_LIVE = 4;

export const TASK_HEADERS = ['Task', 'Kind', 'State', 'Progress', 'Created', 'Finished', 'Actions'];
