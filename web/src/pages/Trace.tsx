import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { loki, tempo } from '../api';
import { Empty, ErrorBox, KVTable, Loading, useAsync } from '../components/common';
import { LogLines } from '../components/LogLines';
import { parseLoki, parseTrace, type LogLine, type Span, type Trace as TraceT } from '../parse';
import { setParams } from '../router';
import { fmtDuration, fmtTime } from '../time';
import { spanLinks } from '../links';
import { link, type Route } from '../url';
import { buildTree, criticalPath, selfTime, visibleRows, type Node } from '../waterfall';

const ROW = 24;
const OVERSCAN = 20;

declare global { interface Window { __sproutTraceRender?: { spans: number; ms: number } } }

export function traceLogsQuery(id: string): string {
  return `{service_name=~".+"} | trace_id="${id}"`;
}

const hues = new Map<string, number>();
export function serviceHue(s: string): number {
  let h = hues.get(s);
  if (h === undefined) {
    let x = 0;
    for (let i = 0; i < s.length; i++) x = (x * 31 + s.charCodeAt(i)) >>> 0;
    h = (x * 137) % 360;
    hues.set(s, h);
  }
  return h;
}

export function TracePage({ route }: { route: Route }) {
  const id = route.arg ?? '';
  const t0 = useRef(0);
  const res = useAsync<TraceT>(id, async (signal) => {
    const body = await tempo(`/api/v2/traces/${encodeURIComponent(id)}`, {}, signal);
    t0.current = performance.now();
    return parseTrace(body);
  });
  if (res.error) return <section class="page"><h1>Trace {id}</h1><ErrorBox error={res.error} /><p><a href={link('traces', undefined, {}, route)}>Back to search</a></p></section>;
  if (!res.data) return <section class="page"><h1>Trace {id}</h1><Loading /></section>;
  if (!res.data.spans.length) return <section class="page"><h1>Trace {id}</h1><Empty>The trace has no spans.</Empty></section>;
  return <TraceView trace={res.data} route={route} t0={t0.current} />;
}

function TraceView({ trace, route, t0 }: { trace: TraceT; route: Route; t0: number }) {
  const p = route.params;
  const tree = useMemo(() => buildTree(trace.spans), [trace]);
  const cp = useMemo(() => criticalPath(tree), [tree]);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed]);
  const showCp = p.cp !== '0';
  const selected = p.span ? tree.byId.get(p.span) : undefined;
  const panel = p.panel || (selected ? 'span' : '');
  const services = useMemo(() => [...new Set(trace.spans.map((s) => s.service))], [trace]);
  const errors = trace.spans.filter((s) => s.error).length;
  const find = (p.find ?? '').toLowerCase();

  useEffect(() => {
    requestAnimationFrame(() => {
      const ms = performance.now() - t0;
      window.__sproutTraceRender = { spans: trace.spans.length, ms };
      document.body.dataset.traceRendered = trace.traceId;
    });
  }, [trace]);

  const toggle = (n: Node) => {
    const c = new Set(collapsed);
    if (c.has(n.span.spanId)) c.delete(n.span.spanId); else c.add(n.span.spanId);
    setCollapsed(c);
  };
  const select = (n: Node | undefined) => setParams({ span: n?.span.spanId, panel: n ? 'span' : undefined }, true);
  const { start, end } = { start: trace.startMs - 15 * 60e3, end: trace.startMs + trace.durationMs + 15 * 60e3 };
  const logsLink = link('logs', undefined, { q: traceLogsQuery(trace.traceId), from: String(Math.floor(start)), to: String(Math.ceil(end)) });

  return (
    <section class="page trace-page" aria-labelledby="h-trace">
      <header class="trace-head">
        <h1 id="h-trace">{tree.roots[0]?.span.service}: {tree.roots[0]?.span.name}</h1>
        <dl class="facts">
          <div><dt>Trace</dt><dd class="mono">{trace.traceId}</dd></div>
          <div><dt>Start</dt><dd>{fmtTime(trace.startMs)}</dd></div>
          <div><dt>Duration</dt><dd>{fmtDuration(trace.durationMs)}</dd></div>
          <div><dt>Spans</dt><dd data-testid="span-count">{trace.spans.length}</dd></div>
          <div><dt>Services</dt><dd>{services.length}</dd></div>
          <div><dt>Errors</dt><dd class={errors ? 'err' : ''}>{errors}</dd></div>
        </dl>
        <div class="toolbar">
          <label><input type="checkbox" checked={showCp} onChange={() => setParams({ cp: showCp ? '0' : undefined }, true)} /> Critical path</label>
          <button onClick={() => setCollapsed(new Set())}>Expand all</button>
          <button onClick={() => setCollapsed(new Set(tree.roots.flatMap((r) => r.children).filter((n) => n.children.length).map((n) => n.span.spanId)))}>Collapse all</button>
          <input type="search" class="filter" placeholder="Find spans" aria-label="Find spans" value={p.find ?? ''} onInput={(e) => setParams({ find: (e.target as HTMLInputElement).value }, true)} />
          <button class={panel === 'logs' ? 'active' : ''} aria-pressed={panel === 'logs'} onClick={() => setParams({ panel: panel === 'logs' ? undefined : 'logs' }, true)}>Logs for this trace</button>
          <a href={logsLink} class="button">Open in Logs</a>
        </div>
      </header>
      <div class={'trace-body' + (panel ? ' with-panel' : '')}>
        <Waterfall trace={trace} rows={rows} collapsed={collapsed} cp={showCp ? cp : null} selected={selected} find={find} onToggle={toggle} onSelect={select} />
        {panel === 'span' && selected && <SpanDetails node={selected} trace={trace} route={route} onClose={() => select(undefined)} />}
        {panel === 'logs' && <TraceLogs trace={trace} spanId={selected?.span.spanId} logsLink={logsLink} />}
      </div>
    </section>
  );
}

interface WProps {
  trace: TraceT; rows: Node[]; collapsed: Set<string>; cp: Map<string, { start: number; end: number }[]> | null;
  selected?: Node; find: string; onToggle: (n: Node) => void; onSelect: (n: Node | undefined) => void;
}

/** The span waterfall: only the rows in view (plus a margin) are in the DOM, so 10k spans scroll smoothly. */
function Waterfall({ trace, rows, collapsed, cp, selected, find, onToggle, onSelect }: WProps) {
  const box = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  useLayoutEffect(() => {
    const el = box.current!;
    setHeight(el.clientHeight || 600);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight || 600));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const dur = trace.durationMs || 1;
  const first = Math.max(0, Math.floor(scroll / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scroll + height) / ROW) + OVERSCAN);
  const selIdx = selected ? rows.indexOf(selected) : -1;

  const scrollTo = (i: number) => {
    const el = box.current!;
    const top = i * ROW + ROW; // header row
    if (top < el.scrollTop + ROW) el.scrollTop = top - ROW;
    else if (top + ROW > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW - el.clientHeight;
  };
  const onKey = (e: KeyboardEvent) => {
    if (!rows.length) return;
    const i = selIdx < 0 ? 0 : selIdx;
    let n = -1;
    if (e.key === 'ArrowDown' || e.key === 'j') n = Math.min(rows.length - 1, selIdx + 1);
    else if (e.key === 'ArrowUp' || e.key === 'k') n = Math.max(0, i - 1);
    else if (e.key === 'Home') n = 0;
    else if (e.key === 'End') n = rows.length - 1;
    else if (e.key === 'ArrowLeft' && selected && selected.children.length && !collapsed.has(selected.span.spanId)) { e.preventDefault(); onToggle(selected); return; }
    else if (e.key === 'ArrowRight' && selected && collapsed.has(selected.span.spanId)) { e.preventDefault(); onToggle(selected); return; }
    else if (e.key === 'Escape') { onSelect(undefined); return; }
    if (n >= 0) { e.preventDefault(); onSelect(rows[n]); scrollTo(n); }
  };
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  return (
    <div class="waterfall" ref={box} tabIndex={0} role="tree" aria-label="Span waterfall (arrow keys move, left/right collapse and expand)" onScroll={(e) => setScroll((e.target as HTMLDivElement).scrollTop)} onKeyDown={onKey}>
      <div class="wf-head">
        <div class="wf-name">Service / span</div>
        <div class="wf-time">{ticks.map((t) => <span class="tick" style={{ left: `${t * 100}%` }}>{fmtDuration(t * dur)}</span>)}</div>
      </div>
      <div class="wf-rows" style={{ height: `${rows.length * ROW}px` }}>
        {rows.slice(first, last).map((n, k) => {
          const i = first + k;
          const s = n.span;
          const segs = cp?.get(s.spanId);
          const match = find && (s.name.toLowerCase().includes(find) || s.service.toLowerCase().includes(find) || s.spanId.includes(find));
          const cls = 'wf-row' + (s.error ? ' span-error' : '') + (n === selected ? ' selected' : '') + (match ? ' match' : '') + (segs ? ' on-cp' : '');
          const hue = serviceHue(s.service);
          return (
            <div class={cls} role="treeitem" aria-level={n.depth + 1} aria-selected={n === selected} aria-expanded={n.children.length ? !collapsed.has(s.spanId) : undefined}
              style={{ top: `${i * ROW}px` }} data-span-id={s.spanId} onClick={() => onSelect(n)}>
              <div class="wf-name" style={{ paddingLeft: `${Math.min(n.depth, 40) * 12 + 4}px` }}>
                {n.children.length ? (
                  <button class="twisty" tabIndex={-1} aria-label={collapsed.has(s.spanId) ? 'Expand' : 'Collapse'} onClick={(e) => { e.stopPropagation(); onToggle(n); }}>
                    {collapsed.has(s.spanId) ? `▸ ${n.descendants}` : '▾'}
                  </button>
                ) : <span class="twisty-pad" />}
                <span class="svc" style={{ borderColor: `hsl(${hue} 65% 50%)` }}>{s.service}</span>
                <span class="sname">{s.name}</span>
                {n.orphan && <span class="badge" title={`parent ${s.parentId} is not in this trace`}>orphan</span>}
                {s.error && <span class="badge err" title={s.statusMessage}>error</span>}
              </div>
              <div class="wf-time">
                <div class="bar" style={{ left: `${(s.start / dur) * 100}%`, width: `${Math.max(0.1, ((s.end - s.start) / dur) * 100)}%`, background: s.error ? undefined : `hsl(${hue} 65% 50%)` }} />
                {segs?.map((g) => <div class="cp" style={{ left: `${(g.start / dur) * 100}%`, width: `${Math.max(0.05, ((g.end - g.start) / dur) * 100)}%` }} />)}
                <span class="dur" style={{ left: `calc(${(s.end / dur) * 100}% + 4px)` }}>{fmtDuration(s.end - s.start)}</span>
              </div>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function SpanDetails({ node, trace, route, onClose }: { node: Node; trace: TraceT; route: Route; onClose: () => void }) {
  const s: Span = node.span;
  const out = spanLinks(s, trace.startMs + s.start, route);
  return (
    <aside class="panel span-details" aria-label="Span details">
      <header><h2>{s.name}</h2><button class="close" aria-label="Close details" onClick={onClose}>×</button></header>
      <nav class="span-links" aria-label="Span links">
        <a class="span-link-service" href={out.service}>{s.service} RED</a>
        <a class="span-link-metrics" href={out.metrics}>Operation latency</a>
        <a class="span-link-logs" href={out.logs}>Logs of this span</a>
      </nav>
      <KVTable rows={[
        { key: 'Service', value: s.service },
        { key: 'Span ID', value: <span class="mono">{s.spanId}</span> },
        { key: 'Parent', value: s.parentId ? <span class="mono">{s.parentId}</span> : 'root' },
        { key: 'Kind', value: s.kind },
        { key: 'Status', value: <span class={s.error ? 'err' : ''}>{s.statusCode}{s.statusMessage ? `: ${s.statusMessage}` : ''}</span> },
        { key: 'Start', value: `${fmtTime(trace.startMs + s.start)} (+${fmtDuration(s.start)})` },
        { key: 'Duration', value: fmtDuration(s.end - s.start) },
        { key: 'Self time', value: fmtDuration(selfTime(node)) },
        { key: 'Scope', value: s.scope || '–' },
      ]} />
      <h3>Attributes</h3>
      <KVTable rows={s.attributes} />
      <h3>Resource</h3>
      <KVTable rows={s.resource} />
      <h3>Events ({s.events.length})</h3>
      {s.events.length ? s.events.map((e) => (
        <details class="event"><summary>+{fmtDuration(e.timeMs - s.start)} {e.name}</summary><KVTable rows={e.attributes} /></details>
      )) : <div class="muted">none</div>}
      <h3>Links ({s.links.length})</h3>
      {s.links.length ? <ul>{s.links.map((l) => <li><a class="mono" href={link('trace', l.traceId, { span: l.spanId }, route)}>{l.traceId.slice(0, 16)}…/{l.spanId}</a></li>)}</ul> : <div class="muted">none</div>}
    </aside>
  );
}

function TraceLogs({ trace, spanId, logsLink }: { trace: TraceT; spanId?: string; logsLink: string }) {
  const q = traceLogsQuery(trace.traceId);
  const res = useAsync<LogLine[]>(trace.traceId, async (signal) => {
    const r = parseLoki(await loki('/loki/api/v1/query_range', {
      query: q, start: `${BigInt(Math.floor(trace.startMs - 15 * 60e3)) * 1000000n}`, end: `${BigInt(Math.ceil(trace.startMs + trace.durationMs + 15 * 60e3)) * 1000000n}`, limit: 1000, direction: 'backward',
    }, signal));
    return r.kind === 'streams' ? r.lines : [];
  });
  return (
    <aside class="panel trace-logs" aria-label="Logs of this trace">
      <header><h2>Logs of this trace</h2><a href={logsLink}>Open in Logs</a></header>
      <code class="muted small">{q}</code>
      <ErrorBox error={res.error} query={q} />
      {res.loading && <Loading />}
      {res.data && !res.data.length && <Empty>No log lines carry this trace id.</Empty>}
      {res.data && res.data.length > 0 && <LogLines lines={res.data} highlightSpan={spanId} />}
    </aside>
  );
}
