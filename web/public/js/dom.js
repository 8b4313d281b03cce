// DOM building without HTML strings. The page runs under Trusted Types with
// no policy, so every string reaches the DOM as text or as an allowlisted
// attribute; nothing here can create script, styles or event handlers.

/** @typedef {string | number | Node | null | undefined | false} Child */
/** @typedef {Child | Child[]} Children */
/**
 * Attributes for `h`. `on` maps event names to listeners (functions, never
 * strings); `props` sets element properties such as `value` or `checked`.
 * @typedef {{[name: string]: string | number | boolean | null | undefined | {[ev: string]: EventListener} | {[p: string]: unknown}}} Attrs
 */

const PLAIN = new Set([
  'id', 'class', 'href', 'type', 'name', 'value', 'for', 'placeholder',
  'title', 'role', 'tabindex', 'colspan', 'rowspan', 'scope', 'min', 'max',
  'step', 'autocomplete', 'spellcheck', 'required', 'disabled', 'checked',
  'selected', 'hidden', 'lang', 'dir', 'datetime', 'download', 'inputmode',
  'pattern', 'maxlength', 'minlength', 'size', 'multiple', 'open', 'alt',
  'width', 'height', 'list', 'readonly', 'wrap', 'rows', 'cols', 'label',
  'headers', 'start', 'reversed',
]);
const PREFIXED = /^(aria|data)-[a-z0-9-]+$/;

/** Blob URLs this page made itself (with `leaving`, the only non-relative links allowed). */
const ourBlobs = new Set();
/** The sign-in URL being followed, for the moment its link exists. */
const leaving = new Set();

/**
 * Whether `href` may be put on a link: an in-app route (`#/...`), a path on
 * this origin (`/...` but never `//host` or `/\host`), a blob URL we made,
 * or the checked sign-in URL being followed (followSignInUrl).
 * Whitespace, control characters and backslashes are refused anywhere, as
 * the URL parser strips or rewrites them into `//`.
 * @param {string} href
 */
export function safeHref(href) {
  if (ourBlobs.has(href) || leaving.has(href)) return true;
  if (/[\u0000-\u0020\u007f\\]/.test(href)) return false;
  return href.startsWith('#/') || /^\/(?![/\\])/.test(href);
}

/**
 * A `blob:` URL for `blob`, registered so `h` accepts it as an href.
 * @param {Blob} blob
 */
export function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  ourBlobs.add(url);
  return url;
}

/**
 * Whether `url` may be an OIDC endpoint: https, or http on a loopback host
 * (a test issuer), without user info.
 * @param {string} url
 */
export function okEndpoint(url) {
  try {
    const u = new URL(url);
    if (u.username || u.password) return false;
    if (u.protocol === 'https:') return true;
    return u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

/**
 * Sends this tab to an issuer's sign-in page the way a click on a link
 * does: a link made with `h` (so its href passes safeHref), clicked and
 * removed. Only an okEndpoint URL is followed; anything else throws.
 * There is no other way out of the app: no script assigns a location.
 * @param {string} url
 */
export function followSignInUrl(url) {
  if (!okEndpoint(url)) throw new Error('not an https (or loopback http) sign-in URL');
  const href = new URL(url).href;
  leaving.add(href);
  try {
    const a = h('a', { href, hidden: true }, 'Sign in');
    document.body.appendChild(a);
    a.click();
    a.remove();
  } finally {
    leaving.delete(href);
  }
}

/** @param {string} url */
export function revokeBlobUrl(url) {
  ourBlobs.delete(url);
  URL.revokeObjectURL(url);
}

/**
 * @param {Element} el
 * @param {string} name
 * @param {unknown} value
 * @param {Set<string>} allowed
 */
function setAttr(el, name, value, allowed) {
  if (value === null || value === undefined || value === false) return;
  if (!allowed.has(name) && !PREFIXED.test(name)) {
    throw new Error(`attribute not allowed: ${name}`);
  }
  if (name === 'href' && !safeHref(String(value))) {
    throw new Error('unsafe href');
  }
  el.setAttribute(name, value === true ? '' : String(value));
}

/**
 * @param {Node} parent
 * @param {Children[]} children
 */
export function append(parent, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'object' ? /** @type {Node} */ (c) : document.createTextNode(String(c)));
  }
}

/**
 * @param {Element} el
 * @param {Attrs} attrs
 * @param {Set<string>} allowed
 */
function applyAttrs(el, attrs, allowed) {
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'on') {
      for (const [ev, fn] of Object.entries(/** @type {{[ev: string]: EventListener}} */ (value))) {
        if (typeof fn !== 'function') throw new Error('listener must be a function');
        el.addEventListener(ev, fn);
      }
    } else if (name === 'props') {
      for (const [p, v] of Object.entries(/** @type {{[p: string]: unknown}} */ (value))) {
        if (!['value', 'checked', 'disabled', 'selected', 'indeterminate', 'max'].includes(p)) {
          throw new Error(`property not allowed: ${p}`);
        }
        /** @type {any} */ (el)[p] = v;
      }
    } else {
      setAttr(el, name, value, allowed);
    }
  }
}

/**
 * Makes an HTML element. Strings among `children` become text nodes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {Children[]} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  if (tag === 'script' || tag === 'style' || tag === 'iframe' || tag === 'object' || tag === 'embed') {
    throw new Error(`element not allowed: ${tag}`);
  }
  const el = document.createElement(tag);
  if (attrs) applyAttrs(el, attrs, PLAIN);
  append(el, ...children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
const SVG_ATTRS = new Set([
  'class', 'role', 'viewBox', 'x', 'y', 'x1', 'x2', 'y1', 'y2', 'width',
  'height', 'rx', 'ry', 'cx', 'cy', 'r', 'd', 'points', 'text-anchor',
  'dominant-baseline', 'focusable', 'id', 'preserveAspectRatio', 'transform',
  'tabindex',
]);

/**
 * Makes an SVG element (no `href`, no `style`, no `on*`).
 * @param {string} tag
 * @param {Attrs | null} [attrs]
 * @param {Children[]} children
 * @returns {SVGElement}
 */
export function s(tag, attrs, ...children) {
  if (tag === 'script' || tag === 'style' || tag === 'foreignObject' || tag === 'use' || tag === 'a') {
    throw new Error(`svg element not allowed: ${tag}`);
  }
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  if (attrs) applyAttrs(el, attrs, SVG_ATTRS);
  append(el, ...children);
  return el;
}

/**
 * Replaces every child of `el`.
 * @param {Element} el
 * @param {Children[]} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, ...children);
}

let uid = 0;
/** A fresh id for label/aria wiring. @param {string} prefix */
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}
