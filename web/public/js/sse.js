// Server-Sent Events over fetch: EventSource cannot send an Authorization
// header, so the stream is read with a ReadableStream reader and parsed
// here (the `event:` and `data:` fields; comments and ids are ignored).

import { ApiError, getJson, request } from './api.js';

/** @typedef {{event: string, data: string}} SseEvent */

/**
 * Incremental parser: feed text chunks, get complete events.
 */
export class SseParser {
  constructor() {
    this.buf = '';
    this.event = '';
    /** @type {string[]} */
    this.data = [];
  }

  /**
   * @param {string} chunk
   * @returns {SseEvent[]}
   */
  push(chunk) {
    this.buf += chunk;
    /** @type {SseEvent[]} */
    const out = [];
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.buf);
      // A lone '\r' at the end may be the first half of '\r\n'.
      if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === '') {
        if (this.data.length) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
    }
    return out;
  }
}

/** @typedef {{id: string, kind: string, principal: string, params: object, state: string,
 *   progress: {done: number, total?: number | null}, result?: {size: number, sha256: string, available: boolean} | null,
 *   summary?: {[k: string]: unknown} | null, error?: string | null, cancel_requested: boolean,
 *   created: string, started?: string | null, finished?: string | null}} Task */

export const FINAL_STATES = ['succeeded', 'failed', 'cancelled'];

/**
 * Follows a task until it reaches a final state or `signal` aborts; calls
 * `onTask` with every update. A stream that ends early is re-opened after
 * a pause, a bounded number of times.
 * @param {string} id
 * @param {(task: Task) => void} onTask
 * @param {AbortSignal} signal
 */
export async function followTask(id, onTask, signal) {
  const path = `/api/v1/tasks/${encodeURIComponent(id)}`;
  for (let attempt = 0; attempt < 30 && !signal.aborted; attempt += 1) {
    /** @type {Task | null} */
    let last = null;
    try {
      const resp = await request(`${path}/events`, { accept: 'text/event-stream', signal });
      if (!resp.body) throw new Error('no stream');
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        const parser = new SseParser();
        let final = false;
        while (!final) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const ev of parser.push(value)) {
            try {
              last = JSON.parse(ev.data);
            } catch {
              continue;
            }
            if (last) onTask(last);
            // Nothing follows a final state: stop reading (the stream is
            // closed below) rather than wait for the server to close it.
            if (last && FINAL_STATES.includes(last.state)) final = true;
          }
        }
      } finally {
        // Whatever ended the loop (the end, a final state, an error in
        // the stream, the parser or onTask), the connection is released.
        reader.cancel().catch(() => {});
      }
    } catch (e) {
      if (signal.aborted) return;
      // A refusal will not change by retrying (429 will).
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) return;
      // Anything else: fall through to a plain read and a retry.
    }
    if (last && FINAL_STATES.includes(last.state)) return;
    try {
      const t = /** @type {Task} */ (await getJson(path, { signal }));
      onTask(t);
      if (FINAL_STATES.includes(t.state)) return;
    } catch (e) {
      if (signal.aborted) return;
    }
    await sleep(Math.min(1000 * (attempt + 1), 5000), signal);
  }
}

/**
 * @param {number} ms
 * @param {AbortSignal} signal
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve(undefined);
    }, { once: true });
  });
}
