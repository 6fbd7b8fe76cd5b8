// The Parsing errors tab: the site's recent parsing-log rows with their payloads, a Replay
// button on each, and the badge that counts errors arriving while the tab is hidden.

import { $, h, debounce, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { refetchDevicesSoon } from './devices.js';
import { ageEl, formatAbsolute, formatPayload, topicNodes } from './format.js';
import { state } from './state.js';

export async function loadErrors() {
  const siteId = state.selected;
  state.stale.errors = false;
  setBusy('#errors-list', true);
  try {
    const rows = await api(`/api/mqtt/parsing-logs?site_id=${siteId}&limit=50`);
    if (siteId !== state.selected) return;
    renderErrors(Array.isArray(rows) ? rows : []);
    clearAlert('errors');
  } catch (err) {
    if (siteId !== state.selected) return;
    state.stale.errors = true;
    showAlert(`Could not load parsing errors: ${errorText(err)}`, { key: 'errors' });
  } finally {
    setBusy('#errors-list', false);
  }
}

export const refreshErrorsSoon = debounce(() => {
  if (state.tab === 'errors') loadErrors();
  else state.stale.errors = true;
}, 800);

function renderErrors(rows) {
  const list = $('#errors-list');
  // keep replay results that are on screen
  const kept = new Map();
  for (const li of list.querySelectorAll('li[data-log-id]')) {
    const result = li.querySelector('.replay-result');
    if (result && result.childNodes.length) kept.set(li.dataset.logId, result);
  }
  list.replaceChildren(...rows.map((row) => buildErrorItem(row, kept.get(String(row.id)))));
  $('#errors-empty').hidden = rows.length > 0;
  $('#errors-summary').textContent = rows.length ? `${rows.length} most recent` : '';
}

function buildErrorItem(row, keptResult) {
  const result = keptResult || h('div', { class: 'replay-result', role: 'status', 'aria-live': 'polite' });
  const replayed = h('span', { class: 'replayed' });
  setReplayed(replayed, row.replayed_at);
  const btn = h('button', { type: 'button', class: 'btn btn-small needs-change', text: 'Replay' });
  btn.addEventListener('click', () => replay(row, btn, result, replayed));
  const payload = formatPayload(row.payload);
  return h('li', { class: 'error-item card', 'data-log-id': row.id },
    h('div', { class: 'error-head' },
      h('code', { class: 'topic' }, topicNodes(row.topic)),
      h('span', { class: 'parser-name', text: row.parser || 'no parser' }),
      h('span', { class: 'when' }, h('span', { text: formatAbsolute(row.created_at) }), ' (', ageEl(row.created_at), ')'),
      replayed),
    h('p', { class: 'error-text', text: row.error }),
    h('details', { class: 'payload-details', open: payload.length <= 400 },
      h('summary', { text: `Payload (${payload.length} characters)` }),
      h('pre', { class: 'payload', text: payload })),
    h('div', { class: 'error-actions' }, btn, result));
}

function setReplayed(el, value) {
  el.textContent = value ? `replayed ${formatAbsolute(value)}` : '';
  el.hidden = !value;
}

async function replay(row, btn, result, replayedEl) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  btn.textContent = 'Replaying…';
  result.className = 'replay-result';
  result.replaceChildren(h('span', { class: 'muted', text: 'Replaying…' }));
  try {
    const res = await api(`/api/mqtt/parsing-logs/${row.id}/replay`, { method: 'POST' });
    const ok = Boolean(res && res.ok);
    result.className = `replay-result ${ok ? 'ok' : 'fail'}`;
    const parts = [h('strong', { text: ok ? 'Replay succeeded.' : 'Replay failed.' })];
    if (!ok && res && res.error) parts.push(' ', h('span', { text: res.error }));
    if (res && res.output !== null && res.output !== undefined) {
      parts.push(h('details', { class: 'replay-output' },
        h('summary', { text: 'Output' }),
        h('pre', { text: JSON.stringify(res.output, null, 2) })));
    }
    result.replaceChildren(...parts);
    row.replayed_at = new Date().toISOString();
    setReplayed(replayedEl, row.replayed_at);
    if (ok) refetchDevicesSoon();
  } catch (err) {
    result.className = 'replay-result fail';
    result.replaceChildren(h('strong', { text: 'Replay failed.' }), ' ', h('span', { text: errorText(err) }));
  } finally {
    btn.disabled = false;
    btn.setAttribute('aria-busy', 'false');
    btn.textContent = 'Replay';
  }
}

export function setBadge(n) {
  state.errorsBadge = n;
  const badge = $('#errors-badge');
  const btn = document.querySelector('.tab[data-tab="errors"]');
  badge.querySelector('.badge-count').textContent = n > 99 ? '99+' : String(n);
  badge.hidden = n === 0;
  if (n) btn.setAttribute('aria-describedby', 'errors-badge');
  else btn.removeAttribute('aria-describedby');
}

export function initParsingErrors() {
  $('#errors-refresh').addEventListener('click', () => { setBadge(0); loadErrors(); });
}

/** A parsing error of the selected site arrived live. */
export function noteParsingError() {
  if (state.tab === 'errors') refreshErrorsSoon();
  else { state.stale.errors = true; setBadge(state.errorsBadge + 1); }
}
