// How a key pin is shown: the pinned keys for out-of-band comparison, or a
// loud warning when the server offers keys the pin does not hold.

import { h, replace } from './dom.js';
import { localTime } from './format.js';
import { storageTrouble, trustServerKeys } from './pins.js';
import { code } from './ui.js';

/**
 * A note when pins cannot be stored in this browser, or null.
 * @returns {HTMLElement | null}
 */
function storageNote() {
  const why = storageTrouble();
  if (!why) return null;
  return h('p', { class: 'note', role: 'status', 'data-testid': 'pin-storage' },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, '!'), ' ',
    'This browser does not let the dashboard store its pins ', h('span', { class: 'muted' }, `(${why})`),
    ': they are kept in this page\'s memory only, and a reload forgets them (the next visit pins on first use again).');
}

/**
 * @param {import('./pins.js').LogName} log
 * @param {import('./pins.js').PinStatus} st
 * @param {() => void} onTrusted called after the user adopted the server's keys
 * @returns {HTMLElement}
 */
export function pinNotice(log, st, onTrusted) {
  const which = log === 'audit' ? 'audit log' : 'evidence log';
  const keyList = (/** @type {string[]} */ keys) => h('ul', { class: 'keys' }, keys.map((k) => h('li', null, code(k))));
  if (st.state === 'first-use' || st.state === 'match') {
    const when = st.state === 'first-use'
      ? 'just now'
      : (st.pin.pinned_at ? `on ${localTime(st.pin.pinned_at)}` : 'earlier');
    return h('div', { class: 'pin pin-ok', 'data-testid': 'key-pinned', 'data-log': log, 'data-pin-state': st.state },
      h('p', null,
        h('span', { class: 'icon', 'aria-hidden': 'true' }, '✓'), ' ',
        h('strong', null, `Key pinned on first use`), ` (${which}, ${when}). `,
        'Proofs are checked with these keys; compare them with the key the operator publishes:'),
      keyList(st.pin.keys),
      st.missing.length
        ? h('p', { class: 'muted' }, `${st.missing.length} pinned key(s) no longer sign new checkpoints (retired); older checkpoints still verify with them.`)
        : null,
      st.clash ? h('p', { class: 'alert warn' }, `Warning: ${st.clash}.`) : null,
      storageNote());
  }
  if (st.state === 'refused') {
    return h('div', { class: 'pin pin-changed', role: 'alert', 'data-testid': 'key-refused', 'data-log': log, 'data-pin-state': st.state },
      h('p', { class: 'pin-title' },
        h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠'), ' ',
        h('strong', null, `Warning: the ${which}'s keys were not pinned.`)),
      h('p', null,
        `${capital(st.clash)}. The evidence log and the audit log never share an origin or a key, `,
        'so nothing is checked against these keys. If you trust this server, forget the other log\'s pin on the Consistency page and reload.'),
      h('div', { class: 'pin-compare' },
        h('div', null, h('h3', null, 'Server offers'), keyList(st.serverKeys))),
      storageNote());
  }
  const rotation = st.pin.origin === st.serverOrigin && st.missing.length === 0;
  const status = h('div', { class: 'pin-status' });
  const button = st.clash
    ? null
    : h('button', {
      type: 'button',
      class: 'danger',
      on: {
        click: () => {
          try {
            trustServerKeys(log, st);
          } catch (e) {
            replace(status, h('p', { role: 'alert', class: 'alert error' }, e instanceof Error ? e.message : String(e)));
            return;
          }
          onTrusted();
        },
      },
    }, "Trust the server's new keys");
  return h('div', { class: 'pin pin-changed', role: 'alert', 'data-testid': 'key-changed', 'data-log': log, 'data-pin-state': st.state },
    h('p', { class: 'pin-title' },
      h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠'), ' ',
      h('strong', null, `Warning: the ${which}'s signing keys changed.`)),
    h('p', null,
      st.pin.origin !== st.serverOrigin
        ? `The server now names its log "${st.serverOrigin}", but you pinned "${st.pin.origin}". This may be a different log. `
        : 'The server offers a key you have not pinned. ',
      rotation
        ? 'Your pinned keys are still offered, so this may be a key rotation; confirm the new key with the operator before trusting it. '
        : 'This happens when the log is replaced or its keys are substituted. ',
      'Proofs are still checked with your pinned keys and origin only.'),
    st.clash
      ? h('p', null, h('strong', null, `${capital(st.clash)}. `),
        'The evidence log and the audit log never share an origin or a key, so these keys cannot be trusted for this log.')
      : null,
    h('div', { class: 'pin-compare' },
      h('div', null, h('h3', null, 'Pinned'), h('p', { class: 'muted' }, 'Origin ', code(st.pin.origin)), keyList(st.pin.keys)),
      h('div', null, h('h3', null, 'Server now offers'), h('p', { class: 'muted' }, 'Origin ', code(st.serverOrigin)), keyList(st.serverKeys))),
    button ? h('p', null, button) : null,
    status,
    storageNote());
}

/** @param {string} s */
function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}
