/**
 * The claims of docs/SECURITY.md that a test can check: the socket's mode, the state and pid
 * files never written through a planted symlink, the password never in the (verbose) log, and
 * the block list not bypassed by case, whitespace or look-alike names.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgent, tempDir, makeBackend, availableBackends } from './helpers/agent';
import { writePidFile, removePidFile } from '../lib/daemon';
import { Agent } from '../lib/agent';
import { Logger } from '../lib/log';
import { defaultConfig, type AgentConfig } from '../lib/config-types';
import { UnixListenChannel } from '../lib/transport/unix';
import { QgaClient } from '../lib/client';

const test = suite('security');

test('the unix socket is created 0600 even under a permissive umask', async () => {
  const old = process.umask(0);
  let a;
  try { a = await startAgent('fallback'); } finally { process.umask(old); }
  try {
    assert.is(fs.statSync(a.sock).mode & 0o777, 0o600);
  } finally { await a.stop(); fs.rmSync(a.dir, { recursive: true, force: true }); }
});

test('the state file is replaced, not written through, when another user planted a symlink', async () => {
  const a = await startAgent('fallback');
  const victim = path.join(a.dir, 'victim');
  const victimTmp = path.join(a.dir, 'victim-tmp');
  fs.writeFileSync(victim, 'precious\n');
  fs.writeFileSync(victimTmp, 'precious too\n');
  const statePath = path.join(a.dir, 'qga.state');
  fs.rmSync(statePath, { force: true });
  fs.symlinkSync(victim, statePath);
  // The temp name is predictable (<file>.<pid>.tmp): plant that too.
  fs.symlinkSync(victimTmp, `${statePath}.${process.pid}.tmp`);
  const c = await a.connect();
  try {
    const handle = await c.call('guest-file-open', { path: path.join(a.dir, 'x'), mode: 'w' });
    assert.type(handle, 'number');
    assert.is(fs.readFileSync(victim, 'utf8'), 'precious\n');
    assert.is(fs.readFileSync(victimTmp, 'utf8'), 'precious too\n');
    assert.ok(fs.lstatSync(statePath).isFile(), 'qga.state is now a regular file');
    assert.is(fs.statSync(statePath).mode & 0o777, 0o600);
  } finally { c.close(); await a.stop(); fs.rmSync(a.dir, { recursive: true, force: true }); }
});

test('the pid file is never written through a symlink (dangling or not)', () => {
  const dir = tempDir();
  try {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    const pidfile = path.join(dir, 'qga.pid');
    fs.symlinkSync(victim, pidfile);
    assert.throws(() => writePidFile(pidfile), /symbolic link/);
    assert.is(fs.readFileSync(victim, 'utf8'), 'precious\n');
    fs.rmSync(pidfile);
    fs.symlinkSync(path.join(dir, 'does-not-exist'), pidfile);
    assert.throws(() => writePidFile(pidfile), /symbolic link/);
    assert.not.ok(fs.existsSync(path.join(dir, 'does-not-exist')));
    fs.rmSync(pidfile);
    writePidFile(pidfile);
    assert.is(fs.readFileSync(pidfile, 'utf8'), `${process.pid}\n`);
    assert.is(fs.statSync(pidfile).mode & 0o022, 0, 'not writable by group or others');
    removePidFile();
    assert.not.ok(fs.existsSync(pidfile));
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

// BUG (reported to the lead, see docs/SECURITY.md "Known gaps"): lib/log.ts opens the log file
// with flags 'a', which follows a symlink planted at the log path. Un-skip once it opens with
// O_NOFOLLOW.
test('the log file is not opened through a planted symlink', async () => {
  const dir = tempDir();
  try {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    const logfile = path.join(dir, 'qga.log');
    fs.symlinkSync(victim, logfile);
    const log = new Logger(false, logfile);
    log.error('hello');
    log.close();
    await new Promise((r) => setTimeout(r, 200)); // the stream writes asynchronously
    assert.is(fs.readFileSync(victim, 'utf8'), 'precious\n');
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('guest-set-user-password: the password and its base64 never reach the verbose log', async () => {
  if (!availableBackends().includes('native')) {
    console.log('  SKIP password log check: needs the native backend (the fallback needs chpasswd and a chroot)');
    return;
  }
  const dir = tempDir();
  const shadow = path.join(dir, 'shadow');
  fs.writeFileSync(shadow, 'root:*:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n');
  fs.chmodSync(shadow, 0o640);
  const logfile = path.join(dir, 'agent.log');
  const config: AgentConfig = { ...defaultConfig(), method: 'unix-listen', statedir: dir, path: path.join(dir, 'sock'), shadowFile: shadow, verbose: true };
  const log = new Logger(true, logfile);
  const agent = new Agent({ config, backend: makeBackend('native', config), channel: new UnixListenChannel(config.path!), log });
  await agent.start();
  const secret = 'Corr3ct-Horse-Battery-Staple';
  const b64 = Buffer.from(secret).toString('base64');
  const c = await QgaClient.connect(config.path!, { timeout: 20000 });
  try {
    await c.call('guest-set-user-password', { username: 'bob', password: b64, crypted: false });
    // A failing call too (unknown user): the error path must not leak it either.
    await c.call('guest-set-user-password', { username: 'nobody-here', password: b64, crypted: false }).catch(() => undefined);
    await c.call('guest-set-user-password', { username: 'bob', password: Buffer.from('$6$salt$hash').toString('base64'), crypted: true });
  } finally { c.close(); await agent.stop(); log.close(); }
  await new Promise((r) => setTimeout(r, 100));
  const text = fs.readFileSync(logfile, 'utf8');
  assert.ok(text.includes('guest-set-user-password'), 'verbose log has the command');
  for (const needle of [secret, b64, '$6$salt$hash']) assert.not.ok(text.includes(needle), `log contains ${needle}`);
  assert.ok(fs.readFileSync(shadow, 'utf8').includes('bob:$6$salt$hash:'));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the block list is not bypassed by case, whitespace, underscores or a trailing NUL', async () => {
  const a = await startAgent('fallback', { blockRpcs: [' guest-get-time '], allowRpcs: undefined });
  const c = await a.connect();
  try {
    const err = async (name: string) => c.call(name).then(() => 'no error', (e: Error) => e.message);
    assert.match(await err('guest-get-time'), /Command guest-get-time has been disabled/);
    for (const alias of ['GUEST-GET-TIME', 'Guest-Get-Time', ' guest-get-time', 'guest-get-time ', 'guest_get_time', 'guest-get-time\u0000', 'guest-get-time\n']) {
      assert.match(await err(alias), /has not been found/, JSON.stringify(alias));
    }
  } finally { c.close(); await a.stop(); fs.rmSync(a.dir, { recursive: true, force: true }); }
});

test('an allow list admits only the exact names', async () => {
  const a = await startAgent('fallback', { allowRpcs: ['guest-ping', 'guest-sync'] });
  // No sync on connect: guest-sync-delimited is outside the allow list.
  const c = await a.connect({ sync: false });
  try {
    assert.equal(await c.call('guest-ping'), {});
    const err = await c.call('guest-get-time').then(() => 'no error', (e: Error) => e.message);
    assert.match(err, /has been disabled/);
  } finally { c.close(); await a.stop(); fs.rmSync(a.dir, { recursive: true, force: true }); }
});

test.run();
