import { prom } from '../api';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { parsePromResult, parsePromVector, type Series } from '../parse';
import { autoStep, fmtDuration, fmtPct, fmtRate } from '../time';
import { link, type Route } from '../url';
import { windowOf } from './ServiceGraph';

function esc(v: string) { return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"'); }

export function redQueries(service: string, rw: string) {
  const sel = `service="${esc(service)}"`;
  return {
    rate: `sum(rate(traces_spanmetrics_calls_total{${sel}}[${rw}]))`,
    errors: `sum(rate(traces_spanmetrics_calls_total{${sel}, status_code="STATUS_CODE_ERROR"}[${rw}]))`,
    quantile: (q: number) => `histogram_quantile(${q}, sum by (le) (rate(traces_spanmetrics_latency_bucket{${sel}}[${rw}])))`,
    byOp: (w: string) => ({
      rate: `sum by (span_name, span_kind) (rate(traces_spanmetrics_calls_total{${sel}}[${w}]))`,
      errors: `sum by (span_name, span_kind) (rate(traces_spanmetrics_calls_total{${sel}, status_code="STATUS_CODE_ERROR"}[${w}]))`,
      p95: `histogram_quantile(0.95, sum by (span_name, span_kind, le) (rate(traces_spanmetrics_latency_bucket{${sel}}[${w}])))`,
    }),
  };
}

interface Red { rate: Series[]; errors: Series[]; latency: Series[]; latencyNames: string[]; ops: { name: string; kind: string; rate: number; err: number; p95: number }[] }

export function ServicePage({ route, tick }: { route: Route; tick: number }) {
  const svc = route.arg ?? '';
  const p = route.params;
  const res = useAsync<Red>(`${svc}|${p.from}|${p.to}`, async (signal) => {
    const r = range(p);
    const step = autoStep(r.start, r.end, 120);
    const rw = `${Math.max(60, step * 2)}s`;
    const q = redQueries(svc, rw);
    const qr = (query: string) => prom('/api/v1/query_range', { query, start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000), step }, signal).then(parsePromResult);
    const qi = (query: string) => prom('/api/v1/query', { query, time: Math.floor(r.end / 1000) }, signal).then(parsePromVector);
    const ops = q.byOp(windowOf(p));
    const [rate, errors, p50, p95, p99, orate, oerr, op95] = await Promise.all([
      qr(q.rate), qr(q.errors), qr(q.quantile(0.5)), qr(q.quantile(0.95)), qr(q.quantile(0.99)), qi(ops.rate), qi(ops.errors), qi(ops.p95),
    ]);
    const k = (l: Record<string, string>) => `${l.span_name}\u0000${l.span_kind}`;
    const errBy = new Map(oerr.map((v) => [k(v.labels), v.value]));
    const p95By = new Map(op95.map((v) => [k(v.labels), v.value * 1000]));
    const toMs = (s: Series[]) => s.map((x) => ({ ...x, points: x.points.map(([t, v]) => [t, v * 1000] as [number, number]) }));
    return {
      rate, errors,
      latency: [...toMs(p50), ...toMs(p95), ...toMs(p99)],
      latencyNames: [...p50.map(() => 'p50'), ...p95.map(() => 'p95'), ...p99.map(() => 'p99')],
      ops: orate.map((v) => ({ name: v.labels.span_name ?? '', kind: (v.labels.span_kind ?? '').replace('SPAN_KIND_', ''), rate: v.value, err: errBy.get(k(v.labels)) ?? 0, p95: p95By.get(k(v.labels)) ?? NaN }))
        .sort((a, b) => b.rate - a.rate),
    };
  }, tick);
  const d = res.data;
  const tracesLink = link('traces', undefined, { q: `{ resource.service.name = "${esc(svc)}" }` }, route);
  const errTraces = link('traces', undefined, { q: `{ resource.service.name = "${esc(svc)}" && status = error }` }, route);
  const empty = d && !d.rate.length;
  return (
    <section class="page" aria-labelledby="h-svc">
      <h1 id="h-svc">Service {svc}</h1>
      <div class="toolbar"><a class="button" href={tracesLink}>Traces of {svc}</a><a class="button" href={errTraces}>Error traces</a><a href={link('graph', undefined, {}, route)}>Service graph</a></div>
      <ErrorBox error={res.error} />
      {res.loading && !d && <Loading />}
      {empty && <Empty>No span metrics for <code>{svc}</code> in this range (<code>traces_spanmetrics_calls_total{`{service="${svc}"}`}</code>).</Empty>}
      {d && !empty && (
        <div class="red">
          <div class="card"><h2>Rate (req/s)</h2><Chart series={d.rate} names={['requests/s']} height={180} /></div>
          <div class="card"><h2>Errors (req/s)</h2><Chart series={d.errors.length ? d.errors : [{ labels: {}, points: d.rate[0].points.map(([t]) => [t, 0]) }]} names={['errors/s']} colors={['#ef4444']} height={180} /></div>
          <div class="card"><h2>Duration (ms)</h2><Chart series={d.latency} names={d.latencyNames} height={180} /></div>
        </div>
      )}
      {d && d.ops.length > 0 && (
        <table class="grid">
          <thead><tr><th>Operation</th><th>Kind</th><th class="num">Rate</th><th class="num">Error rate</th><th class="num">p95</th><th /></tr></thead>
          <tbody>{d.ops.map((o) => (
            <tr>
              <td>{o.name}</td><td>{o.kind}</td><td class="num">{fmtRate(o.rate)}/s</td>
              <td class={'num' + (o.err ? ' err' : '')}>{fmtPct(o.rate ? o.err / o.rate : 0)}</td><td class="num">{fmtDuration(o.p95)}</td>
              <td><a href={link('traces', undefined, { q: `{ resource.service.name = "${esc(svc)}" && name = "${esc(o.name)}" }` }, route)}>traces</a></td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </section>
  );
}
