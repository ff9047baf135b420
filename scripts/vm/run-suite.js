#!/usr/bin/env node
'use strict';
// Entry point of the VM suite (npm run test:vm): builds the project (TypeScript, and the addon
// when it is missing), then runs test/vm/runner.ts under tsx. Options are passed through:
//   --targets native,fallback[,qemu-ga]   which guests to boot (default: native,fallback)
//   --only <regex>                         run only cases whose "file: name" matches
//   --json <file>                          also write the results as JSON
//   --no-build                             use dist/ and build/ as they are
const path = require('node:path');
const fs = require('node:fs');
const { spawn, spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const args = process.argv.slice(2);
const noBuild = args.includes('--no-build');
const pass = args.filter((a) => a !== '--no-build');

function step(cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: 'inherit' });
  return r.status === 0;
}

if (!noBuild) {
  // tsc still emits when other files have type errors; the suite then shows what works.
  if (!step(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'])) {
    console.error('     warning: tsc reported errors; running with what it emitted');
  }
  const release = path.join(ROOT, 'build', 'Release');
  const hasAddon = fs.existsSync(release) && fs.readdirSync(release).some((f) => f.endsWith('.node'));
  if (!hasAddon && !step(process.execPath, [path.join(ROOT, 'scripts', 'build-native.js'), '--strict'])) {
    console.error('     warning: the native addon did not build; the native target will fail');
  }
}
if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) console.error('     warning: dist/cli.js is missing; node-qga targets will fail');

const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'vm', 'runner.ts'), ...pass], { cwd: ROOT, stdio: 'inherit' });
// Pass stop signals on, so the runner stops its VMs (by pid) before going.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
