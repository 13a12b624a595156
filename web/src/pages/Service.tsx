import { prom } from '../api';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { alignedRange, quote as esc, rateWindow, REQUEST_KINDS, valueAt } from '../figures';
import { parsePromResult, parsePromVector, type Series } from '../parse';
import { autoStep, fmtDuration, fmtPct, fmtRate, fmtTime } from '../time';
import { link, type Route } from '../url';


export function redQueries(service: string, rw: string) {
  const svc = `service="${esc(service)}"`;
  const sel = `${svc}, ${REQUEST_KINDS}`;
  return {
    rate: `sum(rate(traces_spanmetrics_calls_total{${sel}}[${rw}]))`,
    // "or vector(0)": no failed request is a rate of 0, not a missing figure.
    errors: `sum(rate(traces_spanmetrics_calls_total{${sel}, status_code="STATUS_CODE_ERROR"}[${rw}])) or vector(0)`,
    quantile: (q: number) => `histogram_quantile(${q}, sum by (le) (rate(traces_spanmetrics_latency_bucket{${sel}}[${rw}])))`,
    // The operations table lists every kind (a client call is worth seeing too), each on its own row.
    byOp: {
      rate: `sum by (span_name, span_kind) (rate(traces_spanmetrics_calls_total{${svc}}[${rw}]))`,
      errors: `sum by (span_name, span_kind) (rate(traces_spanmetrics_calls_total{${svc}, status_code="STATUS_CODE_ERROR"}[${rw}]))`,
      p95: `histogram_quantile(0.95, sum by (span_name, span_kind, le) (rate(traces_spanmetrics_latency_bucket{${svc}}[${rw}])))`,
    },
  };
}

/** One figure of a RED view: the query, its range result, and its value at the end of the range. */
export interface Figure { query: string; series: Series[]; now: number }

interface Red {
  start: number; end: number; step: number;
  rate: Figure; errors: Figure; p50: Figure; p95: Figure; p99: Figure;
  ops: { name: string; kind: string; rate: number; err: number; p95: number }[];
}

export function ServicePage({ route, tick }: { route: Route; tick: number }) {
  const svc = route.arg ?? '';
  const p = route.params;
  const res = useAsync<Red>(`${svc}|${p.from}|${p.to}`, async (signal) => {
    const r = range(p);
    const step = autoStep(r.start, r.end, 120);
    const { start, end } = alignedRange(r.start, r.end, step);
    const q = redQueries(svc, `${rateWindow(step)}s`);
    const fig = (query: string, scale = 1) => prom('/api/v1/query_range', { query, start, end, step }, signal).then(parsePromResult).then((series): Figure => {
      const scaled = scale === 1 ? series : series.map((x) => ({ ...x, points: x.points.map(([t, v]) => [t, v * scale] as [number, number]) }));
      return { query, series: scaled, now: valueAt(scaled[0], end) };
    });
    const qi = (query: string) => prom('/api/v1/query', { query, time: end }, signal).then(parsePromVector);
    const [rate, errors, p50, p95, p99, orate, oerr, op95] = await Promise.all([
      fig(q.rate), fig(q.errors), fig(q.quantile(0.5), 1000), fig(q.quantile(0.95), 1000), fig(q.quantile(0.99), 1000),
      qi(q.byOp.rate), qi(q.byOp.errors), qi(q.byOp.p95),
    ]);
    const k = (l: Record<string, string>) => `${l.span_name}\u0000${l.span_kind}`;
    const errBy = new Map(oerr.map((v) => [k(v.labels), v.value]));
    const p95By = new Map(op95.map((v) => [k(v.labels), v.value * 1000]));
    return {
      start, end, step, rate, errors, p50, p95, p99,
      ops: orate.map((v) => ({ name: v.labels.span_name ?? '', kind: (v.labels.span_kind ?? '').replace('SPAN_KIND_', ''), rate: v.value, err: errBy.get(k(v.labels)) ?? 0, p95: p95By.get(k(v.labels)) ?? NaN }))
        .sort((a, b) => b.rate - a.rate),
    };
  }, tick);
  const d = res.data;
  const tracesLink = link('traces', undefined, { q: `{ resource.service.name = "${esc(svc)}" }` }, route);
  const errTraces = link('traces', undefined, { q: `{ resource.service.name = "${esc(svc)}" && status = error }` }, route);
  const empty = d && !d.rate.series.length && !d.ops.length;
  const xr: [number, number] | undefined = d ? [d.start, d.end] : undefined;
  const stat = (name: string, f: Figure, text: string) => (
    <p class="stat" data-figure={name} data-query={f.query} data-time={d!.end} data-value={f.now}>{text} <small>at {fmtTime(d!.end * 1000)}</small></p>
  );
  return (
    <section class="page" aria-labelledby="h-svc">
      <h1 id="h-svc">Service {svc}</h1>
      <div class="toolbar"><a class="button" href={tracesLink}>Traces of {svc}</a><a class="button" href={errTraces}>Error traces</a><a href={link('logs', undefined, { q: `{service_name="${esc(svc)}"}` }, route)}>Logs of {svc}</a><a href={link('graph', undefined, {}, route)}>Service graph</a></div>
      <p class="muted small">Requests are the service's SERVER and CONSUMER spans. Rates over {d ? `${rateWindow(d.step)}s` : 'a window that fits the step'}, one point every {d ? `${d.step}s` : 'step'}.</p>
      <ErrorBox error={res.error} />
      {res.loading && !d && <Loading />}
      {empty && <Empty>No span metrics for <code>{svc}</code> in this range (<code>traces_spanmetrics_calls_total{`{service="${svc}"}`}</code>).</Empty>}
      {d && !empty && (
        <div class="red">
          <div class="card" data-card="rate" data-query={d.rate.query} data-start={d.start} data-end={d.end} data-step={d.step}>
            <h2>Rate (req/s)</h2>{stat('rate', d.rate, `${fmtRate(d.rate.now)}/s`)}
            <Chart series={d.rate.series} names={['requests/s']} height={180} xRange={xr} />
          </div>
          <div class="card" data-card="errors" data-query={d.errors.query} data-start={d.start} data-end={d.end} data-step={d.step}>
            <h2>Errors (req/s)</h2>{stat('errors', d.errors, `${fmtRate(d.errors.now)}/s · ${fmtPct(d.rate.now > 0 ? d.errors.now / d.rate.now : 0)}`)}
            <Chart series={d.errors.series} names={['errors/s']} colors={['#ef4444']} height={180} xRange={xr} />
          </div>
          <div class="card" data-card="p95" data-query={d.p95.query} data-start={d.start} data-end={d.end} data-step={d.step} data-scale="1000">
            <h2>Duration (ms)</h2>{stat('p95', d.p95, `p95 ${fmtDuration(d.p95.now)}`)}
            <Chart series={[...d.p50.series, ...d.p95.series, ...d.p99.series]} names={[...d.p50.series.map(() => 'p50'), ...d.p95.series.map(() => 'p95'), ...d.p99.series.map(() => 'p99')]} height={180} xRange={xr} />
          </div>
        </div>
      )}
      {d && d.ops.length > 0 && (
        <table class="grid ops">
          <caption class="muted small">Operations of every kind, rates at the end of the range</caption>
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
