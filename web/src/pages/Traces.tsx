import { useMemo, useState } from 'preact/hooks';
import { tempo } from '../api';
import { Empty, ErrorBox, FilterInput, Loading, range, useAsync } from '../components/common';
import { QueryEditor } from '../components/QueryEditor';
import { parseTempoSearch, type TraceSummary } from '../parse';
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

export function Traces({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  const q = p.q ?? '{}';
  const limit = p.limit || '50';
  const { start, end } = range(p);
  const run = p.q !== undefined || true;
  const res = useAsync(`${q}|${p.from}|${p.to}|${limit}`, run ? async (signal) => {
    const r = range(p);
    return parseTempoSearch(await tempo('/api/search', { q, start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000), limit, spss: 3 }, signal));
  } : null, tick);
  const [traceId, setTraceId] = useState('');

  const sort = (p.sort as keyof TraceSummary) || 'startMs';
  const dir = p.dir === 'asc' ? 1 : -1;
  const filter = (p.filter ?? '').toLowerCase();
  const rows = useMemo(() => {
    let r = res.data ?? [];
    if (filter) r = r.filter((t) => `${t.rootServiceName} ${t.rootTraceName} ${t.traceID}`.toLowerCase().includes(filter));
    return r.slice().sort((a, b) => {
      const x = a[sort] ?? -1, y = b[sort] ?? -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }, [res.data, sort, dir, filter]);
  const maxDur = Math.max(1, ...rows.map((r) => r.durationMs));

  return (
    <section class="page" aria-labelledby="h-traces">
      <h1 id="h-traces">Traces</h1>
      <QueryEditor lang="traceql" value={q} placeholder='{ resource.service.name = "api" && status = error }' onRun={(v) => setParams({ q: v })} suggest={suggestTraceQL} />
      <div class="toolbar">
        <FilterInput name="filter" placeholder="Filter results" />
        <label>Limit <select value={limit} onChange={(e) => setParams({ limit: (e.target as HTMLSelectElement).value })}>{['20', '50', '100', '500'].map((v) => <option>{v}</option>)}</select></label>
        <form class="open-id" onSubmit={(e) => { e.preventDefault(); const id = traceId.trim(); if (id) navigate(link('trace', id, {}, route)); }}>
          <input placeholder="Open trace by ID" aria-label="Trace ID" value={traceId} onInput={(e) => setTraceId((e.target as HTMLInputElement).value)} />
          <button type="submit">Open</button>
        </form>
      </div>
      <ErrorBox error={res.error} query={q} />
      {res.loading && !res.data && <Loading />}
      {res.data && !rows.length && !res.error && <Empty>No traces match <code>{q}</code> between {fmtTime(start)} and {fmtTime(end)}{filter ? ` with filter “${filter}”` : ''}.</Empty>}
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
