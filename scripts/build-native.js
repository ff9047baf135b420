#!/usr/bin/env node
// Builds the optional native addon (build/Release/qga_native.node) during `npm install`.
// The agent works without it (pure-TypeScript fallback), so by default this script never
// fails the install: it prints one line saying why the addon was not built and exits 0.
//   --strict   exit 1 on failure and show the compiler output (npm run build:native)
//   --cmake    build with cmake-js instead of node-gyp
//   NODE_QGA_SKIP_NATIVE=1        do not build at all (fallback-only installs, CI)
//   NODE_QGA_BUILD_VERBOSE=1      show the build tool's output even on success
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));
const strict = args.has('--strict');
const useCmake = args.has('--cmake');
const verbose = process.env.NODE_QGA_BUILD_VERBOSE === '1';
const addonPath = path.join(root, 'build', 'Release', 'qga_native.node');

function giveUp(reason, log) {
  if (strict && log) process.stderr.write(log.endsWith('\n') ? log : `${log}\n`);
  process.stderr.write(`node-qga: native addon not built (${reason}); the agent will use the pure-TypeScript fallback\n`);
  process.exit(strict ? 1 : 0);
}

function resolveFrom(request, dirs) {
  for (const dir of dirs) {
    try {
      return require.resolve(request, { paths: [dir] });
    } catch {
      /* try the next place */
    }
  }
  return undefined;
}

// npm runs scripts with npm_config_node_gyp pointing at its bundled node-gyp; outside npm,
// look next to this node's npm, then in node_modules.
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    resolveFrom('node-gyp/bin/node-gyp.js', [root]),
  ];
  return candidates.find((p) => p && fs.existsSync(p));
}

// node-gyp wants full Node headers and would download them; this node's own are usually
// installed next to it (<prefix>/include/node), so point there and stay offline.
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

// The first line that explains a failure, for the one-line message.
function firstErrorLine(log) {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean);
  const hit = lines.find((l) => /(^|\s)(fatal )?error[:!]|not found|No such file|ENOENT|command not found/i.test(l) && !/^gyp info/.test(l));
  return (hit ?? lines[lines.length - 1] ?? 'unknown error').replace(/^gyp ERR! /, '').slice(0, 200);
}

function run(file, argv) {
  const r = spawnSync(process.execPath, [file, ...argv], { cwd: root, encoding: 'utf8', env: process.env, maxBuffer: 64 << 20 });
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (verbose) process.stderr.write(log);
  return { ok: r.status === 0 && !r.error, log: r.error ? String(r.error) : log };
}

function main() {
  if (process.env.NODE_QGA_SKIP_NATIVE === '1') {
    process.stderr.write('node-qga: native addon not built (NODE_QGA_SKIP_NATIVE=1); the agent will use the pure-TypeScript fallback\n');
    process.exit(0);
  }
  if (process.platform !== 'linux') giveUp(`unsupported platform ${process.platform}`);

  let result;
  if (useCmake) {
    const cmakeJs = resolveFrom('cmake-js/bin/cmake-js', [root]);
    if (!cmakeJs) giveUp('cmake-js is not installed');
    result = run(cmakeJs, ['rebuild', '--out', 'build', '--config', 'Release', '--log-level', 'warn']);
  } else {
    const nodeGyp = findNodeGyp();
    if (!nodeGyp) giveUp('node-gyp not found');
    const nodeDir = findNodeDir();
    const gypArgs = ['rebuild', '--release', '--loglevel=warn'];
    if (nodeDir) gypArgs.push(`--nodedir=${nodeDir}`);
    result = run(nodeGyp, gypArgs);
  }
  if (!result.ok) giveUp(`${useCmake ? 'cmake-js' : 'node-gyp'} failed: ${firstErrorLine(result.log)}`, result.log);
  if (!fs.existsSync(addonPath)) giveUp(`build finished but ${path.relative(root, addonPath)} is missing`, result.log);

  // Load it in a child so a broken link (missing library, bad symbol) is caught now.
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addonPath)})`], { encoding: 'utf8' });
  if (probe.status !== 0) {
    try {
      fs.unlinkSync(addonPath);
    } catch {
      /* already gone */
    }
    giveUp(`built addon fails to load: ${firstErrorLine(probe.stderr || '')}`, probe.stderr);
  }
}

main();
