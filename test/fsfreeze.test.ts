/**
 * Freeze/thaw/fstrim policy on a recording mock backend and a fixture mountinfo (no root
 * needed): order, freeze-list matching, skipped errors, rollback, error texts, hooks, marker,
 * muted log, restart semantics, the guardian's pipe protocol and the watchdog.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsfreezeCommands, fstrimCommands } from '../lib/commands/fsfreeze';
import { createFreezeController } from '../lib/freeze/controller';
import { ThawGuardian } from '../lib/freeze/guardian';
import { StateStore } from '../lib/state';
import { errnoError } from '../lib/errors';
import { call, errorOf, makeContext, mockBackend, mountinfoLine, script, testConfig, tmpDir, writeProcFixture } from './fixtures/system-env';

const cmds = [...fsfreezeCommands, ...fstrimCommands];

function setup(fail: Record<string, string | Error> = {}, over: Record<string, unknown> = {}) {
  const dir = tmpDir('freeze');
  const procRoot = path.join(dir, 'proc');
  const statedir = path.join(dir, 'state');
  fs.mkdirSync(statedir);
  writeProcFixture(procRoot, [
    mountinfoLine(20, 0, 20, '/proc', 'proc', 'proc'),
    mountinfoLine(21, 8, 1, '/fake', 'ext4', '/dev/sda1'),
    mountinfoLine(22, 0, 30, '/fake/tmp', 'tmpfs', 'tmpfs'),
    mountinfoLine(23, 8, 2, '/fake/home', 'xfs', '/dev/sda2'),
    mountinfoLine(24, 8, 2, '/fake/bind', 'xfs', '/dev/sda2'), // bind duplicate: skipped
    mountinfoLine(25, 8, 3, '/fake/home/with space', 'ext4', '/dev/sda3'),
  ]);
  const config = testConfig({ procRoot, statedir, ...over });
  const backend = mockBackend(fail);
  const logFile = path.join(dir, 'agent.log');
  const ctx = makeContext(backend, config, logFile);
  ctx.services.freeze = createFreezeController(ctx, { guardian: false });
  return { dir, ctx, backend, config, statedir, logFile };
}

const ops = (b: ReturnType<typeof mockBackend>, op: string) => b.calls.filter((c) => c.op === op).map((c) => c.args[0]);

test('freeze: reverse mount order, count, status, marker, muted log', async () => {
  const { ctx, backend, statedir } = setup();
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, ctx), 3);
  assert.equal(ops(backend, 'freeze'), ['/fake/home/with space', '/fake/home', '/fake']);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'frozen');
  assert.ok(ctx.log.isMuted);
  const marker = JSON.parse(fs.readFileSync(path.join(statedir, 'qga.state.isfrozen'), 'utf8'));
  assert.equal(marker.mountpoints, ['/fake/home/with space', '/fake/home', '/fake']);
  assert.is(fs.statSync(path.join(statedir, 'qga.state.isfrozen')).mode & 0o777, 0o600);
  assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), 3);
  assert.equal(ops(backend, 'thaw'), ['/fake', '/fake/home', '/fake/home/with space']);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  assert.not.ok(ctx.log.isMuted);
  assert.not.ok(fs.existsSync(path.join(statedir, 'qga.state.isfrozen')));
});

test('freeze-list: exact matches only, unknown ignored, empty list freezes nothing', async () => {
  const { ctx, backend } = setup();
  assert.is(await call(cmds, 'guest-fsfreeze-freeze-list', { mountpoints: ['/fake', '/nope', '/fake/home/'] }, ctx), 1);
  assert.equal(ops(backend, 'freeze'), ['/fake']);
  await call(cmds, 'guest-fsfreeze-thaw', {}, ctx);
  assert.is(await call(cmds, 'guest-fsfreeze-freeze-list', { mountpoints: [] }, ctx), 0);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  assert.is(await call(cmds, 'guest-fsfreeze-freeze-list', {}, ctx), 3);
});

test('EOPNOTSUPP and EBUSY are skipped and not counted; all skipped → 0 and thawed', async () => {
  const { ctx, backend, statedir } = setup({ 'freeze:/fake/home': 'EBUSY', 'freeze:/fake': 'EOPNOTSUPP' });
  assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, ctx), 1);
  const marker = JSON.parse(fs.readFileSync(path.join(statedir, 'qga.state.isfrozen'), 'utf8'));
  assert.equal(marker.mountpoints, ['/fake/home/with space']);
  await call(cmds, 'guest-fsfreeze-thaw', {}, ctx);
  const s2 = setup({ 'freeze:/fake/home': 'EBUSY', 'freeze:/fake': 'EOPNOTSUPP', 'freeze:/fake/home/with space': 'ENOTSUP' });
  assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, s2.ctx), 0);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, s2.ctx), 'thawed');
  assert.not.ok(fs.existsSync(path.join(s2.statedir, 'qga.state.isfrozen')));
  void backend;
});

test('a failure in the middle thaws what this call froze and returns qemu-ga text', async () => {
  const { ctx, backend, statedir } = setup({ 'freeze:/fake': 'EIO' });
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, ctx)), 'failed to freeze /fake: Input/output error');
  assert.equal(ops(backend, 'thaw'), ['/fake/home', '/fake/home/with space']);
  assert.is(backend.frozen.size, 0);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  assert.not.ok(ctx.log.isMuted);
  assert.not.ok(fs.existsSync(path.join(statedir, 'qga.state.isfrozen')));
  const s2 = setup({ 'freeze:/fake/home': 'ENOENT' });
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, s2.ctx)), 'failed to open /fake/home: No such file or directory');
  assert.is(s2.backend.frozen.size, 0);
});

test('thaw: counts only filesystems FITHAW thawed, skips open failures, works when not frozen', async () => {
  const { ctx, backend } = setup({ 'thaw:/fake/home': 'ENOENT' });
  assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), 0);
  backend.frozen.add('/fake');
  assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx), 1);
});

test('hooks: freeze before, thaw after; failure aborts; texts', async () => {
  const dir = tmpDir('hook');
  const log = path.join(dir, 'hook.log');
  const hook = script(path.join(dir, 'hook'), `echo "$1" >> ${log}`);
  const { ctx, backend } = setup({}, { fsfreezeHook: hook });
  await call(cmds, 'guest-fsfreeze-freeze', {}, ctx);
  assert.is(fs.readFileSync(log, 'utf8'), 'freeze\n');
  await call(cmds, 'guest-fsfreeze-thaw', {}, ctx);
  assert.is(fs.readFileSync(log, 'utf8'), 'freeze\nthaw\n');
  assert.ok(backend.calls.length > 0);

  const failing = script(path.join(dir, 'failing'), 'exit 3');
  const s2 = setup({}, { fsfreezeHook: failing });
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, s2.ctx)), 'fsfreeze hook has failed with status 3');
  assert.is(s2.backend.calls.length, 0);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, s2.ctx), 'thawed');

  const killed = script(path.join(dir, 'killed'), 'kill -9 $$');
  const s3 = setup({}, { fsfreezeHook: killed });
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, s3.ctx)), 'fsfreeze hook has terminated abnormally');

  const s4 = setup({}, { fsfreezeHook: path.join(dir, 'missing') });
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, s4.ctx)), `can't access fsfreeze hook '${path.join(dir, 'missing')}': No such file or directory`);

  fs.writeFileSync(path.join(dir, 'noexec'), '#!/bin/sh\n', { mode: 0o644 });
  const s5 = setup({}, { fsfreezeHook: path.join(dir, 'noexec') });
  // root passes access(X_OK) only when some x bit is set
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, s5.ctx)), `can't access fsfreeze hook '${path.join(dir, 'noexec')}': Permission denied`);

  // Thaw hook failing: filesystems are thawed, the error is returned.
  const thawFails = script(path.join(dir, 'thawfails'), '[ "$1" = thaw ] && exit 5; exit 0');
  const s6 = setup({}, { fsfreezeHook: thawFails });
  await call(cmds, 'guest-fsfreeze-freeze', {}, s6.ctx);
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-thaw', {}, s6.ctx)), 'fsfreeze hook has failed with status 5');
  assert.is(s6.backend.frozen.size, 0);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, s6.ctx), 'thawed');
});

test('restart: a marker without guardian thaw starts frozen and thaw works; guardian-thawed starts thawed', async () => {
  const { ctx, config, backend } = setup();
  await call(cmds, 'guest-fsfreeze-freeze', {}, ctx);
  // "restart": a new store and controller on the same state dir
  const ctx2 = makeContext(backend, config);
  ctx2.services.freeze = createFreezeController(ctx2, { guardian: false });
  await ctx2.services.freeze.recover();
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx2), 'frozen');
  assert.ok(ctx2.log.isMuted);
  assert.is(await call(cmds, 'guest-fsfreeze-thaw', {}, ctx2), 3);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx2), 'thawed');

  // qemu-ga's empty marker
  fs.writeFileSync(path.join(config.statedir, 'qga.state.isfrozen'), '');
  const ctx3 = makeContext(backend, config);
  ctx3.services.freeze = createFreezeController(ctx3, { guardian: false });
  await ctx3.services.freeze.recover();
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx3), 'frozen');
  await call(cmds, 'guest-fsfreeze-thaw', {}, ctx3);

  // a guardian-thawed marker
  fs.writeFileSync(path.join(config.statedir, 'qga.state.isfrozen'), JSON.stringify({ mountpoints: ['/fake'], since: 1, thawedByGuardian: true }));
  const ctx4 = makeContext(backend, config);
  ctx4.services.freeze = createFreezeController(ctx4, { guardian: false });
  await ctx4.services.freeze.recover();
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx4), 'thawed');
  assert.not.ok(fs.existsSync(path.join(config.statedir, 'qga.state.isfrozen')));
});

test('guardian: thaws recorded mount points (parents first) on EOF, rewrites the marker; release does nothing', async () => {
  const keepAlive = setInterval(() => {}, 1000); // the guardian is unref'd: keep the test process up
  const dir = tmpDir('guardian');
  const log = path.join(dir, 'thaw.log');
  // fake thaw tool: succeeds twice per mount point (frozen twice), then fails like FITHAW
  const tool = script(path.join(dir, 'fsfreeze'), `c=0; [ -f "${dir}/n-$(echo "$2" | tr / _)" ] && read c < "${dir}/n-$(echo "$2" | tr / _)"; c=$((c+1)); echo $c > "${dir}/n-$(echo "$2" | tr / _)"; [ $c -le 2 ] || exit 1; echo "$1 $2" >> ${log}`);
  const marker = path.join(dir, 'qga.state.isfrozen');
  fs.writeFileSync(marker, '{}');
  const g = ThawGuardian.start({ markerPath: marker, thawTool: tool })!;
  assert.ok(g.pid > 0);
  // freeze order: children first
  await g.add('/m/parent/child\\with back\nslash');
  await g.add('/m/parent');
  await g.add('/m/skipped');
  await g.drop();
  await g.setMarker(JSON.stringify({ mountpoints: ['/m/a\\b'], since: 5, thawedByGuardian: true }));
  const exited = new Promise((r) => (g as unknown as { child: NodeJS.EventEmitter }).child.once('exit', r));
  (g as unknown as { child: { stdin: { destroy(): void } } }).child.stdin.destroy(); // the agent "dies"
  await exited;
  const lines = fs.readFileSync(log, 'utf8');
  assert.is(lines, '--unfreeze /m/parent\n--unfreeze /m/parent\n--unfreeze /m/parent/child\\with back\nslash\n--unfreeze /m/parent/child\\with back\nslash\n');
  assert.equal(JSON.parse(fs.readFileSync(marker, 'utf8')), { mountpoints: ['/m/a\\b'], since: 5, thawedByGuardian: true });

  fs.rmSync(log);
  const g2 = ThawGuardian.start({ markerPath: marker, thawTool: tool })!;
  await g2.add('/m/x');
  await g2.release();
  assert.not.ok(g2.isAlive);
  assert.not.ok(fs.existsSync(log));
  clearInterval(keepAlive);
});

test('watchdog: thaws after --fsfreeze-timeout, logs loudly, status thawed', async () => {
  const { ctx, backend, logFile } = setup({}, { fsfreezeTimeout: 0.2 });
  assert.is(await call(cmds, 'guest-fsfreeze-freeze', {}, ctx), 3);
  for (let i = 0; i < 200 && ctx.state.frozen; i++) await new Promise((r) => setTimeout(r, 25));
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
  assert.is(backend.frozen.size, 0);
  ctx.log.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.match(fs.readFileSync(logFile, 'utf8'), /critical: fsfreeze timeout: no guest-fsfreeze-thaw within 0.2 s/);
});

test('SIGTERM policy: ignored while frozen, deferred exit after thaw; shutdown thaws', async () => {
  const { ctx, backend, config } = setup();
  let exits = 0;
  const c = createFreezeController(ctx, { guardian: false, onDeferredExit: () => { exits++; } });
  assert.ok(c.requestExit());
  await c.freeze();
  assert.not.ok(c.requestExit());
  await c.thaw();
  await new Promise((r) => setTimeout(r, 10));
  assert.is(exits, 1);
  await c.freeze();
  await c.shutdown();
  assert.is(backend.frozen.size, 0);
  assert.not.ok(StateStore.open(config.statedir).frozen);
});

test('fstrim: reverse order, minimum passed as u64, per-path error texts', async () => {
  const { ctx, backend } = setup({
    'trim:/fake': errnoError('EOPNOTSUPP', 'ioctl(FITRIM)', '/fake'),
    'trim:/fake/home': 'ENOENT',
    'trim:/fake/home/with space': 'EIO',
  });
  const r = await call(cmds, 'guest-fstrim', { minimum: 4096 }, ctx) as { paths: unknown[] };
  assert.equal(r.paths, [
    { path: '/fake/home/with space', error: 'failed to trim: Input/output error' },
    { path: '/fake/home', error: 'failed to open: No such file or directory' },
    { path: '/fake', error: 'trim not supported' },
  ]);
  const s2 = setup({ 'trim:/fake': 'ENOTTY' });
  const r2 = await call(cmds, 'guest-fstrim', { minimum: -1 }, s2.ctx) as { paths: unknown[] };
  assert.equal(r2.paths[2], { path: '/fake', error: 'trim not supported' });
  assert.equal(r2.paths[0], { minimum: -1, path: '/fake/home/with space', trimmed: 4096 });
  assert.is(s2.backend.calls[0].args[1], 18446744073709551615n);
  void backend;
});

test('mount list unreadable: qemu-ga error text', async () => {
  const { ctx, config } = setup();
  fs.rmSync(path.join(config.procRoot, 'self', 'mountinfo'));
  assert.is(await errorOf(call(cmds, 'guest-fstrim', {}, ctx)), `failed to open mtab file: '${config.procRoot}/self/mounts'`);
  assert.is(await errorOf(call(cmds, 'guest-fsfreeze-freeze', {}, ctx)), `failed to open mtab file: '${config.procRoot}/self/mounts'`);
  assert.is(await call(cmds, 'guest-fsfreeze-status', {}, ctx), 'thawed');
});

test.run();
