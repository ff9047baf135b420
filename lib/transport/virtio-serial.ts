/**
 * `-m virtio-serial`: a character device (/dev/virtio-ports/…). Node's sockets cannot wrap a
 * char device (libuv takes it for a file), so the port is read with fs.read on libuv's thread
 * pool. It is opened O_NONBLOCK, as qemu-ga opens it: a blocking read parked in the pool could
 * not be interrupted, and Node's exit waits for every pool thread, so SIGTERM would hang until
 * the host next sent a byte. Without a poll(2) in pure Node, "no data yet" (EAGAIN) is answered
 * with an adaptive back-off: a few immediate retries (a host sending request after request is
 * served without delay), then 1, 2, 5, 10, 20 and at most 50 ms between attempts when idle
 * (20 reads a second; measured at about 1% of a core on a busy 2-core machine, and up to
 * 50 ms before the first request after a quiet spell is seen). A poll(2)-based watcher in
 * the addon would remove both costs.
 *
 * When the host side is not connected the port answers reads with 0 (EIO for a tty standing
 * in for it). As qemu-ga does, the agent then backs off 100 ms and tries again,
 * keeping the device open: about 10 wake-ups a second, never a spin, never an exit. The parser
 * is not reset when the host comes back (qemu-ga does not either; hosts flush a half request
 * with 0xFF + guest-sync-delimited), so no 'connect' is emitted for a host reconnect, only when
 * the device itself is (re)opened.
 *
 * A hot-unplugged port keeps answering reads with 0 (the kernel marks it hung up) and its node
 * disappears, so with --retry-path the channel checks once a second while hung up that the path
 * still names the device it holds; when it is gone or replaced the device is reopened.
 */
import * as fs from 'node:fs';
import { ReopeningChannel, type DeviceChannelOptions } from './reopen';
import { errnoText, toBuffers, writeAllToFd } from './fd-io';

const READ_SIZE = 64 * 1024;
/** qemu-ga sleeps 100 ms when the host is not connected. */
const HANGUP_BACKOFF_MS = 100;
/** Waits after successive EAGAINs (the host is connected but quiet); 0 = next turn of the loop. */
const IDLE_BACKOFF_MS = [0, 0, 0, 0, 1, 1, 2, 5, 10, 20, 50];
/** How often, while hung up, the path is checked against the open device (retry-path only). */
const IDENTITY_CHECK_MS = 1000;

const NO_DATA_CODES = new Set(['EAGAIN', 'EWOULDBLOCK']);

interface Identity { dev: number; ino: number; rdev: number }

export class VirtioSerialChannel extends ReopeningChannel {
  private fd?: number;
  private identity?: Identity;
  private reading = false;
  private idleStreak = 0;
  private hungUpSince = 0;
  private lastIdentityCheck = 0;
  private warnedPathGone = false;
  private backoffTimer?: NodeJS.Timeout;
  /** Replies leave one after another, each whole, even when the device takes them in pieces. */
  private writeChain: Promise<void> = Promise.resolve();

  constructor(path: string, opts: DeviceChannelOptions) { super(path, opts); }

  get description(): string { return `virtio-serial:${this.path}`; }

  protected openDevice(session: number): Promise<void> {
    const flags = fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK; // Node adds O_CLOEXEC
    return new Promise((resolve, reject) => {
      fs.open(this.path, flags, (err, fd) => {
        if (err) { reject(new Error(errnoText(err))); return; }
        fs.fstat(fd, (err2, st) => {
          if (err2) { fs.close(fd, () => undefined); reject(new Error(errnoText(err2))); return; }
          if (session !== this.session || this.closed) { fs.close(fd, () => undefined); resolve(); return; }
          this.fd = fd;
          this.identity = { dev: st.dev, ino: st.ino, rdev: st.rdev };
          this.hungUpSince = 0;
          this.warnedPathGone = false;
          resolve();
          // Start reading once the open is reported (the agent listens for 'connect' first).
          setImmediate(() => this.pump(session));
        });
      });
    });
  }

  protected closeDevice(): void {
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    const fd = this.fd;
    this.fd = undefined;
    this.identity = undefined;
    // A read still sleeping in the pool keeps the file referenced by the kernel; its result is
    // ignored (session check), so closing the number now is safe.
    if (fd !== undefined) fs.close(fd, () => undefined);
  }

  protected onPauseChange(): void {
    if (!this.paused) this.pump(this.session);
  }

  private pump(session: number): void {
    if (this.reading || this.paused || this.closed || this.backoffTimer || session !== this.session || this.fd === undefined) return;
    this.reading = true;
    const buf = Buffer.allocUnsafe(READ_SIZE);
    fs.read(this.fd, buf, 0, READ_SIZE, null, (err, n) => {
      this.reading = false;
      // A result for an earlier device is dropped; the current one (if any) starts reading.
      if (session !== this.session || this.closed) { this.pump(this.session); return; }
      if (err && err.code === 'EINTR') { this.pump(session); return; }
      if (err && NO_DATA_CODES.has(err.code ?? '')) { this.noData(session); return; }
      if (err && err.code !== 'EIO') { this.lost(`read error: ${errnoText(err)}`); return; }
      if (err || n === 0) { this.hungUp(session); return; }
      this.idleStreak = 0;
      if (this.hungUpSince) {
        this.log.debug(`host connected on ${this.description}`);
        this.hungUpSince = 0;
      }
      // Small reads are copied so a 64 KiB buffer is not kept alive for a few bytes.
      this.emit('data', n < READ_SIZE / 4 ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n));
      this.pump(session);
    });
  }

  /** Connected but quiet: read again soon, less often the longer it stays quiet. */
  private noData(session: number): void {
    if (this.hungUpSince) { this.log.debug(`host connected on ${this.description}`); this.hungUpSince = 0; }
    const wait = IDLE_BACKOFF_MS[Math.min(this.idleStreak++, IDLE_BACKOFF_MS.length - 1)];
    if (wait === 0) { setImmediate(() => this.pump(session)); return; }
    this.backoffTimer = setTimeout(() => { this.backoffTimer = undefined; this.pump(session); }, wait);
  }

  private hungUp(session: number): void {
    const now = Date.now();
    if (!this.hungUpSince) {
      this.hungUpSince = now;
      this.lastIdentityCheck = now;
      this.log.debug(`host not connected on ${this.description}, polling`);
    }
    const wait = () => {
      if (session !== this.session || this.closed) return;
      this.backoffTimer = setTimeout(() => { this.backoffTimer = undefined; this.pump(session); }, HANGUP_BACKOFF_MS);
    };
    if (now - this.lastIdentityCheck < IDENTITY_CHECK_MS) { wait(); return; }
    this.lastIdentityCheck = now;
    fs.stat(this.path, (err, st) => {
      if (session !== this.session || this.closed) return;
      const id = this.identity;
      const gone = err ? `channel path disappeared (${errnoText(err)})`
        : id && (st.dev !== id.dev || st.ino !== id.ino || st.rdev !== id.rdev) ? 'channel path now names another device' : undefined;
      if (gone && this.opts.retryPath) { this.lost(gone); return; }
      if (gone && !this.warnedPathGone) {
        // qemu-ga idles on a vanished port; say why nothing will come, and how to avoid it.
        this.warnedPathGone = true;
        this.log.warn(`${this.description}: ${gone}; use -r/--retry-path to reopen it`);
      }
      wait();
    });
  }

  write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    const session = this.session;
    const bufs = toBuffers(chunks);
    const next = this.writeChain.then(async () => {
      const fd = this.fd;
      // A reply owed to a device that went away (or was reopened) is dropped.
      if (fd === undefined || session !== this.session || this.closed) return;
      const failed = await writeAllToFd(fd, bufs, () => this.fd === fd && session === this.session && !this.closed);
      // As qemu-ga: the reply is lost, with a warning; the agent goes on.
      if (failed) this.log.warn(`error sending reply on ${this.description}: ${failed}`);
    });
    this.writeChain = next;
    return next;
  }
}
