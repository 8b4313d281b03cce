// Evidence records and audit events as the API returns them, and their leaf
// data (docs/FORMATS.md "Evidence leaf" and "Audit log"; Rust:
// crates/verify/src/{evidence.rs,audit.rs}).
//
// The formats are strict, as the Rust verifier's (serde deny_unknown_fields):
// a member we do not know is refused, never dropped, because an auditor must
// not take a record with unchecked content as verified.

import { canonicalBytes } from './jcs.js';
import { VerifyError } from './errors.js';

export const EVIDENCE_LEAF_VERSION = 'evault/evidence/v1';
export const AUDIT_LEAF_VERSION = 'evault/audit/v1';
export const OUTCOMES = ['success', 'denied', 'unauthenticated', 'failed'];

/**
 * @typedef {{id: string, leaf_index: number, content_type: string, sha256: string, size: number,
 *   labels: Record<string, string>, ingested_at: string, ingested_by: string,
 *   idempotency_key?: string}} EvidenceRecord
 * An evidence record, checked; `labels` is `{}` when absent and an absent or
 * null `idempotency_key` is left out.
 */
/**
 * @typedef {{id: string, leaf_index: number, time: string, request_id: string, principal: string,
 *   key_id?: string, auth_method: string, protocol: string, operation: string, resource: string,
 *   outcome: string, status: number, client: string, params_digest: string, reason?: string}} AuditEvent
 * An audit event, checked; absent or null `key_id` and `reason` are left out.
 */

/**
 * A reader of one JSON object's members that refuses unknown ones.
 * @param {unknown} value
 * @param {string} what  e.g. "the record"
 * @param {string[]} members  every member the format has
 */
function members(value, what, members) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VerifyError('record', `${what} is not a JSON object`);
  }
  const obj = /** @type {Record<string, unknown>} */ (value);
  for (const k of Object.keys(obj)) {
    if (!members.includes(k)) {
      throw new VerifyError('record-unknown-member', `${what} has a member this verifier does not know: ${JSON.stringify(k)}`);
    }
  }
  const has = (/** @type {string} */ k) => Object.prototype.hasOwnProperty.call(obj, k);
  return {
    /** @param {string} k */
    string(k) {
      if (!has(k)) throw new VerifyError('record-missing-member', `${what} has no "${k}"`);
      if (typeof obj[k] !== 'string') throw new VerifyError('record-type', `${what}'s "${k}" is not a string`);
      return /** @type {string} */ (obj[k]);
    },
    /** Absent and null are both "none" (serde's Option with default). @param {string} k */
    optionalString(k) {
      if (!has(k) || obj[k] === null) return undefined;
      if (typeof obj[k] !== 'string') throw new VerifyError('record-type', `${what}'s "${k}" is not a string`);
      return /** @type {string} */ (obj[k]);
    },
    /**
     * A non-negative integer up to `max` (at most 2^53-1: JSON.parse would
     * have rounded a larger one); not -0, which serde refuses as a float.
     * @param {string} k
     * @param {number} max
     */
    integer(k, max) {
      if (!has(k)) throw new VerifyError('record-missing-member', `${what} has no "${k}"`);
      const v = obj[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || Object.is(v, -0) || v > max) {
        throw new VerifyError('record-type', `${what}'s "${k}" is not an integer from 0 to ${max === Number.MAX_SAFE_INTEGER ? '2^53-1' : max}`);
      }
      return v;
    },
    /** @param {string} k */
    has,
    /** @param {string} k */
    get: (k) => obj[k],
  };
}

const EVIDENCE_MEMBERS = [
  'id', 'leaf_index', 'content_type', 'sha256', 'size', 'labels',
  'ingested_at', 'ingested_by', 'idempotency_key',
];

/**
 * Checks an evidence record as the Rust `Evidence` type reads it.
 * @param {unknown} value
 * @param {string} [what]
 * @returns {EvidenceRecord}
 */
export function checkEvidenceRecord(value, what = 'the record') {
  const m = members(value, what, EVIDENCE_MEMBERS);
  /** @type {Record<string, string>} */
  const labels = {};
  if (m.has('labels')) {
    const l = m.get('labels');
    if (typeof l !== 'object' || l === null || Array.isArray(l)) {
      throw new VerifyError('record-type', `${what}'s "labels" is not an object`);
    }
    for (const [k, v] of Object.entries(l)) {
      if (typeof v !== 'string') {
        throw new VerifyError('record-type', `${what}'s label ${JSON.stringify(k)} is not a string`);
      }
      Object.defineProperty(labels, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  /** @type {EvidenceRecord} */
  const record = {
    id: m.string('id'),
    leaf_index: m.integer('leaf_index', Number.MAX_SAFE_INTEGER),
    content_type: m.string('content_type'),
    sha256: m.string('sha256'),
    size: m.integer('size', Number.MAX_SAFE_INTEGER),
    labels,
    ingested_at: m.string('ingested_at'),
    ingested_by: m.string('ingested_by'),
  };
  const key = m.optionalString('idempotency_key');
  if (key !== undefined) record.idempotency_key = key;
  return record;
}

/**
 * The evidence leaf data: RFC 8785 JSON of the record's metadata, without
 * `leaf_index` (the proof proves the position) and `idempotency_key` (a
 * client's retry token), plus `"v": "evault/evidence/v1"`.
 * @param {unknown} record
 * @returns {Uint8Array}
 */
export function evidenceLeafData(record) {
  const r = checkEvidenceRecord(record);
  return canonicalBytes({
    v: EVIDENCE_LEAF_VERSION,
    id: r.id,
    sha256: r.sha256,
    size: r.size,
    content_type: r.content_type,
    labels: r.labels,
    ingested_at: r.ingested_at,
    ingested_by: r.ingested_by,
  });
}

const AUDIT_MEMBERS = [
  'id', 'leaf_index', 'time', 'request_id', 'principal', 'key_id', 'auth_method',
  'protocol', 'operation', 'resource', 'outcome', 'status', 'client',
  'params_digest', 'reason',
];

/**
 * Checks an audit event as the Rust `AuditEvent` type reads it.
 * @param {unknown} value
 * @param {string} [what]
 * @returns {AuditEvent}
 */
export function checkAuditEvent(value, what = 'the event') {
  const m = members(value, what, AUDIT_MEMBERS);
  const outcome = m.string('outcome');
  if (!OUTCOMES.includes(outcome)) {
    throw new VerifyError(
      'record-type',
      `${what}'s outcome ${JSON.stringify(outcome)} is not success, denied, unauthenticated or failed`,
    );
  }
  /** @type {AuditEvent} */
  const event = {
    id: m.string('id'),
    leaf_index: m.integer('leaf_index', Number.MAX_SAFE_INTEGER),
    time: m.string('time'),
    request_id: m.string('request_id'),
    principal: m.string('principal'),
    auth_method: m.string('auth_method'),
    protocol: m.string('protocol'),
    operation: m.string('operation'),
    resource: m.string('resource'),
    outcome,
    status: m.integer('status', 65535),
    client: m.string('client'),
    params_digest: m.string('params_digest'),
  };
  const keyId = m.optionalString('key_id');
  if (keyId !== undefined) event.key_id = keyId;
  const reason = m.optionalString('reason');
  if (reason !== undefined) event.reason = reason;
  return event;
}

/**
 * The audit leaf data: RFC 8785 JSON of every member but `leaf_index`,
 * plus `"v": "evault/audit/v1"`; absent options stay absent.
 * @param {unknown} event
 * @returns {Uint8Array}
 */
export function auditLeafData(event) {
  const { leaf_index: _, ...rest } = checkAuditEvent(event);
  return canonicalBytes({ ...rest, v: AUDIT_LEAF_VERSION });
}
