import { useEffect, useState } from 'preact/hooks';
import { formatRoute, parseRoute, type Route } from './url';

type Listener = (r: Route) => void;
const listeners = new Set<Listener>();
let current: Route = parseRoute(location.pathname, location.search);

function emit() {
  current = parseRoute(location.pathname, location.search);
  for (const l of listeners) l(current);
}
addEventListener('popstate', emit);

export function currentRoute(): Route { return current; }

/** Goes to a URL inside the UI; `replace` for state changes that should not pile up in history (typing). */
export function navigate(url: string, replace = false) {
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  emit();
}

/** Changes some parameters of the current page. */
export function setParams(p: Record<string, string | undefined>, replace = false) {
  const params = { ...current.params };
  for (const [k, v] of Object.entries(p)) { if (v === undefined || v === '') delete params[k]; else params[k] = v; }
  navigate(formatRoute({ ...current, params }), replace);
}

export function useRoute(): Route {
  const [r, setR] = useState(current);
  useEffect(() => { listeners.add(setR); setR(current); return () => { listeners.delete(setR); }; }, []);
  return r;
}

/** Click handler for <a href> inside the UI: client-side navigation unless a modifier asks for a new tab. */
export function onLinkClick(e: MouseEvent) {
  const a = (e.target as Element).closest('a');
  // SVG links (the traces scatter plot) are <a> too; their `target` is not a string, so read the attribute.
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.getAttribute('target')) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/ui/')) return;
  e.preventDefault();
  navigate(href);
}
