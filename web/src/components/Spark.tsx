import { trend } from '../figures';
import type { Series } from '../parse';
import { fmtRate } from '../time';

/** A small line of a rate over the range, with an arrow for its direction: the trend behind the figure at its end. */
export function Spark({ s, unit = '/s' }: { s?: Series; unit?: string }) {
  const pts = (s?.points ?? []).filter((p) => Number.isFinite(p[1]));
  if (pts.length < 2) return <span class="muted">–</span>;
  const W = 90, H = 20;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const hi = Math.max(...pts.map((p) => p[1])) || 1;
  const line = pts.map(([t, v]) => `${(((t - t0) / (t1 - t0 || 1)) * W).toFixed(1)},${(H - 1 - (v / hi) * (H - 2)).toFixed(1)}`).join(' ');
  const tr = trend(s);
  const dir = !Number.isFinite(tr.ratio) ? '' : tr.ratio > 1.1 ? '↑' : tr.ratio < 0.9 ? '↓' : '→';
  return (
    <span class="trend" title={`from ${fmtRate(tr.first)}${unit} to ${fmtRate(tr.last)}${unit} over the range`} data-points={JSON.stringify(pts)} data-dir={dir}>
      <svg class="spark" width={W} height={H} viewBox={`0 0 ${W} ${H}`} aria-hidden="true"><polyline points={line} /></svg> {dir}
    </span>
  );
}
