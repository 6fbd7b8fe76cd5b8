// The Commands tab: send a command to the selected site's devices and follow each one from
// queued to delivered and, for a template with a confirm rule, confirmed (or failed, or
// expired), live from the WebSocket.

import { $, h, setBusy } from './dom.js';
import { api, errorText } from './api.js';
import { clearAlert, showAlert } from './alerts.js';
import { ageEl, formatAbsolute } from './format.js';
import { state } from './state.js';

function timeCell(value) {
  if (!value) return h('span', { class: 'muted', text: '—' });
  return h('span', { title: `${value} (UTC)`, text: formatAbsolute(value) });
}

function commandRow(command) {
  return h('tr', { class: 'command', 'data-command-id': String(command.id), 'data-status': command.status },
    h('td', { class: 'nowrap' }, h('span', { text: formatAbsolute(command.created_at) }), h('br'), ageEl(command.created_at)),
    h('td', null, h('code', { class: 'topic', text: command.topic }),
      command.template ? h('span', { class: 'muted small', text: ` (${command.template})` }) : null, h('br'),
      h('span', { class: 'muted small payload', text: command.payload })),
    h('td', { text: String(command.qos) + (command.retain ? ' (retained)' : '') }),
    h('td', null, h('span', { class: `status status-command-${command.status}`, text: command.status })),
    h('td', { class: 'nowrap' }, timeCell(command.sent_at), h('br'), timeCell(command.delivered_at),
      command.confirm ? h('br') : null, command.confirm ? timeCell(command.confirmed_at) : null),
    h('td', { class: 'message', text: command.error || '' }));
}

export async function loadCommands() {
  const siteId = state.selected;
  state.stale.commands = false;
  setBusy('#commands-body', true);
  try {
    const rows = await api(`/api/sites/${siteId}/commands?limit=100`);
    if (siteId !== state.selected) return;
    const list = Array.isArray(rows) ? rows : [];
    $('#commands-body').replaceChildren(...list.map(commandRow));
    $('#commands-empty').hidden = list.length > 0;
    $('#commands-summary').textContent = list.length ? `${list.length} most recent` : '';
    clearAlert('commands');
  } catch (err) {
    if (siteId !== state.selected) return;
    state.stale.commands = true;
    showAlert(`Could not load the commands: ${errorText(err)}`, { key: 'commands' });
  } finally {
    setBusy('#commands-body', false);
  }
}

let reloadTimer = null;

/** A command of the selected site moved on: show its status at once, and its times shortly. */
export function applyCommandStatus(msg) {
  if (state.tab !== 'commands') {
    state.stale.commands = true;
    return;
  }
  const row = document.querySelector(`#commands-body tr[data-command-id="${msg.id}"]`);
  if (row) {
    row.dataset.status = msg.status;
    const label = row.querySelector('.status');
    label.textContent = msg.status;
    label.className = `status status-command-${msg.status}`;
    if (msg.error) row.querySelector('.message').textContent = msg.error;
  }
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadCommands(), 300);
}

/** The payload as typed: JSON when it parses, otherwise the text itself. */
function payloadOf(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function onSend(event) {
  event.preventDefault();
  const siteId = state.selected;
  if (siteId === null) return;
  const error = $('#command-error');
  error.textContent = '';
  for (const input of document.querySelectorAll('#command-form [aria-invalid]')) input.removeAttribute('aria-invalid');
  const body = {
    topic: $('#command-topic').value.trim(),
    payload: payloadOf($('#command-payload').value),
    qos: Number($('#command-qos').value),
    retain: $('#command-retain').checked,
  };
  const submit = $('#command-submit');
  submit.disabled = true;
  try {
    await api(`/api/sites/${siteId}/commands`, { method: 'POST', body });
    await loadCommands();
  } catch (err) {
    // What was typed stays; the message names the field and that field is marked.
    error.textContent = errorText(err);
    const input = err.field && document.querySelector(`#command-form [name="${err.field}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  } finally {
    submit.disabled = false;
  }
}

export function initCommands() {
  $('#command-form').addEventListener('submit', onSend);
  $('#commands-refresh').addEventListener('click', () => loadCommands());
}
