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

/** Blob URLs this page made itself (the only non-relative links allowed). */
const ourBlobs = new Set();

/**
 * Whether `href` may be put on a link: an in-app route (`#/...`), a path on
 * this origin (`/...` but never `//host` or `/\host`), or a blob URL we made.
 * Whitespace, control characters and backslashes are refused anywhere, as
 * the URL parser strips or rewrites them into `//`.
 * @param {string} href
 */
export function safeHref(href) {
  if (ourBlobs.has(href)) return true;
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
