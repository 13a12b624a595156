// The numbers the RED views and charts show, computed so that they match what the same PromQL returns through the
// API: rate windows that fit the step, ranges aligned to the step, the value at the end of a range, and exemplars
// thinned to the ones worth looking at.
import type { Exemplar, Series } from './parse';

/**
 * The span metrics' emit interval (the generator's flush_interval default, Tempo's collection interval too): a
 * rate window must hold at least four samples or rate() has too few points to be stable.
 */
export const SAMPLE_INTERVAL_S = 15;

/** Requests are the spans that receive work (SERVER and CONSUMER), as Tempo's and Grafana's RED views count them. */
export const REQUEST_KINDS = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';

/** A string as the inside of a PromQL/LogQL/TraceQL double-quoted literal. */
export function quote(v: string): string { return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"'); }

/**
 * The rate window for a step, as Grafana's $__rate_interval picks it: the step plus one sample interval, and never
 * less than four sample intervals. Shorter windows leave gaps between points; longer ones smear the figure.
 */
export function rateWindow(stepS: number): number {
  return Math.max(4 * SAMPLE_INTERVAL_S, stepS + SAMPLE_INTERVAL_S);
}

/**
 * A query_range start and end (seconds) such that the last point of the range is evaluated at `end` exactly: an
 * instant query at `end` then answers the same value as the chart's last point. The start moves back to a whole
 * number of steps before the end (rather than the end back to a multiple of the step, which would hide up to a
 * step of the newest data).
 */
export function alignedRange(startMs: number, endMs: number, stepS: number): { start: number; end: number } {
  const end = Math.floor(endMs / 1000);
  const start = end - Math.max(0, Math.ceil((end - startMs / 1000) / stepS)) * stepS;
  return { start, end };
}

/** The value of the series at time `tS` (seconds), or NaN when it has no point there. */
export function valueAt(s: Series | undefined, tS: number): number {
  if (!s) return NaN;
  for (let i = s.points.length - 1; i >= 0; i--) {
    const [t, v] = s.points[i];
    if (t === tS * 1000) return v;
    if (t < tS * 1000) break;
  }
  return NaN;
}

/** How many points the series with the most points has: 0 means nothing to draw, 1 a single sample. */
export function maxPoints(series: Series[]): number {
  let n = 0;
  for (const s of series) {
    let k = 0;
    for (const p of s.points) if (Number.isFinite(p[1])) k++;
    n = Math.max(n, k);
  }
  return n;
}

/**
 * The trend of a series over its range: the first and last finite values and their ratio (last/first, NaN when
 * the first is 0 or missing).
 */
export function trend(s: Series | undefined): { first: number; last: number; ratio: number } {
  const pts = (s?.points ?? []).filter((p) => Number.isFinite(p[1]));
  if (!pts.length) return { first: NaN, last: NaN, ratio: NaN };
  const first = pts[0][1], last = pts[pts.length - 1][1];
  return { first, last, ratio: first > 0 ? last / first : NaN };
}

/** True when the exemplar belongs to a failed request: an error status on its series or its own labels. */
export function isErrorExemplar(e: Exemplar): boolean {
  const v = e.seriesLabels.status_code ?? e.labels.status_code ?? e.seriesLabels.status ?? e.labels.status ?? '';
  return /ERROR|^error$|^5\d\d$/i.test(v);
}

export interface Thinned { shown: Exemplar[]; total: number }

/**
 * Chooses at most `max` exemplars to draw: always the `keepSlowest` largest values, every error (thinned on the
 * grid when they would take more than half the room), and one per cell of a time × value grid (the slowest in the
 * cell, so the outliers of each moment survive).
 * The value axis is split on a log scale when the values span more than two decades (latencies do), so the few
 * slow requests get cells of their own instead of sharing one with thousands of fast ones.
 */
export function thinExemplars(ex: Exemplar[], max = 300, opts: { timeCells?: number; valueCells?: number; keepSlowest?: number; pin?: string } = {}): Thinned {
  const usable = ex.filter((e) => Number.isFinite(e.value) && Number.isFinite(e.timeMs));
  if (usable.length <= max) return { shown: usable.slice().sort((a, b) => a.timeMs - b.timeMs), total: usable.length };
  const timeCells = opts.timeCells ?? 50, valueCells = opts.valueCells ?? 10, keepSlowest = opts.keepSlowest ?? 10;
  let t0 = Infinity, t1 = -Infinity, v0 = Infinity, v1 = -Infinity;
  for (const e of usable) {
    t0 = Math.min(t0, e.timeMs); t1 = Math.max(t1, e.timeMs);
    v0 = Math.min(v0, e.value); v1 = Math.max(v1, e.value);
  }
  const logScale = v0 > 0 && v1 / v0 > 100;
  const vpos = (v: number) => (logScale ? (Math.log(v) - Math.log(v0)) / (Math.log(v1) - Math.log(v0) || 1) : (v - v0) / (v1 - v0 || 1));
  const cellOf = (e: Exemplar) => {
    const ti = Math.min(timeCells - 1, Math.floor(((e.timeMs - t0) / (t1 - t0 || 1)) * timeCells));
    const vi = Math.min(valueCells - 1, Math.floor(vpos(e.value) * valueCells));
    return ti * valueCells + vi;
  };
  // The slowest of each cell, cells in order of value (high first): when there are more cells than room, the
  // slow ones win.
  const gridPick = (es: Exemplar[]) => {
    const cells = new Map<number, Exemplar>();
    for (const e of es) {
      const c = cellOf(e), cur = cells.get(c);
      if (!cur || e.value > cur.value) cells.set(c, e);
    }
    return [...cells.values()].sort((a, b) => b.value - a.value);
  };
  const chosen = new Set<Exemplar>();
  const add = (es: Exemplar[], limit: number) => { for (const e of es) { if (chosen.size >= limit) break; chosen.add(e); } };
  // The slowest first, then the errors (all of them when they fit in half the room, else thinned like the rest),
  // then one per cell of the grid.
  // The exemplars of a pinned trace (the one a span link came from) before anything else.
  if (opts.pin) add(usable.filter((e) => e.traceId === opts.pin), max);
  add(usable.slice().sort((a, b) => b.value - a.value).slice(0, keepSlowest), max);
  const errors = usable.filter(isErrorExemplar);
  const room = Math.floor(max / 2);
  add(errors.length <= room - chosen.size ? errors : gridPick(errors), Math.max(chosen.size, room));
  add(gridPick(usable), max);
  return { shown: [...chosen].sort((a, b) => a.timeMs - b.timeMs), total: usable.length };
}
