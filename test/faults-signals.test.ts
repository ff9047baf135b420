/**
 * Signals against the real daemonized agent (dist/cli.js -d -f PIDFILE), on both backends
 * (issue 7):
 *  - SIGTERM / SIGINT while thawed: exit 0, the pid file removed;
 *  - SIGTERM while loop-mounted ext4 images are frozen: qemu-ga ignores the signal (behaviour
 *    reference §4.1); node-qga holds it — the agent keeps serving, the filesystems stay frozen,
 *    and it exits cleanly (pid file removed) right after the next thaw;
 *  - the same with --fsfreeze-timeout: the watchdog still fires while the signal is held, thaws,
 *    and the held exit follows.
 * The frozen parts need root and loop devices (skipped visibly otherwise); --proc-root lists only
 * the test's own loops, and they are unfrozen, unmounted and detached at the end whatever happens.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaClient } from '../lib/client';
import { availableBackends } from './helpers/agent';
import { pidAlive, sleep, startAgentProcess, until } from './helpers/transport-host';
import { tmpDir } from './fixtures/system-env';
import { loopUnavailable, makeLoopEnv, writableWithin as writable, type LoopEnv } from './fixtures/loop';

const daemons: number[] = [];
process.on('exit', () => { for (const pid of daemons) if (pidAlive(pid)) process.kill(pid, 'SIGKILL'); });

interface Daemon { pid: number; sock: string; pidfile: string; logfile: string }

/** Starts `dist/cli.js -d …`; resolves once the parent has exited 0 and the daemon serves. */
async function startDaemon(dir: string, extra: string[]): Promise<Daemon> {
  const sock = path.join(dir, 'qga.sock');
  const pidfile = path.join(dir, 'qga.pid');
  const logfile = path.join(dir, 'qga.log');
  const parent = startAgentProcess(['-d', '-v', '-m', 'unix-listen', '-p', sock, '-f', pidfile, '-l', logfile, ...extra]);
  assert.is(await parent.exited, 0, `daemon start: ${parent.stderr}`);
  const pid = Number(fs.readFileSync(pidfile, 'latin1'));
  daemons.push(pid);
  return { pid, sock, pidfile, logfile };
}

async function call(sock: string, command: string, args?: Record<string, unknown>): Promise<unknown> {
  const c = await QgaClient.connect(sock, { timeout: 10000 });
  try { return await c.call(command, args); } finally { c.close(); }
}

async function exitsWithin(d: Daemon, ms: number): Promise<boolean> {
  return until(`pid ${d.pid} to exit`, () => !pidAlive(d.pid), ms).then(() => true, () => false);
}

const backends = availableBackends();

const thawed = suite('signals while thawed');
for (const kind of backends) {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    thawed(`[${kind}] ${sig}: exits 0 at once, pid file removed, exit logged`, async () => {
      const dir = tmpDir('qga-sig');
      const d = await startDaemon(dir, ['-t', dir, '--backend', kind]);
      assert.equal(await call(d.sock, 'guest-ping'), {});
      process.kill(d.pid, sig);
      assert.ok(await exitsWithin(d, 5000), `${sig} ends the agent`);
      assert.not.ok(fs.existsSync(d.pidfile), 'pid file removed');
      assert.match(fs.readFileSync(d.logfile, 'utf8'), `${sig} received, exiting`);
    });
  }
}
thawed.run();

const frozen = suite('signals while frozen (loop-mounted ext4)');
const skip = loopUnavailable();
if (skip) console.log(`SKIP faults-signals frozen part: ${skip}`);

for (const kind of backends) {
  frozen(`[${kind}] SIGTERM while frozen is held: still serving and frozen; exits after the thaw, pid file removed`, async () => {
    if (skip) return;
    await withLoops(async (env, statedir, pending) => {
      const mps = env.mounts.map((m) => m.mountpoint);
      const d = await startDaemon(env.dir, ['-t', statedir, '--backend', kind, '--proc-root', env.procRoot]);
      assert.is(await call(d.sock, 'guest-fsfreeze-freeze-list', { mountpoints: mps }), mps.length);
      process.kill(d.pid, 'SIGTERM');
      assert.not.ok(await exitsWithin(d, 1500), 'the agent does not exit while frozen');
      assert.is(await call(d.sock, 'guest-fsfreeze-status'), 'frozen');
      for (const mp of mps) assert.not.ok(await writable(mp, 300, pending), `${mp} still frozen after SIGTERM`);
      assert.ok(fs.existsSync(d.pidfile), 'pid file kept while serving');
      assert.is(await call(d.sock, 'guest-fsfreeze-thaw'), mps.length);
      assert.ok(await exitsWithin(d, 5000), 'the held signal ends the agent after the thaw');
      assert.not.ok(fs.existsSync(d.pidfile), 'pid file removed');
      for (const mp of mps) assert.ok(await writable(mp, 3000, pending), `${mp} writable after the thaw`);
      assert.not.ok(fs.existsSync(path.join(statedir, 'qga.state.isfrozen')), 'no frozen marker left');
      // The warning about the held signal is not in the file: logging is muted while frozen (the
      // log may live on a frozen filesystem), as in qemu-ga.
    });
  });

  frozen(`[${kind}] SIGTERM while frozen with --fsfreeze-timeout: the watchdog thaws, then the held exit follows`, async () => {
    if (skip) return;
    await withLoops(async (env, statedir, pending) => {
      const mps = env.mounts.map((m) => m.mountpoint);
      const d = await startDaemon(env.dir, ['-t', statedir, '--backend', kind, '--proc-root', env.procRoot, '--fsfreeze-timeout', '2']);
      const t0 = Date.now();
      assert.is(await call(d.sock, 'guest-fsfreeze-freeze-list', { mountpoints: mps }), mps.length);
      process.kill(d.pid, 'SIGTERM');
      await sleep(300);
      assert.ok(pidAlive(d.pid), 'held while frozen');
      assert.is(await call(d.sock, 'guest-fsfreeze-status'), 'frozen');
      assert.ok(await exitsWithin(d, 10000), 'exits once the watchdog has thawed');
      assert.ok(Date.now() - t0 >= 1900, `not before the 2 s timeout (${Date.now() - t0} ms)`);
      assert.not.ok(fs.existsSync(d.pidfile), 'pid file removed');
      for (const mp of mps) assert.ok(await writable(mp, 3000, pending), `${mp} thawed by the watchdog`);
      const log = fs.readFileSync(d.logfile, 'utf8');
      assert.match(log, /fsfreeze timeout: no guest-fsfreeze-thaw within 2 s/);
      assert.match(log, `fsfreeze timeout: ${mps.length} filesystem(s) thawed`);
    });
  });
}

/** Two loop-mounted ext4 images; always unfrozen, unmounted and detached afterwards. */
async function withLoops(fn: (env: LoopEnv, statedir: string, pending: Array<Promise<unknown>>) => Promise<void>): Promise<void> {
  const env = makeLoopEnv([{ name: 's1', type: 'ext4', sizeMB: 16 }, { name: 's2', type: 'ext4', sizeMB: 16 }]);
  const pending: Array<Promise<unknown>> = [];
  const statedir = path.join(env.dir, 'state');
  fs.mkdirSync(statedir);
  try {
    await fn(env, statedir, pending);
  } finally {
    for (const pid of daemons) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    for (const m of env.mounts) for (let i = 0; i < 8 && spawnSync('fsfreeze', ['--unfreeze', m.mountpoint], { stdio: 'ignore' }).status === 0; i++);
    await Promise.all(pending); // probe writes stuck on a frozen loop finish once it is thawed
    // A killed agent's guardian may still be thawing: give it a moment before unmounting.
    await sleep(200);
    env.cleanup();
  }
}

frozen.run();
