import { useEffect, useRef, useState } from 'preact/hooks';
import { contextAt, type Context, type Lang, type Suggestion } from '../autocomplete';

interface Props {
  lang: Lang;
  value: string;
  placeholder?: string;
  onRun: (q: string) => void;
  suggest: (ctx: Context, signal: AbortSignal) => Promise<Suggestion[]>;
}

/**
 * A query box with autocomplete. Enter runs (Shift+Enter for a new line); with the list open, arrows move,
 * Enter/Tab accept and Escape closes. Ctrl+Space opens the list. "/" anywhere on the page focuses the box.
 */
export function QueryEditor({ lang, value, placeholder, onRun, suggest }: Props) {
  const [text, setText] = useState(value);
  const [items, setItems] = useState<Suggestion[]>([]);
  const [sel, setSel] = useState(0);
  const [ctx, setCtx] = useState<Context>({ kind: 'none' });
  const ta = useRef<HTMLTextAreaElement>(null);
  const ac = useRef<AbortController | null>(null);

  useEffect(() => setText(value), [value]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key === '/' && !['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)) { e.preventDefault(); ta.current?.focus(); }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);

  const refresh = (t: string, pos: number, force = false) => {
    ac.current?.abort();
    const c = contextAt(lang, t, pos);
    setCtx(c);
    if (c.kind === 'none' || (!force && c.kind === 'metric' && c.prefix === '')) { setItems([]); return; }
    const a = new AbortController();
    ac.current = a;
    suggest(c, a.signal).then((s) => { if (!a.signal.aborted) { setItems(s); setSel(0); } }, () => { if (!a.signal.aborted) setItems([]); });
  };

  const accept = (s: Suggestion) => {
    const el = ta.current!;
    if (ctx.kind === 'none') return;
    const pos = el.selectionStart;
    const nt = text.slice(0, ctx.from) + s.insert + text.slice(pos);
    const np = ctx.from + s.insert.length;
    setText(nt);
    setItems([]);
    requestAnimationFrame(() => { el.focus(); el.setSelectionRange(np, np); refresh(nt, np); });
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (items.length) {
      if (e.key === 'ArrowDown') { e.preventDefault(); setSel((sel + 1) % items.length); return; }
      if (e.key === 'ArrowUp') { e.preventDefault(); setSel((sel - 1 + items.length) % items.length); return; }
      if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey) || e.key === 'Tab') { e.preventDefault(); accept(items[sel]); return; }
      if (e.key === 'Escape') { e.preventDefault(); setItems([]); return; }
    }
    if (e.key === ' ' && e.ctrlKey) { e.preventDefault(); refresh(text, ta.current!.selectionStart, true); return; }
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); setItems([]); onRun(text); }
  };

  return (
    <div class="editor">
      <div class="editor-box">
        <textarea
          ref={ta}
          class="query"
          rows={Math.min(6, Math.max(1, text.split('\n').length))}
          spellcheck={false}
          autocomplete="off"
          aria-label={`${lang} query`}
          aria-autocomplete="list"
          aria-expanded={items.length > 0}
          aria-controls="ac-list"
          placeholder={placeholder}
          value={text}
          onInput={(e) => { const el = e.target as HTMLTextAreaElement; setText(el.value); refresh(el.value, el.selectionStart); }}
          onKeyDown={onKeyDown}
          onBlur={() => setTimeout(() => setItems([]), 150)}
        />
        {items.length > 0 && (
          <ul class="ac" id="ac-list" role="listbox">
            {items.map((s, i) => (
              <li role="option" aria-selected={i === sel} class={i === sel ? 'sel' : ''} onMouseDown={(e) => { e.preventDefault(); accept(s); }}>
                <span>{s.text}</span>{s.detail && <small>{s.detail}</small>}
              </li>
            ))}
          </ul>
        )}
      </div>
      <button class="primary" onClick={() => onRun(text)} title="Run query (Enter)">Run query</button>
    </div>
  );
}
