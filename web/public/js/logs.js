// Where each log's endpoints are. The evidence log and the audit log have
// the same shapes under different paths, and separate keys and pins.

/** @typedef {import('./pins.js').LogName} LogName */
/**
 * @typedef {{name: LogName, title: string, info: string, latest: string,
 *   checkpoint: (size: string | number | bigint) => string, consistency: string,
 *   entry: (id: string) => string, proof: (id: string) => string}} LogPaths
 */

/**
 * Record and audit event ids as the server makes them: UUIDv7, lower-case
 * and hyphenated. Anything else (a dot segment such as "..", which fetch
 * would resolve into another API path) never reaches a request.
 */
export const ENTRY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** @param {unknown} id @returns {id is string} */
export function isEntryId(id) {
  return typeof id === 'string' && ENTRY_ID.test(id);
}

/**
 * The id, checked, for a path.
 * @param {string} id
 */
function entryId(id) {
  if (!isEntryId(id)) throw new Error(`not a record or event id: ${JSON.stringify(String(id).slice(0, 80))}`);
  return id;
}

/** @type {Record<LogName, LogPaths>} */
export const LOGS = {
  evidence: {
    name: 'evidence',
    title: 'Evidence log',
    info: '/api/v1/log',
    latest: '/api/v1/checkpoints/latest',
    checkpoint: (size) => `/api/v1/checkpoints/${encodeURIComponent(String(size))}`,
    consistency: '/api/v1/tree/consistency',
    entry: (id) => `/api/v1/evidence/${entryId(id)}`,
    proof: (id) => `/api/v1/evidence/${entryId(id)}/proof`,
  },
  audit: {
    name: 'audit',
    title: 'Audit log',
    info: '/api/v1/audit/log',
    latest: '/api/v1/audit/checkpoints/latest',
    checkpoint: (size) => `/api/v1/audit/checkpoints/${encodeURIComponent(String(size))}`,
    consistency: '/api/v1/audit/consistency',
    entry: (id) => `/api/v1/audit/events/${entryId(id)}`,
    proof: (id) => `/api/v1/audit/events/${entryId(id)}/proof`,
  },
};

/**
 * @typedef {{origin: string, verifier_key: string, verifier_keys: string[],
 *   tree_size: number, checkpoint_size: number,
 *   witnesses?: {threshold: number, total: number, witnessed_size?: number | null,
 *     items: Array<{name: string, acknowledged_size: number, last_error?: string | null, inconsistent: boolean}>} | null}} LogInfo
 */
/** @typedef {{size: number, note: string, created_at: string}} CheckpointInfo */
