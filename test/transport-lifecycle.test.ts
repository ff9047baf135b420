/**
 * Process lifecycle around the transports: -d/--daemonize with its pid file, and systemd
 * socket activation (a listening unix socket passed as fd 3). The built agent runs as a child.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Proc, CLI, pidAlive, requireBuild, startAgentProcess, until, sleep, ptyUnavailable } from './helpers/transport-host';
import { QgaClient } from '../lib/client';

let dir = '';
const started: number[] = [];
const procs: Proc[] = [];

const daemon = suite('daemonize and pid file');
daemon.before.each(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-daemon-')); });
daemon.after.each(async () => {
  // Daemons are not our children any more: stop them by the pids they recorded.
  for (const pid of started.splice(0)) {
    if (!pidAlive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await until(`daemon ${pid} to exit`, () => !pidAlive(pid), 5000).catch(() => process.kill(pid, 'SIGKILL'));
  }
  for (const p of procs.splice(0)) await p.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function runAgent(args: string[]): Proc {
  const p = startAgentProcess(args);
  procs.push(p);
  return p;
}

daemon('-d: the parent exits 0 once the daemon serves; pid file <pid>\\n, mode 0644; removed on exit', async () => {
  const sock = path.join(dir, 'qga.sock');
  const pidfile = path.join(dir, 'qga.pid');
  const parent = runAgent(['-d', '-m', 'unix-listen', '-p', sock, '-t', dir, '-f', pidfile]);
  assert.is(await parent.exited, 0, parent.stderr);
  const text = fs.readFileSync(pidfile, 'latin1');
  assert.match(text, /^\d+\n$/);
  const pid = Number(text);
  started.push(pid);
  assert.is.not(pid, parent.pid);
  assert.ok(pidAlive(pid));
  assert.is(fs.statSync(pidfile).mode & 0o777, 0o644);
  // The daemon serves: the socket answers (it exists before the parent returns).
  const c = await QgaClient.connect(sock, { timeout: 10000 });
  assert.equal(await c.call('guest-ping'), {});
  c.close();
  // Its own session (setsid), working directory /, umask 077.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  assert.is(Number(f[3]), pid, 'session id is the daemon itself');
  assert.is(fs.readlinkSync(`/proc/${pid}/cwd`), '/');
  assert.match(fs.readFileSync(`/proc/${pid}/status`, 'latin1'), /Umask:\s+0077/);
  // The socket file follows the umask (0600 in any case for unix-listen).
  assert.is(fs.statSync(sock).mode & 0o077, 0);

  // A second daemon with the same pid file is refused while the first lives.
  const second = runAgent(['-d', '-m', 'unix-listen', '-p', path.join(dir, 'b.sock'), '-t', dir, '-f', pidfile]);
  assert.is(await second.exited, 1);
  assert.match(second.stderr, `pid file '${pidfile}' is held by running process ${pid}`);
  assert.is(fs.readFileSync(pidfile, 'latin1'), `${pid}\n`);

  process.kill(pid, 'SIGTERM');
  await until('daemon exit', () => !pidAlive(pid), 5000);
  assert.not.ok(fs.existsSync(pidfile), 'pid file left behind');
});

daemon('-d with relative paths: they are taken from where the agent was started', async () => {
  const parent = new Proc(spawn(process.execPath, [CLI, '-d', '-m', 'unix-listen', '-p', 'rel.sock', '-t', '.', '-f', 'rel.pid'], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  procs.push(parent);
  assert.is(await parent.exited, 0, parent.stderr);
  const pid = Number(fs.readFileSync(path.join(dir, 'rel.pid'), 'latin1'));
  started.push(pid);
  assert.ok(fs.existsSync(path.join(dir, 'rel.sock')));
});

daemon('a stale pid file (dead pid) is replaced; a symlink is refused; failures reach the parent\'s stderr', async () => {
  const pidfile = path.join(dir, 'stale.pid');
  fs.writeFileSync(pidfile, '999999999\n');
  const ok = runAgent(['-d', '-m', 'unix-listen', '-p', path.join(dir, 's.sock'), '-t', dir, '-f', pidfile]);
  assert.is(await ok.exited, 0, ok.stderr);
  const pid = Number(fs.readFileSync(pidfile, 'latin1'));
  started.push(pid);
  assert.is.not(pid, 999999999);

  const target = path.join(dir, 'target');
  fs.writeFileSync(target, 'keep');
  const link = path.join(dir, 'link.pid');
  fs.symlinkSync(target, link);
  const bad = runAgent(['-d', '-m', 'unix-listen', '-p', path.join(dir, 't.sock'), '-t', dir, '-f', link]);
  assert.is(await bad.exited, 1);
  assert.match(bad.stderr, `refusing to use pid file '${link}': it is a symbolic link`);
  assert.match(bad.stderr, 'the daemon stopped before it was ready (exit code 1)');
  assert.is(fs.readFileSync(target, 'latin1'), 'keep');

  // A channel that cannot open: the parent reports it and fails, and no pid file stays.
  const pf = path.join(dir, 'x.pid');
  const noDev = runAgent(['-d', '-m', 'virtio-serial', '-p', path.join(dir, 'missing'), '-t', dir, '-f', pf]);
  assert.is(await noDev.exited, 1);
  assert.match(noDev.stderr, /error opening channel '.*missing': ENOENT/);
  assert.not.ok(fs.existsSync(pf));
});

daemon('without -d no pid file is written (as qemu-ga)', async () => {
  const pidfile = path.join(dir, 'none.pid');
  const a = runAgent(['-v', '-m', 'unix-listen', '-p', path.join(dir, 'n.sock'), '-t', dir, '-f', pidfile]);
  await a.waitStderr(/listening on unix-listen/);
  await sleep(100);
  assert.not.ok(fs.existsSync(pidfile));
});

daemon.run();

// ------------------------------------------------------------------ socket activation

/** Like systemd: bind and listen, put the socket on fd 3, set LISTEN_PID to the pid that execs the agent. */
const ACTIVATOR = `
import os, socket, sys
path, nfds = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
os.environ['LISTEN_PID'] = str(os.getpid())
os.environ['LISTEN_FDS'] = nfds
os.execv(sys.argv[3], sys.argv[3:])
`;

const noPython = ptyUnavailable();
if (noPython) console.log(`  SKIPPED socket-activation tests that need an activator: ${noPython}`);

const activation = suite('socket activation');
activation.before.each(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-sdact-')); });
activation.after.each(async () => {
  for (const p of procs.splice(0)) await p.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function activated(sock: string, nfds: string, args: string[]): Proc {
  requireBuild();
  const p = new Proc(spawn('python3', ['-c', ACTIVATOR, sock, nfds, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  procs.push(p);
  return p;
}

activation('LISTEN_FDS=1: the unix socket on fd 3 is served, whatever -m says', async () => {
  if (noPython) return;
  const sock = path.join(dir, 'act.sock');
  const p = activated(sock, '1', ['-v', '-t', dir, '-m', 'virtio-serial', '-p', path.join(dir, 'no-such-device')]);
  await p.waitStderr(/listening on unix-listen:fd 3/);
  for (let i = 0; i < 2; i++) {
    const c = await QgaClient.connect(sock, { timeout: 10000 });
    assert.equal(await c.call('guest-ping'), {});
    c.close();
  }
  assert.ok(p.alive);
});

activation('LISTEN_FDS=2 is refused with qemu-ga\'s message, exit 1', async () => {
  if (noPython) return;
  const p = activated(path.join(dir, 'two.sock'), '2', ['-t', dir, '-m', 'unix-listen', '-p', path.join(dir, 'x.sock')]);
  assert.is(await p.exited, 1);
  assert.match(p.stderr, 'qemu-ga only supports listening on one socket');
});

activation('LISTEN_PID of another process: no activation, -m/-p are used', async () => {
  requireBuild();
  const sock = path.join(dir, 'own.sock');
  const p = startAgentProcess(['-v', '-t', dir, '-m', 'unix-listen', '-p', sock], { LISTEN_PID: '1', LISTEN_FDS: '1' });
  procs.push(p);
  await p.waitStderr(/listening on unix-listen:/);
  const c = await QgaClient.connect(sock, { timeout: 10000 });
  assert.equal(await c.call('guest-ping'), {});
  c.close();
});

activation.run();
