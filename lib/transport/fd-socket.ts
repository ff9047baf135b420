/**
 * A connected stream socket driven without net.Socket: the addon's readiness watcher on its
 * descriptor, one non-blocking read(2) per readable event, one sendmsg(2) per reply (the
 * remainder queued and written when the socket is writable again). A sequential request
 * then costs two system calls and no stream machinery (Readable/Writable state, WriteWrap,
 * nextTick per write). Used for the unix-listen client when the addon has the functions
 * (loadFdSocketIo); the descriptor stays owned by whoever accepted it (closed after `onClosed`).
 */
import { loadAddon } from '../backend/load-addon';
import { loadWatchFd, type FdWatcher, type WatchFd } from './fd-io';

const EAGAIN = -11;
const READABLE = 1;
const WRITABLE = 2;
const PEER_CLOSED = 4;
/** Reads land in a slab at least this free; a smaller rest is left and a new slab taken. */
const MIN_READ = 64 * 1024;
const SLAB_BYTES = 256 * 1024;
/**
 * The slab reads go to, shared by all connections (clients come one after another, each
 * often sending a few hundred bytes). Bytes handed out are never written again: the decoder
 * may keep views of them, so a full slab is replaced, not reused.
 */
let slab: Buffer = Buffer.alloc(0);
let slabUsed = 0;
/**
 * How long the watcher looks for the host's next request after one was answered and the agent
 * is idle (NODE_QGA_SOCKET_SPIN_US; 0 = never). A host sending requests one after another
 * answers within tens of microseconds; catching its request then spares the agent's thread the
 * sleep in epoll and the wake-up, which on a VM is a large part of a small request's round trip.
 */
const SOCKET_SPIN_US = spinMicros(process.env.NODE_QGA_SOCKET_SPIN_US, 300);

function spinMicros(v: string | undefined, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 && n <= 100_000 ? n : fallback;
}

/** Unwritten bytes beyond which send() asks the caller to wait (net.Socket's default high-water mark). */
const HIGH_WATER = 16 * 1024;

export interface FdSocketIo {
  watchFd: WatchFd;
  read(fd: number, buf: Buffer, offset: number, length: number): number;
  write(fd: number, chunks: ReadonlyArray<Buffer | string>): number;
}

/** The addon's watcher and non-blocking read/write, or undefined (no addon, NODE_QGA_FD_WATCH=poll). */
export function loadFdSocketIo(env: NodeJS.ProcessEnv = process.env): FdSocketIo | undefined {
  const watchFd = loadWatchFd(env);
  if (!watchFd) return undefined;
  const r = loadAddon();
  if ('error' in r) return undefined;
  const a = r.addon as unknown as { readFdNonBlocking?: FdSocketIo['read']; writeFdNonBlocking?: FdSocketIo['write'] };
  if (typeof a.readFdNonBlocking !== 'function' || typeof a.writeFdNonBlocking !== 'function') return undefined;
  return { watchFd, read: a.readFdNonBlocking, write: a.writeFdNonBlocking };
}

export interface FdSocketEvents {
  data(chunk: Buffer): void;
  /** The peer stopped sending (read returned 0); writing goes on. */
  end(): void;
  /** The connection is over (error, end() finished, destroy()): the watcher is closed, the descriptor may be closed. */
  closed(): void;
  /** True when everything received so far has been answered (nothing queued, nothing running). */
  idle?(): boolean;
}

interface Waiter { until: number; resolve: () => void }

export class FdSocket {
  private readonly watcher: FdWatcher;
  private reading = false;
  private readEnded = false;
  private closed = false;
  /** Called once everything queued is written (end()). */
  private ending = false;
  /** Bytes not yet taken by the kernel, in order; `queuedBytes` their size. */
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** Bytes handed to write()/send() so far, and bytes the kernel took so far. */
  private acceptedTotal = 0;
  private writtenTotal = 0;
  private waiters: Waiter[] = [];

  constructor(private readonly io: FdSocketIo, private readonly fd: number, private readonly on: FdSocketEvents) {
    this.watcher = io.watchFd(fd, (status, events) => this.onReady(status, events));
    this.watcher.setEvents(0);
    if (SOCKET_SPIN_US > 0 && on.idle) this.watcher.spinAfter?.(SOCKET_SPIN_US);
  }

  /** The watcher's spin counters (zero when the addon has none). */
  spinStats(): { spins: number; caught: number } {
    return this.watcher.spinStats?.() ?? { spins: 0, caught: 0 };
  }

  /** Starts or stops reading (pause/resume, back-pressure from the agent). */
  setReading(on: boolean): void {
    this.reading = on;
    this.updateWatch();
  }

  /**
   * Queues `chunks` and writes what the socket takes now. Resolves once every byte is in the
   * kernel (the buffers may then be reused) or the connection is gone.
   */
  write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    this.writeNow(chunks);
    if (this.closed || this.queuedBytes === 0) return Promise.resolve();
    return this.waitFor(this.acceptedTotal);
  }

  /** Like write(), but returns a Promise only while more than the high-water mark is unwritten. */
  send(chunks: ReadonlyArray<Buffer | string>): Promise<void> | undefined {
    this.writeNow(chunks);
    if (this.closed || this.queuedBytes <= HIGH_WATER) return undefined;
    return this.waitFor(this.acceptedTotal);
  }

  /** Closes the connection once everything queued is written. */
  end(): void {
    if (this.closed) return;
    this.ending = true;
    if (this.queuedBytes === 0) this.destroy();
  }

  /** Closes at once: queued bytes are dropped, waiters released. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    this.queue = [];
    this.queuedBytes = 0;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
    this.on.closed();
  }

  private waitFor(until: number): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ until, resolve }));
  }

  private writeNow(chunks: ReadonlyArray<Buffer | string>): void {
    if (this.closed) return;
    let size = 0;
    for (const c of chunks) size += c.length;
    if (size === 0) return;
    this.acceptedTotal += size;
    if (this.queuedBytes > 0) {
      // Behind earlier bytes: queued as they are (strings as latin1, as they would be written).
      for (const c of chunks) this.enqueue(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
      return;
    }
    const n = this.io.write(this.fd, chunks);
    if (n < 0 && n !== EAGAIN) { this.fail(); return; }
    const took = n < 0 ? 0 : n;
    this.writtenTotal += took;
    if (took === size) return;
    let skip = took;
    for (const c of chunks) {
      const b = typeof c === 'string' ? Buffer.from(c, 'latin1') : c;
      if (skip >= b.length) { skip -= b.length; continue; }
      this.enqueue(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    this.updateWatch();
  }

  private enqueue(b: Buffer): void {
    if (b.length === 0) return;
    this.queue.push(b);
    this.queuedBytes += b.length;
  }

  /** The socket is writable again: write the queue until it is empty or the socket full. */
  private flushQueue(): void {
    while (this.queuedBytes > 0 && !this.closed) {
      const n = this.io.write(this.fd, this.queue);
      if (n === EAGAIN) break;
      if (n < 0) { this.fail(); return; }
      this.writtenTotal += n;
      this.queuedBytes -= n;
      let skip = n;
      let i = 0;
      while (skip > 0 && skip >= this.queue[i].length) { skip -= this.queue[i].length; i++; }
      this.queue = this.queue.slice(i);
      if (skip > 0) this.queue[0] = this.queue[0].subarray(skip);
    }
    if (this.closed) return;
    this.releaseWaiters();
    if (this.queuedBytes === 0 && this.ending) { this.destroy(); return; }
    this.updateWatch();
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0) return;
    let i = 0;
    while (i < this.waiters.length && this.waiters[i].until <= this.writtenTotal) i++;
    if (i === 0) return;
    const done = this.waiters.splice(0, i);
    for (const w of done) w.resolve();
  }

  private updateWatch(): void {
    if (this.closed) return;
    let mask = 0;
    if (this.reading && !this.readEnded) mask |= READABLE | PEER_CLOSED;
    if (this.queuedBytes > 0) mask |= WRITABLE;
    this.watcher.setEvents(mask);
  }

  /** True asks the watcher to look for more input at once (see SOCKET_SPIN_US). */
  private onReady(status: number, events: number): boolean {
    if (this.closed) return false;
    if (status < 0) { this.fail(); return false; }
    if (events & WRITABLE && this.queuedBytes > 0) this.flushQueue();
    if (events & (READABLE | PEER_CLOSED) && this.reading && !this.readEnded && !this.closed) this.readOnce();
    return !this.closed && this.reading && !this.readEnded && this.queuedBytes === 0 && this.on.idle?.() === true;
  }

  private readOnce(): void {
    if (slab.length - slabUsed < MIN_READ) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      slabUsed = 0;
    }
    const start = slabUsed;
    const n = this.io.read(this.fd, slab, start, slab.length - start);
    if (n === EAGAIN) return;
    if (n < 0) { this.fail(); return; }
    if (n === 0) {
      this.readEnded = true;
      this.updateWatch();
      this.on.end();
      return;
    }
    slabUsed += n;
    this.on.data(slab.subarray(start, start + n));
  }

  /** EPIPE, ECONNRESET, a failed watch: the client is gone, which is just a disconnect. */
  private fail(): void {
    this.destroy();
  }
}
