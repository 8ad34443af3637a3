// Shared by the Node.js checks of deploy/: a tiny test-case runner that
// prints PASS/FAIL lines and writes JUnit XML for Bazel (XML_OUTPUT_FILE),
// and access to the repository's node_modules (NODE_MODULES, set by
// tests/deploy/node_test.sh).
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function nodeModules() {
  const dir = process.env.NODE_MODULES;
  if (!dir) throw new Error('NODE_MODULES is not set (run through tests/deploy/node_test.sh)');
  return dir;
}

// require() of a package in the repository's node_modules.
function requireModule(name) {
  return createRequire(path.join(nodeModules(), 'noop.js'))(name);
}

class Cases {
  constructor(suite) {
    this.suite = suite;
    this.cases = []; // {name, errors: []}
  }

  // Runs fn(errors): the case passes when it pushes no error and throws nothing.
  run(name, fn) {
    const errors = [];
    try {
      fn(errors);
    } catch (e) {
      errors.push(`threw: ${e && e.stack ? e.stack : e}`);
    }
    this.cases.push({ name, errors });
    if (errors.length === 0) {
      console.log(`PASS: ${name}`);
    } else {
      console.log(`FAIL: ${name}`);
      for (const e of errors) console.log(`  - ${e}`);
    }
  }

  // Writes the XML, prints the summary and exits 0 only if all passed.
  finish() {
    const failed = this.cases.filter((c) => c.errors.length > 0).length;
    const xml = [];
    const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
      .replace(/>/g, '&gt;').replace(/"/g, '&quot;');
    xml.push('<?xml version="1.0" encoding="UTF-8"?>');
    xml.push(`<testsuites><testsuite name="${esc(this.suite)}" tests="${this.cases.length}" failures="${failed}">`);
    for (const c of this.cases) {
      if (c.errors.length === 0) {
        xml.push(`<testcase classname="${esc(this.suite)}" name="${esc(c.name)}"/>`);
      } else {
        xml.push(`<testcase classname="${esc(this.suite)}" name="${esc(c.name)}">` +
          `<failure message="${esc(c.errors[0])}">${esc(c.errors.join('\n'))}</failure></testcase>`);
      }
    }
    xml.push('</testsuite></testsuites>');
    if (process.env.XML_OUTPUT_FILE) fs.writeFileSync(process.env.XML_OUTPUT_FILE, xml.join('\n') + '\n');
    console.log(`${this.cases.length} cases, ${failed} failed`);
    process.exitCode = failed === 0 && this.cases.length > 0 ? 0 : 1;
  }
}

module.exports = { Cases, nodeModules, requireModule };
