import { describe, expect, it } from 'vitest';
import { contextAt } from '../src/autocomplete';
import { buildEdges, edgeGeometry, labelWidth, layout, NODE_H, NODE_W, separateLabels } from '../src/graph';
import {
  errorMessage, errorPosition, normId, parseExemplars, parseLoki, parsePromResult, parsePromVector, parseTempoSearch,
  parseTempoTagValues, parseTempoTags, parseTrace,
} from '../src/parse';
import { histogram, logExamples, volumeLevel, volumeQuery } from '../src/logs';

describe('Tempo', () => {
  it('reads search results with service stats', () => {
    const r = parseTempoSearch({
      traces: [{
        traceID: '2f3e0cee77ae5dc9c17ade3689eb2e54', rootServiceName: 'shop-backend', rootTraceName: 'update-billing',
        startTimeUnixNano: '1684778327699392724', durationMs: 557,
        spanSets: [{ spans: [{ spanID: '563d623c76514f8e', startTimeUnixNano: '1684778327735077898', durationNanos: '446979497' }], matched: 1 }],
        serviceStats: { 'shop-backend': { spanCount: 3, errorCount: 1 }, db: { spanCount: 2 } },
      }, { traceID: 'abc' }],
    });
    expect(r[0]).toEqual({
      traceID: '2f3e0cee77ae5dc9c17ade3689eb2e54', rootServiceName: 'shop-backend', rootTraceName: 'update-billing',
      startMs: 1684778327699, durationMs: 557, spanCount: 5, errorCount: 1, matched: 1,
    });
    expect(r[1].spanCount).toBeNull();
    expect(r[1].rootServiceName).toContain('not yet received');
    expect(parseTempoSearch({})).toEqual([]);
  });

  it('reads tags and tag values', () => {
    expect(parseTempoTags({ scopes: [{ name: 'resource', tags: ['service.name'] }, { name: 'intrinsic', tags: ['duration'] }] }))
      .toEqual([{ name: 'resource', tags: ['service.name'] }, { name: 'intrinsic', tags: ['duration'] }]);
    expect(parseTempoTags({ tagNames: ['http.method'] })).toEqual([{ name: 'none', tags: ['http.method'] }]);
    expect(parseTempoTagValues({ tagValues: [{ type: 'string', value: 'api' }, { type: 'int', value: '200' }] }))
      .toEqual([{ type: 'string', value: 'api' }, { type: 'int', value: '200' }]);
    expect(parseTempoTagValues({ tagValues: ['a'] })).toEqual([{ type: 'string', value: 'a' }]);
  });

  it('normalises hex and base64 ids', () => {
    expect(normId('AAECAwQFBgcICQoLDA0ODw==')).toBe('000102030405060708090a0b0c0d0e0f');
    expect(normId('AAECAwQFBgc=')).toBe('0001020304050607');
    expect(normId('ABCDEF0123456789ABCDEF0123456789')).toBe('abcdef0123456789abcdef0123456789');
    // Tempo's search drops leading zeros of hex ids.
    expect(normId('9e7abc8216a5a9179b298c8f82309fb')).toBe('09e7abc8216a5a9179b298c8f82309fb');
    expect(normId('4ef023c22731df5')).toBe('04ef023c22731df5');
    expect(normId(undefined)).toBe('');
  });

  const otlp = {
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'api' } }, { key: 'host.cpus', value: { intValue: '4' } }] },
      scopeSpans: [{
        scope: { name: 'lib' },
        spans: [
          { traceId: 'AAECAwQFBgcICQoLDA0ODw==', spanId: 'AAECAwQFBgc=', name: 'GET /', kind: 'SPAN_KIND_SERVER', startTimeUnixNano: '1700000000000000000', endTimeUnixNano: '1700000000250000000', status: {} },
          {
            traceId: '000102030405060708090a0b0c0d0e0f', spanId: '1111111111111111', parentSpanId: '0001020304050607', name: 'db', kind: 3,
            startTimeUnixNano: '1700000000010000000', endTimeUnixNano: '1700000000110000000', status: { code: 2, message: 'boom' },
            attributes: [{ key: 'ok', value: { boolValue: true } }, { key: 'tags', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 2 }] } } }],
            events: [{ timeUnixNano: '1700000000020000000', name: 'exception', attributes: [{ key: 'exception.message', value: { stringValue: 'x' } }] }],
            links: [{ traceId: 'ffffffffffffffffffffffffffffffff', spanId: 'eeeeeeeeeeeeeeee' }],
          },
        ],
      }],
    }],
  };

  it('reads a trace in v2, v1 and OTLP shapes', () => {
    for (const body of [{ trace: otlp }, { batches: otlp.resourceSpans }, otlp]) {
      const t = parseTrace(body);
      expect(t.traceId).toBe('000102030405060708090a0b0c0d0e0f');
      expect(t.startMs).toBe(1700000000000);
      expect(t.durationMs).toBe(250);
      const [root, db] = t.spans;
      expect(root).toMatchObject({ spanId: '0001020304050607', parentId: '', kind: 'SERVER', service: 'api', start: 0, end: 250, error: false, scope: 'lib' });
      expect(db).toMatchObject({ parentId: '0001020304050607', kind: 'CLIENT', start: 10, end: 110, error: true, statusMessage: 'boom' });
      expect(db.attributes).toEqual([{ key: 'ok', value: 'true' }, { key: 'tags', value: '[a, 2]' }]);
      expect(db.resource).toContainEqual({ key: 'host.cpus', value: '4' });
      expect(db.events[0]).toMatchObject({ timeMs: 20, name: 'exception' });
      expect(db.links[0]).toMatchObject({ traceId: 'ffffffffffffffffffffffffffffffff', spanId: 'eeeeeeeeeeeeeeee' });
    }
    expect(parseTrace({}).spans).toEqual([]);
  });
});

describe('Prometheus', () => {
  it('reads matrix, vector and scalar', () => {
    const m = parsePromResult({ status: 'success', data: { resultType: 'matrix', result: [{ metric: { __name__: 'up', job: 'a' }, values: [[1700000000, '1'], [1700000015.5, 'NaN']] }] } });
    expect(m).toEqual([{ labels: { __name__: 'up', job: 'a' }, points: [[1700000000000, 1], [1700000015500, NaN]] }]);
    expect(parsePromVector({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 'b' }, value: [1, '+Inf'] }] } }))
      .toEqual([{ labels: { a: 'b' }, value: Infinity }]);
    expect(parsePromResult({ status: 'success', data: { resultType: 'scalar', result: [2, '3.5'] } })).toEqual([{ labels: {}, points: [[2000, 3.5]] }]);
  });

  it('throws the server message on error bodies', () => {
    expect(() => parsePromResult({ status: 'error', errorType: 'bad_data', error: '1:5: parse error: unexpected "}"' })).toThrow('1:5: parse error');
  });

  it('reads exemplars with their trace ids', () => {
    const e = parseExemplars({
      status: 'success',
      data: [{ seriesLabels: { __name__: 'x_bucket', service: 'api' }, exemplars: [
        { labels: { trace_id: 'EpTxMJ40fUus7aGY' }, value: '6', timestamp: 1600096945.479 },
        { labels: { traceID: '000102030405060708090a0b0c0d0e0f' }, value: '0.5', timestamp: 1600096955 },
        { labels: {}, value: '1', timestamp: 1 },
      ] }],
    });
    expect(e.map((x) => [x.value, x.timeMs, x.traceId])).toEqual([
      [6, 1600096945479, normId('EpTxMJ40fUus7aGY')], [0.5, 1600096955000, '000102030405060708090a0b0c0d0e0f'], [1, 1000, ''],
    ]);
  });
});

describe('Loki', () => {
  it('reads streams with categorised labels, newest first, with level and trace id', () => {
    const r = parseLoki({
      status: 'success',
      data: {
        resultType: 'streams', encodingFlags: ['categorize-labels'],
        result: [
          { stream: { service_name: 'api' }, values: [
            ['1700000000000000001', 'GET / 200 level=info', { structuredMetadata: { trace_id: '000102030405060708090a0b0c0d0e0f', span_id: '0001020304050607' } }],
            ['1700000000000000003', '{"msg":"fail"}', { structuredMetadata: { severity_text: 'ERROR' }, parsed: { msg: 'fail' } }],
          ] },
          { stream: { service_name: 'db', level: 'warn' }, values: [['1700000000000000002', 'slow query traceID=ABCDEF0123456789ABCDEF0123456789']] },
        ],
      },
    });
    if (r.kind !== 'streams') throw new Error('want streams');
    expect(r.lines.map((l) => [l.timeMs, l.level, l.traceId])).toEqual([
      [1700000000000, 'error', ''], [1700000000000, 'warn', 'abcdef0123456789abcdef0123456789'], [1700000000000, 'info', '000102030405060708090a0b0c0d0e0f'],
    ]);
    expect(r.lines[0].parsed).toEqual({ msg: 'fail' });
    expect(r.lines[2].spanId).toBe('0001020304050607');
  });

  it('reads metric queries as series', () => {
    const r = parseLoki({ status: 'success', data: { resultType: 'matrix', result: [{ metric: { level: 'info' }, values: [[1, '3']] }] } });
    expect(r).toEqual({ kind: 'matrix', series: [{ labels: { level: 'info' }, points: [[1000, 3]] }] });
  });

  it('builds a volume query and a fallback histogram', () => {
    expect(volumeQuery('{a="b"} |= "x"', 60)).toBe('sum by (detected_level, level) (count_over_time({a="b"} |= "x" [60s]))');
    expect(([{ detected_level: 'error' }, { level: 'WARNING' }, { detected_level: 'info', level: 'debug' }, {}, { level: 'critical' }] as Record<string, string>[]).map((l) => volumeLevel(l)))
      .toEqual(['error', 'warn', 'info', 'unknown', 'fatal']);
    expect(volumeQuery('rate({a="b"}[1m])', 60)).toBeNull();
    const lines = [0, 500, 1500, 5000].map((t) => ({ timeMs: t, level: t === 500 ? 'error' : 'info' })) as never;
    expect(histogram(lines, 0, 3000, 1000)).toEqual([
      { labels: { level: 'info' }, points: [[0, 1], [1000, 1], [2000, 0]] },
      { labels: { level: 'error' }, points: [[0, 1], [1000, 0], [2000, 0]] },
    ]);
  });
});

describe('log examples', () => {
  it('name a service that exists and quote it', () => {
    const ex = logExamples('check"out');
    expect(ex.some((e) => e.q.includes('{service_name="check\\"out"}'))).toBe(true);
    expect(ex[0].q).toBe('{service_name=~".+"}');
    expect(logExamples(undefined).every((e) => !e.q.includes('undefined'))).toBe(true);
  });
});

describe('errors', () => {
  it('finds the position in each API dialect', () => {
    expect(errorPosition('1:14: parse error: unexpected "}" in label matching')).toEqual({ line: 1, col: 14 });
    expect(errorPosition('parse error at line 1, col 9: syntax error: unexpected IDENTIFIER')).toEqual({ line: 1, col: 9 });
    expect(errorPosition('invalid TraceQL query: parse error at line 2, col 3: syntax error')).toEqual({ line: 2, col: 3 });
    expect(errorPosition('no such metric')).toBeNull();
  });
  it('takes the message from JSON or text bodies', () => {
    expect(errorMessage('{"status":"error","errorType":"bad_data","error":"bad step"}', 400)).toBe('bad step');
    expect(errorMessage('parse error at line 1, col 2\n', 400)).toBe('parse error at line 1, col 2');
    expect(errorMessage('', 502)).toBe('HTTP 502');
  });
});

describe('autocomplete context', () => {
  const at = (lang: 'promql' | 'logql' | 'traceql', s: string) => contextAt(lang, s.replace('|', ''), s.indexOf('|'));
  it('PromQL', () => {
    expect(at('promql', 'rate(http_re|')).toMatchObject({ kind: 'metric', prefix: 'http_re' });
    expect(at('promql', 'up{jo|')).toMatchObject({ kind: 'label', prefix: 'jo', metric: 'up' });
    expect(at('promql', 'up{job="a", in|')).toMatchObject({ kind: 'label', prefix: 'in' });
    expect(at('promql', 'up{job=~"ap|')).toMatchObject({ kind: 'value', label: 'job', prefix: 'ap', metric: 'up', quoted: true });
    expect(at('promql', 'sum by (ser|')).toMatchObject({ kind: 'label', prefix: 'ser' });
    expect(at('promql', 'rate(x[5|')).toEqual({ kind: 'none' });
    expect(at('promql', 'up{job="a" |')).toEqual({ kind: 'none' });
  });
  it('LogQL', () => {
    expect(at('logql', '{service_name="a", le|')).toMatchObject({ kind: 'label', prefix: 'le' });
    expect(at('logql', '{service_name="|')).toMatchObject({ kind: 'value', label: 'service_name', prefix: '' });
    expect(at('logql', '{a="b"} |= "{x|')).toEqual({ kind: 'none' });
  });
  it('TraceQL', () => {
    expect(at('traceql', '{ resource.serv|')).toMatchObject({ kind: 'label', prefix: 'resource.serv' });
    expect(at('traceql', '{ span.http.method = "GE|')).toMatchObject({ kind: 'value', label: 'span.http.method', prefix: 'GE', quoted: true });
    expect(at('traceql', '{ status = er|')).toMatchObject({ kind: 'value', label: 'status', prefix: 'er', quoted: false });
    expect(at('traceql', '{ name = "a" && dur|')).toMatchObject({ kind: 'label', prefix: 'dur' });
    expect(at('traceql', '{ name = "a" |')).toEqual({ kind: 'none' });
  });
});

describe('service graph', () => {
  it('joins rate, failures and latency per edge and lays out by call depth', () => {
    const v = (c: string, s: string, value: number) => ({ labels: { client: c, server: s }, value });
    const edges = buildEdges([v('web', 'api', 10), v('api', 'db', 20), v('user', 'web', 10)], [v('api', 'db', 2)], [v('api', 'db', 12.5)]);
    expect(edges.find((e) => e.server === 'db')).toEqual({ client: 'api', server: 'db', rate: 20, failed: 2, p95: 12.5 });
    const nodes = new Map(layout(edges).map((n) => [n.id, n]));
    expect([...['user', 'web', 'api', 'db'].map((id) => nodes.get(id)!.col)]).toEqual([0, 1, 2, 3]);
    expect(nodes.get('db')!.inFailed).toBe(2);
  });
  it('puts every edge label clear of every node: forward, skipping columns, back and to itself', () => {
    const v = (c: string, s: string) => ({ labels: { client: c, server: s }, value: 1 });
    // Fan-out, a call that skips a column, a long skip, a call back up the chain, and a self call.
    const graphs = [
      buildEdges([v('user', 'web'), v('web', 'api'), v('web', 'auth'), v('web', 'cache'), v('api', 'db'), v('web', 'db'),
        v('user', 'db'), v('db', 'web'), v('api', 'api'), v('auth', 'api'), v('api', 'queue'), v('queue', 'worker'), v('worker', 'api')], [], []),
      // The demo beside the browser test's services: three calls leave "user", one of them skips a column.
      buildEdges([v('user', 'frontend'), v('frontend', 'checkout'), v('checkout', 'payment'), v('checkout', 'postgres'), v('payment', 'postgres'),
        v('user', 't-frontend'), v('user', 't-api'), v('t-frontend', 't-api'), v('t-api', 'postgresql')], [], []),
    ];
    for (const edges of graphs) {
      const nodes = layout(edges);
      const byId = new Map(nodes.map((n) => [n.id, n]));
      // The widest label the page writes ("99.9k/s · 100.0%"), and its height over the baseline.
      const text = '99.9k/s · 100.0%', W = labelWidth(text), H = 12;
      const gs = edges.map((e) => ({ ...edgeGeometry(byId.get(e.client)!, byId.get(e.server)!), text, back: byId.get(e.server)!.x <= byId.get(e.client)!.x }));
      separateLabels(gs);
      const boxes = gs.map((g) => ({ x0: g.lx - W / 2, x1: g.lx + W / 2, y0: g.ly - H + 2, y1: g.ly + 2 }));
      edges.forEach((e, i) => {
        const box = boxes[i], g = gs[i];
        for (const n of nodes) {
          const hit = box.x0 < n.x + NODE_W && box.x1 > n.x && box.y0 < n.y + NODE_H && box.y1 > n.y;
          expect(hit, `label of ${e.client}→${e.server} at ${g.lx},${g.ly} over node ${n.id} at ${n.x},${n.y}`).toBe(false);
        }
        // Nor over another forward edge's label (edges that leave one node meet in the same gap).
        boxes.forEach((o, j) => {
          if (j === i || gs[i].back || gs[j].back) return;
          const hit = box.x0 < o.x1 && box.x1 > o.x0 && box.y0 < o.y1 && box.y1 > o.y0;
          expect(hit, `label of ${e.client}→${e.server} over that of ${edges[j].client}→${edges[j].server}`).toBe(false);
        });
      });
    }
  });
  it('lays out cycles without looping', () => {
    const v = (c: string, s: string) => ({ labels: { client: c, server: s }, value: 1 });
    const nodes = layout(buildEdges([v('a', 'b'), v('b', 'a'), v('b', 'b')], [], []));
    expect(nodes.map((n) => n.id).sort()).toEqual(['a', 'b']);
  });
});
