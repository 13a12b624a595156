import { loki, prom } from '../api';
import { Empty, ErrorBox, FilterInput, Loading, range, useAsync } from '../components/common';
import { Spark } from '../components/Spark';
import { alignedRange, quote, rateWindow } from '../figures';
import { errorLogsQuery, homeQueries, homeRows, LEVEL_ORDER, sortRows, type HomeSort, type ServiceRow } from '../home';
import { parseLoki, parsePromResult, parsePromVector, type LogLine } from '../parse';
import { setParams } from '../router';
import { autoStep, fmtDuration, fmtPct, fmtRate, fmtTime } from '../time';
import { link, type Route } from '../url';
import { LEVEL_COLORS } from './Logs';

interface HomeData {
  start: number; end: number; step: number; window: number;
  queries: ReturnType<typeof homeQueries>;
  rows: ServiceRow[]; errorLines: LogLine[]; errorQuery: string;
  /** A store that failed: the others' figures are still shown. */
  failures: string[];
}

const SORTS: [HomeSort, string][] = [['rate', 'Requests/s'], ['errors', 'Errors'], ['p95', 'p95'], ['logs', 'Log lines'], ['name', 'Name']];
const ERROR_LINES = 20;

/** A stacked bar of a service's log lines by level, most severe first. */
function VolumeBar({ logs, total }: { logs: Record<string, number>; total: number }) {
  if (!total) return <span class="muted">–</span>;
  const levels = LEVEL_ORDER.filter((l) => logs[l]).concat(Object.keys(logs).filter((l) => !LEVEL_ORDER.includes(l) && logs[l]));
  const title = levels.map((l) => `${l} ${logs[l]}`).join(', ');
  return (
    <span class="volbar" title={title} aria-label={`log lines: ${title}`}>
      {levels.map((l) => <span class={`vol-${l}`} style={{ flexGrow: logs[l], background: LEVEL_COLORS[l] ?? LEVEL_COLORS.unknown }} />)}
    </span>
  );
}

export function Home({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  const sort = (SORTS.some(([s]) => s === p.sort) ? p.sort : 'rate') as HomeSort;
  const filter = (p.filter ?? '').toLowerCase();
  const res = useAsync<HomeData>(`${p.from}|${p.to}`, async (signal) => {
    const r = range(p);
    // The service page's step, window and instant, so that a row's figures are its service page's headlines.
    const step = autoStep(r.start, r.end, 120);
    const { start, end } = alignedRange(r.start, r.end, step);
    const window = rateWindow(step);
    const queries = homeQueries(`${window}s`, end - start);
    const failures: string[] = [];
    const soft = <T,>(what: string, pr: Promise<T>, empty: T): Promise<T> => pr.catch((e: Error) => {
      if (e.name === 'AbortError') throw e;
      failures.push(`${what}: ${e.message}`);
      return empty;
    });
    const ns = (s: number) => `${BigInt(s) * 1000000000n}`;
    const qi = (query: string) => prom('/api/v1/query', { query, time: end }, signal).then(parsePromVector);
    const errorQuery = errorLogsQuery();
    const [rate, errors, p95, spans, logs, errorLines] = await Promise.all([
      soft('span metrics', prom('/api/v1/query_range', { query: queries.rate, start, end, step }, signal).then(parsePromResult), []),
      soft('span metrics', qi(queries.errors), []),
      soft('span metrics', qi(queries.p95), []),
      soft('span metrics', qi(queries.spans), []),
      soft('logs', loki('/loki/api/v1/query', { query: queries.logs, time: ns(end) }, signal).then((b) => { const x = parseLoki(b); return x.kind === 'matrix' ? x.series.map((s) => ({ labels: s.labels, value: s.points.length ? s.points[s.points.length - 1][1] : NaN })) : []; }), []),
      soft('logs', loki('/loki/api/v1/query_range', { query: errorQuery, start: ns(start), end: ns(end), limit: ERROR_LINES, direction: 'backward' }, signal).then((b) => { const x = parseLoki(b); return x.kind === 'streams' ? x.lines.slice(0, ERROR_LINES) : []; }), []),
    ]);
    return { start, end, step, window, queries, rows: homeRows({ rate, end, errors, p95, spans, logs }), errorLines, errorQuery, failures: [...new Set(failures)] };
  }, tick);
  const d = res.data;
  const rows = d ? sortRows(d.rows, sort).filter((r) => !filter || r.service.toLowerCase().includes(filter)) : [];
  const svcLinks = (svc: string) => ({
    red: link('service', svc, {}, route),
    traces: link('traces', undefined, { q: `{ resource.service.name = "${quote(svc)}" }` }, route),
    errTraces: link('traces', undefined, { q: `{ resource.service.name = "${quote(svc)}" && status = error }` }, route),
    logs: link('logs', undefined, { q: `{service_name="${quote(svc)}"}` }, route),
    errLogs: link('logs', undefined, { q: errorLogsQuery(svc) }, route),
  });
  return (
    <section class="page" aria-labelledby="h-home">
      <h1 id="h-home">Services</h1>
      <p class="muted small">Every service that sent spans or logs in this range. Requests are SERVER and CONSUMER spans, as on each service's page: rates over {d ? `${d.window}s` : 'a window that fits the range'} at the end of the range{d ? ` (${fmtTime(d.end * 1000)})` : ''}, the trend across it; log lines counted over the whole range.</p>
      <div class="toolbar">
        <FilterInput name="filter" placeholder="Filter services" />
        <label>Sort by <select value={sort} onChange={(e) => setParams({ sort: (e.target as HTMLSelectElement).value })}>{SORTS.map(([v, l]) => <option value={v}>{l}</option>)}</select></label>
      </div>
      <ErrorBox error={res.error} />
      {d && d.failures.length > 0 && <div class="error" role="alert"><strong>Some figures are missing</strong>{d.failures.map((f) => <div class="error-msg">{f}</div>)}</div>}
      {res.loading && !d && <Loading />}
      {d && !d.rows.length && !res.error && (
        <Empty>
          No service sent spans or logs between {fmtTime(d.start * 1000)} and {fmtTime(d.end * 1000)}. Send OpenTelemetry data to
          OTLP gRPC <code>:4317</code> or OTLP HTTP <code>:4318</code> (logs also over Loki push, <code>/loki/api/v1/push</code>; metrics over
          Prometheus remote write, <code>/api/v1/push</code>), widen the time range, or run <code>sprout demo</code> to see the pages with data.
        </Empty>
      )}
      {d && d.rows.length > 0 && (
        <table class="grid home" data-time={d.end} data-start={d.start} data-step={d.step} data-window={d.window}
          data-rate-query={d.queries.rate} data-errors-query={d.queries.errors} data-p95-query={d.queries.p95} data-logs-query={d.queries.logs}>
          <thead><tr>
            <th>Service</th><th class="num">Requests/s</th><th>Trend</th><th class="num">Errors</th><th class="num">p95</th>
            <th>Log lines by level</th><th class="num">Error lines</th><th>Open</th>
          </tr></thead>
          <tbody>{rows.map((r) => {
            const l = svcLinks(r.service);
            const errLines = (r.logs.error ?? 0) + (r.logs.fatal ?? 0);
            return (
              <tr class={r.errRatio > 0 || errLines ? 'has-error' : ''} data-service={r.service} data-rate={r.rate} data-err-rate={r.errRate} data-err-ratio={r.errRatio} data-p95={r.p95Ms} data-logs={JSON.stringify(r.logs)}>
                <td><a class="svc-link" href={l.red}>{r.service}</a></td>
                <td class="num rate">{Number.isFinite(r.rate) ? `${fmtRate(r.rate)}/s` : <span class="muted" title={r.spans ? 'no SERVER or CONSUMER spans at the end of the range' : 'no spans in this range'}>–</span>}</td>
                <td>{r.spans ? <Spark s={r.trend} /> : null}</td>
                <td class={'num errors' + (r.errRatio > 0 ? ' err' : '')}>{r.spans && Number.isFinite(r.rate) ? fmtPct(r.errRatio) : '–'}</td>
                <td class="num p95">{fmtDuration(r.p95Ms)}</td>
                <td class="vol"><VolumeBar logs={r.logs} total={r.logTotal} /> <span class="muted small logs-total">{r.logTotal ? r.logTotal.toLocaleString('en-US') : ''}</span></td>
                <td class={'num err-lines' + (errLines ? ' err' : '')}>{r.logTotal ? <a href={l.errLogs}>{errLines.toLocaleString('en-US')}</a> : '–'}</td>
                <td class="doors">
                  <a class="door-red" href={l.red}>RED</a>
                  <a class="door-traces" href={l.traces}>Traces</a>
                  {r.errRatio > 0 && <a class="door-err-traces" href={l.errTraces}>errors</a>}
                  <a class="door-logs" href={l.logs}>Logs</a>
                  {errLines > 0 && <a class="door-err-logs" href={l.errLogs}>errors</a>}
                </td>
              </tr>
            );
          })}</tbody>
        </table>
      )}
      {d && d.rows.length > 0 && !rows.length && <Empty>No service matches “{filter}”.</Empty>}
      {d && (
        <div class="card recent-errors" data-query={d.errorQuery} data-start={d.start} data-end={d.end}>
          <h2>Recent error logs <a class="small" href={link('logs', undefined, { q: d.errorQuery }, route)}>open in Logs</a></h2>
          {!d.errorLines.length && <p class="muted small">No error lines in this range (<code>{d.errorQuery}</code>).</p>}
          {d.errorLines.length > 0 && (
            <table class="grid">
              <tbody>{d.errorLines.map((e) => {
                const svc = e.stream.service_name ?? e.structured.service_name ?? '';
                return (
                  <tr class="error-line">
                    <td class="mono small">{fmtTime(e.timeMs)}</td>
                    <td>{svc ? <a href={svcLinks(svc).red}>{svc}</a> : '–'}</td>
                    <td class="line mono small">{e.line}</td>
                    <td>{e.traceId ? <a class="mono log-trace-link" href={link('trace', e.traceId, e.spanId ? { span: e.spanId } : {}, route)}>trace</a> : ''}</td>
                  </tr>
                );
              })}</tbody>
            </table>
          )}
        </div>
      )}
    </section>
  );
}
