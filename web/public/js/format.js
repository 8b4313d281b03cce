// Formatting of times, sizes and counts for display.

/**
 * "3 min ago" style age of `date` relative to `now`.
 * @param {Date} date
 * @param {Date} [now]
 */
export function ago(date, now = new Date()) {
  const s = Math.round((now.getTime() - date.getTime()) / 1000);
  if (!Number.isFinite(s)) return 'unknown';
  if (s < 0) return 'in the future';
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ago`;
  const d = Math.floor(hr / 24);
  return `${d} days ago`;
}

/**
 * Local date and time of an RFC 3339 string; the raw string when unparsable.
 * @param {string} iso
 */
export function localTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** @param {number} n */
export function bytes(n) {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** @param {number | bigint} n */
export function count(n) {
  return n.toLocaleString();
}

/**
 * Value for `<input type="datetime-local">` from an RFC 3339 string (in
 * local time, as the input shows it).
 * @param {string} iso
 */
export function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  /** @param {number} n */
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * RFC 3339 UTC string from a datetime-local input value ('' stays '').
 * @param {string} local
 */
export function fromLocalInput(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
