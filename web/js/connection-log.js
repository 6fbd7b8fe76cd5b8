// The Connection log tab: the site's connection events, newest first.

import { $, h, debounce, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { ageEl, formatAbsolute } from './format.js';
import { state } from './state.js';

export async function loadConnLog() {
  const siteId = state.selected;
  state.stale.connlog = false;
  setBusy('#connlog-body', true);
  try {
    const rows = await api(`/api/mqtt/connection-logs?site_id=${siteId}&limit=50`);
    if (siteId !== state.selected) return;
    const list = Array.isArray(rows) ? rows : [];
    $('#connlog-body').replaceChildren(...list.map((r) => h('tr', { 'data-log-id': r.id },
      h('td', { class: 'nowrap' }, h('span', { text: formatAbsolute(r.created_at) }), h('br'), ageEl(r.created_at)),
      h('td', null, h('span', { class: `event event-${String(r.event).replace(/[^a-z0-9_-]/gi, '')}`, text: r.event })),
      h('td', { class: 'message', text: r.message || '' }))));
    $('#connlog-empty').hidden = list.length > 0;
    $('#connlog-summary').textContent = list.length ? `${list.length} most recent` : '';
    clearAlert('connlog');
  } catch (err) {
    if (siteId !== state.selected) return;
    state.stale.connlog = true;
    showAlert(`Could not load the connection log: ${errorText(err)}`, { key: 'connlog' });
  } finally {
    setBusy('#connlog-body', false);
  }
}

/** Reload the log shortly if it is on screen, else when it is shown next. */
export const refreshConnLogSoon = debounce(() => {
  if (state.tab === 'connlog') loadConnLog();
  else state.stale.connlog = true;
}, 800);

export function initConnectionLog() {
  $('#connlog-refresh').addEventListener('click', () => loadConnLog());
}
