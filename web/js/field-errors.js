// The API's refusals shown where they belong in a form: a 422 names a field, so its message goes
// under that field, which is marked `aria-invalid` and described by the message; anything else goes
// to the form's own error line. Nothing typed is touched.

import { h } from './dom.js';
import { errorText } from './api.js';

function describedBy(input) {
  return (input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
}

/** Remove every field message and mark of a form, and empty its error line. */
export function clearFormErrors(form, generalEl) {
  for (const message of form.querySelectorAll('.field-error')) {
    const input = form.querySelector(`[aria-describedby~="${message.id}"]`);
    if (input) {
      const rest = describedBy(input).filter((id) => id !== message.id);
      if (rest.length) input.setAttribute('aria-describedby', rest.join(' '));
      else input.removeAttribute('aria-describedby');
    }
    message.remove();
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  if (generalEl) generalEl.textContent = '';
}

/** The input of `form` for an API field name (`port`, `last_will.topic`), if the form has one. */
export function inputForField(form, field) {
  if (!field) return null;
  return form.querySelector(`[name="${CSS.escape(field)}"]`);
}

/** Put `message` under `input`, mark it invalid and describe it with the message. */
export function showFieldError(input, message, { focus = true } = {}) {
  const id = `${input.id || input.name.replace(/\W/g, '-')}-error`;
  let el = document.getElementById(id);
  if (!el) {
    el = h('p', { class: 'field-error', id });
    const wrap = input.closest('.field') || input.parentElement;
    wrap.append(el);
  }
  el.textContent = message;
  input.setAttribute('aria-invalid', 'true');
  const ids = describedBy(input);
  if (!ids.includes(id)) input.setAttribute('aria-describedby', [...ids, id].join(' '));
  if (focus) input.focus();
}

/**
 * Show an API error: next to the field it names (or `fallbackField` for a refusal without one,
 * such as a 409 on a slug), else on the form's error line.
 */
export function showFormError(form, generalEl, err, { fallbackField } = {}) {
  const text = errorText(err);
  const input = inputForField(form, err && err.field) || (err && err.status === 409 && inputForField(form, fallbackField));
  if (input) {
    // The message starts with the field's name ("port: must be …"): the field is already shown.
    const prefix = `${err.field}: `;
    showFieldError(input, text.startsWith(prefix) ? text.slice(prefix.length) : text);
  } else if (generalEl) {
    generalEl.textContent = text;
  }
}

/** Clear a field's mark once its value changes, so a stale message does not linger on it. */
export function clearOnInput(form) {
  form.addEventListener('input', (event) => {
    const input = event.target;
    if (!(input instanceof Element) || input.getAttribute('aria-invalid') !== 'true') return;
    input.removeAttribute('aria-invalid');
    const id = `${input.id || (input.name || '').replace(/\W/g, '-')}-error`;
    document.getElementById(id)?.remove();
    const rest = describedBy(input).filter((other) => other !== id);
    if (rest.length) input.setAttribute('aria-describedby', rest.join(' '));
    else input.removeAttribute('aria-describedby');
  });
}
