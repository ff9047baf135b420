#!/usr/bin/env node
// Start to first reply, CPU time and idle RSS of several agent builds, interleaved run by run
// so machine load hits them alike (the numbers in benchmarks/NOTES.md, "Start to first reply").
//
//   node benchmarks/startup-compare.js [--reps N] [--wait MS] 'label=script [args]' ...
//
// Each variant runs as `node <script> [args] -m unix-listen -p <sock> -t <statedir>`; the
// client connects every millisecond and sends guest-ping. CPU is the agent's time on a CPU up
// to the reply (/proc/<pid>/task/*/schedstat), RSS is VmRSS `--wait` ms later (default 1500,
// as the benchmark's idle RSS). The variant `label=@bare` is a bare Node unix-socket server
// answering every read with an empty return: the floor Node itself sets.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const argv = process.argv.slice(2);
let reps = 10;
let waitMs = 1500;
const variants = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--reps') reps = Number(argv[++i]);
  else if (argv[i] === '--wait') waitMs = Number(argv[++i]);
  else {
    const eq = argv[i].indexOf('=');
    if (eq < 1) { process.stderr.write(`usage: startup-compare.js [--reps N] [--wait MS] 'label=script [args]' ...\n`); process.exit(2); }
    variants.push({ label: argv[i].slice(0, eq), args: argv[i].slice(eq + 1).split(' ').filter(Boolean), ms: [], cpu: [], rss: [] });
  }
}
const BARE_SERVER = `const p = process.argv[process.argv.indexOf('-p') + 1];
require('node:net').createServer((c) => c.on('data', () => c.write('{"return": {}}\\n'))).listen(p);`;
for (const v of variants) if (v.args[0] === '@bare') v.args = ['-e', BARE_SERVER, '--'];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-startcmp-'));

function cpuMs(pid) {
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
  return ns / 1e6;
}

function once(v, n) {
  const dir = fs.mkdtempSync(path.join(work, 'run'));
  const sock = path.join(dir, 'sock');
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...v.args, '-m', 'unix-listen', '-p', sock, '-t', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${v.label} run ${n} exited (${code}) before replying`)));
    const attempt = () => {
      const c = net.connect(sock);
      c.on('error', () => setTimeout(attempt, 1));
      c.on('connect', () => c.write('{"execute":"guest-ping"}\n'));
      c.once('data', () => {
        v.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        v.cpu.push(cpuMs(child.pid));
        setTimeout(() => {
          v.rss.push(Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024);
          child.removeAllListeners('exit');
          child.kill('SIGKILL');
          c.destroy();
          resolve();
        }, waitMs);
      });
    };
    attempt();
  });
}

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

(async () => {
  try {
    for (let r = 0; r < reps; r++) for (const v of variants) await once(v, r);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`${reps} interleaved runs each, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  process.stdout.write('| variant | first reply ms (median) | min | CPU ms (median) | RSS MiB after ' + waitMs + ' ms |\n|---|---:|---:|---:|---:|\n');
  for (const v of variants) {
    process.stdout.write(`| ${v.label} | ${median(v.ms).toFixed(0)} | ${Math.min(...v.ms).toFixed(0)} | ${median(v.cpu).toFixed(0)} | ${median(v.rss).toFixed(1)} |\n`);
  }
})().catch((e) => { process.stderr.write(`${e.message}\n`); process.exit(1); });
