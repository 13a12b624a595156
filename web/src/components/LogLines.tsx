import { useState } from 'preact/hooks';
import type { LogLine } from '../parse';
import { currentRoute } from '../router';
import { fmtTime } from '../time';
import { link } from '../url';
import { KVTable } from './common';

function rowsOf(m: Record<string, string>) {
  return Object.keys(m).sort().map((k) => ({ key: k, value: m[k] }));
}

/** Log lines with level colours; a click (or Enter) expands a line to its labels, metadata and trace link. */
export function LogLines({ lines, highlightSpan, max = 2000 }: { lines: LogLine[]; highlightSpan?: string; max?: number }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const route = currentRoute();
  const toggle = (i: number) => { const n = new Set(open); if (n.has(i)) n.delete(i); else n.add(i); setOpen(n); };
  return (
    <ol class="loglines">
      {lines.slice(0, max).map((l, i) => {
        const isOpen = open.has(i);
        const hl = highlightSpan && l.spanId === highlightSpan;
        return (
          <li class={`logline lvl-${l.level}${hl ? ' hl' : ''}${isOpen ? ' open' : ''}`}>
            <div class="logrow" role="button" tabIndex={0} aria-expanded={isOpen} onClick={() => toggle(i)} onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(i); } }}>
              <span class="lvl">{l.level === 'unknown' ? '' : l.level}</span>
              <time class="ts mono">{fmtTime(l.timeMs)}</time>
              <span class="line mono">{l.line}</span>
            </div>
            {isOpen && (
              <div class="logfields">
                {l.traceId && (
                  <p>Trace: <a class="mono log-trace-link" href={link('trace', l.traceId, l.spanId ? { span: l.spanId } : {}, route)}>{l.traceId}</a>{l.spanId && <> span <span class="mono">{l.spanId}</span></>}</p>
                )}
                <h4>Stream labels</h4>
                <KVTable rows={rowsOf(l.stream)} />
                {Object.keys(l.structured).length > 0 && <><h4>Structured metadata</h4><KVTable rows={rowsOf(l.structured)} /></>}
                {Object.keys(l.parsed).length > 0 && <><h4>Parsed fields</h4><KVTable rows={rowsOf(l.parsed)} /></>}
              </div>
            )}
          </li>
        );
      })}
      {lines.length > max && <li class="muted">{lines.length - max} more lines not shown</li>}
    </ol>
  );
}
