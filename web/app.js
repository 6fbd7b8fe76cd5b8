// Devices page of mqtt-supervisor.
// Plain ES module, no dependencies. Talks to the REST API under /api and to
// the WebSocket hub at /ws.

const TOKEN_KEY = 'mqtt-supervisor-token';
const POLL_MS = 10000;          // connections/sites refresh
const POLL_FAST_MS = 2000;      // while a Start/Stop waits for confirmation
const PENDING_TIMEOUT_MS = 30000;
const READINGS_LIMIT = 30;
const WS_BACKOFF_MIN = 1000;
const WS_BACKOFF_MAX = 10000;
const READINGS_CONCURRENCY = 4;

// ---------------------------------------------------------------------------
// Small DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);

/** Create an element. attrs: class, text, dataset keys as data-*, on<event> handlers, others as attributes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = null; };
  return wrapped;
}

// ---------------------------------------------------------------------------
// Formatting

/** Parse a server timestamp to epoch ms (NaN when absent). A time without zone is taken as UTC. */
function parseTs(value) {
  if (value === null || value === undefined || value === '') return NaN;
  if (typeof value === 'number') return value;
  let s = String(value).trim();
  if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s)) s = s.replace(' ', 'T') + 'Z';
  return Date.parse(s);
}

function formatAge(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return '—';
  const secs = Math.floor((now - ms) / 1000);
  if (secs < 1) return 'just now';
  if (secs < 60) return `${secs} s ago`;
  const mins = Math.floor(secs / 60);
  if (mins < 60) return `${mins} min ago`;
  const hours = Math.floor(mins / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

function formatAbsolute(value) {
  const ms = parseTs(value);
  if (!Number.isFinite(ms)) return '—';
  return new Date(ms).toLocaleString();
}

/** A <time> whose text is kept current by the age ticker. */
function ageEl(value, prefix) {
  const el = h('time', { class: 'age' });
  setAge(el, value);
  if (prefix) el.dataset.prefix = prefix;
  return el;
}

function setAge(el, value) {
  const ms = parseTs(value);
  if (Number.isFinite(ms)) {
    el.dataset.ts = String(ms);
    el.setAttribute('datetime', new Date(ms).toISOString());
    el.title = new Date(ms).toLocaleString();
  } else {
    delete el.dataset.ts;
    el.removeAttribute('datetime');
    el.removeAttribute('title');
  }
  el.textContent = formatAge(ms);
}

function tickAges() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time.age[data-ts]')) {
    const text = formatAge(Number(el.dataset.ts), now);
    if (el.textContent !== text) el.textContent = text;
  }
  updateWsCountdown();
}

function formatValue(value) {
  if (value === null || value === undefined || value === '') return '—';
  const n = Number(value);
  if (typeof value === 'boolean' || !Number.isFinite(n)) return String(value);
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 1 : abs >= 1 ? 3 : 4;
  return String(Number(n.toFixed(digits)));
}

function formatPayload(payload) {
  if (payload === null || payload === undefined) return '';
  if (typeof payload === 'string') return payload;
  try { return JSON.stringify(payload); } catch { return String(payload); }
}

/** Topic text with break opportunities after each '/' (the text itself is unchanged). */
function topicNodes(topic) {
  const parts = String(topic).split('/');
  const out = [];
  parts.forEach((part, i) => {
    out.push(document.createTextNode(i < parts.length - 1 ? `${part}/` : part));
    if (i < parts.length - 1) out.push(document.createElement('wbr'));
  });
  return out;
}

function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

// ---------------------------------------------------------------------------
// State

const state = {
  sites: [],
  sitesById: new Map(),
  conns: new Map(),            // site_id -> connection row
  connsLoaded: false,
  statusEventAt: new Map(),    // site_id -> ms of last connection_status event
  selected: null,              // site id
  tab: 'devices',
  devices: [],
  idx: { gw: new Map(), dl: new Map(), sensor: new Map() },
  devicesSeq: 0,
  dlOpen: new Map(),           // datalogger key -> open?
  dlVisible: new Map(),        // datalogger key -> intersecting?
  series: new Map(),           // sensor id -> [{t, v}] oldest first
  seriesLoading: new Set(),
  seriesFailed: new Set(),
  seriesEarly: new Map(),      // sensor id -> live points received while loading
  pending: new Map(),          // site_id -> pending start/stop
  errorsBadge: 0,
  stale: { discovered: true, errors: true, connlog: true },
  discovered: [],
  parsers: null,
  sitesRows: new Map(),        // site_id -> row parts
};

// ---------------------------------------------------------------------------
// Token

function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || null; } catch { return null; }
}

function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage unavailable: the token lives for this page only */ }
  memoryToken = token || null;
  updateAuthControls();
}

let memoryToken = null;
function currentToken() {
  return getToken() || memoryToken;
}

/** Take `#token=...` from the address, store it and remove it from the address bar. */
function readTokenFromFragment() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash) return;
  // parsed by hand: URLSearchParams would turn a '+' of the token into a space
  const parts = hash.split('&');
  const at = parts.findIndex((p) => p.startsWith('token='));
  if (at < 0) return;
  let token = parts[at].slice('token='.length);
  try { token = decodeURIComponent(token); } catch { /* keep it as written */ }
  if (token) setToken(token);
  parts.splice(at, 1);
  const rest = parts.join('&');
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

function updateAuthControls() {
  const has = Boolean(currentToken());
  $('#signout').hidden = !has;
  $('#signin-open').hidden = has || !$('#signin').hidden;
}

let tokenWait = null; // {promise, resolve, reject}

function askForToken(message) {
  if (!tokenWait) {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    tokenWait = { promise, resolve, reject };
  }
  showSignin(message);
  return tokenWait.promise;
}

function showSignin(message) {
  const section = $('#signin');
  $('#signin-message').textContent = message || 'Enter the admin token of this server.';
  $('#signin-error').textContent = '';
  const wasHidden = section.hidden;
  section.hidden = false;
  updateAuthControls();
  if (wasHidden) $('#token-input').focus();
}

function hideSignin() {
  $('#signin').hidden = true;
  $('#token-input').value = '';
  updateAuthControls();
}

function onSigninSubmit(event) {
  event.preventDefault();
  const value = $('#token-input').value.trim();
  if (!value) {
    $('#signin-error').textContent = 'Enter a token.';
    $('#token-input').focus();
    return;
  }
  setToken(value);
  hideSignin();
  const waiting = tokenWait;
  tokenWait = null;
  reconnectWsNow();
  if (waiting) waiting.resolve();
  else refreshEverything();
}

function onSigninCancel() {
  hideSignin();
  const waiting = tokenWait;
  tokenWait = null;
  if (waiting) waiting.reject(new ApiError(401, 'unauthorized', 'Sign in to load this data.'));
}

function signOut() {
  setToken(null);
  showAlert('Signed out. The token was removed from this browser.', { kind: 'info', key: 'auth' });
  reconnectWsNow();
  refreshEverything();
}

// ---------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const token = currentToken();
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server.');
    }
    if (res.status === 401) {
      if (currentToken() !== token) continue; // signed in meanwhile: just retry
      await askForToken(token
        ? 'The stored token was refused. Enter a valid admin token.'
        : 'This server needs an admin token.');
      continue;
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const err = data && typeof data === 'object' ? data.error : null;
      const message = (err && err.message) || `${res.status} ${res.statusText || 'error'}`.trim();
      throw new ApiError(res.status, (err && err.code) || `http_${res.status}`, message);
    }
    return data;
  }
}

function errorText(err) {
  if (err instanceof ApiError) return err.message;
  return (err && err.message) || String(err);
}

// ---------------------------------------------------------------------------
// Alerts

function showAlert(message, { kind = 'error', key = null, timeout } = {}) {
  const region = $('#alerts');
  if (key) {
    const old = region.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (old) old.remove();
  }
  const item = h('div', { class: `alert alert-${kind}`, 'data-key': key, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'alert-text', text: message }),
    h('button', { type: 'button', class: 'btn btn-small btn-quiet', text: 'Dismiss', onclick: () => item.remove() }));
  region.append(item);
  const ms = timeout ?? (kind === 'error' ? 0 : 6000);
  if (ms) setTimeout(() => item.remove(), ms);
  return item;
}

function clearAlert(key) {
  const old = $('#alerts').querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (old) old.remove();
}

// ---------------------------------------------------------------------------
// Sites and connections

function siteName(siteId) {
  const site = state.sitesById.get(siteId);
  return site ? site.name : `site ${siteId}`;
}

async function loadSitesAndConnections() {
  const started = Date.now();
  const [sites, conns] = await Promise.all([api('/api/sites'), api('/api/mqtt/connections')]);
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
  const errorEl = h('p', { class: 'site-error' });
  const action = h('button', { type: 'button', class: 'btn btn-small site-action', 'aria-describedby': `site-name-${siteId}`, onclick: () => onStartStop(siteId) });
  const li = h('li', { class: 'site', 'data-site-id': siteId },
    select, h('div', { class: 'site-line' }, statusWrap, action), errorEl);
  return { li, select, nameEl, slugEl, statusWrap, errorEl, action };
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
    row.action.hidden = true;
    row.errorEl.hidden = true;
    row.errorEl.textContent = '';
    return;
  }
  const status = conn.status || 'stopped';
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

function pollSoon() { schedulePoll(50); }

async function pollConnections() {
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

function applyConnectionRow(siteId, row) {
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
  state.stale = { discovered: true, errors: true, connlog: true };
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
  $('#site-conn').replaceChildren();
  renderDevices([]);
  $('#devices-empty').hidden = true;
}

function renderSiteHead() {
  const site = state.sitesById.get(state.selected);
  if (!site) return;
  $('#site-title').textContent = site.name;
  document.title = `${site.name} · Devices · mqtt-supervisor`;
  const conn = state.conns.get(site.id);
  const parts = [];
  if (!conn) {
    parts.push(h('span', { text: state.connsLoaded ? 'No MQTT connection configured for this site.' : '' }));
  } else {
    parts.push(statusLabel(conn.status, 'status-pill'));
    parts.push(h('span', { class: 'conn-broker', text: `${conn.use_tls ? 'mqtts' : 'mqtt'}://${conn.host}:${conn.port}` }));
    if (conn.client_id) parts.push(h('span', { text: `client ${conn.client_id}` }));
    if (conn.status === 'connected' && conn.connected_at) parts.push(h('span', null, 'connected ', ageEl(conn.connected_at)));
    if (!conn.is_active) parts.push(h('span', { text: 'switched off' }));
    if (conn.last_error) parts.push(h('span', { class: 'conn-error', text: conn.last_error }));
  }
  if (site.is_active === false) parts.push(h('span', { class: 'conn-error', text: 'site inactive' }));
  $('#site-conn').replaceChildren(...parts.flatMap((p, i) => (i ? [h('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }), p] : [p])));
}

// ---------------------------------------------------------------------------
// Devices

const dlKey = (gw, dl) => `${gw}\u0000${dl}`;

async function loadDevices() {
  const siteId = state.selected;
  if (siteId === null) return;
  const seq = ++state.devicesSeq;
  try {
    const devices = await api(`/api/sites/${siteId}/devices`);
    if (seq !== state.devicesSeq || siteId !== state.selected) return;
    renderDevices(Array.isArray(devices) ? devices : []);
    clearAlert('devices');
  } catch (err) {
    if (seq !== state.devicesSeq || siteId !== state.selected) return;
    showAlert(`Could not load devices of ${siteName(siteId)}: ${errorText(err)}`, { key: 'devices' });
    if (!state.devices.length) $('#devices-tree').replaceChildren();
  }
}

const refetchDevicesSoon = debounce(loadDevices, 400);

let visibilityObserver = null;

function renderDevices(list) {
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

function onlineMark(isOnline) {
  const el = h('span', { class: 'online-mark' });
  setOnline(el, isOnline);
  return el;
}

function setOnline(el, isOnline) {
  const on = Boolean(isOnline);
  el.classList.toggle('is-online', on);
  el.classList.toggle('is-offline', !on);
  el.dataset.online = String(on);
  el.textContent = on ? 'online' : 'offline';
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
  const mark = onlineMark(gw.is_online);
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
  const mark = onlineMark(dl.is_online);
  const seen = ageEl(dl.last_seen);
  const count = h('span', { class: 'count' });
  const summary = h('summary', null,
    h('span', { class: 'dl-title' }, h('span', { class: 'kind', text: 'Datalogger' }), ' ', h('span', { class: 'dl-name', text: dl.identifier })),
    mark,
    h('span', { class: 'seen' }, 'last seen ', seen),
    count);
  const tbody = h('tbody');
  const table = h('table', { class: 'data-table sensors-table' },
    h('caption', { class: 'visually-hidden', text: `Sensors of datalogger ${dl.identifier}` }),
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
  const tr = h('tr', { 'data-sensor-id': s.id, 'data-sensor-name': s.name },
    h('th', { scope: 'row', class: 'sensor-name', text: s.name }),
    value, unit, h('td', { class: 'sensor-age' }, seen), spark);
  const entry = { data: s, dl: dlEntry, tr, value, unit, seen, spark };
  idx.sensor.set(s.id, entry);
  dlEntry.sensorsByName.set(s.name, entry);
  if (state.series.has(s.id)) drawSpark(entry);
  else spark.append(h('span', { class: 'spark-empty muted', text: '' }));
  return tr;
}

function flash(el) {
  el.classList.remove('flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('flash');
}

function applyDataloggerUpdate(msg) {
  const gw = state.idx.gw.get(msg.gateway);
  const dl = state.idx.dl.get(dlKey(msg.gateway, msg.datalogger));
  if (!gw || !dl) { refetchDevicesSoon(); return; }
  if (typeof msg.is_online === 'boolean') {
    dl.data.is_online = msg.is_online;
    setOnline(dl.mark, msg.is_online);
  }
  const ts = parseTs(msg.ts);
  if (Number.isFinite(ts)) {
    if (!(parseTs(dl.data.last_seen) >= ts)) { dl.data.last_seen = msg.ts; setAge(dl.seen, msg.ts); }
    if (!(parseTs(gw.data.last_seen) >= ts)) { gw.data.last_seen = msg.ts; setAge(gw.seen, msg.ts); }
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
  }
  addSeriesPoint(entry.data.id, Number.isFinite(ts) ? ts : Date.now(), Number(value));
}

function applyGatewayUpdate(msg) {
  const gw = state.idx.gw.get(msg.gateway);
  if (!gw) { refetchDevicesSoon(); return; }
  if (typeof msg.is_online === 'boolean') {
    gw.data.is_online = msg.is_online;
    setOnline(gw.mark, msg.is_online);
  }
  if (msg.last_seen) { gw.data.last_seen = msg.last_seen; setAge(gw.seen, msg.last_seen); }
  if (msg.metadata && typeof msg.metadata === 'object') {
    gw.data.metadata = msg.metadata;
    fillMetadata(gw.meta, msg.metadata);
  }
}

// ---------------------------------------------------------------------------
// Sparklines

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

const readingsQueue = [];
let readingsActive = 0;

function loadSeriesFor(dl) {
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

function addSeriesPoint(id, t, v, redraw = true) {
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

function drawSpark(entry) {
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

// ---------------------------------------------------------------------------
// Tabs

function setTab(tab) {
  state.tab = tab;
  for (const btn of document.querySelectorAll('.tab')) {
    if (btn.dataset.tab === tab) btn.setAttribute('aria-current', 'page');
    else btn.removeAttribute('aria-current');
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.dataset.panel !== tab;
  if (tab === 'errors') setBadge(0);
  loadTab(tab, true);
}

function loadTab(tab, onlyIfStale = false) {
  if (state.selected === null) return;
  if (tab === 'devices') return;
  if (onlyIfStale && !state.stale[tab]) return;
  if (tab === 'discovered') loadDiscovered();
  else if (tab === 'errors') loadErrors();
  else if (tab === 'connlog') loadConnLog();
}

function setBadge(n) {
  state.errorsBadge = n;
  const badge = $('#errors-badge');
  const btn = document.querySelector('.tab[data-tab="errors"]');
  badge.querySelector('.badge-count').textContent = n > 99 ? '99+' : String(n);
  badge.hidden = n === 0;
  if (n) btn.setAttribute('aria-describedby', 'errors-badge');
  else btn.removeAttribute('aria-describedby');
}

// ---------------------------------------------------------------------------
// Discovered topics

async function loadDiscovered() {
  const siteId = state.selected;
  state.stale.discovered = false;
  setBusy('#discovered-body', true);
  try {
    const rows = await api(`/api/mqtt/discovered-topics?site_id=${siteId}&limit=200`);
    if (siteId !== state.selected) return;
    state.discovered = Array.isArray(rows) ? rows : [];
    renderDiscovered();
    clearAlert('discovered');
  } catch (err) {
    if (siteId !== state.selected) return;
    state.stale.discovered = true;
    showAlert(`Could not load discovered topics: ${errorText(err)}`, { key: 'discovered' });
  } finally {
    setBusy('#discovered-body', false);
  }
}

const refreshDiscoveredSoon = debounce(() => {
  if (state.tab === 'discovered') loadDiscovered();
  else state.stale.discovered = true;
}, 1000);

function setBusy(sel, busy) {
  const el = $(sel);
  if (el) el.closest('.panel')?.setAttribute('aria-busy', busy ? 'true' : 'false');
}

function renderDiscovered() {
  const filter = $('#discovered-filter').value.trim().toLowerCase();
  const rows = filter ? state.discovered.filter((t) => String(t.topic).toLowerCase().includes(filter)) : state.discovered;
  const body = $('#discovered-body');
  body.replaceChildren(...rows.map((t, i) => {
    const sample = formatPayload(t.last_payload);
    const processable = Boolean(t.is_processable);
    const codeId = `topic-${i}`;
    const btn = h('button', { type: 'button', class: 'btn btn-small', text: 'Create pattern', 'aria-describedby': codeId, onclick: () => openPatternForm(t, btn) });
    return h('tr', { 'data-topic-id': t.id, 'data-topic': t.topic },
      h('td', { class: 'topic' }, h('code', { id: codeId }, topicNodes(t.topic))),
      h('td', null, h('span', { class: `yesno ${processable ? 'yes' : 'no'}`, text: processable ? 'yes' : 'no' })),
      h('td', { class: 'num', text: String(t.message_count ?? '') }),
      h('td', { class: 'nowrap' }, ageEl(t.last_seen)),
      h('td', { class: 'sample' }, sample ? h('code', { class: 'payload-sample', title: truncate(sample, 2000), text: truncate(sample, 120) }) : h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'actions' }, btn));
  }));
  const total = state.discovered.length;
  const processable = state.discovered.filter((t) => t.is_processable).length;
  $('#discovered-summary').textContent = total ? `${total} topic${total === 1 ? '' : 's'}, ${processable} processable${filter ? ` · ${rows.length} shown` : ''}` : '';
  $('#discovered-empty').hidden = total > 0;
}

let patternOrigin = null;
let patternTopic = '';

async function loadParsers() {
  if (state.parsers) return state.parsers;
  const rows = await api('/api/parsers');
  state.parsers = Array.isArray(rows) ? rows : [];
  return state.parsers;
}

function guessParser(topicRow, parsers) {
  const names = new Set(parsers.map((p) => p.name));
  let payload = topicRow.last_payload;
  if (typeof payload === 'string') {
    try { payload = JSON.parse(payload); } catch { payload = null; }
  }
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    if (Array.isArray(payload.sensors) && names.has('datalogger_readings_v1')) return 'datalogger_readings_v1';
    if (typeof payload.status === 'string' && names.has('gateway_status_v1')) return 'gateway_status_v1';
    if (names.has('flat_telemetry')) return 'flat_telemetry';
  }
  return parsers.length ? parsers[0].name : '';
}

async function openPatternForm(topicRow, originBtn) {
  const form = $('#pattern-form');
  patternOrigin = originBtn;
  patternTopic = String(topicRow.topic);
  $('#pattern-sample').replaceChildren(...topicNodes(patternTopic));
  $('#pattern-input').value = patternTopic;
  $('#pattern-error').textContent = '';
  $('#priority-input').value = '0';
  $('#qos-select').value = '1';
  $('#pattern-active').checked = true;
  buildLevelSelects(patternTopic);
  updatePatternMatch();
  form.hidden = false;
  form.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  $('#pattern-input').focus();

  const select = $('#parser-select');
  select.replaceChildren(h('option', { value: '', text: 'Loading parsers…' }));
  select.disabled = true;
  try {
    const parsers = await loadParsers();
    if (patternTopic !== String(topicRow.topic)) return;
    select.replaceChildren(...parsers.map((p) => h('option', { value: p.name, text: p.kind ? `${p.name} (${p.kind})` : p.name })));
    if (!parsers.length) select.append(h('option', { value: '', text: 'No parsers available' }));
    select.value = guessParser(topicRow, parsers);
    select.disabled = parsers.length === 0;
    updateParserDescription();
  } catch (err) {
    select.replaceChildren(h('option', { value: '', text: 'Parsers unavailable' }));
    $('#pattern-error').textContent = `Could not load parsers: ${errorText(err)}`;
  }
}

function closePatternForm() {
  const form = $('#pattern-form');
  if (form.hidden) return;
  form.hidden = true;
  if (patternOrigin && patternOrigin.isConnected) patternOrigin.focus();
  patternOrigin = null;
}

const LEVEL_CHOICES = ['{gateway}', '{datalogger}', '+', '#'];

function buildLevelSelects(topic) {
  const wrap = $('#pattern-levels');
  const levels = topic.split('/');
  wrap.replaceChildren(...levels.map((level, i) => {
    const id = `level-${i}`;
    const select = h('select', { id, 'data-level': i, 'data-literal': level },
      h('option', { value: '=', text: level === '' ? '(empty)' : level }),
      LEVEL_CHOICES.map((c) => h('option', { value: c, text: c })));
    if (level.startsWith('$') && i === 0) {
      // a $SYS-like level cannot be matched by wildcards
      for (const opt of select.options) if (opt.value !== '=') opt.disabled = true;
    }
    select.addEventListener('change', onLevelChange);
    return h('div', { class: 'level' }, h('label', { for: id, text: `Level ${i + 1}` }), select);
  }));
}

function onLevelChange() {
  const selects = [...document.querySelectorAll('#pattern-levels select')];
  const parts = [];
  let ended = false;
  for (const sel of selects) {
    sel.disabled = ended;
    if (ended) continue;
    if (sel.value === '#') { parts.push('#'); ended = true; }
    else if (sel.value === '=') parts.push(sel.dataset.literal);
    else parts.push(sel.value);
  }
  $('#pattern-input').value = parts.join('/');
  updatePatternMatch();
}

/** Does an MQTT filter with {name} captures match a concrete topic? */
function patternMatches(pattern, topic) {
  let p = pattern.split('/');
  if (p[0] === '$share' && p.length > 2) p = p.slice(2);
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    const level = p[i];
    if (level === '#') return i === p.length - 1 && !(i === 0 && t[0].startsWith('$'));
    if (i >= t.length) return false;
    if (level === '+' || /^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(level)) {
      if (i === 0 && t[0].startsWith('$')) return false;
      continue;
    }
    if (level !== t[i]) return false;
  }
  return p.length === t.length;
}

function updatePatternMatch() {
  const pattern = $('#pattern-input').value.trim();
  const out = $('#pattern-match');
  if (!pattern) { out.textContent = ''; out.className = 'hint'; return; }
  const ok = patternMatches(pattern, patternTopic);
  const caps = [...pattern.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
  const capsText = caps.length ? ` Captures: ${caps.join(', ')}.` : '';
  out.textContent = ok ? `Matches the sample topic.${capsText}` : `Does not match the sample topic.${capsText}`;
  out.className = `hint ${ok ? 'hint-ok' : 'hint-warn'}`;
}

function updateParserDescription() {
  const name = $('#parser-select').value;
  const p = (state.parsers || []).find((x) => x.name === name);
  $('#parser-description').textContent = p && p.description ? p.description : '';
}

async function onPatternSubmit(event) {
  event.preventDefault();
  const errorEl = $('#pattern-error');
  errorEl.textContent = '';
  const pattern = $('#pattern-input').value.trim();
  const parser = $('#parser-select').value;
  const priorityRaw = $('#priority-input').value.trim();
  if (!pattern) { errorEl.textContent = 'Pattern: enter a topic pattern.'; $('#pattern-input').focus(); return; }
  if (!parser) { errorEl.textContent = 'Parser: choose a parser.'; $('#parser-select').focus(); return; }
  const priority = priorityRaw === '' ? 0 : Number(priorityRaw);
  if (!Number.isInteger(priority)) { errorEl.textContent = 'Priority: enter a whole number.'; $('#priority-input').focus(); return; }
  const siteId = state.selected;
  const body = {
    site_id: siteId,
    pattern,
    parser,
    qos: Number($('#qos-select').value),
    is_active: $('#pattern-active').checked,
    priority,
  };
  const submit = $('#pattern-submit');
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  submit.textContent = 'Saving…';
  try {
    await api('/api/mqtt/topics', { method: 'POST', body });
    showAlert(`Pattern ${pattern} created with parser ${parser}.`, { kind: 'info', key: 'pattern' });
    closePatternForm();
    if (siteId === state.selected) {
      loadDiscovered();
      // topics that now match are processed from the next message on
      setTimeout(() => { if (siteId === state.selected && state.tab === 'discovered') loadDiscovered(); }, 3000);
    }
  } catch (err) {
    errorEl.textContent = errorText(err);
  } finally {
    submit.disabled = false;
    submit.setAttribute('aria-busy', 'false');
    submit.textContent = 'Save pattern';
  }
}

// ---------------------------------------------------------------------------
// Parsing errors

async function loadErrors() {
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

const refreshErrorsSoon = debounce(() => {
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
  const btn = h('button', { type: 'button', class: 'btn btn-small', text: 'Replay' });
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

// ---------------------------------------------------------------------------
// Connection log

async function loadConnLog() {
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

const refreshConnLogSoon = debounce(() => {
  if (state.tab === 'connlog') loadConnLog();
  else state.stale.connlog = true;
}, 800);

// ---------------------------------------------------------------------------
// WebSocket

const ws = { sock: null, attempt: 0, timer: null, retryAt: 0, hadClose: false, state: 'connecting' };

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = currentToken();
  return `${proto}//${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

function connectWs() {
  clearTimeout(ws.timer);
  ws.timer = null;
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch {
    scheduleWsReconnect();
    return;
  }
  ws.sock = sock;
  setWsState(ws.hadClose ? 'reconnecting' : 'connecting');
  sock.addEventListener('open', () => {
    if (ws.sock !== sock) return;
    ws.attempt = 0;
    setWsState('live');
    sendSubscribe();
    if (ws.hadClose) resync();
  });
  sock.addEventListener('message', (ev) => {
    if (ws.sock !== sock) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg && typeof msg === 'object') handleEvent(msg);
  });
  sock.addEventListener('close', () => {
    if (ws.sock !== sock) return;
    ws.sock = null;
    ws.hadClose = true;
    scheduleWsReconnect();
  });
}

function scheduleWsReconnect() {
  const delay = Math.min(WS_BACKOFF_MAX, WS_BACKOFF_MIN * 2 ** ws.attempt);
  ws.attempt++;
  ws.retryAt = Date.now() + delay;
  setWsState('reconnecting');
  clearTimeout(ws.timer);
  ws.timer = setTimeout(connectWs, delay);
}

function reconnectWsNow() {
  const old = ws.sock;
  ws.sock = null;
  if (old) { ws.hadClose = true; try { old.close(); } catch { /* already closing */ } }
  ws.attempt = 0;
  connectWs();
}

function setWsState(s) {
  ws.state = s;
  const ind = $('#ws-indicator');
  ind.dataset.state = s;
  $('#ws-text').textContent = s;
  updateWsCountdown();
}

function updateWsCountdown() {
  const ind = $('#ws-indicator');
  if (ws.state === 'reconnecting' && !ws.sock && ws.timer) {
    const secs = Math.max(0, Math.ceil((ws.retryAt - Date.now()) / 1000));
    ind.title = `Live updates interrupted; next attempt in ${secs} s`;
  } else if (ws.state === 'live') {
    ind.title = 'Live updates connected';
  } else {
    ind.title = 'Connecting for live updates';
  }
}

function sendSubscribe() {
  if (!ws.sock || ws.sock.readyState !== WebSocket.OPEN || state.selected === null) return;
  ws.sock.send(JSON.stringify({ subscribe: { site_id: state.selected } }));
}

function handleEvent(msg) {
  const siteId = msg.site_id;
  const forSelected = siteId !== undefined && siteId === state.selected;
  switch (msg.type) {
    case 'snapshot':
      if (!forSelected) return;
      if ('connection' in msg) applyConnectionRow(siteId, msg.connection);
      if (Array.isArray(msg.devices)) {
        state.devicesSeq++; // responses of earlier requests are older than this
        refetchDevicesSoon.cancel();
        renderDevices(msg.devices);
      }
      break;
    case 'connection_status': {
      state.statusEventAt.set(siteId, Date.now());
      const conn = state.conns.get(siteId);
      if (!conn) { pollSoon(); return; }
      if (msg.status) conn.status = msg.status;
      if ('last_error' in msg) conn.last_error = msg.last_error ?? null;
      else if (msg.status === 'connected') conn.last_error = null;
      if (msg.status === 'connected' && !conn.connected_at) conn.connected_at = new Date().toISOString();
      updateSiteRow(siteId);
      if (forSelected) { renderSiteHead(); refreshConnLogSoon(); }
      checkPending(siteId, 'event');
      break;
    }
    case 'datalogger_update':
      if (forSelected) applyDataloggerUpdate(msg);
      break;
    case 'gateway_update':
      if (forSelected) applyGatewayUpdate(msg);
      break;
    case 'topic_discovered':
      if (forSelected) refreshDiscoveredSoon();
      break;
    case 'parsing_error':
      if (!forSelected) return;
      if (state.tab === 'errors') refreshErrorsSoon();
      else { state.stale.errors = true; setBadge(state.errorsBadge + 1); }
      break;
    default:
      break; // unknown types are ignored
  }
}

/** After the live stream was interrupted: reload what may have changed meanwhile. */
function resync() {
  state.series.clear();
  state.seriesFailed.clear();
  pollSoon();
  loadDevices();
  state.stale = { discovered: true, errors: true, connlog: true };
  loadTab(state.tab);
}

function refreshEverything() {
  state.parsers = null;
  state.seriesFailed.clear();
  pollSoon();
  if (state.selected !== null) {
    loadDevices();
    state.stale = { discovered: true, errors: true, connlog: true };
    loadTab(state.tab);
  }
}

// ---------------------------------------------------------------------------
// Start

function init() {
  readTokenFromFragment();
  memoryToken = getToken();
  updateAuthControls();

  $('#signin-form').addEventListener('submit', onSigninSubmit);
  $('#signin-cancel').addEventListener('click', onSigninCancel);
  $('#signin-open').addEventListener('click', () => showSignin('Enter the admin token of this server.'));
  $('#signout').addEventListener('click', signOut);

  for (const btn of document.querySelectorAll('.tab')) btn.addEventListener('click', () => setTab(btn.dataset.tab));
  $('#devices-refresh').addEventListener('click', () => { state.seriesFailed.clear(); loadDevices(); });
  $('#discovered-refresh').addEventListener('click', () => loadDiscovered());
  $('#errors-refresh').addEventListener('click', () => { setBadge(0); loadErrors(); });
  $('#connlog-refresh').addEventListener('click', () => loadConnLog());
  $('#discovered-filter').addEventListener('input', debounce(renderDiscovered, 150));

  $('#pattern-form').addEventListener('submit', onPatternSubmit);
  $('#pattern-cancel').addEventListener('click', closePatternForm);
  $('#pattern-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') closePatternForm(); });
  $('#pattern-input').addEventListener('input', updatePatternMatch);
  $('#parser-select').addEventListener('change', updateParserDescription);

  setInterval(tickAges, 1000);
  connectWs();
  pollConnections();
}

init();
