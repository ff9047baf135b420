#!/usr/bin/env node
// Runs every unit/integration suite (test/*.test.ts) with uvu + tsx and ends with one plain
// line "N passed, N failed" (totals over all suites). Zero tests is a failure: uvu itself
// exits 0 when nothing matched. Pass a regex to run matching files only.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const pattern = process.argv[2] || '\\.test\\.ts$';
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
const env = { ...process.env, NO_COLOR: '1' };
delete env.FORCE_COLOR;
const res = spawnSync(process.execPath, ['--import', 'tsx', uvu, 'test', pattern, '-i', 'vm/', '-i', 'helpers/', '-i', 'fixtures/'], {
  cwd: root, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024,
});
const out = (res.stdout || '') + (res.stderr || '');
process.stdout.write(res.stdout || '');
process.stderr.write(res.stderr || '');
const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
const num = (label) => { const m = new RegExp(`${label}:\\s+(\\d+)`).exec(clean); return m ? Number(m[1]) : 0; };
const total = num('Total'), passed = num('Passed'), skipped = num('Skipped');
let failed = total - passed - skipped;
if (res.status !== 0 && failed === 0) failed = 1; // a crash outside any test still fails the run
if (total === 0) { console.log('no tests ran'); failed = Math.max(failed, 1); }
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
