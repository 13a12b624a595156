import { describe, expect, it } from 'vitest';
import { errorLogsQuery, homeQueries, homeRows, sortRows } from '../src/home';

const vec = (xs: [Record<string, string>, number][]) => xs.map(([labels, value]) => ({ labels, value }));

describe('home', () => {
  it('queries requests as the service page does, per service', () => {
    const q = homeQueries('60s', 3600);
    expect(q.rate).toBe('sum by (service) (rate(traces_spanmetrics_calls_total{span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"}[60s]))');
    expect(q.p95).toContain('sum by (service, le)');
    expect(q.logs).toBe('sum by (service_name, detected_level, level) (count_over_time({service_name=~".+"} [3600s]))');
    expect(errorLogsQuery('we"ird')).toBe('{service_name="we\\"ird"} | detected_level=~"error|fatal|critical"');
    expect(errorLogsQuery()).toBe('{service_name=~".+"} | detected_level=~"error|fatal|critical"');
  });

  it('joins span metrics and log counts by service name', () => {
    const rows = homeRows({
      end: 1000,
      rate: [
        { labels: { service: 'api' }, points: [[940_000, 1], [1_000_000, 4]] },
        { labels: { service: 'db' }, points: [[940_000, 2]] }, // no point at the end: no figure
      ],
      errors: vec([[{ service: 'api' }, 1]]),
      p95: vec([[{ service: 'api' }, 0.25], [{ service: 'db' }, NaN]]),
      spans: vec([[{ service: 'api' }, 1], [{ service: 'db' }, 1], [{ service: 'caller' }, 1]]),
      logs: vec([
        [{ service_name: 'api', detected_level: 'error' }, 3], [{ service_name: 'api', detected_level: 'info' }, 10],
        [{ service_name: 'api', level: 'WARNING' }, 2], [{ service_name: 'api' }, 1],
        [{ service_name: 'logger', detected_level: 'info' }, 5], [{ detected_level: 'info' }, 9],
      ]),
    });
    const by = Object.fromEntries(rows.map((r) => [r.service, r]));
    expect(Object.keys(by).sort()).toEqual(['api', 'caller', 'db', 'logger']);
    expect(by.api).toMatchObject({ rate: 4, errRate: 1, errRatio: 0.25, p95Ms: 250, logTotal: 16, spans: true, logs: { error: 3, info: 10, warn: 2, unknown: 1 } });
    expect(by.db.rate).toBeNaN();
    expect(by.db.errRatio).toBe(0);
    expect(by.caller).toMatchObject({ spans: true, logTotal: 0, errRatio: 0 });
    expect(by.caller.rate).toBeNaN();
    expect(by.logger).toMatchObject({ spans: false, logTotal: 5 });
    // A service with requests and no failed-request series has an error rate of 0, not a missing one.
    const ok = homeRows({ end: 1, rate: [{ labels: { service: 's' }, points: [[1000, 2]] }], errors: [], p95: [], spans: [], logs: [] });
    expect(ok[0]).toMatchObject({ rate: 2, errRate: 0, errRatio: 0 });
  });

  it('sorts by a column, missing figures last, ties by name', () => {
    const rows = homeRows({
      end: 1,
      rate: [{ labels: { service: 'b' }, points: [[1000, 5]] }, { labels: { service: 'a' }, points: [[1000, 5]] }, { labels: { service: 'c' }, points: [[1000, 9]] }],
      errors: vec([[{ service: 'a' }, 1]]), p95: vec([[{ service: 'b' }, 2]]), spans: [],
      logs: vec([[{ service_name: 'd', detected_level: 'error' }, 7], [{ service_name: 'b', detected_level: 'error' }, 1]]),
    });
    expect(sortRows(rows, 'rate').map((r) => r.service)).toEqual(['c', 'a', 'b', 'd']);
    expect(sortRows(rows, 'errors').map((r) => r.service)).toEqual(['a', 'd', 'b', 'c']);
    expect(sortRows(rows, 'p95').map((r) => r.service)).toEqual(['b', 'a', 'c', 'd']);
    expect(sortRows(rows, 'logs').map((r) => r.service)).toEqual(['d', 'b', 'a', 'c']);
    expect(sortRows(rows, 'name').map((r) => r.service)).toEqual(['a', 'b', 'c', 'd']);
  });
});
