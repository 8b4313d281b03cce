// Trust on first use of each log's verifier keys, and the last checkpoint
// this browser verified. Both are public data, so localStorage is fine.
//
// Verification always uses the pinned keys. A server that offers a key the
// pin does not hold (a key rotation, or a substituted log) gets a loud
// warning, and only an explicit click adopts its keys. The evidence log
// and the audit log never share an origin or a key: an offer that does is
// neither pinned nor adopted. When localStorage refuses to store, the pins
// live in this page's memory and the pages say so.

/** @typedef {'evidence' | 'audit'} LogName */
/** @typedef {{origin: string, keys: string[], pinned_at: string}} Pin */
/**
 * first-use: pinned just now; match: the server offers only pinned keys;
 * changed: another origin, or a key the pin does not hold; refused: no pin
 * yet, but the server offers the other log's origin or one of its pinned
 * keys, so nothing was pinned (`pin.keys` is empty and verification fails
 * at its 'key' step). `clash` says what the server's offer shares with the
 * other log's pin ('' when nothing): the two logs never share an origin or
 * a key, so such an offer is never adopted.
 * @typedef {{state: 'first-use' | 'match' | 'changed' | 'refused', pin: Pin,
 *   serverOrigin: string, serverKeys: string[], unknown: string[],
 *   missing: string[], clash: string}} PinStatus
 */

/** @param {LogName} log */
const pinKey = (log) => `evault.pin.${log}`;
/** @param {LogName} log */
const lastKey = (log) => `evault.last.${log}`;
/** @param {LogName} log @returns {LogName} */
const otherLog = (log) => (log === 'audit' ? 'evidence' : 'audit');
/** @param {LogName} log */
const logWords = (log) => (log === 'audit' ? 'audit log' : 'evidence log');

// Storage that refuses (disabled, blocked, full) must not make verification
// impossible: what could not be written is kept here, in this page's memory,
// and read before localStorage; the pages say so (storageTrouble).
/** @type {Map<string, string | null>} null: removed */
const memory = new Map();
let trouble = '';

/** @param {unknown} e */
function noteTrouble(e) {
  trouble = e instanceof Error && e.message ? `${e.name}: ${e.message}` : String(e);
}

/** @param {string} key @returns {string | null} */
function read(key) {
  if (memory.has(key)) return memory.get(key) ?? null;
  try {
    return localStorage.getItem(key);
  } catch (e) {
    noteTrouble(e);
    return null;
  }
}

/**
 * Writes (or with null removes) a value; when localStorage refuses, the
 * value is kept in memory for this page instead.
 * @param {string} key
 * @param {string | null} value
 * @returns {boolean} whether localStorage took it
 */
function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
    memory.delete(key);
    return true;
  } catch (e) {
    memory.set(key, value);
    noteTrouble(e);
    return false;
  }
}

/**
 * Why pins cannot be stored in this browser ('' when they can): the pins
 * and last verified checkpoints then last for this page only.
 */
export function storageTrouble() {
  return trouble;
}

/**
 * @param {LogName} log
 * @returns {Pin | null}
 */
export function getPin(log) {
  try {
    const raw = read(pinKey(log));
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
  write(pinKey(log), JSON.stringify(pin));
}

/**
 * The key material of a verifier key text (its base64 part), so that one
 * key under two names is still one key.
 * @param {string} key
 */
function material(key) {
  // `<name>+<key id>+<base64>`: a name holds no '+', but base64 may.
  const parts = key.trim().split('+');
  return parts.length < 3 ? key.trim() : parts.slice(2).join('+');
}

/**
 * What an offer for `log` shares with the other log's pin, in words, or ''.
 * @param {LogName} log
 * @param {string} origin
 * @param {string[]} keys
 */
export function clashWithOtherLog(log, origin, keys) {
  const other = getPin(otherLog(log));
  if (!other) return '';
  if (other.origin === origin) {
    return `the server names the ${logWords(log)} "${origin}", which is the origin pinned for the ${logWords(otherLog(log))}`;
  }
  const pinned = new Set(other.keys.map(material));
  const shared = keys.find((k) => pinned.has(material(k)));
  if (shared) {
    return `the server offers the ${logWords(otherLog(log))}'s pinned key ${shared} for the ${logWords(log)}`;
  }
  return '';
}

/**
 * Compares the server's keys with the pin, pinning them on first use
 * (unless they are the other log's).
 * @param {LogName} log
 * @param {{origin: string, verifier_keys?: string[], verifier_key?: string}} info
 *   `/api/v1/log` or `/api/v1/audit/log`
 * @returns {PinStatus}
 */
export function checkPin(log, info) {
  const serverKeys = Array.isArray(info.verifier_keys) && info.verifier_keys.length
    ? info.verifier_keys.slice()
    : (info.verifier_key ? [info.verifier_key] : []);
  const serverOrigin = typeof info.origin === 'string' ? info.origin : '';
  const clash = clashWithOtherLog(log, serverOrigin, serverKeys);
  const pin = getPin(log);
  if (!pin) {
    if (clash) {
      return {
        state: 'refused', pin: { origin: serverOrigin, keys: [], pinned_at: '' },
        serverOrigin, serverKeys, unknown: serverKeys.slice(), missing: [], clash,
      };
    }
    const fresh = { origin: serverOrigin, keys: serverKeys, pinned_at: new Date().toISOString() };
    savePin(log, fresh);
    return { state: 'first-use', pin: fresh, serverOrigin, serverKeys, unknown: [], missing: [], clash };
  }
  const unknown = serverKeys.filter((k) => !pin.keys.includes(k));
  // A pinned key no longer offered is normal after a retirement: old
  // checkpoints stay verifiable with it, so the pin keeps it.
  const missing = pin.keys.filter((k) => !serverKeys.includes(k));
  const changed = pin.origin !== serverOrigin || unknown.length > 0;
  return { state: changed ? 'changed' : 'match', pin, serverOrigin, serverKeys, unknown, missing, clash };
}

/**
 * Adopts the server's keys after the user confirmed them. Same origin: the
 * new keys join the pinned ones (a rotation keeps old checkpoints
 * verifiable). Another origin is another log: its keys replace the pin and
 * the last verified checkpoint of the old log is dropped. Never adopts the
 * other log's origin or keys (checked again now: the other pin may have
 * changed since `status` was made); throws instead.
 * @param {LogName} log
 * @param {PinStatus} status
 */
export function trustServerKeys(log, status) {
  const clash = clashWithOtherLog(log, status.serverOrigin, status.serverKeys);
  if (clash) throw new Error(`Not trusted: ${clash}. The two logs never share an origin or a key.`);
  if (status.serverKeys.length === 0) throw new Error('Not trusted: the server offers no key.');
  const current = getPin(log);
  const sameOrigin = current !== null && current.origin === status.serverOrigin;
  const keys = sameOrigin
    ? [...current.keys, ...status.serverKeys.filter((k) => !current.keys.includes(k))]
    : status.serverKeys.slice();
  savePin(log, { origin: status.serverOrigin, keys, pinned_at: new Date().toISOString() });
  if (!sameOrigin) write(lastKey(log), null);
}

/** Forgets the pin (and the last verified checkpoint) of a log. @param {LogName} log */
export function forgetPin(log) {
  write(pinKey(log), null);
  write(lastKey(log), null);
}

/**
 * The origin, size and root of a checkpoint note (its first three lines);
 * null when it is not one.
 * @param {string} note
 * @returns {{origin: string, size: bigint, root: string} | null}
 */
export function noteHead(note) {
  if (typeof note !== 'string') return null;
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
  const note = read(lastKey(log));
  return note && noteHead(note) ? note : null;
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
  write(lastKey(log), note);
  return true;
}
