import { describe, expect, it } from 'vitest';
import { alertLinks, mergeRules, parseMatchers, parseRules, parseSilences } from '../src/alerts';
import { link } from '../src/url';

describe('alerts', () => {
  it('reads rules with state, health and active alerts, firing first', () => {
    const r = parseRules({ status: 'success', data: { groups: [
      { name: 'g1', file: 'red.yaml', language: 'promql', rules: [
        { type: 'recording', name: 'rec:x', query: 'sum(x)', health: 'ok', lastEvaluation: '2026-01-01T00:00:00Z', evaluationTime: 0.002 },
        { type: 'alerting', name: 'Quiet', query: 'x > 1', state: 'inactive', health: 'ok', duration: 300, alerts: [] },
      ] },
      { name: 'g2', file: 'logql/errors.yaml', language: 'logql', rules: [
        { type: 'alerting', name: 'Loud', query: 'y > 0', state: 'firing', health: 'err', lastError: 'boom', labels: { severity: 'page' },
          alerts: [{ labels: { service_name: 'checkout' }, annotations: { summary: 's' }, state: 'firing', activeAt: '2026-01-01T00:00:00Z', value: '3e+00' }] },
      ] },
    ] } });
    expect(r.map((x) => x.name)).toEqual(['Loud', 'Quiet', 'rec:x']);
    expect(r[0]).toMatchObject({ state: 'firing', health: 'err', lastError: 'boom', language: 'logql', labels: { severity: 'page' } });
    expect(r[0].alerts[0]).toEqual({ labels: { service_name: 'checkout' }, annotations: { summary: 's' }, state: 'firing', activeAt: '2026-01-01T00:00:00Z', value: '3e+00' });
    expect(r[1].forS).toBe(300);
    expect(r[2]).toMatchObject({ type: 'recording', state: '', evaluationMs: 2 });
    expect(parseRules({})).toEqual([]);
  });

  it('merges the PromQL and LogQL views, each rule once, firing first', () => {
    const promView = { data: { groups: [{ name: 'red', file: 'red.yaml', rules: [{ type: 'alerting', name: 'A', query: 'x > 1', state: 'inactive' }] }] } };
    const lokiView = { data: { groups: [{ name: 'logs', file: 'errors.yaml', rules: [{ type: 'alerting', name: 'B', query: 'sum(rate({a="b"}[1m])) > 0', state: 'firing' }] }] } };
    const m = mergeRules(parseRules(promView), parseRules(lokiView, 'logql'), parseRules(promView));
    expect(m.map((r) => [r.name, r.language])).toEqual([['B', 'logql'], ['A', 'promql']]);
    expect(parseRules({ data: { groups: [{ rules: [null] }] } })[0].name).toBe('');
  });

  it('reads silences with their matchers, active first', () => {
    const s = parseSilences([
      { id: 'b', status: { state: 'expired' }, matchers: [{ name: 'a', value: '1', isRegex: false, isEqual: true }], endsAt: '2026-01-01T00:00:00Z' },
      { id: 'a', status: { state: 'active' }, createdBy: 'me', comment: 'deploy', matchers: [
        { name: 'service', value: 'check"out', isRegex: false, isEqual: true }, { name: 'sev', value: 'page|ticket', isRegex: true, isEqual: false },
      ], startsAt: '2026-01-01T00:00:00Z', endsAt: '2026-01-01T01:00:00Z' },
    ]);
    expect(s.map((x) => x.id)).toEqual(['a', 'b']);
    expect(s[0].matchers).toBe('{service="check\\"out", sev!~"page|ticket"}');
    expect(parseSilences({ error: 'x' })).toEqual([]);
  });

  it('reads the matchers of a new silence', () => {
    expect(parseMatchers('alertname="ServiceHighErrorRatio"\nservice=~"check.*", env!="dev"\n{x!~"a\\"b"}')).toEqual([
      { name: 'alertname', value: 'ServiceHighErrorRatio', isRegex: false, isEqual: true },
      { name: 'service', value: 'check.*', isRegex: true, isEqual: true },
      { name: 'env', value: 'dev', isRegex: false, isEqual: false },
      { name: 'x', value: 'a"b', isRegex: true, isEqual: false },
    ]);
    expect(parseMatchers('{route=~"/a,/b"}')).toEqual([{ name: 'route', value: '/a,/b', isRegex: true, isEqual: true }]);
    expect(parseMatchers('')).toBe('at least one matcher is needed');
    expect(parseMatchers('service=checkout')).toMatch(/^not a matcher: service=checkout/);
    expect(parseMatchers('1x="a"')).toMatch(/^not a matcher/);
  });

  it('links an alert to the service it names and to the URLs of its annotations', () => {
    const l = (page: 'service' | 'traces' | 'logs', arg: string | undefined, params: Record<string, string>) => link(page, arg, params);
    const got = alertLinks({ labels: { alertname: 'A', service: 'check"out' }, annotations: {
      summary: 'high error ratio', runbook_url: 'https://runbooks.example/a?x=1', dashboard: 'http://grafana:3000/d/x',
      script: 'javascript:alert(1)', relative: '/ui/graph',
    } }, l);
    expect(got.map((x) => [x.cls, x.label, x.href, !!x.external])).toEqual([
      ['alert-link-service', 'check"out RED', '/ui/service/check%22out', false],
      ['alert-link-traces', 'error traces', '/ui/traces?q=' + encodeURIComponent('{ resource.service.name = "check\\"out" && status = error }').replace(/%20/g, '+'), false],
      ['alert-link-logs', 'logs', '/ui/logs?q=' + encodeURIComponent('{service_name="check\\"out"}'), false],
      ['alert-link-annotation', 'dashboard', 'http://grafana:3000/d/x', true],
      ['alert-link-annotation', 'runbook_url', 'https://runbooks.example/a?x=1', true],
    ]);
    // Loki's label for the service; no service and no URL: no links.
    expect(alertLinks({ labels: { service_name: 'api' }, annotations: {} }, l)[0].href).toBe('/ui/service/api');
    expect(alertLinks({ labels: { job: 'x' }, annotations: { summary: 'x' } }, l)).toEqual([]);
  });
});
