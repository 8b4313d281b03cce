// SHA-256 through WebCrypto, available in browsers (secure contexts only)
// and in Node 20 as globalThis.crypto.

import { VerifyError } from './errors.js';

/**
 * The WebCrypto SubtleCrypto object, or a clear error where the browser
 * withholds it (pages served over plain http from another host).
 * @returns {SubtleCrypto}
 */
export function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) {
    throw new VerifyError(
      'insecure-context',
      'verification needs a secure context (https or localhost): this browser offers no WebCrypto here',
    );
  }
  return s;
}

/**
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array>}
 */
export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest('SHA-256', /** @type {Uint8Array<ArrayBuffer>} */ (bytes)));
}
