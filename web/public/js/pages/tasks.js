// #/tasks: the caller's tasks with live progress, Cancel and Download.

import { getJson, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { field, formValue, selectField, table } from '../ui.js';
import { FINAL_STATES } from '../sse.js';
import { MAX_LIVE, TASK_HEADERS, taskRow } from '../taskview.js';
import { pager } from './pager.js';

export const title = 'Tasks';

const STATES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, query, signal, app } = ctx;
  const f = { state: query.get('state') || '', kind: query.get('kind') || '' };
  const results = h('div', { class: 'results' });
  const form = h('form', {
    class: 'filters card',
    role: 'search',
    'aria-label': 'Filter tasks',
    on: {
      submit: (e) => {
        e.preventDefault();
        const el = /** @type {HTMLFormElement} */ (e.currentTarget);
        app.navigate(`#/tasks${qs({ state: formValue(el, 'state'), kind: formValue(el, 'kind') })}`);
      },
    },
  },
  h('div', { class: 'fields' },
    selectField('State', 'state', [['', 'Any'], ...STATES.map((s) => /** @type {[string, string]} */ ([s, s]))], f.state),
    field({ label: 'Kind', name: 'kind', value: f.kind, placeholder: 'export_bundle' })),
  h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'button', class: 'secondary', on: { click: () => app.rerender() } }, 'Refresh')));

  replace(main,
    h('h1', null, 'Tasks'),
    h('p', { class: 'lead' }, 'Long-running jobs you started (bundle exports, imports, checks). Running tasks update live.'),
    form, results);

  /** @type {AbortController | null} */
  let pageCtl = null;
  pager(results, signal, async (before) => {
    // Streams of the page left behind stop with it.
    if (pageCtl) pageCtl.abort();
    const ctl = new AbortController();
    pageCtl = ctl;
    signal.addEventListener('abort', () => ctl.abort(), { once: true });
    /** @type {{items: import('../sse.js').Task[], next_before?: string | null}} */
    const page = await getJson(`/api/v1/tasks${qs({ ...f, before, limit: 50 })}`, { signal });
    let live = 0;
    const rows = page.items.map((t) => {
      const follow = !FINAL_STATES.includes(t.state) && live < MAX_LIVE;
      if (follow) live += 1;
      return taskRow(t, ctl.signal, follow);
    });
    const unfollowed = page.items.filter((t) => !FINAL_STATES.includes(t.state)).length - live;
    return {
      next: page.next_before || null,
      body: page.items.length
        ? h('div', null,
          table('Tasks', TASK_HEADERS, rows),
          unfollowed > 0 ? h('p', { class: 'muted' }, `${unfollowed} more unfinished task(s) are not followed live; use Refresh.`) : null)
        : h('p', { class: 'empty' }, 'No tasks.'),
    };
  });
}
