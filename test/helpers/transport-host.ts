/**
 * Host-side stand-ins for the transport tests: the built agent as a child process, and a
 * pseudo-terminal pair (made by a small Python helper) whose slave plays the guest's device
 * while the test talks through the master as the host does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export const ROOT = path.join(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');

export function requireBuild(): void {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -p tsconfig.build.json, or npm test)`);
}

/** Why pty-based tests cannot run here, or undefined when they can. */
export function ptyUnavailable(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import pty, tty, select'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'python3 with the pty module is not available';
  if (!fs.existsSync('/dev/ptmx')) return 'no /dev/ptmx';
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True while a process with this pid exists (signal 0 probes without delivering anything). */
export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export async function until<T>(what: string, fn: () => T | undefined | false, timeout = 10000, every = 25): Promise<T> {
  const end = Date.now() + timeout;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/** A process started by a test: output collected, killed by pid at the end. */
export class Proc {
  stdout = Buffer.alloc(0);
  stderr = '';
  exitCode: number | null | undefined;
  exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => { this.stdout = Buffer.concat([this.stdout, d]); });
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.exited = new Promise((resolve) => child.on('exit', (code, sig) => { this.exitCode = code ?? (sig ? -1 : null); resolve(this.exitCode); }));
  }
  get pid(): number { return this.child.pid!; }
  get alive(): boolean { return this.exitCode === undefined; }
  waitStderr(re: RegExp, timeout = 10000): Promise<RegExpExecArray> {
    return until(`${re} in stderr (got: ${this.stderr.slice(-400)})`, () => re.exec(this.stderr) ?? undefined, timeout);
  }
  async stop(): Promise<void> {
    if (!this.alive) return;
    try { process.kill(this.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    await this.exited;
    clearTimeout(t);
  }
}

export function startAgentProcess(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  requireBuild();
  return new Proc(spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_QGA_RETRY_INTERVAL_MS: '300', ...env },
  }));
}

/** User + system CPU time of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15). */
export function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * Python: open_pty(link, raw) makes a pty pair and publishes the slave's name as a symlink at
 * \`link\`, renamed into place so that a new device can take over the path at once.
 */
export const PY_OPEN_PTY = `
import os, pty, tty
def open_pty(link, raw):
    m, s = pty.openpty()
    if raw:
        tty.setraw(s)
    name = os.ttyname(s)
    tmp = link + '.tmp'
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(name, tmp)
    os.rename(tmp, link)
    return m, s, name
`;

const PTY_HOST = `${PY_OPEN_PTY}
import sys, select
link, mode = sys.argv[1], sys.argv[2]
m, s, name = open_pty(link, mode == 'raw')
sys.stderr.write('PTY ' + name + '\\n')
sys.stderr.flush()
inp, out = sys.stdin.fileno(), sys.stdout.fileno()
while True:
    r, _, _ = select.select([m, inp], [], [])
    if m in r:
        d = os.read(m, 65536)
        while d:
            d = d[os.write(out, d):]
    if inp in r:
        d = os.read(inp, 65536)
        if not d:
            break
        while d:
            d = d[os.write(m, d):]
`;

/**
 * The host end of a pty pair. The slave's name is published as a symlink at `link` (so a
 * "new device" can appear at the same path); closing the host (stdin EOF) closes the master,
 * which hangs the slave up exactly like a virtio port whose host went away.
 */
export class PtyHost {
  readonly proc: Proc;
  slave = '';
  private consumed = 0;
  private constructor(readonly link: string, raw: boolean) {
    this.proc = new Proc(spawn('python3', ['-c', PTY_HOST, link, raw ? 'raw' : 'cooked'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }
  static async open(link: string, opts: { raw: boolean }): Promise<PtyHost> {
    const h = new PtyHost(link, opts.raw);
    h.slave = (await h.proc.waitStderr(/PTY (\S+)\n/))[1];
    return h;
  }
  send(data: string | Buffer): void {
    this.proc.child.stdin!.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }
  /** Everything received since the last read. */
  take(): Buffer {
    const b = this.proc.stdout.subarray(this.consumed);
    this.consumed = this.proc.stdout.length;
    return b;
  }
  /** 0xFF + guest-sync-delimited, then waits for the sentinel and the matching reply, as hosts do. */
  async sync(id: number, timeout = 10000): Promise<void> {
    this.send(`\xff{"execute":"guest-sync-delimited","arguments":{"id":${id}}}\n`);
    const want = `\xff{"return": ${id}}\n`;
    await until(`sync reply ${id} (got ${JSON.stringify(this.proc.stdout.subarray(this.consumed).toString('latin1'))})`, () => {
      const text = this.proc.stdout.toString('latin1');
      const at = text.indexOf(want, this.consumed);
      if (at < 0) return false;
      this.consumed = at + want.length;
      return true;
    }, timeout);
  }
  /** Sends one request and returns the next reply line, parsed. */
  async call(request: object, timeout = 10000): Promise<any> {
    this.send(JSON.stringify(request) + '\n');
    return this.readReply(timeout);
  }
  /** The next reply line, parsed. */
  async readReply(timeout = 10000): Promise<any> {
    const line = await until('a reply line', () => {
      const rest = this.proc.stdout.subarray(this.consumed);
      const nl = rest.indexOf(0x0a);
      if (nl < 0) return undefined;
      this.consumed += nl + 1;
      return rest.subarray(0, nl).toString('utf8');
    }, timeout);
    return JSON.parse(line);
  }
  /** Closes the master: the guest side sees a hang-up. */
  async close(): Promise<void> {
    this.proc.child.stdin!.end();
    const t = setTimeout(() => { try { process.kill(this.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    await this.proc.exited;
    clearTimeout(t);
  }
}
