// Trust on first use of each log's verifier keys, and the last checkpoint
// this browser verified. Both are public data, so localStorage is fine.
//
// Verification always uses the pinned keys. A server that offers a key the
// pin does not hold (a key rotation, or a substituted log) gets a loud
// warning, and only an explicit click adopts its keys.

/** @typedef {'evidence' | 'audit'} LogName */
/** @typedef {{origin: string, keys: string[], pinned_at: string}} Pin */
/**
 * first-use: pinned just now; match: the server offers only pinned keys;
 * changed: another origin, or a key the pin does not hold.
 * @typedef {{state: 'first-use' | 'match' | 'changed', pin: Pin,
 *   serverOrigin: string, serverKeys: string[], unknown: string[],
 *   missing: string[]}} PinStatus
 */

/** @param {LogName} log */
const pinKey = (log) => `evault.pin.${log}`;
/** @param {LogName} log */
const lastKey = (log) => `evault.last.${log}`;

/**
 * @param {LogName} log
 * @returns {Pin | null}
 */
export function getPin(log) {
  try {
    const raw = localStorage.getItem(pinKey(log));
    if (!raw) return null;
    const p = JSON.parse(raw);
    if (!p || typeof p.origin !== 'string' || !Array.isArray(p.keys)
      || !p.keys.every((/** @type {unknown} */ k) => typeof k === 'string')) {
      return null;
    }
    return { origin: p.origin, keys: p.keys, pinned_at: typeof p.pinned_at === 'string' ? p.pinned_at : '' };
  } catch {
    return null;
  }
}

/**
 * @param {LogName} log
 * @param {Pin} pin
 */
function savePin(log, pin) {
  localStorage.setItem(pinKey(log), JSON.stringify(pin));
}

/**
 * Compares the server's keys with the pin, pinning them on first use.
 * @param {LogName} log
 * @param {{origin: string, verifier_keys?: string[], verifier_key?: string}} info
 *   `/api/v1/log` or `/api/v1/audit/log`
 * @returns {PinStatus}
 */
export function checkPin(log, info) {
  const serverKeys = Array.isArray(info.verifier_keys) && info.verifier_keys.length
    ? info.verifier_keys.slice()
    : (info.verifier_key ? [info.verifier_key] : []);
  const pin = getPin(log);
  if (!pin) {
    const fresh = { origin: info.origin, keys: serverKeys, pinned_at: new Date().toISOString() };
    savePin(log, fresh);
    return { state: 'first-use', pin: fresh, serverOrigin: info.origin, serverKeys, unknown: [], missing: [] };
  }
  const unknown = serverKeys.filter((k) => !pin.keys.includes(k));
  // A pinned key no longer offered is normal after a retirement: old
  // checkpoints stay verifiable with it, so the pin keeps it.
  const missing = pin.keys.filter((k) => !serverKeys.includes(k));
  const changed = pin.origin !== info.origin || unknown.length > 0;
  return { state: changed ? 'changed' : 'match', pin, serverOrigin: info.origin, serverKeys, unknown, missing };
}

/**
 * Adopts the server's keys after the user confirmed them. Same origin: the
 * new keys join the pinned ones (a rotation keeps old checkpoints
 * verifiable). Another origin is another log: its keys replace the pin and
 * the last verified checkpoint of the old log is dropped.
 * @param {LogName} log
 * @param {PinStatus} status
 */
export function trustServerKeys(log, status) {
  const sameOrigin = status.pin.origin === status.serverOrigin;
  const keys = sameOrigin
    ? [...status.pin.keys, ...status.unknown]
    : status.serverKeys.slice();
  savePin(log, { origin: status.serverOrigin, keys, pinned_at: new Date().toISOString() });
  if (!sameOrigin) localStorage.removeItem(lastKey(log));
}

/** Forgets the pin (and the last verified checkpoint) of a log. @param {LogName} log */
export function forgetPin(log) {
  localStorage.removeItem(pinKey(log));
  localStorage.removeItem(lastKey(log));
}

/**
 * The origin, size and root of a checkpoint note (its first three lines);
 * null when it is not one.
 * @param {string} note
 * @returns {{origin: string, size: bigint, root: string} | null}
 */
export function noteHead(note) {
  const lines = note.split('\n');
  if (lines.length < 3 || !/^[0-9]{1,20}$/.test(lines[1])) return null;
  return { origin: lines[0], size: BigInt(lines[1]), root: lines[2] };
}

/**
 * The last checkpoint note this browser verified for `log`.
 * @param {LogName} log
 * @returns {string | null}
 */
export function getLast(log) {
  try {
    const note = localStorage.getItem(lastKey(log));
    return note && noteHead(note) ? note : null;
  } catch {
    return null;
  }
}

/**
 * Records a verified checkpoint as the last one, unless a larger one is
 * already stored (the record is a high-water mark).
 * @param {LogName} log
 * @param {string} note
 * @returns {boolean} whether it was stored
 */
export function setLast(log, note) {
  const head = noteHead(note);
  if (!head) return false;
  const prev = getLast(log);
  const prevHead = prev ? noteHead(prev) : null;
  if (prevHead && prevHead.size > head.size) return false;
  localStorage.setItem(lastKey(log), note);
  return true;
}
