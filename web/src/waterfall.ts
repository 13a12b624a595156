// The waterfall's layout: a span tree built from parent ids (orphans become roots), flattened depth-first in
// start order, and the trace's critical path. Pure functions over Span, so they are tested without a browser.
import type { Span } from './parse';

export interface Node {
  span: Span;
  depth: number;
  children: Node[];
  /** The parent id names a span that is not in the trace (not yet received, or dropped). */
  orphan: boolean;
  /** Spans in this node's subtree, itself excluded. */
  descendants: number;
}

export interface Tree { roots: Node[]; byId: Map<string, Node> }

const byStart = (a: Node, b: Node) => a.span.start - b.span.start || a.span.end - b.span.end;

/** Builds the span tree. A span whose parent is absent, or which would close a cycle, becomes a root. */
export function buildTree(spans: Span[]): Tree {
  const byId = new Map<string, Node>();
  for (const s of spans) {
    if (!byId.has(s.spanId)) byId.set(s.spanId, { span: s, depth: 0, children: [], orphan: false, descendants: 0 });
  }
  const roots: Node[] = [];
  for (const n of byId.values()) {
    const pid = n.span.parentId;
    const parent = pid ? byId.get(pid) : undefined;
    if (!pid) roots.push(n);
    else if (!parent || parent === n) { n.orphan = true; roots.push(n); }
    else parent.children.push(n);
  }
  // Cycles (a→b→a) are not reachable from any root: break them so that every span is shown.
  const seen = new Set<Node>();
  const visit = (start: Node[]) => {
    const stack = [...start];
    while (stack.length) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      for (const c of n.children) stack.push(c);
    }
  };
  visit(roots);
  for (const n of byId.values()) {
    if (!seen.has(n)) {
      const parent = byId.get(n.span.parentId)!;
      parent.children = parent.children.filter((c) => c !== n);
      n.orphan = true;
      roots.push(n);
      visit([n]);
    }
  }
  roots.sort(byStart);
  // Depths and descendant counts, iteratively: a 10k-deep chain must not overflow the stack.
  const order: Node[] = [];
  const stack: Node[] = roots.slice().reverse();
  for (const r of roots) r.depth = 0;
  while (stack.length) {
    const n = stack.pop()!;
    order.push(n);
    n.children.sort(byStart);
    for (let i = n.children.length - 1; i >= 0; i--) {
      n.children[i].depth = n.depth + 1;
      stack.push(n.children[i]);
    }
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    n.descendants = n.children.reduce((a, c) => a + 1 + c.descendants, 0);
  }
  return { roots, byId };
}

/** The rows to draw: nodes depth-first in start order, skipping the subtrees of collapsed spans. */
export function visibleRows(tree: Tree, collapsed: Set<string>): Node[] {
  const out: Node[] = [];
  const stack: Node[] = tree.roots.slice().reverse();
  while (stack.length) {
    const n = stack.pop()!;
    out.push(n);
    if (collapsed.has(n.span.spanId)) continue;
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  return out;
}

export interface Segment { start: number; end: number }

/**
 * The critical path: the chain of work that determined the trace's end-to-end latency. Walking back from a
 * span's end, the last child to finish before the cursor is on the path (up to its end, clipped to the
 * cursor); the parent's own time between children is on the path too; then the cursor moves to that child's
 * start. Children starting at or after the cursor ran concurrently with work already on the path.
 * Returns, per span id, the segments (ms, trace-relative) of that span on the path.
 */
export function criticalPath(tree: Tree): Map<string, Segment[]> {
  const out = new Map<string, Segment[]>();
  if (!tree.roots.length) return out;
  // The path starts at the root that ends last (the trace's end).
  let root = tree.roots[0];
  for (const r of tree.roots) if (!r.orphan && (root.orphan || r.span.end > root.span.end)) root = r;
  const add = (id: string, start: number, end: number) => {
    if (end <= start) return;
    const l = out.get(id);
    if (l) l.push({ start, end }); else out.set(id, [{ start, end }]);
  };
  const work: [Node, number][] = [[root, root.span.end]];
  while (work.length) {
    const [n, until] = work.pop()!;
    let t = Math.min(until, n.span.end);
    const kids = n.children.slice().sort((a, b) => b.span.end - a.span.end || b.span.start - a.span.start);
    for (const c of kids) {
      if (c.span.start >= t || c.span.end <= n.span.start) continue;
      const e = Math.min(c.span.end, t);
      add(n.span.spanId, e, t);
      work.push([c, e]);
      t = Math.max(c.span.start, n.span.start);
      if (t <= n.span.start) break;
    }
    add(n.span.spanId, n.span.start, t);
  }
  for (const l of out.values()) l.sort((a, b) => a.start - b.start);
  return out;
}

/** Self time: the part of a span not covered by any of its children. */
export function selfTime(n: Node): number {
  const iv = n.children.map((c) => [Math.max(c.span.start, n.span.start), Math.min(c.span.end, n.span.end)] as [number, number])
    .filter(([a, b]) => b > a).sort((a, b) => a[0] - b[0]);
  let covered = 0, cs = NaN, ce = NaN;
  for (const [a, b] of iv) {
    if (Number.isNaN(cs)) { cs = a; ce = b; } else if (a > ce) { covered += ce - cs; cs = a; ce = b; } else ce = Math.max(ce, b);
  }
  if (!Number.isNaN(cs)) covered += ce - cs;
  return Math.max(0, n.span.end - n.span.start - covered);
}
