// The Settings tab: the selected site's form and its MQTT connection's form, or an empty site
// form for a new site. A form holding unsaved typing is left alone when the tab reloads.

import { $ } from './dom.js';
import { fillConnectionForm, hideConnectionForm } from './connection-form.js';
import { fillSiteForm } from './site-form.js';
import { state } from './state.js';
import { setTab } from './tabs.js';

// True while the site form is for a site that does not exist yet.
let creating = false;

export function isCreatingSite() {
  return creating;
}

/** Show the forms for what is selected (the tab loads this when shown or stale). */
export function loadSettings() {
  state.stale.settings = false;
  if (creating) {
    showNewSiteForm();
    return;
  }
  const site = state.sitesById.get(state.selected);
  $('#settings-empty').hidden = Boolean(site);
  $('#settings-summary').textContent = '';
  if (!site) {
    $('#site-form').hidden = true;
    hideConnectionForm();
    return;
  }
  fillSiteForm(site);
  fillConnectionForm(site, state.conns.get(site.id) || null);
}

function showNewSiteForm() {
  $('#settings-empty').hidden = true;
  $('#settings-summary').textContent = 'new site';
  fillSiteForm(null);
  hideConnectionForm();
}

/** The New site button: an empty site form on the Settings tab. */
export function openNewSite() {
  creating = true;
  setTab('settings');
  showNewSiteForm();
  $('#site-name').focus();
}

/** Back from the new site's form to the selected site's forms. */
export function leaveNewSite({ reload = true } = {}) {
  creating = false;
  if (reload) loadSettings();
}

export function initSettings() {
  $('#site-new').addEventListener('click', openNewSite);
  // Choosing a site in the list leaves the new site's form for that site's forms.
  $('#sites').addEventListener('click', (event) => {
    if (creating && event.target instanceof Element && event.target.closest('.site-select')) leaveNewSite();
  });
}
