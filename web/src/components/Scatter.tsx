import type { TraceSummary } from '../parse';
import { currentRoute } from '../router';
import { scatterScale } from '../search';
import { fmtDuration, fmtTime } from '../time';
import { link } from '../url';

const W = 1000, H = 170, L = 64, B = 22, T = 8, R = 12;

/** A tick's time of day; with milliseconds when the plot spans under ten seconds, so that ticks differ. */
function clock(ms: number, spanMs: number): string {
  return fmtTime(ms).slice(11, spanMs < 10e3 ? 23 : 19);
}

/**
 * Jaeger's duration scatter plot of search results: x the trace's start, y its duration, errors in red; each dot
 * is a link to its trace (click or Enter).
 */
export function Scatter({ traces }: { traces: TraceSummary[] }) {
  const route = currentRoute();
  const s = scatterScale(traces, W - L - R, H - T - B);
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * s.yMax / 1.1);
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => s.t0 + f * (s.t1 - s.t0));
  // Errors last, so that they are drawn over the others.
  const dots = traces.slice().sort((a, b) => (a.errorCount ? 1 : 0) - (b.errorCount ? 1 : 0));
  return (
    <svg class="scatter" viewBox={`0 0 ${W} ${H}`} role="group" aria-label={`Durations of ${traces.length} traces over time`} data-y-max={s.yMax} data-t0={s.t0} data-t1={s.t1}>
      <g transform={`translate(${L},${T})`}>
        {yTicks.map((v) => (
          <g class="tick">
            <line x1={0} x2={W - L - R} y1={s.y(v)} y2={s.y(v)} />
            <text x={-6} y={s.y(v) + 4} text-anchor="end">{fmtDuration(v)}</text>
          </g>
        ))}
        {xTicks.map((t, i) => <text class="tick" x={s.x(t)} y={H - T - B + 16} text-anchor={i === 0 ? 'start' : i === xTicks.length - 1 ? 'end' : 'middle'}>{clock(t, s.t1 - s.t0)}</text>)}
        {dots.map((t) => (
          <a class={'dot' + (t.errorCount ? ' err' : '')} href={link('trace', t.traceID, {}, route)} data-trace-id={t.traceID} data-duration={t.durationMs} data-start={t.startMs}
            aria-label={`${t.rootServiceName}: ${t.rootTraceName}, ${fmtDuration(t.durationMs)}${t.errorCount ? `, ${t.errorCount} errors` : ''}`}>
            <circle cx={s.x(t.startMs)} cy={s.y(t.durationMs)} r={t.errorCount ? 5 : 4} />
            <title>{`${t.rootServiceName}: ${t.rootTraceName}\n${fmtDuration(t.durationMs)} at ${fmtTime(t.startMs)}${t.spanCount != null ? `\n${t.spanCount} spans` : ''}${t.errorCount ? `, ${t.errorCount} errors` : ''}`}</title>
          </a>
        ))}
      </g>
    </svg>
  );
}
