// #/audit/<id>: one audit event and its inclusion proof in the audit log,
// verified in this browser against the audit log's pinned keys.

import { getText } from '../api.js';
import { h, replace } from '../dom.js';
import { localTime } from '../format.js';
import { LOGS, isEntryId } from '../logs.js';
import { verifyEntry } from '../proofcheck.js';
import { badge, code, errorBox, facts, isAbort, loading, notAnId } from '../ui.js';
import { verifyPanel } from '../verifyview.js';

export const title = 'Audit event';

/** @param {import('../app.js').PageContext} ctx */
export async function render(ctx) {
  const { main, params, signal } = ctx;
  const id = params[0] || '';
  const body = h('div', null, loading());
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/audit' }, '← Audit trail')),
    h('h1', null, 'Audit event ', h('span', { class: 'mono small' }, id)),
    body);
  if (!isEntryId(id)) {
    replace(body, notAnId(id, 'audit event'));
    return;
  }
  /** @type {import('./audit.js').AuditEvent} */
  let ev;
  /** @type {string} */
  let evText;
  try {
    // Kept as text too: the verifier parses it strictly.
    evText = await getText(LOGS.audit.entry(id), { signal });
    ev = JSON.parse(evText);
  } catch (e) {
    if (isAbort(e)) return;
    replace(body, errorBox(e));
    return;
  }
  const pinSlot = h('div', { class: 'pin-slot' });
  const panel = verifyPanel({ title: 'Inclusion in the audit log', page: 'audit-event' });
  replace(body,
    h('div', { class: 'grid two' },
      h('section', { class: 'card', 'aria-labelledby': 'ev-fields' },
        h('h2', { id: 'ev-fields' }, 'Event'),
        ev.id !== id
          ? h('p', { role: 'alert', class: 'alert error', 'data-testid': 'wrong-id' },
            `The server sent audit event ${String(ev.id)} for ${id}.`)
          : null,
        facts([
          ['ID', code(ev.id)],
          ['Leaf index', String(ev.leaf_index)],
          ['Time', h('time', { datetime: ev.time }, localTime(ev.time))],
          ['Outcome', badge(ev.outcome)],
          ['HTTP status', String(ev.status)],
          ['Operation', ev.operation],
          ['Resource', code(ev.resource)],
          ['Principal', ev.principal],
          ['Auth method', ev.auth_method],
          ['Key ID', ev.key_id ? code(ev.key_id) : '—'],
          ['Protocol', ev.protocol],
          ['Client', ev.client],
          ['Request ID', code(ev.request_id)],
          ['Parameters digest', code(ev.params_digest)],
          ['Reason', ev.reason || '—'],
        ])),
      h('div', null, pinSlot, panel.el)));
  const run = () => {
    verifyEntry('audit', id, { panel, pinSlot, signal, rerun: run, record: evText });
  };
  run();
}
