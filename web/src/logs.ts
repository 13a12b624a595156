// The log volume: a LogQL metric query when the server evaluates one, else a count of the lines returned.
import type { LogLine, Series } from './parse';

/** Counts lines per level in buckets of `stepMs`: the volume histogram when the server has no metric query. */
export function histogram(lines: LogLine[], start: number, end: number, stepMs: number): Series[] {
  const n = Math.max(1, Math.ceil((end - start) / stepMs));
  const by = new Map<string, number[]>();
  for (const l of lines) {
    const i = Math.floor((l.timeMs - start) / stepMs);
    if (i < 0 || i >= n) continue;
    let a = by.get(l.level);
    if (!a) { a = new Array(n).fill(0); by.set(l.level, a); }
    a[i]++;
  }
  return [...by.entries()].map(([level, a]) => ({ labels: { level }, points: a.map((v, i) => [start + i * stepMs, v] as [number, number]) }));
}

/**
 * The volume query: lines per level per step, from the server when it evaluates LogQL metric queries. OTLP and
 * pushed logs carry their level as `detected_level` (structured metadata, as Loki 3 does); a stream label `level`
 * is the older convention: group by both and name each series by whichever it has.
 */
export function volumeQuery(q: string, stepS: number): string | null {
  const m = /^\s*(\{[^}]*\})/.exec(q);
  if (!m) return null;
  return `sum by (detected_level, level) (count_over_time(${q} [${stepS}s]))`;
}

/** The level a volume series stands for. */
export function volumeLevel(labels: Record<string, string>): string {
  const v = (labels.detected_level || labels.level || '').toLowerCase();
  if (!v) return 'unknown';
  if (v === 'warning') return 'warn';
  if (v === 'err') return 'error';
  if (v === 'critical' || v === 'panic') return 'fatal';
  return v;
}

/** The query the Logs page opens on: every stream, so that a first visit shows lines if there are any. */
export const DEFAULT_LOGQL = '{service_name=~".+"}';

/** Example queries for the Logs page, written for a service that exists (the first one the server lists). */
export function logExamples(service: string | undefined): { q: string; what: string }[] {
  const s = service ? `{service_name="${service.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"}` : DEFAULT_LOGQL;
  return [
    { q: DEFAULT_LOGQL, what: 'every log line' },
    { q: `${DEFAULT_LOGQL} | detected_level="error"`, what: 'errors of every service' },
    { q: `${s} |= "error"`, what: `lines of ${service ?? 'every service'} that contain "error"` },
    { q: `${s} | detected_level=~"warn|error"`, what: `warnings and errors of ${service ?? 'every service'}` },
    { q: `sum by (service_name) (count_over_time(${DEFAULT_LOGQL} | detected_level="error" [1m]))`, what: 'error lines per service per minute (a chart)' },
  ];
}

