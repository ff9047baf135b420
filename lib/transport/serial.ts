/**
 * `-m isa-serial`: a serial tty (/dev/ttyS0) in raw mode. The line settings are qemu-ga's
 * (no input translation, no flow control, no output processing, no echo, no signals, no line
 * editing, VMIN 1 / VTIME 0, 38400 baud) plus 8-bit characters and CLOCAL, so a missing
 * carrier neither blocks the open nor hangs the line up. They are applied with stty(1) on our
 * own descriptor: Node's setRawMode is not enough, it leaves output processing (ONLCR) on,
 * which would turn each reply's "\n" into "\r\n".
 *
 * Reading and writing then go through tty.ReadStream (libuv watches a tty with epoll, so
 * requests are served as soon as they arrive). A hang-up (EOF, EIO) closes the line; qemu-ga
 * then idles without a channel, node-qga does the same unless --retry-path asks to reopen it.
 */
import * as fs from 'node:fs';
import * as tty from 'node:tty';
import { childProcess } from '../platform/lazy-builtins';
import { ReopeningChannel, errnoText, type DeviceChannelOptions } from './reopen';

/** stty operands: `raw` is -ignbrk -brkint -ignpar -parmrk -inpck -istrip -inlcr -igncr -icrnl -ixon -ixoff -icanon -opost -isig -ixany -imaxbel min 1 time 0. */
export const RAW_STTY_ARGS = ['raw', '-echo', '-echoe', '-echok', '-echonl', '-echoctl', '-echoke', '-iexten', 'cs8', '-parenb', 'clocal', '38400'];

/** Puts the tty open on `fd` in raw mode; returns an error text, or undefined when done. */
export function setRawLine(fd: number): string | undefined {
  const r = childProcess().spawnSync('stty', RAW_STTY_ARGS, { stdio: [fd, 'ignore', 'pipe'], timeout: 10000 });
  if (r.error) return `stty: ${r.error.message}`;
  if (r.status !== 0) return `stty: ${r.stderr.toString().trim() || `exit status ${r.status}`}`;
  return undefined;
}

export class IsaSerialChannel extends ReopeningChannel {
  private stream?: tty.ReadStream;
  private idleTimer?: NodeJS.Timeout;

  constructor(path: string, opts: DeviceChannelOptions) { super(path, opts); }

  get description(): string { return `isa-serial:${this.path}`; }

  protected async openDevice(session: number): Promise<void> {
    // O_NONBLOCK: a serial port without carrier would otherwise block the open.
    const flags = fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK;
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => fs.open(this.path, flags, (e, f) => (e ? reject(e) : resolve(f))));
    } catch (e) {
      throw new Error(errnoText(e as NodeJS.ErrnoException));
    }
    if (!tty.isatty(fd)) { fs.closeSync(fd); throw new Error('not a terminal'); }
    const sttyError = setRawLine(fd);
    if (sttyError) {
      // Without stty, Node's raw mode is the next best thing (output CR/LF translation may remain).
      this.log.warn(`${this.description}: cannot set the line to raw mode with ${sttyError}; using Node's raw mode`);
    }
    if (session !== this.session || this.closed) { fs.closeSync(fd); return; }
    const stream = new tty.ReadStream(fd);
    if (sttyError) stream.setRawMode(true);
    this.stream = stream;
    const ended = (why: string) => {
      if (this.stream !== stream || session !== this.session) return;
      this.hangUp(why);
    };
    stream.on('data', (d: Buffer) => { if (this.stream === stream) this.emit('data', d); });
    stream.on('end', () => ended('hang-up (end of file)'));
    stream.on('error', (e: NodeJS.ErrnoException) => ended(`hang-up (${errnoText(e)})`));
    stream.on('close', () => ended('line closed'));
    if (!this.paused) setImmediate(() => { if (this.stream === stream && !this.paused) stream.resume(); });
    else stream.pause();
  }

  private hangUp(why: string): void {
    if (this.opts.retryPath) { this.lost(why); return; }
    // qemu-ga closes the line on EOF and idles; so does node-qga without --retry-path.
    this.log.warn(`${this.description}: ${why}; the agent idles without a channel (use -r/--retry-path to reopen it)`);
    this.closeDevice();
    this.isOpen = false;
    // Nothing else holds the event loop now; the agent must stay up (for signals, and as qemu-ga does).
    this.idleTimer ??= setInterval(() => undefined, 1 << 30);
    this.emit('disconnect');
  }

  override async close(): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    await super.close();
  }

  protected closeDevice(): void {
    const s = this.stream;
    this.stream = undefined;
    s?.destroy();
  }

  protected onPauseChange(): void {
    if (this.paused) this.stream?.pause(); else this.stream?.resume();
  }

  write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    const s = this.stream;
    if (!s || s.destroyed || !s.writable) return Promise.resolve();
    return new Promise((resolve) => {
      let left = chunks.length;
      let failed = false;
      if (left === 0) { resolve(); return; }
      const done = (e?: Error | null) => {
        if (e && !failed) { failed = true; this.log.warn(`error sending reply on ${this.description}: ${e.message}`); }
        if (--left === 0 || failed) resolve();
      };
      s.cork();
      for (const c of chunks) {
        if (typeof c === 'string') s.write(c, 'latin1', done); else s.write(c, done);
      }
      s.uncork();
    });
  }
}
