// The Device history tab: gateways and dataloggers going online and offline, newest first,
// with the reason (a status message, silence past the offline timeout, …).

import { $, h, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { ageEl, formatAbsolute } from './format.js';
import { state } from './state.js';

export async function loadHistory() {
  const siteId = state.selected;
  state.stale.history = false;
  loadedAt = Date.now();
  setBusy('#history-body', true);
  try {
    const rows = await api(`/api/sites/${siteId}/device-events?limit=100`);
    if (siteId !== state.selected) return;
    const list = Array.isArray(rows) ? rows : [];
    $('#history-body').replaceChildren(...list.map((event) => {
      const device = event.datalogger ? `${event.gateway} / ${event.datalogger}` : event.gateway;
      const now = event.is_online ? 'online' : 'offline';
      return h('tr', { class: 'device-event', 'data-online': String(event.is_online) },
        h('td', { class: 'nowrap' }, h('span', { text: formatAbsolute(event.at) }), h('br'), ageEl(event.at)),
        h('td', { class: 'device-name', text: device }),
        h('td', null, h('span', { class: `status status-${now}`, text: now })),
        h('td', { class: 'message', text: event.cause || '' }));
    }));
    $('#history-empty').hidden = list.length > 0;
    $('#history-summary').textContent = list.length ? `${list.length} most recent` : '';
    clearAlert('history');
  } catch (err) {
    if (siteId !== state.selected) return;
    state.stale.history = true;
    showAlert(`Could not load the device history: ${errorText(err)}`, { key: 'history' });
  } finally {
    setBusy('#history-body', false);
  }
}

const RELOAD_AT_MOST_EVERY_MS = 5000;
let loadedAt = 0;

/** Live device data arrived: reload the history if it is on screen (at most every 5 s), else
 * when it is shown next. */
export function refreshHistorySoon() {
  if (state.tab !== 'history') {
    state.stale.history = true;
    return;
  }
  if (Date.now() - loadedAt > RELOAD_AT_MOST_EVERY_MS) loadHistory();
}

export function initDeviceHistory() {
  $('#history-refresh').addEventListener('click', () => loadHistory());
}
