// The page's own pattern checking, matching and guessing (web/js/topic-patterns.js) against the
// rules of docs/topic-patterns.md, with the cases the server's src/routing tests hold, so the
// live preview says what the server will do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(resolve(here, '..', '..', 'web', 'js', 'topic-patterns.js'), 'utf8');
// The module is written for the browser; loaded from its text it needs no package settings.
const { guessPattern, matchTopic, parsePattern } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

const matches = (pattern, topic) => matchTopic(pattern, topic) !== null;

test('multi-level wildcard matches the parent and its descendants', () => {
  for (const [pattern, topic, expected] of [
    ['a/#', 'a', true], ['a/#', 'a/', true], ['a/#', 'a/b', true], ['a/#', 'a/b/c', true],
    ['a/#', 'b', false], ['a/#', 'ab', false], ['#', 'a', true], ['#', '/', true],
    ['#', 'a/b/c', true], ['a/+/#', 'a/b', true], ['a/+/#', 'a', false],
  ]) assert.equal(matches(pattern, topic), expected, `${pattern} ${topic}`);
});

test('single-level wildcard and captures match exactly one level, even empty', () => {
  for (const [pattern, topic, expected] of [
    ['a/+', 'a/b', true], ['a/+', 'a/', true], ['a/+', 'a', false], ['a/+', 'a/b/c', false],
    ['+', 'a', true], ['+', '/', false], ['+/+', '/', true], ['+/b', '/b', true],
    ['a/+/c', 'a//c', true], ['{x}/b', 'a/b', true], ['{x}/b', 'a/c/b', false],
  ]) assert.equal(matches(pattern, topic), expected, `${pattern} ${topic}`);
});

test('$ topics need a literal first level; empty levels count; literals are exact', () => {
  for (const [pattern, topic, expected] of [
    ['#', '$SYS/broker/load', false], ['+/broker/load', '$SYS/broker/load', false],
    ['{x}/broker/load', '$SYS/broker/load', false], ['+', '$SYS', false],
    ['$SYS/#', '$SYS/broker/load', true], ['$SYS/#', '$SYS', true], ['$SYS/#', '$OTHER/x', false],
    ['a/+', 'a/$x', true], ['a//b', 'a/b', false], ['/a', 'a', false], ['a/', 'a/', true],
    ['Site/A', 'site/a', false], ['a/b', 'a/b/', false], ['héllo/+', 'héllo/wörld', true],
    ['$share/g/#', '$SYS/x', false], ['$share/g/#', 'a/b', true], ['$shared/x', '$shared/x', true],
  ]) assert.equal(matches(pattern, topic), expected, `${pattern} ${topic}`);
  for (const topic of ['a/+', 'a/#', '+', '#', 'a/b+', '', 'a/\0', 'a'.repeat(65536)]) {
    assert.equal(matches('#', topic), false, JSON.stringify(topic.slice(0, 10)));
  }
});

test('captures are returned by name', () => {
  assert.deepEqual(matchTopic('bfg/gateway/{gateway}/datalogger/{datalogger}', 'bfg/gateway/gw-7/datalogger/dl-3'),
    { gateway: 'gw-7', datalogger: 'dl-3' });
  assert.equal(matchTopic('bfg/gateway/{gateway}/datalogger/{datalogger}', 'bfg/gateway/gw-7/datalogger'), null);
  assert.deepEqual(matchTopic('{x}/#', 'v/1/2'), { x: 'v' });
  assert.deepEqual(matchTopic('a/{x}', 'a/'), { x: '' });
  assert.deepEqual(matchTopic('$share/workers/site/{gateway}/#', 'site/g1/x'), { gateway: 'g1' });
});

test('rejected patterns say why, in the server\'s words', () => {
  for (const [pattern, error] of [
    ['', 'pattern is empty'],
    ['a/\0/b', 'pattern contains a NUL character, which MQTT forbids; remove it'],
    ['a/#/b', "'#' must be the last level (found at level 2 of 3)"],
    ['a#', "'#' must occupy a whole level (found 'a#'); write 'a/#', not 'a#'"],
    ['a+/b', "'+' must occupy a whole level (found 'a+'); write 'a/+/b', not 'a+/b'"],
    ['a/{}', "invalid capture '{}': capture name must be [A-Za-z_][A-Za-z0-9_]*"],
    ['{a+}', "invalid capture '{a+}': capture name must be [A-Za-z_][A-Za-z0-9_]*"],
    ['{é}', "invalid capture '{é}': capture name must be [A-Za-z_][A-Za-z0-9_]*"],
    ['{id', "a capture must occupy a whole level, written '{name}' (found '{id'); braces are not allowed in literal levels"],
    ['{x}/y/{x}', "duplicate capture name 'x': each capture in a pattern needs its own name"],
    ['$share/g', '$share needs a group and a filter: $share/<group>/<filter>'],
    ['$share//a', '$share needs a group and a filter: $share/<group>/<filter>'],
    ['$share/g/', '$share needs a group and a filter: $share/<group>/<filter>'],
    ['$share/g+/a', "$share group 'g+' must not contain '+', '#', '{' or '}'"],
  ]) assert.equal(parsePattern(pattern).error, error, JSON.stringify(pattern));
  assert.match(parsePattern('a'.repeat(65536)).error, /longer than 65535 bytes \(65536 bytes\)/);
  for (const ok of ['a'.repeat(65535), 'a//b/', '{x}/+/#', '$share/workers/site/{gateway}/#', '$shared/x', '#']) {
    assert.ok(parsePattern(ok).levels, ok.slice(0, 20));
  }
});

test('a pattern is guessed from known level names and from levels that vary', () => {
  const demo = [
    'demo/gateway/gw-1/datalogger/dl-01', 'demo/gateway/gw-1/datalogger/dl-02',
    'demo/gateway/gw-2/datalogger/dl-01', 'demo/gateway/gw-1/status', 'demo/gateway/gw-2/status',
    'demo/telemetry/gw-1/pump-station', 'relayctl/ctl-1/relay/1',
    'demo/unmapped/sensor-0', 'demo/unmapped/sensor-1', '$SYS/broker/load', '$SYS/broker/uptime',
  ];
  assert.equal(guessPattern('demo/gateway/gw-2/datalogger/dl-01', demo), 'demo/gateway/{gateway}/datalogger/{datalogger}');
  assert.equal(guessPattern('demo/gateway/gw-1/status', demo), 'demo/gateway/{gateway}/status');
  assert.equal(guessPattern('relayctl/ctl-1/relay/1', demo), 'relayctl/ctl-1/relay/{channel}');
  assert.equal(guessPattern('demo/unmapped/sensor-0', demo), 'demo/unmapped/+');
  assert.equal(guessPattern('demo/telemetry/gw-1/pump-station', demo), 'demo/telemetry/gw-1/pump-station');
  assert.equal(guessPattern('site/GW/a1/dl/b2', []), 'site/GW/{gateway}/dl/{datalogger}');
  // A name is captured once; the first level of a '$' topic stays literal.
  assert.equal(guessPattern('gw/x/gw/y', []), 'gw/{gateway}/gw/y');
  assert.equal(guessPattern('$SYS/broker/load', demo), '$SYS/broker/+');
  // Every guess matches the topic it was made from.
  for (const topic of demo) assert.ok(matches(guessPattern(topic, demo), topic), topic);
});
