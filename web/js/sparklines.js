// The trend of each sensor's last readings: loaded a few sensors at a time, extended by live
// values, drawn as a small SVG line.

import { h, svg } from './dom.js';
import { api, errorText } from './api.js';
import { formatValue, parseTs } from './format.js';
import { state } from './state.js';

export const READINGS_LIMIT = 30;
const READINGS_CONCURRENCY = 4;

const readingsQueue = [];
let readingsActive = 0;

/** Load the trends of a datalogger's sensors that have none yet. */
export function loadSeriesFor(dl) {
  for (const entry of dl.sensorsByName.values()) {
    const id = entry.data.id;
    if (state.series.has(id) || state.seriesLoading.has(id) || state.seriesFailed.has(id)) continue;
    state.seriesLoading.add(id);
    entry.spark.replaceChildren(h('span', { class: 'spark-empty muted', text: '…', 'aria-label': 'loading trend' }));
    readingsQueue.push(id);
  }
  pumpReadings();
}

function pumpReadings() {
  while (readingsActive < READINGS_CONCURRENCY && readingsQueue.length) {
    const id = readingsQueue.shift();
    readingsActive++;
    fetchSeries(id).finally(() => { readingsActive--; pumpReadings(); });
  }
}

async function fetchSeries(id) {
  try {
    const rows = await api(`/api/sensors/${id}/readings?limit=${READINGS_LIMIT}`);
    const points = (Array.isArray(rows) ? rows : [])
      .map((r) => ({ t: parseTs(r.ts), v: Number(r.value) }))
      .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
      .sort((a, b) => a.t - b.t);
    state.seriesLoading.delete(id);
    state.series.set(id, points);
    for (const p of state.seriesEarly.get(id) || []) addSeriesPoint(id, p.t, p.v, false);
    state.seriesEarly.delete(id);
    const entry = state.idx.sensor.get(id);
    if (entry) drawSpark(entry);
  } catch (err) {
    state.seriesLoading.delete(id);
    state.seriesEarly.delete(id);
    state.seriesFailed.add(id);
    const entry = state.idx.sensor.get(id);
    if (entry) entry.spark.replaceChildren(h('span', { class: 'spark-empty muted', text: 'n/a', title: `Readings could not be loaded: ${errorText(err)}` }));
  }
}

/** Add a live value to a sensor's trend (kept aside while its readings are loading). */
export function addSeriesPoint(id, t, v, redraw = true) {
  if (!Number.isFinite(v)) return;
  if (state.seriesLoading.has(id)) {
    const early = state.seriesEarly.get(id) || [];
    early.push({ t, v });
    state.seriesEarly.set(id, early);
    return;
  }
  const points = state.series.get(id);
  if (!points) return; // not loaded yet: the fetch will include it
  const same = points.findIndex((p) => p.t === t);
  if (same >= 0) points[same].v = v;
  else {
    points.push({ t, v });
    points.sort((a, b) => a.t - b.t);
  }
  while (points.length > READINGS_LIMIT) points.shift();
  if (redraw) {
    const entry = state.idx.sensor.get(id);
    if (entry) drawSpark(entry);
  }
}

export function drawSpark(entry) {
  const points = state.series.get(entry.data.id) || [];
  if (!points.length) {
    entry.spark.replaceChildren(h('span', { class: 'spark-empty muted', text: 'no data' }));
    return;
  }
  const W = 120, H = 28, PAD = 3;
  let min = Infinity, max = -Infinity;
  for (const p of points) { if (p.v < min) min = p.v; if (p.v > max) max = p.v; }
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const x = (p, i) => {
    if (points.length === 1) return W - PAD;
    const frac = t1 > t0 ? (p.t - t0) / (t1 - t0) : i / (points.length - 1);
    return PAD + frac * (W - 2 * PAD);
  };
  const y = (p) => (max > min ? PAD + (1 - (p.v - min) / (max - min)) * (H - 2 * PAD) : H / 2);
  const last = points[points.length - 1];
  const label = `Last ${points.length} reading${points.length === 1 ? '' : 's'}: min ${formatValue(min)}, max ${formatValue(max)}, latest ${formatValue(last.v)}`;
  const el = svg('svg', { class: 'sparkline', width: W, height: H, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  const title = svg('title');
  title.textContent = label;
  el.append(title);
  if (points.length > 1) {
    const coords = points.map((p, i) => `${x(p, i).toFixed(1)},${y(p).toFixed(1)}`);
    el.append(svg('polyline', { class: 'spark-line', points: coords.join(' '), fill: 'none', 'vector-effect': 'non-scaling-stroke' }));
  }
  el.append(svg('circle', { class: 'spark-dot', cx: x(last, points.length - 1).toFixed(1), cy: y(last).toFixed(1), r: 2.2 }));
  entry.spark.replaceChildren(el);
}
