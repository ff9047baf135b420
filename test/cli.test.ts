/** The node-qga command line and config file, run as a real process (dist/cli.js). */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { tempDir } from './helpers/agent';
import { parseKeyFile } from '../lib/config';
import { QgaClient } from '../lib/client';

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 20000 });

const cli = suite('command line');

cli('-V prints the version and exits 0', () => {
  const r = run(['-V']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /^QEMU Guest Agent \d+\.\d+\.\d+ \(node-qga\)\n$/);
});

cli('test-qga /qga/config: -D with only QGA_CONF set dumps the fixture', () => {
  const dir = tempDir();
  const conf = path.join(dir, 'test-qga-config');
  fs.writeFileSync(conf, '[general]\ndaemon=false\nmethod=virtio-serial\npath=/path/to/org.qemu.guest_agent.0\npidfile=/var/foo/qemu-ga.pid\nstatedir=/var/state\nverbose=true\nblock-rpcs=guest-ping;guest-get-time\n');
  const r = run(['-D'], { QGA_CONF: conf });
  assert.is(r.stderr, '');
  assert.is(r.status, 0);
  const kv = parseKeyFile(r.stdout);
  assert.is(r.stdout.split('\n')[0], '[general]');
  assert.is(kv.get('daemon'), 'false');
  assert.is(kv.get('method'), 'virtio-serial');
  assert.is(kv.get('path'), '/path/to/org.qemu.guest_agent.0');
  assert.is(kv.get('pidfile'), '/var/foo/qemu-ga.pid');
  assert.is(kv.get('statedir'), '/var/state');
  assert.is(kv.get('verbose'), 'true');
  assert.equal(kv.get('block-rpcs')!.split(';'), ['guest-ping', 'guest-get-time']);
});

cli('-D: defaults, command line over the file, rpc lists joined and dumped in reverse order', () => {
  const r = run(['-D', '-b', 'guest-ping,guest-info', '-m', 'unix-listen', '-p', '/tmp/x.sock', '-F'], { QGA_CONF: '/nonexistent' });
  assert.is(r.status, 0);
  assert.is(r.stdout, [
    '[general]', 'daemon=false', 'method=unix-listen', 'path=/tmp/x.sock', 'pidfile=/var/run/qemu-ga.pid',
    'fsfreeze-hook=/etc/qemu/fsfreeze-hook', 'statedir=/var/run', 'verbose=false', 'retry-path=false',
    'block-rpcs=guest-info,guest-ping', ''].join('\n'));
  const d = run(['-D'], { QGA_CONF: '/nonexistent' });
  assert.match(d.stdout, /\npath=\/dev\/virtio-ports\/org\.qemu\.guest_agent\.0\n/);
});

cli('bad input fails fast with a usage message and a non-zero exit', () => {
  for (const args of [['--bogus'], ['-Z'], ['-m', 'carrier-pigeon'], ['-m'], ['--backend', 'fast'], ['--fsfreeze-timeout', '-3'], ['stray']]) {
    const r = run(args, { QGA_CONF: '/nonexistent' });
    assert.is(r.status, 1, args.join(' '));
    assert.match(r.stderr, /Try 'node-qga --help'/);
  }
  const missing = run(['-c', '/nonexistent/qga.conf']);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /error loading configuration from path: \/nonexistent\/qga.conf/);
  const nopath = run(['-m', 'unix-listen', '-t', tempDir()], { QGA_CONF: '/nonexistent' });
  assert.is(nopath.status, 1);
  assert.match(nopath.stderr, /must specify a path for this channel/);
  const nostate = run(['-m', 'unix-listen', '-p', '/tmp/never.sock', '-t', '/nonexistent-state'], { QGA_CONF: '/nonexistent' });
  assert.is(nostate.status, 1);
  assert.match(nostate.stderr, /failed to load persistent state/);
});

cli('-b help lists the commands in registration order', () => {
  const r = run(['-b', 'help'], { QGA_CONF: '/nonexistent' });
  assert.is(r.status, 0);
  const names = r.stdout.trim().split('\n');
  assert.is(names[0], 'guest-sync-delimited');
  assert.ok(names.includes('guest-file-read') && names.includes('guest-fsfreeze-thaw'));
});

cli('the agent process: serves, honours -b from the config file and NODE_QGA_BACKEND, exits 0 on SIGTERM', async () => {
  const dir = tempDir();
  const conf = path.join(dir, 'qga.conf');
  fs.writeFileSync(conf, `[general]\nmethod=unix-listen\npath=${dir}/sock\nstatedir=${dir}\nblock-rpcs=guest-get-time\n`);
  const child = spawn(process.execPath, [CLI, '-c', conf], { env: { PATH: process.env.PATH, NODE_QGA_BACKEND: 'fallback' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'sock')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(fs.statSync(path.join(dir, 'sock')).mode & 0o777, 0o600, 'the socket is for root only');
  const c = await QgaClient.connect(path.join(dir, 'sock'));
  const info = await c.call('guest-info');
  assert.match(info.version, /\+fallback$/);
  try { await c.call('guest-get-time'); assert.unreachable(); } catch (e) { assert.is((e as Error & { desc: string }).desc, 'Command guest-get-time has been disabled'); }
  c.close();
  child.kill('SIGTERM');
  assert.is(await exited, 0, stderr);
});

cli.run();

const hup = suite('log file');
hup('SIGHUP reopens the log file (logrotate), the old one keeps what came before', async () => {
  const dir = tempDir();
  const log = path.join(dir, 'agent.log');
  const child = spawn(process.execPath, [CLI, '-m', 'unix-listen', '-p', path.join(dir, 'sock'), '-t', dir, '-l', log, '-v'], { env: { PATH: process.env.PATH, QGA_CONF: '/nonexistent' }, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'sock')); i++) await new Promise((r) => setTimeout(r, 50));
  fs.renameSync(log, `${log}.1`);
  child.kill('SIGHUP');
  for (let i = 0; i < 100 && !fs.existsSync(log); i++) await new Promise((r) => setTimeout(r, 20));
  const c = await QgaClient.connect(path.join(dir, 'sock'));
  await c.call('guest-ping');
  c.close();
  child.kill('SIGTERM');
  assert.is(await exited, 0);
  assert.match(fs.readFileSync(`${log}.1`, 'utf8'), /listening on unix-listen/);
  const fresh = fs.readFileSync(log, 'utf8');
  assert.match(fresh, /SIGHUP: log file reopened/);
  assert.match(fresh, /guest-ping called/);
  assert.not.match(fresh, /listening on/);
});
hup.run();
