/**
 * Fault injection on virtio-serial, with a pseudo-terminal standing in for the port: hosts that
 * vanish mid-request and mid-reply, round after round, against the real agent process
 * (`node dist/cli.js -r -m virtio-serial`), once with the addon's readiness watcher and the
 * native backend, once with the polling reader and the fallback backend of builds without it. Every round a fresh host re-syncs with 0xFF +
 * guest-sync-delimited over whatever the last one left behind and must get the right answer;
 * the agent's open descriptors must be the same at the end, its memory within a loose bound.
 *
 * A small Python helper plays QEMU: it owns the pty master and serves it as a chardev socket
 * (one host at a time, like `-chardev socket,server=on`). A pty cannot hang up and come back
 * on the same descriptor as a virtio port does, so a host disconnect is played in two ways:
 * - soft (most rounds): what the guest of a real port sees apart from POLLHUP. What the agent
 *   had written and the host had not taken is thrown away (QEMU discards the port's queue when
 *   the chardev closes) and the port is not read until the next host comes, so further writes
 *   back up and fail with EAGAIN (a port refuses writes while its host is away). The rest of an
 *   unfinished reply reaches the next host, which skips it by the 0xFF sentinel.
 * - hard (evenly spread, a few of the rounds): the master is closed, so the agent's device reports a
 *   hang-up (POLLHUP, reads fail with EIO) as a port does, and a new pty appears at the same
 *   path; the agent (-r) notices the path names another device and reopens it. This takes about
 *   1.3 s a round (the once-a-second path check, then the retry interval).
 *
 * By default 500 rounds a reader, 10 of them hard (about 50 s a reader here); the long mode,
 * NODE_QGA_PTY_FAULT_LONG=1, runs the 1000 rounds of the issue, 100 of them hard (about 4 minutes
 * a reader). NODE_QGA_PTY_FAULT_ROUNDS and NODE_QGA_PTY_FAULT_HANGUPS set the counts,
 * NODE_QGA_PTY_FAULT_READERS=watch|poll runs one reader, NODE_QGA_PTY_FAULT_TRACE=1 prints fds and
 * RSS every 50 rounds.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, PY_OPEN_PTY, ptyUnavailable, sleep, until } from './helpers/transport-host';
import { loadWatchFd } from '../lib/transport/fd-io';

const LONG = process.env.NODE_QGA_PTY_FAULT_LONG === '1';
const ROUNDS = Number(process.env.NODE_QGA_PTY_FAULT_ROUNDS || (LONG ? 1000 : 500));
const HANGUPS = Math.min(ROUNDS, Number(process.env.NODE_QGA_PTY_FAULT_HANGUPS || (LONG ? 100 : 10)));
/** Rounds before the baseline: the heap grows to its working size with the first large replies. */
const WARMUP_ROUNDS = 50;
/**
 * How far RSS may end above its warm-up peak. With the native backend it moves by a few MiB; with
 * the fallback it climbs by about 50 MiB within the first few hundred rounds and then stays flat
 * to the thousandth (heap sizing under its 1.4 MB base64 strings, not growth per round). Either
 * bound is far below what keeping one large reply per round would cost (hundreds of MiB).
 */
const RSS_SLACK_KB = { watch: 48 * 1024, poll: 96 * 1024 };
const FD_SLACK = 0;
const TRACE = process.env.NODE_QGA_PTY_FAULT_TRACE === '1';
const READERS = (process.env.NODE_QGA_PTY_FAULT_READERS || 'watch,poll').split(',');

const ptySkip = ptyUnavailable() ?? (fs.existsSync(CLI) ? undefined : `${CLI} not built (npm run build)`);
const watcherSkip = ptySkip ?? (loadWatchFd({}) ? undefined : 'the native addon (with watchFd) is not built');
if (ptySkip) console.log(`  SKIPPED pty disconnect faults: ${ptySkip}`);
else if (watcherSkip) console.log(`  SKIPPED the watcher half of the pty disconnect faults: ${watcherSkip}`);
else console.log(`  pty disconnect faults: ${ROUNDS} rounds a reader, ${HANGUPS} of them hard hang-ups` +
  (LONG ? ' (long mode)' : ' (short CI run; NODE_QGA_PTY_FAULT_LONG=1 runs the 1000 rounds of the issue, 100 hard)'));

/** QEMU's part: the pty master served as a chardev socket; "hangup" on stdin replaces the pty. */
const QEMU_PORT = `${PY_OPEN_PTY}
import sys, socket, select
link, sockpath = sys.argv[1], sys.argv[2]

def new_port():
    m, s, name = open_pty(link, True)
    os.set_blocking(m, False)
    print('PTY ' + name, flush=True)
    return m, s

m, s = new_port()
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lsock.bind(sockpath)
lsock.listen(1)
print('LISTENING', flush=True)
client = None
to_host = b''
to_guest = b''
ctl = sys.stdin.fileno()

def discard_queue():
    # QEMU drops what the guest wrote and the host did not take when the chardev closes.
    dropped = 0
    while dropped < (1 << 20):
        try:
            d = os.read(m, 65536)
        except OSError:
            break
        if not d:
            break
        dropped += len(d)

def host_gone():
    global client, to_host
    client.close()
    client = None
    to_host = b''
    discard_queue()

while True:
    rl, wl = [ctl], []
    if client is None:
        rl.append(lsock)
    else:
        if len(to_guest) < (1 << 20):
            rl.append(client)
        if to_host:
            wl.append(client)
        else:
            rl.append(m)  # the port is read only while a host takes what comes out of it
    if to_guest:
        wl.append(m)
    r, w, _ = select.select(rl, wl, [])
    if ctl in r:
        cmd = sys.stdin.readline()
        if not cmd:
            break
        if cmd.strip() == 'hangup':
            to_guest = b''
            os.close(m)
            os.close(s)
            m, s = new_port()
        continue
    if client is not None and client in r:
        try:
            d = client.recv(65536)
        except OSError:
            d = b''
        if not d:
            host_gone()
            continue
        to_guest += d
    if lsock in r:
        client, _ = lsock.accept()
        client.setblocking(False)
    if m in r and client is not None:
        try:
            to_host += os.read(m, 65536)
        except BlockingIOError:
            pass
    if m in w and to_guest:
        try:
            to_guest = to_guest[os.write(m, to_guest):]
        except BlockingIOError:
            pass
    if client is not None and client in w and to_host:
        try:
            to_host = to_host[client.send(to_host):]
        except BlockingIOError:
            pass
        except OSError:
            host_gone()
`;

/** The QEMU stand-in: a chardev socket in front of the pty whose slave the agent opens. */
class PortHost {
  private lines: string[] = [];
  private constructor(readonly child: ChildProcess, readonly link: string, readonly chardev: string) {
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
    });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`  [port helper] ${d}`));
  }
  static async start(dir: string): Promise<PortHost> {
    const link = path.join(dir, 'port');
    const chardev = path.join(dir, 'chardev.sock');
    const child = spawn('python3', ['-c', QEMU_PORT, link, chardev], { stdio: ['pipe', 'pipe', 'pipe'] });
    process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
    const h = new PortHost(child, link, chardev);
    await until('the port helper', () => h.lines.includes('LISTENING'));
    return h;
  }
  /** The host side of the port goes away for good: the device hangs up, a new one takes the path. */
  async hangUp(): Promise<void> {
    const ptys = this.lines.filter((l) => l.startsWith('PTY ')).length;
    this.child.stdin!.write('hangup\n');
    await until('a new pty', () => this.lines.filter((l) => l.startsWith('PTY ')).length > ptys);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

interface Agent { child: ChildProcess; pid: number; stderrTail: () => string }

function startAgent(dir: string, link: string, reader: 'watch' | 'poll'): Agent {
  fs.writeFileSync(path.join(dir, 'empty.conf'), '');
  const child = spawn(process.execPath, [CLI, '-r', '-m', 'virtio-serial', '-p', link, '-t', dir, '-f', path.join(dir, 'qga.pid'),
    '-c', path.join(dir, 'empty.conf'), '--backend', reader === 'watch' ? 'native' : 'fallback'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_QGA_RETRY_INTERVAL_MS: '300', ...(reader === 'poll' ? { NODE_QGA_FD_WATCH: 'poll' } : {}) },
  });
  process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  // Only the tail is kept: the warnings of a thousand hang-ups add up.
  let tail = '';
  child.stderr!.on('data', (d) => { tail = (tail + String(d)).slice(-4000); });
  return { child, pid: child.pid!, stderrTail: () => tail };
}

function fdCount(pid: number): number { return fs.readdirSync(`/proc/${pid}/fd`).length; }
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * One host on the chardev. It first re-syncs as hosts do (0xFF, guest-sync-delimited, then
 * skip everything up to the sentinel and the matching reply), which proves the agent answers
 * correctly over whatever earlier hosts left; then it calls `act`.
 */
class Host {
  private buf = Buffer.alloc(0);
  private waiter?: () => void;
  private ended = false;
  received = 0;
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => { this.received += d.length; this.buf = Buffer.concat([this.buf, d]); this.waiter?.(); });
    sock.on('close', () => { this.ended = true; this.waiter?.(); });
    sock.on('error', () => undefined);
  }
  static connect(chardev: string): Promise<Host> {
    return new Promise((resolve, reject) => {
      const s = net.connect(chardev);
      s.once('connect', () => resolve(new Host(s)));
      s.once('error', reject);
    });
  }
  send(data: string | Buffer): Promise<void> {
    return new Promise((r) => this.sock.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, () => r()));
  }
  private async wait(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => { this.ended = true; this.waiter?.(); }, timeoutMs);
    try {
      while (!done()) {
        if (this.ended) throw new Error(`host: no ${what} (last bytes ${JSON.stringify(this.buf.subarray(-200).toString('latin1'))})`);
        await new Promise<void>((r) => { this.waiter = r; });
      }
    } finally { clearTimeout(timer); this.waiter = undefined; }
  }
  async sync(id: number, timeoutMs = 15_000): Promise<void> {
    await this.send(`\xff{"execute":"guest-sync-delimited","arguments":{"id":${id}}}\n`);
    const want = Buffer.from(`\xff{"return": ${id}}\n`, 'latin1');
    await this.wait(`sync reply ${id}`, () => {
      const at = this.buf.indexOf(want);
      if (at >= 0) { this.buf = this.buf.subarray(at + want.length); return true; }
      // Leftovers of replies owed to earlier hosts: keep only what could start the sentinel.
      if (this.buf.length > want.length) this.buf = this.buf.subarray(this.buf.length - want.length);
      return false;
    }, timeoutMs);
  }
  async lines(n: number, timeoutMs = 15_000): Promise<string[]> {
    const out: string[] = [];
    await this.wait(`${n} reply lines`, () => {
      for (let nl = this.buf.indexOf(0x0a); nl >= 0 && out.length < n; nl = this.buf.indexOf(0x0a)) {
        out.push(this.buf.subarray(0, nl).toString('latin1'));
        this.buf = this.buf.subarray(nl + 1);
      }
      return out.length >= n;
    }, timeoutMs);
    return out;
  }
  /** Waits until at least `bytes` more have arrived (or the socket ended). */
  async receive(bytes: number, timeoutMs = 15_000): Promise<void> {
    const target = this.received + bytes;
    await this.wait(`${bytes} reply bytes`, () => this.received >= target, timeoutMs).catch(() => undefined);
  }
  /** Vanishes at once, as a killed host process does. */
  vanish(): void { this.sock.destroy(); }
}

let syncId = 1000;

async function assertServing(chardev: string, n: number): Promise<void> {
  const h = await Host.connect(chardev);
  try {
    await h.sync(++syncId);
    await h.send(`{"execute":"guest-sync","arguments":{"id":${n}}}{"execute":"guest-ping"}\n`);
    assert.equal(await h.lines(2), [`{"return": ${n}}`, '{"return": {}}']);
  } finally { h.vanish(); }
}

async function run(reader: 'watch' | 'poll'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qga-ptyfaults-${reader}-`));
  const port = await PortHost.start(dir);
  const agent = startAgent(dir, port.link, reader);
  try {
    await assertServing(port.chardev, 0);
    // A 1 MiB file whose guest-file-read reply (~1.4 MiB) is far larger than the pty's buffers.
    const big = path.join(dir, 'big');
    fs.writeFileSync(big, Buffer.alloc(1 << 20, 0x61));
    const h0 = await Host.connect(port.chardev);
    await h0.sync(++syncId);
    await h0.send(`${JSON.stringify({ execute: 'guest-file-open', arguments: { path: big, mode: 'r' } })}\n`);
    const handle = JSON.parse((await h0.lines(1))[0]).return as number;
    h0.vanish();
    assert.type(handle, 'number');
    // Every other large read is the whole 1 MiB, the others 300 KiB (the run's time goes into moving them).
    const readOf = (i: number) => `{"execute":"guest-file-seek","arguments":{"handle":${handle},"offset":0,"whence":"set"}}` +
      `{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${i % 10 < 5 ? 1 << 20 : 300 * 1024}}}`;
    const request = '{"execute":"guest-sync","arguments":{"id":123456789}}';
    const junk = Buffer.concat([Buffer.from('{"execute":"guest-sy'), Buffer.from([0xff]), Buffer.from('{"execute":')]);
    const hangupEvery = HANGUPS > 0 ? Math.max(1, Math.floor(ROUNDS / HANGUPS)) : Infinity;

    /** One host: re-sync, then leave in the middle of something. */
    const round = async (i: number, hangUp: boolean): Promise<void> => {
      const h = await Host.connect(port.chardev);
      await h.sync(++syncId);
      switch (i % 5) {
        case 0: await h.send(request.slice(0, 1 + (i % (request.length - 1)))); break; // mid-request
        case 1: await h.send(readOf(i)); await h.receive(1 + ((i * 7919) % (256 * 1024))); break; // mid-reply (large)
        case 2: await h.send(`{"execute":"guest-info"}`); await h.receive(1); break; // mid-reply (small, maybe whole)
        case 3: await h.send(`${readOf(i)}${request}${'{"execute":"guest-ping"}'.repeat(50)}`); break; // replies owed to nobody
        case 4: await h.send(junk); break;
      }
      h.vanish();
      if (hangUp) {
        // Give the chardev helper the disconnect before the port itself goes.
        await sleep(5);
        await port.hangUp();
      }
    };

    // Warm-up: every kind of round, a hard hang-up included, before the baseline.
    // RSS rises and falls with V8's heap sizing (the fallback backend's 1.4 MB base64 strings
    // take it well above the native backend's); the baseline is its peak over the warm-up, so a
    // steady working set passes and a leak of one reply or device per round does not.
    let rssBefore = 0;
    for (let i = 0; i < WARMUP_ROUNDS; i++) {
      await round(i, i === WARMUP_ROUNDS - 1);
      rssBefore = Math.max(rssBefore, rssKb(agent.pid));
    }
    await assertServing(port.chardev, 1);
    await sleep(300);
    const fdBefore = fdCount(agent.pid);
    const rssSettled = rssKb(agent.pid);
    rssBefore = Math.max(rssBefore, rssSettled);
    const t0 = Date.now();

    const kindMs = [0, 0, 0, 0, 0];
    for (let i = 0; i < ROUNDS; i++) {
      const r0 = Date.now();
      await round(i, i % hangupEvery === hangupEvery - 1);
      kindMs[i % 5] += Date.now() - r0;
      if (i % 100 === 99) await assertServing(port.chardev, i);
      if (TRACE && i % 50 === 49) console.log(`    ${reader}: round ${i + 1}: fds ${fdCount(agent.pid)}, RSS ${rssKb(agent.pid)} kB, ms by kind ${kindMs.join('/')}`);
    }
    await assertServing(port.chardev, -1);
    await sleep(500);
    const fdAfter = fdCount(agent.pid);
    const rssAfter = rssKb(agent.pid);
    const hard = Number.isFinite(hangupEvery) ? Math.floor(ROUNDS / hangupEvery) : 0;
    console.log(`    ${reader}: fds ${fdBefore} -> ${fdAfter}; RSS ${rssSettled} kB (warm-up peak ${rssBefore} kB) -> ${rssAfter} kB after ${ROUNDS} hosts vanished ` +
      `(${hard} with a hang-up and reopen) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(fdAfter <= fdBefore + FD_SLACK, `fd count grew from ${fdBefore} to ${fdAfter}: ${fs.readdirSync(`/proc/${agent.pid}/fd`).map((f) => { try { return fs.readlinkSync(`/proc/${agent.pid}/fd/${f}`); } catch { return f; } }).join(', ')}`);
    assert.ok(rssAfter <= rssBefore + RSS_SLACK_KB[reader], `RSS grew from a warm-up peak of ${rssBefore} to ${rssAfter} kB`);
    assert.is(agent.child.exitCode, null, `the agent is still running (${agent.stderrTail()})`);
    // The file handle survived every disconnect and reopen (qemu-ga keeps handles across hosts).
    const h = await Host.connect(port.chardev);
    await h.sync(++syncId);
    await h.send(`{"execute":"guest-file-close","arguments":{"handle":${handle}}}\n`);
    assert.equal(await h.lines(1), ['{"return": {}}']);
    h.vanish();
  } finally {
    if (agent.child.exitCode === null) {
      const exited = new Promise((r) => agent.child.once('exit', r));
      agent.child.kill('SIGTERM');
      const t = setTimeout(() => agent.child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    await port.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const test = suite('faults: host disconnects on virtio-serial (pty)');

test('readiness watcher (native addon): hosts vanish mid-request and mid-reply; still serving, fds flat, RSS bounded', async () => {
  if (watcherSkip || !READERS.includes('watch')) return;
  await run('watch');
});

test('polling reader (fallback): hosts vanish mid-request and mid-reply; still serving, fds flat, RSS bounded', async () => {
  if (ptySkip || !READERS.includes('poll')) return;
  await run('poll');
});

test.run();
