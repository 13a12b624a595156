// Browser check of grow-ui: Sprout's UI in front of remote Tempo, Prometheus (standing in for Mimir) and Loki,
// reached through sprout_ui's same-origin proxy. The data is already in the clusters (tests/e2e/growui_test.go
// puts it there); this script opens the traces, trace, logs and metrics pages, checks that each shows the
// clusters' data, and that the page never requested another origin. Prints "N passed, M failed".
//
//   SPROUT_URL  the grow-ui Sprout          TRACE_ID  a trace held by Tempo    SERVICE  its service
//   LOG_LINE    a line held by Loki          METRIC    a metric held by Prometheus
//   CHROMIUM    browser executable           ARTIFACTS screenshot directory
//   NO_TENANT_URL  the same Sprout without a tenant, whose clusters refuse it (optional)
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const SPROUT = process.env.SPROUT_URL.replace(/\/$/, '');
const { TRACE_ID, SERVICE, LOG_LINE, METRIC } = process.env;
const ART = process.env.ARTIFACTS || 'artifacts/growui';
mkdirSync(ART, { recursive: true });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const origin = new URL(SPROUT).origin;
const external = [];
const proxied = [];
const failed = [];
page.on('request', (r) => {
  const u = r.url();
  if (u.startsWith('data:')) return;
  if (new URL(u).origin !== origin) external.push(u);
  if (u.includes('/ui/proxy/')) proxied.push(new URL(u).pathname);
});
page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
const timeout = { timeout: 30000 };
const goto = (path) => page.goto(SPROUT + path, { waitUntil: 'domcontentloaded' });

let passed = 0, failures = 0;
async function step(name, f) {
  try {
    await f();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
  }
  await page.screenshot({ path: join(ART, name.replace(/\W+/g, '-') + '.png') }).catch(() => {});
}

await step('config names only same-origin prefixes', async () => {
  const r = await fetch(SPROUT + '/ui/config.json');
  const c = await r.json();
  for (const [k, want] of [['tempo_url', '/ui/proxy/tempo'], ['prometheus_url', '/ui/proxy/prometheus'], ['loki_url', '/ui/proxy/loki']]) {
    if (c[k] !== want) throw new Error(`${k} is ${JSON.stringify(c[k])}, want ${want}`);
  }
});

await step('traces page lists the trace from Tempo', async () => {
  await goto(`/ui/traces?from=now-1h&to=now&q=${encodeURIComponent(`{ resource.service.name = "${SERVICE}" }`)}`);
  await page.locator(`a.trace-link[href*="${TRACE_ID}"]`).waitFor(timeout);
  await page.locator(`a.trace-link[href*="${TRACE_ID}"]`).click();
  await page.waitForSelector(`body[data-trace-rendered="${TRACE_ID}"]`, timeout);
  await page.locator('.wf-row').first().waitFor(timeout);
});

await step('trace page shows the spans from Tempo', async () => {
  await goto(`/ui/trace/${TRACE_ID}`);
  await page.waitForSelector(`body[data-trace-rendered="${TRACE_ID}"]`, timeout);
  await page.locator('.wf-row', { hasText: 'GET /checkout' }).first().waitFor(timeout);
});

await step('logs page shows the line from Loki', async () => {
  await goto(`/ui/logs?from=now-1h&to=now&q=${encodeURIComponent(`{service_name="${SERVICE}"}`)}`);
  await page.locator('.loglines .logline', { hasText: LOG_LINE }).first().waitFor(timeout);
});

await step('metrics page charts the metric from Prometheus', async () => {
  await goto(`/ui/metrics?from=now-1h&to=now&q=${encodeURIComponent(METRIC)}`);
  await page.locator('.chart .uplot').first().waitFor(timeout);
  await page.waitForFunction(() => (document.querySelector('.chart')?.sproutSeries ?? []).some((s) => s.points.length > 0), null, timeout);
});

await step('home page lists the service from Loki with its log lines', async () => {
  await goto('/ui/?from=now-1h&to=now');
  const row = page.locator(`table.home tr[data-service="${SERVICE}"]`);
  await row.waitFor(timeout);
  const logs = JSON.parse(await row.getAttribute('data-logs'));
  if (!(Object.values(logs).reduce((a, b) => a + b, 0) >= 1)) throw new Error(`log lines ${JSON.stringify(logs)}`);
});

await step('label browsers read Loki and Prometheus through the proxy', async () => {
  await goto('/ui/logs?from=now-1h&to=now');
  await page.locator('details.lb-details summary').click();
  await page.locator('button.lb-name[data-label="service_name"]').click();
  await page.locator(`.lb-label[data-label="service_name"] button.lb-value[data-value="${SERVICE}"]`).click();
  await page.locator('.lb-count[data-count="1"]').waitFor(timeout);
  await page.locator('button.lb-run').click();
  await page.locator('.loglines .logline', { hasText: LOG_LINE }).first().waitFor(timeout);
  await goto('/ui/metrics?from=now-1h&to=now');
  await page.locator('details.lb-details summary').click();
  await page.locator('.lb-label[data-label="__name__"] input').fill(METRIC);
  await page.locator(`button.lb-value[data-value="${METRIC}"]`).click();
  await page.locator('.lb-count[data-count]').waitFor(timeout);
  if (!(Number(await page.locator('.lb-count').getAttribute('data-count')) >= 1)) throw new Error('no series match');
});

await step('service graph and RED view from the span metrics of Tempo\'s generator', async () => {
  await goto('/ui/graph?from=now-1h&to=now');
  const node = page.locator(`g.node[data-service="${SERVICE}"]`);
  await node.waitFor(timeout);
  await page.locator(`g.node[data-service="${process.env.CALLEE}"]`).waitFor(timeout);
  await node.click();
  await page.locator('h1', { hasText: `Service ${SERVICE}` }).waitFor(timeout);
  await page.locator('.red .uplot').first().waitFor(timeout);
});

await step('alerts page lists the rule from Prometheus', async () => {
  await goto('/ui/alerts');
  await page.locator('h1', { hasText: 'Alerts' }).waitFor(timeout);
  await page.locator('table.rules tr[data-rule]', { hasText: 'GrowUIErrors' }).first().waitFor(timeout);
});

await step('every request went to this origin, the clusters through the proxy', async () => {
  if (external.length) throw new Error(`requests to other origins: ${external.slice(0, 5).join(', ')}`);
  for (const p of ['/ui/proxy/tempo/', '/ui/proxy/prometheus/', '/ui/proxy/loki/', '/ui/proxy/alertmanager/']) {
    if (!proxied.some((u) => u.startsWith(p))) throw new Error(`no request through ${p}`);
  }
  const bad = failed.filter((f) => f.includes('/ui/proxy/'));
  if (bad.length) throw new Error(`proxied requests failed: ${bad.slice(0, 5).join(', ')}`);
});

await step('alerts page: the Alertmanager\'s silences, read-only through the proxy, with no form that would fail', async () => {
  await goto('/ui/alerts');
  await page.locator('h1', { hasText: 'Alerts' }).waitFor(timeout);
  await page.locator('.silences-readonly', { hasText: 'read-only proxy' }).waitFor(timeout);
  await page.locator('table.silences', { hasText: process.env.SILENCE }).waitFor(timeout);
  const writes = await page.locator('form.silence-form, button.expire, tr.alert-row button').count();
  if (writes) throw new Error(`${writes} controls that would write through the proxy`);
  if (external.length) throw new Error(`requests to other origins: ${external.slice(0, 5).join(', ')}`);
});

// Last, as it opens another origin: the same config with the tenant forgotten. The page must name the cluster
// that refused it and its status, not show a bare "no org id".
if (process.env.NO_TENANT_URL) await step('a cluster refusing the tenant is named on the page', async () => {
  const base = process.env.NO_TENANT_URL.replace(/\/$/, '');
  await page.goto(`${base}/ui/logs?from=now-1h&to=now&q=${encodeURIComponent(`{service_name="${SERVICE}"}`)}`, { waitUntil: 'domcontentloaded' });
  const box = page.locator('.error', { hasText: 'loki at' }).first();
  await box.waitFor(timeout);
  const text = await box.innerText();
  for (const want of ['HTTP 401', 'refused the request with 401 Unauthorized: no org id', 'sprout_ui.loki.tenant']) {
    if (!text.includes(want)) throw new Error(`the error box lacks ${JSON.stringify(want)}: ${text}`);
  }
});

await browser.close();
console.log(`${passed} passed, ${failures} failed (${proxied.length} proxied requests)`);
process.exit(failures ? 1 : 0);
