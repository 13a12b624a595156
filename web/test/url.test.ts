import { describe, expect, it } from 'vitest';
import { spanLinks } from '../src/links';
import { formatRoute, link, parseRoute, type Route } from '../src/url';
import { autoStep, parseDuration, parseTime, resolveRange } from '../src/time';

describe('URL state', () => {
  const cases: Route[] = [
    { page: 'traces', params: { q: '{ resource.service.name = "api" && status = error }', from: 'now-6h', to: 'now', sort: 'durationMs', dir: 'asc', filter: 'GET /x?y=1&z' } },
    { page: 'trace', arg: '0123456789abcdef0123456789abcdef', params: { span: '0123456789abcdef', panel: 'logs', cp: '0' } },
    { page: 'service', arg: 'check/out service', params: { refresh: '10s' } },
    { page: 'metrics', params: { q: 'sum by (le) (rate(x_bucket{a=~"b|c"}[5m]))', step: '15' } },
    { page: 'logs', params: { q: '{service_name=~".+"} | trace_id="abc" |= "100%"', from: '1700000000000', to: '1700003600000' } },
    { page: 'graph', params: {} },
  ];
  for (const r of cases) {
    it(`round-trips ${r.page}`, () => {
      const u = new URL(formatRoute(r), 'http://x');
      expect(parseRoute(u.pathname, u.search)).toEqual(r);
    });
  }
  it('drops empty parameters and sorts the rest', () => {
    expect(formatRoute({ page: 'logs', params: { q: '', b: '2', a: '1' } })).toBe('/ui/logs?a=1&b=2');
  });
  it('lands unknown and incomplete paths on a page', () => {
    expect(parseRoute('/', '').page).toBe('home');
    expect(parseRoute('/ui/', '').page).toBe('home');
    expect(parseRoute('/ui/home', '').page).toBe('home');
    expect(formatRoute({ page: 'home', params: { from: 'now-6h' } })).toBe('/ui/?from=now-6h');
    expect(parseRoute('/ui/', '?from=now-6h')).toEqual({ page: 'home', params: { from: 'now-6h' } });
    expect(parseRoute('/ui/nope', '')).toEqual({ page: 'notfound', arg: '/ui/nope', params: {} });
    expect(parseRoute('/ui/Traces', '').page).toBe('notfound');
    expect(parseRoute('/ui/trace', '').page).toBe('traces');
    expect(parseRoute('/ui/service/', '').page).toBe('graph');
  });
  it('carries the time range across pages', () => {
    const cur: Route = { page: 'traces', params: { from: 'now-3h', to: 'now', q: 'x', refresh: '5s' } };
    expect(link('logs', undefined, { q: 'y' }, cur)).toBe('/ui/logs?from=now-3h&q=y&refresh=5s&to=now');
  });
});

describe('time', () => {
  const now = 1_700_000_000_000;
  it('parses relative and absolute times', () => {
    expect(parseTime('now', now)).toBe(now);
    expect(parseTime('now-15m', now)).toBe(now - 15 * 60e3);
    expect(parseTime('now-2d', now)).toBe(now - 2 * 86400e3);
    expect(parseTime('1690000000000', now)).toBe(1690000000000);
    expect(parseTime('2024-01-01T00:00:00Z', now)).toBe(Date.UTC(2024, 0, 1));
    expect(parseTime('yesterday', now)).toBeNaN();
  });
  it('falls back to the last hour for a bad range', () => {
    expect(resolveRange({ from: 'now', to: 'now-1h' }, now)).toEqual({ start: now - 3600e3 - 3600e3, end: now - 3600e3 });
    expect(resolveRange({ from: 'bad', to: 'now' }, now)).toEqual({ start: now - 3600e3, end: now });
  });
  it('parses durations and picks readable steps', () => {
    expect(parseDuration('1h30m')).toBe(5400e3);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5x')).toBeNaN();
    expect(autoStep(0, 3600e3)).toBe(15);
    expect(autoStep(0, 7 * 86400e3)).toBe(3600);
  });
});

describe('span links', () => {
  const s = { service: 'check"out', name: 'POST /api', kind: 'SERVER', spanId: 'aaaaaaaaaaaaaaaa', traceId: 'b'.repeat(32) };
  it('open the RED page, the operation latency (pinning the trace) and the span logs', () => {
    const l = spanLinks(s, 1_700_000_000_000);
    expect(l.service).toBe('/ui/service/check%22out');
    const m = new URL(l.metrics, 'http://x');
    expect(m.pathname).toBe('/ui/metrics');
    expect(m.searchParams.get('q')).toBe('histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{service="check\\"out", span_name="POST /api", span_kind="SPAN_KIND_SERVER"}[5m])))');
    expect(m.searchParams.get('trace')).toBe(s.traceId);
    expect(Number(m.searchParams.get('from'))).toBe(1_700_000_000_000 - 1_800_000);
    const g = new URL(l.logs, 'http://x');
    expect(g.searchParams.get('q')).toBe('{service_name=~".+"} | span_id="aaaaaaaaaaaaaaaa"');
    expect(Number(g.searchParams.get('to'))).toBe(1_700_000_000_000 + 900_000);
  });
  it('keep the shared time range only where they do not set their own', () => {
    const route = { page: 'trace' as const, arg: 'x', params: { from: 'now-6h', to: 'now', refresh: '30s' } };
    expect(spanLinks(s, 0, route).service).toBe('/ui/service/check%22out?from=now-6h&refresh=30s&to=now');
  });
});
