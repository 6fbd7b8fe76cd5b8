// A confirmation asked in place, beside the button that needs it (deleting a site or a
// connection): the question, a button that does it and one that does not, reachable by keyboard,
// with the focus back on the button that asked once answered.

import { h } from './dom.js';

/** Ask `question` in `container`; resolves true when confirmed, false when declined. */
export function confirmInPlace(container, { question, confirmLabel, origin }) {
  return new Promise((resolve) => {
    const questionId = `${container.id}-question`;
    const finish = (answer) => {
      container.hidden = true;
      container.replaceChildren();
      if (!answer && origin && origin.isConnected) origin.focus();
      resolve(answer);
    };
    const yes = h('button', { type: 'button', class: 'btn btn-danger', text: confirmLabel, onclick: () => finish(true) });
    const no = h('button', { type: 'button', class: 'btn', text: 'Keep it', onclick: () => finish(false) });
    container.setAttribute('role', 'group');
    container.setAttribute('aria-labelledby', questionId);
    container.replaceChildren(h('p', { id: questionId, text: question }), h('div', { class: 'form-actions' }, yes, no));
    container.onkeydown = (event) => {
      if (event.key === 'Escape') { event.stopPropagation(); finish(false); }
    };
    container.hidden = false;
    no.focus();
  });
}
