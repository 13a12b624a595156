// Where the cursor is in a PromQL, LogQL or TraceQL query, and so what to suggest there. Only the text up to
// the cursor is looked at; this is a small lexer, not a parser, and it errs towards offering nothing.

export type Lang = 'promql' | 'logql' | 'traceql';

export type Context =
  | { kind: 'metric'; prefix: string; from: number }
  | { kind: 'label'; prefix: string; from: number; metric: string }
  | { kind: 'value'; prefix: string; from: number; label: string; metric: string; quoted: boolean }
  | { kind: 'none' };

export interface Suggestion { text: string; insert: string; detail?: string }

/** The innermost unclosed brace before the cursor, ignoring braces inside strings; -1 when outside braces. */
function openBrace(text: string): number {
  const stack: number[] = [];
  let q: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '\\') i++;
      else if (c === q) q = null;
      continue;
    }
    if (c === '"' || c === '`') q = c;
    else if (c === '{') stack.push(i);
    else if (c === '}') stack.pop();
  }
  return q ? -2 - (stack.length ? stack[stack.length - 1] : -1) : stack.length ? stack[stack.length - 1] : -1;
}

function inString(text: string): boolean {
  let q: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) { if (c === '\\') i++; else if (c === q) q = null; } else if (c === '"' || c === '`') q = c;
  }
  return q !== null;
}

/** Finds what to complete at `pos` in `text`. */
export function contextAt(lang: Lang, text: string, pos: number): Context {
  const before = text.slice(0, pos);
  const quoted = inString(before);
  let brace = openBrace(before);
  if (brace < -1) brace = -2 - brace;
  if (brace >= 0) {
    const inner = before.slice(brace + 1);
    const metric = lang === 'promql' ? (/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, brace))?.[1] ?? '') : '';
    const ident = lang === 'traceql' ? '[a-zA-Z_.:][a-zA-Z0-9_.:\\-]*' : '[a-zA-Z_][a-zA-Z0-9_]*';
    // A value: `label op "partial` (any language), or `attr op partial` (TraceQL numbers and enums).
    const op = '(=~|!~|!=|>=|<=|=|>|<)';
    const v = quoted
      ? new RegExp(`(${ident})\\s*${op}\\s*"([^"]*)$`).exec(inner)
      : lang === 'traceql' ? new RegExp(`(${ident})\\s*${op}\\s*([a-zA-Z0-9_.\\-]*)$`).exec(inner) : null;
    if (v) return { kind: 'value', label: v[1], prefix: v[3], from: pos - v[3].length, metric, quoted };
    if (quoted) return { kind: 'none' };
    const sep = lang === 'traceql' ? /(?:^|[{\s(&|!])(\.?[a-zA-Z_.:][a-zA-Z0-9_.:\-]*)?$/ : /(?:^|[{,\s])([a-zA-Z_][a-zA-Z0-9_]*)?$/;
    const l = sep.exec(inner);
    if (l) {
      const prefix = l[1] ?? '';
      // After a complete "label op value" with no separator yet, nothing is expected but , or }.
      const head = inner.slice(0, inner.length - prefix.length).trimEnd();
      if (lang !== 'traceql' && head && !/[{,]$/.test(head)) return { kind: 'none' };
      if (lang === 'traceql' && head && !/(\{|&&|\|\||\(|!)$/.test(head)) return { kind: 'none' };
      return { kind: 'label', prefix, from: pos - prefix.length, metric };
    }
    return { kind: 'none' };
  }
  if (quoted) return { kind: 'none' };
  if (lang === 'promql') {
    const m = /([a-zA-Z_:][a-zA-Z0-9_:]*)$/.exec(before);
    const prefix = m ? m[1] : '';
    // Inside "by (" / "without (" a label is expected.
    if (/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(\s*(?:[a-zA-Z_][a-zA-Z0-9_]*\s*,\s*)*[a-zA-Z_0-9]*$/.test(before)) {
      return { kind: 'label', prefix, from: pos - prefix.length, metric: '' };
    }
    if (/\[[^\]]*$/.test(before)) return { kind: 'none' };
    if (!prefix) return /(^|[\s(,+\-*/^=<>])$/.test(before) ? { kind: 'metric', prefix: '', from: pos } : { kind: 'none' };
    return { kind: 'metric', prefix, from: pos - prefix.length };
  }
  if (lang === 'logql') {
    const m = /\|\s*([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(before);
    if (m) return { kind: 'label', prefix: m[1], from: pos - m[1].length, metric: '' };
  }
  return { kind: 'none' };
}

export const PROMQL_FUNCTIONS = [
  'rate', 'irate', 'increase', 'sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'histogram_quantile',
  'sum_over_time', 'avg_over_time', 'max_over_time', 'min_over_time', 'count_over_time', 'quantile_over_time',
  'delta', 'deriv', 'abs', 'ceil', 'floor', 'round', 'clamp_min', 'clamp_max', 'label_replace', 'label_join',
  'absent', 'changes', 'resets', 'time', 'vector', 'scalar', 'sort', 'sort_desc', 'quantile', 'stddev', 'by', 'without',
];

export const TRACEQL_INTRINSICS = ['name', 'status', 'statusMessage', 'duration', 'kind', 'rootName', 'rootServiceName', 'traceDuration', 'span:name', 'span:duration', 'span:status', 'span:kind', 'trace:rootService', 'trace:rootName', 'trace:duration'];

/** Filters candidates by prefix: prefix matches first, then substring matches; at most `max`. */
export function rank(cands: string[], prefix: string, max = 50): string[] {
  const p = prefix.toLowerCase();
  const starts: string[] = [], contains: string[] = [];
  for (const c of cands) {
    const l = c.toLowerCase();
    if (l.startsWith(p)) starts.push(c); else if (p && l.includes(p)) contains.push(c);
    if (starts.length >= max) break;
  }
  return starts.concat(contains).slice(0, max);
}

/** Quotes a label value for insertion in a query string. */
export function quoteValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}
