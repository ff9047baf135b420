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
  constructor(private verbose = false, private file?: string) {
    this.stream = file ? fs.createWriteStream(file, { flags: 'a', mode: 0o640 }) : process.stderr;
    if (file) this.stream.on('error', () => { this.stream = process.stderr; });
  }
  setVerbose(v: boolean): void { this.verbose = v; }
  /** Mute while frozen; unmute on thaw. */
  setMuted(m: boolean): void { this.muted = m; }
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
  close(): void { if (this.file) (this.stream as fs.WriteStream).end?.(); }
}
