// The Discovered topics tab: every topic seen on the site's broker, filterable, with a Make a
// pattern button that opens the pattern form on a topic.

import { $, h, debounce, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { ageEl, formatPayload, topicNodes, truncate } from './format.js';
import { initPatternForm, openPatternForm } from './pattern-form.js';
import { state } from './state.js';

export async function loadDiscovered() {
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

/** Reload the list shortly if it is on screen, else when it is shown next. */
export const refreshDiscoveredSoon = debounce(() => {
  if (state.tab === 'discovered') loadDiscovered();
  else state.stale.discovered = true;
}, 1000);

function renderDiscovered() {
  const filter = $('#discovered-filter').value.trim().toLowerCase();
  const rows = filter ? state.discovered.filter((t) => String(t.topic).toLowerCase().includes(filter)) : state.discovered;
  const body = $('#discovered-body');
  body.replaceChildren(...rows.map((t, i) => {
    const sample = formatPayload(t.last_payload);
    const processable = Boolean(t.is_processable);
    const codeId = `topic-${i}`;
    const btn = h('button', { type: 'button', class: 'btn btn-small needs-change', text: 'Make a pattern', 'aria-describedby': codeId, onclick: () => openPatternForm(t, btn) });
    // data-label names each cell where a narrow screen shows the rows as cards, without headers.
    return h('tr', { 'data-topic-id': t.id, 'data-topic': t.topic },
      h('td', { class: 'topic' }, h('code', { id: codeId }, topicNodes(t.topic))),
      h('td', { 'data-label': 'Processable' }, h('span', { class: `yesno ${processable ? 'yes' : 'no'}`, text: processable ? 'yes' : 'no' })),
      h('td', { class: 'num', 'data-label': 'Messages', text: String(t.message_count ?? '') }),
      h('td', { class: 'nowrap', 'data-label': 'Last seen' }, ageEl(t.last_seen)),
      h('td', { class: 'sample', 'data-label': 'Sample' }, sample ? h('code', { class: 'payload-sample', title: truncate(sample, 2000), text: truncate(sample, 120) }) : h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'actions' }, btn));
  }));
  const total = state.discovered.length;
  const processable = state.discovered.filter((t) => t.is_processable).length;
  $('#discovered-summary').textContent = total ? `${total} topic${total === 1 ? '' : 's'}, ${processable} processable${filter ? ` · ${rows.length} shown` : ''}` : '';
  $('#discovered-empty').hidden = total > 0;
}

/** After a pattern was created: topics it matches are processed from their next message on. */
function afterPatternCreated(siteId) {
  if (siteId !== state.selected) return;
  loadDiscovered();
  setTimeout(() => { if (siteId === state.selected && state.tab === 'discovered') loadDiscovered(); }, 3000);
}

export function initDiscovered() {
  $('#discovered-refresh').addEventListener('click', () => loadDiscovered());
  $('#discovered-filter').addEventListener('input', debounce(renderDiscovered, 150));
  initPatternForm({ onCreated: afterPatternCreated });
}
