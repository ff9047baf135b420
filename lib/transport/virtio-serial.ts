/**
 * `-m virtio-serial`: a character device (/dev/virtio-ports/…). Node's sockets cannot wrap a
 * char device (libuv takes it for a file). It is opened O_NONBLOCK, as qemu-ga opens it, and
 * read in one of two ways:
 *
 * - With the native addon: a readiness watcher (a uv_poll_t on Node's loop, native/fd_watch.cc)
 *   calls back when the port is readable or hung up, and the port is read right then with a
 *   non-blocking read on the loop thread. An idle agent has no wake-ups at all and a request
 *   is seen as soon as it arrives.
 * - Without it: fs.read on libuv's thread pool, with an adaptive back-off on "no data yet"
 *   (EAGAIN): a few immediate retries, then 1, 2, 5, 10, 20 and at most 50 ms between attempts
 *   when idle (about 1% of a core, and up to 50 ms before the first request after a quiet
 *   spell is seen). A blocking read cannot be used: parked in the pool it could not be
 *   interrupted, and Node's exit waits for every pool thread, so SIGTERM would hang until the
 *   host next sent a byte.
 *
 * When the host side is not connected the port reports a hang-up (POLLHUP) and reads return 0
 * (EIO for a tty standing in for it). As qemu-ga does, the agent then backs off 100 ms and tries
 * again, keeping the device open: about 10 wake-ups a second, never a spin, never an exit (the
 * watcher is stopped and restarted by a timer, as qemu-ga re-arms its watch). The parser is not
 * reset when the host comes back (qemu-ga does not either; hosts flush a half request with
 * 0xFF + guest-sync-delimited), so no 'connect' is emitted for a host reconnect, only when the
 * device itself is (re)opened.
 *
 * A hot-unplugged port keeps answering reads with 0 (the kernel marks it hung up) and its node
 * disappears, so with --retry-path the channel checks once a second while hung up that the path
 * still names the device it holds; when it is gone or replaced the device is reopened.
 */
import * as fs from 'node:fs';
import { ReopeningChannel, type DeviceChannelOptions } from './reopen';
import { beginPoolOp, closeFd, errnoText, loadWatchFd, SerialFdWriter, type FdWatcher } from './fd-io';

const READ_SIZE = 64 * 1024;
/** qemu-ga sleeps 100 ms when the host is not connected. */
const HANGUP_BACKOFF_MS = 100;
/** Waits after successive EAGAINs (the host is connected but quiet); 0 = next turn of the loop. */
const IDLE_BACKOFF_MS = [0, 0, 0, 0, 1, 1, 2, 5, 10, 20, 50];
/** Readiness without data (should not happen): a short pause, so even a faulty driver cannot make it spin. */
const SPURIOUS_BACKOFF_MS = 10;
/** How often, while hung up, the path is checked against the open device (retry-path only). */
const IDENTITY_CHECK_MS = 1000;

const NO_DATA_CODES = new Set(['EAGAIN', 'EWOULDBLOCK']);

interface Identity { dev: number; ino: number; rdev: number }

/** Small reads are copied, so the read buffer is reused rather than kept alive for a few bytes. */
function isSmallRead(n: number): boolean { return n < READ_SIZE / 4; }

/** The bytes a read of `n` into `buf` hands on: a copy when small, else the buffer itself (not reused). */
function chunkOf(buf: Buffer, n: number): Buffer {
  return isSmallRead(n) ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n);
}

export class VirtioSerialChannel extends ReopeningChannel {
  private fd?: number;
  private identity?: Identity;
  private reading = false;
  private idleStreak = 0;
  private hungUpSince = 0;
  private lastIdentityCheck = 0;
  private warnedPathGone = false;
  private backoffTimer?: NodeJS.Timeout;
  /** The addon's watchFd; undefined = poll with fs.read. */
  private readonly watchFd = loadWatchFd();
  private watcher?: FdWatcher;
  /** Reused for small reads on the watcher path (each chunk handed on is a copy). */
  private readBuf?: Buffer;
  /**
   * The same for the polling path (one fs.read in flight at a time). Without it every attempt,
   * "no data yet" included, cost a fresh 64 KiB buffer: over a megabyte of garbage a second
   * while idle, and RSS that grew by tens of MiB under reconnecting hosts.
   */
  private pollBuf?: Buffer;
  /**
   * A reply owed to a device that went away (or was reopened) is dropped. One that fails is
   * lost with a warning, as in qemu-ga; the agent goes on.
   */
  private readonly writer = new SerialFdWriter(
    (session) => (session === this.session && !this.closed ? this.fd : undefined),
    (_session, reason) => this.log.warn(`error sending reply on ${this.description}: ${reason}`),
  );

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
          setImmediate(() => this.startReading(session));
        });
      });
    });
  }

  protected closeDevice(): void {
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    // The watch goes first: libuv must not be left watching a closed descriptor.
    this.watcher?.close();
    this.watcher = undefined;
    const fd = this.fd;
    this.fd = undefined;
    this.identity = undefined;
    // A read or write still in the pool finishes first (its result is dropped by the session
    // check); only then is the number free for reuse.
    if (fd !== undefined) closeFd(fd);
  }

  protected onPauseChange(): void {
    if (this.watcher) {
      if (this.paused) this.watcher.stop(); else this.watcher.start();
      return;
    }
    if (!this.paused) this.pump(this.session);
  }

  private startReading(session: number): void {
    if (session !== this.session || this.closed || this.fd === undefined) return;
    if (this.watchFd) {
      try {
        this.watcher = this.watchFd(this.fd, (status) => this.onReady(session, status));
        if (this.paused) this.watcher.stop();
        this.log.debug(`${this.description}: reading when ready (poll watcher)`);
        return;
      } catch (e) {
        this.log.debug(`${this.description}: no readiness watcher (${errnoText(e as NodeJS.ErrnoException)}), polling`);
      }
    }
    this.pump(session);
  }

  /** The watcher saw the port readable (or hung up): read what is there, without blocking. */
  private onReady(session: number, status: number): void {
    const fd = this.fd;
    if (session !== this.session || this.closed || fd === undefined || !this.watcher) return;
    // A libuv error stopped the watch (POLLERR): treat it as a hang-up, watched again after the back-off.
    if (status < 0) { this.hungUp(session); return; }
    for (let first = true; ; first = false) {
      if (this.paused) return;
      const buf = this.readBuf ??= Buffer.allocUnsafe(READ_SIZE);
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, READ_SIZE, null);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EINTR') continue;
        if (NO_DATA_CODES.has(err.code ?? '')) {
          this.hostConnected();
          // After a full buffer "no more" is normal; readiness with nothing to read is not.
          if (first) this.watcher.backoff(SPURIOUS_BACKOFF_MS);
          return;
        }
        if (err.code !== 'EIO') { this.lost(`read error: ${errnoText(err)}`); return; }
        n = 0;
      }
      if (n === 0) { this.hungUp(session); return; }
      this.hostConnected();
      if (!isSmallRead(n)) this.readBuf = undefined;
      this.emit('data', chunkOf(buf, n));
      // A short read took everything there was; the watcher calls again when more comes.
      if (n < READ_SIZE || session !== this.session || this.closed) return;
    }
  }

  private hostConnected(): void {
    if (!this.hungUpSince) return;
    this.log.debug(`host connected on ${this.description}`);
    this.hungUpSince = 0;
  }

  private pump(session: number): void {
    if (this.watcher || this.reading || this.paused || this.closed || this.backoffTimer || session !== this.session || this.fd === undefined) return;
    this.reading = true;
    const buf = this.pollBuf ??= Buffer.allocUnsafe(READ_SIZE);
    const end = beginPoolOp(this.fd);
    fs.read(this.fd, buf, 0, READ_SIZE, null, (err, n) => {
      end();
      this.reading = false;
      // A result for an earlier device is dropped; the current one (if any) starts reading.
      if (session !== this.session || this.closed) { this.pump(this.session); return; }
      if (err && err.code === 'EINTR') { this.pump(session); return; }
      if (err && NO_DATA_CODES.has(err.code ?? '')) { this.noData(session); return; }
      if (err && err.code !== 'EIO') { this.lost(`read error: ${errnoText(err)}`); return; }
      if (err || n === 0) { this.hungUp(session); return; }
      this.idleStreak = 0;
      this.hostConnected();
      if (!isSmallRead(n)) this.pollBuf = undefined;
      this.emit('data', chunkOf(buf, n));
      this.pump(session);
    });
  }

  /** Connected but quiet: read again soon, less often the longer it stays quiet. */
  private noData(session: number): void {
    this.hostConnected();
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
    // Watched (or read) again in 100 ms, as qemu-ga sleeps; the watcher is stopped at once so a
    // hang-up reported over and over cannot spin while the path is checked.
    const watcher = this.watcher;
    watcher?.backoff(HANGUP_BACKOFF_MS);
    const wait = () => {
      if (session !== this.session || this.closed || watcher) return;
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
    return this.writer.write(this.session, chunks);
  }
}
