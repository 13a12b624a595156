import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { isErrorExemplar, maxPoints } from '../figures';
import type { Exemplar, Series } from '../parse';
import { seriesName } from '../parse';

export const PALETTE = ['#3b82f6', '#22c55e', '#f59e0b', '#ef4444', '#a855f7', '#14b8a6', '#ec4899', '#84cc16', '#f97316', '#6366f1'];

interface Props {
  series: Series[];
  exemplars?: Exemplar[];
  onExemplar?: (e: Exemplar) => void;
  bars?: boolean;
  height?: number;
  names?: string[];
  colors?: string[];
  stacked?: boolean;
  /** Exemplars of this trace are marked (the trace a span link came from). */
  pinTrace?: string;
  /** The query's time range in seconds: the x axis always shows it, even with no or one point. */
  xRange?: [number, number];
}

/** Aligns series on one sorted time axis (uPlot's data model); missing points are null. Times in seconds. */
export function align(series: Series[]): (number | null)[][] {
  const ts = new Set<number>();
  for (const s of series) for (const p of s.points) ts.add(p[0]);
  const xs = [...ts].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const out: (number | null)[][] = [xs.map((x) => x / 1000)];
  for (const s of series) {
    const ys: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) ys[idx.get(t)!] = Number.isFinite(v) ? v : null;
    out.push(ys);
  }
  return out;
}

function cssVar(name: string): string { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

/**
 * A time-series chart (uPlot). Exemplars are buttons laid over the plot, so they can be focused and clicked; pass
 * them thinned (figures.thinExemplars). With no point the chart says so instead of drawing an empty frame; a
 * single point is drawn as a dot. The series drawn are kept on the element (`sproutSeries`) for the browser test.
 */
export function Chart({ series, exemplars, onExemplar, bars, height = 260, names, colors, xRange, pinTrace }: Props) {
  const n = maxPoints(series);
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const exRef = useRef({ exemplars, onExemplar });
  exRef.current = { exemplars, onExemplar };

  useEffect(() => {
    const host = el.current!;
    const data = align(series);
    const fg = cssVar('--fg') || '#ccc', grid = cssVar('--grid') || '#333';
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const barsPath = uPlot.paths.bars!({ size: [0.8, 40], align: 1 });
    const placeExemplars = (u: uPlot) => {
      // Under the canvas, so the series is drawn over its exemplars rather than hidden by them; clicks on the
      // plot (which uPlot's cursor layer takes) are handed to the exemplar under the pointer.
      let layer = u.under.querySelector<HTMLDivElement>('.ex-layer');
      if (!layer) {
        layer = document.createElement('div'); layer.className = 'ex-layer'; u.under.appendChild(layer);
        u.over.addEventListener('click', (ev) => {
          const hit = document.elementsFromPoint(ev.clientX, ev.clientY).find((el) => el.classList.contains('exemplar'));
          (hit as HTMLButtonElement | undefined)?.click();
        });
        u.over.addEventListener('mousemove', (ev) => {
          const hit = document.elementsFromPoint(ev.clientX, ev.clientY).find((el) => el.classList.contains('exemplar'));
          u.over.style.cursor = hit ? 'pointer' : '';
          u.over.title = hit ? (hit as HTMLElement).title : '';
        });
      }
      layer.textContent = '';
      const { exemplars: ex, onExemplar: click } = exRef.current;
      if (!ex) return;
      const [x0, x1] = [u.scales.x.min ?? 0, u.scales.x.max ?? 0];
      for (const e of ex) {
        const t = e.timeMs / 1000;
        if (t < x0 || t > x1 || !Number.isFinite(e.value)) continue;
        const b = document.createElement('button');
        b.className = 'exemplar' + (isErrorExemplar(e) ? ' err' : '') + (pinTrace && e.traceId === pinTrace ? ' pinned' : '');
        b.style.left = `${u.valToPos(t, 'x')}px`;
        b.style.top = `${u.valToPos(e.value, 'y')}px`;
        b.title = `Exemplar ${e.value} at ${new Date(e.timeMs).toISOString()}${e.traceId ? `\ntrace ${e.traceId}` : ''}`;
        b.setAttribute('aria-label', `exemplar trace ${e.traceId || 'none'}`);
        b.dataset.traceId = e.traceId;
        b.onclick = () => click?.(e);
        layer.appendChild(b);
      }
    };
    // Exemplars share the y scale: widen it so that they are visible even above the series.
    const exVals = (exemplars ?? []).map((e) => e.value).filter(Number.isFinite);
    // And the time scale: an exemplar can fall between the query's first step and the series' first point.
    const exTimes = (exemplars ?? []).map((e) => e.timeMs / 1000).filter(Number.isFinite);
    const opts: uPlot.Options = {
      width: host.clientWidth || 800,
      height,
      legend: { show: series.length <= 12 },
      cursor: { drag: { x: true, y: false } },
      scales: {
        // The query's range when known: with no data uPlot would otherwise invent one (years away from now).
        x: { time: true, range: (_u, min, max) => xRange ? [Math.min(xRange[0], ...exTimes), Math.max(xRange[1], ...exTimes)]
          : [Math.min(min ?? Infinity, ...exTimes), Math.max(max ?? -Infinity, ...exTimes)] },
        y: { range: (_u, min, max) => {
          const lo = Math.min(min ?? 0, ...exVals, bars ? 0 : Infinity), hi = Math.max(max ?? 1, ...exVals);
          const pad = (hi - lo) * 0.05 || 1;
          return [bars ? lo : lo - pad, hi + pad];
        } },
      },
      axes: [axis, { ...axis, size: 60 }],
      series: [{}, ...series.map((s, i) => ({
        label: names?.[i] ?? seriesName(s.labels),
        stroke: colors?.[i] ?? PALETTE[i % PALETTE.length],
        fill: bars ? (colors?.[i] ?? PALETTE[i % PALETTE.length]) + 'aa' : undefined,
        width: bars ? 0 : 1.5,
        paths: bars ? barsPath : undefined,
        // A lone sample has no line to draw: show it as a dot.
        points: n === 1 && !bars ? { show: true, size: 7 } : { show: false },
        spanGaps: false,
      }))],
      hooks: {
        draw: [placeExemplars],
        // The drawn x range, for the browser test (a chart must never show another time than the query's).
        setScale: [(u: uPlot, key: string) => { if (key === 'x') { host.dataset.xMin = String(u.scales.x.min); host.dataset.xMax = String(u.scales.x.max); } }],
      },
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, host);
    plot.current = u;
    (host as HTMLDivElement & { sproutSeries?: Series[] }).sproutSeries = series;
    const ro = new ResizeObserver(() => { if (host.clientWidth) u.setSize({ width: host.clientWidth, height }); });
    ro.observe(host);
    return () => { ro.disconnect(); u.destroy(); plot.current = null; };
  }, [series, exemplars, bars, height, xRange?.[0], xRange?.[1], pinTrace]);

  return (
    <div class="chart-box">
      <div class="chart" ref={el} data-points={n} />
      {n === 0 && <div class="chart-note" role="status">No data in this range</div>}
      {n === 1 && !bars && <div class="chart-note small" role="status">Only one sample in this range</div>}
    </div>
  );
}
