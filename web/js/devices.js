// The Devices tab: the tree of gateways, dataloggers and sensors of the selected site, loaded
// from the API and kept current by live updates.

import { $, h, debounce } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { ageEl, formatValue, parseTs, setAge, truncate } from './format.js';
import { READINGS_LIMIT, addSeriesPoint, drawSpark, loadSeriesFor } from './sparklines.js';
import { siteName, state } from './state.js';
import { loadParsers } from './parser-list.js';
import { followSensorValue, relaySwitch } from './relay-switch.js';

const dlKey = (gw, dl) => `${gw}\u0000${dl}`;

export async function loadDevices() {
  const siteId = state.selected;
  if (siteId === null) return;
  const seq = ++state.devicesSeq;
  try {
    const [devices] = await Promise.all([
      api(`/api/sites/${siteId}/devices`),
      // Switches need the command templates; a failure only leaves them out.
      loadParsers().catch(() => []),
    ]);
    if (seq !== state.devicesSeq || siteId !== state.selected) return;
    renderDevices(Array.isArray(devices) ? devices : []);
    clearAlert('devices');
  } catch (err) {
    if (seq !== state.devicesSeq || siteId !== state.selected) return;
    showAlert(`Could not load devices of ${siteName(siteId)}: ${errorText(err)}`, { key: 'devices' });
    if (!state.devices.length) $('#devices-tree').replaceChildren();
  }
}

/** Reload the tree shortly; calls in quick succession make one request, and a steady stream of
 *  updates for devices not on screen yet (a site just set up) still reloads every 2 s. */
export const refetchDevicesSoon = debounce(loadDevices, 400, { maxWait: 2000 });

let visibilityObserver = null;

export function renderDevices(list) {
  const tree = $('#devices-tree');
  // keep focus on the same datalogger summary across a re-render
  const focusedKey = document.activeElement && tree.contains(document.activeElement)
    ? document.activeElement.closest('[data-key]')?.dataset.key : null;

  if (visibilityObserver) visibilityObserver.disconnect();
  state.dlVisible.clear();
  visibilityObserver = 'IntersectionObserver' in window
    ? new IntersectionObserver(onVisibility, { rootMargin: '200px 0px' })
    : null;

  state.devices = list;
  const idx = { gw: new Map(), dl: new Map(), sensor: new Map() };
  state.idx = idx;
  const frag = document.createDocumentFragment();
  for (const gw of list) frag.append(buildGateway(gw, idx));
  tree.replaceChildren(frag);
  if (!state.parsers) {
    // A tree pushed over the WebSocket may come before the templates: add switches after.
    loadParsers().then(() => {
      if (state.idx === idx) for (const entry of idx.sensor.values()) attachSwitch(entry);
    }).catch(() => {});
  }
  $('#devices-empty').hidden = list.length > 0 || state.selected === null;
  updateDevicesSummary();

  if (focusedKey) {
    const dl = [...idx.dl.values()].find((d) => d.key === focusedKey);
    if (dl) dl.summary.focus();
  }
  if (!visibilityObserver) {
    for (const dl of idx.dl.values()) if (dl.details.open) loadSeriesFor(dl);
  }
}

function updateDevicesSummary() {
  const gws = state.idx.gw.size;
  const dls = state.idx.dl.size;
  const sensors = state.idx.sensor.size;
  if (!gws) { $('#devices-summary').textContent = ''; return; }
  let online = 0;
  for (const d of state.idx.dl.values()) if (d.data.is_online) online++;
  $('#devices-summary').textContent =
    `${gws} gateway${gws === 1 ? '' : 's'} · ${online}/${dls} datalogger${dls === 1 ? '' : 's'} online · ${sensors} sensor${sensors === 1 ? '' : 's'}`;
}

function onlineMark(device) {
  const el = h('span', { class: 'online-mark' });
  setOnline(el, device);
  return el;
}

/** A device without `last_seen` is known only from retained messages (old news the broker
 * replays on subscribe): it is not offline, it has not been seen live. */
function setOnline(el, device) {
  const on = Boolean(device.is_online);
  const notSeenLive = !on && !device.last_seen;
  el.classList.toggle('is-online', on);
  el.classList.toggle('is-offline', !on);
  el.dataset.online = String(on);
  el.dataset.seenLive = String(!notSeenLive);
  el.textContent = on ? 'online' : notSeenLive ? 'not seen live' : 'offline';
  el.title = notSeenLive ? 'Known only from retained messages, which the broker keeps and may be old' : '';
}

function metadataList(meta) {
  const ul = h('ul', { class: 'meta' });
  fillMetadata(ul, meta);
  return ul;
}

function fillMetadata(ul, meta) {
  const items = [];
  if (meta && typeof meta === 'object' && !Array.isArray(meta)) {
    for (const [k, v] of Object.entries(meta)) {
      if (v === null || v === undefined) continue;
      const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
      items.push(h('li', { title: `${k}: ${text}` }, h('span', { class: 'meta-key', text: k }), ' ', h('span', { class: 'meta-value', text: truncate(text, 60) })));
    }
  }
  ul.replaceChildren(...items);
  ul.hidden = items.length === 0;
}

function buildGateway(gw, idx) {
  const titleId = `gw-${gw.id}-title`;
  const mark = onlineMark(gw);
  const seen = ageEl(gw.last_seen);
  const meta = metadataList(gw.metadata);
  const showIdent = gw.name && gw.name !== gw.identifier;
  const section = h('section', { class: 'gateway', 'data-gateway': gw.identifier, 'data-gateway-id': gw.id, 'aria-labelledby': titleId },
    h('header', { class: 'gateway-head' },
      h('h3', { id: titleId, class: 'gateway-title' },
        h('span', { class: 'kind', text: 'Gateway' }), ' ',
        gw.name || gw.identifier,
        showIdent ? h('span', { class: 'ident', text: gw.identifier }) : null),
      mark,
      h('span', { class: 'seen' }, 'last seen ', seen)),
    meta);
  const entry = { data: gw, el: section, mark, seen, meta };
  idx.gw.set(gw.identifier, entry);
  const dls = h('div', { class: 'dataloggers' });
  for (const dl of gw.dataloggers || []) dls.append(buildDatalogger(gw, dl, entry, idx));
  if (!(gw.dataloggers || []).length) dls.append(h('p', { class: 'muted small', text: 'No dataloggers seen on this gateway yet.' }));
  section.append(dls);
  return section;
}

function buildDatalogger(gw, dl, gwEntry, idx) {
  const key = dlKey(gw.identifier, dl.identifier);
  const open = state.dlOpen.has(key) ? state.dlOpen.get(key) : true;
  const mark = onlineMark(dl);
  const seen = ageEl(dl.last_seen);
  const count = h('span', { class: 'count' });
  const summary = h('summary', null,
    h('span', { class: 'dl-title' }, h('span', { class: 'kind', text: 'Datalogger' }), ' ', h('span', { class: 'dl-name', text: dl.identifier })),
    mark,
    h('span', { class: 'seen' }, 'last seen ', seen),
    count);
  const tbody = h('tbody');
  const table = h('table', { class: 'data-table sensors-table' },
    h('caption', { class: 'visually-hidden', text: `Sensors of datalogger ${dl.identifier}; Enter on a sensor shows the chart of its readings` }),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col', text: 'Sensor' }),
      h('th', { scope: 'col', class: 'num', text: 'Value' }),
      h('th', { scope: 'col', text: 'Unit' }),
      h('th', { scope: 'col', text: 'Updated' }),
      h('th', { scope: 'col', text: `Last ${READINGS_LIMIT}` }))),
    tbody);
  const details = h('details', { class: 'datalogger', 'data-datalogger': dl.identifier, 'data-datalogger-id': dl.id, 'data-key': key, open },
    summary,
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'dl-meta-wrap' }));
  const meta = metadataList(dl.metadata);
  details.lastElementChild.append(meta);

  const entry = { key, data: dl, gw: gwEntry, details, summary, mark, seen, meta, tbody, count, sensorsByName: new Map() };
  idx.dl.set(key, entry);
  for (const s of dl.sensors || []) tbody.append(buildSensorRow(s, entry, idx));
  if (!(dl.sensors || []).length) {
    tbody.append(h('tr', null, h('td', { colspan: 5, class: 'muted small', text: 'No sensors yet.' })));
  }
  updateDlCount(entry);

  details.addEventListener('toggle', () => {
    state.dlOpen.set(key, details.open);
    if (details.open && (state.dlVisible.get(key) || !visibilityObserver)) loadSeriesFor(entry);
  });
  if (visibilityObserver) visibilityObserver.observe(details);
  return details;
}

function updateDlCount(entry) {
  const n = entry.sensorsByName.size;
  entry.count.textContent = `${n} sensor${n === 1 ? '' : 's'}`;
}

function buildSensorRow(s, dlEntry, idx) {
  const value = h('td', { class: 'sensor-value num', 'data-unit': s.unit || '', text: formatValue(s.last_value) });
  value.addEventListener('animationend', () => value.classList.remove('flash'));
  const unit = h('td', { class: 'sensor-unit', text: s.unit || '' });
  const seen = ageEl(s.last_reading_at);
  const spark = h('td', { class: 'spark' });
  const name = h('th', { scope: 'row', class: 'sensor-name' }, h('span', { text: s.name }));
  const tr = h('tr', { class: 'sensor-row', tabindex: 0, 'data-sensor-id': s.id, 'data-sensor-name': s.name, title: 'Show the chart of its readings' },
    name, value, unit, h('td', { class: 'sensor-age' }, seen), spark);
  const entry = { data: s, dl: dlEntry, tr, name, value, unit, seen, spark };
  attachSwitch(entry);
  idx.sensor.set(s.id, entry);
  dlEntry.sensorsByName.set(s.name, entry);
  if (state.series.has(s.id)) drawSpark(entry);
  else spark.append(h('span', { class: 'spark-empty muted', text: '' }));
  return tr;
}

/** An on/off switch beside a sensor a command template controls (once the templates are known). */
function attachSwitch(entry) {
  if (entry.relaySwitch) return;
  const control = relaySwitch(entry);
  if (control) entry.name.append(' ', control);
}

function flash(el) {
  el.classList.remove('flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('flash');
}

export function applyDataloggerUpdate(msg) {
  const gw = state.idx.gw.get(msg.gateway);
  const dl = state.idx.dl.get(dlKey(msg.gateway, msg.datalogger));
  if (!gw || !dl) { refetchDevicesSoon(); return; }
  const ts = parseTs(msg.ts);
  // Retained news carries old values (applied by their own time below) but no sighting.
  if (!msg.retained && Number.isFinite(ts)) {
    if (!(parseTs(dl.data.last_seen) >= ts)) { dl.data.last_seen = msg.ts; setAge(dl.seen, msg.ts); }
    if (!(parseTs(gw.data.last_seen) >= ts)) { gw.data.last_seen = msg.ts; setAge(gw.seen, msg.ts); }
  }
  if (typeof msg.is_online === 'boolean') {
    dl.data.is_online = msg.is_online;
    setOnline(dl.mark, dl.data);
  }
  let missing = false;
  for (const s of Array.isArray(msg.sensors) ? msg.sensors : []) {
    let entry = s.id !== undefined && s.id !== null ? state.idx.sensor.get(s.id) : null;
    if (!entry) entry = dl.sensorsByName.get(s.name) || null;
    if (!entry) { missing = true; continue; }
    applySensorValue(entry, s, s.ts || msg.ts);
  }
  updateDevicesSummary();
  if (missing) refetchDevicesSoon();
}

function applySensorValue(entry, s, tsValue) {
  const ts = parseTs(tsValue);
  const currentTs = parseTs(entry.data.last_reading_at);
  const value = s.value;
  if (!(Number.isFinite(currentTs) && Number.isFinite(ts) && ts < currentTs)) {
    const before = entry.data.last_value;
    entry.data.last_value = value;
    if (tsValue) { entry.data.last_reading_at = tsValue; setAge(entry.seen, tsValue); }
    const text = formatValue(value);
    if (entry.value.textContent !== text) entry.value.textContent = text;
    if (s.unit !== undefined && s.unit !== null && s.unit !== entry.data.unit) {
      entry.data.unit = s.unit;
      entry.unit.textContent = s.unit;
      entry.value.dataset.unit = s.unit;
    }
    if (before !== value) flash(entry.value);
    followSensorValue(entry);
  }
  addSeriesPoint(entry.data.id, Number.isFinite(ts) ? ts : Date.now(), Number(value));
}

export function applyGatewayUpdate(msg) {
  const gw = state.idx.gw.get(msg.gateway);
  if (!gw) { refetchDevicesSoon(); return; }
  if (msg.last_seen) { gw.data.last_seen = msg.last_seen; setAge(gw.seen, msg.last_seen); }
  if (typeof msg.is_online === 'boolean') {
    gw.data.is_online = msg.is_online;
    setOnline(gw.mark, gw.data);
  }
  if (msg.metadata && typeof msg.metadata === 'object') {
    gw.data.metadata = msg.metadata;
    fillMetadata(gw.meta, msg.metadata);
  }
}

/** Load the trends of an open datalogger once it scrolls into view. */
function onVisibility(entries) {
  for (const e of entries) {
    const key = e.target.dataset.key;
    state.dlVisible.set(key, e.isIntersecting);
    if (e.isIntersecting && e.target.open) {
      const dl = state.idx.dl.get(key);
      if (dl) loadSeriesFor(dl);
    }
  }
}

export function initDevices() {
  $('#devices-refresh').addEventListener('click', () => { state.seriesFailed.clear(); loadDevices(); });
}
