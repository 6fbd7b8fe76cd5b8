// The topic pattern form of the Discovered topics tab: "Make a pattern" opens it on a discovered
// topic with captures guessed from its levels (docs/topic-patterns.md), "New pattern" opens it
// empty; the pattern can be built level by level or typed, a live preview shows what it matches,
// and a refused save shows why beside the field, keeping what was typed.

import { $, h } from './dom.js';
import { api, errorText } from './api.js';
import { showAlert } from './alerts.js';
import { clearFormErrors, clearOnInput, showFieldError, showFormError } from './field-errors.js';
import { topicNodes } from './format.js';
import { clearPreview, renderPreview, schedulePreview } from './pattern-preview.js';
import { loadParsers } from './parser-list.js';
import { state } from './state.js';
import { guessLevels, matchTopic } from './topic-patterns.js';

let patternOrigin = null;
let patternTopic = '';
// Counts openings, so parsers that arrive after the form was reopened are not applied to it.
let opening = 0;
// What the Discovered topics tab does once a pattern is saved (set by initPatternForm).
let onCreated = () => {};

function guessParser(topicRow, parsers) {
  const names = new Set(parsers.map((p) => p.name));
  let payload = topicRow ? topicRow.last_payload : null;
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

/**
 * Open the form on a discovered topic (null: an empty form); `originBtn` gets the focus back
 * when it closes.
 */
export async function openPatternForm(topicRow, originBtn) {
  const form = $('#pattern-form');
  const thisOpening = ++opening;
  patternOrigin = originBtn;
  patternTopic = topicRow ? String(topicRow.topic) : '';
  clearFormErrors(form, $('#pattern-error'));
  $('#pattern-origin').hidden = !topicRow;
  $('#pattern-blank').hidden = Boolean(topicRow);
  $('#pattern-levels-fieldset').hidden = !topicRow;
  $('#pattern-sample').replaceChildren(...topicNodes(patternTopic));
  $('#pattern-form-title').textContent = topicRow ? 'Make a topic pattern' : 'New topic pattern';
  $('#priority-input').value = '0';
  $('#qos-select').value = '1';
  $('#pattern-active').checked = true;
  if (topicRow) {
    const guessed = guessLevels(patternTopic, state.discovered.map((row) => String(row.topic)));
    buildLevelSelects(patternTopic, guessed);
    $('#pattern-input').value = guessed.join('/');
  } else {
    $('#pattern-levels').replaceChildren();
    $('#pattern-input').value = '';
  }
  updatePatternMatch();
  clearPreview();
  form.hidden = false;
  form.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  $('#pattern-input').focus();

  const select = $('#parser-select');
  select.replaceChildren(h('option', { value: '', text: 'Loading parsers…' }));
  select.disabled = true;
  try {
    const parsers = await loadParsers();
    if (thisOpening !== opening) return;
    select.replaceChildren(...parsers.map((p) => h('option', { value: p.name, text: p.kind ? `${p.name} (${p.kind})` : p.name })));
    if (!parsers.length) select.append(h('option', { value: '', text: 'No parsers available' }));
    select.value = guessParser(topicRow, parsers);
    select.disabled = parsers.length === 0;
    updateParserDescription();
  } catch (err) {
    select.replaceChildren(h('option', { value: '', text: 'Parsers unavailable' }));
    $('#pattern-error').textContent = `Could not load parsers: ${errorText(err)}`;
  }
  if (thisOpening === opening) renderPreview();
}

export function closePatternForm() {
  const form = $('#pattern-form');
  if (form.hidden) return;
  form.hidden = true;
  clearPreview();
  if (patternOrigin && patternOrigin.isConnected) patternOrigin.focus();
  patternOrigin = null;
}

const LEVEL_CHOICES = ['{gateway}', '{datalogger}', '+', '#'];

function buildLevelSelects(topic, guessed) {
  const wrap = $('#pattern-levels');
  const levels = topic.split('/');
  wrap.replaceChildren(...levels.map((level, i) => {
    const id = `level-${i}`;
    const choices = LEVEL_CHOICES.includes(guessed[i]) || guessed[i] === level ? LEVEL_CHOICES : [guessed[i], ...LEVEL_CHOICES];
    const select = h('select', { id, 'data-level': i, 'data-literal': level },
      h('option', { value: '=', text: level === '' ? '(empty)' : level }),
      choices.map((c) => h('option', { value: c, text: c })));
    if (level.startsWith('$') && i === 0) {
      // a $SYS-like level cannot be matched by wildcards
      for (const opt of select.options) if (opt.value !== '=') opt.disabled = true;
    }
    select.value = guessed[i] === level ? '=' : guessed[i];
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
  schedulePreview();
}

/** Whether the pattern still matches the topic the form was opened on, with its captures. */
function updatePatternMatch() {
  const pattern = $('#pattern-input').value.trim();
  const out = $('#pattern-match');
  if (!pattern || !patternTopic) { out.textContent = ''; out.className = 'hint'; return; }
  const captures = matchTopic(pattern, patternTopic);
  const names = [...pattern.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
  const capsText = names.length ? ` Captures: ${names.join(', ')}.` : '';
  out.textContent = captures ? `Matches the topic it was made from.${capsText}` : `Does not match the topic it was made from.${capsText}`;
  out.className = `hint ${captures ? 'hint-ok' : 'hint-warn'}`;
}

function updateParserDescription() {
  const name = $('#parser-select').value;
  const p = (state.parsers || []).find((x) => x.name === name);
  $('#parser-description').textContent = p && p.description ? p.description : '';
}

async function onPatternSubmit(event) {
  event.preventDefault();
  const form = $('#pattern-form');
  const errorEl = $('#pattern-error');
  clearFormErrors(form, errorEl);
  const pattern = $('#pattern-input').value.trim();
  const parser = $('#parser-select').value;
  const priorityRaw = $('#priority-input').value.trim();
  if (!pattern) { showFieldError($('#pattern-input'), 'Enter a topic pattern.'); return; }
  if (!parser) { showFieldError($('#parser-select'), 'Choose a parser.'); return; }
  const priority = priorityRaw === '' ? 0 : Number(priorityRaw);
  if (!Number.isInteger(priority)) { showFieldError($('#priority-input'), 'Enter a whole number.'); return; }
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
    // What was typed stays; the API's reason goes beside the field it names.
    showFormError(form, errorEl, err);
  } finally {
    submit.disabled = false;
    submit.setAttribute('aria-busy', 'false');
    submit.textContent = 'Save pattern';
  }
}

export function initPatternForm({ onCreated: created }) {
  onCreated = created;
  const form = $('#pattern-form');
  form.addEventListener('submit', onPatternSubmit);
  clearOnInput(form);
  $('#pattern-cancel').addEventListener('click', closePatternForm);
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape') closePatternForm(); });
  $('#pattern-input').addEventListener('input', () => { updatePatternMatch(); schedulePreview(); });
  $('#parser-select').addEventListener('change', () => { updateParserDescription(); schedulePreview(); });
  $('#pattern-new').addEventListener('click', (event) => openPatternForm(null, event.currentTarget));
}
