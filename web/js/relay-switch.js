// On/off switches on the Devices page: a sensor whose name fits the `switch` of a parser's command
// template (relay_{channel} for relay_controller_v1's set_relay) gets a switch that sends the
// command and shows it pending until the device confirms it, or the error.

import { h } from './dom.js';
import { api, errorText } from './api.js';
import { state } from './state.js';

// Command id -> the switch that sent it and the state it asked for.
const pending = new Map();
// The latest status of commands no switch waits for yet: a device may confirm before the page
// has the answer to its POST.
const early = new Map();

/** The arguments a sensor name gives a name template such as `relay_{channel}`, or null. */
export function namedArguments(template, name) {
  const names = [];
  const escaped = template.split(/(\{[^{}]+\})/).map((part) => {
    const placeholder = /^\{([^{}]+)\}$/.exec(part);
    if (placeholder) {
      names.push(placeholder[1]);
      return '(.+?)';
    }
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }).join('');
  const match = new RegExp(`^${escaped}$`).exec(name);
  if (!match) return null;
  return Object.fromEntries(names.map((key, index) => [key, match[index + 1]]));
}

function templateFor(sensorName) {
  for (const parser of state.parsers || []) {
    for (const command of parser.commands || []) {
      if (!command.switch) continue;
      const args = namedArguments(command.switch.sensor, sensorName);
      if (args) return { command, args };
    }
  }
  return null;
}

function show(control, isOn) {
  control.button.setAttribute('aria-checked', String(isOn));
  control.button.textContent = isOn ? 'On' : 'Off';
}

function setStatus(control, status, text, title) {
  control.status.dataset.status = status;
  control.status.textContent = text;
  control.status.title = title || '';
}

/**
 * The switch of a sensor row (`entry` from the Devices tree), or null when no template controls
 * a sensor of that name. The gateway and datalogger arguments come from the sensor's device.
 */
export function relaySwitch(entry) {
  const found = templateFor(entry.data.name);
  if (!found) return null;
  const { command, args } = found;
  const properties = (command.args && command.args.properties) || {};
  if ('gateway' in properties) args.gateway = entry.dl.gw.data.identifier;
  if ('datalogger' in properties) args.datalogger = entry.dl.data.identifier;
  const control = {
    command,
    args,
    button: h('button', {
      type: 'button',
      role: 'switch',
      class: 'relay-switch needs-change',
      'aria-label': `${entry.data.name}: switch on or off`,
    }),
    status: h('span', { class: 'relay-status small', 'aria-live': 'polite' }),
    isOn: Number(entry.data.last_value) !== 0,
  };
  show(control, control.isOn);
  control.button.addEventListener('click', (event) => {
    // The row itself may open the sensor's history.
    event.stopPropagation();
    send(control, !control.isOn);
  });
  entry.relaySwitch = control;
  return h('span', { class: 'relay-control' }, control.button, ' ', control.status);
}

async function send(control, turnOn) {
  const { command, args } = control;
  const body = {
    template: command.name,
    args: { ...args, [command.switch.arg]: turnOn ? command.switch.on : command.switch.off },
  };
  control.button.disabled = true;
  setStatus(control, 'queued', 'pending…');
  try {
    const created = await api(`/api/sites/${state.selected}/commands`, { method: 'POST', body });
    pending.set(created.id, { control, turnOn, confirmedByReply: command.confirmed_by_reply });
    applyRelayCommandStatus({ id: created.id, status: created.status, error: created.error });
    const later = early.get(created.id);
    if (later) applyRelayCommandStatus(later);
    early.clear();
  } catch (err) {
    control.button.disabled = false;
    setStatus(control, 'failed', 'not sent', errorText(err));
    control.status.textContent = `not sent: ${errorText(err)}`;
  }
}

/** A `command_status` event: moves a switch that is waiting for that command. */
export function applyRelayCommandStatus(msg) {
  const waiting = pending.get(msg.id);
  if (!waiting) {
    if (early.size > 200) early.clear();
    early.set(msg.id, msg);
    return;
  }
  const { control, turnOn, confirmedByReply } = waiting;
  const done = msg.status === 'confirmed' || (!confirmedByReply && msg.status === 'delivered');
  if (done) {
    pending.delete(msg.id);
    control.isOn = turnOn;
    show(control, turnOn);
    control.button.disabled = false;
    setStatus(control, 'confirmed', msg.status);
  } else if (msg.status === 'failed' || msg.status === 'expired') {
    pending.delete(msg.id);
    control.button.disabled = false;
    setStatus(control, msg.status, `${msg.status}${msg.error ? `: ${msg.error}` : ''}`, msg.error);
  } else {
    setStatus(control, msg.status, `pending (${msg.status})`);
  }
}

/** A new value of a sensor with a switch: the switch follows the device's own report. */
export function followSensorValue(entry) {
  const control = entry.relaySwitch;
  if (!control || control.button.disabled) return;
  control.isOn = Number(entry.data.last_value) !== 0;
  show(control, control.isOn);
}
