// What the signed-in token may do: with the read token the page is read only, leaving out
// Start/Stop, Replay, the pattern, site and connection forms rather than offering them and
// failing with 403.

import { $ } from './dom.js';
import { api } from './api.js';

/** Ask the server what the current token may do and show the page accordingly. */
export async function loadAccess() {
  const me = await api('/api/me');
  const readOnly = !(me && me.can_change);
  document.body.classList.toggle('read-only', readOnly);
  document.body.dataset.access = me && me.token ? me.token : 'none';
  $('#access-badge').hidden = !readOnly;
}
