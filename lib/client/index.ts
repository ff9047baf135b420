/**
 * A small host-side client for qemu-ga compatible agents (node-qga or QEMU's qemu-ga) over a
 * unix socket, such as QEMU's guest-agent chardev. It syncs the way the protocol recommends
 * (0xFF to flush the agent's parser, guest-sync-delimited with a random id, discard
 * everything up to the 0xFF sentinel and the matching reply), then offers typed calls.
 */
import * as net from 'node:net';
import { randomInt } from 'node:crypto';

export class QgaError extends Error {
  constructor(readonly errorClass: string, readonly desc: string, readonly command?: string) {
    super(`${command ? `${command}: ` : ''}${errorClass}: ${desc}`);
    this.name = 'QgaError';
  }
}

export class QgaTimeoutError extends Error {}

export interface CallOptions {
  /** Milliseconds to wait for the reply (default: the client's timeout). */
  timeout?: number;
  /** For commands that send nothing on success (shutdown, suspend): resolve when the timeout passes. */
  noReply?: boolean;
}

/** Parses one reply line; big integers stay exact as bigint. */
export function parseReply(line: string): any {
  // JSON.parse loses integers beyond 2^53 (guest-get-time, sync ids): revive them from the text.
  if (!/\d{16,}/.test(line)) return JSON.parse(line);
  const marked = line.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"__big__$2"');
  return JSON.parse(marked, (_k, v) => (typeof v === 'string' && v.startsWith('__big__') ? BigInt(v.slice(7)) : v));
}

export class QgaClient {
  /** Received bytes not yet returned: whole chunks, joined only when a line is complete. */
  private parts: Buffer[] = [];
  private waiters: Array<{ resolve: (line: Buffer) => void; reject: (e: Error) => void }> = [];
  private closed = false;

  private constructor(readonly socket: net.Socket, public timeout: number) {
    socket.on('data', (d: Buffer) => { this.parts.push(d); this.deliver(); });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed'));
    });
    socket.on('error', () => { /* reported through close */ });
  }

  /** Connect and (by default) sync. */
  static async connect(path: string, opts: { timeout?: number; sync?: boolean } = {}): Promise<QgaClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path, () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
    });
    const client = new QgaClient(socket, opts.timeout ?? 10000);
    if (opts.sync !== false) {
      try {
        await client.sync();
      } catch (e) {
        // Never leave a half-open connection behind: QEMU's chardev accepts only one.
        client.close();
        throw e;
      }
    }
    return client;
  }

  /** Send raw bytes (tests use it for malformed input). */
  send(data: Buffer | string): void { this.socket.write(data); }

  /** The next reply line (without the newline); a leading 0xFF is kept. */
  readLine(timeout = this.timeout): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new QgaTimeoutError(`no reply within ${timeout} ms`));
      }, timeout);
      const waiter = {
        resolve: (l: Buffer) => { clearTimeout(timer); resolve(l); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      this.waiters.push(waiter);
      this.deliver();
      if (this.closed && this.waiters.includes(waiter)) { this.waiters = this.waiters.filter((w) => w !== waiter); waiter.reject(new Error('connection closed')); }
    });
  }

  /** The next reply, parsed. */
  async readReply(timeout?: number): Promise<any> {
    const line = await this.readLine(timeout);
    return parseReply((line[0] === 0xff ? line.subarray(1) : line).toString('utf8'));
  }

  private deliver(): void {
    while (this.waiters.length && this.parts.length) {
      // Only the newest chunk can hold a newline not seen yet, except right after a line was cut.
      let idx = -1, nl = -1;
      for (let i = this.scanned; i < this.parts.length; i++) {
        nl = this.parts[i].indexOf(0x0a);
        if (nl >= 0) { idx = i; break; }
      }
      if (idx < 0) { this.scanned = this.parts.length; return; }
      const before = this.parts.slice(0, idx);
      const last = this.parts[idx];
      const line = before.length ? Buffer.concat([...before, last.subarray(0, nl)]) : last.subarray(0, nl);
      const rest = last.subarray(nl + 1);
      this.parts = rest.length ? [rest, ...this.parts.slice(idx + 1)] : this.parts.slice(idx + 1);
      this.scanned = 0;
      this.waiters.shift()!.resolve(line);
    }
  }
  private scanned = 0;

  /** 0xFF, then guest-sync-delimited with a random id; stale data up to the matching reply is dropped. */
  async sync(timeout = this.timeout): Promise<void> {
    const id = randomInt(1, 2 ** 47);
    this.socket.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n')]));
    const deadline = Date.now() + timeout;
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      const at = line.lastIndexOf(0xff);
      if (at < 0) continue;
      try {
        const r = parseReply(line.subarray(at + 1).toString('utf8'));
        if (r.return === id) return;
      } catch { /* not the reply */ }
    }
  }

  /** Run a command; resolves with its `return` value, rejects with QgaError. */
  async call<T = any>(execute: string, args?: Record<string, unknown>, opts: CallOptions = {}): Promise<T> {
    const req: Record<string, unknown> = { execute };
    if (args !== undefined) req.arguments = args;
    this.socket.write(stringify(req) + '\n');
    let reply;
    try {
      reply = await this.readReply(opts.timeout);
    } catch (e) {
      if (opts.noReply && (e instanceof QgaTimeoutError || (e as Error).message === 'connection closed')) return undefined as T;
      throw e;
    }
    if (reply.error) throw new QgaError(reply.error.class, reply.error.desc, execute);
    return reply.return as T;
  }

  close(): void { this.socket.end(); this.socket.destroy(); }
}

/** JSON.stringify that writes bigints as plain integers. */
export function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `__big__${x}` : x)).replace(/"__big__(-?\d+)"/g, '$1');
}
