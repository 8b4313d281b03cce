// #/signin: paste an access token, or sign in with a configured OIDC issuer.

import { startLogin } from '../auth.js';
import { h, replace } from '../dom.js';
import { errorBox } from '../ui.js';

export const title = 'Sign in';

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, app, query } = ctx;
  const rawNext = query.get('next') || '';
  const next = rawNext.startsWith('#/') && !rawNext.startsWith('#/signin') ? rawNext : '#/overview';
  const status = h('div', { class: 'status' });
  if (app.notice) status.appendChild(h('div', { role: 'alert', class: 'alert warn' }, app.notice));

  const tokenInput = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'token-hint',
  });
  const keep = h('input', { id: 'keep', name: 'keep', type: 'checkbox' });
  const submit = h('button', { type: 'submit' }, 'Sign in');

  const form = h('form', {
    class: 'card signin',
    'aria-labelledby': 'signin-token-h',
    on: {
      submit: async (e) => {
        // form-action 'none': the form is never submitted, only read here.
        e.preventDefault();
        const token = tokenInput.value.trim();
        replace(status);
        if (!token) {
          replace(status, h('div', { role: 'alert', class: 'alert error' }, 'Paste an access token first.'));
          tokenInput.focus();
          return;
        }
        submit.disabled = true;
        try {
          await app.signIn(token, keep.checked);
          tokenInput.value = '';
          app.navigate(next);
        } catch (err) {
          replace(status, errorBox(err));
          tokenInput.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
  },
  h('h2', { id: 'signin-token-h' }, 'Paste a token'),
  h('div', { class: 'field' },
    h('label', { for: 'token' }, 'Access token'),
    tokenInput,
    h('small', { id: 'token-hint', class: 'hint' },
      'A service-account token or an OIDC token. It is kept in this page\'s memory only, unless you tick the box below.')),
  h('div', { class: 'field check' },
    keep,
    h('label', { for: 'keep' }, 'Keep for this tab (sessionStorage)')),
  h('div', { class: 'actions' }, submit));

  const oidc = app.config.oidc.length
    ? h('section', { class: 'card', 'aria-labelledby': 'signin-oidc-h' },
      h('h2', { id: 'signin-oidc-h' }, 'With your organisation'),
      h('ul', { class: 'plain oidc' }, app.config.oidc.map((p) => h('li', null,
        h('button', {
          type: 'button',
          class: 'secondary',
          on: {
            click: async () => {
              try {
                await startLogin(p, next, keep.checked);
              } catch (err) {
                replace(status, errorBox(err));
              }
            },
          },
        }, `Sign in with ${p.issuer}`)))))
    : null;

  replace(main,
    h('h1', null, 'Sign in'),
    app.session && app.session.auth_method !== 'none'
      ? h('p', { class: 'muted' }, `You are signed in as ${app.session.principal}. Signing in again replaces that token.`)
      : null,
    status,
    h('div', { class: 'signin-grid' }, form, oidc));
}
