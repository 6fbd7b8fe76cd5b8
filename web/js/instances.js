// The Instances list in the sidebar: every `serve` process sharing the database, its heartbeat
// and how many connection shards it runs; the one running the selected site is marked, one
// whose heartbeat stopped is shown as such until the database forgets it.

import { $, h } from './dom.js';
import { api } from './api.js';
import { ageEl } from './format.js';
import { state } from './state.js';

/** Reload the instances (called with every sites refresh); a failure leaves the last list. */
export async function loadInstances() {
  const rows = await api('/api/instances');
  state.instances = Array.isArray(rows) ? rows : [];
  renderInstances();
}

export function renderInstances() {
  const conn = state.selected === null ? null : state.conns.get(state.selected);
  const running = new Set((conn?.shard_owners || []).map((shard) => shard.owner).filter(Boolean));
  if (conn?.owner) running.add(conn.owner);
  const list = $('#instances');
  list.replaceChildren(...state.instances.map((instance) => h('li', {
    class: `instance${running.has(instance.id) ? ' runs-selected' : ''}${instance.live === false ? ' instance-gone' : ''}`,
    'data-instance-id': instance.id,
  },
  h('span', { class: 'instance-id', text: instance.live === false ? `${instance.id} (no heartbeat)` : instance.id }),
  h('span', { class: 'muted small' },
    `${Array.isArray(instance.connections) ? instance.connections.length : 0} running · ${instance.http_addr || 'no HTTP'} · heartbeat `, ageEl(instance.heartbeat_at)))));
  $('#instances-summary').textContent = state.instances.length === 1 ? '1 instance' : `${state.instances.length} instances`;
}
