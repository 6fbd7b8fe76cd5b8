// Entry module of the Devices page (plain ES modules, no build step, no dependencies): wires
// the views together, then starts the live stream and the periodic refresh. The REST API is
// under /api, the WebSocket hub at /ws; the modules are served from /js/.

import { initAuth } from './js/auth.js';
import { initCommands } from './js/commands.js';
import { initConnectionForm } from './js/connection-form.js';
import { initConnectionLog } from './js/connection-log.js';
import { initDeviceHistory } from './js/device-history.js';
import { initDevices } from './js/devices.js';
import { initDiscovered } from './js/discovered.js';
import { tickAges } from './js/format.js';
import { initParsingErrors } from './js/parsing-errors.js';
import { initSettings } from './js/settings.js';
import { initSiteForm } from './js/site-form.js';
import { initSensorChart } from './js/sensor-chart.js';
import { pollConnections } from './js/sites.js';
import { initTabs } from './js/tabs.js';
import { handleEvent, refreshEverything, resync } from './js/updates.js';
import { connectLive, reconnectWsNow, updateWsCountdown } from './js/websocket.js';

function init() {
  initAuth({ reconnect: reconnectWsNow, refresh: refreshEverything });
  initTabs();
  initDevices();
  initSensorChart();
  initDiscovered();
  initParsingErrors();
  initConnectionLog();
  initDeviceHistory();
  initCommands();
  initSettings();
  initSiteForm();
  initConnectionForm();

  setInterval(() => { tickAges(); updateWsCountdown(); }, 1000);
  connectLive({ onEvent: handleEvent, onResync: resync });
  pollConnections();
}

init();
