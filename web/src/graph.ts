// Service graph assembly and layout from the generator's metrics: edges (client → server) with rate, error
// rate and latency; nodes placed in columns by their distance from the callers that nobody calls.

export interface Edge { client: string; server: string; rate: number; failed: number; p95: number }
export interface GNode { id: string; x: number; y: number; col: number; inRate: number; inFailed: number; outRate: number }

type Vec = { labels: Record<string, string>; value: number }[];

export function buildEdges(total: Vec, failed: Vec, p95: Vec): Edge[] {
  const key = (l: Record<string, string>) => `${l.client ?? ''}\u0000${l.server ?? ''}`;
  const m = new Map<string, Edge>();
  for (const v of total) {
    if (!v.labels.client && !v.labels.server) continue;
    m.set(key(v.labels), { client: v.labels.client || 'user', server: v.labels.server || '?', rate: v.value, failed: 0, p95: NaN });
  }
  for (const v of failed) { const e = m.get(key(v.labels)); if (e) e.failed = v.value; }
  for (const v of p95) { const e = m.get(key(v.labels)); if (e) e.p95 = v.value; }
  return [...m.values()].sort((a, b) => a.client.localeCompare(b.client) || a.server.localeCompare(b.server));
}

export const COL_W = 290, ROW_H = 90, NODE_W = 150, NODE_H = 48;

/** Longest-path layering from the roots (breaking cycles), then rows in order of first appearance. */
export function layout(edges: Edge[]): GNode[] {
  const nodes = new Map<string, GNode>();
  const get = (id: string) => {
    let n = nodes.get(id);
    if (!n) { n = { id, x: 0, y: 0, col: 0, inRate: 0, inFailed: 0, outRate: 0 }; nodes.set(id, n); }
    return n;
  };
  for (const e of edges) {
    get(e.client).outRate += e.rate;
    const s = get(e.server);
    s.inRate += e.rate; s.inFailed += e.failed;
  }
  const out = new Map<string, string[]>();
  const indeg = new Map<string, number>();
  for (const n of nodes.keys()) { out.set(n, []); indeg.set(n, 0); }
  for (const e of edges) {
    if (e.client === e.server) continue;
    out.get(e.client)!.push(e.server);
    indeg.set(e.server, indeg.get(e.server)! + 1);
  }
  // Kahn's algorithm; nodes left in cycles are released one at a time (lowest in-degree first).
  const done = new Set<string>();
  let queue = [...nodes.keys()].filter((n) => indeg.get(n) === 0).sort();
  while (done.size < nodes.size) {
    if (!queue.length) {
      const rest = [...nodes.keys()].filter((n) => !done.has(n)).sort((a, b) => indeg.get(a)! - indeg.get(b)! || a.localeCompare(b));
      queue = [rest[0]];
    }
    const next: string[] = [];
    for (const n of queue) {
      if (done.has(n)) continue;
      done.add(n);
      for (const m of out.get(n)!) {
        if (done.has(m)) continue;
        get(m).col = Math.max(get(m).col, get(n).col + 1);
        indeg.set(m, indeg.get(m)! - 1);
        if (indeg.get(m) === 0) next.push(m);
      }
    }
    queue = next.sort();
  }
  const rows = new Map<number, number>();
  for (const n of [...nodes.values()].sort((a, b) => a.col - b.col || a.id.localeCompare(b.id))) {
    const r = rows.get(n.col) ?? 0;
    rows.set(n.col, r + 1);
    n.x = 20 + n.col * COL_W;
    n.y = 20 + r * ROW_H;
  }
  return [...nodes.values()];
}

/** Where an edge is drawn: its path, and the anchor of its label (text-anchor middle, y the baseline). */
export interface EdgeGeometry { d: string; lx: number; ly: number }

/**
 * The path of an edge from a to b, and a place for its label that is clear of every node: nodes sit in columns
 * (COL_W apart, NODE_W wide) and rows (ROW_H apart, NODE_H high), so a label centred in the gap between two
 * columns, or in the gap under a row, cannot run into one. A forward edge is a curve from a's right side to b's
 * left; its label sits on the curve in the gap nearest its middle. An edge back (or to itself) loops under the
 * nodes; its label sits in the gap under the lower of the two rows.
 */
export function edgeGeometry(a: Pick<GNode, 'x' | 'y'>, b: Pick<GNode, 'x' | 'y'>): EdgeGeometry {
  const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
  if (x2 <= x1) {
    const ax = a.x + NODE_W / 2, bx = b.x + NODE_W / 2, low = Math.max(a.y, b.y) + NODE_H;
    const dip = low + (ROW_H - NODE_H) / 2;
    return {
      d: `M${ax},${a.y + NODE_H} C${ax},${dip + 14} ${bx},${dip + 14} ${bx},${b.y + NODE_H}`,
      lx: (ax + bx) / 2, ly: low + (ROW_H - NODE_H) / 2 + 4,
    };
  }
  const mx = (x1 + x2) / 2;
  const d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
  // The gap (between columns) nearest the middle of the edge, and the curve's height there.
  const gaps = Math.max(1, Math.round((x2 - x1 + NODE_W) / COL_W));
  const lx = x1 + Math.floor((gaps - 1) / 2) * COL_W + (COL_W - NODE_W) / 2;
  let lo = 0, hi = 1;
  const bx = (t: number) => (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * mx + 3 * (1 - t) * t * t * mx + t ** 3 * x2;
  for (let i = 0; i < 30; i++) { const m = (lo + hi) / 2; if (bx(m) < lx) lo = m; else hi = m; }
  const t = (lo + hi) / 2;
  const y = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t * t * y2 + t ** 3 * y2;
  return { d, lx, ly: y - 6 };
}

/** How wide a label of the graph is drawn (11px system font), for placing labels apart before they are drawn. */
export const labelWidth = (text: string) => Math.ceil(text.length * 6.5);
const LABEL_H = 13;

/**
 * Moves labels of forward edges down, within their gap between two columns, until no two labels overlap (edges
 * that leave or enter one node meet there). A gap between columns has no node at any height, so a label moved
 * down it stays clear of the nodes. Labels of calls back (under a row) stay where they are.
 */
export function separateLabels(gs: (EdgeGeometry & { text: string; back: boolean })[]): void {
  const placed: { x0: number; x1: number; y0: number; y1: number }[] = [];
  const box = (g: EdgeGeometry & { text: string }) => ({ x0: g.lx - labelWidth(g.text) / 2, x1: g.lx + labelWidth(g.text) / 2, y0: g.ly - LABEL_H + 3, y1: g.ly + 3 });
  const order = gs.map((_, i) => i).sort((a, b) => Number(gs[a].back) - Number(gs[b].back) || gs[a].lx - gs[b].lx || gs[a].ly - gs[b].ly);
  for (const i of order) {
    const g = gs[i];
    for (let n = 0; n < 50 && !g.back; n++) {
      const b = box(g);
      if (!placed.some((p) => b.x0 < p.x1 && b.x1 > p.x0 && b.y0 < p.y1 && b.y1 > p.y0)) break;
      g.ly += LABEL_H;
    }
    placed.push(box(g));
  }
}
