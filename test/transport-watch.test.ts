/**
 * virtio-serial reading with the addon's readiness watcher versus the pure-JS polling reader
 * (NODE_QGA_FD_WATCH=poll), on the pty stand-in of test/transport.test.ts: an idle agent with
 * the watcher uses no CPU, requests after a quiet spell are answered, the hang-up back-off
 * does not spin, and SIGTERM ends the agent. The polling reader is kept working as the
 * fallback for builds without the addon. Latencies are printed, not asserted.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PtyHost, Proc, startAgentProcess, ptyUnavailable, cpuTicks, sleep } from './helpers/transport-host';
import { loadWatchFd } from '../lib/transport/fd-io';

const ptySkip = ptyUnavailable();
const watcherSkip = ptySkip ?? (loadWatchFd({}) ? undefined : 'the native addon (with watchFd) is not built');
if (ptySkip) console.log(`  SKIPPED transport watcher tests: ${ptySkip}`);
else if (watcherSkip) console.log(`  SKIPPED watcher half of transport-watch (polling half runs): ${watcherSkip}`);

const ctx = { dir: '', procs: [] as Array<Proc | PtyHost> };

function setup(name: string) {
  const s = suite(name);
  s.before.each(() => { ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-watch-transport-')); ctx.procs = []; });
  s.after.each(async () => {
    for (const p of ctx.procs.reverse()) await (p instanceof PtyHost ? p.close() : p.stop());
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });
  return s;
}

async function start(mode: 'watch' | 'poll'): Promise<{ h: PtyHost; a: Proc; port: string }> {
  const port = path.join(ctx.dir, 'port');
  const h = await PtyHost.open(port, { raw: true });
  ctx.procs.push(h);
  const a = startAgentProcess(['-v', '-t', ctx.dir, '-m', 'virtio-serial', '-p', port], mode === 'poll' ? { NODE_QGA_FD_WATCH: 'poll' } : {});
  ctx.procs.push(a);
  await a.waitStderr(/listening on virtio-serial/);
  // Logged once reading starts, just after the "listening" line.
  if (mode === 'watch') await a.waitStderr(/reading when ready \(poll watcher\)/);
  await h.sync(1);
  if (mode === 'poll') assert.not.match(a.stderr, 'poll watcher');
  return { h, a, port };
}

/** Milliseconds from sending `request` to the reply line's arrival (event-driven, no polling). */
function replyLatency(h: PtyHost, request: string): Promise<number> {
  const before = h.proc.stdout.length;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    const onData = () => {
      if (!h.proc.stdout.subarray(before).includes(0x0a)) return;
      h.proc.child.stdout!.off('data', onData);
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    h.proc.child.stdout!.on('data', onData);
    h.send(request);
  });
}

async function idleTicks(pid: number, ms: number): Promise<number> {
  const a = cpuTicks(pid);
  await sleep(ms);
  return cpuTicks(pid) - a;
}

/** Idle CPU, then requests after quiet spells: the numbers are printed for both readers. */
async function idleAndWake(mode: 'watch' | 'poll'): Promise<number> {
  const { h, a } = await start(mode);
  await sleep(300);
  const ticks = await idleTicks(a.pid, 5000);
  const latencies: number[] = [];
  for (let i = 0; i < 3; i++) {
    await sleep(2000);
    latencies.push(await replyLatency(h, `{"execute":"guest-sync","arguments":{"id":${100 + i}}}\n`));
    assert.equal(await h.readReply(), { return: 100 + i });
  }
  console.log(`    ${mode}: ${ticks} CPU ticks (1/100 s) idle over 5 s; first request after 2 s idle answered in ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);
  return ticks;
}

const watch = setup('virtio-serial with the readiness watcher');

watch('an idle agent uses (next to) no CPU, and requests after a quiet spell are answered', async () => {
  if (watcherSkip) return;
  const ticks = await idleAndWake('watch');
  // No timer wakes it: the only ticks come from whatever else the runtime does (GC, none usually).
  assert.ok(ticks <= 2, `${ticks} ticks in 5 s while idle`);
});

watch('hang-up: backed off, not spinning; SIGTERM while hung up exits 0', async () => {
  if (watcherSkip) return;
  const { h, a } = await start('watch');
  // (Reconnecting hosts are covered by test/transport.test.ts, which runs with the watcher too.)
  await h.close();
  await a.waitStderr(/host not connected on virtio-serial/);
  const ticks = await idleTicks(a.pid, 1000);
  console.log(`    watch: ${ticks} ticks over 1 s while the host is away`);
  assert.ok(ticks < 25, `${ticks}/100 s of CPU in 1 s while hung up`);
  assert.ok(a.alive);
  process.kill(a.pid, 'SIGTERM');
  const code = await Promise.race([a.exited, sleep(5000).then(() => 'hung' as const)]);
  assert.is(code, 0, `agent did not exit on SIGTERM while hung up (${code})`);
});

watch('pipelined and large requests arrive whole (reads continue past a full buffer)', async () => {
  if (watcherSkip) return;
  const { h } = await start('watch');
  // 200 KiB of JSON whitespace inside one request: it arrives over many reads and callbacks.
  const pad = ' '.repeat(200 * 1024);
  h.send(`{"execute":"guest-sync",${pad}"arguments":{"id":4}}\n{"execute":"guest-sync","arguments":{"id":5}}\n`);
  assert.equal(await h.readReply(), { return: 4 });
  assert.equal(await h.readReply(), { return: 5 });
});

watch.run();

const poll = setup('virtio-serial with the polling reader (no addon)');

poll('requests are served after idling; SIGTERM while quiet exits 0', async () => {
  if (ptySkip) return;
  await idleAndWake('poll');
  const a = ctx.procs.find((p): p is Proc => p instanceof Proc)!;
  process.kill(a.pid, 'SIGTERM');
  const code = await Promise.race([a.exited, sleep(5000).then(() => 'hung' as const)]);
  assert.is(code, 0);
});

poll('hang-up: polls at 10 Hz without spinning', async () => {
  if (ptySkip) return;
  const { h, a } = await start('poll');
  await h.close();
  await a.waitStderr(/host not connected on virtio-serial/);
  const ticks = await idleTicks(a.pid, 1000);
  assert.ok(ticks < 25, `${ticks}/100 s of CPU in 1 s while hung up`);
  assert.ok(a.alive);
});

poll.run();
