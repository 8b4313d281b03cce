// Small inline SVG charts. Each is an image with a <title> and <desc>
// (named by aria-labelledby), a <title> per bar for pointer users, and the
// same numbers as a table under a disclosure for everyone else.

import { h, newId, s } from './dom.js';

/** @typedef {{label: string, value: number, key?: string}} BarItem */
/** @typedef {{t: Date, value: number}} Point */

/**
 * The smallest 1, 2 or 5 times a power of ten at or above `n` (at least 1).
 * @param {number} n
 */
export function niceCeil(n) {
  if (!(n > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/**
 * @param {string} text
 * @param {number} max
 */
function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * @param {string} caption
 * @param {string[]} headers
 * @param {Array<[string, string]>} rows
 */
function dataTable(caption, headers, rows) {
  return h('details', { class: 'chart-data' },
    h('summary', null, 'Show as table'),
    h('div', { class: 'table-wrap' },
      h('table', null,
        h('caption', { class: 'sr-only' }, caption),
        h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, rows.map(([a, b]) => h('tr', null, h('td', null, a), h('td', { class: 'num' }, b)))))));
}

/**
 * @param {string} title
 * @param {string} desc
 * @param {number} w
 * @param {number} ht
 * @param {import('./dom.js').Children[]} body
 */
function frame(title, desc, w, ht, body) {
  const tid = newId('chart-t');
  const did = newId('chart-d');
  return s('svg', {
    class: 'chart',
    viewBox: `0 0 ${w} ${ht}`,
    role: 'img',
    'aria-labelledby': `${tid} ${did}`,
    focusable: 'false',
    preserveAspectRatio: 'xMinYMin meet',
  }, s('title', { id: tid }, title), s('desc', { id: did }, desc), ...body);
}

/**
 * Horizontal bar chart, one bar per item, largest first as given.
 * @param {{title: string, items: BarItem[], unit: string}} opts
 * @returns {HTMLElement}
 */
export function barChart(opts) {
  const { title, items, unit } = opts;
  const W = 520;
  const labelW = 170;
  const valueW = 60;
  const rowH = 26;
  const top = 6;
  const ht = top + Math.max(items.length, 1) * rowH + 6;
  const max = Math.max(1, ...items.map((i) => i.value));
  const barMax = W - labelW - valueW - 10;
  const total = items.reduce((a, i) => a + i.value, 0);
  const desc = items.length
    ? items.map((i) => `${i.label}: ${i.value}`).join('; ')
    : 'no data';
  const rows = items.map((it, n) => {
    const y = top + n * rowH;
    const len = Math.max(it.value > 0 ? 2 : 0, (it.value / max) * barMax);
    return s('g', { class: `bar-row${it.key ? ` bar-${it.key}` : ''}` },
      s('title', null, `${it.label}: ${it.value} ${unit}`),
      s('text', { class: 'chart-label', x: labelW - 8, y: y + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, clip(it.label, 24)),
      s('rect', { class: 'bar', x: labelW, y: y + 4, width: len.toFixed(1), height: rowH - 8, rx: 2 }),
      s('text', { class: 'chart-value', x: labelW + len + 6, y: y + rowH / 2, 'dominant-baseline': 'middle' }, String(it.value)));
  });
  const empty = items.length ? [] : [s('text', { class: 'chart-label', x: 10, y: top + rowH / 2, 'dominant-baseline': 'middle' }, 'No data in this period')];
  return h('figure', { class: 'chart-figure' },
    frame(title, `${desc}. Total ${total} ${unit}.`, W, ht, [...rows, ...empty]),
    h('figcaption', { class: 'muted' }, `${title} — total ${total.toLocaleString()} ${unit}`),
    dataTable(title, ['Item', unit], items.map((i) => [i.label, i.value.toLocaleString()])));
}

/**
 * @param {Date} d
 * @param {'hour' | 'day'} bucket
 */
function tickLabel(d, bucket) {
  return bucket === 'hour'
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/**
 * Counts over time as vertical bars, with a y axis (count) and an x axis
 * (time), one bar per bucket.
 * @param {{title: string, points: Point[], bucket: 'hour' | 'day', unit: string}} opts
 * @returns {HTMLElement}
 */
export function timeSeries(opts) {
  const { title, points, bucket, unit } = opts;
  const W = 640;
  const H = 240;
  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 40;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const max = niceCeil(Math.max(0, ...points.map((p) => p.value)));
  const n = Math.max(points.length, 1);
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.8);
  const total = points.reduce((a, p) => a + p.value, 0);
  const yTicks = [0, max / 2, max].filter((v, i, a) => Number.isInteger(v) && a.indexOf(v) === i);
  /** @type {SVGElement[]} */
  const body = [];
  for (const v of yTicks) {
    const y = top + plotH - (v / max) * plotH;
    body.push(s('line', { class: 'gridline', x1: left, x2: W - right, y1: y, y2: y }));
    body.push(s('text', { class: 'chart-label', x: left - 6, y, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, String(v)));
  }
  points.forEach((p, i) => {
    const bh = (p.value / max) * plotH;
    const x = left + i * slot + (slot - barW) / 2;
    body.push(s('rect', { class: 'bar', x: x.toFixed(1), y: (top + plotH - bh).toFixed(1), width: barW.toFixed(1), height: bh.toFixed(1) },
      s('title', null, `${tickLabel(p.t, bucket)}${bucket === 'day' ? '' : `, ${p.t.toLocaleDateString()}`}: ${p.value} ${unit}`)));
  });
  // About six x labels, evenly spaced.
  const every = Math.max(1, Math.ceil(points.length / 6));
  points.forEach((p, i) => {
    if (i % every !== 0) return;
    const x = left + i * slot + slot / 2;
    body.push(s('line', { class: 'axis', x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4 }));
    body.push(s('text', { class: 'chart-label', x, y: top + plotH + 16, 'text-anchor': 'middle' }, tickLabel(p.t, bucket)));
  });
  body.push(s('line', { class: 'axis', x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
  body.push(s('line', { class: 'axis', x1: left, x2: left, y1: top, y2: top + plotH }));
  body.push(s('text', { class: 'chart-label axis-title', x: left + plotW / 2, y: H - 4, 'text-anchor': 'middle' },
    bucket === 'hour' ? 'time (hourly)' : 'date (daily)'));
  const first = points[0];
  const lastP = points[points.length - 1];
  const desc = first && lastP
    ? `${points.length} ${bucket === 'hour' ? 'hours' : 'days'} from ${first.t.toLocaleString()} to ${lastP.t.toLocaleString()}; total ${total} ${unit}; peak ${Math.max(...points.map((p) => p.value))}.`
    : 'no data';
  return h('figure', { class: 'chart-figure' },
    frame(title, desc, W, H, body),
    h('figcaption', { class: 'muted' }, `${title} — total ${total.toLocaleString()} ${unit}`),
    dataTable(title, [bucket === 'hour' ? 'Hour' : 'Day', unit],
      points.map((p) => [bucket === 'hour' ? p.t.toLocaleString() : p.t.toLocaleDateString(), p.value.toLocaleString()])));
}
