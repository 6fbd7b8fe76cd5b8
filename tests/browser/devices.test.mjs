// End-to-end test of the Devices page: the real binary in demo mode (embedded broker, simulated
// fleet, SQLite) driven by headless Chromium through playwright-core.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const binary = process.env.MQTT_SUPERVISOR_BIN || join(root, 'target', 'debug', 'mqtt-supervisor');
const token = 'browser-test-token-0123456789';
const readToken = 'browser-read-token-0123456789';

let service;
let baseUrl;
let browser;
let output = '';

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

before(async () => {
  const brokerPort = await freePort();
  const workdir = mkdtempSync(join(tmpdir(), 'mqtt-supervisor-browser-'));
  service = spawn(binary, [
    'demo', '--broker-port', String(brokerPort), '--gateways', '2',
    '--dataloggers-per-gateway', '3', '--interval-secs', '0.3',
  ], {
    cwd: workdir,
    env: {
      ...process.env,
      SUPERVISOR_HTTP_ADDR: '127.0.0.1:0',
      SUPERVISOR_ADMIN_TOKEN: token,
      SUPERVISOR_READ_TOKEN: readToken,
      SUPERVISOR_PARSERS_DIR: join(root, 'parsers'),
      SUPERVISOR_LOG_DIR: join(workdir, 'logs'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service.stderr.on('data', (chunk) => { output += chunk; });
  baseUrl = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${output}`)), 60_000);
    service.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
    service.once('exit', (code) => reject(new Error(`demo exited with ${code}:\n${output}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  service?.kill('SIGTERM');
});

test('sign in, watch live values and what the connection receives, read the device history, send a command, stop and start the connection, replay a parsing error', { timeout: 120_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await page.goto(baseUrl);

  // The API needs a token: the page asks for it.
  await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.fill('#token-input', token);
  await page.click('#token-submit');

  const site = page.locator('li[data-site-id]').first();
  const label = site.locator('.status-label');
  await assertText(label, 'connected', 20_000);

  // Live values arrive over the WebSocket and change without a reload.
  const values = page.locator('tr[data-sensor-id] .sensor-value');
  await values.first().waitFor({ timeout: 20_000 });
  const before = (await values.allTextContents()).join('|');
  await waitUntil(async () => (await values.allTextContents()).join('|') !== before, 20_000, 'a sensor value to change');
  // SCREENSHOT=docs/devices.png refreshes the README's picture; otherwise it goes to a temp dir.
  await page.screenshot({ path: process.env.SCREENSHOT ? resolve(root, process.env.SCREENSHOT) : join(tmpdir(), 'mqtt-supervisor-devices.png') });

  // What the connection receives: granted subscriptions, a recent message, the instance running it.
  await page.locator('#subscriptions li[data-state="granted"]').first().waitFor({ timeout: 15_000 });
  assert.equal(await page.locator('#subscriptions li[data-state="refused"]').count(), 0);
  await page.locator('#conn-last-message time.age').waitFor({ timeout: 15_000 });
  const instance = page.locator('#instances li.instance');
  await waitUntil(async () => (await instance.count()) === 1
    && /runs-selected/.test(await instance.first().getAttribute('class')), 15_000, 'the instance running the site');
  const instanceId = await instance.first().getAttribute('data-instance-id');
  await assertText(site.locator('.site-owner'), `on ${instanceId}`, 15_000);

  // The demo's last gateway reboots now and then: the history shows it going offline.
  await page.getByRole('button', { name: 'Device history', exact: true }).click();
  await waitUntil(async () => {
    if (await page.locator('#history-body tr[data-online="false"]').count()) return true;
    await page.click('#history-refresh');
    await new Promise((done) => setTimeout(done, 1000));
    return false;
  }, 30_000, 'an offline transition in the device history');
  // A command to the site's devices: a bad topic is refused next to the field and what was typed
  // stays; a good one goes from queued to delivered on screen.
  await page.getByRole('button', { name: 'Commands', exact: true }).click();
  await page.fill('#command-topic', 'demo/relay/+/set');
  await page.fill('#command-payload', '{"state": "on"}');
  await page.click('#command-submit');
  await waitUntil(async () => /topic/.test((await page.locator('#command-error').textContent()) || ''),
    10_000, 'the topic error next to the form');
  assert.equal(await page.locator('#command-topic').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.inputValue('#command-payload'), '{"state": "on"}', 'what was typed stays');
  await page.fill('#command-topic', 'demo/relay/1/set');
  await page.click('#command-submit');
  await page.locator('#commands-body tr[data-status="delivered"]').first().waitFor({ timeout: 15_000 });
  assert.equal(await page.locator('#command-error').textContent(), '');
  await page.getByRole('button', { name: 'Devices', exact: true }).click();

  await site.getByRole('button', { name: 'Stop', exact: true }).click();
  await assertText(label, 'stopped', 15_000);
  await site.getByRole('button', { name: 'Start', exact: true }).click();
  await assertText(label, 'connected', 15_000);

  await page.getByRole('button', { name: 'Parsing errors', exact: true }).click();
  const failed = page.locator('li[data-log-id]').first();
  await failed.waitFor({ timeout: 30_000 });
  await failed.getByRole('button', { name: 'Replay', exact: true }).click();
  await waitUntil(async () => ((await failed.locator('.replay-result').textContent()) || '').trim().length > 0,
    15_000, 'the replay result');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

test('the read token watches without the controls that change things', { timeout: 60_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await page.goto(baseUrl);
  await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.fill('#token-input', readToken);
  await page.click('#token-submit');
  const site = page.locator('li[data-site-id]').first();
  await assertText(site.locator('.status-label'), 'connected', 20_000);
  await page.locator('tr[data-sensor-id] .sensor-value').first().waitFor({ timeout: 20_000 });
  await waitUntil(async () => page.locator('#access-badge').isVisible(), 10_000, 'the read-only badge');
  assert.equal(await site.locator('.site-action').isVisible(), false, 'no Start/Stop with the read token');
  await page.getByRole('button', { name: 'Parsing errors', exact: true }).click();
  await page.locator('li[data-log-id]').first().waitFor({ timeout: 30_000 });
  assert.equal(await page.getByRole('button', { name: 'Replay', exact: true }).count(), 0, 'no Replay with the read token');
  await page.getByRole('button', { name: 'Commands', exact: true }).click();
  assert.equal(await page.locator('#command-form').isVisible(), false, 'no command form with the read token');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

test('a sensor\'s chart: the last hour in no more points than pixels, the API\'s buckets, drag to zoom, keys, Escape', { timeout: 90_000 }, async () => {
  // A zone other than UTC, so local times and their UTC form differ.
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, timezoneId: 'Europe/Berlin' });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await page.goto(baseUrl);
  await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.fill('#token-input', token);
  await page.click('#token-submit');
  const row = page.locator('tr[data-sensor-id][data-sensor-name="temperature"]').first();
  await row.waitFor({ timeout: 20_000 });
  const sensorId = await row.getAttribute('data-sensor-id');

  // The row opens the chart from the keyboard too.
  await row.focus();
  await page.keyboard.press('Enter');
  const dialog = page.locator('dialog.chart-dialog');
  await dialog.waitFor({ state: 'visible', timeout: 5_000 });
  const plotArea = dialog.locator('.chart-plot');
  const plot = dialog.locator('svg.chart-svg');
  const line = plot.locator('path.chart-line');
  const drawn = async () => {
    await waitUntil(async () => (await plotArea.getAttribute('aria-busy')) === 'false', 15_000, 'the chart to load');
  };
  await dialog.getByRole('button', { name: 'Last hour', exact: true }).click();
  assert.equal(await dialog.getByRole('button', { name: 'Last hour', exact: true }).getAttribute('aria-pressed'), 'true');
  await drawn();
  await line.waitFor({ timeout: 5_000 });
  const shown = async () => {
    const [url, width, from, to, d, points, first, last] = await Promise.all([
      plot.getAttribute('data-url'), plot.getAttribute('data-plot-width'), plot.getAttribute('data-view-start'),
      plot.getAttribute('data-view-end'), line.getAttribute('d'), line.getAttribute('data-points'),
      line.getAttribute('data-first'), line.getAttribute('data-last')]);
    return { url, width: Number(width), from: Number(from), to: Number(to), vertices: (d.match(/[ML]/g) || []).length,
      points: Number(points), first: Number(first), last: Number(last) };
  };
  const hour = await shown();
  assert.equal(hour.to - hour.from, 3_600_000, 'the last hour');
  assert.ok(hour.vertices > 0, 'the line has points');
  assert.ok(hour.vertices <= hour.width, `${hour.vertices} points for ${hour.width} pixels`);
  assert.equal(hour.vertices, hour.points);
  assert.match(hour.url, new RegExp(`^/api/sensors/${sensorId}/readings\\?from=.*&bucket=\\d+&limit=\\d+$`));
  assert.ok(Number(new URL(hour.url, baseUrl).searchParams.get('bucket')) >= Math.ceil(3600 / hour.width));
  // The same request from here: the same buckets (a reading committed after the page asked
  // may only add a newest bucket).
  const response = await fetch(new URL(hour.url, baseUrl), { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  const buckets = await response.json();
  const oldest = Date.parse(buckets[buckets.length - 1].ts);
  assert.equal(oldest, hour.first, 'the oldest bucket');
  const late = buckets.filter((bucket) => Date.parse(bucket.ts) > hour.last);
  assert.equal(buckets.length - late.length, hour.vertices, 'the page drew the API\'s buckets');
  assert.ok(late.length <= 1, `${late.length} buckets newer than the page's`);
  assert.ok(buckets.every((bucket) => bucket.min <= bucket.avg && bucket.avg <= bucket.max && bucket.count >= 1));
  assert.match(await dialog.locator('#chart-summary').textContent(), /\d+ readings? in \d+ points?.*Lowest .* highest /);

  // Drag across the plot, from just before the first reading to the right end: a narrower range.
  const frame = await plot.locator('rect.chart-frame').boundingBox();
  const lineBox = await line.boundingBox();
  const start = Math.max(lineBox.x - 2, frame.x + frame.width * 0.1);
  const end = frame.x + frame.width - 1;
  const middle = frame.y + frame.height / 2;
  await page.mouse.move(start, middle);
  await page.mouse.down();
  await page.mouse.move((start + end) / 2, middle, { steps: 4 });
  await page.mouse.move(end, middle, { steps: 4 });
  await page.mouse.up();
  await waitUntil(async () => Number(await plot.getAttribute('data-view-start')) !== hour.from, 5_000, 'the zoom');
  await drawn();
  const zoomed = await shown();
  assert.ok(zoomed.to - zoomed.from < hour.to - hour.from, 'the shown range narrowed');
  assert.ok(zoomed.from > hour.from && zoomed.to <= hour.to, 'inside the hour');
  assert.ok(zoomed.vertices > 0 && zoomed.vertices <= zoomed.width, `${zoomed.vertices} points, ${zoomed.width} pixels`);
  assert.ok(await dialog.getByRole('button', { name: 'Reset zoom', exact: true }).isVisible());

  // Hovering shows a point's value with its time (and UTC).
  await page.mouse.move(frame.x + frame.width - 40, middle);
  const tooltip = dialog.locator('.chart-tooltip');
  await waitUntil(async () => tooltip.isVisible(), 5_000, 'the tooltip');
  assert.match(await tooltip.textContent(), /UTC/);
  assert.match(await dialog.locator('#chart-help').textContent(), /Times in Europe\/Berlin/);
  // SCREENSHOT_CHART=docs/chart.png refreshes the README's picture of the chart.
  await dialog.screenshot({ path: process.env.SCREENSHOT_CHART ? resolve(root, process.env.SCREENSHOT_CHART) : join(tmpdir(), 'mqtt-supervisor-chart.png') });

  // The keys read the points: End is the newest.
  await plot.focus();
  await page.keyboard.press('End');
  assert.equal(await plot.getAttribute('data-cursor'), String(zoomed.points - 1));
  await page.keyboard.press('ArrowLeft');
  if (zoomed.points > 1) assert.equal(await plot.getAttribute('data-cursor'), String(zoomed.points - 2));

  await dialog.getByRole('button', { name: 'Reset zoom', exact: true }).click();
  await drawn();
  const reset = await shown();
  assert.equal(reset.to - reset.from, 3_600_000, 'back to the hour');

  // A range without readings says so.
  await dialog.getByRole('button', { name: 'Custom', exact: true }).click();
  await page.fill('#chart-start', '2000-01-01T00:00');
  await page.fill('#chart-end', '2000-01-02T00:00');
  await dialog.getByRole('button', { name: 'Show', exact: true }).click();
  await drawn();
  await waitUntil(async () => /No readings/.test((await dialog.locator('.chart-empty').textContent()) || '')
    && await dialog.locator('.chart-empty').isVisible(), 5_000, 'the empty state');
  assert.equal(await line.count(), 0);

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: 5_000 });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.sensorId), sensorId, 'focus back on the row');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

async function assertText(locator, expected, timeout) {
  await waitUntil(async () => ((await locator.textContent()) || '').trim() === expected, timeout,
    `text "${expected}"`);
}

async function waitUntil(check, timeout, what) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch { /* element not there yet */ }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`timed out waiting for ${what}\n--- service output ---\n${output.slice(-4000)}`);
}
