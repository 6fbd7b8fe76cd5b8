// The tab bar: which view is shown, and loading a tab's data when it is shown or stale.

import { loadCommands } from './commands.js';
import { loadConnLog } from './connection-log.js';
import { loadHistory } from './device-history.js';
import { loadDiscovered } from './discovered.js';
import { loadErrors, setBadge } from './parsing-errors.js';
import { loadSettings } from './settings.js';
import { state } from './state.js';

/** Show the view `tab` and load its data if it is stale. */
export function setTab(tab) {
  state.tab = tab;
  for (const btn of document.querySelectorAll('.tab')) {
    if (btn.dataset.tab === tab) btn.setAttribute('aria-current', 'page');
    else btn.removeAttribute('aria-current');
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.dataset.panel !== tab;
  if (tab === 'errors') setBadge(0);
  loadTab(tab, true);
}

/** Load a tab's data (the Devices tab loads by itself); `onlyIfStale` skips a fresh one. */
export function loadTab(tab, onlyIfStale = false) {
  if (state.selected === null) return;
  if (tab === 'devices') return;
  if (onlyIfStale && !state.stale[tab]) return;
  if (tab === 'discovered') loadDiscovered();
  else if (tab === 'errors') loadErrors();
  else if (tab === 'connlog') loadConnLog();
  else if (tab === 'history') loadHistory();
  else if (tab === 'commands') loadCommands();
  else if (tab === 'settings') loadSettings();
}

export function initTabs() {
  for (const btn of document.querySelectorAll('.tab')) btn.addEventListener('click', () => setTab(btn.dataset.tab));
}
