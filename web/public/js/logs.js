// Where each log's endpoints are. The evidence log and the audit log have
// the same shapes under different paths, and separate keys and pins.

/** @typedef {import('./pins.js').LogName} LogName */
/**
 * @typedef {{name: LogName, title: string, info: string, latest: string,
 *   checkpoint: (size: string | number | bigint) => string, consistency: string,
 *   entry: (id: string) => string, proof: (id: string) => string}} LogPaths
 */

/** @type {Record<LogName, LogPaths>} */
export const LOGS = {
  evidence: {
    name: 'evidence',
    title: 'Evidence log',
    info: '/api/v1/log',
    latest: '/api/v1/checkpoints/latest',
    checkpoint: (size) => `/api/v1/checkpoints/${encodeURIComponent(String(size))}`,
    consistency: '/api/v1/tree/consistency',
    entry: (id) => `/api/v1/evidence/${encodeURIComponent(id)}`,
    proof: (id) => `/api/v1/evidence/${encodeURIComponent(id)}/proof`,
  },
  audit: {
    name: 'audit',
    title: 'Audit log',
    info: '/api/v1/audit/log',
    latest: '/api/v1/audit/checkpoints/latest',
    checkpoint: (size) => `/api/v1/audit/checkpoints/${encodeURIComponent(String(size))}`,
    consistency: '/api/v1/audit/consistency',
    entry: (id) => `/api/v1/audit/events/${encodeURIComponent(id)}`,
    proof: (id) => `/api/v1/audit/events/${encodeURIComponent(id)}/proof`,
  },
};

/**
 * @typedef {{origin: string, verifier_key: string, verifier_keys: string[],
 *   tree_size: number, checkpoint_size: number,
 *   witnesses?: {threshold: number, total: number, witnessed_size?: number | null,
 *     items: Array<{name: string, acknowledged_size: number, last_error?: string | null, inconsistent: boolean}>} | null}} LogInfo
 */
/** @typedef {{size: number, note: string, created_at: string}} CheckpointInfo */
