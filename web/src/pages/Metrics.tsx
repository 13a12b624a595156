import { prom } from '../api';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { QueryEditor } from '../components/QueryEditor';
import { parseExemplars, parsePromResult, seriesName, type Exemplar, type Series } from '../parse';
import { navigate, setParams } from '../router';
import { suggestPromQL } from '../suggest';
import { autoStep, fmtTime } from '../time';
import { link, type Route } from '../url';

interface Result { series: Series[]; exemplars: Exemplar[]; exemplarError?: string; step: number }

export function Metrics({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  const q = p.q ?? '';
  const res = useAsync<Result>(`${q}|${p.from}|${p.to}|${p.step}`, q ? async (signal) => {
    const r = range(p);
    const step = Number(p.step) || autoStep(r.start, r.end);
    const args = { query: q, start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000) };
    const [series, ex] = await Promise.all([
      prom('/api/v1/query_range', { ...args, step }, signal).then(parsePromResult),
      // Exemplars are a bonus: a server without them must not fail the chart.
      prom('/api/v1/query_exemplars', args, signal).then(parseExemplars, (e: Error) => (e.name === 'AbortError' ? Promise.reject(e) : e.message)),
    ]);
    return typeof ex === 'string' ? { series, exemplars: [], exemplarError: ex, step } : { series, exemplars: ex, step };
  } : null, tick);
  const openTrace = (e: Exemplar) => { if (e.traceId) navigate(link('trace', e.traceId, {}, route)); };
  const d = res.data;
  return (
    <section class="page" aria-labelledby="h-metrics">
      <h1 id="h-metrics">Metrics</h1>
      <QueryEditor lang="promql" value={q} placeholder="PromQL, e.g. sum by (service) (rate(traces_spanmetrics_calls_total[5m]))" onRun={(v) => setParams({ q: v })} suggest={suggestPromQL} />
      <div class="toolbar">
        <label>Step <input class="small-input" placeholder={d ? `${d.step}s (auto)` : 'auto'} aria-label="Step in seconds" value={p.step ?? ''} onChange={(e) => setParams({ step: (e.target as HTMLInputElement).value })} /></label>
      </div>
      <ErrorBox error={res.error} query={q} />
      {!q && <Empty>Type a PromQL query and press Enter. Try <code>traces_spanmetrics_calls_total</code>.</Empty>}
      {res.loading && !d && q && <Loading />}
      {d && !d.series.length && !res.error && <Empty>The query returned no series in this range.</Empty>}
      {d && d.series.length > 0 && (
        <>
          <Chart series={d.series} exemplars={d.exemplars} onExemplar={openTrace} />
          <p class="muted small">{d.series.length} series · step {d.step}s · {d.exemplars.length} exemplars{d.exemplarError ? ` (exemplars unavailable: ${d.exemplarError})` : ''}</p>
          {d.exemplars.length > 0 && (
            <details class="exemplar-list">
              <summary>Exemplars ({d.exemplars.length})</summary>
              <table class="grid">
                <thead><tr><th>Time</th><th class="num">Value</th><th>Series</th><th>Trace</th></tr></thead>
                <tbody>{d.exemplars.slice(0, 200).map((e) => (
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
