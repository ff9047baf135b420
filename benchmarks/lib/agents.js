'use strict';
/**
 * Starting and stopping the agents under test, and reading their memory and CPU from /proc.
 * Every process here is one the benchmark spawned; it is stopped by its own pid only.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const { LeanClient } = require('./client');

const ROOT = path.resolve(__dirname, '..', '..');
const PING = Buffer.from('{"execute":"guest-ping"}\n');
const PONG = '{"return": {}}';

let clockTicks = 100;
try { clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'latin1' }).trim()) || 100; } catch { /* keep 100 */ }

/** RSS, peak RSS (both KiB) and CPU seconds (user + system, all threads) of a live process. */
function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  const kb = (key) => { const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status); return m ? Number(m[1]) : NaN; };
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after "(comm) ": state is [0], utime is field 14 -> [11], stime 15 -> [12].
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssKiB: kb('VmRSS'), hwmKiB: kb('VmHWM'), cpuSec: (Number(f[11]) + Number(f[12])) / clockTicks };
}

/** Resets the process's peak RSS (VmHWM) so the next reading is the peak of what follows. */
function resetPeak(pid) {
  try { fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); return true; } catch { return false; }
}

/**
 * The agents a run compares. `kind` 'echo' is the client ceiling, not an agent.
 * Each spec: { id, label, kind, command, args(sock, statedir), available, why }.
 */
function agentSpecs({ qemuGa, echo, nodeFlags = [] }) {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  const nodeAgent = (backend) => ({
    id: backend,
    label: `node-qga ${backend}`,
    kind: 'node-qga',
    command: process.execPath,
    args: (sock, statedir, extra = []) => [...nodeFlags, cli, '-m', 'unix-listen', '-p', sock, '-t', statedir, '--backend', backend, ...extra],
    available: true,
  });
  const specs = [nodeAgent('native'), nodeAgent('fallback')];
  // The native agent with the unix-listen client on net.Socket (no fd driver): only when asked
  // for with --agents (transport comparisons in one run).
  specs.push({ ...nodeAgent('native'), id: 'native-stream', label: 'node-qga native (net.Socket)', env: { NODE_QGA_FD_WATCH: 'poll' }, onlyWhenAsked: true });
  specs.push({ ...nodeAgent('native'), id: 'native-pool', label: 'node-qga native (libuv pool, no I/O lane)', env: { NODE_QGA_LANE_SPIN_US: '0' }, onlyWhenAsked: true });
  specs.push({ ...nodeAgent('native'), id: 'native-nospin', label: 'node-qga native (no socket spin)', env: { NODE_QGA_SOCKET_SPIN_US: '0' }, onlyWhenAsked: true });
  specs.push({
    id: 'qemu-ga',
    label: qemuGa.version ? `qemu-ga ${qemuGa.version}` : 'qemu-ga',
    kind: 'qemu-ga',
    command: qemuGa.path,
    args: (sock, statedir) => ['-m', 'unix-listen', '-p', sock, '-t', statedir],
    available: Boolean(qemuGa.path),
    why: qemuGa.why,
  });
  if (echo) {
    specs.push({
      id: 'echo',
      label: echo.label,
      kind: 'echo',
      command: echo.command,
      args: (sock) => [...echo.args, sock],
      available: true,
    });
  }
  return specs;
}

class RunningAgent {
  constructor(spec, child, sock, dir) {
    this.spec = spec;
    this.child = child;
    this.pid = child.pid;
    this.sock = sock;
    this.dir = dir;
    this.client = null;
    this.exited = null;
    child.once('exit', (code, signal) => { this.exited = { code, signal }; });
  }

  stats() { return procStats(this.pid); }
  resetPeak() { return resetPeak(this.pid); }

  async stop() {
    if (this.client) this.client.close();
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (!this.exited) this.child.kill('SIGKILL'); }, 5000);
    await gone;
    clearTimeout(timer);
  }
}

/**
 * Spawns an agent in its own directory under `workDir` and connects to it; resolves with the
 * running agent and the time from spawn() to the first guest-ping reply (ms).
 */
async function startAgent(spec, workDir, tag, extraArgs = []) {
  const dir = fs.mkdtempSync(path.join(workDir, `${spec.id}-${tag}-`));
  const statedir = path.join(dir, 'state');
  fs.mkdirSync(statedir);
  const sock = path.join(dir, 'agent.sock');
  const log = fs.openSync(path.join(dir, 'stderr.log'), 'a');
  const t0 = performance.now();
  const child = spawn(spec.command, spec.args(sock, statedir, extraArgs), { cwd: dir, stdio: ['ignore', log, log], env: spec.env ? { ...process.env, ...spec.env } : process.env });
  fs.closeSync(log);
  const agent = new RunningAgent(spec, child, sock, dir);
  try {
    const client = await Promise.race([
      LeanClient.connect(sock, { timeoutMs: 15000, retryMs: 1 }),
      new Promise((_, reject) => child.once('exit', (code, sig) => reject(new Error(`${spec.label} exited (${code ?? sig}) before answering; see ${dir}/stderr.log:\n${tail(path.join(dir, 'stderr.log'))}`)))),
    ]);
    agent.client = client;
    const { line, t } = await client.request(PING);
    if (line.toString('latin1') !== PONG) throw new Error(`${spec.label}: unexpected reply to guest-ping: ${line.toString('latin1', 0, 200)}`);
    return { agent, firstReplyMs: t - t0 };
  } catch (e) {
    await agent.stop();
    throw e;
  }
}

function tail(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-8).join('\n'); } catch { return ''; }
}

/** Finds qemu-ga, installing Debian's package when allowed; { path, version } or { why }. */
function findQemuGa({ allowInstall, log }) {
  const candidates = [process.env.QEMU_GA, '/usr/sbin/qemu-ga', '/usr/bin/qemu-ga'].filter(Boolean);
  let found = candidates.find((p) => fs.existsSync(p));
  if (!found && allowInstall) {
    if (process.getuid?.() !== 0) return { why: 'qemu-ga is not installed and the benchmark is not root (apt-get install -y qemu-guest-agent)' };
    log('qemu-ga not found: installing Debian\'s qemu-guest-agent with apt-get');
    try {
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'qemu-guest-agent'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (e) {
      return { why: `qemu-ga could not be installed: ${String(e.stderr || e.message).trim().split('\n').pop()}` };
    }
    found = candidates.find((p) => fs.existsSync(p));
  }
  if (!found) return { why: allowInstall ? 'qemu-ga not found after installation' : 'qemu-ga not installed (--no-install)' };
  let version = '';
  try {
    const out = execFileSync(found, ['--version'], { encoding: 'latin1', timeout: 5000 });
    version = (/(\d+\.\d+(?:\.\d+)?)/.exec(out) || [])[1] || '';
  } catch { /* leave it blank */ }
  return { path: found, version };
}

/** Builds the C echo server with cc when possible, else uses the Node one. */
function prepareEcho(workDir, log) {
  const src = path.join(__dirname, '..', 'echo-server.c');
  const bin = path.join(workDir, 'echo-server');
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    try {
      execFileSync(cc, ['-O2', '-D_GNU_SOURCE', '-o', bin, src], { stdio: ['ignore', 'ignore', 'pipe'] });
      return { command: bin, args: [], label: 'echo (C)', compiled: true };
    } catch { /* try the next compiler */ }
  }
  log('no C compiler: the client ceiling is measured with the Node echo server (lower than a C one)');
  return { command: process.execPath, args: [path.join(__dirname, '..', 'echo-server.js')], label: 'echo (node)', compiled: false };
}

module.exports = { agentSpecs, startAgent, procStats, resetPeak, findQemuGa, prepareEcho, PING, PONG, ROOT };
