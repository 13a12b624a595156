import { cached, loki } from '../api';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { LabelBrowserBox, lokiSource } from '../components/LabelBrowser';
import { LogLines } from '../components/LogLines';
import { QueryEditor } from '../components/QueryEditor';
import { parseLoki, type LogLine, type Series } from '../parse';
import { setParams } from '../router';
import { suggestLogQL } from '../suggest';
import { autoStep } from '../time';
import { link, type Route } from '../url';
import { DEFAULT_LOGQL, histogram, logExamples, volumeLevel, volumeQuery } from '../logs';

export const LEVEL_COLORS: Record<string, string> = { fatal: '#a21caf', error: '#ef4444', warn: '#f59e0b', info: '#22c55e', debug: '#3b82f6', trace: '#64748b', unknown: '#94a3b8' };

/** The query the volume was drawn from, with its range (nanoseconds) and step: the browser test asks the same. */
interface VolumeQuery { query: string; start: string; end: string; step: string }
interface Result { query: string; lines: LogLine[]; matrix?: Series[]; volume: Series[]; volumeFromLines: boolean; volumeQuery?: VolumeQuery; xRange: [number, number] }

export function Logs({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  // No query in the URL: open on every stream, so that a first visit shows the newest lines.
  const q = p.q ?? DEFAULT_LOGQL;
  const limit = p.limit || '1000';
  const res = useAsync<Result>(`${q}|${p.from}|${p.to}|${limit}`, q ? async (signal) => {
    const r = range(p);
    const stepS = autoStep(r.start, r.end, 100);
    const ns = (ms: number) => `${BigInt(Math.floor(ms)) * 1000000n}`;
    const main = parseLoki(await loki('/loki/api/v1/query_range', { query: q, start: ns(r.start), end: ns(r.end), limit, direction: 'backward', step: `${stepS}s` }, signal));
    const xRange: [number, number] = [r.start / 1000, r.end / 1000];
    if (main.kind === 'matrix') return { query: q, lines: [], matrix: main.series, volume: [], volumeFromLines: false, xRange };
    const vq = volumeQuery(q, stepS);
    if (vq) {
      try {
        const volumeQuery = { query: vq, start: ns(r.start), end: ns(r.end), step: `${stepS}s` };
        const v = parseLoki(await loki('/loki/api/v1/query_range', volumeQuery, signal));
        if (v.kind === 'matrix') return { query: q, lines: main.lines, volume: v.series, volumeFromLines: false, volumeQuery, xRange };
      } catch (e) {
        if ((e as Error).name === 'AbortError') throw e;
      }
    }
    return { query: q, lines: main.lines, volume: histogram(main.lines, r.start, r.end, stepS * 1000), volumeFromLines: true, xRange };
  } : null, tick);
  const d = res.data;
  const levels = d?.volume.map((s) => volumeLevel(s.labels)) ?? [];
  const services = useAsync<string[]>('svc', (signal) => cached('loki:service_name', () => loki('/loki/api/v1/label/service_name/values', {}, signal).then((b) => ((b as { data?: string[] }).data ?? []))), 0);
  const examples = logExamples(services.data?.find((s) => !s.startsWith('ui-test')) ?? services.data?.[0]);
  return (
    <section class="page" aria-labelledby="h-logs" aria-busy={res.loading} data-shown-query={d?.query}>
      <h1 id="h-logs">Logs</h1>
      <QueryEditor lang="logql" value={q} placeholder={'{service_name=~".+"} |= "error"'} onRun={(v) => setParams({ q: v })} suggest={suggestLogQL} />
      <div class="toolbar">
        <label>Limit <select value={limit} onChange={(e) => setParams({ limit: (e.target as HTMLSelectElement).value })}>{['100', '1000', '5000'].map((v) => <option>{v}</option>)}</select></label>
      </div>
      <ErrorBox error={res.error} query={q} />
      <LabelBrowserBox src={lokiSource(p)} params={p} actions={[
        { label: 'Show logs', cls: 'lb-run', query: (sel) => sel, run: (q) => setParams({ q }) },
        { label: 'Show logs rate', cls: 'lb-rate', query: (sel) => `rate(${sel} [1m])`, run: (q) => setParams({ q }) },
      ]} />
      <details class="examples"><summary>Example queries</summary><ul>{examples.map((e) => (
        <li><a class="mono example" href={link('logs', undefined, { q: e.q }, route)}>{e.q}</a> <span class="muted small">{e.what}</span></li>
      ))}</ul></details>
      {res.loading && !d && q && <Loading />}
      {d?.matrix && (d.matrix.length ? <Chart series={d.matrix} xRange={d.xRange} /> : <Empty>The metric query returned no series.</Empty>)}
      {d && !d.matrix && (
        <>
          {d.volume.length > 0 && (
            <div class="volume" data-query={d.volumeQuery?.query} data-start={d.volumeQuery?.start} data-end={d.volumeQuery?.end} data-step={d.volumeQuery?.step}>
              <Chart series={d.volume} bars height={120} xRange={d.xRange} names={levels} colors={levels.map((l) => LEVEL_COLORS[l] ?? LEVEL_COLORS.unknown)} />
              {d.volumeFromLines && <p class="muted small">Volume counted from the {d.lines.length} lines returned.</p>}
            </div>
          )}
          {!d.lines.length && !res.error && <Empty>No log lines match <code>{q}</code> in this range. Widen the time range, or try an example query above. Logs arrive over OTLP (<code>/v1/logs</code>) or Loki push (<code>/loki/api/v1/push</code>).</Empty>}
          {d.lines.length > 0 && <p class="muted small">{d.lines.length} lines{d.lines.length >= Number(limit) ? ` (limit ${limit} reached)` : ''}</p>}
          <LogLines lines={d.lines} max={Number(limit)} />
        </>
      )}
    </section>
  );
}
