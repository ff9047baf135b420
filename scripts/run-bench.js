#!/usr/bin/env node
// npm run bench [-- --quick ...]: rebuilds dist/ when any lib/ source is newer than it, then
// runs benchmarks/driver.js with the given arguments. The native addon is not built here
// (npm install / npm run build:native do that); without it the native column reports the error.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');

function newestMtime(dir, ext) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p, ext));
    else if (entry.name.endsWith(ext)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function distIsStale() {
  const cli = path.join(root, 'dist', 'cli.js');
  if (!fs.existsSync(cli)) return true;
  const built = fs.existsSync(path.join(root, 'dist')) ? newestMtime(path.join(root, 'dist'), '.js') : 0;
  return newestMtime(path.join(root, 'lib'), '.ts') > built;
}

if (distIsStale()) {
  process.stderr.write('bench: dist/ is stale, building with tsc -p tsconfig.build.json and scripts/bundle-cli.js\n');
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) { process.stderr.write('bench: build failed\n'); process.exit(r.status ?? 1); }
  // The agent the benchmarks start is the bundled dist/cli.js, as `npm run build` makes it.
  const b = spawnSync(process.execPath, [path.join(root, 'scripts', 'bundle-cli.js')], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) { process.stderr.write('bench: bundling dist/cli.js failed\n'); process.exit(b.status ?? 1); }
}

const r = spawnSync(process.execPath, [path.join(root, 'benchmarks', 'driver.js'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
