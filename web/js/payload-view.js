// A logged payload as an operator wants to read it: JSON indented (keys in their order, numbers
// as sent) with the value a rule refused marked, other text as it came with the place it stops
// being JSON marked, bytes that are not text as a hex dump.

import { h } from './dom.js';

/** The payload of a parsing-log row as text, or null when its bytes are no text. */
function payloadText(row) {
  if (row.payload_encoding !== 'base64') return { text: String(row.payload ?? ''), note: '' };
  const bytes = base64Bytes(row.payload);
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), note: 'decoded from base64' };
  } catch { /* not UTF-8: maybe single-byte text */ }
  const printable = bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 160);
  if (bytes.length && printable) {
    return { text: new TextDecoder('latin1').decode(bytes), note: 'not UTF-8; shown as Latin-1 text' };
  }
  return null;
}

function base64Bytes(text) {
  try {
    return Uint8Array.from(atob(String(text || '')), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

/** Sixteen bytes a line: offset, hex, and the printable ASCII beside them. */
function hexDump(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const chunk = Array.from(bytes.subarray(offset, offset + 16));
    const hex = chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(47, ' ');
    const ascii = chunk.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex}  ${ascii}`);
  }
  return lines.join('\n');
}

// --- JSON, kept as sent -----------------------------------------------------------------------

const MAX_DEPTH = 200;

/** A tree of the JSON text whose scalars keep their source text; null when it is no JSON. */
export function parseJsonTree(text) {
  let at = 0;
  const space = () => { while (at < text.length && ' \t\r\n'.includes(text[at])) at += 1; };
  const fail = () => { throw new SyntaxError('not JSON'); };
  const string = () => {
    const start = at;
    at += 1;
    while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    if (at >= text.length) fail();
    at += 1;
    return text.slice(start, at);
  };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail();
    space();
    const c = text[at];
    if (c === '{') {
      at += 1;
      const entries = [];
      space();
      if (text[at] === '}') { at += 1; return { type: 'object', entries }; }
      for (;;) {
        space();
        if (text[at] !== '"') fail();
        const raw = string();
        space();
        if (text[at] !== ':') fail();
        at += 1;
        entries.push({ key: JSON.parse(raw), raw, node: value(depth + 1) });
        space();
        if (text[at] === ',') { at += 1; continue; }
        if (text[at] === '}') { at += 1; return { type: 'object', entries }; }
        fail();
      }
    }
    if (c === '[') {
      at += 1;
      const items = [];
      space();
      if (text[at] === ']') { at += 1; return { type: 'array', items }; }
      for (;;) {
        items.push(value(depth + 1));
        space();
        if (text[at] === ',') { at += 1; continue; }
        if (text[at] === ']') { at += 1; return { type: 'array', items }; }
        fail();
      }
    }
    if (c === '"') {
      const raw = string();
      JSON.parse(raw);
      return { type: 'scalar', raw };
    }
    const match = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(at, at + 400));
    if (!match) fail();
    at += match[0].length;
    return { type: 'scalar', raw: match[0] };
  };
  try {
    const root = value(0);
    space();
    return at === text.length ? root : null;
  } catch {
    return null;
  }
}

/** The reference tokens of a JSON pointer (RFC 6901). */
export function pointerTokens(pointer) {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The deepest node the pointer reaches: its path of tokens, and the tokens it could not follow. */
function follow(tree, tokens) {
  let node = tree;
  let depth = 0;
  for (const token of tokens) {
    let next = null;
    if (node.type === 'object') {
      // The last of equal keys wins, as in JSON parsers.
      const entries = node.entries.filter((e) => e.key === token);
      next = entries.length ? entries[entries.length - 1].node : null;
    } else if (node.type === 'array' && /^(0|[1-9]\d*)$/.test(token)) {
      next = node.items[Number(token)] || null;
    }
    if (!next) break;
    node = next;
    depth += 1;
  }
  return { node, missing: tokens.slice(depth) };
}

/** Indented text of the tree, with the start and end of `target` in it. */
function pretty(tree, target) {
  let out = '';
  let range = null;
  const write = (node, indent) => {
    const start = out.length;
    if (node.type === 'scalar') out += node.raw;
    else if (node.type === 'array') {
      if (!node.items.length) out += '[]';
      else {
        out += '[\n';
        node.items.forEach((item, i) => {
          out += `${indent}  `;
          write(item, `${indent}  `);
          out += i < node.items.length - 1 ? ',\n' : '\n';
        });
        out += `${indent}]`;
      }
    } else if (!node.entries.length) out += '{}';
    else {
      out += '{\n';
      node.entries.forEach((entry, i) => {
        out += `${indent}  ${entry.raw}: `;
        write(entry.node, `${indent}  `);
        out += i < node.entries.length - 1 ? ',\n' : '\n';
      });
      out += `${indent}}`;
    }
    if (node === target) range = [start, out.length];
  };
  write(tree, '');
  return { text: out, range };
}

// --- the view ---------------------------------------------------------------------------------

/** Code point `column` (1-based) of line `line` as a UTF-16 index into `text`, or text.length. */
function indexOfPosition(text, line, column) {
  let index = 0;
  for (let l = 1; l < line; l += 1) {
    const next = text.indexOf('\n', index);
    if (next < 0) return text.length;
    index = next + 1;
  }
  let col = 1;
  while (col < column && index < text.length && text[index] !== '\n') {
    index += text.codePointAt(index) > 0xffff ? 2 : 1;
    col += 1;
  }
  return index;
}

/** A <pre> of `text` with [start, end) marked; an empty range marks the place itself. */
function markedPre(text, start, end, label) {
  const mark = h('mark', { class: 'error-mark', title: label },
    h('span', { class: 'visually-hidden', text: `${label}: ` }),
    end > start ? text.slice(start, end) : h('span', { class: 'error-end', 'aria-hidden': 'true', text: ' ' }));
  return h('pre', { class: 'payload', tabindex: '0' }, text.slice(0, start), mark, text.slice(end));
}

/** Where the error points, in words. */
export function describePosition(position) {
  if (!position) return '';
  if ('pointer' in position) return position.pointer ? `at ${position.pointer}` : "at the payload's root";
  return `at line ${position.line}, column ${position.column}`;
}

/** The payload of a parsing-log row, with the place its error points at marked. */
export function payloadView(row) {
  const position = row.error_position || null;
  const decoded = payloadText(row);
  if (!decoded) {
    const bytes = base64Bytes(row.payload);
    return h('div', { class: 'payload-view' },
      h('p', { class: 'hint', text: `${bytes.length} bytes that are no text, as hex:` }),
      h('pre', { class: 'payload payload-hex', tabindex: '0', text: hexDump(bytes) }));
  }
  const { text, note } = decoded;
  const parts = [];
  if (note) parts.push(h('p', { class: 'hint', text: `Payload ${note}.` }));
  const tree = position && 'line' in position ? null : parseJsonTree(text);
  if (position && 'line' in position) {
    const at = indexOfPosition(text, position.line, position.column);
    const end = at < text.length && text[at] !== '\n' ? at + (text.codePointAt(at) > 0xffff ? 2 : 1) : at;
    parts.push(markedPre(text, at, end, `Error ${describePosition(position)}`));
  } else if (tree) {
    if (position && 'pointer' in position) {
      const { node, missing } = follow(tree, pointerTokens(position.pointer));
      const { text: shown, range } = pretty(tree, node);
      const label = missing.length
        ? `Missing ${position.pointer}; marked: where it belongs`
        : `Error ${describePosition(position)}`;
      parts.push(markedPre(shown, range[0], range[1], label));
      if (missing.length) parts.push(h('p', { class: 'hint', text: `No value at ${position.pointer}: the mark shows where it was expected.` }));
    } else {
      parts.push(h('pre', { class: 'payload', tabindex: '0', text: pretty(tree, null).text }));
    }
  } else {
    parts.push(h('pre', { class: 'payload', tabindex: '0', text }));
  }
  return h('div', { class: 'payload-view' }, parts);
}
