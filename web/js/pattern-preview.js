// The live preview of the pattern form: while a pattern is typed, which discovered topics of the
// site it matches (with their captures), and what the chosen parser makes of the first match's
// sample payload (a dry run through POST /api/parsers/{name}/test; nothing is stored).

import { $, h, debounce } from './dom.js';
import { api, errorText } from './api.js';
import { formatValue } from './format.js';
import { state } from './state.js';
import { matchLevels, parsePattern } from './topic-patterns.js';

const SHOWN_MATCHES = 8;
// Answers to earlier dry runs are dropped once the pattern or the parser changed again.
let previewSequence = 0;

function capturesText(captures) {
  const names = Object.keys(captures);
  return names.length ? names.map((name) => `${name} = ${captures[name]}`).join(', ') : 'no captures';
}

function sensorText(sensor) {
  const unit = sensor.unit ? ` ${sensor.unit}` : '';
  return `${sensor.name} ${formatValue(sensor.value)}${unit}`;
}

/** What a dry run would store, in words, with the full output to unfold. */
function outputNodes(output) {
  const gateways = Array.isArray(output.gateways) ? output.gateways : [];
  const dataloggers = Array.isArray(output.dataloggers) ? output.dataloggers : [];
  const items = [
    ...gateways.map((gateway) => h('li', { class: 'preview-record' },
      h('span', { class: 'kind', text: 'Gateway ' }), h('code', { text: gateway.identifier }),
      gateway.online === null || gateway.online === undefined ? '' : ` ${gateway.online ? 'online' : 'offline'}`,
      Object.keys(gateway.metadata || {}).length ? ` · ${Object.keys(gateway.metadata).join(', ')}` : '')),
    ...dataloggers.map((datalogger) => h('li', { class: 'preview-record' },
      h('span', { class: 'kind', text: 'Datalogger ' }), h('code', { text: `${datalogger.gateway} / ${datalogger.identifier}` }),
      `: ${(datalogger.sensors || []).map(sensorText).join(', ') || 'no sensors'}`)),
  ];
  if (!items.length) items.push(h('li', { text: 'Nothing to store.' }));
  return [
    h('ul', { class: 'preview-records' }, items),
    h('details', { class: 'preview-output' }, h('summary', { text: 'Full output' }),
      h('pre', { text: JSON.stringify(output, null, 2) })),
  ];
}

async function renderSample(match, pattern, sequence) {
  const box = $('#pattern-preview-sample');
  const parser = $('#parser-select').value;
  if (!match) {
    box.replaceChildren();
    return;
  }
  const heading = h('p', { class: 'preview-sample-head' }, 'Sample of ', h('code', { text: match.row.topic }),
    parser ? ` with ${parser}:` : ':');
  if (!parser) {
    box.replaceChildren(heading, h('p', { class: 'hint', text: 'Choose a parser to see what this payload becomes.' }));
    return;
  }
  box.replaceChildren(heading, h('p', { class: 'hint', text: 'Parsing…' }));
  box.dataset.state = 'loading';
  let answer;
  try {
    answer = await api(`/api/parsers/${encodeURIComponent(parser)}/test`, {
      method: 'POST',
      body: { topic: match.row.topic, payload: match.row.last_payload, pattern },
    });
  } catch (err) {
    if (sequence !== previewSequence) return;
    box.dataset.state = 'error';
    box.replaceChildren(heading, h('p', { class: 'preview-error', text: errorText(err) }));
    return;
  }
  if (sequence !== previewSequence) return;
  if (answer && answer.ok && answer.output) {
    box.dataset.state = 'parsed';
    box.replaceChildren(heading, ...outputNodes(answer.output));
  } else {
    box.dataset.state = 'error';
    const errors = answer && Array.isArray(answer.errors) ? answer.errors : ['the parser stored nothing'];
    box.replaceChildren(heading, h('p', { class: 'preview-error', text: 'Would not be stored:' }),
      h('ul', { class: 'preview-errors' }, errors.map((error) => h('li', { text: error }))));
  }
}

/** Redraw the preview for the pattern and parser in the form now. */
export function renderPreview() {
  const sequence = ++previewSequence;
  const pattern = $('#pattern-input').value.trim();
  const summary = $('#pattern-preview-summary');
  const list = $('#pattern-preview-matches');
  const section = $('#pattern-preview');
  section.hidden = pattern === '';
  list.replaceChildren();
  const sampleBox = $('#pattern-preview-sample');
  sampleBox.replaceChildren();
  sampleBox.dataset.state = 'none';
  if (!pattern) return;
  const parsed = parsePattern(pattern);
  if (parsed.error) {
    section.dataset.state = 'invalid';
    summary.className = 'hint preview-error';
    summary.textContent = `Not a valid pattern: ${parsed.error}.`;
    return;
  }
  const topics = state.discovered;
  const matches = [];
  for (const row of topics) {
    const captures = matchLevels(parsed.levels, String(row.topic));
    if (captures) matches.push({ row, captures });
  }
  section.dataset.state = matches.length ? 'matches' : 'none';
  summary.className = `hint ${matches.length ? 'hint-ok' : 'hint-warn'}`;
  summary.textContent = matches.length
    ? `Matches ${matches.length} of the ${topics.length} discovered topic${topics.length === 1 ? '' : 's'}.`
    : `Matches none of the ${topics.length} discovered topic${topics.length === 1 ? '' : 's'}.`;
  list.replaceChildren(...matches.slice(0, SHOWN_MATCHES).map(({ row, captures }) =>
    h('li', { class: 'preview-match', 'data-topic': row.topic },
      h('code', { text: row.topic }), h('span', { class: 'preview-captures muted', text: capturesText(captures) }))));
  if (matches.length > SHOWN_MATCHES) list.append(h('li', { class: 'muted', text: `and ${matches.length - SHOWN_MATCHES} more` }));
  const withPayload = matches.find((match) => match.row.last_payload !== null && match.row.last_payload !== undefined);
  if (matches.length && !withPayload) {
    sampleBox.replaceChildren(h('p', { class: 'hint', text: 'No sample payload stored for these topics yet.' }));
    return;
  }
  renderSample(withPayload, pattern, sequence);
}

/** Redraw shortly after the typing stops. */
export const schedulePreview = debounce(renderPreview, 250);

export function clearPreview() {
  schedulePreview.cancel();
  previewSequence++;
  $('#pattern-preview').hidden = true;
  $('#pattern-preview-summary').textContent = '';
  $('#pattern-preview-matches').replaceChildren();
  $('#pattern-preview-sample').replaceChildren();
  $('#pattern-preview-sample').dataset.state = 'none';
}
