// The live stream from /ws: connects with the token, reconnects with backoff, subscribes to
// the selected site, shows its state in the top bar and hands every event on.

import { $ } from './dom.js';
import { currentToken } from './auth.js';
import { state } from './state.js';

const WS_BACKOFF_MIN = 1000;
const WS_BACKOFF_MAX = 10000;

const ws = { sock: null, attempt: 0, timer: null, retryAt: 0, hadClose: false, state: 'connecting' };
// Set by connectLive: what to do with an event, and after the stream was interrupted.
let handlers = { onEvent() {}, onResync() {} };

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
    if (ws.hadClose) handlers.onResync();
  });
  sock.addEventListener('message', (ev) => {
    if (ws.sock !== sock) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg && typeof msg === 'object') handlers.onEvent(msg);
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

/** Drop the current socket (if any) and connect again at once, e.g. with a new token. */
export function reconnectWsNow() {
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

/** Keep the indicator's tooltip current (called once a second). */
export function updateWsCountdown() {
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

/** Narrow the stream to the selected site (the server sends that site's snapshot). */
export function sendSubscribe() {
  if (!ws.sock || ws.sock.readyState !== WebSocket.OPEN || state.selected === null) return;
  ws.sock.send(JSON.stringify({ subscribe: { site_id: state.selected } }));
}

/** Open the stream; `onEvent` gets each server message, `onResync` runs after a reconnect. */
export function connectLive({ onEvent, onResync }) {
  handlers = { onEvent, onResync };
  connectWs();
}
