import { useState } from 'preact/hooks';
import { alertmanager, alertmanagerGet, isRemote, loki, prom } from '../api';
import { Empty, ErrorBox, Loading, useAsync } from '../components/common';
import { alertLinks, mergeRules, parseMatchers, parseRules, parseSilences, type Rule, type Silence } from '../alerts';
import { fmtDuration, fmtTime, parseDuration } from '../time';
import { link, type Route } from '../url';

interface Data { rules: Rule[]; silences: Silence[]; silenceError?: string }

function ago(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t) || t <= 0) return 'never';
  return `${fmtDuration(Math.max(0, Date.now() - t))} ago`;
}

const sel = (l: Record<string, string>) => `{${Object.keys(l).sort().map((k) => `${k}="${l[k]}"`).join(', ')}}`;

/**
 * Rules of the ruler with their state and last evaluation, the alerts they hold, and the silences of the
 * Alertmanager, read through the Prometheus rules API and Alertmanager's v2 API (what Grafana reads too).
 */
function SilenceForm({ initial, onDone }: { initial: string; onDone: () => void }) {
  const [matchers, setMatchers] = useState(initial);
  const [dur, setDur] = useState('2h');
  const [comment, setComment] = useState('');
  const [err, setErr] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    const ms = parseMatchers(matchers), d = parseDuration(dur);
    if (typeof ms === 'string') { setErr(ms); return; }
    if (!(d > 0)) { setErr(`not a duration: ${dur} (e.g. 30m, 2h, 1d)`); return; }
    if (!comment.trim()) { setErr('a comment is required (Alertmanager refuses silences without one)'); return; }
    const now = Date.now();
    try {
      await alertmanager('/silences', 'POST', { matchers: ms, startsAt: new Date(now).toISOString(), endsAt: new Date(now + d).toISOString(), createdBy: 'sprout-ui', comment });
      setErr(''); setComment(''); onDone();
    } catch (x) { setErr((x as Error).message); }
  };
  return (
    <form class="silence-form" onSubmit={submit}>
      <label>Matchers <textarea rows={2} value={matchers} aria-label="Silence matchers" onInput={(e) => setMatchers((e.target as HTMLTextAreaElement).value)} placeholder={'alertname="ServiceHighErrorRatio"\nservice="checkout"'} /></label>
      <label>For <input class="small-input" value={dur} aria-label="Silence duration" onInput={(e) => setDur((e.target as HTMLInputElement).value)} /></label>
      <label>Comment <input value={comment} aria-label="Silence comment" onInput={(e) => setComment((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Create silence</button>
      {err && <div class="error" role="alert"><div class="error-msg">{err}</div></div>}
    </form>
  );
}

export function Alerts({ route, tick }: { route: Route; tick: number }) {
  const [reload, setReload] = useState(0);
  const [draft, setDraft] = useState('');
  const res = useAsync<Data>(`alerts|${reload}`, async (signal) => {
    // PromQL rules from the Prometheus API, LogQL rules from the Loki API's rules view; a Loki side without a
    // ruler (404) leaves the PromQL ones.
    const [promRules, lokiRules] = await Promise.all([
      prom('/api/v1/rules', {}, signal),
      loki('/prometheus/api/v1/rules', {}, signal).catch((e) => {
        if ((e as Error).name === 'AbortError') throw e;
        return null;
      }),
    ]);
    const rules = mergeRules(parseRules(promRules), lokiRules ? parseRules(lokiRules, 'logql') : []);
    try {
      return { rules, silences: parseSilences(await alertmanagerGet('/silences', signal)) };
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      return { rules, silences: [], silenceError: (e as Error).message };
    }
  }, tick);
  const d = res.data;
  // Through the read-only proxy to a remote cluster, the Alertmanager's silences can be read but not written.
  const readOnly = isRemote('alertmanager');
  const alerting = d?.rules.filter((r) => r.type === 'alerting') ?? [];
  const recording = d?.rules.filter((r) => r.type === 'recording') ?? [];
  const count = (s: string) => alerting.filter((r) => r.state === s).length;
  const queryLink = (r: Rule) => r.language === 'logql' ? link('logs', undefined, { q: r.query }, route) : link('metrics', undefined, { q: r.query }, route);
  return (
    <section class="page" aria-labelledby="h-alerts">
      <h1 id="h-alerts">Alerts</h1>
      <ErrorBox error={res.error} />
      {res.loading && !d && <Loading />}
      {d && !d.rules.length && (readOnly
        ? <Empty>The clusters' rulers list no rules (<code>/api/v1/rules</code> of the metrics cluster, <code>/prometheus/api/v1/rules</code> of the logs cluster).</Empty>
        : <Empty>No rules are loaded. Put rule files in the ruler's <code>rule_path</code> (<code>SPROUT_RULES</code>) or upload a group through <code>/prometheus/config/v1/rules</code>.</Empty>)}
      {d && alerting.length > 0 && (
        <>
          <p class="alert-summary" data-firing={count('firing')} data-pending={count('pending')} data-inactive={count('inactive')}>
            <span class="badge err">{count('firing')} firing</span> <span class="badge warn">{count('pending')} pending</span> <span class="badge">{count('inactive')} inactive</span>
            {alerting.length > count('firing') + count('pending') + count('inactive') && <> <span class="badge">{alerting.length - count('firing') - count('pending') - count('inactive')} not evaluated yet</span></>}
          </p>
          <h2>Alerting rules</h2>
          <table class="grid rules">
            <thead><tr><th>State</th><th>Rule</th><th>Group</th><th>For</th><th>Last evaluation</th><th>Health</th><th /></tr></thead>
            <tbody>{alerting.map((r) => (
              <>
                <tr data-rule={r.name} data-state={r.state} data-last-evaluation={r.lastEvaluation} data-language={r.language}>
                  <td><span class={'badge state-' + r.state}>{r.state}</span></td>
                  <td><strong>{r.name}</strong> <span class="muted small">{r.language === 'logql' ? 'LogQL' : 'PromQL'}</span></td>
                  <td class="muted">{r.group}</td>
                  <td>{r.forS ? fmtDuration(r.forS * 1000) : '–'}</td>
                  <td title={r.lastEvaluation}>{ago(r.lastEvaluation)}{ago(r.lastEvaluation) !== 'never' && <span class="muted small"> ({fmtDuration(r.evaluationMs)})</span>}</td>
                  <td class={r.health === 'ok' ? '' : 'err'} title={r.lastError}>{r.health}{r.lastError ? `: ${r.lastError}` : ''}</td>
                  <td><a href={queryLink(r)}>query</a></td>
                </tr>
                {r.alerts.map((a) => (
                  <tr class="alert-row" data-rule-of={r.name} data-alert-state={a.state} data-labels={sel(a.labels)}>
                    <td /><td colSpan={4}><span class={'badge state-' + a.state}>{a.state}</span> <code class="small">{sel(a.labels)}</code> {a.annotations.summary && <span class="muted">{a.annotations.summary}</span>}
                      <span class="alert-links">{alertLinks(a, (page, arg, params) => link(page, arg, params, route)).map((l) => l.external
                        ? <a class={l.cls} href={l.href} target="_blank" rel="noopener noreferrer">{l.label}</a>
                        : <a class={l.cls} href={l.href}>{l.label}</a>)}</span></td>
                    <td class="small">since {fmtTime(Date.parse(a.activeAt))}</td>
                    <td class="num small" title={a.value}>{Number.isFinite(Number(a.value)) && a.value !== '' ? +Number(a.value).toPrecision(4) : a.value} {!readOnly && <button class="small" onClick={() => setDraft(Object.entries({ alertname: r.name, ...a.labels }).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join('\n'))}>Silence</button>}</td>
                  </tr>
                ))}
              </>
            ))}</tbody>
          </table>
        </>
      )}
      {recording.length > 0 && (
        <>
          <h2>Recording rules</h2>
          <table class="grid rules">
            <thead><tr><th>Record</th><th>Group</th><th>Last evaluation</th><th>Health</th><th /></tr></thead>
            <tbody>{recording.map((r) => (
              <tr data-rule={r.name}>
                <td class="mono">{r.name}</td><td class="muted">{r.group}</td>
                <td title={r.lastEvaluation}>{ago(r.lastEvaluation)}</td>
                <td class={r.health === 'ok' ? '' : 'err'} title={r.lastError}>{r.health}{r.lastError ? `: ${r.lastError}` : ''}</td>
                <td><a href={link('metrics', undefined, { q: r.name }, route)}>series</a></td>
              </tr>
            ))}</tbody>
          </table>
        </>
      )}
      {d && (
        <>
          <h2>Silences</h2>
          {d.silenceError && <p class="muted">Alertmanager silences unavailable: {d.silenceError}</p>}
          {readOnly && <p class="muted silences-readonly">This UI reads the cluster's Alertmanager through a read-only proxy: silences are listed here but are created and expired in that Alertmanager (its UI or <code>amtool</code>).</p>}
          {!d.silenceError && !readOnly && <SilenceForm key={draft} initial={draft} onDone={() => setReload(reload + 1)} />}
          {!d.silenceError && !d.silences.length && <p class="muted silences-empty">No silences.</p>}
          {d.silences.length > 0 && (
            <table class="grid silences">
              <thead><tr><th>State</th><th>Matchers</th><th>Ends</th><th>By</th><th>Comment</th><th /></tr></thead>
              <tbody>{d.silences.map((s) => (
                <tr data-silence={s.id} data-state={s.state}><td>{s.state}</td><td class="mono small">{s.matchers}</td><td>{fmtTime(Date.parse(s.endsAt))}</td><td>{s.createdBy}</td><td>{s.comment}</td>
                  <td>{s.state !== 'expired' && !readOnly && <button class="small expire" onClick={async () => {
                    try { await alertmanager(`/silence/${encodeURIComponent(s.id)}`, 'DELETE'); } finally { setReload(reload + 1); }
                  }}>Expire</button>}</td></tr>
              ))}</tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
