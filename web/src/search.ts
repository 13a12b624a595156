// The Jaeger-style search form of the Traces page: service, operation, tags, span duration bounds, written as
// the TraceQL query that Tempo's search runs. Jaeger's semantics: a trace matches when one span of the service
// (and operation) has every tag and a duration between the bounds.
import { quote } from './figures';

export interface SearchForm { service: string; operation: string; tags: string; minDuration: string; maxDuration: string }

/** Jaeger's and Tempo's duration syntax: a number and a unit (ns, us, µs, ms, s, m, h), or several (1m30s). */
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

export interface Tag { key: string; value: string }

/**
 * Reads tags written as Jaeger takes them, logfmt: `http.status_code=500 error=true region="eu west"`. Returns
 * the tags, or the first thing that is not one (a key without `=`, an unclosed quote).
 */
export function parseTags(s: string): { tags: Tag[]; error?: string } {
  const tags: Tag[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i])) i++;
    if (i >= s.length) break;
    const k0 = i;
    while (i < s.length && s[i] !== '=' && !/\s/.test(s[i])) i++;
    const key = s.slice(k0, i);
    if (s[i] !== '=' || !key) return { tags, error: `tag "${s.slice(k0, i) || s.slice(k0)}" needs key=value` };
    i++;
    let value = '';
    if (s[i] === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
      if (s[i] !== '"') return { tags, error: `tag ${key}: unclosed quote` };
      i++;
    } else {
      const v0 = i;
      while (i < s.length && !/\s/.test(s[i])) i++;
      value = s.slice(v0, i);
    }
    tags.push({ key, value });
  }
  return { tags };
}

const SCOPES = /^(span|resource|event|link|instrumentation)\./;
const PLAIN_KEY = /^[A-Za-z_][\w.\-/]*$/;

/** One tag as a TraceQL condition: numbers and booleans unquoted, `error=true` as Jaeger means it (an error span). */
export function tagCondition(t: Tag): string {
  if (t.key === 'error' && (t.value === 'true' || t.value === 'false')) return t.value === 'true' ? 'status = error' : 'status != error';
  // Unscoped (`.key`: span or resource attribute, as Jaeger's tags are either) unless the key names its scope.
  const attr = SCOPES.test(t.key) ? t.key : PLAIN_KEY.test(t.key) ? `.${t.key}` : `."${quote(t.key)}"`;
  const v = /^-?\d+(\.\d+)?$/.test(t.value) || t.value === 'true' || t.value === 'false' ? t.value : `"${quote(t.value)}"`;
  return `${attr} = ${v}`;
}

/** The TraceQL of a filled form, or the first field that is wrong. */
export function formQuery(f: SearchForm): { q: string; error?: string } {
  const conds: string[] = [];
  if (f.service) conds.push(`resource.service.name = "${quote(f.service)}"`);
  if (f.operation) conds.push(`name = "${quote(f.operation)}"`);
  const t = parseTags(f.tags);
  if (t.error) return { q: '', error: `Tags: ${t.error}` };
  conds.push(...t.tags.map(tagCondition));
  for (const [name, v, op] of [['Min duration', f.minDuration, '>='], ['Max duration', f.maxDuration, '<=']] as const) {
    const d = v.trim().replace('µs', 'us');
    if (!d) continue;
    if (!DURATION.test(d)) return { q: '', error: `${name}: "${v}" is not a duration (e.g. 100ms, 1.5s, 2m)` };
    conds.push(`duration ${op} ${d}`);
  }
  return { q: conds.length ? `{ ${conds.join(' && ')} }` : '{}' };
}

/** The lookbacks Jaeger offers, as the `from` of the page's time range. */
export const LOOKBACKS: [string, string][] = [['now-1h', 'Last hour'], ['now-2h', 'Last 2 hours'], ['now-3h', 'Last 3 hours'], ['now-6h', 'Last 6 hours'], ['now-12h', 'Last 12 hours'], ['now-24h', 'Last 24 hours'], ['now-2d', 'Last 2 days'], ['now-7d', 'Last 7 days']];

/** Scatter plot geometry: x from the first to the last start (padded), y from 0 to the longest duration. */
export function scatterScale(points: { startMs: number; durationMs: number }[], w: number, h: number) {
  let t0 = Infinity, t1 = -Infinity, d1 = 0;
  for (const p of points) { t0 = Math.min(t0, p.startMs); t1 = Math.max(t1, p.startMs); d1 = Math.max(d1, p.durationMs); }
  if (!points.length) { t0 = 0; t1 = 1; }
  const pad = Math.max((t1 - t0) * 0.04, 1000);
  t0 -= pad; t1 += pad;
  const yMax = d1 > 0 ? d1 * 1.1 : 1;
  return { t0, t1, yMax, x: (t: number) => ((t - t0) / (t1 - t0)) * w, y: (d: number) => h - (d / yMax) * h };
}
