// The label browsers of the Logs and Metrics pages: what is picked (a metric name, label values) becomes a
// selector, as Grafana's Loki and Prometheus label browsers build it.
import { quote } from './figures';

/** Picked values per label name; a label with no values picked is not in the selector. */
export type Picked = Record<string, string[]>;

/** A value as a literal inside a regular expression: RE2 metacharacters escaped. */
export function regexLiteral(v: string): string {
  return v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One matcher: `l="v"` for one value, `l=~"v1|v2"` for several (values matched literally). */
export function matcher(label: string, values: string[]): string {
  if (values.length === 1) return `${label}="${quote(values[0])}"`;
  return `${label}=~"${quote(values.map(regexLiteral).join('|'))}"`;
}

/**
 * The selector of a pick: `metric{a="x", b=~"y|z"}` (labels in name order), `metric` alone, `{a="x"}` without a
 * metric, or "" when nothing is picked. `except` leaves one label out: the selector that narrows that label's
 * own values to the ones that go with the rest of the pick.
 */
export function buildSelector(metric: string, picked: Picked, except?: string): string {
  const ms = Object.keys(picked).filter((l) => l !== except && picked[l].length).sort().map((l) => matcher(l, picked[l]));
  if (!ms.length) return metric;
  return `${metric}{${ms.join(', ')}}`;
}

/** Toggles a value in a pick, returning a new pick (a label whose last value is dropped leaves the pick). */
export function toggle(picked: Picked, label: string, value: string): Picked {
  const cur = picked[label] ?? [];
  const next = cur.includes(value) ? cur.filter((v) => v !== value) : [...cur, value].sort();
  const out = { ...picked };
  if (next.length) out[label] = next; else delete out[label];
  return out;
}
