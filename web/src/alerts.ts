// Readers for the alerts page: Prometheus' /api/v1/rules (PromQL rules with their state, last evaluation and active
// alerts), the same view of LogQL rules where Loki serves it (/prometheus/api/v1/rules on the Loki URL), and
// Alertmanager's /api/v2/silences.
type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ActiveAlert { labels: Record<string, string>; annotations: Record<string, string>; state: string; activeAt: string; value: string }
export interface Rule {
  group: string; file: string; language: string; type: 'alerting' | 'recording'; name: string; query: string;
  state: string; health: string; lastError: string; lastEvaluation: string; evaluationMs: number; forS: number;
  labels: Record<string, string>; alerts: ActiveAlert[];
}

const strs = (o: J): Record<string, string> => {
  const out: Record<string, string> = {};
  if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) out[k] = String(v);
  return out;
};

/** The rules of a /api/v1/rules answer, alerting rules first (firing, then pending, then the rest), then recording. */
export function parseRules(body: J, language = 'promql'): Rule[] {
  const out: Rule[] = [];
  for (const g of body?.data?.groups ?? []) {
    for (const r of g?.rules ?? []) {
      const type = r?.type === 'recording' ? 'recording' : 'alerting';
      out.push({
        group: String(g.name ?? ''), file: String(g.file ?? ''), language: String(g.language ?? language), type,
        name: String(r?.name ?? ''), query: String(r?.query ?? ''),
        state: type === 'alerting' ? String(r?.state ?? 'inactive') : '', health: String(r?.health ?? 'unknown'),
        lastError: String(r?.lastError ?? ''), lastEvaluation: String(r?.lastEvaluation ?? ''),
        evaluationMs: Number(r?.evaluationTime ?? 0) * 1000, forS: Number(r?.duration ?? 0), labels: strs(r?.labels),
        alerts: (r?.alerts ?? []).map((a: J) => ({ labels: strs(a?.labels), annotations: strs(a?.annotations), state: String(a?.state ?? ''), activeAt: String(a?.activeAt ?? ''), value: String(a?.value ?? '') })),
      });
    }
  }
  const rank = (r: Rule) => (r.type === 'recording' ? 3 : r.state === 'firing' ? 0 : r.state === 'pending' ? 1 : 2);
  return out.sort((a, b) => rank(a) - rank(b) || a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
}

/** The rules of several /api/v1/rules answers in parseRules' order, each rule once (two views may list the same
 * groups, e.g. when the ruler serves PromQL under both prefixes). */
export function mergeRules(...lists: Rule[][]): Rule[] {
  const seen = new Set<string>();
  const out: Rule[] = [];
  for (const r of lists.flat()) {
    const k = JSON.stringify([r.language, r.file, r.group, r.type, r.name, r.query]);
    if (!seen.has(k)) { seen.add(k); out.push(r); }
  }
  const rank = (r: Rule) => (r.type === 'recording' ? 3 : r.state === 'firing' ? 0 : r.state === 'pending' ? 1 : 2);
  return out.sort((a, b) => rank(a) - rank(b) || a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
}

export interface Silence { id: string; state: string; matchers: string; createdBy: string; comment: string; startsAt: string; endsAt: string }

/** Alertmanager v2 silences, active first, each with its matchers written as a selector. */
export function parseSilences(body: J): Silence[] {
  const ops = (m: J) => (m?.isEqual === false ? (m?.isRegex ? '!~' : '!=') : m?.isRegex ? '=~' : '=');
  const out: Silence[] = (Array.isArray(body) ? body : []).map((s: J) => ({
    id: String(s?.id ?? ''), state: String(s?.status?.state ?? ''),
    matchers: `{${(s?.matchers ?? []).map((m: J) => `${m?.name}${ops(m)}"${String(m?.value ?? '').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(', ')}}`,
    createdBy: String(s?.createdBy ?? ''), comment: String(s?.comment ?? ''), startsAt: String(s?.startsAt ?? ''), endsAt: String(s?.endsAt ?? ''),
  }));
  const rank = (s: Silence) => (s.state === 'active' ? 0 : s.state === 'pending' ? 1 : 2);
  return out.sort((a, b) => rank(a) - rank(b) || b.endsAt.localeCompare(a.endsAt));
}

/** The matchers of a new silence: one per line or comma (`name="value"`, `name=~"re"`, `!=`, `!~`), a duration, a comment. */
export function parseMatchers(text: string): { name: string; value: string; isRegex: boolean; isEqual: boolean }[] | string {
  const out = [];
  const body = text.trim().replace(/^\{/, '').replace(/\}$/, '');
  const re = /[\s,{}]*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"[\s,{}]*/y;
  let at = 0;
  while (at < body.length) {
    re.lastIndex = at;
    const m = re.exec(body);
    if (!m) {
      const rest = body.slice(at).trim();
      if (!rest) break;
      return `not a matcher: ${rest.split('\n')[0]} (write name="value", name=~"regex", name!="value" or name!~"regex")`;
    }
    out.push({ name: m[1], value: m[3].replace(/\\(.)/g, '$1'), isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') });
    at = re.lastIndex;
  }
  return out.length ? out : 'at least one matcher is needed';
}

export interface AlertLink { label: string; href: string; cls: string; external?: boolean }

/** A string as the inside of a double-quoted PromQL/LogQL/TraceQL literal. */
const lit = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/**
 * The doors out of one alert, as an SRE follows them from Grafana's alert list: the service it names (its RED
 * page, its error traces, its logs: `service` as the span metrics label it, `service_name` as Loki does), and
 * every annotation that is an absolute http(s) URL (runbook_url, dashboard_url...), opened in a new tab. Other
 * schemes are not links (an annotation is text written by whoever wrote the rule).
 */
export function alertLinks(a: Pick<ActiveAlert, 'labels' | 'annotations'>, link: (page: 'service' | 'traces' | 'logs', arg: string | undefined, params: Record<string, string>) => string): AlertLink[] {
  const out: AlertLink[] = [];
  const svc = a.labels.service || a.labels.service_name || '';
  if (svc) {
    out.push({ label: `${svc} RED`, href: link('service', svc, {}), cls: 'alert-link-service' });
    out.push({ label: 'error traces', href: link('traces', undefined, { q: `{ resource.service.name = "${lit(svc)}" && status = error }` }), cls: 'alert-link-traces' });
    out.push({ label: 'logs', href: link('logs', undefined, { q: `{service_name="${lit(svc)}"}` }), cls: 'alert-link-logs' });
  }
  for (const k of Object.keys(a.annotations).sort()) {
    const v = a.annotations[k].trim();
    let u: URL;
    try { u = new URL(v); } catch { continue; }
    if (u.protocol === 'http:' || u.protocol === 'https:') out.push({ label: k, href: u.href, cls: 'alert-link-annotation', external: true });
  }
  return out;
}
