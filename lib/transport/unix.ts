import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Channel } from './types';
import { FdSocket, loadFdSocketIo, type FdSocketIo } from './fd-socket';

/**
 * `-m unix-listen`: one client at a time, as qemu-ga serves it. Clients that connect while
 * another is served are held unread (their requests wait, like in qemu-ga's backlog) and
 * taken in order when the current one leaves. A client vanishing mid-reply is just a
 * disconnect. The socket file is created with mode 0600: only root talks to the agent.
 *
 * net.Server accepts; the client being served is then driven through its descriptor by
 * FdSocket (the addon's watcher, one read and one write system call per request) when the
 * addon has it, else by its net.Socket (no addon, NODE_QGA_FD_WATCH=poll). The net.Socket
 * owns the descriptor either way and closes it, after the watcher is closed.
 */
export class UnixListenChannel extends EventEmitter implements Channel {
  private server?: net.Server;
  private current?: net.Socket;
  /** From the agent: everything delivered has been answered (FdSocket spins only then). */
  private idleProbe?: () => boolean;
  /** The current client's descriptor driver (fd path), undefined on the net.Socket path. */
  private currentFd?: FdSocket;
  private readonly fdIo: FdSocketIo | undefined = loadFdSocketIo();
  private waiting: net.Socket[] = [];
  private paused = false;
  /** Writes waiting for their callback; all resolved at once if the client goes away. */
  private pendingWrites = new Set<() => void>();
  /** Senders waiting for the socket to drain (send() under back-pressure); also released by the close. */
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly path: string, private readonly listenFd?: number) { super(); }

  get description(): string { return `unix-listen:${this.path}`; }

  setIdleProbe(idle: () => boolean): void { this.idleProbe = idle; }

  /** How clients are driven: 'fd' (the addon's watcher, FdSocket) or 'stream' (net.Socket). */
  get driver(): 'fd' | 'stream' { return this.fdIo ? 'fd' : 'stream'; }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => this.onConnection(s));
      server.once('error', reject);
      const ready = () => {
        server.removeListener('error', reject);
        server.on('error', (e) => this.emit('error', e));
        resolve();
      };
      if (this.listenFd !== undefined) {
        server.listen({ fd: this.listenFd }, ready);
      } else {
        try { fs.unlinkSync(this.path); } catch { /* not there */ }
        const oldMask = process.umask(0o177);
        server.listen(this.path, () => { process.umask(oldMask); ready(); });
        server.once('error', () => process.umask(oldMask));
      }
      this.server = server;
    });
  }

  private onConnection(s: net.Socket): void {
    s.on('error', () => { /* EPIPE/ECONNRESET: handled as a disconnect on 'close' */ });
    s.on('close', () => this.onClose(s));
    // The client finished sending: answer what it sent, then close (qemu-ga closes on EOF).
    s.on('end', () => this.emit('eof', () => s.end()));
    if (this.current) { this.waiting.push(s); return; }
    this.serve(s);
  }

  private serve(s: net.Socket): void {
    this.current = s;
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (this.fdIo && fd !== undefined && fd >= 0 && this.serveFd(s, fd, this.fdIo)) return;
    s.on('drain', () => this.onDrain(s));
    s.on('data', (d: Buffer) => this.emit('data', d));
    this.emit('connect');
    if (!this.paused) s.resume();
  }

  /** Serves `s` through its descriptor; false when it cannot be watched (then net.Socket serves it). */
  private serveFd(s: net.Socket, fd: number, io: FdSocketIo): boolean {
    let conn: FdSocket;
    try {
      conn = new FdSocket(io, fd, {
        data: (d) => this.emit('data', d),
        idle: () => this.idleProbe?.() === true,
        end: () => this.emit('eof', () => conn.end()),
        // The watcher is closed: the net.Socket may close the descriptor now ('close' then
        // comes on a later tick, so a write failing inside a reply never re-enters the agent).
        closed: () => { if (this.currentFd === conn) this.currentFd = undefined; s.destroy(); },
      });
    } catch {
      return false;
    }
    this.currentFd = conn;
    this.emit('connect');
    conn.setReading(!this.paused);
    return true;
  }

  /** The socket took its buffered bytes: senders held by back-pressure go on. */
  private onDrain(s: net.Socket): void {
    if (s !== this.current) return;
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const done of waiting) done();
  }

  private onClose(s: net.Socket): void {
    if (s !== this.current) { this.waiting = this.waiting.filter((w) => w !== s); return; }
    this.current = undefined;
    for (const done of this.pendingWrites) done();
    this.pendingWrites.clear();
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const done of waiting) done();
    this.emit('disconnect');
    const next = this.waiting.shift();
    if (next) this.serve(next);
  }

  write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    if (this.currentFd) return this.currentFd.write(chunks);
    const s = this.current;
    if (!s || s.destroyed || !s.writable) return Promise.resolve();
    // Resolved by the last write's callback (the bytes are in the kernel: buffers may be
    // reused, and back-pressure holds the next request) or by the client going away.
    return new Promise((resolve) => {
      const done = () => { this.pendingWrites.delete(done); resolve(); };
      this.pendingWrites.add(done);
      s.cork();
      chunks.forEach((c, i) => {
        const cb = i === chunks.length - 1 ? done : undefined;
        if (typeof c === 'string') s.write(c, 'latin1', cb); else s.write(c, cb);
      });
      s.uncork();
    });
  }

  send(chunks: ReadonlyArray<Buffer | string>): Promise<void> | undefined {
    if (this.currentFd) return this.currentFd.send(chunks);
    const s = this.current;
    if (!s || s.destroyed || !s.writable) return undefined;
    let more: boolean;
    if (chunks.length === 1) {
      more = writeChunk(s, chunks[0]);
    } else {
      s.cork();
      more = true;
      for (const c of chunks) more = writeChunk(s, c);
      s.uncork();
    }
    if (more) return undefined;
    // Over the socket's high-water mark: wait for 'drain' (one listener per connection) or the close.
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  pause(): void {
    this.paused = true;
    if (this.currentFd) this.currentFd.setReading(false); else this.current?.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.currentFd) this.currentFd.setReading(true); else this.current?.resume();
  }

  close(): Promise<void> {
    this.currentFd?.destroy();
    for (const s of [this.current, ...this.waiting]) s?.destroy();
    this.current = undefined;
    this.waiting = [];
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function writeChunk(s: net.Socket, c: Buffer | string): boolean {
  return typeof c === 'string' ? s.write(c, 'latin1') : s.write(c);
}
