// Readers for the JSON of the three APIs the UI speaks: Tempo (search, trace by id, tags), Prometheus
// (matrix/vector, exemplars) and Loki (streams, matrix). They accept the variants real servers send (OTLP JSON
// with hex or base64 ids, Tempo v1 "batches" and v2 {"trace": ...}, Loki with or without categorised labels)
// and never throw on missing fields: what is absent reads as empty.

/* eslint-disable @typescript-eslint/no-explicit-any */
type J = any;

// ---------- common ----------

export interface KV { key: string; value: string }

/** Turns an OTLP AnyValue into display text. */
export function anyValue(v: J): string {
  if (v == null) return '';
  if ('stringValue' in v) return String(v.stringValue);
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('bytesValue' in v) return String(v.bytesValue);
  if ('arrayValue' in v) return '[' + (v.arrayValue?.values ?? []).map(anyValue).join(', ') + ']';
  if ('kvlistValue' in v) return '{' + (v.kvlistValue?.values ?? []).map((kv: J) => `${kv.key}: ${anyValue(kv.value)}`).join(', ') + '}';
  return '';
}

export function attrs(list: J): KV[] {
  if (!Array.isArray(list)) return [];
  return list.map((a: J) => ({ key: String(a?.key ?? ''), value: anyValue(a?.value) }));
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Normalises a trace or span id to lower-case hex: OTLP JSON uses hex, Tempo's API base64. */
export function normId(id: J): string {
  if (typeof id !== 'string' || id === '') return '';
  // Hex, possibly with its leading zeros dropped (Tempo's search answers "9e7a…" for "09e7a…"): pad it back to
  // a span id's or a trace id's length. (A base64 id of only hex letters is ~1e-10 likely; hex wins.)
  if (/^[0-9a-fA-F]+$/.test(id) && id.length <= 32) return id.toLowerCase().padStart(id.length <= 16 ? 16 : 32, '0');
  const s = id.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  let bits = 0, acc = 0, out = '';
  for (const c of s) {
    const v = B64.indexOf(c);
    if (v < 0) return id.toLowerCase();
    acc = (acc << 6) | v; bits += 6;
    if (bits >= 8) { bits -= 8; out += ((acc >> bits) & 0xff).toString(16).padStart(2, '0'); }
  }
  return out;
}

/** Nanoseconds as a decimal string (or number) to BigInt; 0n when unreadable. */
export function nanos(v: J): bigint {
  try { return BigInt(typeof v === 'number' ? Math.round(v) : String(v ?? '0')); } catch { return 0n; }
}

// ---------- Tempo search ----------

export interface TraceSummary {
  traceID: string;
  rootServiceName: string;
  rootTraceName: string;
  startMs: number;
  durationMs: number;
  spanCount: number | null;
  errorCount: number | null;
  matched: number;
}

export function parseTempoSearch(body: J): TraceSummary[] {
  const list: J[] = Array.isArray(body?.traces) ? body.traces : [];
  return list.map((t) => {
    let spanCount: number | null = null, errorCount: number | null = null;
    if (t.serviceStats && typeof t.serviceStats === 'object') {
      spanCount = 0; errorCount = 0;
      for (const s of Object.values<J>(t.serviceStats)) { spanCount += Number(s?.spanCount ?? 0); errorCount += Number(s?.errorCount ?? 0); }
    }
    const sets: J[] = t.spanSets ?? (t.spanSet ? [t.spanSet] : []);
    const matched = sets.reduce((n: number, s: J) => n + Number(s?.matched ?? 0), 0);
    return {
      traceID: normId(t.traceID),
      rootServiceName: t.rootServiceName ?? '<root span not yet received>',
      rootTraceName: t.rootTraceName ?? '',
      startMs: Number(nanos(t.startTimeUnixNano) / 1000000n),
      durationMs: Number(t.durationMs ?? 0),
      spanCount, errorCount, matched,
    };
  });
}

export interface TagScope { name: string; tags: string[] }

/** Reads /api/v2/search/tags ({scopes:[{name,tags}]}) or v1 /api/search/tags ({tagNames:[...]}). */
export function parseTempoTags(body: J): TagScope[] {
  if (Array.isArray(body?.scopes)) return body.scopes.map((s: J) => ({ name: String(s.name), tags: (s.tags ?? []).map(String) }));
  if (Array.isArray(body?.tagNames)) return [{ name: 'none', tags: body.tagNames.map(String) }];
  return [];
}

export interface TagValue { type: string; value: string }

export function parseTempoTagValues(body: J): TagValue[] {
  if (Array.isArray(body?.tagValues)) {
    return body.tagValues.map((v: J) => (typeof v === 'string' ? { type: 'string', value: v } : { type: String(v.type ?? 'string'), value: String(v.value ?? '') }));
  }
  return [];
}

// ---------- Tempo trace ----------

export interface SpanEvent { timeMs: number; name: string; attributes: KV[] }
export interface SpanLink { traceId: string; spanId: string; attributes: KV[] }

export interface Span {
  traceId: string;
  spanId: string;
  parentId: string;
  name: string;
  service: string;
  kind: string;
  /** Start and end in ms relative to the trace's earliest span start. */
  start: number;
  end: number;
  startNs: bigint;
  statusCode: string;
  statusMessage: string;
  error: boolean;
  attributes: KV[];
  resource: KV[];
  scope: string;
  events: SpanEvent[];
  links: SpanLink[];
}

export interface Trace { traceId: string; spans: Span[]; startMs: number; durationMs: number }

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS = ['UNSET', 'OK', 'ERROR'];

function enumName(v: J, names: string[], prefix: string): string {
  if (typeof v === 'number') return names[v] ?? String(v);
  if (typeof v === 'string') return v.replace(prefix, '');
  return names[0];
}

/** Reads a trace from /api/v2/traces/{id} ({trace:{resourceSpans}}), /api/traces/{id} ({batches}) or OTLP JSON. */
export function parseTrace(body: J): Trace {
  const root = body?.trace ?? body;
  const rss: J[] = root?.resourceSpans ?? root?.batches ?? [];
  const spans: Span[] = [];
  let min: bigint | null = null;
  const raw: { s: J; res: KV[]; service: string; scope: string; st: bigint; en: bigint }[] = [];
  for (const rs of rss) {
    const res = attrs(rs?.resource?.attributes);
    const service = res.find((a) => a.key === 'service.name')?.value ?? '<unknown service>';
    for (const ss of rs?.scopeSpans ?? rs?.instrumentationLibrarySpans ?? []) {
      const scope = ss?.scope?.name ?? ss?.instrumentationLibrary?.name ?? '';
      for (const s of ss?.spans ?? []) {
        const st = nanos(s.startTimeUnixNano);
        let en = nanos(s.endTimeUnixNano);
        if (en < st) en = st;
        if (min === null || st < min) min = st;
        raw.push({ s, res, service, scope, st, en });
      }
    }
  }
  const base = min ?? 0n;
  let maxEnd = 0;
  for (const { s, res, service, scope, st, en } of raw) {
    const statusCode = enumName(s.status?.code, STATUS, 'STATUS_CODE_');
    const start = Number(st - base) / 1e6, end = Number(en - base) / 1e6;
    if (end > maxEnd) maxEnd = end;
    spans.push({
      traceId: normId(s.traceId),
      spanId: normId(s.spanId),
      parentId: normId(s.parentSpanId),
      name: String(s.name ?? ''),
      service,
      kind: enumName(s.kind, KINDS, 'SPAN_KIND_'),
      start, end, startNs: st,
      statusCode,
      statusMessage: String(s.status?.message ?? ''),
      error: statusCode === 'ERROR',
      attributes: attrs(s.attributes),
      resource: res,
      scope,
      events: (s.events ?? []).map((e: J) => ({ timeMs: Number(nanos(e.timeUnixNano) - base) / 1e6, name: String(e.name ?? ''), attributes: attrs(e.attributes) })),
      links: (s.links ?? []).map((l: J) => ({ traceId: normId(l.traceId), spanId: normId(l.spanId), attributes: attrs(l.attributes) })),
    });
  }
  return {
    traceId: spans[0]?.traceId ?? '',
    spans,
    startMs: Number(base / 1000000n),
    durationMs: maxEnd,
  };
}

// ---------- Prometheus ----------

export interface Series { labels: Record<string, string>; points: [number, number][] }

export class ApiError extends Error {
  constructor(message: string, public status: number, public errorType = '') { super(message); }
}

function promData(body: J): J {
  if (body?.status === 'error') throw new ApiError(String(body.error ?? 'query failed'), 400, String(body.errorType ?? ''));
  return body?.data;
}

function num(v: J): number {
  if (v === 'NaN') return NaN;
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

/** Reads a query or query_range answer (matrix, vector, scalar) into series of [epoch ms, value] points. */
export function parsePromResult(body: J): Series[] {
  const d = promData(body);
  const t = d?.resultType;
  const r = d?.result;
  if (t === 'matrix') return (r ?? []).map((s: J) => ({ labels: s.metric ?? {}, points: (s.values ?? []).map((p: J) => [Number(p[0]) * 1000, num(p[1])]) }));
  if (t === 'vector') return (r ?? []).map((s: J) => ({ labels: s.metric ?? {}, points: s.value ? [[Number(s.value[0]) * 1000, num(s.value[1])]] : [] }));
  if (t === 'scalar' && Array.isArray(r)) return [{ labels: {}, points: [[Number(r[0]) * 1000, num(r[1])]] }];
  return [];
}

/** An instant vector as label sets with their value. */
export function parsePromVector(body: J): { labels: Record<string, string>; value: number }[] {
  return parsePromResult(body).map((s) => ({ labels: s.labels, value: s.points.length ? s.points[s.points.length - 1][1] : NaN }));
}

export interface Exemplar { seriesLabels: Record<string, string>; labels: Record<string, string>; value: number; timeMs: number; traceId: string }

export function parseExemplars(body: J): Exemplar[] {
  const d = promData(body);
  const out: Exemplar[] = [];
  for (const s of Array.isArray(d) ? d : []) {
    for (const e of s?.exemplars ?? []) {
      const labels = e.labels ?? {};
      const traceId = labels.trace_id ?? labels.traceID ?? labels.traceId ?? '';
      out.push({ seriesLabels: s.seriesLabels ?? {}, labels, value: num(e.value), timeMs: Number(e.timestamp) * 1000, traceId: traceId ? normId(traceId) : '' });
    }
  }
  return out;
}

export function parseStringList(body: J): string[] {
  const d = promData(body);
  return Array.isArray(d) ? d.map(String) : [];
}

export function seriesName(labels: Record<string, string>): string {
  const name = labels.__name__ ?? '';
  const rest = Object.keys(labels).filter((k) => k !== '__name__').sort().map((k) => `${k}="${labels[k]}"`).join(', ');
  return rest ? `${name}{${rest}}` : name || '{}';
}

// ---------- Loki ----------

export interface LogLine {
  tsNs: bigint;
  timeMs: number;
  line: string;
  stream: Record<string, string>;
  structured: Record<string, string>;
  parsed: Record<string, string>;
  level: string;
  traceId: string;
  spanId: string;
}

const LEVELS: Record<string, string> = {
  trace: 'trace', debug: 'debug', dbug: 'debug', info: 'info', information: 'info', notice: 'info',
  warn: 'warn', warning: 'warn', error: 'error', err: 'error', eror: 'error', fatal: 'fatal', critical: 'fatal', crit: 'fatal', panic: 'fatal',
};

/** The level of a log line: from labels or metadata if present, else from the text (level=..., [WARN] ...). */
export function detectLevel(line: string, ...maps: Record<string, string>[]): string {
  for (const m of maps) {
    for (const k of ['level', 'detected_level', 'severity_text', 'severity', 'lvl']) {
      const v = m[k];
      if (v) return LEVELS[v.toLowerCase()] ?? 'unknown';
    }
  }
  const m = /\b(?:level|lvl|severity)["']?\s*[=:]\s*["']?([a-zA-Z]+)/.exec(line) ?? /\b(TRACE|DEBUG|INFO|WARN(?:ING)?|ERROR|FATAL|PANIC|CRITICAL)\b/.exec(line);
  return m ? LEVELS[m[1].toLowerCase()] ?? 'unknown' : 'unknown';
}

const TRACE_KEYS = ['trace_id', 'traceid', 'traceID', 'traceId'];

function findId(keys: string[], re: RegExp, line: string, ...maps: Record<string, string>[]): string {
  for (const m of maps) for (const k of keys) if (m[k]) return normId(m[k]);
  const x = re.exec(line);
  return x ? x[1].toLowerCase() : '';
}

export interface LokiResult { kind: 'streams'; lines: LogLine[] }
export interface LokiMatrix { kind: 'matrix'; series: Series[] }

/** Reads a Loki query_range answer: log streams (newest first, as asked) or a metric matrix. */
export function parseLoki(body: J): LokiResult | LokiMatrix {
  const d = promData(body);
  if (d?.resultType === 'matrix' || d?.resultType === 'vector') return { kind: 'matrix', series: parsePromResult(body) };
  const lines: LogLine[] = [];
  for (const s of d?.result ?? []) {
    const stream: Record<string, string> = s.stream ?? {};
    for (const v of s.values ?? []) {
      const tsNs = nanos(v[0]);
      const line = String(v[1] ?? '');
      const meta = v[2] ?? {};
      const structured: Record<string, string> = meta.structuredMetadata ?? {};
      const parsed: Record<string, string> = meta.parsed ?? {};
      lines.push({
        tsNs, timeMs: Number(tsNs / 1000000n), line, stream, structured, parsed,
        level: detectLevel(line, structured, parsed, stream),
        traceId: findId(TRACE_KEYS, /\btrace_?id["']?\s*[=:]\s*["']?([0-9a-fA-F]{32})\b/i, line, structured, parsed, stream),
        spanId: findId(['span_id', 'spanid', 'spanID', 'spanId'], /\bspan_?id["']?\s*[=:]\s*["']?([0-9a-fA-F]{16})\b/i, line, structured, parsed, stream),
      });
    }
  }
  lines.sort((a, b) => (a.tsNs < b.tsNs ? 1 : a.tsNs > b.tsNs ? -1 : 0));
  return { kind: 'streams', lines };
}

// ---------- errors ----------

export interface ErrorPos { line: number; col: number }

/** Finds the position a query error names: Prometheus "1:5: parse error", Loki/Tempo "at line 1, col 5". */
export function errorPosition(msg: string): ErrorPos | null {
  let m = /line (\d+),? col(?:umn)? (\d+)/i.exec(msg);
  if (m) return { line: Number(m[1]), col: Number(m[2]) };
  m = /(?:^|\s|")(\d+):(\d+)(?::\s|\s*:)/.exec(msg);
  if (m) return { line: Number(m[1]), col: Number(m[2]) };
  m = /(?:position|pos|char(?:acter)?) (\d+)/i.exec(msg);
  if (m) return { line: 1, col: Number(m[1]) };
  return null;
}

/** The message of an error response: JSON "error"/"message" fields, else the text itself. */
export function errorMessage(text: string, status: number): string {
  const t = text.trim();
  if (t.startsWith('{')) {
    try {
      const j = JSON.parse(t);
      const m = j.error ?? j.message ?? j.msg;
      if (m) return String(m);
    } catch { /* plain text after all */ }
  }
  return t || `HTTP ${status}`;
}
