#!/usr/bin/env node
// Runs every suite (test/*.test.ts) with uvu + tsx, one process per file so a crash or a hang
// in one file cannot hide the others' results, and ends with one plain line
// "N passed, N failed" (totals over all suites). Zero tests is a failure: uvu itself exits 0
// when nothing matched. Pass a regex to run matching files only.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const pattern = new RegExp(process.argv[2] || '\\.test\\.ts$');
const PER_FILE_TIMEOUT_MS = Number(process.env.NODE_QGA_TEST_TIMEOUT_MS || 15 * 60 * 1000);
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
const env = { ...process.env, NO_COLOR: '1' };
delete env.FORCE_COLOR;

const files = fs.readdirSync(path.join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts') && pattern.test(f))
  .sort();

let passed = 0, failed = 0, skipped = 0;
const broken = [];
const empty = [];
for (const file of files) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', uvu, 'test', `^${file.replace(/\./g, '\\.')}$`], {
    cwd: root, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: PER_FILE_TIMEOUT_MS, killSignal: 'SIGKILL',
  });
  process.stdout.write(res.stdout || '');
  process.stderr.write(res.stderr || '');
  const clean = ((res.stdout || '') + (res.stderr || '')).replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => { const m = new RegExp(`${label}:\\s+(\\d+)`).exec(clean); return m ? Number(m[1]) : 0; };
  const total = num('Total'), ok = num('Passed'), skip = num('Skipped');
  // uvu's Total counts the tests that ran; skipped ones are not in it.
  let bad = Math.max(0, total - ok);
  if (res.error || res.status !== 0) {
    // A crash or a timeout still counts as a failure of that file.
    bad = Math.max(bad, 1);
    broken.push(`${file}: ${res.error ? res.error.message : `exit ${res.status}`}`);
  } else if (total === 0) {
    // A suite that registered nothing here (it printed why: no addon, no root...).
    empty.push(file);
  }
  passed += ok; failed += bad; skipped += skip;
}
if (passed + failed === 0) { broken.push('no tests ran'); failed++; }
for (const e of empty) console.log(`NO TESTS RAN IN ${e} (see its SKIP line above)`);
for (const b of broken) console.log(`FAILED FILE ${b}`);
if (skipped) console.log(`(${skipped} skipped)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
