// Screenshots of a running Aspire dashboard (a Blazor app: a plain `chromium --screenshot` is blank), for docs/.
// Usage: node tools/screenshots/dashboard.mjs <login-url printed by the AppHost> <out-dir> [experiment-id]
// Setup: (cd tools/screenshots && npm install) - playwright-core only; the browser is Debian's chromium.
import { chromium } from 'playwright-core';

const [loginUrl, outDir = 'docs/images', experimentId = ''] = process.argv.slice(2);
if (!loginUrl) {
  console.error('usage: node dashboard.mjs http://localhost:15888/login?t=TOKEN [out-dir] [experiment-id]');
  process.exit(2);
}
const base = new URL(loginUrl).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1680, height: 1000 }, colorScheme: 'light' });
const settle = async (ms = 4000) => { await page.waitForLoadState('networkidle').catch(() => {}); await page.waitForTimeout(ms); };
const shot = async (name) => { await page.screenshot({ path: `${outDir}/${name}.png` }); console.log(`${outDir}/${name}.png`); };

await page.goto(loginUrl);
await settle();
// The development-certificate notice (plain HTTP here) covers the top of every page.
const notice = page.getByText('No trusted development certificate').first();
if (await notice.count()) {
  const box = await page.locator('fluent-message-bar, .message-bar, [role="alert"], [role="status"]').filter({ hasText: 'No trusted development certificate' }).first().boundingBox().catch(() => null);
  if (box) await page.mouse.click(box.x + box.width - 20, box.y + box.height / 2);
  await page.waitForTimeout(500);
}
await shot('dashboard-resources');

await page.goto(`${base}/traces`);
await settle();
await shot('dashboard-traces');

// The experiment's trace: the one that began with the POST to the Comparison API.
await page.goto(`${base}/traces/resource/comparison`);
await settle();
await shot('dashboard-traces-comparison');
const row = page.getByText('POST /api/experiments', { exact: false }).first();
if (await row.count()) {
  await row.click();
  await settle(5000);
  await shot('dashboard-trace');
}

await page.goto(`${base}/structuredlogs${experimentId ? `?filters=${encodeURIComponent(`ExperimentId:equals:${experimentId}`)}` : ''}`);
await settle();
await shot('dashboard-logs');

await page.goto(`${base}/metrics/resource/finetuning?meter=AspireTune.FineTuning&instrument=aspiretune.training.loss&duration=15&view=Graph`);
await settle(6000);
await shot('dashboard-metrics');

await browser.close();
