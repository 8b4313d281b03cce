// How a key pin is shown: the pinned keys for out-of-band comparison, or a
// loud warning when the server offers keys the pin does not hold.

import { h } from './dom.js';
import { localTime } from './format.js';
import { trustServerKeys } from './pins.js';
import { code } from './ui.js';

/**
 * @param {import('./pins.js').LogName} log
 * @param {import('./pins.js').PinStatus} st
 * @param {() => void} onTrusted called after the user adopted the server's keys
 * @returns {HTMLElement}
 */
export function pinNotice(log, st, onTrusted) {
  const which = log === 'audit' ? 'audit log' : 'evidence log';
  const keyList = (/** @type {string[]} */ keys) => h('ul', { class: 'keys' }, keys.map((k) => h('li', null, code(k))));
  if (st.state !== 'changed') {
    const when = st.state === 'first-use'
      ? 'just now'
      : (st.pin.pinned_at ? `on ${localTime(st.pin.pinned_at)}` : 'earlier');
    return h('div', { class: 'pin pin-ok', 'data-testid': 'key-pinned', 'data-log': log },
      h('p', null,
        h('span', { class: 'icon', 'aria-hidden': 'true' }, '✓'), ' ',
        h('strong', null, `Key pinned on first use`), ` (${which}, ${when}). `,
        'Proofs are checked with these keys; compare them with the key the operator publishes:'),
      keyList(st.pin.keys),
      st.missing.length
        ? h('p', { class: 'muted' }, `${st.missing.length} pinned key(s) no longer sign new checkpoints (retired); older checkpoints still verify with them.`)
        : null);
  }
  const rotation = st.pin.origin === st.serverOrigin && st.missing.length === 0;
  const button = h('button', {
    type: 'button',
    class: 'danger',
    on: {
      click: () => {
        trustServerKeys(log, st);
        onTrusted();
      },
    },
  }, "Trust the server's new keys");
  return h('div', { class: 'pin pin-changed', role: 'alert', 'data-testid': 'key-changed', 'data-log': log },
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
      'Proofs are still checked with your pinned keys only.'),
    h('div', { class: 'pin-compare' },
      h('div', null, h('h3', null, 'Pinned'), keyList(st.pin.keys)),
      h('div', null, h('h3', null, 'Server now offers'), keyList(st.serverKeys))),
    h('p', null, button));
}
