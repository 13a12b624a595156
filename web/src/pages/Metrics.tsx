import { prom } from '../api';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { LabelBrowserBox, promSource } from '../components/LabelBrowser';
import { QueryEditor } from '../components/QueryEditor';
import { parseExemplars, parsePromResult, seriesName, type Exemplar, type Series } from '../parse';
import { navigate, setParams } from '../router';
import { suggestPromQL } from '../suggest';
import { thinExemplars } from '../figures';
import { autoStep, fmtTime } from '../time';
import { link, type Route } from '../url';

interface Result { query: string; series: Series[]; exemplars: Exemplar[]; shown: Exemplar[]; exemplarError?: string; step: number; start: number; end: number }

/** How many exemplars are drawn at most: enough for the outliers of every moment, few enough to see the line. */
const MAX_EXEMPLARS = 200;

const REQ = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';

/** Example queries over what Sprout itself produces (span metrics, service graph, scrape health). */
export const METRIC_EXAMPLES: { q: string; what: string }[] = [
  { q: `sum by (service) (rate(traces_spanmetrics_calls_total{${REQ}}[5m]))`, what: 'requests per second by service' },
  { q: `histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${REQ}}[5m])))`, what: 'p95 latency by service, with exemplars (click one for its trace)' },
  { q: `sum by (service) (rate(traces_spanmetrics_calls_total{${REQ}, status_code="STATUS_CODE_ERROR"}[5m])) / sum by (service) (rate(traces_spanmetrics_calls_total{${REQ}}[5m]))`, what: 'error ratio by service' },
  { q: 'sum by (client, server) (rate(traces_service_graph_request_total[5m]))', what: 'calls between services' },
  { q: 'up', what: 'scrape targets that answer (1) or not (0)' },
];

function exemplarNote(d: Result): string {
  if (!d.exemplars.length) return 'no exemplars';
  if (d.shown.length === d.exemplars.length) return `${d.exemplars.length} exemplars`;
  return `${d.shown.length} of ${d.exemplars.length} exemplars shown (the slowest, the errors, and one per time and value cell)`;
}

export function Metrics({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  // No query in the URL: open on the request rate of every service, which the span metrics always provide.
  const q = p.q ?? METRIC_EXAMPLES[0].q;
  const pin = p.trace;
  const res = useAsync<Result>(`${q}|${p.from}|${p.to}|${p.step}|${pin ?? ''}`, q ? async (signal) => {
    const r = range(p);
    const step = Number(p.step) || autoStep(r.start, r.end);
    const args = { query: q, start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000) };
    const span = { start: args.start, end: args.end };
    const [series, ex] = await Promise.all([
      prom('/api/v1/query_range', { ...args, step }, signal).then(parsePromResult),
      // Exemplars are a bonus: a server without them must not fail the chart.
      prom('/api/v1/query_exemplars', args, signal).then(parseExemplars, (e: Error) => (e.name === 'AbortError' ? Promise.reject(e) : e.message)),
    ]);
    if (typeof ex === 'string') return { query: q, series, exemplars: [], shown: [], exemplarError: ex, step, ...span };
    return { query: q, series, exemplars: ex, shown: thinExemplars(ex, MAX_EXEMPLARS, { pin }).shown, step, ...span };
  } : null, tick);
  const openTrace = (e: Exemplar) => { if (e.traceId) navigate(link('trace', e.traceId, {}, route)); };
  const d = res.data;
  return (
    <section class="page" aria-labelledby="h-metrics" aria-busy={res.loading} data-shown-query={d?.query}>
      <h1 id="h-metrics">Metrics</h1>
      <QueryEditor lang="promql" value={q} placeholder="PromQL, e.g. sum by (service) (rate(traces_spanmetrics_calls_total[5m]))" onRun={(v) => setParams({ q: v })} suggest={suggestPromQL} />
      <div class="toolbar">
        <label>Step <input class="small-input" placeholder={d ? `${d.step}s (auto)` : 'auto'} aria-label="Step in seconds" value={p.step ?? ''} onChange={(e) => setParams({ step: (e.target as HTMLInputElement).value })} /></label>
      </div>
      <ErrorBox error={res.error} query={q} />
      <LabelBrowserBox src={promSource(p)} params={p} actions={[
        { label: 'Use query', cls: 'lb-run', query: (sel) => sel, run: (q) => setParams({ q }) },
        { label: 'Use as rate query', cls: 'lb-rate', query: (sel) => `rate(${sel}[5m])`, run: (q) => setParams({ q }) },
      ]} />
      <details class="examples"><summary>Example queries</summary><ul>{METRIC_EXAMPLES.map((e) => (
        <li><a class="mono example" href={link('metrics', undefined, { q: e.q }, route)}>{e.q}</a> <span class="muted small">{e.what}</span></li>
      ))}</ul></details>
      {res.loading && !d && q && <Loading />}
      {d && !d.series.length && !res.error && <Empty>The query returned no series in this range. Span metrics appear once traces arrive; try an example query above.</Empty>}
      {d && d.series.length > 0 && (
        <>
          <Chart series={d.series} exemplars={d.shown} onExemplar={openTrace} xRange={[d.start, d.end]} pinTrace={pin} />
          {pin && <p class="muted small pin-note">{d.exemplars.some((e) => e.traceId === pin)
            ? <>The exemplar of trace <a class="mono" href={link('trace', pin, {}, route)}>{pin.slice(0, 16)}</a> is ringed.</>
            : <>No exemplar points at trace <a class="mono" href={link('trace', pin, {}, route)}>{pin.slice(0, 16)}</a> (the generator keeps a sample of traces as exemplars, not every one).</>}</p>}
          <p class="muted small ex-count" data-shown={d.shown.length} data-total={d.exemplars.length}>{d.series.length} series · step {d.step}s · {exemplarNote(d)}{d.exemplarError ? ` (exemplars unavailable: ${d.exemplarError})` : ''}</p>
          {d.exemplars.length > 0 && (
            <details class="exemplar-list">
              <summary>Exemplars drawn ({d.shown.length} of {d.exemplars.length}), slowest first</summary>
              <table class="grid">
                <thead><tr><th>Time</th><th class="num">Value</th><th>Series</th><th>Trace</th></tr></thead>
                <tbody>{d.shown.slice().sort((a, b) => b.value - a.value).slice(0, 200).map((e) => (
                  <tr><td>{fmtTime(e.timeMs)}</td><td class="num">{e.value}</td><td class="mono small">{seriesName(e.seriesLabels)}</td>
                    <td>{e.traceId ? <a class="mono" href={link('trace', e.traceId, {}, route)}>{e.traceId.slice(0, 16)}</a> : '–'}</td></tr>
                ))}</tbody>
              </table>
            </details>
          )}
        </>
      )}
    </section>
  );
}
