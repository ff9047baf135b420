/**
 * I/O on a descriptor Node cannot wrap in a socket (a virtio port, a vsock connection).
 * Writing (SerialFdWriter): one reply after another, fs.writev on the thread pool, continued
 * after partial writes, retried after a short pause on EAGAIN, abandoned (with the reason) on
 * any other error. Reading: the addon's
 * readiness watcher when it is built (loadWatchFd), else the caller polls.
 */
import * as fs from 'node:fs';
import { loadAddon } from '../backend/load-addon';

/** A full device buffer (EAGAIN on write) is retried after this pause, growing to the maximum. */
const WRITE_RETRY_MS = 5;
const WRITE_RETRY_MAX_MS = 100;

/**
 * Thread-pool operations in flight per descriptor. A descriptor is closed only once none is:
 * an operation still queued in the pool when close() ran would start on whatever file reused
 * the number next (a reopened port, a guest-file-open handle) and read from it or write a
 * reply into it.
 */
const poolOps = new Map<number, number>();
const closeWhenIdle = new Set<number>();

/** Counts a pool operation on `fd` until the returned function is called (once, when it completes). */
export function beginPoolOp(fd: number): () => void {
  poolOps.set(fd, (poolOps.get(fd) ?? 0) + 1);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    const left = (poolOps.get(fd) ?? 1) - 1;
    if (left > 0) { poolOps.set(fd, left); return; }
    poolOps.delete(fd);
    if (closeWhenIdle.delete(fd)) fs.close(fd, () => undefined);
  };
}

/** Closes `fd` now, or when its last pool operation has completed. */
export function closeFd(fd: number): void {
  if (poolOps.has(fd)) closeWhenIdle.add(fd);
  else fs.close(fd, () => undefined);
}

/** Pool operations in flight on `fd` (tests). */
export function poolOpsInFlight(fd: number): number {
  return poolOps.get(fd) ?? 0;
}

export function errnoText(e: NodeJS.ErrnoException): string {
  return e.code ? `${e.code}: ${e.message.replace(/^[A-Z]+: /, '')}` : e.message;
}

/**
 * The reply path of a channel that writes to a descriptor: replies leave one after another,
 * each whole, even when the descriptor takes them in pieces. A reply is written to the
 * descriptor of the session it was made in (`fdFor(session)`; undefined once that session is
 * over, the descriptor closed or replaced) and dropped when there is none, even part-way. What
 * a failed write means is the channel's: `onFailed` is told.
 */
export class SerialFdWriter {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly fdFor: (session: number) => number | undefined,
    private readonly onFailed: (session: number, reason: string) => void,
  ) {}

  write(session: number, chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    const bufs = toBuffers(chunks);
    const next = this.chain.then(async () => {
      const fd = this.fdFor(session);
      if (fd === undefined) return;
      const failed = await writeAllToFd(fd, bufs, () => this.fdFor(session) === fd);
      if (failed) this.onFailed(session, failed);
    });
    this.chain = next;
    return next;
  }
}

function toBuffers(chunks: ReadonlyArray<Buffer | string>): Buffer[] {
  return chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'latin1') : c)).filter((b) => b.length > 0);
}

/**
 * Writes every byte of `bufs` to `fd` while `current()` holds. Resolves undefined when done or
 * when the descriptor stopped being current; resolves an error text when the write failed.
 */
async function writeAllToFd(fd: number, bufs: Buffer[], current: () => boolean): Promise<string | undefined> {
  let i = 0;
  let off = 0;
  let retries = 0;
  while (i < bufs.length) {
    if (!current()) return undefined;
    const pending = off > 0 ? [bufs[i].subarray(off), ...bufs.slice(i + 1)] : bufs.slice(i);
    let n: number;
    try {
      const end = beginPoolOp(fd);
      n = await new Promise<number>((resolve, reject) =>
        fs.writev(fd, pending, null, (err, written) => { end(); if (err) reject(err); else resolve(written); }));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EINTR') continue;
      if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') {
        // The host is slow or not connected (a virtio port then refuses writes): keep the reply
        // and retry, as qemu-ga does, but back off so a long absence costs no CPU.
        await new Promise((r) => setTimeout(r, Math.min(WRITE_RETRY_MAX_MS, WRITE_RETRY_MS << Math.min(retries++, 4))));
        continue;
      }
      return errnoText(err);
    }
    retries = 0;
    while (n > 0 && i < bufs.length) {
      const left = bufs[i].length - off;
      if (n >= left) { n -= left; i++; off = 0; } else { off += n; n = 0; }
    }
  }
  return undefined;
}

/** The addon's readiness watcher on a descriptor (native/fd_watch.cc). */
export interface FdWatcher {
  /** Callbacks again after stop() (a pending back-off runs its course first). */
  start(): void;
  /** No callbacks until start(). */
  stop(): void;
  /** Not watched for `ms`, then watched again: the hang-up back-off, without a spin. */
  backoff(ms: number): void;
  /** Watches for `mask` from now on (1 readable, 2 writable, 4 peer closed; 0 = nothing). */
  setEvents(mask: number): void;
  /**
   * After a callback that returns true, the addon looks for more input for up to `us` µs before
   * going back to the event loop (0, the default: never). Absent in older addon builds.
   */
  spinAfter?(us: number): void;
  /** Spins started after idle callbacks, and how many of them found input (diagnostics, tests). */
  spinStats?(): { spins: number; caught: number };
  /** Stops for good; call before closing the descriptor. Idempotent. */
  close(): void;
}

/** `status` < 0 is a libuv error (the watch stopped); `events` bit 1 = readable or hung up, 2 = writable, 4 = peer closed. */
export type WatchFd = (fd: number, onReady: (status: number, events: number) => boolean | void) => FdWatcher;

/**
 * The addon's watchFd, or undefined when the addon (or this function in it) is missing, or
 * when NODE_QGA_FD_WATCH=poll asks for the pure-JS polling reader (comparisons, tests).
 */
export function loadWatchFd(env: NodeJS.ProcessEnv = process.env): WatchFd | undefined {
  if (env.NODE_QGA_FD_WATCH === 'poll') return undefined;
  const r = loadAddon();
  if ('error' in r) return undefined;
  const fn = (r.addon as unknown as { watchFd?: unknown }).watchFd;
  return typeof fn === 'function' ? (fn as WatchFd) : undefined;
}
