// End-to-end test of the Devices page: the real binary in demo mode (embedded broker, simulated
// fleet, SQLite) driven by headless Chromium through playwright-core.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
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
let brokerPort;
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
  brokerPort = await freePort();
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

test('a device known only from a retained message shows as not seen live until it speaks', { timeout: 60_000 }, async () => {
  // A retained status on the demo broker, then a new site whose connection subscribes to it:
  // the broker hands it over flagged as retained, old news.
  const topic = `browser-retained-${process.pid}/gw-ret/status`;
  const publish = (payload, retain) => {
    const args = ['-h', '127.0.0.1', '-p', String(brokerPort), '-q', '1', '-t', topic];
    if (retain) args.push('-r');
    args.push(...(payload === null ? ['-n'] : ['-m', payload]));
    const result = spawnSync('mosquitto_pub', args, { encoding: 'utf8', timeout: 10_000 });
    assert.equal(result.status, 0, `mosquitto_pub: ${result.stderr}`);
  };
  const call = async (method, path, body) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  publish(JSON.stringify({ status: 'online', firmware: '9.9' }), true);
  let siteId = null;
  try {
    const slug = `retained-${process.pid}`;
    siteId = (await call('POST', '/api/sites', { name: slug, slug })).id;
    await call('POST', '/api/mqtt/topics', { site_id: siteId, pattern: topic.replace('gw-ret', '{gateway}'), parser: 'gateway_status_v1' });
    await call('POST', '/api/mqtt/connections', { site_id: siteId, host: '127.0.0.1', port: brokerPort, is_active: true });

    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
    await page.goto(baseUrl);
    await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
    await page.fill('#token-input', token);
    await page.click('#token-submit');
    await page.locator(`li[data-site-id="${siteId}"] .site-select`).click();
    const gateway = page.locator('section.gateway[data-gateway="gw-ret"]');
    const mark = gateway.locator('.gateway-head .online-mark');
    await waitUntil(async () => {
      if (await gateway.count()) return true;
      await page.click('#devices-refresh');
      await new Promise((done) => setTimeout(done, 500));
      return false;
    }, 20_000, 'the gateway of the retained status');
    await assertText(mark, 'not seen live', 10_000);
    assert.equal(await mark.getAttribute('data-online'), 'false');
    assert.equal((await gateway.locator('.gateway-head .seen time').textContent()).trim(), '—', 'no last seen');
    await waitUntil(async () => /9\.9/.test(await gateway.locator('.meta').textContent()), 10_000, 'its metadata');

    // A live status: online at once, over the WebSocket.
    publish(JSON.stringify({ status: 'online' }), false);
    await assertText(mark, 'online', 15_000);
    assert.notEqual((await gateway.locator('.gateway-head .seen time').textContent()).trim(), '—', 'seen now');
    assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
  } finally {
    publish(null, true);
    if (siteId !== null) await call('DELETE', `/api/sites/${siteId}`);
  }
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
