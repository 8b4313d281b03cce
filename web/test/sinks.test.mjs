// No dangerous DOM or code sinks anywhere in what the server serves: every
// .js, .mjs and .html file under web/public, whoever wrote it, as it is
// when the test runs. Any hit fails, comments included: the names should
// not appear at all, so a reviewer never has to judge one.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

import { WEB, filesUnder } from './helpers.mjs';

/** @type {[string, RegExp][]} */
const SINKS = [
  ['innerHTML', /innerHTML/],
  ['outerHTML', /outerHTML/],
  ['insertAdjacentHTML', /insertAdjacentHTML/],
  ['document.write', /\bdocument\s*\.\s*write(?:ln)?\b/],
  ['eval(', /(?<![\w$])eval\s*\(/],
  ['new Function', /\bnew\s+Function\b/],
  ['setTimeout/setInterval with a string', /\bset(?:Timeout|Interval)\s*\(\s*['"`]/],
  ['javascript:', /javascript\s*:/i],
];

test('web/public has no dangerous sinks', () => {
  const root = join(WEB, 'public');
  const files = ['.js', '.mjs', '.html'].flatMap((ext) => filesUnder(root, ext));
  assert.ok(files.length > 0, 'no files found under web/public');
  assert.ok(files.some((f) => f.endsWith(join('verify', 'verify.js'))), 'the verify modules are not where expected');
  /** @type {string[]} */
  const hits = [];
  for (const f of files) {
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const [name, re] of SINKS) {
        if (re.test(line)) hits.push(`${relative(WEB, f)}:${i + 1}: ${name}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(hits, [], `dangerous sinks found:\n${hits.join('\n')}`);
});

test('the sink patterns catch what they are meant to', () => {
  const caught = [
    'el.innerHTML = x', "el['outerHTML']", 'el.insertAdjacentHTML("beforeend", x)', 'document.write(x)',
    'document.writeln(x)', 'eval(x)', 'window.eval (x)', 'new Function("a", b)', 'setTimeout("go()", 1)',
    "setInterval('go()', 1)", 'setTimeout(`go()`)', 'a.href = "javascript:alert(1)"', 'JavaScript :void(0)',
  ];
  for (const s of caught) assert.ok(SINKS.some(([, re]) => re.test(s)), s);
  const fine = ['retrieval(x)', 'setTimeout(() => go(), 1)', 'setTimeout(go, 1)', 'const evaluate = 1', 'Function.prototype'];
  for (const s of fine) assert.ok(!SINKS.some(([, re]) => re.test(s)), s);
});
