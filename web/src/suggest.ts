// Autocomplete sources: the tag and tag-value APIs of Tempo, and label APIs of Prometheus and Loki.
import { cached, loki, prom, tempo } from './api';
import { PROMQL_FUNCTIONS, TRACEQL_INTRINSICS, quoteValue, rank, type Context, type Suggestion } from './autocomplete';
import { parseStringList, parseTempoTagValues, parseTempoTags } from './parse';
import { range } from './components/common';
import { currentRoute } from './router';

function secs() {
  const r = range(currentRoute().params);
  return { start: Math.floor(r.start / 1000), end: Math.ceil(r.end / 1000) };
}

function valueItems(ctx: Extract<Context, { kind: 'value' }>, values: string[], detail?: string): Suggestion[] {
  return rank(values, ctx.prefix).map((v) => ({ text: v, insert: ctx.quoted ? quoteValue(v) + '"' : v, detail }));
}

export async function suggestTraceQL(ctx: Context, _signal?: AbortSignal): Promise<Suggestion[]> {
  if (ctx.kind === 'label') {
    const scopes = await cached('tempo:tags', async () => parseTempoTags(await tempo('/api/v2/search/tags', secs())));
    const all: Suggestion[] = [];
    for (const s of scopes) {
      for (const t of s.tags) {
        const full = s.name === 'intrinsic' || s.name === 'none' ? t : `${s.name}.${t}`;
        all.push({ text: full, insert: full, detail: s.name });
      }
    }
    for (const t of TRACEQL_INTRINSICS) if (!all.some((a) => a.text === t)) all.push({ text: t, insert: t, detail: 'intrinsic' });
    const names = rank(all.map((a) => a.text), ctx.prefix);
    return names.map((n) => all.find((a) => a.text === n)!);
  }
  if (ctx.kind === 'value') {
    if (ctx.label === 'status') return valueItems(ctx, ['error', 'ok', 'unset']);
    if (ctx.label === 'kind') return valueItems(ctx, ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified']);
    const vals = await cached(`tempo:values:${ctx.label}`, async () => parseTempoTagValues(await tempo(`/api/v2/search/tag/${encodeURIComponent(ctx.label)}/values`, secs())));
    const q = vals.filter((v) => (ctx.quoted ? v.type === 'string' : true));
    return rank(q.map((v) => v.value), ctx.prefix).map((v) => {
      const t = q.find((x) => x.value === v)!.type;
      const insert = ctx.quoted ? quoteValue(v) + '"' : t === 'string' ? `"${quoteValue(v)}"` : v;
      return { text: v, insert, detail: t };
    });
  }
  return [];
}

// The fetches behind cached() are shared by every keystroke, so they must not carry one keystroke's abort
// signal: the next keystroke would abort the request that it is itself waiting for, and no list would show.
export async function suggestPromQL(ctx: Context, _signal?: AbortSignal): Promise<Suggestion[]> {
  if (ctx.kind === 'metric') {
    const names = await cached('prom:names', async () => parseStringList(await prom('/api/v1/label/__name__/values', secs())));
    const fns = rank(PROMQL_FUNCTIONS, ctx.prefix, 10).filter((f) => ctx.prefix && f.startsWith(ctx.prefix));
    return [...fns.map((f) => ({ text: f, insert: f === 'by' || f === 'without' ? f + ' (' : f + '(', detail: 'function' })), ...rank(names, ctx.prefix).map((n) => ({ text: n, insert: n, detail: 'metric' }))];
  }
  if (ctx.kind === 'label') {
    const key = `prom:labels:${ctx.metric}`;
    const names = await cached(key, async () => parseStringList(await prom('/api/v1/labels', { ...secs(), 'match[]': ctx.metric || undefined })));
    return rank(names.filter((n) => n !== '__name__'), ctx.prefix).map((n) => ({ text: n, insert: n, detail: 'label' }));
  }
  if (ctx.kind === 'value') {
    const vals = await cached(`prom:values:${ctx.label}:${ctx.metric}`, async () => parseStringList(await prom(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, { ...secs(), 'match[]': ctx.metric || undefined })));
    return valueItems(ctx, vals);
  }
  return [];
}

export async function suggestLogQL(ctx: Context, _signal?: AbortSignal): Promise<Suggestion[]> {
  if (ctx.kind === 'label') {
    const names = await cached('loki:labels', async () => parseStringList(await loki('/loki/api/v1/labels', secs())));
    return rank(names, ctx.prefix).map((n) => ({ text: n, insert: n, detail: 'label' }));
  }
  if (ctx.kind === 'value') {
    const vals = await cached(`loki:values:${ctx.label}`, async () => parseStringList(await loki(`/loki/api/v1/label/${encodeURIComponent(ctx.label)}/values`, secs())));
    return valueItems(ctx, vals);
  }
  return [];
}
