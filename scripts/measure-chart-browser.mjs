// Times the sensor chart in headless Chromium against a running service (scripts/measure-chart
// starts one): from the click to the drawn line, measured inside the page, for opening the chart
// from the sensor's row (last hour) and for the last day, the last week and the whole year.
//   node scripts/measure-chart-browser.mjs BASE_URL TOKEN [RUNS]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// playwright-core as the browser test installs it (tests/browser/run.sh).
const { chromium } = await import(pathToFileURL(join(root, 'tests/browser/node_modules/playwright-core/index.mjs')).href);
const [baseUrl, token, runsText = '7'] = process.argv.slice(2);
if (!baseUrl || !token) {
  console.error('usage: node scripts/measure-chart-browser.mjs BASE_URL TOKEN [RUNS]');
  process.exit(2);
}
const runs = Number(runsText);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(baseUrl);
  await page.locator('#token-input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.fill('#token-input', token);
  await page.click('#token-submit');
  await page.locator('tr[data-sensor-id]').first().waitFor({ timeout: 20_000 });

  // One click, timed in the page until the line is in the document and a frame has been drawn.
  const timeClick = (selector, setUp) => page.evaluate(async ({ selector, setUp }) => {
    const plot = document.querySelector('svg.chart-svg');
    if (plot) plot.removeAttribute('data-url');
    performance.clearResourceTimings();
    if (setUp === 'year') {
      const local = (ms) => {
        const date = new Date(ms);
        const two = (n) => String(n).padStart(2, '0');
        return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
      };
      const now = Date.now();
      document.querySelector('#chart-start').value = local(now - 365 * 86_400_000);
      document.querySelector('#chart-end').value = local(now);
    }
    const started = performance.now();
    document.querySelector(selector).click();
    await new Promise((done, fail) => {
      const check = () => {
        const svgNow = document.querySelector('svg.chart-svg');
        const busy = document.querySelector('.chart-plot')?.getAttribute('aria-busy');
        if (svgNow?.getAttribute('data-url') && busy === 'false') done();
        else if (performance.now() - started > 60_000) {
          fail(new Error(`no chart after a minute: dialog open ${document.querySelector('dialog.chart-dialog')?.open}, busy ${busy}`));
        } else setTimeout(check, 1);
      };
      check();
    });
    await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
    const elapsed = performance.now() - started;
    const svgNow = document.querySelector('svg.chart-svg');
    // The request's own share: from sending it to the last byte of the answer.
    const request = performance.getEntriesByType('resource').find((entry) => entry.name.includes('/readings?'));
    return {
      ms: elapsed,
      requestMs: request ? request.responseEnd - request.startTime : NaN,
      points: Number(svgNow.querySelector('path.chart-line')?.getAttribute('data-points') || 0),
      width: Number(svgNow.getAttribute('data-plot-width')),
      bucket: Number(svgNow.getAttribute('data-bucket')),
    };
  }, { selector, setUp });

  const medianOf = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  const report = (label, results) => {
    const times = results.map((result) => result.ms).sort((a, b) => a - b);
    const { points, width, bucket } = results[results.length - 1];
    console.log(`  ${label.padEnd(10)} bucket ${String(bucket).padStart(6)} s  ${String(points).padStart(5)} points`
      + ` (plot ${width} px)  median ${medianOf(times).toFixed(1)} ms, of which the request ${medianOf(results.map((result) => result.requestMs)).toFixed(1)}`
      + `  (min ${times[0].toFixed(1)}, max ${times[times.length - 1].toFixed(1)}, ${times.length} runs)`);
  };

  const opened = [];
  for (let run = 0; run <= runs; run++) {
    const result = await timeClick('tr[data-sensor-id]', null);
    if (run > 0) opened.push(result); // the first run warms the caches
    await page.keyboard.press('Escape');
  }
  report('open', opened);
  await page.click('tr[data-sensor-id]');
  for (const [label, selector, setUp] of [
    ['day', '.chart-ranges [data-range="day"]', null],
    ['week', '.chart-ranges [data-range="week"]', null],
    ['year', '.chart-custom button[type="submit"]', 'year'],
  ]) {
    if (setUp === 'year') await page.click('.chart-ranges [data-range="custom"]');
    const results = [];
    for (let run = 0; run <= runs; run++) {
      const result = await timeClick(selector, setUp);
      if (run > 0) results.push(result);
    }
    report(label, results);
  }
} finally {
  await browser.close();
}
