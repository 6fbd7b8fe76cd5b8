// The filter bar of the Parsing errors tab: parser (from the registry), topic text, a time range
// typed in the browser's zone and sent as UTC, replayed or not; a 422 from the API is shown next
// to the field it names.

import { $, h } from './dom.js';
import { api } from './api.js';
import { state } from './state.js';

/** The names of the bar's fields, which are the API's parameter names. */
function fieldNames() {
  return Array.from($('#errors-filter').querySelectorAll('[name]'), (el) => el.name);
}

/** The browser's offset from UTC for a moment, as "+02:00". */
function zoneOffset(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** A datetime-local value (the browser's zone) as an RFC 3339 UTC time, or '' when empty. */
function localInputToUtc(value) {
  if (!value) return '';
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? new Date(ms).toISOString() : value;
}

/** The filters as query parameters (empty ones left out) for the selected site. */
export function filterParams(siteId) {
  const form = $('#errors-filter');
  const params = new URLSearchParams();
  if (siteId !== null && siteId !== undefined) params.set('site_id', String(siteId));
  for (const el of form.querySelectorAll('[name]')) {
    // Times are typed in the browser's zone; the API takes them with their offset.
    const value = el.type === 'datetime-local' ? localInputToUtc(el.value) : el.value;
    if (value) params.set(el.name, value);
  }
  return params;
}

/** Whether any filter narrows the list. */
export function filtering() {
  const form = $('#errors-filter');
  return fieldNames().some((name) => form.elements[name].value !== '');
}

export function clearFilterErrors() {
  const form = $('#errors-filter');
  for (const name of fieldNames()) {
    form.elements[name].removeAttribute('aria-invalid');
    $(`#errors-${name}-error`).textContent = '';
  }
  $('#errors-filter-error').textContent = '';
}

/** Shows an API error next to the field it names, or under the bar; true if it named one. */
export function showFilterError(err) {
  clearFilterErrors();
  const field = err && err.field;
  const form = $('#errors-filter');
  if (field && fieldNames().includes(field)) {
    form.elements[field].setAttribute('aria-invalid', 'true');
    $(`#errors-${field}-error`).textContent = err.message;
    return true;
  }
  $('#errors-filter-error').textContent = err && err.message ? err.message : String(err);
  return false;
}

/** Fills the parser select from the registry, keeping the current choice. */
export async function loadParserOptions() {
  if (!state.parsers) {
    const rows = await api('/api/parsers');
    state.parsers = Array.isArray(rows) ? rows : [];
  }
  const select = $('#errors-parser');
  const chosen = select.value;
  const names = state.parsers.map((parser) => parser.name);
  if (chosen && !names.includes(chosen)) names.push(chosen);
  select.replaceChildren(h('option', { value: '', text: 'Any parser' }),
    ...names.sort().map((name) => h('option', { value: name, text: name })));
  select.value = chosen;
}

/** Wires the bar: `apply` reloads the list with the filters. */
export function initErrorsFilter(apply) {
  const form = $('#errors-filter');
  const zone = `(your time, UTC${zoneOffset()})`;
  for (const el of form.querySelectorAll('.errors-zone')) el.textContent = zone;
  form.addEventListener('submit', (event) => { event.preventDefault(); apply(); });
  for (const name of ['parser', 'replayed']) form.elements[name].addEventListener('change', () => apply());
  $('#errors-clear').addEventListener('click', () => {
    for (const name of fieldNames()) form.elements[name].value = '';
    clearFilterErrors();
    apply();
  });
}
