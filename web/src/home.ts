// The home page's figures: every service with the RED figures of its service page (same queries, same window,
// same instant) and its log volume by level, joined by service name (span metrics' `service`, Loki's
// `service_name`: both are the resource's service.name).
import { quote, REQUEST_KINDS, valueAt } from './figures';
import { volumeLevel } from './logs';
import type { Series } from './parse';

type Vec = { labels: Record<string, string>; value: number }[];

/** The queries of the home page for a rate window `rw` (e.g. "60s") and a range of `rangeS` seconds. */
export function homeQueries(rw: string, rangeS: number) {
  return {
    // As the service page: requests are SERVER and CONSUMER spans, one series per service.
    rate: `sum by (service) (rate(traces_spanmetrics_calls_total{${REQUEST_KINDS}}[${rw}]))`,
    errors: `sum by (service) (rate(traces_spanmetrics_calls_total{${REQUEST_KINDS}, status_code="STATUS_CODE_ERROR"}[${rw}]))`,
    p95: `histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${REQUEST_KINDS}}[${rw}])))`,
    // Every service that had spans of any kind in the range, so that one that only calls others is listed too.
    spans: `group by (service) (max_over_time(traces_spanmetrics_calls_total[${rangeS}s]))`,
    // Lines per level over the whole range (detected_level for OTLP and pushed logs, level for older streams).
    logs: `sum by (service_name, detected_level, level) (count_over_time({service_name=~".+"} [${rangeS}s]))`,
  };
}

/** The levels counted as errors in the home page's error logs. */
export const ERROR_LEVELS = 'error|fatal|critical';

/** The LogQL of a service's error lines (every service's when `service` is empty). */
export function errorLogsQuery(service?: string): string {
  const sel = service ? `{service_name="${quote(service)}"}` : '{service_name=~".+"}';
  return `${sel} | detected_level=~"${ERROR_LEVELS}"`;
}

export interface ServiceRow {
  service: string;
  /** Requests per second at the end of the range (NaN: no requests measured). */
  rate: number;
  errRate: number;
  /** Failed requests over requests at the end of the range, 0 when there are no requests (as the service page). */
  errRatio: number;
  p95Ms: number;
  trend?: Series;
  /** Log lines in the range by level (error, warn, info, …, unknown). */
  logs: Record<string, number>;
  logTotal: number;
  spans: boolean;
}

export interface HomeInput { rate: Series[]; end: number; errors: Vec; p95: Vec; spans: Vec; logs: Vec }

/** Joins the query results into one row per service. */
export function homeRows(h: HomeInput): ServiceRow[] {
  const rows = new Map<string, ServiceRow>();
  const row = (service: string) => {
    let r = rows.get(service);
    if (!r) { r = { service, rate: NaN, errRate: NaN, errRatio: 0, p95Ms: NaN, logs: {}, logTotal: 0, spans: false }; rows.set(service, r); }
    return r;
  };
  for (const v of h.spans) if (v.labels.service) row(v.labels.service).spans = true;
  for (const s of h.rate) if (s.labels.service) { const r = row(s.labels.service); r.spans = true; r.trend = s; r.rate = valueAt(s, h.end); }
  for (const v of h.errors) if (v.labels.service) row(v.labels.service).errRate = v.value;
  for (const v of h.p95) if (v.labels.service) row(v.labels.service).p95Ms = v.value * 1000;
  for (const v of h.logs) {
    const svc = v.labels.service_name;
    if (!svc || !Number.isFinite(v.value)) continue;
    const r = row(svc), lvl = volumeLevel(v.labels);
    r.logs[lvl] = (r.logs[lvl] ?? 0) + v.value;
    r.logTotal += v.value;
  }
  for (const r of rows.values()) {
    // No failed-request series while requests were measured: none failed (the service page's "or vector(0)").
    if (Number.isNaN(r.errRate) && Number.isFinite(r.rate)) r.errRate = 0;
    r.errRatio = r.rate > 0 && Number.isFinite(r.errRate) ? r.errRate / r.rate : 0;
  }
  return [...rows.values()];
}

export type HomeSort = 'rate' | 'errors' | 'p95' | 'logs' | 'name';

/** Orders rows by a column, largest first (names alphabetically); missing figures last, ties by name. */
export function sortRows(rows: ServiceRow[], by: HomeSort): ServiceRow[] {
  // Keys compared in turn: "errors" is the failed-request ratio, then the error lines.
  const keys = (r: ServiceRow): number[] => {
    switch (by) {
      case 'rate': return [r.rate];
      case 'errors': return [r.errRatio, (r.logs.error ?? 0) + (r.logs.fatal ?? 0)];
      case 'p95': return [r.p95Ms];
      case 'logs': return [r.logTotal];
      default: return [];
    }
  };
  return rows.slice().sort((a, b) => {
    const ka = keys(a), kb = keys(b);
    for (let i = 0; i < ka.length; i++) {
      const x = ka[i], y = kb[i];
      const fx = Number.isFinite(x), fy = Number.isFinite(y);
      if (fx !== fy) return fx ? -1 : 1;
      if (fx && x !== y) return y - x;
    }
    return a.service < b.service ? -1 : a.service > b.service ? 1 : 0;
  });
}

/** The order in which levels are stacked in a row's volume bar, most severe first. */
export const LEVEL_ORDER = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'unknown'];
