// #/evidence: search records by label, content type, time and principal;
// pages through results with the server's cursors.

import { getJson, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, fromLocalInput, localTime, toLocalInput } from '../format.js';
import { field, formValue, table } from '../ui.js';
import { pager } from './pager.js';

export const title = 'Evidence';

const PAGE_SIZE = 50;

/** @typedef {{id: string, leaf_index: number, content_type: string, sha256: string, size: number,
 *   labels: Record<string, string>, ingested_at: string, ingested_by: string}} Evidence */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, query, signal, app } = ctx;
  const f = {
    label: query.get('label') || '',
    content_type: query.get('content_type') || '',
    since: query.get('since') || '',
    until: query.get('until') || '',
    principal: query.get('principal') || '',
  };
  const results = h('div', { class: 'results' });
  const form = h('form', {
    class: 'filters card',
    role: 'search',
    'aria-label': 'Search evidence',
    on: {
      submit: (e) => {
        e.preventDefault();
        const el = /** @type {HTMLFormElement} */ (e.currentTarget);
        app.navigate(`#/evidence${qs({
          label: formValue(el, 'label'),
          content_type: formValue(el, 'content_type'),
          since: fromLocalInput(formValue(el, 'since')),
          until: fromLocalInput(formValue(el, 'until')),
          principal: formValue(el, 'principal'),
        })}`);
      },
    },
  },
  h('div', { class: 'fields' },
    field({ label: 'Label', name: 'label', value: f.label, placeholder: 'case=4711', hint: 'key=value; the record must carry it' }),
    field({ label: 'Content type', name: 'content_type', value: f.content_type, placeholder: 'application/json' }),
    field({ label: 'Ingested from', name: 'since', type: 'datetime-local', value: toLocalInput(f.since) }),
    field({ label: 'Ingested before', name: 'until', type: 'datetime-local', value: toLocalInput(f.until) }),
    field({ label: 'Ingested by', name: 'principal', value: f.principal, placeholder: 'principal' })),
  h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Search'),
    h('a', { href: '#/evidence', class: 'button secondary' }, 'Clear')));

  replace(main, h('h1', null, 'Evidence'), form, results);

  const base = {
    label: f.label,
    content_type: f.content_type,
    since: f.since,
    until: f.until,
    ingested_by: f.principal,
    limit: PAGE_SIZE,
  };
  pager(results, signal, async (cursor) => {
    /** @type {{items: Evidence[], next_cursor?: string | null}} */
    const page = await getJson(`/api/v1/evidence${qs({ ...base, cursor })}`, { signal });
    return {
      next: page.next_cursor || null,
      body: page.items.length
        ? table('Evidence records', ['ID', 'Ingested', 'Content type', 'Size', 'Ingested by', 'Labels'],
          page.items.map(row))
        : h('p', { class: 'empty' }, 'No records match.'),
    };
  });
}

/** @param {Evidence} r */
function row(r) {
  return h('tr', { 'data-testid': 'evidence-row' },
    h('td', null, h('a', { href: `#/record/${encodeURIComponent(r.id)}`, class: 'mono' }, r.id)),
    h('td', null, h('time', { datetime: r.ingested_at }, localTime(r.ingested_at))),
    h('td', null, r.content_type),
    h('td', { class: 'num' }, bytes(r.size)),
    h('td', null, r.ingested_by),
    h('td', null, labels(r.labels)));
}

/** @param {Record<string, string>} l */
export function labels(l) {
  const entries = Object.entries(l || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  return h('ul', { class: 'chips' }, entries.map(([k, v]) => h('li', { class: 'chip' }, `${k}=${v}`)));
}
