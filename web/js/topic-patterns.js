// Topic patterns in the page, by the rules of docs/topic-patterns.md (the same as the server's
// src/routing/pattern.rs): checking a pattern as it is typed, matching it against discovered
// topics with its captures, and guessing a pattern from a topic. No DOM here, so Node can test it.

const MAX_BYTES = 65535;
const CAPTURE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Levels named like these are followed by the identifier of what they name. */
export const KNOWN_LEVEL_NAMES = new Map([
  ['gateway', 'gateway'], ['gateways', 'gateway'], ['gw', 'gateway'],
  ['datalogger', 'datalogger'], ['dataloggers', 'datalogger'], ['logger', 'datalogger'], ['dl', 'datalogger'],
  ['channel', 'channel'], ['relay', 'channel'],
]);

function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

/** Where the filter starts behind a `$share/<group>/` prefix (0 without one), or an error. */
function shareFilterStart(pattern) {
  if (!pattern.startsWith('$share')) return { start: 0 };
  const rest = pattern.slice('$share'.length);
  if (rest !== '' && !rest.startsWith('/')) return { start: 0 }; // "$shared/x" is a literal
  const afterSlash = rest.slice(1);
  const cut = rest.startsWith('/') ? afterSlash.indexOf('/') : -1;
  if (cut < 0) return { error: '$share needs a group and a filter: $share/<group>/<filter>' };
  const group = afterSlash.slice(0, cut);
  const filter = afterSlash.slice(cut + 1);
  if (group === '' || filter === '') return { error: '$share needs a group and a filter: $share/<group>/<filter>' };
  if (/[+#{}]/.test(group)) return { error: `$share group '${group}' must not contain '+', '#', '{' or '}'` };
  return { start: pattern.length - filter.length };
}

function parseLevel(raw) {
  if (raw === '#') return { kind: 'multi' };
  if (raw === '+') return { kind: 'single' };
  if (raw.startsWith('{') && raw.endsWith('}') && raw.length >= 2) {
    const name = raw.slice(1, -1);
    if (CAPTURE_NAME.test(name)) return { kind: 'capture', name };
    return { error: `invalid capture '{${name}}': capture name must be [A-Za-z_][A-Za-z0-9_]*` };
  }
  if (raw.includes('#')) return { error: `'#' must occupy a whole level (found '${raw}'); write 'a/#', not 'a#'` };
  if (raw.includes('+')) return { error: `'+' must occupy a whole level (found '${raw}'); write 'a/+/b', not 'a+/b'` };
  if (/[{}]/.test(raw)) {
    return { error: `a capture must occupy a whole level, written '{name}' (found '${raw}'); braces are not allowed in literal levels` };
  }
  return { kind: 'literal', text: raw };
}

/** `{levels}` of a valid pattern, or `{error}` saying what to change. */
export function parsePattern(pattern) {
  if (pattern === '') return { error: 'pattern is empty' };
  const bytes = byteLength(pattern);
  if (bytes > MAX_BYTES) return { error: `pattern is longer than 65535 bytes (${bytes} bytes); MQTT cannot carry it` };
  if (pattern.includes('\0')) return { error: 'pattern contains a NUL character, which MQTT forbids; remove it' };
  const share = shareFilterStart(pattern);
  if (share.error) return { error: share.error };
  const raw = pattern.slice(share.start).split('/');
  const levels = [];
  const seen = new Set();
  for (let i = 0; i < raw.length; i++) {
    const level = parseLevel(raw[i]);
    if (level.error) return { error: level.error };
    if (level.kind === 'multi' && i + 1 !== raw.length) {
      return { error: `'#' must be the last level (found at level ${i + 1} of ${raw.length})` };
    }
    if (level.kind === 'capture') {
      if (seen.has(level.name)) return { error: `duplicate capture name '${level.name}': each capture in a pattern needs its own name` };
      seen.add(level.name);
    }
    levels.push(level);
  }
  return { levels };
}

/** The captures of `topic` under the parsed pattern's levels, or null when it does not match. */
export function matchLevels(levels, topic) {
  if (topic === '' || byteLength(topic) > MAX_BYTES || /[+#\0]/.test(topic)) return null;
  const dollar = topic.startsWith('$');
  const parts = topic.split('/');
  const captures = {};
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    // '$' topics belong to the broker: no wildcard stands in for their first level.
    if (i === 0 && dollar && level.kind !== 'literal') return null;
    if (level.kind === 'multi') return captures;
    if (i >= parts.length) return null;
    if (level.kind === 'literal' && parts[i] !== level.text) return null;
    if (level.kind === 'capture') captures[level.name] = parts[i];
  }
  return parts.length === levels.length ? captures : null;
}

/** The captures of `topic` under `pattern`, or null when it does not match (or is invalid). */
export function matchTopic(pattern, topic) {
  const parsed = parsePattern(pattern);
  return parsed.levels ? matchLevels(parsed.levels, topic) : null;
}

/**
 * A pattern for `topic`, one choice per level (docs/topic-patterns.md, "Making a pattern from a
 * topic"): the level after a known name (`gateway`, `gw`, `datalogger`, `dl`, …) becomes that
 * capture; another level becomes `+` when some other discovered topic of the same length differs
 * from this one at that level only; every other level stays literal. A name is captured once.
 */
export function guessLevels(topic, otherTopics = []) {
  const levels = topic.split('/');
  const varies = new Set();
  for (const other of otherTopics) {
    if (other === topic) continue;
    const parts = other.split('/');
    if (parts.length !== levels.length) continue;
    const differing = levels.map((level, i) => (level === parts[i] ? -1 : i)).filter((i) => i >= 0);
    if (differing.length === 1) varies.add(differing[0]);
  }
  const used = new Set();
  return levels.map((level, i) => {
    // A '$' first level cannot be matched by a wildcard; an empty level rarely names anything.
    if ((i === 0 && level.startsWith('$')) || level === '') return level;
    const name = i > 0 ? KNOWN_LEVEL_NAMES.get(levels[i - 1].toLowerCase()) : undefined;
    if (name && !used.has(name)) {
      used.add(name);
      return `{${name}}`;
    }
    return varies.has(i) ? '+' : level;
  });
}

/** `guessLevels` joined into a pattern. */
export function guessPattern(topic, otherTopics = []) {
  return guessLevels(topic, otherTopics).join('/');
}
