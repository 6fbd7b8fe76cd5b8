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
// The embedded broker's port, for the connection the forms test creates.
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
  // The API needs a token: the page asks for it, then shows the demo site connected.
  await signIn(page, token);
  const site = page.locator('li[data-site-id]').first();
  const label = site.locator('.status-label');

  // Live values arrive over the WebSocket and change without a reload.
  const values = page.locator('tr[data-sensor-id] .sensor-value');
  await values.first().waitFor({ timeout: 20_000 });
  const before = (await values.allTextContents()).join('|');
  await waitUntil(async () => (await values.allTextContents()).join('|') !== before, 20_000, 'a sensor value to change');
  // SCREENSHOT=docs/devices.png refreshes the README's picture; otherwise it goes to a temp dir.
  await page.screenshot({ path: screenshotPath('SCREENSHOT', 'mqtt-supervisor-devices.png') });

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

test('a relay switch sends set_relay and shows it pending, then confirmed by the relay', { timeout: 60_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, token);

  const row = page.locator('tr[data-sensor-name="relay_1"]');
  const button = row.locator('button.relay-switch');
  await button.waitFor({ timeout: 20_000 });
  const wasOn = (await button.getAttribute('aria-checked')) === 'true';
  await button.click();
  const status = row.locator('.relay-status');
  await waitUntil(async () => (await status.getAttribute('data-status')) === 'confirmed', 20_000,
    'the relay command confirmed');
  assert.equal(await button.getAttribute('aria-checked'), String(!wasOn), 'the switch shows the new state');
  // The command and the relay's report agree with the page.
  const commands = await (await fetch(new URL(`/api/sites/${await siteIdOf(page)}/commands?status=confirmed`, baseUrl), {
    headers: { Authorization: `Bearer ${token}` },
  })).json();
  assert.ok(commands.some((command) => command.template === 'set_relay'
    && JSON.parse(command.payload).state === (wasOn ? 'off' : 'on')), JSON.stringify(commands));
  await waitUntil(async () => ((await row.locator('.sensor-value').textContent()) || '').trim() === (wasOn ? '0' : '1'),
    15_000, 'the relay reporting its new state');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
  await page.close();
});

test('the read token watches without the controls that change things', { timeout: 60_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, readToken);
  const site = page.locator('li[data-site-id]').first();
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

test('parsing errors: filter by parser, open one at its error position, replay all shown', { timeout: 90_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, token);
  await page.getByRole('button', { name: 'Parsing errors', exact: true }).click();
  await page.locator('li[data-log-id]').first().waitFor({ timeout: 30_000 });

  // A range the API refuses: its message stands next to the field it names.
  await page.fill('#errors-from', '2030-01-02T00:00:00');
  await page.fill('#errors-to', '2030-01-01T00:00:00');
  await page.getByRole('button', { name: 'Apply filters', exact: true }).click();
  await waitUntil(async () => /later than/.test((await page.locator('#errors-from-error').textContent()) || ''),
    10_000, 'the from error next to its field');
  assert.equal(await page.locator('#errors-from').getAttribute('aria-invalid'), 'true');
  await page.getByRole('button', { name: 'Clear', exact: true }).click();
  await waitUntil(async () => (await page.locator('#errors-from-error').textContent()) === '', 10_000, 'the error cleared');

  // The parser select lists the registry; a parser without errors empties the list, the demo's
  // faulty datalogger's parser fills it with its own rows only.
  const parser = page.getByRole('search', { name: 'Filter parsing errors' }).getByLabel('Parser', { exact: true });
  await page.locator('#errors-parser option[value="datalogger_readings_v1"]').waitFor({ state: 'attached', timeout: 15_000 });
  await parser.selectOption('flat_telemetry');
  await page.getByText('No parsing errors match these filters.').waitFor({ timeout: 15_000 });
  const filtered = page.waitForResponse((response) => response.url().includes('parser=datalogger_readings_v1'));
  await parser.selectOption('datalogger_readings_v1');
  assert.equal((await filtered).status(), 200);
  await waitUntil(async () => {
    const names = await page.locator('#errors-list .parser-name').allTextContents();
    return names.length > 0 && names.every((name) => name === 'datalogger_readings_v1');
  }, 15_000, 'only rows of the chosen parser');

  // A row whose error names a place opens on its payload with that place marked.
  const located = page.locator('li[data-log-id][data-position]').first();
  await located.waitFor({ timeout: 30_000 });
  const id = await located.getAttribute('data-log-id');
  const row = page.locator(`li[data-log-id="${id}"]`);
  const toggle = row.locator('summary');
  assert.match(await toggle.textContent(), /error at (\/|line \d+, column \d+|the payload's root)/);
  await toggle.click();
  const mark = row.locator('mark.error-mark');
  await mark.waitFor({ state: 'visible', timeout: 10_000 });
  assert.ok(await mark.isVisible(), 'the error position is marked and visible');
  // The keyboard moves between rows.
  await toggle.focus();
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.tagName), 'SUMMARY');

  // Replay all shown: the demo's bad payloads stay bad, and the page says so.
  await page.getByRole('button', { name: 'Replay all shown', exact: true }).click();
  const summary = page.locator('#errors-replay-all-result');
  await waitUntil(async () => /Replayed \d+ errors?: 0 parsed now, \d+ still failing\./.test((await summary.textContent()) || ''),
    20_000, 'the replay-all summary');
  await waitUntil(async () => /Still failing:/.test((await row.locator('.replay-result').textContent()) || ''),
    10_000, 'the opened row\'s own outcome');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

test('set up a site from the page: site and connection forms with Test connection, a pattern made from a discovered topic with its live preview, values for the new site', { timeout: 180_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, token);

  // A new site: an empty name is refused next to the name, and the slug typed stays.
  await page.click('#site-new');
  await page.locator('#site-form').waitFor({ timeout: 10_000 });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'site-name', 'the name has the focus');
  await page.fill('#site-slug', 'browser-plant');
  await page.click('#site-save');
  await waitForInvalid(page, '#site-name');
  assert.match(await page.textContent('#site-name-error'), /must not be empty/);
  assert.equal(await page.inputValue('#site-slug'), 'browser-plant', 'what was typed stays');
  await page.fill('#site-name', 'Browser plant');
  await page.click('#site-save');
  const newSite = page.locator('li[data-site-id]', { hasText: 'Browser plant' });
  await waitUntil(async () => /is-selected/.test(await newSite.getAttribute('class')), 15_000, 'the new site, selected');
  await page.locator('#connection-form').waitFor({ timeout: 10_000 });
  assert.equal(await page.textContent('#connection-form-title'), 'New MQTT connection');

  // Its connection: port 0 is refused next to the port, and every field typed stays.
  await page.fill('#connection-host', '127.0.0.1');
  await page.fill('#connection-port', '0');
  await page.fill('#connection-discovery', 'demo/#');
  await page.fill('#connection-silence', '60');
  await page.click('#connection-save');
  await waitForInvalid(page, '#connection-port');
  assert.match(await page.textContent('#connection-port-error'), /between 1 and 65535/);
  assert.equal(await page.inputValue('#connection-host'), '127.0.0.1');
  assert.equal(await page.inputValue('#connection-discovery'), 'demo/#');
  assert.equal(await page.inputValue('#connection-silence'), '60');

  // Test connection: a port nobody listens on fails with the reason; the demo's broker answers.
  await page.fill('#connection-port', String(await freePort()));
  assert.equal(await page.getAttribute('#connection-port', 'aria-invalid'), null, 'typing clears the mark');
  await page.click('#connection-test');
  const testResult = page.locator('#connection-test-result');
  await waitUntil(async () => (await testResult.getAttribute('data-ok')) === 'false', 15_000, 'the failed test');
  assert.match(await testResult.textContent(), /^Connection failed after \d+ ms: .+/);
  await page.fill('#connection-port', String(brokerPort));
  await page.click('#connection-test');
  await waitUntil(async () => (await testResult.getAttribute('data-ok')) === 'true', 15_000, 'the test passing');
  assert.match(await testResult.textContent(), new RegExp(`^Connection ok: 127\\.0\\.0\\.1:${brokerPort} \\(MQTT 3\\.1\\.1, plain TCP\\) answered in \\d+ ms\\.$`));
  // SCREENSHOT_CONSOLE=docs/console.png refreshes the README's picture of the forms.
  for (const dismiss of await page.locator('#alerts .alert button').all()) await dismiss.click();
  await page.screenshot({ path: screenshotPath('SCREENSHOT_CONSOLE', 'mqtt-supervisor-console.png'), fullPage: true });
  await page.click('#connection-save');
  await assertText(newSite.locator('.status-label'), 'connected', 20_000);
  assert.equal(await page.textContent('#connection-save'), 'Save connection', 'the form now edits the stored connection');
  assert.equal(await page.inputValue('#connection-port'), String(brokerPort));
  // Once stored, Test connection still works (the site's stored settings fill the gaps).
  await page.click('#connection-test');
  await waitUntil(async () => /^Connection ok/.test((await testResult.textContent()) || ''), 15_000, 'the stored connection tested');

  // Renaming the site shows in the list.
  await page.fill('#site-name', 'Browser plant renamed');
  await page.click('#site-save');
  await assertText(newSite.locator('.site-name'), 'Browser plant renamed', 10_000);

  // The discovery filter brings the demo's topics; one of them makes a pattern, guessed from its
  // levels, with a preview of the topics it matches and of what its sample payload becomes.
  await page.getByRole('button', { name: 'Discovered topics', exact: true }).click();
  const topicRow = page.locator('#discovered-body tr[data-topic="demo/gateway/gw-2/datalogger/dl-02"]');
  await waitUntil(async () => {
    if (await topicRow.count()) return true;
    await page.click('#discovered-refresh');
    await new Promise((done) => setTimeout(done, 1000));
    return false;
  }, 30_000, 'a discovered topic of the new site');
  await topicRow.getByRole('button', { name: 'Make a pattern', exact: true }).click();
  const guessed = 'demo/gateway/{gateway}/datalogger/{datalogger}';
  assert.equal(await page.inputValue('#pattern-input'), guessed);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'pattern-input');
  await waitUntil(async () => (await page.inputValue('#parser-select')) === 'datalogger_readings_v1', 10_000, 'the guessed parser');
  const previewMatches = page.locator('#pattern-preview-matches li.preview-match');
  await waitUntil(async () => (await previewMatches.count()) >= 2, 10_000, 'the matching topics');
  assert.match(await page.textContent('#pattern-preview-summary'), /^Matches \d+ of the \d+ discovered topics\.$/);
  assert.match(await previewMatches.first().textContent(), /gateway = gw-\d+, datalogger = dl-\d+/);
  assert.equal(await page.locator('#pattern-preview-matches li[data-topic^="demo/gateway/gw-1/status"]').count(), 0);
  await waitForParsedSample(page, guessed);
  // SCREENSHOT_PREVIEW=docs/pattern-preview.png refreshes the README's picture of the preview.
  await page.locator('#pattern-form').screenshot({ path: screenshotPath('SCREENSHOT_PREVIEW', 'mqtt-supervisor-pattern-preview.png') });

  // A bad pattern: the preview says why at once, the API's refusal goes next to the field.
  await page.fill('#pattern-input', 'demo/#/datalogger');
  await waitUntil(async () => /^Not a valid pattern: '#' must be the last level/.test(
    (await page.textContent('#pattern-preview-summary')) || ''), 10_000, 'the preview refusing the pattern');
  await page.click('#pattern-submit');
  await waitForInvalid(page, '#pattern-input');
  assert.match(await page.textContent('#pattern-input-error'), /'#' must be the last level/);
  assert.equal(await page.inputValue('#pattern-input'), 'demo/#/datalogger', 'what was typed stays');
  assert.equal(await page.inputValue('#parser-select'), 'datalogger_readings_v1');

  await page.fill('#pattern-input', guessed);
  await waitForParsedSample(page, guessed);
  await page.click('#pattern-submit');
  await page.locator('#pattern-form').waitFor({ state: 'hidden', timeout: 10_000 });

  // The new site's own devices: values arrive through its own connection and pattern.
  await page.getByRole('button', { name: 'Devices', exact: true }).click();
  await page.locator('tr[data-sensor-id] .sensor-value').first().waitFor({ timeout: 30_000 });

  // A phone-sized screen: the forms fit without sideways scrolling, and the keyboard reaches
  // Test connection from the host field.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.locator('#connection-host').waitFor();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    'no sideways scrolling at 390 px');
  await page.focus('#connection-host');
  await waitUntil(async () => {
    if (await page.evaluate(() => document.activeElement.id) === 'connection-test') return true;
    await page.keyboard.press('Tab');
    return false;
  }, 20_000, 'Tab to reach Test connection');
  await page.getByRole('button', { name: 'Discovered topics', exact: true }).click();
  await topicRow.waitFor({ timeout: 10_000 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    'no sideways scrolling in the discovered topics at 390 px');
  await topicRow.getByRole('button', { name: 'Make a pattern', exact: true }).focus();
  await page.keyboard.press('Enter');
  await page.locator('#pattern-form').waitFor({ timeout: 10_000 });
  await page.keyboard.press('Escape');
  await page.locator('#pattern-form').waitFor({ state: 'hidden', timeout: 10_000 });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Deleting the site asks first; once confirmed the site is gone.
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  await page.click('#site-delete');
  const confirmation = page.locator('#site-delete-confirm');
  await confirmation.getByRole('button', { name: 'Keep it', exact: true }).click();
  assert.equal(await newSite.count(), 1, 'kept when declined');
  await page.click('#site-delete');
  await confirmation.getByRole('button', { name: 'Delete site', exact: true }).click();
  await waitUntil(async () => (await newSite.count()) === 0, 10_000, 'the site gone from the list');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

test('the read token has no site, connection or pattern forms', { timeout: 60_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, readToken);
  await waitUntil(async () => page.locator('#access-badge').isVisible(), 10_000, 'the read-only badge');
  assert.equal(await page.locator('#site-new').isVisible(), false, 'no New site');
  assert.equal(await page.getByRole('button', { name: 'Settings', exact: true }).count(), 0, 'no Settings tab');
  await page.getByRole('button', { name: 'Discovered topics', exact: true }).click();
  await page.locator('#discovered-body tr').first().waitFor({ timeout: 20_000 });
  assert.equal(await page.getByRole('button', { name: 'Make a pattern', exact: true }).count(), 0, 'no Make a pattern');
  assert.equal(await page.locator('#pattern-new').isVisible(), false, 'no New pattern');
  assert.doesNotMatch(output, /\[page error\]/, 'the page raised no script errors');
});

async function signIn(page, secret) {
  await page.goto(baseUrl);
  await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.fill('#token-input', secret);
  await page.click('#token-submit');
  await assertText(page.locator('li[data-site-id]').first().locator('.status-label'), 'connected', 20_000);
}

/** Where a screenshot goes: the path in `variable` (from the project root) or a temp file. */
function screenshotPath(variable, fallback) {
  return process.env[variable] ? resolve(root, process.env[variable]) : join(tmpdir(), fallback);
}

async function waitForInvalid(page, selector) {
  await waitUntil(async () => (await page.getAttribute(selector, 'aria-invalid')) === 'true', 10_000,
    `${selector} marked invalid`);
  const describedBy = (await page.getAttribute(selector, 'aria-describedby')) || '';
  const id = `${selector.slice(1)}-error`;
  assert.ok(describedBy.split(' ').includes(id), `${selector} is described by its message`);
}

/** The preview's sample parsed. The demo sends a bad payload now and then: retyping the pattern
 *  tries again with the topics' newer samples. */
async function waitForParsedSample(page, pattern) {
  const sample = page.locator('#pattern-preview-sample');
  await waitUntil(async () => {
    const state = await sample.getAttribute('data-state');
    if (state === 'parsed') return true;
    if (state === 'error') {
      await page.click('#discovered-refresh');
      await new Promise((done) => setTimeout(done, 500));
      await page.fill('#pattern-input', '');
      await page.fill('#pattern-input', pattern);
      await new Promise((done) => setTimeout(done, 500));
    }
    return false;
  }, 20_000, 'the sample payload parsed in the preview');
  assert.match(await sample.textContent(), /Datalogger gw-\d+ \/ dl-\d+: temperature [\d.-]+ °C, humidity/);
}

async function siteIdOf(page) {
  return page.locator('li[data-site-id]').first().getAttribute('data-site-id');
}

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
    await signIn(page, token);
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

test('a sensor\'s chart: the last hour in no more points than pixels, the API\'s buckets, drag to zoom, keys, Escape', { timeout: 90_000 }, async () => {
  // A zone other than UTC, so local times and their UTC form differ.
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, timezoneId: 'Europe/Berlin' });
  page.on('pageerror', (error) => { output += `\n[page error] ${error.message}`; });
  await signIn(page, token);
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

  // Drag across the plot, from just before the first reading (or, when the readings all came in
  // the last minutes, 60 px from the end) to the right end: a narrower range.
  const frame = await plot.locator('rect.chart-frame').boundingBox();
  const lineBox = await line.boundingBox();
  const end = frame.x + frame.width - 1;
  const start = Math.min(Math.max(lineBox.x - 2, frame.x + frame.width * 0.1), end - 60);
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
  await dialog.screenshot({ path: screenshotPath('SCREENSHOT_CHART', 'mqtt-supervisor-chart.png') });

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

  // A custom range that ends before it starts is refused beside the field, keeping what was typed.
  await dialog.getByRole('button', { name: 'Custom', exact: true }).click();
  await page.fill('#chart-start', '2000-01-02T00:00');
  await page.fill('#chart-end', '2000-01-01T00:00');
  await dialog.getByRole('button', { name: 'Show', exact: true }).click();
  assert.match(await dialog.locator('#chart-custom-error').textContent(), /at least 10 seconds after the start/);
  assert.equal(await page.locator('#chart-end').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('#chart-start').inputValue(), /^2000-01-02T00:00/);
  assert.equal(Number(await plot.getAttribute('data-view-end')) - Number(await plot.getAttribute('data-view-start')), 3_600_000, 'the shown range is kept');

  // A range without readings says so.
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
