// The admin token: kept in localStorage (or for this page only), taken from `#token=…` in the
// address, asked for with the sign-in form when the API refuses a request.

import { $ } from './dom.js';
import { showAlert } from './alerts.js';

const TOKEN_KEY = 'mqtt-supervisor-token';

let memoryToken = null;
let tokenWait = null; // {promise, resolve, reject}
// What the rest of the page does when the token changes (set by initAuth).
let handlers = { reconnect() {}, refresh() {} };

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

export function currentToken() {
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

/**
 * Show the sign-in form; the promise resolves once a token is entered and rejects when the
 * form is cancelled. Callers waiting at the same time share one promise.
 */
export function askForToken(message) {
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
  $('#signin-message').textContent = message || 'Enter the admin token or the read token of this server.';
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
  handlers.reconnect();
  if (waiting) waiting.resolve();
  else handlers.refresh();
}

function onSigninCancel() {
  hideSignin();
  const waiting = tokenWait;
  tokenWait = null;
  if (waiting) waiting.reject(new Error('sign-in cancelled'));
}

function signOut() {
  setToken(null);
  showAlert('Signed out. The token was removed from this browser.', { kind: 'info', key: 'auth' });
  handlers.reconnect();
  handlers.refresh();
}

/**
 * Read the token of the address or the browser and wire the sign-in controls. `reconnect`
 * reopens the live stream with the new token; `refresh` reloads what the page shows.
 */
export function initAuth({ reconnect, refresh }) {
  handlers = { reconnect, refresh };
  readTokenFromFragment();
  memoryToken = getToken();
  updateAuthControls();

  $('#signin-form').addEventListener('submit', onSigninSubmit);
  $('#signin-cancel').addEventListener('click', onSigninCancel);
  $('#signin-open').addEventListener('click', () => showSignin('Enter the admin token or the read token of this server.'));
  $('#signout').addEventListener('click', signOut);
}
