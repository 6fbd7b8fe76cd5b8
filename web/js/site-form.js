// The site form of the Settings tab: create a site, rename or switch off the selected one, or
// delete it after asking. A refused save keeps what was typed and shows why beside the field.

import { $ } from './dom.js';
import { api } from './api.js';
import { showAlert } from './alerts.js';
import { confirmInPlace } from './confirm.js';
import { clearFormErrors, clearOnInput, showFormError } from './field-errors.js';
import { isCreatingSite, leaveNewSite, loadSettings } from './settings.js';
import { reloadSites } from './sites.js';
import { state } from './state.js';

// Whether the slug is still derived from the name (a new site whose slug nobody typed).
let slugFollowsName = false;

/** A slug from a name: lowercase ASCII letters and digits, '-' between words. */
export function slugFromName(name) {
  return name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64).replace(/-+$/, '');
}

/** Show `site` in the form (null: a new site), unless the form holds typing for that same site. */
export function fillSiteForm(site, { force = false } = {}) {
  const form = $('#site-form');
  const key = site ? String(site.id) : 'new';
  if (!force && !form.hidden && form.dataset.for === key && form.dataset.dirty === 'true') return;
  clearFormErrors(form, $('#site-form-error'));
  form.dataset.for = key;
  form.dataset.dirty = 'false';
  $('#site-form-title').textContent = site ? 'Site' : 'New site';
  $('#site-name').value = site ? site.name : '';
  $('#site-slug').value = site ? site.slug : '';
  $('#site-active').checked = site ? site.is_active !== false : true;
  slugFollowsName = !site;
  $('#site-save').textContent = site ? 'Save site' : 'Create site';
  $('#site-cancel').hidden = Boolean(site);
  $('#site-delete').hidden = !site;
  $('#site-delete-confirm').hidden = true;
  form.hidden = false;
}

async function onSubmit(event) {
  event.preventDefault();
  const form = $('#site-form');
  const errorEl = $('#site-form-error');
  clearFormErrors(form, errorEl);
  const creating = form.dataset.for === 'new';
  const body = {
    name: $('#site-name').value,
    slug: $('#site-slug').value.trim(),
    is_active: $('#site-active').checked,
  };
  const submit = $('#site-save');
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  try {
    if (creating) {
      const site = await api('/api/sites', { method: 'POST', body });
      form.dataset.dirty = 'false';
      leaveNewSite({ reload: false });
      showAlert(`Site ${site.name} created. Add its MQTT connection below.`, { kind: 'info', key: 'site-form' });
      await reloadSites(site.id);
      loadSettings();
      $('#connection-host').focus();
    } else {
      const site = await api(`/api/sites/${form.dataset.for}`, { method: 'PATCH', body });
      form.dataset.dirty = 'false';
      showAlert(`Site ${site.name} saved.`, { kind: 'info', key: 'site-form' });
      await reloadSites();
      fillSiteForm(site, { force: true });
    }
  } catch (err) {
    // What was typed stays; a taken slug (409) is shown at the slug.
    showFormError(form, errorEl, err, { fallbackField: 'slug' });
  } finally {
    submit.disabled = false;
    submit.setAttribute('aria-busy', 'false');
  }
}

async function onDelete() {
  const form = $('#site-form');
  const siteId = Number(form.dataset.for);
  const site = state.sitesById.get(siteId);
  if (!site) return;
  const button = $('#site-delete');
  const confirmed = await confirmInPlace($('#site-delete-confirm'), {
    question: `Delete ${site.name}? Its connection, patterns, devices and readings are deleted with it.`,
    confirmLabel: 'Delete site',
    origin: button,
  });
  if (!confirmed) return;
  const errorEl = $('#site-form-error');
  clearFormErrors(form, errorEl);
  try {
    await api(`/api/sites/${siteId}`, { method: 'DELETE' });
    showAlert(`Site ${site.name} deleted.`, { kind: 'info', key: 'site-form' });
    form.dataset.dirty = 'false';
    await reloadSites();
    loadSettings();
    $('#settings-title').focus();
  } catch (err) {
    showFormError(form, errorEl, err);
    button.focus();
  }
}

function onCancel() {
  if (!isCreatingSite()) return;
  $('#site-form').dataset.dirty = 'false';
  leaveNewSite();
  $('#site-new').focus();
}

export function initSiteForm() {
  const form = $('#site-form');
  form.addEventListener('submit', onSubmit);
  form.addEventListener('input', () => { form.dataset.dirty = 'true'; });
  clearOnInput(form);
  $('#site-name').addEventListener('input', () => {
    if (slugFollowsName) $('#site-slug').value = slugFromName($('#site-name').value);
  });
  $('#site-slug').addEventListener('input', () => { slugFollowsName = false; });
  $('#site-cancel').addEventListener('click', onCancel);
  $('#site-delete').addEventListener('click', onDelete);
  form.addEventListener('keydown', (event) => { if (event.key === 'Escape' && isCreatingSite()) onCancel(); });
}
