/**
 * Process lifecycle around the agent: -d/--daemonize, the pid file, systemd socket activation.
 *
 * Node cannot fork, so daemonizing re-runs this same command as a detached child (its own
 * session, stdio on /dev/null) and the parent exits 0 when the child says it is serving, or
 * with the child's status (and its start-up messages on the parent's stderr) when it is not.
 * The child takes qemu-ga's daemon traits: umask 077, working directory /, and the pid file,
 * which qemu-ga only writes when daemonizing (so does node-qga).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childProcess } from './platform/lazy-builtins';
import type { AgentConfig } from './config-types';

/** Marks the re-spawned child; removed from its environment so commands it runs don't inherit it. */
export const DAEMON_CHILD_ENV = 'NODE_QGA_DAEMON_CHILD';

type DaemonMessage = { type: 'log'; text: string } | { type: 'ready' };

let childMode = false;
let pendingSends = 0;
let sendsSettled: Array<() => void> = [];
let restoreStderr: (() => void) | undefined;

export function isDaemonChild(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[DAEMON_CHILD_ENV] === '1' && typeof process.send === 'function';
}

/** Parent side: starts the daemon and resolves with the exit code the parent should have. */
export function spawnDaemon(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const child = childProcess().spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    detached: true, // setsid(): no controlling terminal, not killed with the caller's session
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  return new Promise((resolve) => {
    let settled = false;
    const finish = (code: number) => { if (!settled) { settled = true; resolve(code); } };
    child.on('message', (m: DaemonMessage) => {
      if (m.type === 'log') process.stderr.write(m.text);
      else if (m.type === 'ready') {
        child.removeAllListeners('exit');
        if (child.connected) child.disconnect();
        child.unref();
        finish(0);
      }
    });
    child.on('exit', (code, signal) => {
      process.stderr.write(`node-qga: the daemon stopped before it was ready (${signal ? `signal ${signal}` : `exit code ${code}`})\n`);
      finish(code || 1);
    });
    child.on('error', (e) => {
      process.stderr.write(`node-qga: cannot start the daemon: ${e.message}\n`);
      finish(1);
    });
  });
}

/** Paths the agent uses, made absolute before the daemon leaves its starting directory. */
function absolutizePaths(config: AgentConfig, cwd: string): void {
  const abs = (p: string | undefined) => (p === undefined || p === '' ? p : path.resolve(cwd, p));
  if (config.method !== 'vsock-listen') config.path = abs(config.path);
  config.logfile = abs(config.logfile);
  config.pidfile = abs(config.pidfile)!;
  config.statedir = abs(config.statedir)!;
  config.fsfreezeHook = abs(config.fsfreezeHook);
  config.sysfsRoot = abs(config.sysfsRoot)!;
  config.procRoot = abs(config.procRoot)!;
  config.devRoot = abs(config.devRoot)!;
  config.shadowFile = abs(config.shadowFile)!;
  config.passwdFile = abs(config.passwdFile)!;
}

function send(msg: DaemonMessage): void {
  if (!process.connected || !process.send) return;
  pendingSends++;
  try {
    process.send(msg, undefined, {}, () => {
      if (--pendingSends === 0) { const w = sendsSettled; sendsSettled = []; for (const f of w) f(); }
    });
  } catch {
    pendingSends--;
  }
}

/**
 * Child side, before anything opens a file: daemon traits (umask 077, cwd /), and start-up
 * messages on stderr (which is /dev/null) copied to the parent so a failed start is explained.
 */
export function prepareDaemonChild(config: AgentConfig): void {
  childMode = true;
  delete process.env[DAEMON_CHILD_ENV];
  absolutizePaths(config, process.cwd());
  process.umask(0o077);
  process.chdir('/');
  const stderr = process.stderr as NodeJS.WriteStream & { write: (...a: unknown[]) => boolean };
  const original = stderr.write;
  stderr.write = function (this: unknown, ...args: unknown[]): boolean {
    const chunk = args[0];
    send({ type: 'log', text: Buffer.isBuffer(chunk) ? chunk.toString() : String(chunk) });
    return original.apply(stderr, args);
  };
  restoreStderr = () => { stderr.write = original; };
}

/** Child side: the agent serves; the parent may exit 0. */
export function daemonReady(): void {
  if (!childMode) return;
  restoreStderr?.();
  restoreStderr = undefined;
  send({ type: 'ready' });
  void whenDaemonMessagesSent().then(() => { if (process.connected) process.disconnect(); });
}

/** Resolves once the messages to the parent are handed over (call before process.exit). */
export function whenDaemonMessagesSent(): Promise<void> {
  if (pendingSends === 0) return Promise.resolve();
  return new Promise((resolve) => sendsSettled.push(resolve));
}

// ---------------------------------------------------------------- pid file

let pidFileOwned: string | undefined;

/** The pid recorded in `file` when that process is alive and looks like a guest agent. */
function livePidIn(file: string): number | undefined {
  let text: string;
  try { text = fs.readFileSync(file, 'latin1'); } catch { return undefined; }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  // A recycled pid of some unrelated program does not hold the file.
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    const script = process.argv[1] ?? '';
    if (!/qga|qemu-ga/.test(cmdline) && !(script && cmdline.includes(script))) return undefined;
  } catch { /* no /proc: trust the signal check */ }
  return pid;
}

/**
 * Writes `<pid>\n` (mode 0644) to `file`, never through a symbolic link, and fails while
 * another live agent holds it. The file is removed when this process exits.
 */
export function writePidFile(file: string): void {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      // O_EXCL: creating never follows a link; two agents starting together cannot both win.
      fd = fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== 'EEXIST' || attempt >= 3) throw new Error(`failed to create pid file '${file}': ${err.message}`);
      const st = fs.lstatSync(file, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) throw new Error(`refusing to use pid file '${file}': it is a symbolic link`);
      if (st && !st.isFile()) throw new Error(`refusing to use pid file '${file}': not a regular file`);
      const holder = livePidIn(file);
      if (holder !== undefined) throw new Error(`pid file '${file}' is held by running process ${holder}`);
      try { fs.unlinkSync(file); } catch { /* raced with someone else: try again */ }
      continue;
    }
    try {
      fs.fchmodSync(fd, 0o644); // the daemon's umask 077 would make it 0600
      fs.writeSync(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    pidFileOwned = file;
    process.on('exit', removePidFile);
    return;
  }
}

/** Removes the pid file this process wrote, if it still records this process. */
export function removePidFile(): void {
  const file = pidFileOwned;
  if (!file) return;
  pidFileOwned = undefined;
  try {
    if (fs.readFileSync(file, 'latin1') === `${process.pid}\n`) fs.unlinkSync(file);
  } catch { /* already gone */ }
}

// ---------------------------------------------------------------- socket activation

export const SD_LISTEN_FDS_START = 3;

/**
 * systemd socket activation: when LISTEN_PID is this process, LISTEN_FDS = 1 means "serve the
 * socket on fd 3". More than one socket is qemu-ga's error. The variables are removed so
 * processes the agent starts do not take them for theirs.
 */
export function socketActivationFd(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== process.pid) return undefined;
  const count = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (!Number.isInteger(count) || count < 1) return undefined;
  if (count > 1) throw new Error('qemu-ga only supports listening on one socket');
  return SD_LISTEN_FDS_START;
}
