// No dangerous DOM, code or navigation sinks anywhere in what the server
// serves: every .js, .mjs, .html and .svg file under web/public, whoever
// wrote it, as it is when the test runs. Any hit fails, comments included:
// the names should not appear at all, so a reviewer never has to judge one.
// (The one way out of the app, to an OIDC issuer, is a link made by dom.js
// from a checked https URL: followSignInUrl.)

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
  ['location.assign', /\blocation\s*\.\s*assign\b/],
  ['location.href =', /\blocation\s*\.\s*href\s*=(?!=)/],
  ['window.location =', /\b(?:window|document|self|top|parent)\s*\.\s*location\s*=(?!=)/],
  ['window.open', /\bwindow\s*\.\s*open\s*\(/],
  ["setAttribute('on…'", /setAttribute(?:NS)?\s*\(\s*(?:[^,]*,\s*)?['"`]on/i],
  ["setAttribute('href'", /setAttribute(?:NS)?\s*\(\s*(?:[^,]*,\s*)?['"`](?:xlink:)?href['"`]/i],
  ['srcdoc', /srcdoc/i],
  ['DOMParser', /DOMParser/],
  ['createContextualFragment', /createContextualFragment/],
];

/** What an SVG file must not hold besides: script, handlers, links, foreign content. @type {[string, RegExp][]} */
const SVG_SINKS = [
  ['<script', /<script\b/i],
  ['on… attribute', /\son[a-z]+\s*=/i],
  ['href', /href\s*=/i],
  ['foreignObject', /foreignObject/i],
  ['<style', /<style\b/i],
];

test('web/public has no dangerous sinks', () => {
  const root = join(WEB, 'public');
  const files = ['.js', '.mjs', '.html', '.svg'].flatMap((ext) => filesUnder(root, ext));
  assert.ok(files.length > 0, 'no files found under web/public');
  assert.ok(files.some((f) => f.endsWith(join('verify', 'verify.js'))), 'the verify modules are not where expected');
  assert.ok(files.some((f) => f.endsWith('.svg')), 'no .svg file found (the icon)');
  /** @type {string[]} */
  const hits = [];
  for (const f of files) {
    const patterns = f.endsWith('.svg') ? [...SINKS, ...SVG_SINKS] : SINKS;
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const [name, re] of patterns) {
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
    'location.assign(url)', 'window.location.assign (u)', 'location.href = u', 'window.location.href=u',
    'document.location = u', 'window.location = u', 'window.open(u)', 'window.open (u, "_blank")',
    "el.setAttribute('onclick', x)", 'el.setAttribute("onerror", x)', 'el.setAttribute(`onload`, x)',
    "el.setAttribute('href', u)", "a.setAttributeNS(XLINK, 'xlink:href', u)", "el.setAttributeNS(null, 'href', u)",
    'frame.srcdoc = x', "el.setAttribute('srcdoc', x)", 'new DOMParser()', 'range.createContextualFragment(x)',
  ];
  for (const s of caught) assert.ok(SINKS.some(([, re]) => re.test(s)), s);
  const fine = [
    'retrieval(x)', 'setTimeout(() => go(), 1)', 'setTimeout(go, 1)', 'const evaluate = 1', 'Function.prototype',
    "location.hash = '#/x'", "location.replace('#/signin')", 'if (location.href === u) go()', 'const origin = location.origin',
    "el.setAttribute('data-state', s)", "el.setAttribute('aria-label', t)", "el.setAttribute(name, String(v))",
    'details.open = true',
  ];
  for (const s of fine) assert.ok(!SINKS.some(([, re]) => re.test(s)), s);
  const svg = ['<script>x</script>', '<svg onload="x">', '<a href="x">', '<use xlink:href="#x"/>', '<foreignObject>', '<style>'];
  for (const s of svg) assert.ok(SVG_SINKS.some(([, re]) => re.test(s)), s);
  assert.ok(!SVG_SINKS.some(([, re]) => re.test('<circle cx="16" cy="8" r="2.6"/>')));
});
