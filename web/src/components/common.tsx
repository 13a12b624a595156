import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorPosition } from '../parse';
import { currentRoute, setParams } from '../router';
import { resolveRange } from '../time';

export function ErrorBox({ error, query }: { error: unknown; query?: string }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : '';
  const pos = query ? errorPosition(msg) : null;
  let caret: ComponentChildren = null;
  if (pos && query) {
    const lines = query.split('\n');
    const line = lines[pos.line - 1];
    if (line !== undefined) {
      const col = Math.max(1, Math.min(pos.col, line.length + 1));
      caret = <pre class="caret" aria-label={`error at line ${pos.line}, column ${pos.col}`}>{line + '\n' + ' '.repeat(col - 1) + '^'}</pre>;
    }
  }
  return (
    <div class="error" role="alert">
      <strong>Query failed{status}</strong>
      <div class="error-msg">{msg}</div>
      {caret}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Loading() { return <div class="loading" aria-busy="true">Loading…</div>; }

export interface Async<T> { data?: T; error?: unknown; loading: boolean }

/**
 * Runs `f` whenever `key` changes or the auto-refresh ticks, cancelling the previous run. The time range is
 * resolved at each run, so relative ranges move forward on refresh.
 */
export function useAsync<T>(key: string, f: ((signal: AbortSignal) => Promise<T>) | null, tick = 0): Async<T> {
  const [s, setS] = useState<Async<T>>({ loading: !!f });
  useEffect(() => {
    if (!f) { setS({ loading: false }); return; }
    const ac = new AbortController();
    setS((p) => ({ data: p.data, loading: true }));
    f(ac.signal).then(
      (data) => { if (!ac.signal.aborted) setS({ data, loading: false }); },
      (error) => { if (!ac.signal.aborted) setS({ error, loading: false }); },
    );
    return () => ac.abort();
  }, [key, tick]);
  return s;
}

/** The refresh tick: increments every `refresh` interval from the URL while the tab is visible. */
export function useRefreshTick(refresh: string | undefined): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ms = ({ '5s': 5e3, '10s': 10e3, '30s': 30e3, '1m': 60e3, '5m': 300e3 } as Record<string, number>)[refresh ?? ''];
    if (!ms) return;
    const id = setInterval(() => { if (document.visibilityState === 'visible') setTick((t) => t + 1); }, ms);
    return () => clearInterval(id);
  }, [refresh]);
  return tick;
}

export function range(params: Record<string, string>) {
  return resolveRange({ from: params.from || 'now-1h', to: params.to || 'now' });
}

const PRESETS: [string, string][] = [['now-5m', 'Last 5 minutes'], ['now-15m', 'Last 15 minutes'], ['now-1h', 'Last 1 hour'], ['now-3h', 'Last 3 hours'], ['now-6h', 'Last 6 hours'], ['now-24h', 'Last 24 hours'], ['now-7d', 'Last 7 days']];

function toLocalInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 19);
}

export function TimePicker() {
  const p = currentRoute().params;
  const from = p.from || 'now-1h', to = p.to || 'now';
  const isPreset = to === 'now' && PRESETS.some(([f]) => f === from);
  const [custom, setCustom] = useState(!isPreset);
  const r = resolveRange({ from, to });
  return (
    <div class="timepicker">
      <select aria-label="Time range" value={isPreset && !custom ? from : 'custom'} onChange={(e) => {
        const v = (e.target as HTMLSelectElement).value;
        if (v === 'custom') { setCustom(true); setParams({ from: String(r.start), to: String(r.end) }); } else { setCustom(false); setParams({ from: v, to: 'now' }); }
      }}>
        {PRESETS.map(([v, l]) => <option value={v}>{l}</option>)}
        <option value="custom">Custom…</option>
      </select>
      {(custom || !isPreset) && (
        <>
          <input type="datetime-local" step="1" aria-label="From" value={toLocalInput(r.start)} onChange={(e) => setParams({ from: String(new Date((e.target as HTMLInputElement).value).getTime()) })} />
          <input type="datetime-local" step="1" aria-label="To" value={toLocalInput(r.end)} onChange={(e) => setParams({ to: String(new Date((e.target as HTMLInputElement).value).getTime()) })} />
        </>
      )}
      <select aria-label="Auto refresh" value={p.refresh || ''} onChange={(e) => setParams({ refresh: (e.target as HTMLSelectElement).value })}>
        <option value="">Refresh off</option>
        {['5s', '10s', '30s', '1m', '5m'].map((v) => <option value={v}>Every {v}</option>)}
      </select>
    </div>
  );
}

/** A text filter that keeps its value in the URL parameter `name`. */
export function FilterInput({ name, placeholder }: { name: string; placeholder: string }) {
  const ref = useRef<HTMLInputElement>(null);
  const v = currentRoute().params[name] ?? '';
  return <input ref={ref} class="filter" type="search" placeholder={placeholder} aria-label={placeholder} value={v} onInput={(e) => setParams({ [name]: (e.target as HTMLInputElement).value }, true)} />;
}

export function KVTable({ rows, empty = 'none' }: { rows: { key: string; value: ComponentChildren }[]; empty?: string }) {
  if (!rows.length) return <div class="muted">{empty}</div>;
  return (
    <table class="kv">
      <tbody>{rows.map((r) => <tr><th scope="row">{r.key}</th><td>{r.value}</td></tr>)}</tbody>
    </table>
  );
}
