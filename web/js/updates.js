// What the page does when something happens elsewhere: a live event from the WebSocket, a
// stream that resumed after a gap, a token that changed.

import { applyCommandStatus } from './commands.js';
import { applyRelayCommandStatus } from './relay-switch.js';
import { applyConnectionSilent, noteMessageArrived } from './connection-health.js';
import { refreshHistorySoon } from './device-history.js';
import { applyDataloggerUpdate, applyGatewayUpdate, loadDevices, refetchDevicesSoon, renderDevices } from './devices.js';
import { refreshDiscoveredSoon } from './discovered.js';
import { noteParsingError } from './parsing-errors.js';
import { applyConnectionRow, applyConnectionStatus, pollSoon } from './sites.js';
import { markTabsStale, state } from './state.js';
import { loadTab } from './tabs.js';

/** Apply one server message of the live stream. */
export function handleEvent(msg) {
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
    case 'connection_status':
      applyConnectionStatus(msg, forSelected);
      break;
    case 'connection_silent':
      applyConnectionSilent(msg);
      break;
    case 'datalogger_update':
      noteMessageArrived(siteId);
      if (forSelected) { applyDataloggerUpdate(msg); refreshHistorySoon(); }
      break;
    case 'gateway_update':
      noteMessageArrived(siteId);
      if (forSelected) { applyGatewayUpdate(msg); refreshHistorySoon(); }
      break;
    case 'topic_discovered':
      if (forSelected) refreshDiscoveredSoon();
      break;
    case 'parsing_error':
      if (forSelected) noteParsingError();
      break;
    case 'command_status':
      if (forSelected) {
        applyCommandStatus(msg);
        applyRelayCommandStatus(msg);
      }
      break;
    default:
      break; // unknown types are ignored
  }
}

/** After the live stream was interrupted: reload what may have changed meanwhile. */
export function resync() {
  state.series.clear();
  state.seriesFailed.clear();
  pollSoon();
  loadDevices();
  markTabsStale();
  loadTab(state.tab);
}

/** After the token changed: reload everything the page shows. */
export function refreshEverything() {
  state.parsers = null;
  state.seriesFailed.clear();
  pollSoon();
  if (state.selected !== null) {
    loadDevices();
    markTabsStale();
    loadTab(state.tab);
  }
}
