import { describe, expect, it } from 'vitest';
import { formQuery, parseTags, scatterScale, tagCondition } from '../src/search';

const empty = { service: '', operation: '', tags: '', minDuration: '', maxDuration: '' };

describe('Jaeger-style search form', () => {
  it('reads logfmt tags', () => {
    expect(parseTags('http.status_code=500  error=true region="eu \\"west\\""')).toEqual({ tags: [
      { key: 'http.status_code', value: '500' }, { key: 'error', value: 'true' }, { key: 'region', value: 'eu "west"' },
    ] });
    expect(parseTags('').tags).toEqual([]);
    expect(parseTags('a=1 oops').error).toContain('oops');
    expect(parseTags('a="x').error).toContain('unclosed');
    expect(parseTags('=x').error).toBeTruthy();
  });

  it('writes tags as TraceQL conditions', () => {
    expect(tagCondition({ key: 'http.status_code', value: '500' })).toBe('.http.status_code = 500');
    expect(tagCondition({ key: 'span.http.method', value: 'GET' })).toBe('span.http.method = "GET"');
    expect(tagCondition({ key: 'error', value: 'true' })).toBe('status = error');
    expect(tagCondition({ key: 'error', value: 'false' })).toBe('status != error');
    expect(tagCondition({ key: 'cache.hit', value: 'false' })).toBe('.cache.hit = false');
    expect(tagCondition({ key: 'odd key:x', value: 'v"' })).toBe('."odd key:x" = "v\\""');
  });

  it('builds one spanset from the form, durations checked', () => {
    expect(formQuery(empty)).toEqual({ q: '{}' });
    expect(formQuery({ service: 'api', operation: 'POST /pay', tags: 'http.method=POST', minDuration: '50ms', maxDuration: '1.5s' }).q)
      .toBe('{ resource.service.name = "api" && name = "POST /pay" && .http.method = "POST" && duration >= 50ms && duration <= 1.5s }');
    expect(formQuery({ ...empty, minDuration: '500µs' }).q).toBe('{ duration >= 500us }');
    expect(formQuery({ ...empty, maxDuration: '1m30s' }).q).toBe('{ duration <= 1m30s }');
    expect(formQuery({ ...empty, minDuration: '100' }).error).toContain('Min duration');
    expect(formQuery({ ...empty, tags: 'x' }).error).toContain('Tags');
  });

  it('scales the scatter plot to the results', () => {
    const s = scatterScale([{ startMs: 1_000_000, durationMs: 10 }, { startMs: 1_600_000, durationMs: 100 }], 600, 200);
    expect(s.y(0)).toBe(200);
    expect(s.y(110)).toBeCloseTo(0);
    expect(s.x(1_000_000)).toBeGreaterThan(0);
    expect(s.x(1_600_000)).toBeLessThan(600);
    expect(s.x(1_000_000)).toBeLessThan(s.x(1_600_000));
    const one = scatterScale([{ startMs: 5e6, durationMs: 0 }], 100, 100);
    expect(one.x(5e6)).toBeCloseTo(50);
    expect(one.y(0)).toBe(100);
  });
});
