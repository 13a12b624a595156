import { describe, expect, it } from 'vitest';
import { alignedRange, isErrorExemplar, maxPoints, rateWindow, thinExemplars, trend, valueAt } from '../src/figures';
import type { Exemplar } from '../src/parse';

const ex = (timeMs: number, value: number, status = 'STATUS_CODE_UNSET', traceId = `${timeMs}-${value}`): Exemplar =>
  ({ seriesLabels: { status_code: status }, labels: { trace_id: traceId }, value, timeMs, traceId });

describe('rate windows and ranges', () => {
  it.each([
    [1, 60], [15, 60], [30, 60], [60, 75], [120, 135], [300, 315],
  ])('step %ss → window %ss', (step, w) => expect(rateWindow(step)).toBe(w));

  it('aligns the range so that the last point is at the end', () => {
    // The end stays (the newest data counts); the start moves back to a whole number of steps before it.
    expect(alignedRange(1_000_001_000, 1_003_599_000, 30)).toEqual({ start: 999_999, end: 1_003_599 });
    expect(alignedRange(1_000_000_000, 1_003_600_000, 30)).toEqual({ start: 1_000_000, end: 1_003_600 });
    expect(alignedRange(1_000_001_500, 1_000_002_000, 60)).toEqual({ start: 999_942, end: 1_000_002 });
    expect(alignedRange(5_000, 5_000, 60)).toEqual({ start: 5, end: 5 });
  });

  it('reads the value at a time, and the trend', () => {
    const s = { labels: {}, points: [[1000, 1], [2000, 2], [3000, 4]] as [number, number][] };
    expect(valueAt(s, 3)).toBe(4);
    expect(valueAt(s, 2)).toBe(2);
    expect(valueAt(s, 4)).toBeNaN();
    expect(valueAt(undefined, 3)).toBeNaN();
    expect(trend(s)).toEqual({ first: 1, last: 4, ratio: 4 });
    expect(trend({ labels: {}, points: [[1, 0], [2, 3]] }).ratio).toBeNaN();
    expect(maxPoints([])).toBe(0);
    expect(maxPoints([s, { labels: {}, points: [[1, NaN], [2, 5]] }])).toBe(3);
    expect(maxPoints([{ labels: {}, points: [[1, NaN], [2, 5]] }])).toBe(1);
  });
});

describe('exemplars', () => {
  it('keeps them all when there are few, in time order', () => {
    const r = thinExemplars([ex(3, 1), ex(1, 2), ex(2, NaN)], 10);
    expect(r.total).toBe(2);
    expect(r.shown.map((e) => e.timeMs)).toEqual([1, 3]);
  });

  it('tells errors apart', () => {
    expect(isErrorExemplar(ex(1, 1, 'STATUS_CODE_ERROR'))).toBe(true);
    expect(isErrorExemplar(ex(1, 1, 'STATUS_CODE_OK'))).toBe(false);
    expect(isErrorExemplar({ ...ex(1, 1), seriesLabels: {}, labels: { status: '503' } })).toBe(true);
  });

  // The review's case: ~1,100 exemplars in series order, the 63 slow ones last; the first 500 were all fast.
  it('keeps the slow and the failed ones among a thousand fast ones, spread over time', () => {
    const all: Exemplar[] = [];
    for (let i = 0; i < 1040; i++) all.push(ex(i * 1000, 0.002 + (i % 7) * 0.001));
    for (let i = 0; i < 63; i++) all.push(ex(i * 16_000 + 500, 0.5 + i * 0.02));
    all.push(ex(500_500, 0.003, 'STATUS_CODE_ERROR', 'the-error'));
    const r = thinExemplars(all, 300);
    expect(r.total).toBe(1104);
    expect(r.shown.length).toBeLessThanOrEqual(300);
    const slow = r.shown.filter((e) => e.value >= 0.5);
    // Every slow exemplar falls in a cell of its own or with a few others: most of them survive, the slowest always.
    expect(slow.length).toBeGreaterThanOrEqual(40);
    expect(r.shown.some((e) => e.value === 0.5 + 62 * 0.02)).toBe(true);
    expect(r.shown.some((e) => e.traceId === 'the-error')).toBe(true);
    // Spread over time: every tenth of the range keeps some.
    for (let k = 0; k < 10; k++) {
      expect(r.shown.some((e) => e.timeMs >= k * 104_000 && e.timeMs < (k + 1) * 104_000)).toBe(true);
    }
    // Sorted by time for drawing.
    expect(r.shown.map((e) => e.timeMs)).toEqual(r.shown.map((e) => e.timeMs).slice().sort((a, b) => a - b));
  });

  it('never goes over the limit, even with more errors than room', () => {
    const all = Array.from({ length: 500 }, (_, i) => ex(i, i, 'STATUS_CODE_ERROR'));
    const r = thinExemplars(all, 50, { keepSlowest: 10 });
    expect(r.shown.length).toBe(50);
    expect(r.total).toBe(500);
  });

  // Many failed requests (a bad minute) must not push the slowest successful ones out.
  it('keeps the slowest when errors outnumber the room', () => {
    const all = Array.from({ length: 2000 }, (_, i) => ex(i * 10, 0.01 + (i % 5) * 0.001, i % 4 ? 'STATUS_CODE_UNSET' : 'STATUS_CODE_ERROR'));
    all.push(ex(12_345, 1.7, 'STATUS_CODE_OK', 'slowest'));
    const r = thinExemplars(all, 200);
    expect(r.shown.length).toBeLessThanOrEqual(200);
    expect(r.shown.some((e) => e.traceId === 'slowest')).toBe(true);
    const errs = r.shown.filter(isErrorExemplar).length;
    expect(errs).toBeGreaterThan(0);
    expect(errs).toBeLessThanOrEqual(100);
  });

  it('keeps the exemplars of a pinned trace first', () => {
    const all = Array.from({ length: 1000 }, (_, i) => ex(i, 0.01 + (i % 3) * 0.001));
    all[500] = ex(500, 0.011, 'STATUS_CODE_UNSET', 'pinned-trace');
    expect(thinExemplars(all, 20).shown.some((e) => e.traceId === 'pinned-trace')).toBe(false);
    expect(thinExemplars(all, 20, { pin: 'pinned-trace' }).shown.some((e) => e.traceId === 'pinned-trace')).toBe(true);
  });
});
