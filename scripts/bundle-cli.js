#!/usr/bin/env node
// Replaces dist/cli.js (tsc's output) with one file holding the agent and every dist module it
// uses, so start-up reads and compiles one script instead of resolving, stat-ing and wrapping
// ~70 modules (benchmarks/NOTES.md, "Start to first reply"). Run by `npm run build` after tsc.
//
// The bundle stays in dist/, so code that finds files relative to __dirname (package.json for
// the version, build/Release/qga_native.node for the addon) finds them exactly as before.
// The library entry points (dist/index.js, dist/client/*) stay unbundled.
//
// esbuild comes with the dev dependencies (through tsx). Without it dist/cli.js is left as tsc
// wrote it: it works the same, only starts slower.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
const BANNER = '// dist/cli.js bundled by scripts/bundle-cli.js from tsc\'s dist/*.js';

// Already bundled (tsc has not rewritten it since): bundling the bundle would only wrap it again.
if (fs.readFileSync(cli, 'utf8').split('\n', 2).includes(BANNER)) process.exit(0);

let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  process.stderr.write('node-qga: esbuild not installed; dist/cli.js left unbundled (slower start-up)\n');
  process.exit(0);
}

const result = esbuild.buildSync({
  entryPoints: [cli],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  write: false,
  outfile: cli,
  // Maps point into lib/*.ts through tsc's maps (node --enable-source-maps).
  sourcemap: 'linked',
  // No comments, no blanks: V8 keeps the whole source in memory for lazy compilation, and a
  // single non-ASCII character (a comment's arrow) would make it a two-byte string (2x RSS).
  // Identifiers keep their names, so stack traces still name the functions.
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  // load-addon.ts requires the addon by a computed path at run time: that stays a real require.
  logOverride: { 'unsupported-require-call': 'silent' },
  logLevel: 'warning',
  banner: { js: BANNER },
});
for (const file of result.outputFiles) {
  if (file.path === cli && file.contents.some((byte) => byte > 0x7f)) process.stderr.write('node-qga: warning: dist/cli.js is not pure ASCII (V8 will hold it as a two-byte string)\n');
  fs.writeFileSync(file.path, file.contents);
}
