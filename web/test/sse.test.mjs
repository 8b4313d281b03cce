// followTask (sse.js) releases its event stream however its reading ends:
// at a final state (without waiting for the server to close), when the
// callback throws, or when the stream fails; fetch is answered here.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SseParser, followTask } from '../public/js/sse.js';

const ID = '0190f3c2-6b1d-7e4a-9c3f-2d5e8a1b4c70';

/**
 * A task event stream that sends `events` and then stays open (or fails
 * with `error`), recording whether it was cancelled.
 * @param {object[]} events
 * @param {{error?: Error}} [o]
 */
function stream(events, o = {}) {
  const state = { cancelled: false, opened: 0 };
  const enc = new TextEncoder();
  const make = () => new ReadableStream({
    start(c) {
      state.opened += 1;
      for (const e of events) c.enqueue(enc.encode(`event: task\ndata: ${JSON.stringify(e)}\n\n`));
      if (o.error) setTimeout(() => c.error(o.error), 20);
      // otherwise: open, as a server that keeps the connection would
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { state, make };
}

/**
 * Answers the task's event stream from `s`, and its plain read with `task`.
 * @param {ReturnType<typeof stream>} s
 * @param {object} task
 */
function serve(s, task) {
  globalThis.fetch = /** @type {typeof fetch} */ (async (input, init) => {
    const path = String(input);
    if (init?.signal?.aborted) throw new DOMException('aborted', 'AbortError');
    if (path === `/api/v1/tasks/${ID}/events`) {
      return new Response(s.make(), { status: 200, headers: { 'content-type': 'text/event-stream' } });
    }
    if (path === `/api/v1/tasks/${ID}`) {
      return new Response(JSON.stringify(task), { status: 200, headers: { 'content-type': 'application/json' } });
    }
    return new Response('', { status: 404 });
  });
}

const task = (/** @type {string} */ state) => ({ id: ID, kind: 'fsck', state, progress: { done: 1 }, cancel_requested: false });

/** Waits until `ok` holds (cancellation reaches the source asynchronously). @param {() => boolean} ok */
async function until(ok) {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => { setTimeout(r, 5); });
  return ok();
}

test('a final state ends the stream: followTask returns and the connection is released', async () => {
  const s = stream([task('running'), task('succeeded')]);
  serve(s, task('succeeded'));
  /** @type {string[]} */
  const seen = [];
  const ctl = new AbortController();
  const done = followTask(ID, (t) => seen.push(t.state), ctl.signal);
  const timeout = setTimeout(() => ctl.abort(), 5000);
  await done;
  clearTimeout(timeout);
  assert.equal(ctl.signal.aborted, false, 'followTask waited for the server to close the stream');
  assert.deepEqual(seen, ['running', 'succeeded']);
  assert.ok(await until(() => s.state.cancelled), 'the stream was not cancelled');
  assert.equal(s.state.opened, 1);
});

test('a callback that throws: the stream is cancelled, not left open', async () => {
  const s = stream([task('running')]);
  serve(s, task('running'));
  const ctl = new AbortController();
  let calls = 0;
  const done = followTask(ID, () => {
    calls += 1;
    throw new Error('render failed');
  }, ctl.signal);
  assert.ok(await until(() => s.state.cancelled), 'the stream was not cancelled after the callback threw');
  ctl.abort();
  await done;
  assert.ok(calls >= 1);
});

test('a stream that fails mid-way: no unhandled rejection, a plain read follows', async () => {
  const s = stream([task('running')], { error: new TypeError('network error') });
  serve(s, task('failed'));
  /** @type {string[]} */
  const seen = [];
  /** @type {unknown[]} */
  const unhandled = [];
  const onUnhandled = (/** @type {unknown} */ e) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    await followTask(ID, (t) => seen.push(t.state), new AbortController().signal);
    await new Promise((r) => { setTimeout(r, 20); });
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(seen, ['running', 'failed']);
  assert.deepEqual(unhandled, []);
});

test('the SSE parser: events, comments, CRLF split across chunks', () => {
  const p = new SseParser();
  assert.deepEqual(p.push(': hi\r'), []);
  assert.deepEqual(p.push('\nevent: task\r\ndata: {"a"\r\ndata: :1}\r\n\r'), []);
  assert.deepEqual(p.push('\n'), [{ event: 'task', data: '{"a"\n:1}' }]);
});
