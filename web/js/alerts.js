// The alert area at the top of the page: errors stay until dismissed, notices fade.

import { $, h } from './dom.js';

export function showAlert(message, { kind = 'error', key = null, timeout } = {}) {
  const region = $('#alerts');
  if (key) {
    const old = region.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (old) old.remove();
  }
  const item = h('div', { class: `alert alert-${kind}`, 'data-key': key, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'alert-text', text: message }),
    h('button', { type: 'button', class: 'btn btn-small btn-quiet', text: 'Dismiss', onclick: () => item.remove() }));
  region.append(item);
  const ms = timeout ?? (kind === 'error' ? 0 : 6000);
  if (ms) setTimeout(() => item.remove(), ms);
  return item;
}

export function clearAlert(key) {
  const old = $('#alerts').querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (old) old.remove();
}
