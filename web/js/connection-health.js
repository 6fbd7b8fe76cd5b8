// What the selected site's connection really receives: each subscription with the broker's
// answer, the last message and the silence alarm, the discovery filter, and which instance
// runs it (shard by shard when there are several).

import { $, h } from './dom.js';
import { ageEl, setAge } from './format.js';
import { state } from './state.js';

function subscriptionItem(subscription) {
  const { filter, qos, state: answer } = subscription;
  const granted = subscription.granted_qos;
  const parts = [h('code', { class: 'subscription-filter', text: filter })];
  let label = answer;
  if (answer === 'granted' && granted !== undefined && granted !== null) {
    label = granted < qos ? `granted QoS ${granted} (asked ${qos})` : `granted QoS ${granted}`;
  } else if (answer === 'refused') {
    label = 'refused by the broker';
  } else if (answer === 'pending') {
    label = 'waiting for the broker';
  }
  const downgraded = answer === 'granted' && granted !== undefined && granted !== null && granted < qos;
  parts.push(h('span', { class: `subscription-state sub-${answer}${downgraded ? ' sub-downgraded' : ''}`, text: label }));
  return h('li', { class: 'subscription', 'data-filter': filter, 'data-state': answer }, ...parts);
}

function ownerText(conn) {
  const shards = Number(conn.shards) || 1;
  if (shards <= 1) return conn.owner ? `instance ${conn.owner}` : 'no instance yet';
  const owners = Array.isArray(conn.shard_owners) ? conn.shard_owners : [];
  const held = owners.filter((shard) => shard.owner).length;
  const names = [...new Set(owners.map((shard) => shard.owner).filter(Boolean))];
  return `${shards} shards, ${held} running${names.length ? ` on ${names.join(', ')}` : ''}`;
}

/** Show (or hide, without a connection) the facts of the selected site's connection. */
export function renderConnectionHealth() {
  const section = $('#conn-health');
  const conn = state.selected === null ? null : state.conns.get(state.selected);
  if (!conn) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const last = $('#conn-last-message');
  last.replaceChildren(conn.last_message_at ? ageEl(conn.last_message_at) : 'none yet');

  const silence = $('#conn-silence');
  const limit = conn.max_silence_secs;
  if (conn.silent) {
    silence.replaceChildren(h('span', { class: 'status status-silent', 'data-status': 'silent', text: 'silent' }),
      ` no message for over ${limit} s`);
  } else {
    silence.textContent = limit ? `after ${limit} s without a message` : 'off';
  }
  $('#conn-discovery').replaceChildren(conn.discovery_filter ? h('code', { text: conn.discovery_filter }) : 'none');
  $('#conn-owner').textContent = ownerText(conn);

  const subscriptions = Array.isArray(conn.subscriptions) ? conn.subscriptions : [];
  const list = $('#subscriptions');
  list.replaceChildren(...subscriptions.map(subscriptionItem));
  if (!subscriptions.length) {
    list.append(h('li', { class: 'subscription muted', text: conn.status === 'connected' ? 'no subscriptions' : 'subscribes once connected' }));
  }
}

/** A `connection_silent` event: the connection has had no message for a while. */
export function applyConnectionSilent(msg) {
  const conn = state.conns.get(msg.site_id);
  if (!conn) return;
  conn.silent = true;
  if (!conn.max_silence_secs) conn.max_silence_secs = msg.silent_secs;
  if (msg.site_id === state.selected) renderConnectionHealth();
}

/** Live data for the site: a message arrived, so the connection is not silent now. */
export function noteMessageArrived(siteId) {
  const conn = state.conns.get(siteId);
  if (!conn) return;
  conn.last_message_at = new Date().toISOString();
  const wasSilent = conn.silent;
  conn.silent = false;
  if (siteId !== state.selected) return;
  const time = $('#conn-last-message time.age');
  if (wasSilent || !time) renderConnectionHealth();
  else setAge(time, conn.last_message_at);
}
