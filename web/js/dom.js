// DOM building helpers shared by every view: element lookup, element creation, SVG, debouncing.

export const $ = (sel, root = document) => root.querySelector(sel);

/** Create an element. attrs: class, text, dataset keys as data-*, on<event> handlers, others as attributes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

/**
 * Call `fn` once calls have stopped for `ms`. With `maxWait`, calls that never stop (a live
 * stream) still get `fn` called at least that often.
 */
export function debounce(fn, ms, { maxWait } = {}) {
  let timer = null;
  let firstCallAt = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    const now = Date.now();
    if (firstCallAt === null) firstCallAt = now;
    const delay = maxWait === undefined ? ms : Math.max(0, Math.min(ms, firstCallAt + maxWait - now));
    timer = setTimeout(() => { timer = null; firstCallAt = null; fn(...args); }, delay);
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = null; firstCallAt = null; };
  return wrapped;
}

/** Mark the panel around an element as busy (or not) for assistive technology. */
export function setBusy(sel, busy) {
  const el = $(sel);
  if (el) el.closest('.panel')?.setAttribute('aria-busy', busy ? 'true' : 'false');
}
