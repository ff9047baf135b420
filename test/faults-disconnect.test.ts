/**
 * Fault injection on the transport: a host that vanishes mid-request and mid-reply, a thousand
 * times in a row, against the real agent process (`node dist/cli.js -m unix-listen`). The agent
 * must keep serving, and its open descriptors (/proc/<pid>/fd) and resident memory afterwards
 * must be within a small bound of what they were before.
 * The memory bound is generous (RSS moves with V8's heap sizing); a real leak of one reply or
 * one socket per disconnect would exceed it by far (1000 × 1 MiB replies).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { tempDir } from './helpers/agent';

const test = suite('faults: host disconnects');
const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const ROUNDS = Number(process.env.NODE_QGA_FAULT_ROUNDS || 1000);
const RSS_SLACK_KB = 48 * 1024;
const FD_SLACK = 2;

interface Proc { child: ChildProcess; pid: number; sock: string; dir: string; stderr: string[] }

async function startCli(): Promise<Proc> {
  const dir = tempDir('qga-faults-');
  const sock = path.join(dir, 'qga.sock');
  fs.writeFileSync(path.join(dir, 'empty.conf'), '');
  const child = spawn(process.execPath, [CLI, '-m', 'unix-listen', '-p', sock, '-t', dir, '-f', path.join(dir, 'qga.pid'),
    '-c', path.join(dir, 'empty.conf'), '--backend', 'fallback'], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Never leave the agent behind, even if this test process dies.
  process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const stderr: string[] = [];
  child.stderr!.on('data', (d) => stderr.push(String(d)));
  for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await sleep(25);
  if (!fs.existsSync(sock)) throw new Error(`agent did not create its socket: ${stderr.join('')}`);
  return { child, pid: child.pid!, sock, dir, stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fdCount(pid: number): number { return fs.readdirSync(`/proc/${pid}/fd`).length; }
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** One complete exchange: send, read `lines` reply lines, close. */
function exchange(sock: string, data: string, lines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout, got ${JSON.stringify(got.slice(0, 300))}`)); }, 10_000);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => {
      got += d.toString('latin1');
      const parts = got.split('\n');
      if (parts.length > lines) { clearTimeout(timer); s.destroy(); resolve(parts.slice(0, lines)); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Connect, send `data`, then reset the connection at once or after the first reply bytes. */
function abandon(sock: string, data: Buffer | string, when: 'after-write' | 'after-first-data'): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    const done = () => { s.destroy(); resolve(); };
    const timer = setTimeout(done, 5000);
    s.on('error', () => { clearTimeout(timer); resolve(); });
    s.on('connect', () => {
      s.write(data, () => { if (when === 'after-write') { clearTimeout(timer); done(); } });
    });
    s.on('data', () => { if (when === 'after-first-data') { clearTimeout(timer); s.destroy(); resolve(); } });
  });
}

/** The agent answers a fresh client correctly: guest-sync echoes, guest-ping returns {}. */
async function assertServing(sock: string, n: number): Promise<void> {
  const replies = await exchange(sock, `{"execute":"guest-sync","arguments":{"id":${n}}}{"execute":"guest-ping"}`, 2);
  assert.equal(replies, [`{"return": ${n}}`, '{"return": {}}']);
}

let agent: Proc | undefined;

test.before(async () => {
  if (!fs.existsSync(CLI)) return;
  agent = await startCli();
});

test.after(() => {
  if (agent) { agent.child.kill('SIGTERM'); fs.rmSync(agent.dir, { recursive: true, force: true }); }
});

test(`${ROUNDS} disconnects mid-request and mid-reply: still serving, no fd or memory growth`, async () => {
  if (!agent) { console.log(`  SKIP: ${CLI} not built (npm run build)`); return; }
  const { sock, pid, dir } = agent;
  // A 1 MiB file whose guest-file-read reply (~1.4 MiB) cannot fit in the socket buffers.
  const big = path.join(dir, 'big');
  fs.writeFileSync(big, Buffer.alloc(1 << 20, 0x61));
  const [open] = await exchange(sock, JSON.stringify({ execute: 'guest-file-open', arguments: { path: big, mode: 'r' } }), 1);
  const handle = JSON.parse(open).return as number;
  assert.type(handle, 'number');
  const bigRead = `{"execute":"guest-file-seek","arguments":{"handle":${handle},"offset":0,"whence":"set"}}` +
    `{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${1 << 20}}}`;
  const request = '{"execute":"guest-sync","arguments":{"id":123456789}}';
  const info = '{"execute":"guest-info"}';

  // Warm up every path once, so lazily created things (buffers, JIT code) exist before the baseline.
  for (let i = 0; i < 30; i++) {
    await abandon(sock, bigRead, 'after-first-data');
    await abandon(sock, request.slice(0, i + 3), 'after-write');
    await assertServing(sock, i);
  }
  await sleep(300);
  const fdBefore = fdCount(pid);
  const rssBefore = rssKb(pid);

  for (let i = 0; i < ROUNDS; i++) {
    switch (i % 5) {
      case 0: await abandon(sock, request.slice(0, 1 + (i % (request.length - 1))), 'after-write'); break; // mid-request
      case 1: await abandon(sock, bigRead, 'after-first-data'); break; // mid-reply (large)
      case 2: await abandon(sock, info, 'after-first-data'); break; // mid-reply (small, maybe whole)
      case 3: await abandon(sock, `${bigRead}${request}${'{"execute":"guest-ping"}'.repeat(50)}`, 'after-write'); break; // replies owed to nobody
      case 4: await abandon(sock, Buffer.concat([Buffer.from('{"execute":"guest-sy'), Buffer.from([0xff]), Buffer.from('{"execute":')]), 'after-write'); break;
    }
    if (i % 100 === 99) await assertServing(sock, i);
  }
  await assertServing(sock, -1);
  await sleep(500);
  const fdAfter = fdCount(pid);
  const rssAfter = rssKb(pid);
  console.log(`  fds ${fdBefore} -> ${fdAfter}; RSS ${rssBefore} kB -> ${rssAfter} kB after ${ROUNDS} abandoned connections`);
  assert.ok(fdAfter <= fdBefore + FD_SLACK, `fd count grew from ${fdBefore} to ${fdAfter}`);
  assert.ok(rssAfter <= rssBefore + RSS_SLACK_KB, `RSS grew from ${rssBefore} to ${rssAfter} kB`);
  assert.is(agent.child.exitCode, null, 'the agent is still running');
  // The file handle survived every disconnect (qemu-ga keeps handles across clients).
  const [closed] = await exchange(sock, `{"execute":"guest-file-close","arguments":{"handle":${handle}}}`, 1);
  assert.is(closed, '{"return": {}}');
});

test.run();
