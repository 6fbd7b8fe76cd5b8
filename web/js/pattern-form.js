// The "Create a topic pattern" form of the Discovered topics tab: builds a pattern from a
// sample topic level by level, checks it against the sample, picks a parser, saves it.

import { $, h } from './dom.js';
import { api, errorText } from './api.js';
import { showAlert } from './alerts.js';
import { topicNodes } from './format.js';
import { state } from './state.js';

let patternOrigin = null;
let patternTopic = '';
// What the Discovered topics tab does once a pattern is saved (set by initPatternForm).
let onCreated = () => {};

async function loadParsers() {
  if (state.parsers) return state.parsers;
  const rows = await api('/api/parsers');
  state.parsers = Array.isArray(rows) ? rows : [];
  return state.parsers;
}

function guessParser(topicRow, parsers) {
  const names = new Set(parsers.map((p) => p.name));
  let payload = topicRow.last_payload;
  if (typeof payload === 'string') {
    try { payload = JSON.parse(payload); } catch { payload = null; }
  }
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    if (Array.isArray(payload.sensors) && names.has('datalogger_readings_v1')) return 'datalogger_readings_v1';
    if (typeof payload.status === 'string' && names.has('gateway_status_v1')) return 'gateway_status_v1';
    if (names.has('flat_telemetry')) return 'flat_telemetry';
  }
  return parsers.length ? parsers[0].name : '';
}

/** Open the form on a discovered topic; `originBtn` gets the focus back when it closes. */
export async function openPatternForm(topicRow, originBtn) {
  const form = $('#pattern-form');
  patternOrigin = originBtn;
  patternTopic = String(topicRow.topic);
  $('#pattern-sample').replaceChildren(...topicNodes(patternTopic));
  $('#pattern-input').value = patternTopic;
  $('#pattern-error').textContent = '';
  $('#priority-input').value = '0';
  $('#qos-select').value = '1';
  $('#pattern-active').checked = true;
  buildLevelSelects(patternTopic);
  updatePatternMatch();
  form.hidden = false;
  form.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  $('#pattern-input').focus();

  const select = $('#parser-select');
  select.replaceChildren(h('option', { value: '', text: 'Loading parsers…' }));
  select.disabled = true;
  try {
    const parsers = await loadParsers();
    if (patternTopic !== String(topicRow.topic)) return;
    select.replaceChildren(...parsers.map((p) => h('option', { value: p.name, text: p.kind ? `${p.name} (${p.kind})` : p.name })));
    if (!parsers.length) select.append(h('option', { value: '', text: 'No parsers available' }));
    select.value = guessParser(topicRow, parsers);
    select.disabled = parsers.length === 0;
    updateParserDescription();
  } catch (err) {
    select.replaceChildren(h('option', { value: '', text: 'Parsers unavailable' }));
    $('#pattern-error').textContent = `Could not load parsers: ${errorText(err)}`;
  }
}

export function closePatternForm() {
  const form = $('#pattern-form');
  if (form.hidden) return;
  form.hidden = true;
  if (patternOrigin && patternOrigin.isConnected) patternOrigin.focus();
  patternOrigin = null;
}

const LEVEL_CHOICES = ['{gateway}', '{datalogger}', '+', '#'];

function buildLevelSelects(topic) {
  const wrap = $('#pattern-levels');
  const levels = topic.split('/');
  wrap.replaceChildren(...levels.map((level, i) => {
    const id = `level-${i}`;
    const select = h('select', { id, 'data-level': i, 'data-literal': level },
      h('option', { value: '=', text: level === '' ? '(empty)' : level }),
      LEVEL_CHOICES.map((c) => h('option', { value: c, text: c })));
    if (level.startsWith('$') && i === 0) {
      // a $SYS-like level cannot be matched by wildcards
      for (const opt of select.options) if (opt.value !== '=') opt.disabled = true;
    }
    select.addEventListener('change', onLevelChange);
    return h('div', { class: 'level' }, h('label', { for: id, text: `Level ${i + 1}` }), select);
  }));
}

function onLevelChange() {
  const selects = [...document.querySelectorAll('#pattern-levels select')];
  const parts = [];
  let ended = false;
  for (const sel of selects) {
    sel.disabled = ended;
    if (ended) continue;
    if (sel.value === '#') { parts.push('#'); ended = true; }
    else if (sel.value === '=') parts.push(sel.dataset.literal);
    else parts.push(sel.value);
  }
  $('#pattern-input').value = parts.join('/');
  updatePatternMatch();
}

/** Does an MQTT filter with {name} captures match a concrete topic? */
function patternMatches(pattern, topic) {
  let p = pattern.split('/');
  if (p[0] === '$share' && p.length > 2) p = p.slice(2);
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    const level = p[i];
    if (level === '#') return i === p.length - 1 && !(i === 0 && t[0].startsWith('$'));
    if (i >= t.length) return false;
    if (level === '+' || /^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(level)) {
      if (i === 0 && t[0].startsWith('$')) return false;
      continue;
    }
    if (level !== t[i]) return false;
  }
  return p.length === t.length;
}

function updatePatternMatch() {
  const pattern = $('#pattern-input').value.trim();
  const out = $('#pattern-match');
  if (!pattern) { out.textContent = ''; out.className = 'hint'; return; }
  const ok = patternMatches(pattern, patternTopic);
  const caps = [...pattern.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
  const capsText = caps.length ? ` Captures: ${caps.join(', ')}.` : '';
  out.textContent = ok ? `Matches the sample topic.${capsText}` : `Does not match the sample topic.${capsText}`;
  out.className = `hint ${ok ? 'hint-ok' : 'hint-warn'}`;
}

function updateParserDescription() {
  const name = $('#parser-select').value;
  const p = (state.parsers || []).find((x) => x.name === name);
  $('#parser-description').textContent = p && p.description ? p.description : '';
}

async function onPatternSubmit(event) {
  event.preventDefault();
  const errorEl = $('#pattern-error');
  errorEl.textContent = '';
  const pattern = $('#pattern-input').value.trim();
  const parser = $('#parser-select').value;
  const priorityRaw = $('#priority-input').value.trim();
  if (!pattern) { errorEl.textContent = 'Pattern: enter a topic pattern.'; $('#pattern-input').focus(); return; }
  if (!parser) { errorEl.textContent = 'Parser: choose a parser.'; $('#parser-select').focus(); return; }
  const priority = priorityRaw === '' ? 0 : Number(priorityRaw);
  if (!Number.isInteger(priority)) { errorEl.textContent = 'Priority: enter a whole number.'; $('#priority-input').focus(); return; }
  const siteId = state.selected;
  const body = {
    site_id: siteId,
    pattern,
    parser,
    qos: Number($('#qos-select').value),
    is_active: $('#pattern-active').checked,
    priority,
  };
  const submit = $('#pattern-submit');
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  submit.textContent = 'Saving…';
  try {
    await api('/api/mqtt/topics', { method: 'POST', body });
    showAlert(`Pattern ${pattern} created with parser ${parser}.`, { kind: 'info', key: 'pattern' });
    closePatternForm();
    onCreated(siteId);
  } catch (err) {
    errorEl.textContent = errorText(err);
  } finally {
    submit.disabled = false;
    submit.setAttribute('aria-busy', 'false');
    submit.textContent = 'Save pattern';
  }
}

export function initPatternForm({ onCreated: created }) {
  onCreated = created;
  $('#pattern-form').addEventListener('submit', onPatternSubmit);
  $('#pattern-cancel').addEventListener('click', closePatternForm);
  $('#pattern-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') closePatternForm(); });
  $('#pattern-input').addEventListener('input', updatePatternMatch);
  $('#parser-select').addEventListener('change', updateParserDescription);
}
