// #/audit: the audit trail (every API call), filtered by principal,
// operation, outcome and time.

import { getJson, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { fromLocalInput, localTime, toLocalInput } from '../format.js';
import { badge, field, formValue, selectField, table } from '../ui.js';
import { pager } from './pager.js';

export const title = 'Audit';

const PAGE_SIZE = 50;
const OUTCOMES = ['success', 'denied', 'unauthenticated', 'failed'];

/** @typedef {{id: string, leaf_index: number, time: string, request_id: string, principal: string,
 *   key_id?: string, auth_method: string, protocol: string, operation: string, resource: string,
 *   outcome: string, status: number, client: string, params_digest: string, reason?: string}} AuditEvent */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, query, signal, app } = ctx;
  const f = {
    principal: query.get('principal') || '',
    operation: query.get('operation') || '',
    outcome: query.get('outcome') || '',
    since: query.get('since') || '',
    until: query.get('until') || '',
  };
  const results = h('div', { class: 'results' });
  const form = h('form', {
    class: 'filters card',
    role: 'search',
    'aria-label': 'Filter audit events',
    on: {
      submit: (e) => {
        e.preventDefault();
        const el = /** @type {HTMLFormElement} */ (e.currentTarget);
        app.navigate(`#/audit${qs({
          principal: formValue(el, 'principal'),
          operation: formValue(el, 'operation'),
          outcome: formValue(el, 'outcome'),
          since: fromLocalInput(formValue(el, 'since')),
          until: fromLocalInput(formValue(el, 'until')),
        })}`);
      },
    },
  },
  h('div', { class: 'fields' },
    field({ label: 'Principal', name: 'principal', value: f.principal, placeholder: 'anonymous' }),
    field({ label: 'Operation', name: 'operation', value: f.operation, placeholder: 'evidence.put' }),
    selectField('Outcome', 'outcome', [['', 'Any'], ...OUTCOMES.map((o) => /** @type {[string, string]} */ ([o, o]))], f.outcome),
    field({ label: 'From', name: 'since', type: 'datetime-local', value: toLocalInput(f.since) }),
    field({ label: 'Before', name: 'until', type: 'datetime-local', value: toLocalInput(f.until) })),
  h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '#/audit', class: 'button secondary' }, 'Clear')));

  replace(main, h('h1', null, 'Audit trail'), form, results);

  pager(results, signal, async (cursor) => {
    /** @type {{items: AuditEvent[], next_cursor?: string | null}} */
    const page = await getJson(`/api/v1/audit${qs({ ...f, limit: PAGE_SIZE, cursor })}`, { signal });
    return {
      next: page.next_cursor || null,
      body: page.items.length
        ? table('Audit events', ['Time', 'Outcome', 'Operation', 'Principal', 'Status', 'Resource', 'Event'],
          page.items.map(row))
        : h('p', { class: 'empty' }, 'No events match.'),
    };
  });
}

/** @param {AuditEvent} ev */
function row(ev) {
  return h('tr', { 'data-testid': 'audit-row', 'data-outcome': ev.outcome },
    h('td', null, h('time', { datetime: ev.time }, localTime(ev.time))),
    h('td', null, badge(ev.outcome)),
    h('td', null, ev.operation),
    h('td', null, ev.principal),
    h('td', { class: 'num' }, String(ev.status)),
    h('td', { class: 'clip' }, ev.resource),
    h('td', null, h('a', { href: `#/audit/${encodeURIComponent(ev.id)}`, class: 'mono' }, ev.id)));
}
