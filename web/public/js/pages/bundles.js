// #/bundles: export an evidence bundle (.evb) as an `export_bundle` task,
// follow it live, and download it when it succeeded.

import { getJson, postJson, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, count, fromLocalInput } from '../format.js';
import { FINAL_STATES, followTask } from '../sse.js';
import { actionsOf, progressOf, taskRow, MAX_LIVE, TASK_HEADERS } from '../taskview.js';
import { badge, checkField, code, errorBox, facts, field, formValue, isAbort, loading, table } from '../ui.js';

export const title = 'Bundles';

/** @typedef {import('../sse.js').Task} Task */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, signal } = ctx;
  const current = h('div', { class: 'current-task' });
  const recent = h('div', null, loading());
  const reloadRecent = recentList(recent, signal);
  const formStatus = h('div');
  const form = h('form', {
    class: 'card',
    'aria-labelledby': 'bundle-h',
    on: {
      submit: async (e) => {
        e.preventDefault();
        const el = /** @type {HTMLFormElement} */ (e.currentTarget);
        replace(formStatus);
        const params = paramsOf(el);
        if (typeof params === 'string') {
          replace(formStatus, h('div', { role: 'alert', class: 'alert error' }, params));
          return;
        }
        try {
          /** @type {Task} */
          const task = await postJson('/api/v1/tasks', { kind: 'export_bundle', params }, { signal });
          showTask(current, task, signal);
          reloadRecent();
        } catch (err) {
          if (isAbort(err)) return;
          replace(formStatus, errorBox(err));
        }
      },
    },
  },
  h('h2', { id: 'bundle-h' }, 'New export'),
  h('p', { class: 'muted' }, 'Every field is optional: an empty form exports every record you may read, against the latest checkpoint.'),
  h('div', { class: 'fields' },
    field({ label: 'From leaf index', name: 'leaf_from', type: 'number', hint: 'inclusive', attrs: { min: 0, step: 1, inputmode: 'numeric' } }),
    field({ label: 'To leaf index', name: 'leaf_to', type: 'number', hint: 'exclusive', attrs: { min: 1, step: 1, inputmode: 'numeric' } }),
    field({ label: 'Label', name: 'label', placeholder: 'case=4711', hint: 'key=value; every record must carry it' }),
    field({ label: 'Content type', name: 'content_type', placeholder: 'application/json' }),
    field({ label: 'Ingested from', name: 'since', type: 'datetime-local' }),
    field({ label: 'Ingested before', name: 'until', type: 'datetime-local' })),
  checkField('Include payloads', 'payloads', false),
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start export')),
  formStatus);

  replace(main,
    h('h1', null, 'Bundles'),
    h('p', { class: 'lead' },
      'An evidence bundle holds records, their inclusion proofs and the signed checkpoint, to verify offline with ',
      code('evault verify'), '.'),
    form,
    current,
    h('section', { 'aria-labelledby': 'recent-h' }, h('h2', { id: 'recent-h' }, 'Recent exports'), recent));
  reloadRecent();
}

/**
 * The export_bundle parameters from the form, or why they are wrong.
 * @param {HTMLFormElement} form
 * @returns {Record<string, unknown> | string}
 */
function paramsOf(form) {
  /** @type {Record<string, unknown>} */
  const p = {};
  for (const name of ['leaf_from', 'leaf_to']) {
    const v = formValue(form, name);
    if (!v) continue;
    if (!/^[0-9]{1,15}$/.test(v)) return `${name === 'leaf_from' ? 'From' : 'To'} leaf index must be a whole number.`;
    p[name] = Number(v);
  }
  if (typeof p.leaf_from === 'number' && typeof p.leaf_to === 'number' && p.leaf_from >= p.leaf_to) {
    return 'From leaf index must be below To leaf index.';
  }
  const label = formValue(form, 'label');
  if (label) {
    const eq = label.indexOf('=');
    if (eq < 1) return 'Label must be key=value.';
    p.labels = { [label.slice(0, eq)]: label.slice(eq + 1) };
  }
  const ct = formValue(form, 'content_type');
  if (ct) p.content_type = ct;
  const since = fromLocalInput(formValue(form, 'since'));
  if (since) p.since = since;
  const until = fromLocalInput(formValue(form, 'until'));
  if (until) p.until = until;
  p.payloads = formValue(form, 'payloads') === 'on';
  return p;
}

/**
 * The task just started, live until it ends.
 * @param {HTMLElement} box
 * @param {Task} task
 * @param {AbortSignal} signal
 */
function showTask(box, task, signal) {
  const stateEl = h('p', { class: 'task-state' });
  const progressEl = h('div');
  const summaryEl = h('div');
  const actionsEl = h('div', { class: 'actions' });
  const status = h('div');
  const card = h('section', { class: 'card', tabindex: -1, 'data-testid': 'bundle-task', 'aria-labelledby': 'cur-h', 'aria-live': 'polite' },
    h('h2', { id: 'cur-h' }, 'Export ', h('span', { class: 'mono small' }, task.id)),
    stateEl, progressEl, summaryEl, actionsEl, status);
  /** @type {string | null} */
  let shown = null;
  /** @param {Task} t */
  const update = (t) => {
    card.setAttribute('data-state', t.state);
    replace(progressEl, progressOf(t));
    if (t.state === shown) return;
    shown = t.state;
    const focused = actionsEl.contains(document.activeElement);
    replace(stateEl, 'State: ', badge(t.state), t.error ? h('span', { class: 'error-text' }, ` ${t.error}`) : null);
    replace(summaryEl, t.summary ? summary(t.summary) : null);
    replace(actionsEl, actionsOf(t, update, status));
    if (focused) actionsEl.querySelector('button')?.focus();
  };
  update(task);
  replace(box, card);
  card.focus();
  if (!FINAL_STATES.includes(task.state)) followTask(task.id, update, signal);
}

/** @param {{[k: string]: unknown}} s */
function summary(s) {
  /** @param {unknown} v */
  const n = (v) => (typeof v === 'number' ? count(v) : String(v ?? '—'));
  return facts([
    ['Records', n(s.records)],
    ['Payloads', n(s.payloads)],
    ['Tree size', n(s.tree_size)],
    ['Size', typeof s.bytes === 'number' ? bytes(s.bytes) : n(s.bytes)],
    ['Manifest SHA-256', code(String(s.manifest_sha256 ?? '—'))],
  ]);
}

/**
 * The latest exports; returns a reload function that stops the previous
 * list's streams.
 * @param {HTMLElement} box
 * @param {AbortSignal} signal
 * @returns {() => Promise<void>}
 */
function recentList(box, signal) {
  /** @type {AbortController | null} */
  let ctl = null;
  return async () => {
    if (ctl) ctl.abort();
    const mine = new AbortController();
    ctl = mine;
    signal.addEventListener('abort', () => mine.abort(), { once: true });
    try {
      /** @type {{items: Task[]}} */
      const page = await getJson(`/api/v1/tasks${qs({ kind: 'export_bundle', limit: 10 })}`, { signal: mine.signal });
      let live = 0;
      replace(box, page.items.length
        ? table('Recent export tasks', TASK_HEADERS, page.items.map((t) => {
          const follow = !FINAL_STATES.includes(t.state) && live < MAX_LIVE - 1;
          if (follow) live += 1;
          return taskRow(t, mine.signal, follow);
        }))
        : h('p', { class: 'empty' }, 'No exports yet.'));
    } catch (e) {
      if (isAbort(e)) return;
      replace(box, errorBox(e));
    }
  };
}
