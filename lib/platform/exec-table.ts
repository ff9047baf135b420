/**
 * The processes guest-exec started and what guest-exec-status reports about them.
 *
 * A record lives from the spawn until a status call sees it finished (then it is deleted,
 * as qemu-ga does). "Finished" means reaped (Node's SIGCHLD handling reaps every child, so
 * no zombies stay behind) and every captured stream at EOF. Captured output is kept up to
 * 16 MiB per stream; the rest is still read (so the child never blocks on a full pipe) and
 * thrown away, and the stream is marked truncated.
 *
 * Bound (node-qga's own; qemu-ga keeps unread records until it exits): at most
 * MAX_UNREAD_FINISHED finished-but-unread records and MAX_UNREAD_BYTES of their output are
 * kept; beyond either, the oldest finished records are dropped (with a warning in the log),
 * so a host that never asks cannot grow the agent without limit. Running children are never
 * dropped; each holds at most 2 x 16 MiB.
 */
import type { Readable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import * as os from 'node:os';

/** qemu-ga's GUEST_EXEC_MAX_OUTPUT. */
export const MAX_CAPTURE_BYTES = 16 * 1024 * 1024;
export const MAX_UNREAD_FINISHED = 1024;
export const MAX_UNREAD_BYTES = 256 * 1024 * 1024;

/** One captured stream: bytes up to the limit, a count of everything read, EOF. */
export class CaptureBuffer {
  private chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  closed = false;

  constructor(private readonly limit = MAX_CAPTURE_BYTES) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (chunk.length > room) {
      this.truncated = true;
      if (room <= 0) return;
      chunk = chunk.subarray(0, room);
    }
    // Node may hand out slices of a shared pool: copy so the pool can be reused.
    this.chunks.push(Buffer.from(chunk));
    this.size += chunk.length;
  }

  data(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0];
  }
}

/** Reads a stream into a CaptureBuffer; `onClose` once it has ended or failed. */
export function capture(stream: Readable, buf: CaptureBuffer, onClose: () => void): void {
  stream.on('data', (c: Buffer) => buf.push(c));
  stream.on('error', () => { /* a reset counts as EOF */ });
  stream.once('close', () => { buf.closed = true; onClose(); });
}

export interface ExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

export class ExecRecord {
  exitCode: number | null = null;
  signal: number | null = null;
  reaped = false;
  finishedAt = 0;

  constructor(readonly pid: number, readonly out?: CaptureBuffer, readonly err?: CaptureBuffer) {}

  get finished(): boolean {
    return this.reaped && (this.out?.closed ?? true) && (this.err?.closed ?? true);
  }

  get retainedBytes(): number { return (this.out?.size ?? 0) + (this.err?.size ?? 0); }

  /** The reply, members in schema order; data only when non-empty, each with its flag. */
  status(): ExecStatus {
    if (!this.finished) return { exited: false };
    const s: ExecStatus = { exited: true };
    if (this.exitCode !== null) s.exitcode = this.exitCode;
    else if (this.signal !== null) s.signal = this.signal;
    if (this.out && this.out.size > 0) s['out-data'] = this.out.data().toString('base64');
    if (this.err && this.err.size > 0) s['err-data'] = this.err.data().toString('base64');
    if (this.out && this.out.size > 0) s['out-truncated'] = this.out.truncated;
    if (this.err && this.err.size > 0) s['err-truncated'] = this.err.truncated;
    return s;
  }
}

export function signalNumber(name: NodeJS.Signals | null): number | null {
  if (!name) return null;
  return (os.constants.signals as Record<string, number>)[name] ?? null;
}

export class ExecTable {
  /** pid → records; normally one, more only if a pid came back while an old record was unread. */
  private readonly byPid = new Map<number, ExecRecord[]>();
  /** Finished, unread records, oldest first (for the bound). */
  private readonly finishedQueue = new Set<ExecRecord>();
  private finishedBytes = 0;

  constructor(
    private readonly limits = { records: MAX_UNREAD_FINISHED, bytes: MAX_UNREAD_BYTES },
    private readonly warn: (msg: string) => void = () => {},
  ) {}

  /** Tracks a spawned child; the streams are the captured ones (merged output is one stream). */
  add(child: ChildProcess, out?: Readable, err?: Readable): ExecRecord {
    const pid = child.pid!;
    const rec = new ExecRecord(pid, out ? new CaptureBuffer() : undefined, err ? new CaptureBuffer() : undefined);
    const list = this.byPid.get(pid);
    // An older unread record with the same pid is found first, as in qemu-ga's list.
    if (list) list.push(rec); else this.byPid.set(pid, [rec]);
    const settle = (): void => { if (rec.finished && rec.finishedAt === 0) this.onFinished(rec); };
    if (out) capture(out, rec.out!, settle);
    if (err) capture(err, rec.err!, settle);
    child.once('exit', (code, signal) => {
      rec.reaped = true;
      rec.exitCode = code;
      rec.signal = signalNumber(signal);
      settle();
    });
    return rec;
  }

  /** The status of `pid`; a finished record is deleted once reported. undefined: unknown pid. */
  status(pid: number): ExecStatus | undefined {
    const list = this.byPid.get(pid);
    if (!list) return undefined;
    const rec = list[0];
    const s = rec.status();
    if (s.exited) this.remove(rec);
    return s;
  }

  get size(): number { let n = 0; for (const l of this.byPid.values()) n += l.length; return n; }
  get unreadFinished(): number { return this.finishedQueue.size; }

  private onFinished(rec: ExecRecord): void {
    rec.finishedAt = Date.now();
    this.finishedQueue.add(rec);
    this.finishedBytes += rec.retainedBytes;
    for (const old of this.finishedQueue) {
      if (this.finishedQueue.size <= this.limits.records && this.finishedBytes <= this.limits.bytes) break;
      if (old === rec && this.finishedQueue.size === 1) break; // always keep the newest one
      this.warn(`guest-exec: dropping the unread status of finished process ${old.pid} (too many unread results)`);
      this.remove(old);
    }
  }

  private remove(rec: ExecRecord): void {
    if (this.finishedQueue.delete(rec)) this.finishedBytes -= rec.retainedBytes;
    const list = this.byPid.get(rec.pid);
    if (!list) return;
    const i = list.indexOf(rec);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byPid.delete(rec.pid);
  }
}
