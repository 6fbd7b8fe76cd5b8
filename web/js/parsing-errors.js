// The Parsing errors tab: the site's parsing-log rows narrowed by the filter bar, each opening to
// its payload with the place the error points at marked, Replay on each row and "Replay all
// shown" for the list, each saying what the replay stored or why it still fails; and the badge
// that counts errors arriving while the tab is hidden.

import { $, h, debounce, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { refetchDevicesSoon } from './devices.js';
import { clearFilterErrors, filterParams, filtering, initErrorsFilter, loadParserOptions, showFilterError } from './errors-filter.js';
import { ageEl, localTimeEl, topicNodes } from './format.js';
import { describePosition, payloadView } from './payload-view.js';
import { state } from './state.js';

const PAGE_SIZE = 50;
// The rows on screen, newest first, and which of them are open.
let shown = [];
const openIds = new Set();

export async function loadErrors() {
  const siteId = state.selected;
  state.stale.errors = false;
  setBusy('#errors-list', true);
  loadParserOptions().catch(() => { /* the select keeps "Any parser"; the list still loads */ });
  try {
    const params = filterParams(siteId);
    params.set('limit', String(PAGE_SIZE));
    const rows = await api(`/api/mqtt/parsing-logs?${params}`);
    if (siteId !== state.selected) return;
    clearFilterErrors();
    renderErrors(Array.isArray(rows) ? rows : []);
    clearAlert('errors');
  } catch (err) {
    if (siteId !== state.selected) return;
    if (err.status === 422) {
      showFilterError(err);
      return;
    }
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

/** Which control of the list has the focus, to give it back after the list is rebuilt. */
function focusedControl() {
  const el = document.activeElement;
  const li = el && el.closest && el.closest('#errors-list li[data-log-id]');
  if (!li) return null;
  const role = el.matches('summary') ? 'summary' : el.matches('button') ? 'button' : el.matches('pre') ? 'pre' : null;
  return role && { id: li.dataset.logId, role };
}

function renderErrors(rows) {
  const list = $('#errors-list');
  const focus = focusedControl();
  // Replay results on screen stay with their rows.
  const kept = new Map();
  for (const li of list.querySelectorAll('li[data-log-id]')) {
    const result = li.querySelector('.replay-result');
    if (result && result.childNodes.length) kept.set(li.dataset.logId, result);
  }
  shown = rows;
  list.replaceChildren(...rows.map((row) => buildErrorItem(row, kept.get(String(row.id)))));
  const filtered = filtering();
  const empty = $('#errors-empty');
  empty.hidden = rows.length > 0;
  empty.textContent = filtered ? 'No parsing errors match these filters.' : 'No parsing errors for this site.';
  $('#errors-summary').textContent = rows.length
    ? `${rows.length}${rows.length === PAGE_SIZE ? ' most recent' : ''}${filtered ? ' matching' : ''}`
    : '';
  $('#errors-replay-all').disabled = rows.length === 0;
  if (focus) {
    const li = list.querySelector(`li[data-log-id="${focus.id}"]`);
    li?.querySelector(focus.role === 'button' ? 'button' : focus.role)?.focus();
  }
}

function buildErrorItem(row, keptResult) {
  const topicId = `error-${row.id}-topic`;
  const result = keptResult || h('div', { class: 'replay-result', role: 'status', 'aria-live': 'polite' });
  const replayed = h('span', { class: 'replayed' });
  setReplayed(replayed, row.replayed_at);
  const btn = h('button', { type: 'button', class: 'btn btn-small needs-change', text: 'Replay', 'aria-describedby': topicId });
  btn.addEventListener('click', () => replayOne(row, btn, result, replayed));
  const position = row.error_position;
  const details = h('details', { class: 'payload-details', open: openIds.has(row.id) },
    h('summary', { text: position ? `Payload, error ${describePosition(position)}` : 'Payload' }));
  // A row the list was rebuilt with open is not scrolled to; one the operator opens is.
  let restored = details.open;
  const show = () => {
    if (!details.open) { openIds.delete(row.id); restored = false; return; }
    openIds.add(row.id);
    if (!details.querySelector('.payload-view')) details.append(payloadView(row));
    if (!restored) details.querySelector('.error-mark')?.scrollIntoView({ block: 'nearest' });
    restored = false;
  };
  details.addEventListener('toggle', show);
  if (details.open) details.append(payloadView(row));
  return h('li', {
    class: 'error-item card',
    'data-log-id': row.id,
    'data-position': position ? ('pointer' in position ? 'value' : 'text') : null,
  },
  h('div', { class: 'error-head' },
    h('code', { class: 'topic', id: topicId }, topicNodes(row.topic)),
    h('span', { class: 'parser-name', text: row.parser || 'no parser' }),
    h('span', { class: 'when' }, localTimeEl(row.created_at), ' (', ageEl(row.created_at), ')'),
    replayed),
  h('p', { class: 'error-text', text: row.error }),
  details,
  h('div', { class: 'error-actions' }, btn, result));
}

function setReplayed(el, value) {
  el.replaceChildren(...(value ? ['replayed ', localTimeEl(value)] : []));
  el.hidden = !value;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** What one replay stored, or why it still fails, into the row's result. */
function showOutcome(result, outcome) {
  const ok = Boolean(outcome && outcome.ok);
  result.className = `replay-result ${ok ? 'ok' : 'fail'}`;
  const parts = [];
  if (ok) {
    const output = outcome.output || {};
    const gateways = (output.gateways || []).length;
    const dataloggers = output.dataloggers || [];
    const values = dataloggers.reduce((sum, d) => sum + (d.sensors || []).length, 0);
    parts.push(h('strong', { text: 'Parsed now.' }), ' ',
      `Stored ${plural(gateways, 'gateway')}, ${plural(dataloggers.length, 'datalogger')} with ${plural(values, 'value')}.`);
    parts.push(h('details', { class: 'replay-output' },
      h('summary', { text: 'What was stored' }),
      h('pre', { text: JSON.stringify(output, null, 2) })));
  } else {
    parts.push(h('strong', { text: 'Still failing:' }), ' ', h('span', { text: (outcome && outcome.error) || 'no reason given' }));
  }
  result.replaceChildren(...parts);
  return ok;
}

async function replayOne(row, btn, result, replayedEl) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  btn.textContent = 'Replaying…';
  result.className = 'replay-result';
  result.replaceChildren(h('span', { class: 'muted', text: 'Replaying…' }));
  try {
    const outcome = await api(`/api/mqtt/parsing-logs/${row.id}/replay`, { method: 'POST' });
    if (showOutcome(result, outcome)) {
      row.replayed_at = new Date().toISOString();
      setReplayed(replayedEl, row.replayed_at);
      refetchDevicesSoon();
    }
  } catch (err) {
    result.className = 'replay-result fail';
    result.replaceChildren(h('strong', { text: 'Replay failed.' }), ' ', h('span', { text: errorText(err) }));
  } finally {
    btn.disabled = false;
    btn.setAttribute('aria-busy', 'false');
    btn.textContent = 'Replay';
  }
}

/** Replays the rows on screen: the same filters, up to the newest row shown, as many as shown. */
async function replayAllShown() {
  const btn = $('#errors-replay-all');
  const summary = $('#errors-replay-all-result');
  if (!shown.length) return;
  const params = filterParams(state.selected);
  params.set('to', shown[0].created_at);
  params.set('limit', String(shown.length));
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  summary.className = 'replay-result';
  summary.textContent = `Replaying ${plural(shown.length, 'error')}…`;
  try {
    const res = await api(`/api/mqtt/parsing-logs/replay?${params}`, { method: 'POST' });
    const list = $('#errors-list');
    for (const outcome of res.outcomes || []) {
      const li = list.querySelector(`li[data-log-id="${outcome.id}"]`);
      if (!li) continue;
      if (showOutcome(li.querySelector('.replay-result'), outcome)) {
        const row = shown.find((r) => r.id === outcome.id);
        if (row) row.replayed_at = new Date().toISOString();
        setReplayed(li.querySelector('.replayed'), row ? row.replayed_at : new Date().toISOString());
      }
    }
    summary.className = `replay-result ${res.still_failing ? 'fail' : 'ok'}`;
    summary.replaceChildren(h('strong', { text: `Replayed ${plural(res.replayed, 'error')}:` }),
      ` ${res.parsed} parsed now, ${res.still_failing} still failing.`,
      res.more ? ' More errors match than were shown; Refresh and replay again for the next ones.' : '');
    if (res.parsed) refetchDevicesSoon();
  } catch (err) {
    if (err.status === 422) showFilterError(err);
    summary.className = 'replay-result fail';
    summary.replaceChildren(h('strong', { text: 'Replay all failed.' }), ' ', h('span', { text: errorText(err) }));
  } finally {
    btn.disabled = shown.length === 0;
    btn.setAttribute('aria-busy', 'false');
  }
}

/** Up/Down (and Home/End) move between the rows' Payload toggles. */
function moveBetweenRows(event) {
  if (!['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(event.key)) return;
  if (!event.target.matches('summary')) return;
  const toggles = Array.from($('#errors-list').querySelectorAll('li[data-log-id] > details > summary'));
  const index = toggles.indexOf(event.target);
  if (index < 0) return;
  const next = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: toggles.length - 1 }[event.key];
  if (next < 0 || next >= toggles.length) return;
  event.preventDefault();
  toggles[next].focus();
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
  $('#errors-replay-all').addEventListener('click', replayAllShown);
  $('#errors-list').addEventListener('keydown', moveBetweenRows);
  initErrorsFilter(() => {
    $('#errors-replay-all-result').replaceChildren();
    loadErrors();
  });
}

/** A parsing error of the selected site arrived live. */
export function noteParsingError() {
  if (state.tab === 'errors') refreshErrorsSoon();
  else { state.stale.errors = true; setBadge(state.errorsBadge + 1); }
}
