/**
 * Fault matrix (issue 7): an in-process agent on a unix socket, with a scripted backend that
 * fails at a chosen step, and replies compared field by field on the wire. Covers a freeze
 * failing on the k-th filesystem for every k, a thaw failing part-way, the fsfreeze hook failing
 * on either side, a read-only or full state directory (freezing, while frozen, opening a file,
 * at start-up) and guest-set-time's RTC step failing after the system clock was set.
 * The read-only/full state directories are a read-only bind mount and a 16 KiB tmpfs under a
 * temp dir (root only; skipped visibly otherwise). Nothing touches a real filesystem's freeze
 * state or the clock: the backend is a script.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Agent } from '../lib/agent';
import { defaultConfig, type AgentConfig } from '../lib/config-types';
import type { SystemBackend } from '../lib/backend/types';
import { createFreezeController } from '../lib/freeze/controller';
import { UnixListenChannel } from '../lib/transport/unix';
import { Logger } from '../lib/log';
import { errnoError, QgaError, type ErrnoError } from '../lib/errors';
import { rawExchange } from './helpers/agent';
import { CLI, requireBuild } from './helpers/transport-host';
import { mountinfoLine, script, tmpDir, writeProcFixture } from './fixtures/system-env';

// ------------------------------------------------------------------ the scripted backend

/** Our filesystems in mount order, plus one frozen by someone else (its FIFREEZE says EBUSY). */
const OURS = ['/fake/fs1', '/fake/fs2', '/fake/fs3', '/fake/fs4'];
const FOREIGN = '/fake/foreign';
const MOUNT_ORDER = ['/fake/fs1', '/fake/fs2', FOREIGN, '/fake/fs3', '/fake/fs4'];
/** The order guest-fsfreeze-freeze walks them: reverse mount order, the foreign one skipped. */
const FREEZE_ORDER = [...OURS].reverse();

interface Script {
  /** "op:mountpoint" (or "op") → the error that step throws. */
  fail?: Record<string, ErrnoError | QgaError>;
  /** Runs before each FIFREEZE (e.g. to fill the state directory mid-freeze). */
  beforeFreeze?: (mountpoint: string) => void;
}

type Scripted = SystemBackend & { calls: string[]; frozen: Set<string>; script: Script };

function scriptedBackend(): Scripted {
  const frozen = new Set<string>([FOREIGN]);
  const calls: string[] = [];
  const b: Scripted = {
    kind: 'fallback', calls, frozen, script: {},
    async freeze(mp) {
      calls.push(`freeze ${mp}`);
      b.script.beforeFreeze?.(mp);
      const f = b.script.fail?.[`freeze:${mp}`];
      if (f) throw f;
      if (frozen.has(mp)) throw errnoError('EBUSY', 'ioctl(FIFREEZE)', mp);
      frozen.add(mp);
    },
    async thaw(mp) {
      calls.push(`thaw ${mp}`);
      const f = b.script.fail?.[`thaw:${mp}`];
      if (f) throw f;
      return frozen.delete(mp);
    },
    async trim() { throw new Error('not used'); },
    async setSystemTime(ns) {
      calls.push(`setSystemTime ${ns}`);
      const f = b.script.fail?.setSystemTime;
      if (f) throw f;
    },
    async systemTimeToRtc() {
      calls.push('systemTimeToRtc');
      const f = b.script.fail?.systemTimeToRtc;
      if (f) throw f;
    },
    async rtcToSystemTime() { calls.push('rtcToSystemTime'); },
    async setUserPassword() { throw new Error('not used'); },
    async powerOff() { throw new Error('not used'); },
    async readFileReply() { throw new Error('not used'); },
    async writeBase64() { throw new Error('not used'); },
  };
  return b;
}

// ------------------------------------------------------------------ the agent under test

interface Harness {
  dir: string;
  statedir: string;
  backend: Scripted;
  agent: Agent;
  log: Logger;
  hookLog: string;
  guardianLog: string;
  req(execute: string, args?: Record<string, unknown>): Promise<unknown>;
  marker: string;
  stop(): Promise<void>;
}

let nextId = 1;

async function startHarness(over: Partial<AgentConfig> = {}, opts: { statedir?: string; hook?: string } = {}): Promise<Harness> {
  const dir = tmpDir('matrix');
  const procRoot = path.join(dir, 'proc');
  writeProcFixture(procRoot, MOUNT_ORDER.map((mp, i) => mountinfoLine(30 + i, 8, i + 1, mp, 'ext4', `/dev/sda${i + 1}`)));
  const statedir = opts.statedir ?? path.join(dir, 'state');
  fs.mkdirSync(statedir, { recursive: true });
  const hookLog = path.join(dir, 'hook.log');
  const guardianLog = path.join(dir, 'guardian.log');
  // The hook records its argument and fails as told by a file (so one agent can fail either side).
  const hook = opts.hook ?? script(path.join(dir, 'hook'), `echo "$1" >> ${hookLog}; f=${dir}/hook-fails-$1; [ -f $f ] && exit $(cat $f); exit 0`);
  const config: AgentConfig = { ...defaultConfig(), method: 'unix-listen', statedir, path: path.join(dir, 'sock'), procRoot, fsfreezeHook: hook, ...over };
  const backend = scriptedBackend();
  const log = new Logger(true, path.join(dir, 'agent.log'));
  const agent = new Agent({ config, backend, channel: new UnixListenChannel(config.path!), log });
  // A real guardian process, with a thaw tool that only records what it would thaw.
  const tool = script(path.join(dir, 'fake-fsfreeze'), `echo "$*" >> ${guardianLog}; exit 1`);
  agent.services.freeze = createFreezeController({ backend, config, state: agent.state, log }, { guardianThawTool: tool });
  await agent.start();
  return {
    dir, statedir, backend, agent, log, hookLog, guardianLog,
    marker: path.join(statedir, 'qga.state.isfrozen'),
    async req(execute, args) {
      const id = nextId++;
      const line = await rawExchange(config.path!, JSON.stringify(args ? { execute, arguments: args, id } : { execute, id }) + '\n', 1);
      const reply = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
      assert.is(reply.id, id, 'the reply carries the request id');
      delete reply.id;
      return reply;
    },
    async stop() {
      // The guardian and its timers are unref'd: keep the loop up until it has been released.
      const keepAlive = setInterval(() => {}, 1000);
      try { await agent.stop(); await log.close(); } finally { clearInterval(keepAlive); }
    },
  };
}

const ok = (v: unknown) => ({ return: v });
const generic = (desc: string) => ({ error: { class: 'GenericError', desc } });
const readIf = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');

/** The state after a freeze that ended in an error: nothing of ours frozen, thawed, unmuted, no marker. */
async function assertCleanlyThawed(h: Harness, label: string): Promise<void> {
  assert.equal([...h.backend.frozen], [FOREIGN], `${label}: only the foreign filesystem stays frozen`);
  assert.equal(await h.req('guest-fsfreeze-status'), ok('thawed'), `${label}: status`);
  assert.not.ok(fs.existsSync(h.marker), `${label}: marker cleared`);
  assert.not.ok(h.log.isMuted, `${label}: log unmuted`);
  assert.is(h.agent.freeze.guardianPid, undefined, `${label}: guardian released`);
  // Commands that are disabled while frozen work again.
  const t = await h.req('guest-get-time') as { return?: unknown };
  assert.type(t.return, 'number', `${label}: guest-get-time enabled`);
  assert.equal(fs.readdirSync(h.statedir).filter((f) => f.includes('tmp') || f.includes('guardian')), [], `${label}: no temp file left`);
}

// ------------------------------------------------------------------ freeze failing at step k

const freezeSuite = suite('faults-matrix: freeze fails on the k-th filesystem');

const FREEZE_ERRORS: Array<{ name: string; error: (mp: string) => ErrnoError; desc: (mp: string) => string }> = [
  { name: 'EIO from FIFREEZE', error: (mp) => errnoError('EIO', 'ioctl(FIFREEZE)', mp), desc: (mp) => `failed to freeze ${mp}: Input/output error` },
  { name: 'EPERM from FIFREEZE', error: (mp) => errnoError('EPERM', 'ioctl(FIFREEZE)', mp), desc: (mp) => `failed to freeze ${mp}: Operation not permitted` },
  { name: 'ENOENT from open', error: (mp) => errnoError('ENOENT', 'open', mp), desc: (mp) => `failed to open ${mp}: No such file or directory` },
];

for (const kind of FREEZE_ERRORS) {
  freezeSuite(`${kind.name}: every k of ${OURS.length}`, async () => {
    const h = await startHarness();
    try {
      for (let k = 1; k <= OURS.length; k++) {
        const failing = FREEZE_ORDER[k - 1];
        const before = FREEZE_ORDER.slice(0, k - 1);
        h.backend.calls.length = 0;
        fs.rmSync(h.hookLog, { force: true });
        fs.rmSync(h.guardianLog, { force: true });
        h.backend.script = { fail: { [`freeze:${failing}`]: kind.error(failing) } };
        assert.equal(await h.req('guest-fsfreeze-freeze'), generic(kind.desc(failing)), `k=${k}: the reply`);
        // Frozen in reverse mount order up to the failing one (the foreign one tried and skipped),
        // then exactly what this call froze thawed, most recent first; the foreign one untouched.
        const tried = MOUNT_ORDER.slice().reverse().slice(0, MOUNT_ORDER.length - MOUNT_ORDER.indexOf(failing));
        assert.equal(h.backend.calls, [...tried.map((mp) => `freeze ${mp}`), ...before.slice().reverse().map((mp) => `thaw ${mp}`)], `k=${k}: backend calls`);
        assert.is(readIf(h.hookLog), 'freeze\nthaw\n', `k=${k}: the thaw hook ran after the rollback`);
        await assertCleanlyThawed(h, `k=${k}`);
        assert.is(readIf(h.guardianLog), '', `k=${k}: the released guardian thawed nothing`);
      }
      // Nothing left over: the next freeze and thaw work normally.
      h.backend.script = {};
      assert.equal(await h.req('guest-fsfreeze-freeze'), ok(OURS.length));
      assert.equal(await h.req('guest-fsfreeze-status'), ok('frozen'));
      assert.equal(await h.req('guest-fsfreeze-thaw'), ok(OURS.length + 1)); // thaw is global: the foreign one too
      assert.equal(h.backend.frozen.size, 0);
    } finally { await h.stop(); }
  });
}

freezeSuite('freeze-list: the k-th listed filesystem fails; unlisted ones are never touched', async () => {
  const h = await startHarness();
  try {
    const listed = ['/fake/fs4', '/fake/fs2', '/fake/fs1'];
    const order = ['/fake/fs4', '/fake/fs2', '/fake/fs1'];
    for (let k = 1; k <= order.length; k++) {
      h.backend.calls.length = 0;
      h.backend.script = { fail: { [`freeze:${order[k - 1]}`]: errnoError('EIO', 'ioctl(FIFREEZE)', order[k - 1]) } };
      assert.equal(await h.req('guest-fsfreeze-freeze-list', { mountpoints: listed }), generic(`failed to freeze ${order[k - 1]}: Input/output error`));
      assert.equal(h.backend.calls, [...order.slice(0, k).map((mp) => `freeze ${mp}`), ...order.slice(0, k - 1).reverse().map((mp) => `thaw ${mp}`)]);
      await assertCleanlyThawed(h, `k=${k}`);
    }
  } finally { await h.stop(); }
});

freezeSuite.run();

// ------------------------------------------------------------------ thaw failing part-way

const thawSuite = suite('faults-matrix: thaw and hooks');

thawSuite('thaw: a filesystem that cannot be opened is skipped and not counted; status thawed; a later thaw gets it', async () => {
  const h = await startHarness();
  try {
    assert.equal(await h.req('guest-fsfreeze-freeze'), ok(4));
    h.backend.calls.length = 0;
    h.backend.script = { fail: { 'thaw:/fake/fs2': errnoError('ENOENT', 'open', '/fake/fs2'), 'thaw:/fake/fs3': errnoError('EACCES', 'open', '/fake/fs3') } };
    // qemu-ga's count: filesystems where at least one FITHAW succeeded (fs1, fs4 and the foreign one).
    assert.equal(await h.req('guest-fsfreeze-thaw'), ok(3));
    assert.equal(h.backend.calls, MOUNT_ORDER.map((mp) => `thaw ${mp}`), 'every filesystem tried, in mount order');
    assert.equal(await h.req('guest-fsfreeze-status'), ok('thawed'), 'the agent\'s own flag, as in qemu-ga');
    assert.not.ok(fs.existsSync(h.marker));
    assert.not.ok(h.log.isMuted);
    assert.equal([...h.backend.frozen].sort(), ['/fake/fs2', '/fake/fs3'], 'what could not be opened stays frozen');
    h.backend.script = {};
    assert.equal(await h.req('guest-fsfreeze-thaw'), ok(2), 'a thaw while thawed still thaws them');
    assert.is(h.backend.frozen.size, 0);
  } finally { await h.stop(); }
});

thawSuite('thaw: the mount list cannot be read → error, still frozen (qemu-ga), the next thaw works', async () => {
  const h = await startHarness();
  try {
    assert.equal(await h.req('guest-fsfreeze-freeze'), ok(4));
    const mi = path.join(h.dir, 'proc', 'self', 'mountinfo');
    const saved = fs.readFileSync(mi);
    fs.rmSync(mi);
    assert.equal(await h.req('guest-fsfreeze-thaw'), generic(`failed to open mtab file: '${path.join(h.dir, 'proc')}/self/mounts'`));
    assert.equal(await h.req('guest-fsfreeze-status'), ok('frozen'));
    assert.ok(fs.existsSync(h.marker));
    fs.writeFileSync(mi, saved);
    assert.equal(await h.req('guest-fsfreeze-thaw'), ok(5));
    assert.equal(await h.req('guest-fsfreeze-status'), ok('thawed'));
  } finally { await h.stop(); }
});

thawSuite('hook fails on freeze: nothing frozen, no marker, no guardian, qemu-ga text', async () => {
  const h = await startHarness();
  try {
    fs.writeFileSync(path.join(h.dir, 'hook-fails-freeze'), '3');
    assert.equal(await h.req('guest-fsfreeze-freeze'), generic('fsfreeze hook has failed with status 3'));
    assert.equal(h.backend.calls, []);
    assert.is(readIf(h.hookLog), 'freeze\n', 'the thaw hook does not run: nothing was frozen (qemu-ga)');
    await assertCleanlyThawed(h, 'hook freeze');
  } finally { await h.stop(); }
});

thawSuite('hook fails on thaw: everything thawed, state thawed, the hook\'s error returned', async () => {
  const h = await startHarness();
  try {
    assert.equal(await h.req('guest-fsfreeze-freeze'), ok(4));
    fs.writeFileSync(path.join(h.dir, 'hook-fails-thaw'), '5');
    assert.equal(await h.req('guest-fsfreeze-thaw'), generic('fsfreeze hook has failed with status 5'));
    assert.is(readIf(h.hookLog), 'freeze\nthaw\n');
    assert.is(h.backend.frozen.size, 0);
    assert.equal(await h.req('guest-fsfreeze-status'), ok('thawed'));
    assert.not.ok(fs.existsSync(h.marker));
    assert.not.ok(h.log.isMuted);
  } finally { await h.stop(); }
});

thawSuite('hook fails on thaw after a failed freeze: the freeze error is the one returned', async () => {
  const h = await startHarness();
  try {
    fs.writeFileSync(path.join(h.dir, 'hook-fails-thaw'), '5');
    h.backend.script = { fail: { 'freeze:/fake/fs2': errnoError('EIO', 'ioctl(FIFREEZE)', '/fake/fs2') } };
    assert.equal(await h.req('guest-fsfreeze-freeze'), generic('failed to freeze /fake/fs2: Input/output error'));
    assert.is(readIf(h.hookLog), 'freeze\nthaw\n');
    await assertCleanlyThawed(h, 'rollback hook');
  } finally { await h.stop(); }
});

thawSuite.run();

// ------------------------------------------------------------------ read-only / full state directory

const stateSuite = suite('faults-matrix: read-only or full state directory');

function mountUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (bind and tmpfs mounts)';
  if (spawnSync('sh', ['-c', 'command -v mount && command -v umount'], { stdio: 'ignore' }).status !== 0) return 'mount/umount not installed';
  return null;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** A directory that can be switched read-only and back (a bind mount onto itself). */
function bindDir(dir: string): { ro(): void; rw(): void; cleanup(): void } {
  run('mount', ['--bind', dir, dir]);
  return {
    ro: () => run('mount', ['-o', 'remount,bind,ro', dir]),
    rw: () => run('mount', ['-o', 'remount,bind,rw', dir]),
    cleanup: () => { spawnSync('umount', [dir], { stdio: 'ignore' }); },
  };
}

/** A 16 KiB tmpfs at `dir`; fill() takes every free byte, drain() gives them back. */
function tinyFs(dir: string): { fill(): void; drain(): void; cleanup(): void } {
  run('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'nqga-full', dir]);
  const filler = path.join(dir, 'filler');
  return {
    fill: () => {
      const fd = fs.openSync(filler, 'a');
      try { for (;;) fs.writeSync(fd, Buffer.alloc(1024, 1)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally { fs.closeSync(fd); }
    },
    drain: () => fs.rmSync(filler, { force: true }),
    cleanup: () => { spawnSync('umount', [dir], { stdio: 'ignore' }); },
  };
}

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
/**
 * The descriptor count once it reaches `expected` or up to 2 s: descriptors of the previous step
 * (a released guardian's pipe) may still be closing on the thread pool.
 */
async function settledFdCount(expected: number): Promise<number> {
  let n = fdCount();
  for (let i = 0; i < 40 && n !== expected; i++) { await new Promise((r) => setTimeout(r, 50)); n = fdCount(); }
  return n;
}
const skipMounts = mountUnavailable();
if (skipMounts) console.log(`SKIP faults-matrix read-only/full state dir: ${skipMounts}`);

stateSuite('read-only state dir when freezing: refused before any FIFREEZE, hook undone, thawed', async () => {
  if (skipMounts) return;
  const base = tmpDir('rostate');
  const statedir = path.join(base, 'state');
  fs.mkdirSync(statedir);
  const m = bindDir(statedir);
  let h: Harness | undefined;
  try {
    h = await startHarness({}, { statedir });
    m.ro();
    assert.equal(await h.req('guest-fsfreeze-freeze'), generic(`unable to create ${h.marker}: Read-only file system`));
    assert.equal(h.backend.calls, []);
    assert.is(readIf(h.hookLog), 'freeze\nthaw\n');
    await assertCleanlyThawed(h, 'ro');
    // File handles cannot be committed either: qemu-ga's text, no descriptor leaked, counter kept.
    const target = path.join(base, 'opened');
    const fds = fdCount();
    assert.equal(await h.req('guest-file-open', { path: target, mode: 'w' }), generic('failed to commit persistent state to disk'));
    assert.is(await settledFdCount(fds), fds, 'the opened file was closed again');
    m.rw();
    assert.equal(await h.req('guest-file-open', { path: target, mode: 'w' }), ok(1000), 'the failed open used no handle number');
  } finally { await h?.stop(); m.cleanup(); }
});

stateSuite('state dir turned read-only while frozen: thaw still thaws and reports; status thawed', async () => {
  if (skipMounts) return;
  const base = tmpDir('rostate2');
  const statedir = path.join(base, 'state');
  fs.mkdirSync(statedir);
  const m = bindDir(statedir);
  let h: Harness | undefined;
  try {
    h = await startHarness({}, { statedir });
    assert.equal(await h.req('guest-fsfreeze-freeze'), ok(4));
    m.ro();
    // qemu-ga warns "unable to delete …, fsfreeze may not function properly" and carries on.
    assert.equal(await h.req('guest-fsfreeze-thaw'), ok(5));
    assert.equal(h.backend.frozen.size, 0);
    assert.equal(await h.req('guest-fsfreeze-status'), ok('thawed'));
    assert.not.ok(h.log.isMuted);
    assert.is(readIf(h.hookLog), 'freeze\nthaw\n', 'the thaw hook ran');
    assert.is(h.agent.freeze.guardianPid, undefined, 'guardian released');
    const t = await h.req('guest-get-time') as { return?: unknown };
    assert.type(t.return, 'number');
    await h.log.close();
    assert.match(readIf(path.join(h.dir, 'agent.log')), `unable to delete ${h.marker}, fsfreeze may not function properly`);
    m.rw();
  } finally { await h?.stop(); m.cleanup(); }
});

stateSuite('full state dir when freezing, mid-freeze, and when opening a file', async () => {
  if (skipMounts) return;
  const base = tmpDir('fullstate');
  const statedir = path.join(base, 'state');
  fs.mkdirSync(statedir);
  const t = tinyFs(statedir);
  let h: Harness | undefined;
  try {
    h = await startHarness({}, { statedir });
    t.fill();
    assert.equal(await h.req('guest-fsfreeze-freeze'), generic(`unable to create ${h.marker}: No space left on device`));
    assert.equal(h.backend.calls, []);
    await assertCleanlyThawed(h, 'full');

    // The disk fills while /fake/fs3 is being frozen. With a thaw guardian the progress lives in
    // its pipe and the marker is rewritten once after the loop: that write fails and everything
    // this call froze is thawed (the foreign frozen filesystem is left alone).
    t.drain();
    h.backend.script = { beforeFreeze: (mp) => { if (mp === '/fake/fs3') t.fill(); } };
    assert.equal(await h.req('guest-fsfreeze-freeze'), generic(`unable to create ${h.marker}: No space left on device`));
    assert.equal(h.backend.calls, ['freeze /fake/fs4', 'freeze /fake/fs3', 'freeze /fake/foreign', 'freeze /fake/fs2', 'freeze /fake/fs1',
      'thaw /fake/fs1', 'thaw /fake/fs2', 'thaw /fake/fs3', 'thaw /fake/fs4']);
    await assertCleanlyThawed(h, 'full mid-freeze');

    h.backend.script = {};
    t.fill(); // the deleted marker gave a page back
    const fds = fdCount();
    assert.equal(await h.req('guest-file-open', { path: path.join(base, 'f'), mode: 'w' }), generic('failed to commit persistent state to disk'));
    assert.is(await settledFdCount(fds), fds, 'no descriptor left by the failed open');
    assert.equal(fs.readdirSync(statedir).sort(), ['filler', 'qga.state'], 'no temp file left behind');
    t.drain();
    assert.equal(await h.req('guest-file-open', { path: path.join(base, 'f'), mode: 'w' }), ok(1000));
  } finally { await h?.stop(); t.cleanup(); }
});

stateSuite('start-up: an unwritable state dir without qga.state is refused (qemu-ga); with one it starts', async () => {
  if (skipMounts) return;
  requireBuild();
  const base = tmpDir('startstate');
  const statedir = path.join(base, 'state');
  fs.mkdirSync(statedir);
  const m = bindDir(statedir);
  const tiny = path.join(base, 'tiny');
  fs.mkdirSync(tiny);
  const t = tinyFs(tiny);
  // Refused: exits 1 at once. Accepted: still serving after 1.5 s (then SIGTERMed).
  const start = (dir: string) => spawnSync(process.execPath, [CLI, '-m', 'unix-listen', '-p', path.join(base, 'sock'), '-t', dir],
    { encoding: 'utf8', timeout: 1500, killSignal: 'SIGTERM' });
  try {
    m.ro();
    const r = start(statedir);
    assert.is(r.status, 1, `refused: ${r.stderr}`);
    assert.match(r.stderr, `failed to load persistent state: unable to create state file at path ${path.join(statedir, 'qga.state')}: Read-only file system`);
    m.rw();
    fs.writeFileSync(path.join(statedir, 'qga.state'), '[global]\nfd_counter=1234\n');
    m.ro();
    const r2 = start(statedir);
    assert.is(r2.status, 0, `starts with an existing state file (and exits 0 on SIGTERM): ${r2.stderr}`);

    t.fill();
    const r3 = start(tiny);
    assert.is(r3.status, 1);
    assert.match(r3.stderr, `unable to create state file at path ${path.join(tiny, 'qga.state')}: No space left on device`);
    assert.equal(fs.readdirSync(tiny), ['filler'], 'no temp file left behind');
  } finally { m.cleanup(); t.cleanup(); }
});

stateSuite.run();

// ------------------------------------------------------------------ guest-set-time: RTC step fails

const timeSuite = suite('faults-matrix: guest-set-time');

timeSuite('the RTC write fails after the clock was set: the error names the hardware clock step; the clock stays set', async () => {
  const h = await startHarness();
  try {
    const ns = 1_700_000_000_000_000_000;
    // Native: the RTC_SET_TIME ioctl's errno.
    h.backend.script = { fail: { systemTimeToRtc: errnoError('ENODEV', 'ioctl(RTC_SET_TIME)', '/dev/rtc0') } };
    assert.equal(await h.req('guest-set-time', { time: ns }), generic('failed to set hardware clock to system time: No such device'));
    assert.equal(h.backend.calls, [`setSystemTime ${ns}`, 'systemTimeToRtc'], 'the system clock is not rolled back');
    // Fallback: hwclock's own failure text passes through (qemu-ga 10.x wording).
    h.backend.calls.length = 0;
    const hw = new QgaError('child process has failed to set hardware clock to system time: hwclock: ioctl(RTC_SET_TIME) to /dev/rtc0 to set the time failed: Invalid argument');
    h.backend.script = { fail: { systemTimeToRtc: hw } };
    assert.equal(await h.req('guest-set-time', { time: ns }), generic(hw.desc));
    assert.equal(h.backend.calls, [`setSystemTime ${ns}`, 'systemTimeToRtc']);
    // The system clock step failing: the RTC is never touched, and the text says so.
    h.backend.calls.length = 0;
    h.backend.script = { fail: { setSystemTime: errnoError('EPERM', 'settimeofday') } };
    assert.equal(await h.req('guest-set-time', { time: ns }), generic('Failed to set time to guest: Operation not permitted'));
    assert.equal(h.backend.calls, [`setSystemTime ${ns}`]);
  } finally { await h.stop(); }
});

timeSuite.run();
