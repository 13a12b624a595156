// Time ranges as they appear in URLs: "now", "now-15m", or milliseconds since the epoch.

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** Parses a relative ("now-1h") or absolute (epoch ms or ISO) time into epoch ms; NaN when unreadable. */
export function parseTime(v: string, now: number = Date.now()): number {
  v = v.trim();
  if (v === 'now') return now;
  const m = /^now-(\d+(?:\.\d+)?)([smhdw])$/.exec(v);
  if (m) return now - Number(m[1]) * UNITS[m[2]];
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? NaN : t;
}

/** Parses a duration such as "5m" or "1h30m" into ms; NaN when unreadable. */
export function parseDuration(v: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
  let total = 0, seen = 0, m: RegExpExecArray | null;
  while ((m = re.exec(v))) {
    total += Number(m[1]) * (m[2] === 'ms' ? 1 : UNITS[m[2]]);
    seen += m[0].length;
  }
  return seen === v.length && seen > 0 ? total : NaN;
}

export interface Range { from: string; to: string }

export function resolveRange(r: Range, now: number = Date.now()): { start: number; end: number } {
  let start = parseTime(r.from, now), end = parseTime(r.to, now);
  if (Number.isNaN(end)) end = now;
  if (Number.isNaN(start) || start >= end) start = end - 3600e3;
  return { start, end };
}

/** A Prometheus step (seconds) giving about `points` points over the range, rounded to a readable value. */
export function autoStep(startMs: number, endMs: number, points = 250): number {
  const raw = Math.max(1, (endMs - startMs) / 1000 / points);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  for (const n of nice) if (n >= raw) return n;
  return Math.ceil(raw / 86400) * 86400;
}

/** Formats a duration given in milliseconds: 850µs, 12.3ms, 4.56s, 2m 3s. */
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${+ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  if (ms < 60e3) return `${+(ms / 1000).toFixed(2)}s`;
  const m = Math.floor(ms / 60e3);
  if (m < 60) return `${m}m ${Math.round((ms % 60e3) / 1000)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

function pad(n: number, w = 2): string { return String(n).padStart(w, '0'); }

/** Local date-time with milliseconds: 2024-05-01 12:03:04.123 */
export function fmtTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtRate(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  if (v < 0.01) return v.toExponential(1);
  return v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : `${(v / 1000).toFixed(1)}k`;
}

export function fmtPct(v: number): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(v < 0.001 && v > 0 ? 3 : 1)}%` : '–';
}
