// The only module that talks to servers: the Tempo, Prometheus and Loki APIs at the base URLs from
// /ui/config.json (empty = this origin). Errors carry the server's own message.
import { ApiError, errorMessage } from './parse';

export interface UIConfig { tempo_url: string; prometheus_url: string; loki_url: string; alertmanager_url: string; org_id?: string }

/** alertmanager_url is the base of Alertmanager's v2 API (Sprout's own at /alertmanager, or a proxy prefix). */
export let config: UIConfig = { tempo_url: '', prometheus_url: '', loki_url: '', alertmanager_url: '/alertmanager' };

export async function loadConfig(): Promise<void> {
  try {
    const r = await fetch('/ui/config.json', { headers: { Accept: 'application/json' } });
    if (r.ok) config = { ...config, ...(await r.json()) };
  } catch { /* served without the extension (vite dev): same origin */ }
}

/**
 * Whether a data source is a remote cluster reached through sprout_ui's proxy (config.json names its proxy
 * prefix) rather than this server's own store (""). The proxy passes reads only, so what writes (silences)
 * cannot be done from the page when it is remote.
 */
export function isRemote(source: 'tempo' | 'prometheus' | 'loki' | 'alertmanager'): boolean {
  return config[`${source}_url`].startsWith('/ui/proxy/');
}

function join(base: string, path: string): string {
  return base ? base.replace(/\/+$/, '') + path : path;
}

async function get(base: string, path: string, params: Record<string, string | number | undefined>, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<unknown> {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') sp.set(k, String(v));
  const qs = sp.toString();
  const h: Record<string, string> = { Accept: 'application/json', ...headers };
  if (config.org_id) h['X-Scope-OrgID'] = config.org_id;
  let r: Response;
  try {
    r = await fetch(join(base, path) + (qs ? '?' + qs : ''), { signal, headers: h });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(`cannot reach ${join(base, path) || path}: ${(e as Error).message}`, 0);
  }
  const text = await r.text();
  if (!r.ok) {
    // Prometheus answers errors with JSON {status:"error"}, Tempo and Loki with text: keep the server's words.
    throw new ApiError(errorMessage(text, r.status), r.status);
  }
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(`${path}: response is not JSON: ${text.slice(0, 200)}`, r.status);
  }
}

/** A state-changing call (POST, DELETE) with a JSON body; the answer's JSON, or an ApiError with the server's words. */
async function send(base: string, path: string, method: 'POST' | 'DELETE', body?: unknown): Promise<unknown> {
  const h: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (config.org_id) h['X-Scope-OrgID'] = config.org_id;
  let r: Response;
  try {
    r = await fetch(join(base, path), { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(`cannot reach ${join(base, path)}: ${(e as Error).message}`, 0);
  }
  const text = await r.text();
  if (!r.ok) throw new ApiError(errorMessage(text, r.status), r.status);
  try { return text ? JSON.parse(text) : {}; } catch { return {}; }
}

/** Alertmanager's v2 API (Sprout's embedded Alertmanager, or a cluster's through the proxy): writes and reads. */
export const alertmanager = (path: string, method: 'POST' | 'DELETE', body?: unknown) => send(config.alertmanager_url, '/api/v2' + path, method, body);
export const alertmanagerGet = (path: string, signal?: AbortSignal) => get(config.alertmanager_url, '/api/v2' + path, {}, signal);

export const tempo = (path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal) => get(config.tempo_url, path, params, signal);
export const prom = (path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal) => get(config.prometheus_url, path, params, signal);
export const loki = (path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal) =>
  get(config.loki_url, path, params, signal, { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' });

const cache = new Map<string, { at: number; p: Promise<unknown> }>();

/** Memoises autocomplete look-ups for a minute; a failed look-up is forgotten at once. */
export function cached<T>(key: string, f: () => Promise<T>): Promise<T> {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < 60e3) return hit.p as Promise<T>;
  const p = f();
  cache.set(key, { at: Date.now(), p });
  p.catch(() => cache.delete(key));
  return p;
}
