/**
 * Helpers for the differential tests against Debian's qemu-ga 7.2 (exec and ssh): start
 * /usr/sbin/qemu-ga on a unix socket in a scratch directory (optionally in a private mount
 * namespace with a fixture bind-mounted over /etc/passwd, so it sees test users whose homes
 * are temp directories, while the host's /etc/passwd is untouched), and a line-based
 * connection for asking either agent.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export const QEMU_GA = '/usr/sbin/qemu-ga';
export const qemuGaAvailable = fs.existsSync(QEMU_GA);
export const canUnshare = qemuGaAvailable && spawnSync('unshare', ['-m', 'true']).status === 0;

/** One connection; ask() writes a request line and resolves with the next reply line. */
export class LineConn {
  private parts: string[] = [];
  private waiting: Array<(line: string) => void> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => {
      // Only the new chunk is searched: replies can be tens of MB long.
      for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n')) {
        this.parts.push(chunk.slice(0, nl));
        const line = this.parts.join('');
        this.parts = [];
        chunk = chunk.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
      if (chunk) this.parts.push(chunk);
    });
  }

  static async open(sockPath: string): Promise<LineConn> {
    for (let i = 0; i < 100 && !fs.existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 50));
    const sock = net.createConnection(sockPath);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    return new LineConn(sock);
  }

  ask(request: unknown): Promise<string> {
    return new Promise<string>((resolve) => {
      this.waiting.push(resolve);
      this.sock.write((typeof request === 'string' ? request : JSON.stringify(request)) + '\n');
    });
  }

  close(): void { this.sock.destroy(); }
}

export interface QemuGa { conn: LineConn; stop(): Promise<void> }

export async function startQemuGa(dir: string, opts: { passwd?: string } = {}): Promise<QemuGa> {
  fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
  const sockPath = path.join(dir, 'sock');
  const args = ['-m', 'unix-listen', '-p', sockPath, '-t', path.join(dir, 'state'), '-f', path.join(dir, 'pid'), '-l', path.join(dir, 'log')];
  let child: ChildProcess;
  if (opts.passwd) {
    // Private mount namespace: the fixture passwd is what this qemu-ga (and only it) sees.
    child = spawn('unshare', ['-m', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', opts.passwd, QEMU_GA, ...args], { stdio: 'ignore' });
  } else {
    child = spawn(QEMU_GA, args, { stdio: 'ignore' });
  }
  const conn = await LineConn.open(sockPath);
  return {
    conn,
    stop: async () => {
      conn.close();
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM'); // this child only, by its pid
      // qemu-ga 7.2's SIGTERM handler can deadlock (seen here: stuck on a futex inside the
      // handler, SIGTERM blocked); it is our child, so it gets SIGKILL after a while.
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
