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

/** The volume query: lines per level per step, from the server when it evaluates LogQL metric queries. */
export function volumeQuery(q: string, stepS: number): string | null {
  const m = /^\s*(\{[^}]*\})/.exec(q);
  if (!m) return null;
  return `sum by (level) (count_over_time(${q} [${stepS}s]))`;
}

