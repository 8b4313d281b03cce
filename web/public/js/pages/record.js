// #/record/<id>: one evidence record, its payload, and its inclusion proof
// verified in this browser against the pinned keys.

import { getText, request } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, localTime } from '../format.js';
import { LOGS, isEntryId } from '../logs.js';
import { verifyEntry } from '../proofcheck.js';
import { code, errorBox, facts, isAbort, loading, notAnId, safeFilename, saveBlob, table } from '../ui.js';
import { stepItem, verifyPanel } from '../verifyview.js';
import { verifyPayload } from '../verify/verify.js';

export const title = 'Record';

/** @typedef {import('./evidence.js').Evidence} Evidence */

/** @param {import('../app.js').PageContext} ctx */
export async function render(ctx) {
  const { main, params, signal } = ctx;
  const id = params[0] || '';
  const body = h('div', null, loading());
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/evidence' }, '← Evidence')),
    h('h1', null, 'Record ', h('span', { class: 'mono small' }, id)),
    body);
  if (!isEntryId(id)) {
    // Checked before any request: a dot segment would become another path.
    replace(body, notAnId(id, 'record'));
    return;
  }
  /** @type {Evidence} */
  let rec;
  /** @type {string} */
  let recText;
  try {
    // Kept as text too: the verifier parses it strictly.
    recText = await getText(LOGS.evidence.entry(id), { signal });
    rec = JSON.parse(recText);
  } catch (e) {
    if (isAbort(e)) return;
    replace(body, errorBox(e));
    return;
  }
  const pinSlot = h('div', { class: 'pin-slot' });
  const panel = verifyPanel({ title: 'Inclusion proof', page: 'record' });
  const payloadBox = h('div', { class: 'payload-result' });
  const download = h('button', {
    type: 'button',
    on: { click: () => fetchPayload(id, rec, payloadBox, download) },
  }, 'Download payload');
  const labelRows = Object.entries(rec.labels || {}).map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v)));
  replace(body,
    h('div', { class: 'grid two' },
      h('section', { class: 'card', 'aria-labelledby': 'rec-meta' },
        h('h2', { id: 'rec-meta' }, 'Metadata'),
        rec.id !== id
          ? h('p', { role: 'alert', class: 'alert error', 'data-testid': 'wrong-id' },
            `The server sent record ${String(rec.id)} for ${id}.`)
          : null,
        facts([
          ['ID', code(rec.id)],
          ['Leaf index', String(rec.leaf_index)],
          ['Content type', rec.content_type],
          ['Size', `${bytes(rec.size)} (${rec.size.toLocaleString()} bytes)`],
          ['SHA-256', code(rec.sha256)],
          ['Ingested', h('time', { datetime: rec.ingested_at }, localTime(rec.ingested_at))],
          ['Ingested by', rec.ingested_by],
        ]),
        h('h3', null, 'Labels'),
        labelRows.length
          ? table('Labels', ['Key', 'Value'], labelRows)
          : h('p', { class: 'muted' }, 'No labels.'),
        h('h3', null, 'Payload'),
        h('p', null, download),
        payloadBox),
      h('div', null, pinSlot, panel.el)));
  const run = () => {
    verifyEntry('evidence', id, { panel, pinSlot, signal, rerun: run, record: recText });
  };
  run();
}

/**
 * Fetches the payload of record `id` with the token, checks it against the
 * record's hash, and saves it; a mismatch is shown and the file is saved
 * only on request.
 * @param {string} id  checked (isEntryId)
 * @param {Evidence} rec
 * @param {HTMLElement} box
 * @param {HTMLButtonElement} button
 */
async function fetchPayload(id, rec, box, button) {
  button.setAttribute('aria-busy', 'true');
  replace(box, loading('Downloading…'));
  try {
    const resp = await request(`${LOGS.evidence.entry(id)}/payload`, { accept: '*/*' });
    const buf = new Uint8Array(await resp.arrayBuffer());
    const outcome = await verifyPayload(buf, rec);
    const step = outcome.steps[0] || { name: 'payload', ok: false, detail: 'not checked' };
    // Saved as bytes, never as a type the browser might render.
    const blob = new Blob([buf], { type: 'application/octet-stream' });
    const name = safeFilename(`${id}${extension(rec.content_type)}`);
    if (outcome.ok && step.ok) {
      replace(box, h('ul', { class: 'steps' }, stepItem(step, 'payload-step')));
      saveBlob(blob, name);
    } else {
      replace(box,
        h('div', { role: 'alert', class: 'alert error' },
          h('span', { class: 'icon', 'aria-hidden': 'true' }, '✗'), ' ',
          h('strong', null, 'The payload does not match the record. '), step.detail),
        h('ul', { class: 'steps' }, stepItem(step, 'payload-step')),
        h('button', { type: 'button', class: 'secondary', on: { click: () => saveBlob(blob, name) } }, 'Save the mismatching file anyway'));
    }
  } catch (e) {
    replace(box, errorBox(e));
  } finally {
    button.removeAttribute('aria-busy');
  }
}

/** A file extension for common types; other types get none. @param {string} type */
function extension(type) {
  const t = type.split(';')[0].trim().toLowerCase();
  /** @type {Record<string, string>} */
  const map = {
    'application/json': '.json', 'text/plain': '.txt', 'application/pdf': '.pdf',
    'text/csv': '.csv', 'image/png': '.png', 'image/jpeg': '.jpg', 'application/xml': '.xml',
    'text/xml': '.xml', 'application/zip': '.zip', 'application/gzip': '.gz',
  };
  return map[t] || '.bin';
}
