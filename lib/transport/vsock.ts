/**
 * `-m vsock-listen -p CID:PORT`. Node has no AF_VSOCK sockets; the address is checked as
 * qemu-ga checks it (both parts unsigned decimal, 32 bits), then the native addon supplies the
 * listening socket and accepts on it (native/vsock.cc). A build without those functions
 * answers a clear error instead of pretending.
 *
 * Served like unix-listen: one host at a time (backlog 1, the next connection is accepted only
 * when the current one has gone), a clean parser for each. A connected vsock is read and
 * written with fs.read / fs.writev on the thread pool, as a virtio-serial port is.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { ChannelConfigError } from '../channels';
import type { Channel } from './types';
import { loadAddon } from '../backend/load-addon';
import { beginPoolOp, closeFd, errnoText, SerialFdWriter } from './fd-io';

export interface VsockAddress { cid: number; port: number }

const U32_MAX = 0xffffffff;

/** `<cid>:<port>`, both unsigned decimal (VMADDR_CID_ANY is 4294967295); undefined when malformed. */
export function parseVsockAddress(text: string): VsockAddress | undefined {
  const m = /^([0-9]{1,32}):([0-9]{1,32})$/.exec(text);
  if (!m) return undefined;
  const cid = Number(m[1]);
  const port = Number(m[2]);
  if (cid > U32_MAX || port > U32_MAX) return undefined;
  return { cid, port };
}

/** Validates the address and reports that this build cannot listen on vsock. */
export function checkVsockAddress(path: string | undefined): VsockAddress {
  if (!path) throw new ChannelConfigError('must specify a path for this channel');
  const addr = parseVsockAddress(path);
  if (!addr) throw new ChannelConfigError(`error parsing address '${path}'`);
  return addr;
}

/** The addon's vsock functions (native/vsock.cc), when this build has them. */
export interface VsockNative {
  vsockListen(cid: number, port: number): number;
  vsockAccept(listenFd: number): Promise<number>;
  /** Wakes an accept() parked on the listening socket (absent in older builds). */
  vsockShutdown?(listenFd: number): void;
}

export function loadVsockNative(): VsockNative | { error: string } {
  const r = loadAddon();
  if ('error' in r) return { error: `the native addon is not available (${r.error.message.split('\n')[0]})` };
  const a = r.addon as unknown as Partial<VsockNative>;
  if (typeof a.vsockListen !== 'function' || typeof a.vsockAccept !== 'function') return { error: 'the native addon has no vsock support' };
  return a as VsockNative;
}

export function vsockUnsupported(path: string, why: string): never {
  throw new ChannelConfigError(
    `vsock-listen is not supported by this build: Node.js has no AF_VSOCK sockets and ${why} (address '${path}'); use virtio-serial or unix-listen`,
  );
}

const READ_SIZE = 64 * 1024;
/** After a failed accept (e.g. EMFILE) the next attempt waits this long: no spin. */
const ACCEPT_RETRY_MS = 100;

export class VsockListenChannel extends EventEmitter implements Channel {
  private listenFd?: number;
  private fd?: number;
  private session = 0;
  private reading = false;
  private paused = false;
  private closed = false;
  /** Replies go to the client they are owed to; a host that vanished mid-reply is a disconnect, never the end of the agent. */
  private readonly writer = new SerialFdWriter(
    (session) => (session === this.session && !this.closed ? this.fd : undefined),
    (session) => this.endClient(session),
  );

  constructor(private readonly address: VsockAddress, private readonly text: string, private readonly native: VsockNative) { super(); }

  get description(): string { return `vsock-listen:${this.text}`; }

  async start(): Promise<void> {
    try {
      this.listenFd = this.native.vsockListen(this.address.cid, this.address.port);
    } catch (e) {
      throw new Error(`error listening on vsock '${this.text}': ${errnoText(e as NodeJS.ErrnoException)}`);
    }
    this.acceptNext();
  }

  private acceptNext(): void {
    if (this.closed || this.listenFd === undefined) return;
    this.native.vsockAccept(this.listenFd).then(
      (fd) => {
        if (this.closed) { fs.close(fd, () => undefined); return; }
        this.fd = fd;
        const session = ++this.session;
        this.emit('connect');
        this.pump(session);
      },
      (e) => {
        if (this.closed) return;
        // The periodic wake-up of accept() (SO_RCVTIMEO): just wait again.
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') { this.acceptNext(); return; }
        this.emit('error', new Error(`vsock accept failed: ${errnoText(e as NodeJS.ErrnoException)}`));
        setTimeout(() => this.acceptNext(), ACCEPT_RETRY_MS);
      },
    );
  }

  private pump(session: number): void {
    if (this.reading || this.paused || this.closed || session !== this.session || this.fd === undefined) return;
    this.reading = true;
    const fd = this.fd;
    const buf = Buffer.allocUnsafe(READ_SIZE);
    const end = beginPoolOp(fd);
    fs.read(fd, buf, 0, READ_SIZE, null, (err, n) => {
      end();
      this.reading = false;
      if (session !== this.session || this.closed) { this.pump(this.session); return; }
      if (err && err.code === 'EINTR') { this.pump(session); return; }
      // The accepted socket is blocking; should it not be, poll gently rather than spin.
      if (err && err.code === 'EAGAIN') { setTimeout(() => this.pump(session), 10); return; }
      if (err || n === 0) { this.endClient(session); return; }
      this.emit('data', n < READ_SIZE / 4 ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n));
      this.pump(session);
    });
  }

  /** The host closed (or broke) the connection: drop it and take the next one. */
  private endClient(session: number): void {
    if (session !== this.session || this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    this.session++;
    this.wakeAndClose(fd);
    this.emit('disconnect');
    this.acceptNext();
  }

  /**
   * A read parked in the pool on this (blocking) socket would hold the descriptor open, and a
   * queued one would start on a reused number: shut the socket down to wake it, close when idle.
   */
  private wakeAndClose(fd: number): void {
    try { this.native.vsockShutdown?.(fd); } catch { /* already shut */ }
    closeFd(fd);
  }

  write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    return this.writer.write(this.session, chunks);
  }

  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; this.pump(this.session); }

  async close(): Promise<void> {
    this.closed = true;
    this.session++;
    // The accept thread is parked in accept(): wake it first, or it keeps the process alive.
    if (this.listenFd !== undefined) { try { this.native.vsockShutdown?.(this.listenFd); } catch { /* already closed */ } }
    if (this.fd !== undefined) this.wakeAndClose(this.fd);
    if (this.listenFd !== undefined) fs.close(this.listenFd, () => undefined);
    this.fd = undefined;
    this.listenFd = undefined;
  }
}
