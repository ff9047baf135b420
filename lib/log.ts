import * as fs from 'node:fs';

export type LogLevel = 'error' | 'critical' | 'warning' | 'message' | 'info' | 'debug';
const RANK: Record<LogLevel, number> = { error: 0, critical: 0, warning: 1, message: 2, info: 3, debug: 4 };

/**
 * Logs as qemu-ga does (`<secs>.<usec>: <level>: <msg>`), to stderr or a file. Writes are
 * asynchronous (never block the agent); while the guest is frozen the logger is muted,
 * because a write to a frozen filesystem would hang.
 */
export class Logger {
  private stream: NodeJS.WritableStream;
  private muted = false;
  private reopenPending = false;
  constructor(private verbose = false, private file?: string) {
    this.stream = this.open();
  }
  private open(): NodeJS.WritableStream {
    if (!this.file) return process.stderr;
    // O_NOFOLLOW: a symlink planted at the log path by another user is not written through.
    const { O_WRONLY, O_CREAT, O_APPEND, O_NOFOLLOW } = fs.constants;
    let fd: number;
    try {
      fd = fs.openSync(this.file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o640);
    } catch (e) {
      process.stderr.write(`node-qga: cannot open log file ${this.file}: ${(e as Error).message}; logging to stderr\n`);
      return process.stderr;
    }
    const s = fs.createWriteStream(this.file, { fd });
    s.on('error', () => { if (this.stream === s) this.stream = process.stderr; });
    return s;
  }
  /**
   * Start a new log file (SIGHUP, after logrotate moved the old one). While frozen the file
   * may sit on a frozen filesystem, so the reopen waits for the thaw.
   */
  reopen(): void {
    if (!this.file) return;
    if (this.muted) { this.reopenPending = true; return; }
    const old = this.stream as fs.WriteStream;
    this.stream = this.open();
    old.end?.();
  }
  setVerbose(v: boolean): void { this.verbose = v; }
  /** Mute while frozen; unmute on thaw. */
  setMuted(m: boolean): void {
    this.muted = m;
    if (!m && this.reopenPending) { this.reopenPending = false; this.reopen(); }
  }
  get isMuted(): boolean { return this.muted; }
  log(level: LogLevel, msg: string): void {
    if (this.muted) return;
    if (!this.verbose && RANK[level] > 1) return;
    const now = Date.now() * 1000 + (Number(process.hrtime.bigint() / 1000n) % 1000);
    const secs = Math.floor(now / 1e6), usec = String(now % 1e6).padStart(6, '0');
    this.stream.write(`${secs}.${usec}: ${level}: ${msg}\n`);
  }
  error(msg: string): void { this.log('error', msg); }
  warn(msg: string): void { this.log('warning', msg); }
  info(msg: string): void { this.log('info', msg); }
  debug(msg: string): void { this.log('debug', msg); }
  /** Ends the log file; resolves once every line written so far is in it (call before exiting). */
  close(): Promise<void> {
    if (!this.file || this.stream === process.stderr) return Promise.resolve();
    const s = this.stream as fs.WriteStream;
    return new Promise((resolve) => { s.end(() => resolve()); s.once('error', () => resolve()); });
  }
}
