// The chart of one sensor's readings, opened from its row: hand-written SVG of the buckets the
// database computes (average line, min–max band), never more buckets than the plot has pixel
// columns, with range buttons, drag to zoom, keyboard reading of the points and times in the
// browser's zone (UTC beside them).

import { $, h, svg, debounce } from './dom.js';
import { api, errorText } from './api.js';
import { formatValue, utcText } from './format.js';
import { state } from './state.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const RANGES = [
  { key: 'hour', label: 'Last hour', span: HOUR },
  { key: 'day', label: 'Last day', span: DAY },
  { key: 'week', label: 'Last week', span: 7 * DAY },
];

const PLOT_HEIGHT = 300;
const MARGIN = { top: 12, right: 16, bottom: 30, left: 64 };
// Buckets are whole seconds: a narrower view would only spread the same points further apart.
const MIN_SPAN = 10 * SECOND;
// A press that moves less than this is a click, not a drag to zoom.
const DRAG_THRESHOLD_PX = 6;
// The API's largest page of buckets.
const MAX_BUCKETS = 10_000;

const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

const chart = {
  parts: null,
  sensor: null,       // { id, name, unit, where }
  rangeKey: 'hour',   // kept from one sensor to the next
  base: null,         // { from, to } in ms: the chosen range
  view: null,         // { from, to } in ms: the range shown (narrower when zoomed)
  points: [],         // oldest first: { start, at, avg, min, max, count }
  bucketSecs: 1,
  seq: 0,
  scale: null,        // the geometry of the last drawing
  cursor: -1,         // index of the point shown under the cursor
  drag: null,
};

function durationText(secs) {
  const units = [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]];
  const parts = [];
  let rest = secs;
  for (const [name, size] of units) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)} ${name}`);
      rest %= size;
    } else if (parts.length) break;
  }
  return parts.join(' ') || '0 s';
}

/**
 * Seconds per bucket so that the buckets a range touches fit its pixel columns: a range touches
 * at most ceil(range / bucket) + 1 buckets (the first may start before it), hence width − 1.
 */
export function bucketSeconds(spanMs, plotWidth) {
  const columns = Math.max(1, Math.min(plotWidth, MAX_BUCKETS) - 1);
  return Math.max(1, Math.ceil(spanMs / SECOND / columns));
}

function buildDialog() {
  const close = h('button', { type: 'button', class: 'btn btn-quiet chart-close', 'aria-label': 'Close chart', text: '✕ Close' });
  const rangeButtons = RANGES.map((range) => h('button', {
    type: 'button', class: 'btn btn-small', 'data-range': range.key, 'aria-pressed': 'false', text: range.label,
  }));
  const customButton = h('button', { type: 'button', class: 'btn btn-small', 'data-range': 'custom', 'aria-pressed': 'false', text: 'Custom' });
  const resetZoom = h('button', { type: 'button', class: 'btn btn-small chart-reset', hidden: true, text: 'Reset zoom' });
  const fromInput = h('input', { type: 'datetime-local', id: 'chart-start', step: 1, required: true });
  const toInput = h('input', { type: 'datetime-local', id: 'chart-end', step: 1, required: true });
  const customError = h('p', { class: 'form-error', id: 'chart-custom-error', role: 'alert' });
  const custom = h('form', { class: 'chart-custom', hidden: true, novalidate: true, 'aria-label': 'Custom range' },
    h('div', { class: 'field' }, h('label', { for: 'chart-start', text: 'From' }), fromInput),
    h('div', { class: 'field' }, h('label', { for: 'chart-end', text: 'To' }), toInput),
    h('button', { type: 'submit', class: 'btn btn-small btn-primary', text: 'Show' }),
    customError);
  const rangeText = h('p', { class: 'chart-range-text small', 'aria-live': 'polite' });
  const plot = svg('svg', { class: 'chart-svg', role: 'img', tabindex: 0, 'aria-describedby': 'chart-summary chart-help' });
  const tooltip = h('div', { class: 'chart-tooltip', hidden: true });
  const empty = h('p', { class: 'chart-empty', hidden: true });
  const plotWrap = h('div', { class: 'chart-plot' }, plot, tooltip, empty);
  const summary = h('p', { id: 'chart-summary', class: 'visually-hidden' });
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
  const help = h('p', { id: 'chart-help', class: 'chart-help muted small' },
    `Times in ${zoneName}; hover a point for its value and UTC time. Drag across the plot to zoom in. `
    + 'On the focused plot: ← and → step through the points, Home and End jump to the ends, + and − zoom, Escape closes.');
  const title = h('h2', { id: 'chart-title' });
  const where = h('p', { id: 'chart-where', class: 'muted small' });
  const dialog = h('dialog', { class: 'chart-dialog', 'aria-labelledby': 'chart-title', 'aria-describedby': 'chart-where' },
    h('header', { class: 'chart-head' }, h('div', null, title, where), close),
    h('div', { class: 'chart-toolbar' },
      h('div', { class: 'chart-ranges', role: 'group', 'aria-label': 'Time range' }, rangeButtons, customButton),
      resetZoom),
    custom, rangeText, plotWrap, summary, announce, help);
  document.body.append(dialog);

  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', onClose);
  for (const button of rangeButtons) button.addEventListener('click', () => chooseRange(button.dataset.range));
  customButton.addEventListener('click', showCustomForm);
  custom.addEventListener('submit', (event) => { event.preventDefault(); applyCustomRange(); });
  resetZoom.addEventListener('click', () => { setView(chart.base); plot.focus(); });
  plot.addEventListener('pointerdown', onPointerDown);
  plot.addEventListener('pointermove', onPointerMove);
  plot.addEventListener('pointerup', onPointerUp);
  plot.addEventListener('pointercancel', () => endDrag());
  plot.addEventListener('pointerleave', () => { if (!chart.drag) hideCursor(); });
  plot.addEventListener('keydown', onPlotKey);
  plot.addEventListener('focus', () => {
    // Focus from the keyboard starts at the newest point; a press of the pointer shows its own.
    if (plot.matches(':focus-visible') && chart.cursor < 0 && chart.points.length) showCursor(chart.points.length - 1, true);
  });
  plot.addEventListener('blur', hideCursor);
  window.addEventListener('resize', debounce(() => { if (dialog.open) load(); }, 250));

  return { dialog, title, where, rangeButtons, customButton, resetZoom, custom, fromInput, toInput, customError, rangeText, plotWrap, plot, tooltip, empty, summary, announce };
}

/** Open the chart of a sensor of the tree shown. */
export function openSensorChart(sensorId) {
  const entry = state.idx.sensor.get(sensorId);
  if (!entry) return;
  if (!chart.parts) chart.parts = buildDialog();
  const { data } = entry;
  const gateway = entry.dl?.gw?.data;
  chart.sensor = {
    id: data.id,
    name: data.name,
    unit: data.unit || '',
    where: [gateway && (gateway.name || gateway.identifier), entry.dl?.data?.identifier].filter(Boolean).join(' › '),
  };
  const { parts } = chart;
  parts.title.textContent = `${data.name}${data.unit ? ` (${data.unit})` : ''}`;
  parts.where.textContent = chart.sensor.where ? `Readings of sensor ${data.name} on ${chart.sensor.where}` : `Readings of sensor ${data.name}`;
  chart.points = [];
  if (!parts.dialog.open) parts.dialog.showModal();
  if (chart.rangeKey === 'custom' && chart.base) {
    markRange('custom');
    setBase(chart.base);
  } else {
    chooseRange(chart.rangeKey === 'custom' ? 'hour' : chart.rangeKey);
  }
}

function onClose() {
  // The close event comes a task after the dialog closed: when the chart was opened again
  // meanwhile, its answer is the one on its way and must still be drawn.
  if (chart.parts.dialog.open) return;
  chart.seq++; // an answer still on its way is not drawn
  endDrag();
  hideCursor();
  const row = chart.sensor && document.querySelector(`tr[data-sensor-id="${chart.sensor.id}"]`);
  if (row) row.focus();
}

function markRange(key) {
  chart.rangeKey = key;
  for (const button of [...chart.parts.rangeButtons, chart.parts.customButton]) {
    button.setAttribute('aria-pressed', String(button.dataset.range === key));
  }
  chart.parts.custom.hidden = key !== 'custom';
}

function chooseRange(key) {
  const range = RANGES.find((candidate) => candidate.key === key) || RANGES[0];
  markRange(range.key);
  const to = Date.now();
  setBase({ from: to - range.span, to });
}

function setBase(range) {
  chart.base = { ...range };
  setView(range);
}

function setView(range) {
  chart.view = { ...range };
  const zoomed = range.from !== chart.base.from || range.to !== chart.base.to;
  chart.parts.resetZoom.hidden = !zoomed;
  load();
}

function localInputValue(ms) {
  const date = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

function showCustomForm() {
  const { parts } = chart;
  markRange('custom');
  parts.fromInput.value = localInputValue(chart.view.from);
  parts.toInput.value = localInputValue(chart.view.to);
  parts.customError.textContent = '';
  parts.fromInput.focus();
}

function applyCustomRange() {
  const { parts } = chart;
  // A datetime-local value without zone is read in the browser's zone.
  const from = Date.parse(parts.fromInput.value);
  const to = Date.parse(parts.toInput.value);
  parts.fromInput.removeAttribute('aria-invalid');
  parts.toInput.removeAttribute('aria-invalid');
  let problem = null;
  if (!Number.isFinite(from)) problem = [parts.fromInput, 'Enter the start of the range.'];
  else if (!Number.isFinite(to)) problem = [parts.toInput, 'Enter the end of the range.'];
  else if (to - from < MIN_SPAN) problem = [parts.toInput, 'The end must be at least 10 seconds after the start.'];
  if (problem) {
    problem[0].setAttribute('aria-invalid', 'true');
    problem[0].setAttribute('aria-describedby', 'chart-custom-error');
    parts.customError.textContent = problem[1];
    problem[0].focus();
    return;
  }
  parts.customError.textContent = '';
  setBase({ from, to });
}

function plotWidth() {
  const outer = Math.floor(chart.parts.plotWrap.clientWidth) || 600;
  return Math.max(50, outer - MARGIN.left - MARGIN.right);
}

async function load() {
  const { parts } = chart;
  const seq = ++chart.seq;
  const { from, to } = chart.view;
  const width = plotWidth();
  const bucketSecs = bucketSeconds(to - from, width);
  const limit = Math.min(MAX_BUCKETS, Math.ceil((to - from) / SECOND / bucketSecs) + 1);
  const url = `/api/sensors/${chart.sensor.id}/readings?from=${encodeURIComponent(new Date(from).toISOString())}`
    + `&to=${encodeURIComponent(new Date(to).toISOString())}&bucket=${bucketSecs}&limit=${limit}`;
  parts.plotWrap.setAttribute('aria-busy', 'true');
  showRangeText(from, to, bucketSecs);
  let rows;
  try {
    rows = await api(url);
  } catch (err) {
    if (seq !== chart.seq) return;
    parts.plotWrap.setAttribute('aria-busy', 'false');
    chart.points = [];
    draw({ url, width, bucketSecs, error: `The readings could not be loaded: ${errorText(err)}` });
    return;
  }
  if (seq !== chart.seq) return;
  parts.plotWrap.setAttribute('aria-busy', 'false');
  chart.bucketSecs = bucketSecs;
  chart.points = (Array.isArray(rows) ? rows : [])
    .map((row) => {
      const start = Date.parse(row.ts);
      const avg = Number(row.avg ?? row.value);
      // A bucket is drawn at its middle, kept inside the view for the first and last.
      const at = Math.min(to, Math.max(from, start + (bucketSecs * SECOND) / 2));
      return { start, at, avg, min: Number(row.min ?? avg), max: Number(row.max ?? avg), count: Number(row.count ?? 1) };
    })
    .filter((point) => Number.isFinite(point.start) && Number.isFinite(point.avg))
    .sort((a, b) => a.start - b.start);
  draw({ url, width, bucketSecs });
}

function showRangeText(from, to, bucketSecs) {
  const { rangeText } = chart.parts;
  rangeText.replaceChildren(
    h('time', { datetime: new Date(from).toISOString(), title: utcText(from), text: fullTime.format(from) }),
    ' – ',
    h('time', { datetime: new Date(to).toISOString(), title: utcText(to), text: fullTime.format(to) }),
    h('span', { class: 'muted', text: ` · ${zoneName} · one point per ${durationText(bucketSecs)}` }));
}

/** Round steps for the value axis: about `count` of them between min and max. */
function valueTicks(min, max, count) {
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw) || raw;
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks = [];
  for (let value = low; value <= high + step / 2; value += step) ticks.push(Number(value.toPrecision(12)));
  return { low, high, ticks };
}

// Time axis steps, smallest first: [count, unit].
const TIME_STEPS = [[1, 's'], [5, 's'], [10, 's'], [15, 's'], [30, 's'], [1, 'm'], [2, 'm'], [5, 'm'], [10, 'm'], [15, 'm'],
  [30, 'm'], [1, 'h'], [2, 'h'], [3, 'h'], [6, 'h'], [12, 'h'], [1, 'd'], [2, 'd'], [7, 'd'], [14, 'd'], [1, 'M'], [3, 'M'], [6, 'M'], [1, 'y']];
const UNIT_MS = { s: SECOND, m: MINUTE, h: HOUR, d: DAY, M: 30.44 * DAY, y: 365.25 * DAY };

/** The first tick at or before `ms`, aligned to the step in the browser's zone. */
function alignTick(ms, count, unit) {
  const date = new Date(ms);
  const down = (value) => Math.floor(value / count) * count;
  if (unit === 's') date.setSeconds(down(date.getSeconds()), 0);
  else if (unit === 'm') date.setMinutes(down(date.getMinutes()), 0, 0);
  else if (unit === 'h') date.setHours(down(date.getHours()), 0, 0, 0);
  else if (unit === 'd') {
    date.setHours(0, 0, 0, 0);
    if (count >= 7) date.setDate(date.getDate() - ((date.getDay() + 6) % 7)); // weeks start on Monday
    else date.setDate(down(date.getDate() - 1) + 1);
  } else if (unit === 'M') {
    date.setHours(0, 0, 0, 0);
    date.setMonth(down(date.getMonth()), 1);
  } else {
    date.setHours(0, 0, 0, 0);
    date.setMonth(0, 1);
  }
  return date.getTime();
}

function nextTick(ms, count, unit) {
  if (unit === 's' || unit === 'm' || unit === 'h') return ms + count * UNIT_MS[unit];
  const date = new Date(ms);
  if (unit === 'd') date.setDate(date.getDate() + count);
  else if (unit === 'M') date.setMonth(date.getMonth() + count);
  else date.setFullYear(date.getFullYear() + count);
  return date.getTime();
}

function timeTicks(from, to, width) {
  const wanted = Math.max(2, Math.floor(width / 110));
  const [count, unit] = TIME_STEPS.find(([n, u]) => n * UNIT_MS[u] >= (to - from) / wanted) || TIME_STEPS[TIME_STEPS.length - 1];
  const options = {
    s: { hour: '2-digit', minute: '2-digit', second: '2-digit' },
    m: { hour: '2-digit', minute: '2-digit' },
    h: { hour: '2-digit', minute: '2-digit' },
    d: { day: 'numeric', month: 'short' },
    M: { month: 'short', year: 'numeric' },
    y: { year: 'numeric' },
  }[unit];
  const format = new Intl.DateTimeFormat(undefined, options);
  const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
  const ticks = [];
  for (let tick = alignTick(from, count, unit); tick <= to && ticks.length < 200; tick = nextTick(tick, count, unit)) {
    if (tick < from) continue;
    const date = new Date(tick);
    // Within a day's steps, midnight shows which day begins.
    const midnight = 'smh'.includes(unit) && date.getHours() === 0 && date.getMinutes() === 0 && date.getSeconds() === 0;
    ticks.push({ at: tick, label: midnight ? dayFormat.format(date) : format.format(date), strong: midnight });
  }
  return ticks;
}

/** Points split where readings are missing for much longer than usual, so no line bridges a gap. */
function segments(points, bucketMs) {
  const gaps = [];
  for (let i = 1; i < points.length; i++) gaps.push(points[i].start - points[i - 1].start);
  const usual = gaps.length ? [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)] : bucketMs;
  const limit = Math.max(2 * bucketMs, 3 * usual);
  const result = [];
  let current = [];
  points.forEach((point, i) => {
    if (i > 0 && point.start - points[i - 1].start > limit) { result.push(current); current = []; }
    current.push(point);
  });
  if (current.length) result.push(current);
  return result;
}

function draw({ url, width, bucketSecs, error }) {
  const { parts } = chart;
  const { from, to } = chart.view;
  const { points } = chart;
  const outerWidth = width + MARGIN.left + MARGIN.right;
  const outerHeight = PLOT_HEIGHT + MARGIN.top + MARGIN.bottom;
  const plot = parts.plot;
  for (const [name, value] of Object.entries({
    width: outerWidth, height: outerHeight, viewBox: `0 0 ${outerWidth} ${outerHeight}`,
    'data-url': url, 'data-plot-width': width, 'data-bucket': bucketSecs, 'data-view-start': from, 'data-view-end': to,
  })) plot.setAttribute(name, String(value));
  hideCursor();

  let low = Infinity;
  let high = -Infinity;
  let total = 0;
  let lowest = null;
  let highest = null;
  for (const point of points) {
    if (point.min < low) { low = point.min; lowest = point; }
    if (point.max > high) { high = point.max; highest = point; }
    total += point.count;
  }
  if (!points.length) { low = 0; high = 1; } else if (high - low < 1e-9) { low -= Math.abs(low) * 0.05 || 1; high += Math.abs(high) * 0.05 || 1; }
  const values = valueTicks(low, high, 5);
  const x = (ms) => MARGIN.left + ((ms - from) / (to - from)) * width;
  const y = (value) => MARGIN.top + (1 - (value - values.low) / (values.high - values.low)) * PLOT_HEIGHT;
  chart.scale = { x, y, width, from, to };

  const children = [];
  const grid = svg('g', { class: 'chart-grid', 'aria-hidden': 'true' });
  const axisY = svg('g', { class: 'chart-axis chart-axis-y', 'aria-hidden': 'true' });
  for (const value of values.ticks) {
    const at = y(value).toFixed(1);
    grid.append(svg('line', { x1: MARGIN.left, x2: MARGIN.left + width, y1: at, y2: at }));
    const label = svg('text', { x: MARGIN.left - 8, y: at, 'text-anchor': 'end', 'dominant-baseline': 'middle' });
    label.textContent = formatValue(value);
    axisY.append(label);
  }
  const axisX = svg('g', { class: 'chart-axis chart-axis-x' });
  for (const tick of timeTicks(from, to, width)) {
    const at = x(tick.at).toFixed(1);
    grid.append(svg('line', { x1: at, x2: at, y1: MARGIN.top, y2: MARGIN.top + PLOT_HEIGHT }));
    // A label near either end is aligned to that end so it stays whole.
    const room = Math.min(x(tick.at), outerWidth - x(tick.at));
    const anchor = room * 2 >= tick.label.length * 7 ? 'middle' : x(tick.at) < outerWidth / 2 ? 'start' : 'end';
    const label = svg('text', { x: at, y: MARGIN.top + PLOT_HEIGHT + 18, 'text-anchor': anchor });
    if (tick.strong) label.setAttribute('class', 'strong');
    label.textContent = tick.label;
    const title = svg('title');
    title.textContent = utcText(tick.at);
    label.append(title);
    axisX.append(label);
  }
  children.push(grid, axisY, axisX);
  children.push(svg('rect', { class: 'chart-frame', x: MARGIN.left, y: MARGIN.top, width, height: PLOT_HEIGHT, 'aria-hidden': 'true' }));

  if (points.length) {
    let band = '';
    let line = '';
    for (const segment of segments(points, bucketSecs * SECOND)) {
      const top = segment.map((p) => `${x(p.at).toFixed(1)},${y(p.max).toFixed(1)}`);
      const bottom = segment.map((p) => `${x(p.at).toFixed(1)},${y(p.min).toFixed(1)}`).reverse();
      band += `M${top.join('L')}L${bottom.join('L')}Z`;
      const averages = segment.map((p) => `${x(p.at).toFixed(1)},${y(p.avg).toFixed(1)}`);
      // A lone point is a zero-length stroke, drawn as a dot by the round line caps.
      line += `M${averages.join('L')}${segment.length === 1 ? 'h0' : ''}`;
    }
    children.push(svg('path', { class: 'chart-band', d: band, 'aria-hidden': 'true' }));
    children.push(svg('path', {
      class: 'chart-line', d: line, 'aria-hidden': 'true',
      'data-points': points.length, 'data-first': points[0].start, 'data-last': points[points.length - 1].start,
    }));
  }
  const cursor = svg('g', { class: 'chart-cursor', visibility: 'hidden', 'aria-hidden': 'true' });
  cursor.append(svg('line', { y1: MARGIN.top, y2: MARGIN.top + PLOT_HEIGHT }), svg('circle', { r: 4 }));
  const selection = svg('rect', { class: 'chart-selection', y: MARGIN.top, height: PLOT_HEIGHT, width: 0, visibility: 'hidden', 'aria-hidden': 'true' });
  children.push(cursor, selection);
  plot.replaceChildren(...children);
  chart.scale.cursor = cursor;
  chart.scale.selection = selection;

  const unit = chart.sensor.unit ? ` ${chart.sensor.unit}` : '';
  const rangeLabel = `${fullTime.format(from)} to ${fullTime.format(to)}`;
  plot.setAttribute('aria-label', `Chart of ${chart.sensor.name} from ${rangeLabel}`);
  parts.empty.hidden = points.length > 0 && !error;
  parts.empty.classList.toggle('is-error', Boolean(error));
  if (error) {
    parts.empty.textContent = error;
    parts.summary.textContent = error;
  } else if (!points.length) {
    parts.empty.textContent = `No readings between ${rangeLabel}.`;
    parts.summary.textContent = parts.empty.textContent;
  } else {
    const latest = points[points.length - 1];
    parts.summary.textContent = `${total} reading${total === 1 ? '' : 's'} in ${points.length} point${points.length === 1 ? '' : 's'}`
      + ` of ${durationText(bucketSecs)} each. Lowest ${formatValue(low)}${unit} on ${fullTime.format(lowest.start)},`
      + ` highest ${formatValue(high)}${unit} on ${fullTime.format(highest.start)}, latest average ${formatValue(latest.avg)}${unit}.`;
  }
}

function nearestIndex(ms) {
  const { points } = chart;
  let low = 0;
  let high = points.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (points[middle].at < ms) low = middle + 1;
    else high = middle;
  }
  if (low > 0 && Math.abs(points[low - 1].at - ms) <= Math.abs(points[low].at - ms)) return low - 1;
  return low;
}

function showCursor(index, announce) {
  const { points, scale, parts } = chart;
  const point = points[index];
  if (!point || !scale) return;
  chart.cursor = index;
  const px = scale.x(point.at);
  const py = scale.y(point.avg);
  const [line, dot] = scale.cursor.children;
  line.setAttribute('x1', px.toFixed(1));
  line.setAttribute('x2', px.toFixed(1));
  dot.setAttribute('cx', px.toFixed(1));
  dot.setAttribute('cy', py.toFixed(1));
  scale.cursor.setAttribute('visibility', 'visible');

  const unit = chart.sensor.unit ? ` ${chart.sensor.unit}` : '';
  const bucketMs = chart.bucketSecs * SECOND;
  const when = chart.bucketSecs > 1
    ? `${fullTime.format(point.start)} – ${fullTime.format(point.start + bucketMs)}`
    : fullTime.format(point.start);
  const utc = chart.bucketSecs > 1 ? `${utcText(point.start)} – ${utcText(point.start + bucketMs)}` : utcText(point.start);
  const detail = point.count > 1
    ? `average of ${point.count} readings, min ${formatValue(point.min)}, max ${formatValue(point.max)}`
    : '1 reading';
  parts.tooltip.replaceChildren(
    h('strong', { text: `${formatValue(point.avg)}${unit}` }),
    h('span', { class: 'muted', text: ` ${detail}` }),
    h('br'),
    h('time', { datetime: new Date(point.start).toISOString(), title: utc, text: when }),
    h('br'),
    h('span', { class: 'muted small', text: utc }));
  parts.tooltip.hidden = false;
  const wrapWidth = parts.plotWrap.clientWidth;
  const tipWidth = parts.tooltip.offsetWidth;
  const left = px + 14 + tipWidth > wrapWidth ? px - 14 - tipWidth : px + 14;
  parts.tooltip.style.left = `${Math.max(0, left)}px`;
  // Away from the point: at the top of the plot for a low point, at the bottom for a high one.
  const lowPoint = py > MARGIN.top + PLOT_HEIGHT / 2;
  parts.tooltip.style.top = `${lowPoint ? MARGIN.top + 6 : MARGIN.top + PLOT_HEIGHT - 6 - parts.tooltip.offsetHeight}px`;
  parts.plot.setAttribute('data-cursor', String(index));
  if (announce) parts.announce.textContent = `${formatValue(point.avg)}${unit}, ${when}, ${detail}`;
}

function hideCursor() {
  if (!chart.parts) return;
  chart.cursor = -1;
  chart.parts.tooltip.hidden = true;
  chart.parts.plot.removeAttribute('data-cursor');
  chart.scale?.cursor?.setAttribute('visibility', 'hidden');
}

/** Pointer position in the plot's own units, kept inside the plot area. */
function plotX(event) {
  const box = chart.parts.plot.getBoundingClientRect();
  const scale = chart.scale;
  return Math.min(MARGIN.left + scale.width, Math.max(MARGIN.left, event.clientX - box.left));
}

function timeAt(px) {
  const { from, to, width } = chart.scale;
  return from + ((px - MARGIN.left) / width) * (to - from);
}

function onPointerDown(event) {
  if (event.button !== 0 || !chart.scale) return;
  chart.drag = { start: plotX(event), moved: false, pointer: event.pointerId };
  chart.parts.plot.setPointerCapture(event.pointerId);
}

function onPointerMove(event) {
  if (!chart.scale) return;
  const px = plotX(event);
  const { drag } = chart;
  if (drag) {
    if (Math.abs(px - drag.start) >= DRAG_THRESHOLD_PX) drag.moved = true;
    if (drag.moved) {
      hideCursor();
      const selection = chart.scale.selection;
      selection.setAttribute('x', Math.min(px, drag.start).toFixed(1));
      selection.setAttribute('width', Math.abs(px - drag.start).toFixed(1));
      selection.setAttribute('visibility', 'visible');
    }
    return;
  }
  if (chart.points.length) showCursor(nearestIndex(timeAt(px)), false);
}

function onPointerUp(event) {
  const { drag } = chart;
  if (!drag) return;
  const px = plotX(event);
  endDrag();
  if (drag.moved && Math.abs(px - drag.start) >= DRAG_THRESHOLD_PX) {
    const [left, right] = [Math.min(px, drag.start), Math.max(px, drag.start)];
    zoomTo(timeAt(left), timeAt(right));
  }
}

function endDrag() {
  if (chart.drag && chart.parts.plot.hasPointerCapture?.(chart.drag.pointer)) {
    chart.parts.plot.releasePointerCapture(chart.drag.pointer);
  }
  chart.drag = null;
  chart.scale?.selection?.setAttribute('visibility', 'hidden');
}

/** Show [from, to] (widened to the smallest span, kept inside the chosen range). */
function zoomTo(from, to) {
  const base = chart.base;
  let start = Math.round(from);
  let end = Math.round(to);
  if (end - start < MIN_SPAN) {
    const middle = (start + end) / 2;
    start = Math.round(middle - MIN_SPAN / 2);
    end = start + MIN_SPAN;
  }
  if (start < base.from) { end += base.from - start; start = base.from; }
  if (end > base.to) { start -= end - base.to; end = base.to; }
  setView({ from: Math.max(base.from, start), to: end });
}

function onPlotKey(event) {
  const { points } = chart;
  const last = points.length - 1;
  const current = chart.cursor >= 0 ? chart.cursor : last;
  const moves = {
    ArrowLeft: current - 1,
    ArrowRight: current + 1,
    PageUp: current - 10,
    PageDown: current + 10,
    Home: 0,
    End: last,
  };
  if (event.key in moves) {
    event.preventDefault();
    if (points.length) showCursor(Math.max(0, Math.min(last, moves[event.key])), true);
    return;
  }
  const { from, to } = chart.view;
  const center = chart.cursor >= 0 ? points[chart.cursor].at : (from + to) / 2;
  if (event.key === '+' || event.key === '=') {
    event.preventDefault();
    const span = (to - from) / 4;
    zoomTo(center - span, center + span);
  } else if (event.key === '-' || event.key === '_') {
    event.preventDefault();
    const span = to - from;
    zoomTo(center - span, center + span);
  }
}

/** Sensor rows open their chart on click, Enter or Space; ↑ and ↓ move between rows. */
export function initSensorChart() {
  const tree = $('#devices-tree');
  tree.addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-sensor-id]');
    if (!row || !tree.contains(row)) return;
    if (event.target.closest('button')) return; // a control in the row, such as a relay switch
    if (String(window.getSelection?.() || '')) return; // selecting text is not a click
    openSensorChart(Number(row.dataset.sensorId));
  });
  tree.addEventListener('keydown', (event) => {
    const row = event.target;
    if (!(row instanceof HTMLTableRowElement) || !row.dataset.sensorId) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      openSensorChart(Number(row.dataset.sensorId));
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const rows = [...tree.querySelectorAll('tr[data-sensor-id]')].filter((candidate) => candidate.offsetParent !== null);
      const next = rows[rows.indexOf(row) + (event.key === 'ArrowDown' ? 1 : -1)];
      if (next) { event.preventDefault(); next.focus(); }
    }
  });
}
