// The links out of a span: to its service's RED page, to its operation's latency with the exemplars that point
// back at traces, and to the log lines it wrote. Pure, so that the queries they carry are unit-tested.
import type { Span } from './parse';
import { link, type Route } from './url';

const q = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/** The span-metrics selector of a span's operation, as the generator labels it. */
export function operationSelector(s: Pick<Span, 'service' | 'name' | 'kind'>): string {
  return `service="${q(s.service)}", span_name="${q(s.name)}", span_kind="SPAN_KIND_${s.kind.toUpperCase()}"`;
}

export interface SpanLinks { service: string; metrics: string; logs: string }

/**
 * Links for a span that started at `startMs` (epoch ms). They carry an absolute time range around the span (half
 * an hour each side for metrics, a quarter for logs), so that they still find it when opened later.
 */
export function spanLinks(s: Pick<Span, 'service' | 'name' | 'kind' | 'spanId' | 'traceId'>, startMs: number, route?: Route): SpanLinks {
  const around = (ms: number) => ({ from: String(Math.floor(startMs - ms)), to: String(Math.ceil(startMs + ms)) });
  const sel = operationSelector(s);
  return {
    service: link('service', s.service, {}, route),
    metrics: link('metrics', undefined, {
      q: `histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{${sel}}[5m])))`,
      trace: s.traceId, ...around(30 * 60e3),
    }),
    logs: link('logs', undefined, { q: `{service_name=~".+"} | span_id="${s.spanId}"`, ...around(15 * 60e3) }),
  };
}
