#!/usr/bin/env node
/**
 * Summarises V8 .cpuprofile files (node --cpu-prof; `npm run bench -- --profile DIR`): the
 * functions with the most self time, with file:line, and the share of idle/GC/program time.
 *   node benchmarks/profile-summary.js FILE.cpuprofile [--top N]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const top = Number(args[args.indexOf('--top') + 1]) || 25;
for (const file of args.filter((a) => a.endsWith('.cpuprofile'))) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const d = dt[i] || 0;
    total += d;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'}  ${cf.url ? path.relative(process.cwd(), cf.url.replace(/^file:\/\//, '')) : ''}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) || 0) + d);
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
  const busy = total - (self.get('(idle)  ') || 0);
  process.stdout.write(`\n${path.basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle\n`);
  for (const [k, v] of rows.slice(0, top)) process.stdout.write(`${(v / 1e3).toFixed(1).padStart(9)} ms ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}\n`);
}
