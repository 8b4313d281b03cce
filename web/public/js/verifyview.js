// The verification panel: a live region listing each step with a tick or a
// cross, its name and detail. The verdict is spelled out in words, so it
// never depends on colour alone.

import { h, newId, replace } from './dom.js';

/** @typedef {{name: string, ok: boolean, detail: string}} Step */
/** @typedef {'running' | 'verified' | 'failed' | 'neutral'} PanelState */

/**
 * @param {{title: string, testid?: string, attrs?: import('./dom.js').Attrs}} opts
 */
export function verifyPanel(opts) {
  const headingId = newId('verify');
  const verdict = h('p', { class: 'verdict' });
  const list = h('ol', { class: 'steps' });
  const extra = h('div', { class: 'verify-extra' });
  const el = h('section', {
    class: 'verify',
    'data-testid': opts.testid || 'verify-result',
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

  return {
    el,
    /** Extra content below the steps (buttons, notes). */
    extra,
    /** @param {string} [text] */
    running(text = 'Verifying in your browser…') {
      setState('running');
      replace(verdict, h('span', { class: 'icon', 'aria-hidden': 'true' }, '…'), ' ', text);
      replace(list);
    },
    /**
     * Shows the steps and the verdict: verified when every step passed.
     * @param {Step[]} steps
     * @param {string} [okText] verdict wording on success
     */
    done(steps, okText = 'Verified in your browser with the pinned keys.') {
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
    },
    /**
     * Nothing to verify (e.g. an empty log): neither green nor red.
     * @param {string} text
     * @param {Step[]} [steps]
     */
    neutral(text, steps = []) {
      setState('neutral');
      replace(list, steps.map((st) => stepItem(st)));
      replace(verdict, h('span', { class: 'icon', 'aria-hidden': 'true' }, '•'), ' ', text);
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
