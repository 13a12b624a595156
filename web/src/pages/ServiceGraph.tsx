import { prom } from '../api';
import { Empty, ErrorBox, Loading, range, useAsync } from '../components/common';
import { Spark } from '../components/Spark';
import { buildEdges, edgeGeometry, layout, NODE_H, NODE_W, separateLabels, type Edge } from '../graph';
import { alignedRange, rateWindow } from '../figures';
import { parsePromResult, parsePromVector, type Series } from '../parse';
import { navigate } from '../router';
import { autoStep, fmtDuration, fmtPct, fmtRate, fmtTime } from '../time';
import { link, type Route } from '../url';

export function graphQueries(w: string) {
  return {
    total: `sum by (client, server) (rate(traces_service_graph_request_total[${w}]))`,
    failed: `sum by (client, server) (rate(traces_service_graph_request_failed_total[${w}]))`,
    p95: `histogram_quantile(0.95, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket[${w}])))`,
  };
}

interface GraphData { edges: Edge[]; trend: Map<string, Series>; time: number; start: number; step: number; window: number; query: string }

const edgeKey = (client: string, server: string) => `${client}\u0000${server}`;

export function ServiceGraph({ route, tick }: { route: Route; tick: number }) {
  const p = route.params;
  const res = useAsync<GraphData>(`${p.from}|${p.to}`, async (signal) => {
    const r = range(p);
    // The figures are the rates at the end of the range over a short window (as a Prometheus graph's last point
    // would show them), not averages over the whole range, which hide what is happening now.
    // The instant is the end of the range; the trend's last point is evaluated there too.
    const step = autoStep(r.start, r.end, 60);
    const { start, end } = alignedRange(r.start, r.end, step);
    const w = rateWindow(step);
    const q = graphQueries(`${w}s`);
    const [t, f, l] = await Promise.all([q.total, q.failed, q.p95].map((query) => prom('/api/v1/query', { query, time: end }, signal)));
    const trendSeries = await prom('/api/v1/query_range', { query: q.total, start, end, step }, signal).then(parsePromResult, (e: Error) => {
      if (e.name === 'AbortError') throw e;
      return [] as Series[];
    });
    const trendBy = new Map(trendSeries.map((s) => [edgeKey(s.labels.client || 'user', s.labels.server || '?'), s]));
    return {
      edges: buildEdges(parsePromVector(t), parsePromVector(f), parsePromVector(l).map((v) => ({ ...v, value: v.value * 1000 }))),
      trend: trendBy, time: end, start, step, window: w, query: q.total,
    };
  }, tick);
  const edges = res.data?.edges ?? [];
  const nodes = layout(edges);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const geoms = edges.map((e) => {
    const a = byId.get(e.client)!, b = byId.get(e.server)!;
    return { ...edgeGeometry(a, b), text: `${fmtRate(e.rate)}/s · ${fmtPct(e.rate > 0 ? e.failed / e.rate : 0)}`, back: b.x <= a.x };
  });
  separateLabels(geoms);
  const width = Math.max(400, ...nodes.map((n) => n.x + NODE_W + 40));
  const height = Math.max(200, ...nodes.map((n) => n.y + NODE_H + 40), ...geoms.map((g) => g.ly + 10));
  const open = (svc: string) => navigate(link('service', svc, {}, route));

  return (
    <section class="page" aria-labelledby="h-graph">
      <h1 id="h-graph">Service graph</h1>
      <p class="muted">Requests between services at the end of the selected range{res.data ? ` (${fmtTime(res.data.time * 1000)}, rates over the last ${res.data.window}s)` : ''}: rate per second, error ratio, p95 server latency; the trend column shows the rate across the range. Select a service for its RED view.</p>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && !edges.length && <Empty>No service graph metrics in this range. They come from the span-metrics generator (<code>traces_service_graph_request_total</code>); send traces that cross services.</Empty>}
      {edges.length > 0 && (
        <>
          <div class="graph-wrap">
            <svg class="graph" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Service graph">
              <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead" /></marker></defs>
              {edges.map((e, i) => {
                const g = geoms[i];
                const err = e.rate > 0 ? e.failed / e.rate : 0;
                return (
                  <g class={'edge' + (err > 0.05 ? ' bad' : err > 0 ? ' warn' : '')} data-client={e.client} data-server={e.server}>
                    <path d={g.d} marker-end="url(#arrow)" />
                    <text x={g.lx} y={g.ly} text-anchor="middle">{g.text}</text>
                  </g>
                );
              })}
              {nodes.map((n) => {
                const err = n.inRate > 0 ? n.inFailed / n.inRate : 0;
                return (
                  <g class={'node' + (err > 0.05 ? ' bad' : err > 0 ? ' warn' : '')} transform={`translate(${n.x},${n.y})`} tabIndex={0} role="link" aria-label={`service ${n.id}`} data-service={n.id}
                    onClick={() => open(n.id)} onKeyDown={(e) => { if (e.key === 'Enter') open(n.id); }}>
                    <rect width={NODE_W} height={NODE_H} rx="8" />
                    <text x={NODE_W / 2} y="19" text-anchor="middle" class="node-name">{n.id.length > 20 ? n.id.slice(0, 19) + '…' : n.id}</text>
                    <text x={NODE_W / 2} y="37" text-anchor="middle" class="node-stats">{n.inRate ? `${fmtRate(n.inRate)}/s · ${fmtPct(err)} err` : 'caller'}</text>
                  </g>
                );
              })}
            </svg>
          </div>
          <table class="grid edges" data-query={res.data!.query} data-time={res.data!.time} data-start={res.data!.start} data-step={res.data!.step}>
            <thead><tr><th>Client</th><th>Server</th><th class="num">Rate</th><th>Trend</th><th class="num">Error rate</th><th class="num">p95 latency</th></tr></thead>
            <tbody>{edges.map((e) => (
              <tr data-client={e.client} data-server={e.server} data-rate={e.rate}>
                <td><a href={link('service', e.client, {}, route)}>{e.client}</a></td>
                <td><a href={link('service', e.server, {}, route)}>{e.server}</a></td>
                <td class="num rate">{fmtRate(e.rate)}/s</td>
                <td><Spark s={res.data!.trend.get(edgeKey(e.client, e.server))} /></td>
                <td class={'num' + (e.failed ? ' err' : '')}>{fmtPct(e.rate ? e.failed / e.rate : 0)}</td>
                <td class="num">{fmtDuration(e.p95)}</td>
              </tr>
            ))}</tbody>
          </table>
        </>
      )}
    </section>
  );
}
