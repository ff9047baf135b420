/**
 * Freeze, thaw and fstrim on real loop-mounted ext4 (and xfs when mkfs.xfs exists) images,
 * through the commands, once per backend (fallback always, native when the addon loads).
 * Needs root and loop devices; skips visibly otherwise. procRoot points at a fixture that lists
 * only the test's own mounts, and the backend is confined to the temp dir.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsfreezeCommands, fstrimCommands } from '../lib/commands/fsfreeze';
import { createFreezeController } from '../lib/freeze/controller';
import type { SystemBackend } from '../lib/backend/types';
import { errnoError } from '../lib/errors';
import { call, confined, errorOf, fallbackBackend, makeContext, mountinfoLine, nativeBackend, testConfig } from './fixtures/system-env';
import { hasMkfs, loopUnavailable, makeLoopEnv, type LoopEnv } from './fixtures/loop';

const cmds = [...fsfreezeCommands, ...fstrimCommands];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start a write by another process; it blocks while the filesystem is frozen. */
function startWrite(file: string, data: string): ChildProcess & { done: Promise<number | null> } {
  const child = spawn('sh', ['-c', 'printf %s "$2" > "$1"', 'w', file, data], { stdio: 'ignore' }) as ChildProcess & { done: Promise<number | null> };
  child.done = new Promise((r) => child.once('exit', (code) => r(code)));
  return child;
}

async function finishesWithin(child: { done: Promise<number | null> }, ms: number): Promise<boolean> {
  return Promise.race([child.done.then(() => true), sleep(ms).then(() => false)]);
}

const skipReason = loopUnavailable();
if (skipReason) {
  console.log(`SKIP fsfreeze-loop: ${skipReason} (freeze/thaw/fstrim on loop images not tested)`);
} else {
  const withXfs = hasMkfs('xfs');
  if (!withXfs) console.log('SKIP fsfreeze-loop xfs parts: mkfs.xfs not installed');
  const kinds: Array<'fallback' | 'native'> = ['fallback', 'native'];
  for (const kind of kinds) defineSuite(kind, withXfs);
}

function defineSuite(kind: 'fallback' | 'native', withXfs: boolean): void {
  const s = suite(`fsfreeze-loop [${kind}]`);
  let env: LoopEnv;
  let backend: SystemBackend;
  let statedir: string;
  let unavailable: string | null = null;

  const newCtx = (over: Record<string, unknown> = {}, wrap?: (b: SystemBackend) => SystemBackend) => {
    const config = testConfig({ procRoot: env.procRoot, statedir, ...over });
    const ctx = makeContext(wrap ? wrap(backend) : backend, config);
    ctx.services.freeze = createFreezeController(ctx, { guardian: false });
    return ctx;
  };

  s.before(() => {
    const probe = kind === 'native' ? nativeBackend(testConfig({})) : null;
    if (typeof probe === 'string') { unavailable = probe; console.log(`SKIP fsfreeze-loop [native]: ${probe}`); return; }
    env = makeLoopEnv([
      { name: 'outer', type: 'ext4' },
      { name: 'inner', type: 'ext4', parent: 'outer' },
      ...(withXfs ? [{ name: 'x', type: 'xfs' as const }] : []),
      { name: 't', type: 'tmpfs' },
    ]);
    statedir = path.join(env.dir, 'state');
    fs.mkdirSync(statedir);
    const config = testConfig({ procRoot: env.procRoot, statedir });
    const b = kind === 'native' ? nativeBackend(config) as SystemBackend : fallbackBackend(config);
    backend = confined(b, env.dir);
  });
  s.after(() => { env?.cleanup(); });

  const nFs = withXfs ? 3 : 2;

  s('fstrim: trimmed bytes per filesystem, reverse order, per-path errors', async () => {
    if (unavailable) return;
    // one more entry: a mount point that does not exist → open error
    fs.appendFileSync(path.join(env.procRoot, 'self', 'mountinfo'), mountinfoLine(999, 7, 250, path.join(env.dir, 'missing'), 'ext4', '/dev/loop250') + '\n');
    try {
      const ctx = newCtx();
      const r = await call(cmds, 'guest-fstrim', {}, ctx) as { paths: Array<Record<string, unknown>> };
      const byPath = new Map(r.paths.map((p) => [p.path, p]));
      const order = r.paths.map((p) => path.basename(String(p.path)));
      assert.equal(order, ['missing', 't', ...(withXfs ? ['x'] : []), 'inner', 'outer']);
      for (const name of ['outer', 'inner']) {
        const e = byPath.get(env.byName(name).mountpoint)!;
        assert.equal(Object.keys(e), ['minimum', 'path', 'trimmed']);
        assert.is(e.minimum, 0);
        assert.ok(typeof e.trimmed === 'number' && e.trimmed > 0, `${name} trimmed ${String(e.trimmed)}`);
      }
      if (withXfs) {
        const e = byPath.get(env.byName('x').mountpoint)!;
        assert.ok(typeof e.trimmed === 'number' && e.trimmed > 0);
        const mm = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${env.byName('x').mountpoint} `))!.split(' ')[2];
        const granularity = Number(fs.readFileSync(`/sys/dev/block/${mm}/queue/discard_granularity`, 'utf8'));
        assert.is(e.minimum, granularity); // xfs raises minlen to the discard granularity
      }
      assert.equal(byPath.get(env.byName('t').mountpoint), { path: env.byName('t').mountpoint, error: 'trim not supported' });
      assert.equal(byPath.get(path.join(env.dir, 'missing')), { path: path.join(env.dir, 'missing'), error: 'failed to open: No such file or directory' });
      // second run: ext4 remembers trimmed groups; minimum is passed through
      const r2 = await call(cmds, 'guest-fstrim', { minimum: 65536 }, ctx) as { paths: Array<Record<string, unknown>> };
      const outer = r2.paths.find((p) => p.path === env.byName('outer').mountpoint)!;
      assert.is(outer.minimum, 65536);
      assert.is(typeof outer.trimmed, 'number');
    } finally {
      const f = path.join(env.procRoot, 'self', 'mountinfo');
      fs.writeFileSync(f, fs.readFileSync(f, 'utf8').split('\n').filter((l) => !l.startsWith('999 ')).join('\n'));
    }
  });

  s('freeze all: count, a write from another process blocks until thaw, then lands', async () => {
    if (unavailable) return;
    const ctx = newCtx();
    assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, ctx), nFs); // tmpfs skipped (EOPNOTSUPP)
    assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'frozen');
    const target = path.join(env.byName('inner').mountpoint, 'written-while-frozen');
    const writer = startWrite(target, 'landed');
    assert.not.ok(await finishesWithin(writer, 400), 'write to a frozen fs should block');
    assert.not.ok(fs.existsSync(target));
    assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), nFs);
    assert.ok(await finishesWithin(writer, 10_000), 'write should land after thaw');
    assert.is(fs.readFileSync(target, 'utf8'), 'landed');
    assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  });

  s('freeze-list: only the listed filesystem is frozen', async () => {
    if (unavailable) return;
    const ctx = newCtx();
    const inner = env.byName('inner').mountpoint, outer = env.byName('outer').mountpoint;
    assert.is(await call(cmds, 'guest-fsfreeze-freeze-list', { mountpoints: [inner, '/not/a/mount'] }, ctx), 1);
    const free = startWrite(path.join(outer, 'free'), 'ok');
    const blocked = startWrite(path.join(inner, 'blocked'), 'later');
    assert.ok(await finishesWithin(free, 10_000), 'outer is not frozen');
    assert.not.ok(await finishesWithin(blocked, 400), 'inner is frozen');
    assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), 1);
    assert.ok(await finishesWithin(blocked, 10_000));
    assert.is(fs.readFileSync(path.join(inner, 'blocked'), 'utf8'), 'later');
  });

  s('a failure in the middle thaws the rest', async () => {
    if (unavailable) return;
    const outer = env.byName('outer').mountpoint, inner = env.byName('inner').mountpoint;
    const ctx = newCtx({}, (b) => ({ ...b, freeze: async (p) => { if (p === outer) throw errnoError('EIO', 'ioctl(FIFREEZE)', p); return b.freeze(p); } }));
    assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, ctx)), `failed to freeze ${outer}: Input/output error`);
    assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
    for (const dir of [inner, outer, ...(withXfs ? [env.byName('x').mountpoint] : [])]) {
      const w = startWrite(path.join(dir, 'after-failure'), 'x');
      assert.ok(await finishesWithin(w, 10_000), `${dir} must not stay frozen`);
    }
  });

  s('restart while frozen: new controller on the same statedir reports frozen, thaw works', async () => {
    if (unavailable) return;
    const a = newCtx();
    assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, a), nFs);
    const b = newCtx();
    await b.services.freeze!.recover();
    assert.is(await call(cmds, 'guest-fsfreeze-status', {}, b), 'frozen');
    assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, b), nFs);
    const w = startWrite(path.join(env.byName('outer').mountpoint, 'after-restart'), 'x');
    assert.ok(await finishesWithin(w, 10_000));
  });

  s('state directory on a filesystem being frozen: no hang, marker stops before its freeze', async () => {
    if (unavailable) return;
    const innerState = path.join(env.byName('inner').mountpoint, 'state');
    fs.mkdirSync(innerState, { recursive: true });
    const ctx = newCtx({ statedir: innerState });
    assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, ctx), nFs);
    assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), nFs);
    assert.not.ok(fs.existsSync(path.join(innerState, 'qga.state.isfrozen')));
  });

  s('guardian thaws after the agent is SIGKILLed while frozen; the restarted agent starts thawed', async () => {
    if (unavailable) return;
    const gstate = path.join(env.dir, `gstate-${kind}`);
    fs.mkdirSync(gstate);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'freeze-child.ts'),
      JSON.stringify({ procRoot: env.procRoot, statedir: gstate, backend: kind })], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve) => {
      let buf = '';
      child.stdout!.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.split('\n')[0]); });
      child.once('exit', () => resolve(buf || 'exited'));
    });
    const m = /^frozen (\d+) (\d+)$/.exec(line);
    assert.ok(m, `child said: ${line}`);
    assert.is(Number(m![1]), nFs);
    const guardianPid = Number(m![2]);
    assert.ok(guardianPid > 0, 'a guardian runs');
    const blocked = startWrite(path.join(env.byName('outer').mountpoint, 'by-guardian'), 'thawed');
    assert.not.ok(await finishesWithin(blocked, 300));
    child.kill('SIGKILL');
    assert.ok(await finishesWithin(blocked, 15_000), 'the guardian should thaw after the agent died');
    for (let i = 0; i < 300; i++) { try { process.kill(guardianPid, 0); await sleep(50); } catch { break; } }
    const marker = JSON.parse(fs.readFileSync(path.join(gstate, 'qga.state.isfrozen'), 'utf8'));
    assert.is(marker.thawedByGuardian, true);
    assert.is(marker.mountpoints.length, nFs); // the tmpfs (EOPNOTSUPP) is not recorded
    const ctx = newCtx({ statedir: gstate });
    await ctx.services.freeze!.recover();
    assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
    assert.not.ok(fs.existsSync(path.join(gstate, 'qga.state.isfrozen')));
  });

  s.run();
}
