// Test support: an in-memory localStorage/sessionStorage for modules that
// use the browser's storage, which can also be made to refuse (as a
// browser does when storage is disabled, blocked or full).

/** A Storage-like object backed by a Map. */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
    /** When set, every call throws it (as a browser with storage disabled). */
    /** @type {Error | null} */
    this.failReads = null;
    /** When set, setItem and removeItem throw it (storage blocked or full). */
    /** @type {Error | null} */
    this.failWrites = null;
  }

  /** @param {string} k */
  getItem(k) {
    if (this.failReads) throw this.failReads;
    return this.map.has(k) ? /** @type {string} */ (this.map.get(k)) : null;
  }

  /** @param {string} k @param {string} v */
  setItem(k, v) {
    if (this.failWrites) throw this.failWrites;
    this.map.set(k, String(v));
  }

  /** @param {string} k */
  removeItem(k) {
    if (this.failWrites) throw this.failWrites;
    this.map.delete(k);
  }

  clear() {
    this.map.clear();
  }
}

/**
 * Installs a fresh MemoryStorage as globalThis.localStorage (and
 * sessionStorage) and returns it.
 * @param {'localStorage' | 'sessionStorage'} [name]
 */
export function installStorage(name = 'localStorage') {
  const s = new MemoryStorage();
  Object.defineProperty(globalThis, name, { value: s, configurable: true, writable: true });
  return s;
}

/** A QuotaExceededError as a browser throws it. */
export function quotaError() {
  return new DOMException('The quota has been exceeded.', 'QuotaExceededError');
}
