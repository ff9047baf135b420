/**
 * What every VM case gets: the running guest, a synced client over the virtio-serial chardev,
 * and guest-side helpers that do not depend on the agent's own guest-exec (a control loop in the
 * guest runs scripts the host drops in /run/ctl and reports on the serial console).
 */
import { QgaClient, QgaError } from '../../lib/client/index';

export { QgaClient, QgaError };

/** Which agent runs in the guest: node-qga with a given backend, or Debian's qemu-ga. */
export type Target = 'native' | 'fallback' | 'qemu-ga';

export interface Vm {
  socketPath: string;
  /** Host path of the guest's /data disk image. */
  dataImage: string;
  mac: string;
  console: string;
  exited: { code: number | null; signal: string | null; at: number } | null;
  mark(): number;
  waitForConsole(regex: RegExp, timeoutMs: number, from?: number): Promise<RegExpExecArray>;
  waitExit(timeoutMs: number): Promise<boolean>;
  tail(lines?: number): string;
  qmp(execute: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<any>;
}

export interface VmCase {
  name: string;
  run(ctx: Ctx): Promise<void>;
  /** Default 60 s. */
  timeoutMs?: number;
  /** Only for these targets (a deliberate node-qga difference gets its own case). */
  targets?: Target[];
}

export class Ctx {
  private current: QgaClient | null = null;
  private ctlSeq = 0;
  /** Notes a case wants printed next to its result (e.g. measured numbers). */
  notes: string[] = [];

  constructor(readonly vm: Vm, readonly target: Target) {}

  /** The case's client, connected and synced on first use. */
  async client(): Promise<QgaClient> {
    if (!this.current) this.current = await connectWithRetry(this.vm.socketPath, 20000);
    return this.current;
  }

  /** Drop the current connection (the next client() call makes a new one). */
  disconnect(): void {
    this.current?.close();
    this.current = null;
  }

  async call<T = any>(command: string, args?: Record<string, unknown>, timeout?: number): Promise<T> {
    return (await this.client()).call<T>(command, args, { timeout });
  }

  /** Expect a command to fail; returns the error for further checks. */
  async callError(command: string, args?: Record<string, unknown>): Promise<QgaError> {
    try {
      const r = await this.call(command, args);
      throw new Error(`${command} succeeded (${JSON.stringify(r, big)}) but an error was expected`);
    } catch (e) {
      if (e instanceof QgaError) return e;
      throw e;
    }
  }

  /** Whole guest file through guest-file-open/read/close. */
  async readGuestFile(path: string, chunk = 1 << 20): Promise<Buffer> {
    const h = await this.call<number>('guest-file-open', { path, mode: 'r' });
    const parts: Buffer[] = [];
    try {
      for (;;) {
        const r = await this.call('guest-file-read', { handle: h, count: chunk }, 120000);
        parts.push(Buffer.from(r['buf-b64'], 'base64'));
        if (r.eof || r.count === 0) break;
      }
    } finally {
      await this.call('guest-file-close', { handle: h });
    }
    return Buffer.concat(parts);
  }

  async writeGuestFile(path: string, data: Buffer | string, chunk = 1 << 20): Promise<void> {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const h = await this.call<number>('guest-file-open', { path, mode: 'w' });
    try {
      for (let off = 0; off < buf.length || off === 0; off += chunk) {
        const part = buf.subarray(off, off + chunk);
        const r = await this.call('guest-file-write', { handle: h, 'buf-b64': part.toString('base64') }, 120000);
        if (r.count !== part.length) throw new Error(`guest-file-write wrote ${r.count} of ${part.length} bytes`);
        if (buf.length === 0) break;
      }
    } finally {
      await this.call('guest-file-close', { handle: h });
    }
  }

  /**
   * Start a shell script in the guest through the control loop (not guest-exec). Resolves once it
   * is handed over; `done` resolves with its exit code and output when it finishes.
   */
  async guestStart(script: string): Promise<{ name: string; done: (timeoutMs?: number) => Promise<{ rc: number; out: string }> }> {
    const name = `c${process.pid}-${++this.ctlSeq}-${Date.now() % 100000}`;
    const from = this.vm.mark();
    await this.writeGuestFile(`/run/ctl/${name}.sh`, script);
    const finished = this.vm.waitForConsole(new RegExp(`QGA-CTL done ${name} rc=(\\d+)`), 120000, from);
    finished.catch(() => {}); // observed through done()
    await this.writeGuestFile(`/run/ctl/${name}.go`, '');
    return {
      name,
      done: async (timeoutMs = 60000) => {
        const m = await Promise.race([
          finished,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`guest script ${name} did not finish within ${timeoutMs} ms`)), timeoutMs)),
        ]);
        const out = (await this.readGuestFile(`/run/ctl/${name}.out`)).toString('utf8');
        return { rc: Number(m[1]), out };
      },
    };
  }

  /** Run a guest shell script to completion; throws when it exits non-zero. */
  async guestRun(script: string, timeoutMs = 60000): Promise<string> {
    const job = await this.guestStart(script);
    const { rc, out } = await job.done(timeoutMs);
    if (rc !== 0) throw new Error(`guest script failed (rc=${rc}): ${script.trim()}\n${out}`);
    return out;
  }

  close(): void {
    this.disconnect();
  }
}

/** Connect and sync, retrying while the agent is (re)starting. */
export async function connectWithRetry(socketPath: string, totalMs: number): Promise<QgaClient> {
  const deadline = Date.now() + totalMs;
  let last: unknown;
  while (Date.now() < deadline) {
    let client: QgaClient | null = null;
    try {
      client = await QgaClient.connect(socketPath, { sync: false, timeout: 5000 });
      await client.sync(Math.min(5000, Math.max(1000, deadline - Date.now())));
      return client;
    } catch (e) {
      // Close every failed attempt: QEMU's chardev listens with a backlog of 1, and leaked
      // connections make later connects fail with EAGAIN.
      client?.close();
      last = e;
      await sleep(300);
    }
  }
  throw new Error(`no synced connection to the agent within ${totalMs} ms: ${(last as Error)?.message ?? last}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** JSON.stringify replacer for bigints in messages. */
export function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Deep equality of JSON values; object key order is ignored (the unit tests check it). */
export function equal<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(sortKeys(actual), big);
  const e = JSON.stringify(sortKeys(expected), big);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** An error's class and description, checked exactly or by pattern. */
export function errorIs(err: QgaError, cls: string, desc: string | RegExp, what: string): void {
  const ok = err.errorClass === cls && (typeof desc === 'string' ? err.desc === desc : desc.test(err.desc));
  if (!ok) throw new Error(`${what}: expected ${cls} "${desc}", got ${err.errorClass} "${err.desc}"`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

/** Nanoseconds (number or bigint) to seconds as a float. */
export function nsToSec(ns: number | bigint): number {
  return Number(BigInt(ns) / 1000000n) / 1000;
}
