// The verification panel: a live region listing each step with a tick or a
// cross, its name and detail. The verdict is spelled out in words, so it
// never depends on colour alone.

import { h, newId, replace } from './dom.js';

/** @typedef {{name: string, ok: boolean, detail: string}} Step */
/** @typedef {'running' | 'verified' | 'failed' | 'neutral'} PanelState */

/**
 * @typedef {{signal: AbortSignal, live: () => boolean, running: (text?: string) => void,
 *   done: (steps: Step[], okText?: string) => void, neutral: (text: string, steps?: Step[]) => void,
 *   extra: (...children: import('./dom.js').Children[]) => void}} PanelRun
 */

/**
 * @param {{title: string, page: string, testid?: string, attrs?: import('./dom.js').Attrs}} opts
 *   `page`: which page the panel is on (`data-page`), so a reader can tell
 *   this page's panel from the one of the page before
 */
export function verifyPanel(opts) {
  const headingId = newId('verify');
  const verdict = h('p', { class: 'verdict' });
  const list = h('ol', { class: 'steps' });
  const extra = h('div', { class: 'verify-extra' });
  const el = h('section', {
    class: 'verify',
    'data-testid': opts.testid || 'verify-result',
    'data-page': opts.page,
    'data-state': 'running',
    'aria-live': 'polite',
    'aria-labelledby': headingId,
    // Focusable from script, so focus has somewhere to go on a re-run.
    tabindex: -1,
    ...(opts.attrs || {}),
  }, h('h2', { id: headingId }, opts.title), verdict, list, extra);

  /** @param {PanelState} state */
  const setState = (state) => {
    el.setAttribute('data-state', state);
  };

  /** @param {string} [text] */
  const running = (text = 'Verifying in your browser…') => {
    setState('running');
    replace(verdict, h('span', { class: 'icon', 'aria-hidden': 'true' }, '…'), ' ', text);
    replace(list);
  };
  /**
   * @param {Step[]} steps
   * @param {string} [okText]
   */
  const done = (steps, okText = 'Verified in your browser with the pinned keys.') => {
    replace(list, steps.map((st) => stepItem(st)));
    const bad = steps.find((st) => !st.ok);
    if (!bad && steps.length > 0) {
      setState('verified');
      replace(verdict, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✓'), ' ', okText);
    } else {
      setState('failed');
      replace(verdict,
        h('span', { class: 'icon', 'aria-hidden': 'true' }, '✗'), ' ',
        'Verification failed at step ',
        h('strong', { 'data-testid': 'verify-failed-step' }, bad ? bad.name : 'none'),
        '.');
    }
  };
  /**
   * @param {string} text
   * @param {Step[]} [steps]
   */
  const neutral = (text, steps = []) => {
    setState('neutral');
    replace(list, steps.map((st) => stepItem(st)));
    replace(verdict, h('span', { class: 'icon', 'aria-hidden': 'true' }, '•'), ' ', text);
  };

  /** @type {AbortController | null} */
  let current = null;

  return {
    el,
    /** Extra content below the steps (buttons, notes). */
    extra,
    running,
    /**
     * Shows the steps and the verdict: verified when every step passed.
     * @param {Step[]} steps
     * @param {string} [okText] verdict wording on success
     */
    done,
    /**
     * Nothing to verify (e.g. an empty log): neither green nor red.
     * @param {string} text
     * @param {Step[]} [steps]
     */
    neutral,
    /**
     * Starts a verification run in this panel and supersedes the one
     * before: its signal aborts (ending its fetches), and from then on
     * nothing it renders shows. Only the latest run writes to the panel.
     * @param {AbortSignal} [outer] the page's signal: leaving the page ends the run too
     * @returns {PanelRun}
     */
    begin(outer) {
      if (current) current.abort();
      const ctl = new AbortController();
      current = ctl;
      if (outer) {
        if (outer.aborted) ctl.abort();
        else outer.addEventListener('abort', () => ctl.abort(), { once: true });
      }
      const live = () => current === ctl && !ctl.signal.aborted;
      return {
        signal: ctl.signal,
        live,
        running: (text) => { if (live()) running(text); },
        done: (steps, okText) => { if (live()) done(steps, okText); },
        neutral: (text, steps) => { if (live()) neutral(text, steps); },
        extra: (...children) => { if (live()) replace(extra, ...children); },
      };
    },
  };
}

/** @typedef {ReturnType<typeof verifyPanel>} Panel */

/**
 * @param {Step} st
 * @param {string} [testid] another test id for steps outside the panel
 */
export function stepItem(st, testid = 'verify-step') {
  return h('li', {
    class: `step ${st.ok ? 'ok' : 'bad'}`,
    'data-testid': testid,
    'data-step': st.name,
    'data-ok': st.ok ? 'true' : 'false',
  },
  h('span', { class: 'icon', 'aria-hidden': 'true' }, st.ok ? '✓' : '✗'),
  h('span', { class: 'sr-only' }, st.ok ? 'passed: ' : 'failed: '),
  h('strong', { class: 'step-name' }, st.name),
  st.detail ? h('span', { class: 'detail' }, st.detail) : null);
}
