// The MQTT connection form of the Settings tab: every field of a connection, grouped; create or
// change the selected site's connection, try the typed settings with Test connection, or delete
// it after asking. The password is write-only: left empty on an existing connection it stays as
// stored, and Test connection then uses the stored one.

import { $ } from './dom.js';
import { api, errorText } from './api.js';
import { showAlert } from './alerts.js';
import { confirmInPlace } from './confirm.js';
import { clearFormErrors, clearOnInput, showFormError } from './field-errors.js';
import { applyConnectionRow } from './sites.js';
import { state } from './state.js';

// The site whose connection the form shows, whether that connection exists, and the values as
// filled in (an edit sends only what differs from them).
let siteId = null;
let exists = false;
let filled = {};

const text = (sel) => $(sel).value.trim();
const orNull = (value) => (value === '' ? null : value);

/** A number field: null when empty; what was typed when it is not a number, so the API names it. */
function numberField(sel) {
  const raw = $(sel).value.trim();
  if (raw === '') return null;
  const number = Number(raw);
  return Number.isFinite(number) ? number : raw;
}

/** The form's values as a connection body, without the password and the site. */
function formValues() {
  const willOn = $('#connection-will-enabled').checked;
  return {
    host: text('#connection-host'),
    port: numberField('#connection-port'),
    client_id: orNull(text('#connection-client-id')),
    username: orNull($('#connection-username').value),
    use_tls: $('#connection-use-tls').checked,
    ca_file: orNull(text('#connection-ca-file')),
    client_cert_file: orNull(text('#connection-cert-file')),
    client_key_file: orNull(text('#connection-key-file')),
    protocol: $('#connection-protocol').value,
    // Empty means the default, as on a new connection.
    keepalive_secs: numberField('#connection-keepalive') ?? 30,
    clean_session: $('#connection-clean-session').checked,
    session_expiry_secs: numberField('#connection-session-expiry'),
    last_will: willOn ? {
      topic: $('#connection-will-topic').value,
      payload: $('#connection-will-payload').value,
      qos: Number($('#connection-will-qos').value),
      retain: $('#connection-will-retain').checked,
    } : null,
    shards: numberField('#connection-shards') ?? 1,
    max_silence_secs: numberField('#connection-silence'),
    discovery_filter: orNull(text('#connection-discovery')),
  };
}

function setWillEnabled(on) {
  $('#connection-will-enabled').checked = on;
  for (const input of $('#connection-will-fields').querySelectorAll('input, textarea, select')) input.disabled = !on;
}

/** Show the connection of `site` (`conn` null: a new one), unless the form holds typing for it. */
export function fillConnectionForm(site, conn, { force = false } = {}) {
  const form = $('#connection-form');
  const key = `${site.id}:${conn ? 'edit' : 'new'}`;
  if (!force && !form.hidden && form.dataset.for === key && form.dataset.dirty === 'true') return;
  clearFormErrors(form, $('#connection-form-error'));
  form.dataset.for = key;
  form.dataset.dirty = 'false';
  siteId = site.id;
  exists = Boolean(conn);
  const c = conn || {};
  $('#connection-form-title').textContent = conn ? 'MQTT connection' : 'New MQTT connection';
  $('#connection-form-intro').textContent = conn
    ? 'Saving applies the change at once; the connection reconnects when a broker setting changed.'
    : `${site.name} has no MQTT connection yet. Fill in the broker, try it with Test connection, then save.`;
  $('#connection-host').value = c.host ?? '';
  $('#connection-port').value = String(c.port ?? 1883);
  $('#connection-client-id').value = c.client_id ?? '';
  $('#connection-client-id').placeholder = `mqtt-supervisor-${site.slug}`;
  $('#connection-username').value = c.username ?? '';
  $('#connection-password').value = '';
  $('#connection-password-label').textContent = conn && c.has_password
    ? 'Password (write-only: a password is stored; leave empty to keep it)'
    : 'Password (write-only)';
  $('#connection-password-clear').checked = false;
  $('#connection-password').disabled = false;
  $('#connection-password-clear-field').hidden = !(conn && c.has_password);
  $('#connection-use-tls').checked = Boolean(c.use_tls);
  $('#connection-ca-file').value = c.ca_file ?? '';
  $('#connection-cert-file').value = c.client_cert_file ?? '';
  $('#connection-key-file').value = c.client_key_file ?? '';
  $('#connection-protocol').value = c.protocol === '5' ? '5' : '3.1.1';
  $('#connection-keepalive').value = String(c.keepalive_secs ?? 30);
  $('#connection-clean-session').checked = Boolean(c.clean_session);
  $('#connection-session-expiry').value = c.session_expiry_secs ?? '';
  const will = c.last_will || null;
  $('#connection-will-topic').value = will ? will.topic : '';
  $('#connection-will-payload').value = will ? will.payload : '';
  $('#connection-will-qos').value = String(will ? will.qos : 1);
  $('#connection-will-retain').checked = Boolean(will && will.retain);
  setWillEnabled(Boolean(will));
  $('#connection-shards').value = String(c.shards ?? 1);
  $('#connection-silence').value = c.max_silence_secs ?? '';
  $('#connection-discovery').value = c.discovery_filter ?? '';
  // Start and Stop live in the site list; a new connection may start as soon as it is saved.
  $('#connection-active-field').hidden = Boolean(conn);
  $('#connection-active').checked = true;
  $('#connection-save').textContent = conn ? 'Save connection' : 'Create connection';
  $('#connection-delete').hidden = !conn;
  $('#connection-delete-confirm').hidden = true;
  $('#connection-test-result').replaceChildren();
  filled = formValues();
  form.hidden = false;
}

export function hideConnectionForm() {
  $('#connection-form').hidden = true;
  siteId = null;
}

/** The body of a new connection: what was typed, defaults left to the API. */
function createBody() {
  const body = { site_id: siteId, ...formValues(), is_active: $('#connection-active').checked };
  const password = $('#connection-password').value;
  if (password !== '') body.password = password;
  for (const [key, value] of Object.entries(body)) if (value === null) delete body[key];
  return body;
}

/** The body of an edit: only the fields that differ from what was filled in, so a change made
 *  elsewhere meanwhile (Start/Stop, another browser) is not written back. */
function patchBody() {
  const values = formValues();
  const body = {};
  for (const [key, value] of Object.entries(values)) {
    if (JSON.stringify(value) !== JSON.stringify(filled[key])) body[key] = value;
  }
  const password = $('#connection-password').value;
  if (password !== '') body.password = password;
  else if ($('#connection-password-clear').checked) body.password = null;
  return body;
}

/** What Test connection sends: the typed settings; on an existing connection without a typed
 *  password, the site, so the stored password is used. */
function testBody() {
  const body = { ...formValues() };
  for (const [key, value] of Object.entries(body)) if (value === null) delete body[key];
  const password = $('#connection-password').value;
  if (password !== '') body.password = password;
  else if (exists && !$('#connection-password-clear').checked) body.site_id = siteId;
  return body;
}

function busy(button, on, label) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
  if (label) button.textContent = label;
}

async function onSubmit(event) {
  event.preventDefault();
  if (siteId === null) return;
  const form = $('#connection-form');
  const errorEl = $('#connection-form-error');
  clearFormErrors(form, errorEl);
  const forSite = siteId;
  const button = $('#connection-save');
  const label = button.textContent;
  busy(button, true, 'Saving…');
  try {
    let row;
    if (exists) {
      const body = patchBody();
      if (!Object.keys(body).length) {
        errorEl.textContent = 'Nothing changed.';
        return;
      }
      row = await api(`/api/mqtt/connection/${forSite}/`, { method: 'PATCH', body });
    } else {
      row = await api('/api/mqtt/connections', { method: 'POST', body: createBody() });
    }
    form.dataset.dirty = 'false';
    applyConnectionRow(forSite, row);
    const site = state.sitesById.get(forSite);
    if (site && siteId === forSite) fillConnectionForm(site, row, { force: true });
    showAlert(`Connection of ${site ? site.name : `site ${forSite}`} saved.`, { kind: 'info', key: 'connection-form' });
  } catch (err) {
    // What was typed stays; the message goes beside the field it names.
    showFormError(form, errorEl, err);
  } finally {
    busy(button, false, exists ? 'Save connection' : label);
  }
}

async function onTest() {
  if (siteId === null) return;
  const form = $('#connection-form');
  const errorEl = $('#connection-form-error');
  const result = $('#connection-test-result');
  clearFormErrors(form, errorEl);
  const button = $('#connection-test');
  busy(button, true, 'Testing…');
  result.className = 'test-result';
  result.textContent = 'Trying the broker…';
  try {
    const answer = await api('/api/mqtt/connections/test', { method: 'POST', body: testBody() });
    result.className = `test-result ${answer.ok ? 'test-ok' : 'test-failed'}`;
    result.dataset.ok = String(Boolean(answer.ok));
    result.textContent = answer.ok
      ? `Connection ok: ${answer.server} answered in ${answer.latency_ms} ms.`
      : `Connection failed after ${answer.latency_ms} ms: ${answer.error || 'no reason given'} (${answer.server}).`;
  } catch (err) {
    result.className = 'test-result test-failed';
    result.dataset.ok = 'false';
    if (err.field) {
      result.textContent = 'Not tried: a setting needs changing (see the marked field).';
      showFormError(form, errorEl, err);
    } else {
      result.textContent = `Not tried: ${errorText(err)}`;
    }
  } finally {
    busy(button, false, 'Test connection');
  }
}

async function onDelete() {
  if (siteId === null || !exists) return;
  const forSite = siteId;
  const site = state.sitesById.get(forSite);
  const button = $('#connection-delete');
  const confirmed = await confirmInPlace($('#connection-delete-confirm'), {
    question: `Delete the MQTT connection of ${site ? site.name : `site ${forSite}`}? Its client stops; the site, its patterns and its devices stay.`,
    confirmLabel: 'Delete connection',
    origin: button,
  });
  if (!confirmed) return;
  const form = $('#connection-form');
  const errorEl = $('#connection-form-error');
  clearFormErrors(form, errorEl);
  try {
    await api(`/api/mqtt/connection/${forSite}/`, { method: 'DELETE' });
    applyConnectionRow(forSite, null);
    if (site && siteId === forSite) fillConnectionForm(site, null, { force: true });
    showAlert('Connection deleted.', { kind: 'info', key: 'connection-form' });
    $('#connection-host').focus();
  } catch (err) {
    showFormError(form, errorEl, err);
    button.focus();
  }
}

export function initConnectionForm() {
  const form = $('#connection-form');
  form.addEventListener('submit', onSubmit);
  form.addEventListener('input', () => { form.dataset.dirty = 'true'; });
  clearOnInput(form);
  $('#connection-will-enabled').addEventListener('change', (event) => {
    setWillEnabled(event.target.checked);
    if (event.target.checked) $('#connection-will-topic').focus();
  });
  $('#connection-password-clear').addEventListener('change', (event) => {
    $('#connection-password').disabled = event.target.checked;
    if (event.target.checked) $('#connection-password').value = '';
  });
  $('#connection-test').addEventListener('click', onTest);
  $('#connection-delete').addEventListener('click', onDelete);
}
