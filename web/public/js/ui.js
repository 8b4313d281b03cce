// Small building blocks shared by the pages: error notes, labelled fields,
// tables, badges and downloads.

import { ApiError } from './api.js';
import { blobUrl, h, newId, revokeBlobUrl } from './dom.js';

/**
 * An error for the user. A 403 is a short note (the role may not see it),
 * anything else an alert with the problem's title and detail.
 * @param {unknown} err
 * @returns {HTMLElement}
 */
export function errorBox(err) {
  if (err instanceof ApiError && err.status === 403) {
    return h('p', { class: 'note forbidden', 'data-testid': 'forbidden' },
      h('span', { class: 'icon', 'aria-hidden': 'true' }, '⊘'), ' ',
      'Your role may not see this.',
      err.detail ? h('span', { class: 'muted' }, ` (${err.detail})`) : null);
  }
  let title = 'Error';
  let detail = '';
  if (err instanceof ApiError) {
    title = err.title;
    detail = err.detail;
  } else if (err instanceof Error) {
    detail = err.message;
  } else {
    detail = String(err);
  }
  return h('div', { role: 'alert', class: 'alert error' },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, '✗'), ' ',
    h('strong', null, title),
    detail ? h('span', null, ` ${detail}`) : null);
}

/**
 * A note for a log the server does not keep (the audit trail can be
 * off), or null for any other error.
 * @param {unknown} e
 */
export function disabledNote(e) {
  return e instanceof ApiError && e.status === 404
    ? h('p', { class: 'note' }, 'This server does not keep this log (the audit trail is disabled).')
    : null;
}

/** Whether `e` is the abort of a page left behind (not worth showing). @param {unknown} e */
export function isAbort(e) {
  return e instanceof DOMException && e.name === 'AbortError';
}

/** @param {string} [text] */
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading muted', role: 'status' }, text);
}

/**
 * @typedef {{label: string, name: string, type?: string, value?: string,
 *   placeholder?: string, hint?: string, attrs?: import('./dom.js').Attrs}} FieldSpec
 */

/**
 * A labelled input, with an optional hint tied by aria-describedby.
 * @param {FieldSpec} f
 */
export function field(f) {
  const id = newId(`f-${f.name}`);
  const hintId = f.hint ? `${id}-hint` : null;
  const input = h('input', {
    id,
    name: f.name,
    type: f.type || 'text',
    placeholder: f.placeholder,
    'aria-describedby': hintId,
    autocomplete: 'off',
    ...(f.attrs || {}),
    props: { value: f.value || '' },
  });
  return h('div', { class: 'field' },
    h('label', { for: id }, f.label),
    input,
    f.hint ? h('small', { id: hintId, class: 'hint' }, f.hint) : null);
}

/**
 * A labelled select.
 * @param {string} label
 * @param {string} name
 * @param {Array<[string, string]>} options value and text
 * @param {string} value
 */
export function selectField(label, name, options, value) {
  const id = newId(`f-${name}`);
  const sel = h('select', { id, name },
    options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  return h('div', { class: 'field' }, h('label', { for: id }, label), sel);
}

/**
 * A labelled checkbox.
 * @param {string} label
 * @param {string} name
 * @param {boolean} checked
 */
export function checkField(label, name, checked) {
  const id = newId(`f-${name}`);
  return h('div', { class: 'field check' },
    h('input', { id, name, type: 'checkbox', props: { checked } }),
    h('label', { for: id }, label));
}

/**
 * The named control's current value in `form`.
 * @param {HTMLFormElement} form
 * @param {string} name
 */
export function formValue(form, name) {
  const el = form.elements.namedItem(name);
  if (el instanceof HTMLInputElement && el.type === 'checkbox') return el.checked ? 'on' : '';
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) {
    return el.value.trim();
  }
  return '';
}

/**
 * A table in a horizontally scrolling, keyboard-focusable region.
 * @param {string} caption
 * @param {string[]} headers
 * @param {HTMLTableRowElement[]} rows
 */
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', null,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows)));
}

/**
 * Definition list of label/value pairs (values are text or nodes).
 * @param {Array<[string, import('./dom.js').Children]>} pairs
 */
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** State and outcome badges: text plus an icon, never colour alone. */
const BADGES = /** @type {Record<string, [string, string]>} */ ({
  success: ['ok', '✓'],
  succeeded: ['ok', '✓'],
  denied: ['bad', '⊘'],
  unauthenticated: ['warn', '?'],
  failed: ['bad', '✗'],
  cancelled: ['neutral', '■'],
  pending: ['neutral', '…'],
  running: ['info', '▶'],
});

/** @param {string} text */
export function badge(text) {
  const [kind, icon] = BADGES[text] || ['neutral', '•'];
  return h('span', { class: `badge badge-${kind}`, 'data-value': text },
    h('span', { 'aria-hidden': 'true' }, icon), ` ${text}`);
}

/**
 * Saves `blob` as a file: a blob URL on a temporary link with a download
 * name, clicked, then revoked.
 * @param {Blob} blob
 * @param {string} filename
 */
export function saveBlob(blob, filename) {
  const url = blobUrl(blob);
  const a = h('a', { href: url, download: filename, hidden: true }, filename);
  document.body.appendChild(a);
  a.click();
  a.remove();
  // Revoke later: the download may still be reading the blob.
  setTimeout(() => revokeBlobUrl(url), 60_000);
}

/**
 * A file name made only of safe characters.
 * @param {string} name
 */
export function safeFilename(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120) || 'download';
}

/**
 * Code-like text (ids, hashes, keys) that may wrap anywhere.
 * @param {string} text
 */
export function code(text) {
  return h('code', { class: 'wrap' }, text);
}

/**
 * The page for an id that is not one: no request is made.
 * @param {string} id
 * @param {string} what "record" or "audit event"
 */
export function notAnId(id, what) {
  return h('p', { role: 'alert', class: 'alert error', 'data-testid': 'not-an-id' },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, '✗'), ' ',
    h('strong', null, `Not ${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what} id. `),
    `${what[0].toUpperCase()}${what.slice(1)} ids look like 0190f3c2-6b1d-7e4a-9c3f-2d5e8a1b4c70 (a lower-case UUIDv7); `,
    h('code', { class: 'wrap' }, JSON.stringify(id)), ' is not one, so nothing was fetched.');
}
