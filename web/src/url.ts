// View state lives in the URL: the path names the page (and its subject), the query string holds the rest.
// Every page reads its state from a Route and changes it by navigating, so a link is always shareable.

export type Page = 'home' | 'traces' | 'trace' | 'graph' | 'service' | 'metrics' | 'logs' | 'alerts' | 'notfound';

export interface Route {
  page: Page;
  /** The trace id (page "trace") or service name (page "service"). */
  arg?: string;
  params: Record<string, string>;
}

export const BASE = '/ui/';
const PAGES: Page[] = ['home', 'traces', 'trace', 'graph', 'service', 'metrics', 'logs', 'alerts'];
const WITH_ARG: Page[] = ['trace', 'service'];

/**
 * Reads a Route from a location's pathname and search. The root lands on the home page; an unknown page is
 * "notfound" (with the path as its arg), so that a mistyped link says so instead of showing another page.
 */
export function parseRoute(pathname: string, search: string): Route {
  const params: Record<string, string> = {};
  new URLSearchParams(search).forEach((v, k) => { params[k] = v; });
  let rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname.replace(/^\/+/, '');
  const parts = rest.split('/').filter(Boolean);
  if (parts.length && !(PAGES as string[]).includes(parts[0])) return { page: 'notfound', arg: pathname, params };
  const page = parts.length ? (parts[0] as Page) : 'home';
  const route: Route = { page, params };
  if (WITH_ARG.includes(page)) {
    if (parts.length < 2) return { page: page === 'trace' ? 'traces' : 'graph', params };
    route.arg = decodeURIComponent(parts.slice(1).join('/'));
  }
  return route;
}

/** Writes a Route as a path plus query string; parameters are sorted and empty ones dropped. */
export function formatRoute(r: Route): string {
  // The home page is the root of the UI.
  let path = r.page === 'home' ? BASE : BASE + r.page;
  if (r.arg !== undefined && WITH_ARG.includes(r.page)) path += '/' + encodeURIComponent(r.arg);
  const keys = Object.keys(r.params).filter((k) => r.params[k] !== '' && r.params[k] != null).sort();
  if (!keys.length) return path;
  const sp = new URLSearchParams();
  for (const k of keys) sp.set(k, r.params[k]);
  return path + '?' + sp.toString();
}

/** Parameters carried across pages so that jumping keeps the time range and refresh. */
export const SHARED_PARAMS = ['from', 'to', 'refresh'];

export function link(page: Page, arg: string | undefined, params: Record<string, string>, current?: Route): string {
  const p: Record<string, string> = {};
  if (current) for (const k of SHARED_PARAMS) if (current.params[k]) p[k] = current.params[k];
  Object.assign(p, params);
  return formatRoute({ page, arg, params: p });
}
