// What the page knows: one shared object that every view reads and updates.

export const state = {
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
  stale: { discovered: true, errors: true, connlog: true, history: true, commands: true, settings: true },
  instances: [],               // the serve processes sharing the database
  discovered: [],
  parsers: null,
  sitesRows: new Map(),        // site_id -> row parts
};

/** Every tab but Devices must reload before it is shown again. */
export function markTabsStale() {
  state.stale = { discovered: true, errors: true, connlog: true, history: true, commands: true, settings: true };
}

export function siteName(siteId) {
  const site = state.sitesById.get(siteId);
  return site ? site.name : `site ${siteId}`;
}
