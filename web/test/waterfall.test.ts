import { describe, expect, it } from 'vitest';
import type { Span } from '../src/parse';
import { buildTree, criticalPath, selfTime, visibleRows } from '../src/waterfall';

function span(id: string, parent: string, start: number, end: number, extra: Partial<Span> = {}): Span {
  return {
    traceId: 't', spanId: id, parentId: parent, name: id, service: 'svc', kind: 'INTERNAL', start, end, startNs: 0n,
    statusCode: 'UNSET', statusMessage: '', error: false, attributes: [], resource: [], scope: '', events: [], links: [], ...extra,
  };
}

const ids = (rows: { span: Span }[]) => rows.map((r) => r.span.spanId);

describe('buildTree', () => {
  it('orders depth-first by start time with depths', () => {
    const t = buildTree([span('c', 'a', 5, 9), span('a', '', 0, 10), span('b', 'a', 1, 4), span('d', 'b', 2, 3)]);
    const rows = visibleRows(t, new Set());
    expect(ids(rows)).toEqual(['a', 'b', 'd', 'c']);
    expect(rows.map((r) => r.depth)).toEqual([0, 1, 2, 1]);
    expect(t.byId.get('a')!.descendants).toBe(3);
  });

  it('makes spans with an absent parent orphan roots', () => {
    const t = buildTree([span('a', '', 0, 10), span('x', 'missing', 3, 4), span('y', 'x', 3.5, 3.8)]);
    expect(ids(t.roots)).toEqual(['a', 'x']);
    expect(t.byId.get('x')!.orphan).toBe(true);
    expect(t.byId.get('y')!.depth).toBe(1);
  });

  it('breaks parent cycles so every span is shown once', () => {
    const t = buildTree([span('a', 'b', 0, 10), span('b', 'a', 1, 5), span('s', 's', 0, 1)]);
    const rows = visibleRows(t, new Set());
    expect(ids(rows).sort()).toEqual(['a', 'b', 's']);
    expect(t.byId.get('s')!.orphan).toBe(true);
  });

  it('keeps the first of duplicate span ids', () => {
    const t = buildTree([span('a', '', 0, 10), span('a', '', 0, 20)]);
    expect(visibleRows(t, new Set()).length).toBe(1);
  });

  it('hides the subtree of collapsed spans', () => {
    const t = buildTree([span('a', '', 0, 10), span('b', 'a', 1, 4), span('d', 'b', 2, 3), span('c', 'a', 5, 9)]);
    expect(ids(visibleRows(t, new Set(['b'])))).toEqual(['a', 'b', 'c']);
    expect(ids(visibleRows(t, new Set(['a'])))).toEqual(['a']);
  });

  it('handles a 10k-deep chain without recursion', () => {
    const spans = [span("s0", "", 0, 20000)];
    for (let i = 1; i < 10000; i++) spans.push(span(`s${i}`, `s${i - 1}`, i, 20000 - i));
    const t = buildTree(spans);
    expect(t.byId.get('s9999')!.depth).toBe(9999);
    expect(visibleRows(t, new Set()).length).toBe(10000);
    expect(criticalPath(t).size).toBe(10000);
  });
});

describe('criticalPath', () => {
  it('follows the last-finishing child and the parent gaps', () => {
    // a: 0..100; b: 10..40; c: 30..90 (overlaps b); d (child of c): 50..80
    const t = buildTree([span('a', '', 0, 100), span('b', 'a', 10, 40), span('c', 'a', 30, 90), span('d', 'c', 50, 80)]);
    const cp = criticalPath(t);
    expect(cp.get('a')).toEqual([{ start: 0, end: 10 }, { start: 90, end: 100 }]);
    expect(cp.get('c')).toEqual([{ start: 30, end: 50 }, { start: 80, end: 90 }]);
    expect(cp.get('d')).toEqual([{ start: 50, end: 80 }]);
    // b ran until 40 but c started at 30: only b's part before c started is on the path.
    expect(cp.get('b')).toEqual([{ start: 10, end: 30 }]);
    const total = [...cp.values()].flat().reduce((s, g) => s + g.end - g.start, 0);
    expect(total).toBe(100);
  });

  it('skips children that ran entirely in parallel with later work', () => {
    const t = buildTree([span('a', '', 0, 100), span('slow', 'a', 10, 90), span('fast', 'a', 20, 30)]);
    const cp = criticalPath(t);
    expect(cp.has('fast')).toBe(false);
    expect(cp.get('slow')).toEqual([{ start: 10, end: 90 }]);
  });

  it('clips children that outlive their parent', () => {
    const t = buildTree([span('a', '', 0, 50), span('b', 'a', 10, 80)]);
    const cp = criticalPath(t);
    expect(cp.get('b')).toEqual([{ start: 10, end: 50 }]);
    expect(cp.get('a')).toEqual([{ start: 0, end: 10 }]);
  });

  it('is empty for an empty trace', () => {
    expect(criticalPath(buildTree([])).size).toBe(0);
  });
});

describe('selfTime', () => {
  it('subtracts the union of child intervals', () => {
    const t = buildTree([span('a', '', 0, 100), span('b', 'a', 10, 40), span('c', 'a', 30, 60), span('d', 'a', 90, 120)]);
    expect(selfTime(t.byId.get('a')!)).toBe(100 - 50 - 10);
  });
});
