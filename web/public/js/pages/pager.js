// Cursor paging shared by the list pages: a stack of cursors gives
// Previous, the last reply's cursor gives Next.

import { h, replace } from '../dom.js';
import { errorBox, isAbort, loading } from '../ui.js';

/**
 * @typedef {(cursor: string | null) => Promise<{next: string | null, body: Node}>} PageLoader
 */

/**
 * Shows page after page of `load` in `box`.
 * @param {HTMLElement} box
 * @param {AbortSignal} signal
 * @param {PageLoader} load
 */
export function pager(box, signal, load) {
  /** @type {Array<string | null>} cursors[i] fetches page i */
  const cursors = [null];
  let page = 0;
  /** @type {string | null} */
  let nextCursor = null;
  const body = h('div', { class: 'page-body' }, loading());
  const status = h('span', { class: 'page-no', role: 'status' });
  const prev = h('button', { type: 'button', class: 'secondary', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Next →');
  const nav = h('div', { class: 'pager', role: 'group', 'aria-label': 'Pages' }, prev, status, next);

  let busy = false;
  const show = async () => {
    // Buttons stay enabled while loading (disabling a focused button drops
    // keyboard focus); clicks are ignored instead.
    busy = true;
    replace(body, loading());
    try {
      const r = await load(cursors[page]);
      if (signal.aborted) return;
      nextCursor = r.next;
      replace(body, r.body);
      replace(status, `Page ${page + 1}`);
    } catch (e) {
      if (isAbort(e) || signal.aborted) return;
      nextCursor = null;
      replace(body, errorBox(e));
    } finally {
      busy = false;
    }
    const wantPrev = page > 0;
    const wantNext = nextCursor !== null;
    // Move focus off a button about to turn off.
    if (document.activeElement === next && !wantNext && wantPrev) prev.focus();
    if (document.activeElement === prev && !wantPrev && wantNext) next.focus();
    prev.disabled = !wantPrev;
    next.disabled = !wantNext;
    nav.hidden = !wantPrev && !wantNext;
  };
  prev.addEventListener('click', () => {
    if (busy || page === 0) return;
    page -= 1;
    show();
  });
  next.addEventListener('click', () => {
    if (busy || !nextCursor) return;
    cursors[page + 1] = nextCursor;
    page += 1;
    show();
  });
  replace(box, body, nav);
  show();
}
