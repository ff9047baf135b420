/**
 * guest-set-time, guest-set-user-password, guest-shutdown and guest-suspend-*: argument rules
 * and texts on a mock backend, the fallback against fake tools on a search path the test owns
 * (never the real date/hwclock/shutdown/systemctl), chpasswd -R and the native shadow rewrite
 * on a fixture root. The host clock, passwords and power state are never touched.
 */
process.env.TZ = 'UTC'; // qemu-ga's year check uses local time
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { timeCommands, validateTime } from '../lib/commands/time';
import { passwordCommands, decodeQgaBase64 } from '../lib/commands/password';
import { shutdownCommands, suspendCommands } from '../lib/commands/power';
import { call, errorOf, fallbackBackend, makeContext, mockBackend, nativeBackend, script, testConfig, tmpDir } from './fixtures/system-env';
import type { SystemBackend } from '../lib/backend/types';

const cmds = [...timeCommands, ...passwordCommands, ...shutdownCommands, ...suspendCommands];

function mockCtx(fail: Record<string, string | Error> = {}, over: Record<string, unknown> = {}) {
  const dir = tmpDir('sys');
  const backend = mockBackend(fail);
  const ctx = makeContext(backend, testConfig({ statedir: dir, ...over }));
  return { dir, backend, ctx };
}

/** A directory of fake tools that log "<name> <args>" to <dir>/calls. */
function fakeTools(names: Record<string, string>) {
  const dir = tmpDir('tools');
  const log = path.join(dir, 'calls');
  for (const [name, body] of Object.entries(names)) script(path.join(dir, name), `echo "${name} $*" >> ${log}\n${body}`);
  return { dir, log, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.trimEnd()) : []) };
}

// ---------------------------------------------------------------- set-time

test('set-time: range checks before touching anything', async () => {
  const { ctx, backend } = mockCtx();
  const Y2070 = 3155760000n * 1_000_000_000n;
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: Y2070 }, ctx)), 'Invalid time');
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: -1_000_000_001 }, ctx)), 'Invalid time');
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: (1n << 63n) - 1n }, ctx)), 'Invalid time');
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: -(1n << 63n) }, ctx)), 'Invalid time');
  assert.is(backend.calls.length, 0);
  assert.is(validateTime(Y2070 - 1n), null);
  assert.is(validateTime(0n), null);
  assert.is(validateTime(-1n), null); // C truncation: 0 s, as qemu-ga computes it
});

test('set-time: system clock then RTC; without time RTC → system', async () => {
  const { ctx, backend } = mockCtx();
  assert.equal(await call(cmds, 'guest-set-time', { time: 1_700_000_000_123_456_789n }, ctx), {});
  assert.equal(backend.calls.map((c) => c.op), ['setSystemTime', 'systemTimeToRtc']);
  assert.is(backend.calls[0].args[0], 1_700_000_000_123_456_789n);
  backend.calls.length = 0;
  assert.equal(await call(cmds, 'guest-set-time', {}, ctx), {});
  assert.equal(backend.calls.map((c) => c.op), ['rtcToSystemTime']);
});

test('set-time: backend errors become qemu-ga texts', async () => {
  const { ctx } = mockCtx({ setSystemTime: 'EPERM' });
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: 1_700_000_000_000_000_000 }, ctx)), 'Failed to set time to guest: Operation not permitted');
  const s2 = mockCtx({ rtcToSystemTime: 'EBUSY' });
  assert.is(await errorOf(call(cmds, 'guest-set-time', {}, s2.ctx)), 'failed to set hardware clock to system time: Device or resource busy');
});

test('set-time fallback: date -u -s @S.N then hwclock --systohc; hwclock --hctosys; missing tool named', async () => {
  const tools = fakeTools({ date: 'exit 0', hwclock: 'exit 0' });
  const config = testConfig({});
  const { ctx } = mockCtx();
  ctx.backend = fallbackBackend(config, { searchPath: [tools.dir] });
  await call(cmds, 'guest-set-time', { time: 1_700_000_000_000_000_123n }, ctx);
  await call(cmds, 'guest-set-time', {}, ctx);
  assert.equal(tools.calls(), ['date -u -s @1700000000.000000123', 'hwclock --systohc', 'hwclock --hctosys']);

  const failing = fakeTools({ date: 'echo "date: cannot set date: Operation not permitted" >&2; exit 1', hwclock: 'echo "hwclock: ioctl failed" >&2; exit 1' });
  ctx.backend = fallbackBackend(config, { searchPath: [failing.dir] });
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: 1_700_000_000_000_000_000 }, ctx)), 'Failed to set time to guest: Operation not permitted');
  assert.is(await errorOf(call(cmds, 'guest-set-time', {}, ctx)), 'child process has failed to set hardware clock to system time: hwclock: ioctl failed\n');

  const noHwclock = fakeTools({ date: 'exit 0' });
  ctx.backend = fallbackBackend(config, { searchPath: [noHwclock.dir] });
  assert.is(await errorOf(call(cmds, 'guest-set-time', { time: 1_700_000_000_000_000_000 }, ctx)),
    "child process has failed to set hardware clock to system time: failed to exec 'hwclock': No such file or directory");
  assert.equal(noHwclock.calls(), []); // the clock was not touched
});

// ---------------------------------------------------------------- set-user-password

test('password: qemu-ga base64 rules', () => {
  assert.is(decodeQgaBase64('aGVsbG8=').toString(), 'hello');
  assert.is(decodeQgaBase64('aGVs\nbG8=\n').toString(), 'hello');
  assert.is(decodeQgaBase64('aGVsbG8').toString(), 'hel'); // partial group dropped
  assert.is(decodeQgaBase64('aGVsbG8=\0!!').toString(), 'hello'); // C string
  assert.throws(() => decodeQgaBase64('aGVs bG8='), /Base64 data contains invalid characters/);
  assert.throws(() => decodeQgaBase64('!!!!'), /Base64 data contains invalid characters/);
});

test('password: forbidden characters and NUL cut, then the backend', async () => {
  const { ctx, backend } = mockCtx();
  const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'root', password: b64('a\nb'), crypted: false }, ctx)), 'forbidden characters in raw password');
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'ro:ot', password: b64('x'), crypted: false }, ctx)), 'forbidden characters in username');
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'ro\not', password: b64('x'), crypted: false }, ctx)), 'forbidden characters in username');
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'root', password: 'a b', crypted: false }, ctx)), 'Base64 data contains invalid characters');
  // the raw-password check comes first, as in qemu-ga
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'a:b', password: b64('a\n'), crypted: false }, ctx)), 'forbidden characters in raw password');
  assert.is(backend.calls.length, 0);
  const utf8 = (x: string) => Buffer.from(x, 'utf8').toString('base64');
  assert.equal(await call(cmds, 'guest-set-user-password', { username: 'alice', password: utf8('sécret\0tail'), crypted: false }, ctx), {});
  assert.equal(backend.calls[0].args, ['alice', 'sécret', false]);
  // bytes that are not UTF-8 could not reach the backends unchanged: refused
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'alice', password: b64('s\xe9cret'), crypted: false }, ctx)), 'forbidden characters in raw password');
});

function fixtureRoot(): { root: string; shadow: string } {
  const root = tmpDir('root');
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nalice:x:1000:\n');
  fs.writeFileSync(path.join(root, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n', { mode: 0o640 });
  return { root, shadow: path.join(root, 'etc', 'shadow') };
}

function hashOf(shadow: string, user: string): string {
  return fs.readFileSync(shadow, 'utf8').split('\n').find((l) => l.startsWith(user + ':'))!.split(':')[1];
}

function cryptMatches(password: string, hash: string): boolean {
  return execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? "yes" : "no"', password, hash], { encoding: 'utf8' }) === 'yes';
}

for (const kind of ['fallback', 'native'] as const) {
  test(`password [${kind}]: clear text hashed, crypted stored as given, unknown user refused, other lines intact`, async () => {
    const { shadow } = fixtureRoot();
    const config = testConfig({ shadowFile: shadow, passwdFile: path.join(path.dirname(shadow), 'passwd') });
    let backend: SystemBackend;
    if (kind === 'native') {
      const b = nativeBackend(config);
      if (typeof b === 'string') { console.log(`SKIP password [native]: ${b}`); return; }
      backend = b;
    } else {
      if (!fs.existsSync('/usr/sbin/chpasswd')) { console.log('SKIP password [fallback]: chpasswd not installed'); return; }
      backend = fallbackBackend(config);
    }
    const { ctx } = mockCtx();
    ctx.backend = backend;
    ctx.config = config;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    assert.equal(await call(cmds, 'guest-set-user-password', { username: 'alice', password: b64('s3cret pässword'), crypted: false }, ctx), {});
    const h = hashOf(shadow, 'alice');
    assert.match(h, /^\$(y|6|gy|7|2b)\$/);
    assert.ok(cryptMatches('s3cret pässword', h), 'hash verifies with crypt(3)');
    assert.not.ok(cryptMatches('wrong', h));
    const given = '$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopq';
    assert.equal(await call(cmds, 'guest-set-user-password', { username: 'alice', password: b64(given), crypted: true }, ctx), {});
    assert.is(hashOf(shadow, 'alice'), given);
    assert.is(hashOf(shadow, 'root'), '*');
    const before = fs.readFileSync(shadow, 'utf8');
    const err = await errorOf(call(cmds, 'guest-set-user-password', { username: 'bob', password: b64('x'), crypted: false }, ctx));
    assert.match(err, /bob/);
    assert.is(fs.readFileSync(shadow, 'utf8'), before);
    assert.is(fs.statSync(shadow).mode & 0o777, 0o640);
  });
}

test('password fallback: refuses a shadow file that is neither /etc/shadow nor <root>/etc/shadow', async () => {
  const dir = tmpDir('pw');
  const { ctx } = mockCtx();
  ctx.backend = fallbackBackend(testConfig({ shadowFile: path.join(dir, 'shadow') }));
  assert.match(await errorOf(call(cmds, 'guest-set-user-password', { username: 'alice', password: 'eA==', crypted: false }, ctx)), /cannot set user password: chpasswd can only edit/);
  const none = fakeTools({});
  ctx.backend = fallbackBackend(testConfig({}), { searchPath: [none.dir] });
  assert.is(await errorOf(call(cmds, 'guest-set-user-password', { username: 'alice', password: 'eA==', crypted: false }, ctx)), "cannot find 'passwd' program in PATH");
});

// ---------------------------------------------------------------- shutdown

test('shutdown: modes, default powerdown, invalid mode text, no reply', async () => {
  const { ctx, backend } = mockCtx();
  assert.is(await call(cmds, 'guest-shutdown', {}, ctx), undefined);
  assert.is(await call(cmds, 'guest-shutdown', { mode: 'halt' }, ctx), undefined);
  assert.is(await call(cmds, 'guest-shutdown', { mode: 'reboot' }, ctx), undefined);
  assert.equal(backend.calls.map((c) => c.args[0]), ['powerdown', 'halt', 'reboot']);
  assert.is(await errorOf(call(cmds, 'guest-shutdown', { mode: 'sleep' }, ctx)), 'mode is invalid (valid values are: halt|powerdown|reboot');
  assert.is(backend.calls.length, 3);
  assert.is(shutdownCommands[0].successResponse, false);
});

test('shutdown fallback (fake tools): shutdown -h -P/-H/-r +0; busybox poweroff/halt/reboot; none → named', async () => {
  const { ctx } = mockCtx();
  const sd = fakeTools({ shutdown: 'exit 0' });
  ctx.backend = fallbackBackend(testConfig({}), { searchPath: [sd.dir] });
  for (const mode of ['powerdown', 'halt', 'reboot']) await call(cmds, 'guest-shutdown', { mode }, ctx);
  assert.equal(sd.calls(), ['shutdown -h -P +0 hypervisor initiated shutdown', 'shutdown -h -H +0 hypervisor initiated shutdown', 'shutdown -h -r +0 hypervisor initiated shutdown']);
  const bb = fakeTools({ poweroff: 'exit 0', halt: 'exit 0', reboot: 'exit 0' });
  ctx.backend = fallbackBackend(testConfig({}), { searchPath: [bb.dir] });
  for (const mode of ['powerdown', 'halt', 'reboot']) await call(cmds, 'guest-shutdown', { mode }, ctx);
  assert.equal(bb.calls(), ['poweroff', 'halt', 'reboot']);
  const failing = fakeTools({ shutdown: 'echo "Failed to talk to init daemon." >&2; exit 1' });
  ctx.backend = fallbackBackend(testConfig({}), { searchPath: [failing.dir] });
  assert.is(await errorOf(call(cmds, 'guest-shutdown', {}, ctx)), 'child process has failed to shutdown: Failed to talk to init daemon.\n');
  const none = fakeTools({});
  ctx.backend = fallbackBackend(testConfig({}), { searchPath: [none.dir] });
  assert.is(await errorOf(call(cmds, 'guest-shutdown', {}, ctx)), "child process has failed to shutdown: failed to exec '/sbin/shutdown': No such file or directory");
});

// ---------------------------------------------------------------- suspend

/** Run a suspend command with only `tools` on $PATH and a fixture sysfs. */
async function suspend(mode: string, tools: Record<string, string>, powerState: string | null) {
  const t = fakeTools(tools);
  const sysfs = tmpDir('sysfs');
  fs.mkdirSync(path.join(sysfs, 'power'));
  const stateFile = path.join(sysfs, 'power', 'state');
  if (powerState !== null) fs.writeFileSync(stateFile, powerState);
  const { ctx } = mockCtx({}, { sysfsRoot: sysfs });
  const savedPath = process.env.PATH;
  process.env.PATH = t.dir; // nothing real can be found
  try {
    let error: string | null = null;
    let result: unknown;
    try { result = await call(cmds, `guest-suspend-${mode}`, {}, ctx); } catch (e) { error = (e as { desc: string }).desc; }
    return { error, result, calls: t.calls(), state: powerState === null ? null : fs.readFileSync(stateFile, 'utf8') };
  } finally {
    process.env.PATH = savedPath;
  }
}

const status = (code: number) => `[ "$1" = status ] && exit ${code}; exit 0`;

test('suspend: systemd first (status 1-3 = supported)', async () => {
  const r = await suspend('ram', { systemctl: status(3), 'pm-is-supported': 'exit 0' }, 'freeze mem disk\n');
  assert.equal(r, { error: null, result: undefined, calls: ['systemctl status systemd-suspend', 'systemctl suspend'], state: 'freeze mem disk\n' });
  const d = await suspend('disk', { systemctl: status(1) }, null);
  assert.equal(d.calls, ['systemctl status systemd-hibernate', 'systemctl hibernate']);
  const h = await suspend('hybrid', { systemctl: status(2) }, null);
  assert.equal(h.calls, ['systemctl status systemd-hybrid-sleep', 'systemctl hybrid-sleep']);
});

test('suspend: systemd status 4 → pm-utils', async () => {
  const r = await suspend('disk', { systemctl: status(4), 'pm-is-supported': 'exit 0', 'pm-hibernate': 'exit 0' }, 'mem disk');
  assert.equal(r.calls, ['systemctl status systemd-hibernate', 'pm-is-supported --hibernate', 'pm-hibernate']);
  assert.is(r.error, null);
  assert.is(r.state, 'mem disk');
  const h = await suspend('hybrid', { 'pm-is-supported': 'exit 0', 'pm-suspend-hybrid': 'exit 0' }, null);
  assert.equal(h.calls, ['pm-is-supported --suspend-hybrid', 'pm-suspend-hybrid']);
});

test('suspend: no helpers → sysfs write; unsupported texts; qemu-ga quirks', async () => {
  const ram = await suspend('ram', {}, 'freeze mem disk\n');
  assert.is(ram.error, null);
  assert.is(ram.state, 'mem');
  const disk = await suspend('disk', {}, 'freeze mem disk\n');
  assert.is(disk.state, 'disk');
  assert.is((await suspend('disk', {}, 'freeze mem\n')).error, 'the requested suspend mode is not supported by the guest');
  assert.is((await suspend('ram', { 'pm-is-supported': 'exit 1' }, null)).error, 'the requested suspend mode is not supported by the guest');
  assert.is((await suspend('hybrid', {}, 'mem disk')).error, 'the requested suspend mode is not supported by the guest');
  // a helper claimed support but failed: hybrid → "unknown guest suspend mode"; disk/ram → nothing at all
  assert.is((await suspend('hybrid', { systemctl: '[ "$1" = status ] && exit 3; exit 1' }, null)).error, 'unknown guest suspend mode');
  const quirk = await suspend('disk', { systemctl: '[ "$1" = status ] && exit 3; exit 1' }, 'mem');
  assert.equal([quirk.error, quirk.result], [null, undefined]);
  // the action failed but sysfs supports the mode: sysfs is used
  const viaSysfs = await suspend('ram', { systemctl: '[ "$1" = status ] && exit 3; exit 1' }, 'mem');
  assert.is(viaSysfs.state, 'mem');
  assert.equal(viaSysfs.calls, ['systemctl status systemd-suspend', 'systemctl suspend']);
  for (const c of suspendCommands) assert.is(c.successResponse, false);
});

test('suspend: sysfs write error text', async () => {
  const sysfs = tmpDir('sysfs-ro');
  fs.mkdirSync(path.join(sysfs, 'power', 'state'), { recursive: true }); // a directory: readable? no → unsupported
  const t = fakeTools({});
  const { ctx } = mockCtx({}, { sysfsRoot: sysfs });
  const saved = process.env.PATH;
  process.env.PATH = t.dir;
  try {
    assert.is(await errorOf(call(cmds, 'guest-suspend-ram', {}, ctx)), 'the requested suspend mode is not supported by the guest');
  } finally { process.env.PATH = saved; }
});

test.run();
