// #/overview: both logs at a glance (sizes, latest checkpoints, keys,
// witnesses) and charts of ingest and audit activity.

import { getJson, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, count, localTime } from '../format.js';
import { LOGS } from '../logs.js';
import { checkPin } from '../pins.js';
import { pinNotice } from '../pinview.js';
import { barChart, timeSeries } from '../svg.js';
import { code, disabledNote, errorBox, facts, isAbort, loading, table } from '../ui.js';

export const title = 'Overview';

/** @typedef {import('../logs.js').LogName} LogName */
/** @typedef {'day' | 'month'} Period */

/** @param {import('../app.js').PageContext} ctx */
export function render(ctx) {
  const { main, signal } = ctx;
  const logs = h('div', { class: 'grid two' });
  const charts = h('div', { class: 'charts' });
  replace(main,
    h('h1', null, 'Overview'),
    h('section', { 'aria-labelledby': 'ov-logs' }, h('h2', { id: 'ov-logs' }, 'Logs'), logs),
    h('section', { 'aria-labelledby': 'ov-activity' }, h('h2', { id: 'ov-activity' }, 'Activity'), charts));
  for (const log of /** @type {LogName[]} */ (['evidence', 'audit'])) {
    const card = h('article', { class: 'card', 'aria-labelledby': `ov-${log}` },
      h('h3', { id: `ov-${log}` }, LOGS[log].title), loading());
    logs.appendChild(card);
    logCard(card, log, ctx).catch(() => {});
  }
  activity(charts, 'day', signal);
}

/**
 * @param {HTMLElement} card
 * @param {LogName} log
 * @param {import('../app.js').PageContext} ctx
 */
async function logCard(card, log, ctx) {
  const { signal } = ctx;
  const heading = /** @type {HTMLElement} */ (card.firstChild);
  try {
    const [info, latest] = await Promise.all([
      getJson(LOGS[log].info, { signal }),
      getJson(LOGS[log].latest, { signal }).catch((e) => {
        if (isAbort(e)) throw e;
        return null;
      }),
    ]);
    /** @type {import('../logs.js').LogInfo} */
    const i = info;
    /** @type {import('../logs.js').CheckpointInfo | null} */
    const cp = latest;
    const st = checkPin(log, i);
    replace(card, heading,
      facts([
        ['Origin', code(i.origin)],
        ['Tree size', count(i.tree_size)],
        ['Latest checkpoint', cp
          ? [`size ${count(cp.size)}, `, h('time', { datetime: cp.created_at, title: localTime(cp.created_at) }, ago(new Date(cp.created_at)))]
          : 'none signed yet'],
        ['Signing keys', h('ul', { class: 'keys' }, (i.verifier_keys || [i.verifier_key]).map((k) => h('li', null, code(k))))],
      ]),
      i.witnesses ? witnesses(i.witnesses) : null,
      pinNotice(log, st, () => ctx.app.rerender()));
  } catch (e) {
    if (isAbort(e)) return;
    replace(card, heading, disabledNote(e) || errorBox(e));
  }
}


/** @param {NonNullable<import('../logs.js').LogInfo['witnesses']>} w */
function witnesses(w) {
  return h('div', { class: 'witnesses' },
    h('h4', null, `Witnesses (${w.threshold} of ${w.total} must cosign)`),
    h('p', { class: 'muted' }, w.witnessed_size === null || w.witnessed_size === undefined
      ? 'No checkpoint is witnessed yet.'
      : `Witnessed up to size ${count(w.witnessed_size)}.`),
    table('Witnesses', ['Name', 'Cosigned size', 'State'], w.items.map((it) => h('tr', null,
      h('td', null, it.name),
      h('td', { class: 'num' }, count(it.acknowledged_size)),
      h('td', null, it.inconsistent
        ? h('span', { class: 'badge badge-bad' }, '✗ reported an inconsistency')
        : (it.last_error ? h('span', { class: 'badge badge-warn' }, `! ${it.last_error}`) : h('span', { class: 'badge badge-ok' }, '✓ ok')))))));
}

/**
 * The charts for the last day (hourly) or the last 30 days (daily).
 * @param {HTMLElement} box
 * @param {Period} period
 * @param {AbortSignal} signal
 */
function activity(box, period, signal) {
  const bucket = period === 'day' ? 'hour' : 'day';
  const now = new Date();
  const since = startOf(new Date(now.getTime() - (period === 'day' ? 23 * 3600e3 : 29 * 86400e3)), bucket);
  const range = { since: since.toISOString(), until: now.toISOString() };
  /** @param {Period} p @param {string} text */
  const choice = (p, text) => h('button', {
    type: 'button',
    class: 'secondary',
    'aria-pressed': p === period ? 'true' : 'false',
    on: { click: () => activity(box, p, signal) },
  }, text);
  const ingest = h('article', { class: 'card wide', 'aria-labelledby': 'ch-ingest' },
    h('h3', { id: 'ch-ingest' }, 'Ingest rate'), loading());
  const types = h('article', { class: 'card', 'aria-labelledby': 'ch-types' },
    h('h3', { id: 'ch-types' }, 'Records by content type'), loading());
  const outcomes = h('article', { class: 'card', 'aria-labelledby': 'ch-outcomes' },
    h('h3', { id: 'ch-outcomes' }, 'Audit events by outcome'), loading());
  const hadFocus = box.contains(document.activeElement);
  replace(box,
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Period' },
      choice('day', 'Last 24 hours'), choice('month', 'Last 30 days')),
    ingest, h('div', { class: 'grid two' }, types, outcomes));
  if (hadFocus) {
    /** @type {HTMLElement | null} */ (box.querySelector('[aria-pressed="true"]'))?.focus();
  }

  getJson(`/api/v1/stats/evidence${qs({ ...range, bucket })}`, { signal }).then((r) => {
    /** @type {{buckets: Array<{start: string, count: number}>, content_types: Array<{content_type: string, count: number}>,
     *   total: number, ingested_by?: string | null}} */
    const stats = r;
    // An ingester's counts cover only its own records; say so.
    const own = stats.ingested_by ? h('p', { class: 'muted' }, `Only records ingested by ${stats.ingested_by}.`) : null;
    replace(ingest, ingest.firstChild, own, timeSeries({
      title: period === 'day' ? 'Records ingested per hour, last 24 hours' : 'Records ingested per day, last 30 days',
      points: fill(stats.buckets || [], since, now, bucket),
      bucket,
      unit: 'records',
    }));
    const items = (stats.content_types || []).slice().sort((a, b) => b.count - a.count)
      .map((c) => ({ label: c.content_type, value: c.count }));
    replace(types, types.firstChild, own ? own.cloneNode(true) : null, barChart({ title: 'Records by content type', items, unit: 'records' }));
  }).catch((e) => {
    if (isAbort(e)) return;
    replace(ingest, ingest.firstChild, errorBox(e));
    replace(types, types.firstChild, errorBox(e));
  });

  getJson(`/api/v1/audit/stats${qs(range)}`, { signal }).then((r) => {
    /** @type {{outcomes: Array<{outcome: string, count: number}>, total: number}} */
    const stats = r;
    const order = ['success', 'denied', 'unauthenticated', 'failed'];
    const items = (stats.outcomes || []).slice()
      .sort((a, b) => rank(order, a.outcome) - rank(order, b.outcome))
      .map((o) => ({ label: o.outcome, value: o.count, key: order.includes(o.outcome) ? o.outcome : undefined }));
    replace(outcomes, outcomes.firstChild, barChart({ title: 'Audit events by outcome', items, unit: 'events' }));
  }).catch((e) => {
    if (isAbort(e)) return;
    replace(outcomes, outcomes.firstChild, errorBox(e));
  });
}

/** @param {string[]} order @param {string} v */
function rank(order, v) {
  const i = order.indexOf(v);
  return i < 0 ? order.length : i;
}

/**
 * The start of the UTC hour or day holding `d` (the server buckets in UTC).
 * @param {Date} d
 * @param {'hour' | 'day'} bucket
 */
function startOf(d, bucket) {
  const t = new Date(d.getTime());
  t.setUTCMinutes(0, 0, 0);
  if (bucket === 'day') t.setUTCHours(0);
  return t;
}

/**
 * Every bucket from `since` to `until`, with the server's counts (the server
 * may leave empty buckets out). Buckets that do not line up with ours are
 * shown as the server sent them.
 * @param {Array<{start: string, count: number}>} buckets
 * @param {Date} since
 * @param {Date} until
 * @param {'hour' | 'day'} bucket
 * @returns {import('../svg.js').Point[]}
 */
function fill(buckets, since, until, bucket) {
  const step = bucket === 'hour' ? 3600e3 : 86400e3;
  /** @type {Map<number, number>} */
  const counts = new Map();
  for (const b of buckets) counts.set(new Date(b.start).getTime(), b.count);
  /** @type {import('../svg.js').Point[]} */
  const points = [];
  for (let t = since.getTime(); t <= until.getTime(); t += step) {
    points.push({ t: new Date(t), value: counts.get(t) || 0 });
  }
  const matched = [...counts.keys()].every((k) => points.some((p) => p.t.getTime() === k));
  return matched ? points : buckets.map((b) => ({ t: new Date(b.start), value: b.count }));
}
