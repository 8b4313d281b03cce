// Any route the router does not know.

import { h, replace } from '../dom.js';

export const title = 'Not found';

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  replace(ctx.main,
    h('h1', null, 'Page not found'),
    h('p', null, 'There is no such page. ', h('a', { href: '#/overview' }, 'Go to the overview'), '.'));
}
