// The Sites sidebar and the selected site's heading: sites with their connection status,
// Start/Stop with its wait for confirmation, the periodic refresh, and choosing a site.

import { $, h } from './dom.js';
import { loadAccess } from './access.js';
import { ApiError, api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { renderConnectionHealth } from './connection-health.js';
import { refreshConnLogSoon } from './connection-log.js';
import { loadDevices, renderDevices } from './devices.js';
import { ageEl } from './format.js';
import { loadInstances, renderInstances } from './instances.js';
import { closePatternForm } from './pattern-form.js';
import { setBadge } from './parsing-errors.js';
import { markTabsStale, siteName, state } from './state.js';
import { loadTab } from './tabs.js';
import { sendSubscribe } from './websocket.js';

const POLL_MS = 10000;          // connections/sites refresh
const POLL_FAST_MS = 2000;      // while a Start/Stop waits for confirmation
const PENDING_TIMEOUT_MS = 30000;

async function loadSitesAndConnections() {
  const started = Date.now();
  const [sites, conns] = await Promise.all([api('/api/sites'), api('/api/mqtt/connections')]);
  // The instances list and the token's rights are side views: a failure there must not hide
  // the sites.
  loadInstances().catch(() => {});
  loadAccess().catch(() => {});
  state.sites = Array.isArray(sites) ? sites : [];
  state.sitesById = new Map(state.sites.map((s) => [s.id, s]));
  const fresh = new Map();
  for (const row of Array.isArray(conns) ? conns : []) {
    const old = state.conns.get(row.site_id);
    const merged = { ...row };
    // A status event that arrived after this request started is newer than the row.
    if (old && (state.statusEventAt.get(row.site_id) || 0) > started) {
      merged.status = old.status;
      merged.last_error = old.last_error;
      if (old.subscriptions) merged.subscriptions = old.subscriptions;
    }
    const pend = state.pending.get(row.site_id);
    if (pend) merged.is_active = pend.action === 'start';
    fresh.set(row.site_id, merged);
  }
  state.conns = fresh;
  state.connsLoaded = true;
  renderSites();
  for (const siteId of [...state.pending.keys()]) checkPending(siteId, 'row');
  if (state.selected !== null && !state.sitesById.has(state.selected)) {
    state.selected = null;
  }
  if (state.selected === null && state.sites.length) selectSite(state.sites[0].id);
  else if (!state.sites.length) renderNoSite();
  else renderSiteHead();
  $('#sites-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function renderSites() {
  const list = $('#sites');
  list.setAttribute('aria-busy', 'false');
  $('#sites-empty').hidden = state.sites.length > 0;
  const seen = new Set();
  state.sites.forEach((site, i) => {
    seen.add(site.id);
    let row = state.sitesRows.get(site.id);
    if (!row) {
      row = buildSiteRow(site.id);
      state.sitesRows.set(site.id, row);
    }
    // keep server order
    if (list.children[i] !== row.li) list.insertBefore(row.li, list.children[i] || null);
    updateSiteRow(site.id);
  });
  for (const [id, row] of state.sitesRows) {
    if (!seen.has(id)) { row.li.remove(); state.sitesRows.delete(id); }
  }
}

function buildSiteRow(siteId) {
  const select = h('button', { type: 'button', class: 'site-select', onclick: () => selectSite(siteId) });
  const nameEl = h('span', { class: 'site-name', id: `site-name-${siteId}` });
  const slugEl = h('span', { class: 'site-slug' });
  select.append(nameEl, slugEl);
  const statusWrap = h('div', { class: 'site-status' });
  const ownerEl = h('p', { class: 'site-owner muted small' });
  const errorEl = h('p', { class: 'site-error' });
  const action = h('button', { type: 'button', class: 'btn btn-small site-action needs-change', 'aria-describedby': `site-name-${siteId}`, onclick: () => onStartStop(siteId) });
  const li = h('li', { class: 'site', 'data-site-id': siteId },
    select, h('div', { class: 'site-line' }, statusWrap, action), ownerEl, errorEl);
  return { li, select, nameEl, slugEl, statusWrap, ownerEl, errorEl, action };
}

function statusLabel(status, className = 'status-label') {
  const s = status || 'stopped';
  return h('span', { class: `${className} status status-${s}`, 'data-status': s, text: s });
}

function updateSiteRow(siteId) {
  const row = state.sitesRows.get(siteId);
  const site = state.sitesById.get(siteId);
  if (!row || !site) return;
  const conn = state.conns.get(siteId);
  const selected = state.selected === siteId;
  row.li.classList.toggle('is-selected', selected);
  row.select.setAttribute('aria-current', selected ? 'true' : 'false');
  row.nameEl.textContent = site.name;
  row.slugEl.textContent = site.is_active === false ? `${site.slug} · site inactive` : site.slug;

  // status label: reuse the element so that tests and screen readers see a stable node
  let label = row.statusWrap.querySelector('.status-label');
  if (!conn) {
    row.statusWrap.replaceChildren(h('span', { class: 'no-connection', text: state.connsLoaded ? 'no connection' : '…' }));
    row.ownerEl.hidden = true;
    row.action.hidden = true;
    row.errorEl.hidden = true;
    row.errorEl.textContent = '';
    return;
  }
  const status = conn.status || 'stopped';
  const shards = Number(conn.shards) || 1;
  row.ownerEl.textContent = conn.owner ? `on ${conn.owner}${shards > 1 ? ` · ${shards} shards` : ''}` : '';
  row.ownerEl.hidden = !conn.owner;
  if (!label) {
    label = statusLabel(status);
    row.statusWrap.replaceChildren(label);
  } else {
    label.className = `status-label status status-${status}`;
    label.dataset.status = status;
    if (label.textContent !== status) label.textContent = status;
  }
  if (conn.last_error) {
    label.title = conn.last_error;
    row.errorEl.textContent = conn.last_error;
    row.errorEl.title = conn.last_error;
    row.errorEl.hidden = false;
  } else {
    label.removeAttribute('title');
    row.errorEl.textContent = '';
    row.errorEl.hidden = true;
  }

  const pend = state.pending.get(siteId);
  const btn = row.action;
  btn.hidden = false;
  if (pend) {
    btn.textContent = pend.action === 'start' ? 'Starting…' : 'Stopping…';
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    btn.dataset.action = pend.action;
  } else {
    const action = conn.is_active ? 'stop' : 'start';
    btn.textContent = action === 'stop' ? 'Stop' : 'Start';
    btn.disabled = false;
    btn.setAttribute('aria-busy', 'false');
    btn.dataset.action = action;
  }
  btn.classList.toggle('btn-primary', !pend && !conn.is_active);
}

async function onStartStop(siteId) {
  const conn = state.conns.get(siteId);
  if (!conn || state.pending.has(siteId)) return;
  const action = conn.is_active ? 'stop' : 'start';
  const pend = {
    action,
    startedAt: Date.now(),
    before: { status: conn.status, last_error: conn.last_error, updated_at: conn.updated_at },
    response: null,
    hadFocus: document.activeElement === state.sitesRows.get(siteId)?.action,
    timer: null,
  };
  state.pending.set(siteId, pend);
  clearAlert(`startstop-${siteId}`);
  updateSiteRow(siteId);
  schedulePoll(POLL_FAST_MS);
  try {
    const row = await api(`/api/mqtt/connection/${siteId}/`, { method: 'PATCH', body: { is_active: action === 'start' } });
    if (row && typeof row === 'object') {
      const current = state.conns.get(siteId) || {};
      const merged = { ...current, ...row };
      if ((state.statusEventAt.get(siteId) || 0) > pend.startedAt) {
        merged.status = current.status;
        merged.last_error = current.last_error;
      }
      if (state.pending.get(siteId) === pend) merged.is_active = action === 'start';
      state.conns.set(siteId, merged);
      pend.response = row;
    } else {
      pend.response = {};
    }
    updateSiteRow(siteId);
    if (state.selected === siteId) renderSiteHead();
    if (state.pending.get(siteId) === pend) {
      // the wait for confirmation starts once the server has accepted the change
      pend.timer = setTimeout(() => pendingTimedOut(siteId, pend), PENDING_TIMEOUT_MS);
      checkPending(siteId, 'response');
    }
  } catch (err) {
    if (state.pending.get(siteId) === pend) finishPending(siteId);
    showAlert(`Could not ${action} ${siteName(siteId)}: ${errorText(err)}`, { key: `startstop-${siteId}` });
    pollSoon();
  }
}

/** Decide whether the connection's current status confirms a pending Start/Stop. */
function checkPending(siteId, source) {
  const pend = state.pending.get(siteId);
  const conn = state.conns.get(siteId);
  if (!pend || !conn) return;
  const status = conn.status;
  let done = false;
  if (source === 'event') {
    done = pend.action === 'stop'
      ? status === 'stopped'
      : status === 'connected' || status === 'error' || status === 'reconnecting';
  } else if (pend.response) {
    // A row may predate the change: only accept what could not be the old state.
    if (pend.action === 'stop') done = status === 'stopped';
    else if (status === 'connected') done = true;
    else if (status === 'error' || status === 'reconnecting') {
      const b = pend.before;
      const changed = status !== b.status || conn.last_error !== b.last_error;
      const newer = conn.updated_at && conn.updated_at !== b.updated_at && conn.updated_at !== pend.response.updated_at;
      done = changed || Boolean(newer);
    }
  }
  if (!done) return;
  if (pend.action === 'start' && status === 'error') {
    showAlert(`${siteName(siteId)}: connection error${conn.last_error ? `: ${conn.last_error}` : ''}`, { key: `startstop-${siteId}` });
  }
  finishPending(siteId, true);
}

function finishPending(siteId, confirmed = false) {
  const pend = state.pending.get(siteId);
  if (!pend) return;
  clearTimeout(pend.timer);
  state.pending.delete(siteId);
  const conn = state.conns.get(siteId);
  if (conn && (confirmed || pend.response)) conn.is_active = pend.action === 'start';
  updateSiteRow(siteId);
  if (state.selected === siteId) renderSiteHead();
  const btn = state.sitesRows.get(siteId)?.action;
  if (pend.hadFocus && btn && (document.activeElement === document.body || document.activeElement === null)) btn.focus();
}

function pendingTimedOut(siteId, pend) {
  if (state.pending.get(siteId) !== pend) return;
  finishPending(siteId);
  const conn = state.conns.get(siteId);
  const site = state.sitesById.get(siteId);
  const inactive = site && site.is_active === false ? ' The site is inactive, so its connection does not run.' : '';
  showAlert(`${siteName(siteId)}: no ${pend.action === 'start' ? 'connection' : 'stop'} confirmed within ${PENDING_TIMEOUT_MS / 1000} s (status: ${conn ? conn.status : 'unknown'}).${inactive}`,
    { key: `startstop-${siteId}` });
}

let pollTimer = null;
let polling = false;

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(pollConnections, ms);
}

/** Reload sites and connections at once, then select `siteId` when given (a site just made). */
export async function reloadSites(siteId) {
  await loadSitesAndConnections();
  if (siteId !== undefined) selectSite(siteId);
}

/** Refresh sites and connections now (well, in 50 ms). */
export function pollSoon() { schedulePoll(50); }

/** Refresh sites and connections, then again every 10 s (2 s while a Start/Stop waits). */
export async function pollConnections() {
  clearTimeout(pollTimer);
  if (polling) return;
  polling = true;
  try {
    await loadSitesAndConnections();
    clearAlert('poll');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      showAlert(`Could not refresh sites and connections: ${errorText(err)}`, { key: 'poll' });
    }
  } finally {
    polling = false;
    schedulePoll(state.pending.size ? POLL_FAST_MS : POLL_MS);
  }
}

/** A connection row from a snapshot (null: the site has no connection any more). */
export function applyConnectionRow(siteId, row) {
  if (row === null) state.conns.delete(siteId);
  else if (row && typeof row === 'object') {
    const pend = state.pending.get(siteId);
    const merged = { ...(state.conns.get(siteId) || {}), ...row };
    if (pend) merged.is_active = pend.action === 'start';
    state.conns.set(siteId, merged);
  }
  updateSiteRow(siteId);
  if (state.selected === siteId) renderSiteHead();
  checkPending(siteId, 'row');
}

// ---------------------------------------------------------------------------
// Selected site

function selectSite(siteId) {
  if (!state.sitesById.has(siteId)) return;
  const changed = state.selected !== siteId;
  state.selected = siteId;
  for (const id of state.sitesRows.keys()) updateSiteRow(id);
  renderSiteHead();
  if (!changed) return;
  sendSubscribe();
  markTabsStale();
  state.discovered = [];
  state.dlOpen.clear();
  setBadge(0);
  closePatternForm();
  $('#discovered-body').replaceChildren();
  $('#errors-list').replaceChildren();
  $('#connlog-body').replaceChildren();
  renderDevices([]);
  $('#devices-empty').hidden = true;
  $('#devices-tree').replaceChildren(h('p', { class: 'muted loading', text: 'Loading devices…' }));
  loadDevices();
  if (state.tab !== 'devices') loadTab(state.tab);
}

function renderNoSite() {
  $('#site-title').textContent = 'No site';
  renderConnectionHealth();
  $('#site-conn').replaceChildren();
  renderDevices([]);
  $('#devices-empty').hidden = true;
}

export function renderSiteHead() {
  const site = state.sitesById.get(state.selected);
  renderConnectionHealth();
  renderInstances();
  if (!site) return;
  $('#site-title').textContent = site.name;
  document.title = `${site.name} · Devices · mqtt-supervisor`;
  const conn = state.conns.get(site.id);
  const parts = [];
  if (!conn) {
    parts.push(h('span', { text: state.connsLoaded ? 'No MQTT connection configured for this site.' : '' }));
  } else {
    parts.push(statusLabel(conn.status, 'status-pill'));
    if (conn.silent) parts.push(h('span', { class: 'conn-error', text: 'silent' }));
    const refused = (conn.subscriptions || []).filter((s) => s.state === 'refused').length;
    if (refused) parts.push(h('span', { class: 'conn-error', text: `${refused} subscription${refused > 1 ? 's' : ''} refused` }));
    parts.push(h('span', { class: 'conn-broker', text: `${conn.use_tls ? 'mqtts' : 'mqtt'}://${conn.host}:${conn.port}` }));
    if (conn.client_id) parts.push(h('span', { text: `client ${conn.client_id}` }));
    if (conn.status === 'connected' && conn.connected_at) parts.push(h('span', null, 'connected ', ageEl(conn.connected_at)));
    if (!conn.is_active) parts.push(h('span', { text: 'switched off' }));
    if (conn.last_error) parts.push(h('span', { class: 'conn-error', text: conn.last_error }));
  }
  if (site.is_active === false) parts.push(h('span', { class: 'conn-error', text: 'site inactive' }));
  $('#site-conn').replaceChildren(...parts.flatMap((p, i) => (i ? [h('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }), p] : [p])));
}

/** A live `connection_status` event. */
export function applyConnectionStatus(msg, forSelected) {
  const siteId = msg.site_id;
  state.statusEventAt.set(siteId, Date.now());
  const conn = state.conns.get(siteId);
  if (!conn) { pollSoon(); return; }
  if (msg.status) conn.status = msg.status;
  if ('last_error' in msg) conn.last_error = msg.last_error ?? null;
  else if (msg.status === 'connected') conn.last_error = null;
  if (msg.status === 'connected' && !conn.connected_at) conn.connected_at = new Date().toISOString();
  if (Array.isArray(msg.subscriptions)) conn.subscriptions = msg.subscriptions;
  updateSiteRow(siteId);
  if (forSelected) { renderSiteHead(); refreshConnLogSoon(); }
  checkPending(siteId, 'event');
}
