// Formatting of times, values, payloads and topics, and the <time> elements that show an age.

import { h } from './dom.js';

/** Parse a server timestamp to epoch ms (NaN when absent). A time without zone is taken as UTC. */
export function parseTs(value) {
  if (value === null || value === undefined || value === '') return NaN;
  if (typeof value === 'number') return value;
  let s = String(value).trim();
  if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s)) s = s.replace(' ', 'T') + 'Z';
  return Date.parse(s);
}

function formatAge(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return '—';
  const secs = Math.floor((now - ms) / 1000);
  if (secs < 1) return 'just now';
  if (secs < 60) return `${secs} s ago`;
  const mins = Math.floor(secs / 60);
  if (mins < 60) return `${mins} min ago`;
  const hours = Math.floor(mins / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

export function formatAbsolute(value) {
  const ms = parseTs(value);
  if (!Number.isFinite(ms)) return '—';
  return new Date(ms).toLocaleString();
}

/** A <time> whose text is kept current by the age ticker. */
export function ageEl(value, prefix) {
  const el = h('time', { class: 'age' });
  setAge(el, value);
  if (prefix) el.dataset.prefix = prefix;
  return el;
}

export function setAge(el, value) {
  const ms = parseTs(value);
  if (Number.isFinite(ms)) {
    el.dataset.ts = String(ms);
    el.setAttribute('datetime', new Date(ms).toISOString());
    el.title = new Date(ms).toLocaleString();
  } else {
    delete el.dataset.ts;
    el.removeAttribute('datetime');
    el.removeAttribute('title');
  }
  el.textContent = formatAge(ms);
}

/** Bring the text of every age on the page up to date (called once a second). */
export function tickAges() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time.age[data-ts]')) {
    const text = formatAge(Number(el.dataset.ts), now);
    if (el.textContent !== text) el.textContent = text;
  }
}

export function formatValue(value) {
  if (value === null || value === undefined || value === '') return '—';
  const n = Number(value);
  if (typeof value === 'boolean' || !Number.isFinite(n)) return String(value);
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 1 : abs >= 1 ? 3 : 4;
  return String(Number(n.toFixed(digits)));
}

export function formatPayload(payload) {
  if (payload === null || payload === undefined) return '';
  if (typeof payload === 'string') return payload;
  try { return JSON.stringify(payload); } catch { return String(payload); }
}

/** Topic text with break opportunities after each '/' (the text itself is unchanged). */
export function topicNodes(topic) {
  const parts = String(topic).split('/');
  const out = [];
  parts.forEach((part, i) => {
    out.push(document.createTextNode(i < parts.length - 1 ? `${part}/` : part));
    if (i < parts.length - 1) out.push(document.createElement('wbr'));
  });
  return out;
}

export function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/** The UTC form of a time (epoch ms), for the hover title beside a local time. */
export function utcText(ms) {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A <time> showing `value` in the browser's zone, with the UTC time on hover. */
export function localTimeEl(value) {
  const ms = parseTs(value);
  if (!Number.isFinite(ms)) return h('span', { text: '—' });
  return h('time', {
    class: 'local-time',
    datetime: new Date(ms).toISOString(),
    title: utcText(ms),
    text: new Date(ms).toLocaleString(),
  });
}
