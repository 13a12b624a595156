import { useState } from 'preact/hooks';
import { loki, prom } from '../api';
import { buildSelector, toggle, type Picked } from '../labels';
import { parseStringList } from '../parse';
import { ErrorBox, range, useAsync } from './common';

/** Where a label browser reads its labels, values and matching series: Loki's or Prometheus' API. */
export interface LabelSource {
  kind: 'loki' | 'prometheus';
  labels(match: string, signal: AbortSignal): Promise<string[]>;
  values(label: string, match: string, signal: AbortSignal): Promise<string[]>;
  series(match: string, signal: AbortSignal): Promise<number>;
}

const count = (b: unknown) => { const d = (b as { data?: unknown[] })?.data; return Array.isArray(d) ? d.length : 0; };

/** Prometheus' label API, over the page's time range; `match[]` narrows labels and values to a selector. */
export function promSource(params: Record<string, string>): LabelSource {
  const r = range(params);
  const t = { start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000) };
  return {
    kind: 'prometheus',
    labels: (match, signal) => prom('/api/v1/labels', { ...t, 'match[]': match || undefined }, signal).then(parseStringList).then((ls) => ls.filter((l) => l !== '__name__')),
    values: (label, match, signal) => prom(`/api/v1/label/${encodeURIComponent(label)}/values`, { ...t, 'match[]': match || undefined }, signal).then(parseStringList),
    series: (match, signal) => prom('/api/v1/series', { ...t, 'match[]': match }, signal).then(count),
  };
}

/** Loki's label API, over the page's time range; `query` narrows values to a stream selector. */
export function lokiSource(params: Record<string, string>): LabelSource {
  const r = range(params);
  const ns = (ms: number) => `${BigInt(Math.floor(ms)) * 1000000n}`;
  const t = { start: ns(r.start), end: ns(r.end) };
  return {
    kind: 'loki',
    labels: (_match, signal) => loki('/loki/api/v1/labels', t, signal).then(parseStringList),
    values: (label, match, signal) => loki(`/loki/api/v1/label/${encodeURIComponent(label)}/values`, { ...t, query: match || undefined }, signal).then(parseStringList),
    series: (match, signal) => loki('/loki/api/v1/series', { ...t, 'match[]': match }, signal).then(count),
  };
}

const SHOWN = 200;

function Values({ name, values, picked, onToggle }: { name: string; values: string[]; picked: string[]; onToggle: (v: string) => void }) {
  const [filter, setFilter] = useState('');
  const f = filter.toLowerCase();
  const match = values.filter((v) => !f || v.toLowerCase().includes(f));
  return (
    <fieldset class="lb-label" data-label={name}>
      <legend>{name === '__name__' ? 'Metric' : name} <span class="muted small">({values.length} values)</span></legend>
      <input type="search" class="lb-filter" placeholder={`Filter ${name === '__name__' ? 'metrics' : name + ' values'}`} aria-label={`Filter ${name} values`} value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      <div class="lb-values" role="group" aria-label={`${name} values`}>
        {match.slice(0, SHOWN).map((v) => <button type="button" class="chip lb-value" data-value={v} aria-pressed={picked.includes(v)} onClick={() => onToggle(v)}>{v}</button>)}
        {match.length > SHOWN && <span class="muted small">{match.length - SHOWN} more: filter to find them</span>}
        {!match.length && <span class="muted small">no values{f ? ' match' : ''}</span>}
      </div>
    </fieldset>
  );
}

/** The values of one picked label, narrowed to those that go with the rest of the pick. */
function LabelValues({ src, name, metric, picked, rangeKey, onToggle }: { src: LabelSource; name: string; metric: string; picked: Picked; rangeKey: string; onToggle: (v: string) => void }) {
  const narrow = buildSelector(metric, picked, name);
  const res = useAsync<string[]>(`${name}|${narrow}|${rangeKey}`, (signal) => src.values(name, narrow, signal));
  if (res.error) return <ErrorBox error={res.error} />;
  return <Values name={name} values={res.data ?? []} picked={picked[name] ?? []} onToggle={onToggle} />;
}

/**
 * A label browser as Grafana's for Loki and Prometheus: pick a metric (Prometheus), labels and their values;
 * the selector is built as you pick, with the number of series or streams it matches; the actions run it.
 */
export function LabelBrowser({ src, params, actions }: { src: LabelSource; params: Record<string, string>; actions: { label: string; cls: string; query: (sel: string) => string; run: (q: string) => void }[] }) {
  const [metric, setMetric] = useState('');
  const [labels, setLabels] = useState<string[]>([]);
  const [picked, setPicked] = useState<Picked>({});
  const rangeKey = `${params.from}|${params.to}`;
  const sel = buildSelector(metric, picked);
  // Prometheus: the labels of the chosen metric; Loki: every stream label.
  // The list names its metric, as the count below does: while the next list loads, the last one stays on screen.
  const namesFor = useAsync<{ metric: string; ls: string[] }>(`labels|${metric}|${rangeKey}`, (signal) => src.labels(metric, signal).then((ls) => ({ metric, ls })));
  const names = { data: namesFor.data?.ls, error: namesFor.error };
  const namesOf = namesFor.data?.metric === metric && !namesFor.loading ? metric : undefined;
  // The count names its selector: while the next one loads, the last count is not shown as the new one's.
  const matching = useAsync<{ sel: string; n: number }>(`series|${sel}|${rangeKey}`, sel ? (signal) => src.series(sel, signal).then((n) => ({ sel, n })) : null);
  const count = matching.data?.sel === sel && !matching.loading ? matching.data.n : undefined;
  const unit = src.kind === 'loki' ? 'streams' : 'series';
  const toggleLabel = (l: string) => {
    if (labels.includes(l)) {
      setLabels(labels.filter((x) => x !== l));
      const p = { ...picked }; delete p[l]; setPicked(p);
    } else setLabels([...labels, l]);
  };
  return (
    <div class={`label-browser lb-${src.kind}`}>
      {src.kind === 'prometheus' && (
        <LabelValues src={{ ...src, values: (_l, match, signal) => src.values('__name__', match, signal) }} name="__name__" metric="" picked={metric ? { ...picked, __name__: [metric] } : picked} rangeKey={rangeKey}
          onToggle={(v) => setMetric(v === metric ? '' : v)} />
      )}
      <h4>Labels</h4>
      <ErrorBox error={names.error} />
      <div class="lb-names" role="group" aria-label="Labels" aria-busy={namesOf === undefined} data-for={namesOf}>
        {(names.data ?? []).map((l) => <button type="button" class="chip lb-name" data-label={l} aria-pressed={labels.includes(l)} onClick={() => toggleLabel(l)}>{l}</button>)}
        {names.data && !names.data.length && <span class="muted small">no labels in this range</span>}
      </div>
      {labels.map((l) => <LabelValues src={src} name={l} metric={metric} picked={picked} rangeKey={rangeKey} onToggle={(v) => setPicked(toggle(picked, l, v))} />)}
      <h4>Selector</h4>
      <p class="lb-result">
        <code class="lb-selector">{sel || (src.kind === 'loki' ? 'pick a label value' : 'pick a metric or a label value')}</code>{' '}
        {sel && count !== undefined && <span class="muted small lb-count" data-count={count} data-for={sel}>{count} {unit} match</span>}
        {sel && matching.error !== undefined && <span class="err small lb-count">{(matching.error as Error).message}</span>}
      </p>
      <div class="toolbar">
        {actions.map((a) => <button type="button" class={`${a.cls}${a === actions[0] ? ' primary' : ''}`} disabled={!sel} onClick={() => a.run(a.query(sel))}>{a.label}</button>)}
        <button type="button" class="lb-clear" onClick={() => { setMetric(''); setLabels([]); setPicked({}); }}>Clear</button>
      </div>
    </div>
  );
}

/** The label browser behind a disclosure: it asks the server for labels only once opened. */
export function LabelBrowserBox(props: Parameters<typeof LabelBrowser>[0]) {
  const [open, setOpen] = useState(false);
  return (
    <details class="lb-details" onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>Label browser</summary>
      {open && <LabelBrowser {...props} />}
    </details>
  );
}
