import { useMemo, useState } from 'preact/hooks';
import { cached, tempo } from '../api';
import { Scatter } from '../components/Scatter';
import { quote } from '../figures';
import { formQuery, LOOKBACKS, type SearchForm } from '../search';
import { Empty, ErrorBox, FilterInput, Loading, range, useAsync } from '../components/common';
import { QueryEditor } from '../components/QueryEditor';
import { parseTempoSearch, parseTempoTagValues, type TraceSummary } from '../parse';
import { navigate, setParams } from '../router';
import { suggestTraceQL } from '../suggest';
import { fmtDuration, fmtTime } from '../time';
import { link, type Route } from '../url';

type Col = { key: keyof TraceSummary; label: string; num?: boolean };
const COLS: Col[] = [
  { key: 'rootServiceName', label: 'Root service' },
  { key: 'rootTraceName', label: 'Root name' },
  { key: 'startMs', label: 'Start', num: true },
  { key: 'durationMs', label: 'Duration', num: true },
  { key: 'spanCount', label: 'Spans', num: true },
  { key: 'errorCount', label: 'Errors', num: true },
];

/** The URL parameters of the search form (cleared when a TraceQL query is run by hand). */
const FORM_PARAMS = { service: 'svc', operation: 'op', tags: 'tags', minDuration: 'minDur', maxDuration: 'maxDur' } as const;

const tagValues = (tag: string, q?: string) => cached(`tempo:form:${tag}:${q ?? ''}`, async () =>
  parseTempoTagValues(await tempo(`/api/v2/search/tag/${encodeURIComponent(tag)}/values`, q ? { q } : {})).map((v) => v.value).sort());

/**
 * Jaeger's search form: service, operation, tags (logfmt), span duration bounds, lookback and limit. It writes
 * the TraceQL query it stands for into the page's query, so the query can be read, changed and shared.
 */
function SearchFormBox({ route }: { route: Route }) {
  const p = route.params;
  const [f, setF] = useState<SearchForm>({ service: p.svc ?? '', operation: p.op ?? '', tags: p.tags ?? '', minDuration: p.minDur ?? '', maxDuration: p.maxDur ?? '' });
  const [lookback, setLookback] = useState(LOOKBACKS.some(([v]) => v === p.from) && (p.to ?? 'now') === 'now' ? p.from : (p.from ? '' : 'now-1h'));
  const [limit, setLimit] = useState(p.limit || '50');
  const [err, setErr] = useState('');
  const services = useAsync<string[]>('svc', () => tagValues('resource.service.name'));
  const ops = useAsync<string[]>(`ops|${f.service}`, () => tagValues('name', f.service ? `{ resource.service.name = "${quote(f.service)}" }` : undefined));
  const set = (k: keyof SearchForm) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value, ...(k === 'service' ? { operation: '' } : {}) });
  const submit = (e: Event) => {
    e.preventDefault();
    const r = formQuery(f);
    if (r.error) { setErr(r.error); return; }
    setErr('');
    const n = Math.max(1, Math.min(1000, Math.floor(Number(limit)) || 20));
    const params: Record<string, string> = { q: r.q, limit: String(n) };
    for (const [k, u] of Object.entries(FORM_PARAMS)) params[u] = f[k as keyof SearchForm];
    if (lookback) { params.from = lookback; params.to = 'now'; }
    setParams(params);
  };
  return (
    <form class="search-form" onSubmit={submit} aria-label="Search traces">
      <label>Service<select name="service" value={f.service} onChange={set('service')}>
        <option value="">all</option>{(services.data ?? []).map((v) => <option value={v}>{v}</option>)}
      </select></label>
      <label>Operation<select name="operation" value={f.operation} onChange={set('operation')}>
        <option value="">all</option>{(ops.data ?? []).map((v) => <option value={v}>{v}</option>)}
      </select></label>
      <label class="grow">Tags<input name="tags" placeholder='http.status_code=500 error=true' value={f.tags} onInput={set('tags')} /></label>
      <label>Lookback<select name="lookback" value={lookback} onChange={(e) => setLookback((e.target as HTMLSelectElement).value)}>
        {LOOKBACKS.map(([v, l]) => <option value={v}>{l}</option>)}<option value="">Time picker's range</option>
      </select></label>
      <label>Min duration<input name="minDuration" class="sf-small" placeholder="e.g. 100ms" value={f.minDuration} onInput={set('minDuration')} /></label>
      <label>Max duration<input name="maxDuration" class="sf-small" placeholder="e.g. 1.2s" value={f.maxDuration} onInput={set('maxDuration')} /></label>
      <label>Limit<input name="limit" class="sf-small" type="number" min="1" max="1000" value={limit} onInput={(e) => setLimit((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" class="primary">Find traces</button>
      {err && <p class="err small form-error" role="alert">{err}</p>}
    </form>
  );
}

export function Traces({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  const q = p.q ?? '{}';
  const limit = p.limit || '50';
  const { start, end } = range(p);
  const run = p.q !== undefined || true;
  const res = useAsync(`${q}|${p.from}|${p.to}|${limit}`, run ? async (signal) => {
    const r = range(p);
    return { q, traces: parseTempoSearch(await tempo('/api/search', { q, start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000), limit, spss: 3 }, signal)) };
  } : null, tick);
  const [traceId, setTraceId] = useState('');

  const sort = (p.sort as keyof TraceSummary) || 'startMs';
  const dir = p.dir === 'asc' ? 1 : -1;
  const filter = (p.filter ?? '').toLowerCase();
  const rows = useMemo(() => {
    let r = res.data?.traces ?? [];
    if (filter) r = r.filter((t) => `${t.rootServiceName} ${t.rootTraceName} ${t.traceID}`.toLowerCase().includes(filter));
    return r.slice().sort((a, b) => {
      const x = a[sort] ?? -1, y = b[sort] ?? -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }, [res.data, sort, dir, filter]);
  const maxDur = Math.max(1, ...rows.map((r) => r.durationMs));

  return (
    <section class="page" aria-labelledby="h-traces" aria-busy={res.loading} data-shown-query={res.data?.q}>
      <h1 id="h-traces">Traces</h1>
      <SearchFormBox route={route} key={`${p.svc}|${p.op}|${p.tags}|${p.minDur}|${p.maxDur}|${p.limit}|${p.from}`} />
      <QueryEditor lang="traceql" value={q} placeholder='{ resource.service.name = "api" && status = error }' onRun={(v) => setParams({ q: v, svc: '', op: '', tags: '', minDur: '', maxDur: '' })} suggest={suggestTraceQL} />
      <div class="toolbar">
        <FilterInput name="filter" placeholder="Filter results" />
        <form class="open-id" onSubmit={(e) => { e.preventDefault(); const id = traceId.trim(); if (id) navigate(link('trace', id, {}, route)); }}>
          <input placeholder="Open trace by ID" aria-label="Trace ID" value={traceId} onInput={(e) => setTraceId((e.target as HTMLInputElement).value)} />
          <button type="submit">Open</button>
        </form>
      </div>
      <ErrorBox error={res.error} query={q} />
      {res.loading && !res.data && <Loading />}
      {res.data && !rows.length && !res.error && <Empty>No traces match <code>{q}</code> between {fmtTime(start)} and {fmtTime(end)}{filter ? ` with filter “${filter}”` : ''}. Widen the time range or loosen the search; traces arrive over OTLP (gRPC <code>:4317</code>, HTTP <code>:4318</code>), and <code>sprout demo</code> sends some.</Empty>}
      {rows.length > 0 && <p class="muted small result-count">{rows.length} traces{res.data && rows.length < res.data.traces.length ? ` of ${res.data.traces.length}` : ''}{res.data && res.data.traces.length >= Number(limit) ? ` (limit ${limit} reached)` : ''}</p>}
      {rows.length > 0 && <Scatter traces={rows} />}
      {rows.length > 0 && (
        <table class="grid traces-table">
          <thead>
            <tr>
              <th>Trace ID</th>
              {COLS.map((c) => (
                <th class={c.num ? 'num' : ''} aria-sort={sort === c.key ? (dir > 0 ? 'ascending' : 'descending') : 'none'}>
                  <button class="sort" onClick={() => setParams({ sort: c.key, dir: sort === c.key && dir < 0 ? 'asc' : 'desc' })}>
                    {c.label}{sort === c.key ? (dir > 0 ? ' ▲' : ' ▼') : ''}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr class={t.errorCount ? 'has-error' : ''}>
                <td><a class="mono trace-link" href={link('trace', t.traceID, {}, route)}>{t.traceID.slice(0, 16)}</a></td>
                <td>{t.rootServiceName}</td>
                <td>{t.rootTraceName}</td>
                <td class="num">{fmtTime(t.startMs)}</td>
                <td class="num"><span class="dur-bar" style={{ width: `${(t.durationMs / maxDur) * 60}px` }} />{fmtDuration(t.durationMs)}</td>
                <td class="num">{t.spanCount ?? '–'}</td>
                <td class={'num' + (t.errorCount ? ' err' : '')}>{t.errorCount ?? '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
