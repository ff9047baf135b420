/**
 * What the device channels (virtio-serial, isa-serial) share: opening the device, and what
 * happens when it cannot be opened or goes away. With `-r/--retry-path` the channel waits and
 * reopens the path forever, logging qemu-ga's lines; without it a device that cannot be opened
 * at start-up is an error, and a device lost later ends the agent through the 'fatal' event.
 */
import { EventEmitter } from 'node:events';
import type { Channel } from './types';
import { Logger } from '../log';

/** qemu-ga waits 5 s between attempts; tests shorten it with NODE_QGA_RETRY_INTERVAL_MS. */
export function retryIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.NODE_QGA_RETRY_INTERVAL_MS);
  return Number.isFinite(v) && v > 0 ? v : 5000;
}

export interface DeviceChannelOptions {
  retryPath: boolean;
  /** Used until cli.ts hands over the agent's logger with setLogger(). */
  verbose?: boolean;
  logfile?: string;
}

export abstract class ReopeningChannel extends EventEmitter implements Channel {
  protected closed = false;
  /** Incremented on every open, so callbacks that belong to an earlier device are ignored. */
  protected session = 0;
  protected isOpen = false;
  protected paused = false;
  private retryTimer?: NodeJS.Timeout;
  private logger?: Logger;

  constructor(readonly path: string, protected readonly opts: DeviceChannelOptions) { super(); }

  abstract get description(): string;
  /** Opens the device and starts reading; rejects with a readable reason. */
  protected abstract openDevice(session: number): Promise<void>;
  /** Stops reading and closes the device (idempotent). */
  protected abstract closeDevice(): void;
  abstract write(chunks: ReadonlyArray<Buffer | string>): Promise<void>;
  protected abstract onPauseChange(): void;

  /** The agent's logger (so channel messages go where the agent's do, and are muted while frozen). */
  setLogger(log: Logger): void { this.logger = log; }
  protected get log(): Logger {
    this.logger ??= new Logger(this.opts.verbose ?? false, this.opts.logfile);
    return this.logger;
  }

  async start(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      const reason = `error opening channel '${this.path}': ${(e as Error).message}`;
      if (!this.opts.retryPath) throw new Error(reason);
      // The agent is up and waits for its device, as qemu-ga -r does.
      this.log.error(reason);
      this.log.error('failed to initialize guest agent channel');
      this.scheduleRetry();
    }
  }

  private async open(): Promise<void> {
    const session = ++this.session;
    await this.openDevice(session);
    if (this.closed || session !== this.session) { this.closeDevice(); return; }
    this.isOpen = true;
    // A newly opened device is a new session: the agent starts with a clean parser.
    this.emit('connect');
  }

  /**
   * The device is gone or broken (read error, path deleted or replaced). With retry-path it is
   * reopened after the interval; otherwise the agent ends ('fatal').
   */
  protected lost(reason: string): void {
    if (this.closed) return;
    this.session++;
    this.isOpen = false;
    this.closeDevice();
    this.emit('disconnect');
    if (!this.opts.retryPath) {
      this.emit('fatal', new Error(`channel ${this.description} lost: ${reason}`));
      return;
    }
    this.log.warn(`channel ${this.description}: ${reason}`);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    this.log.warn('agent stopped unexpectedly, restarting...');
    this.log.warn('waiting for channel path...');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed) return;
      this.open().then(
        () => this.log.info(`channel ${this.description} opened`),
        (e) => {
          this.log.error(`error opening channel '${this.path}': ${(e as Error).message}`);
          this.log.error('failed to initialize guest agent channel');
          this.scheduleRetry();
        },
      );
    }, retryIntervalMs());
  }

  pause(): void { this.paused = true; this.onPauseChange(); }
  resume(): void { this.paused = false; this.onPauseChange(); }

  async close(): Promise<void> {
    this.closed = true;
    this.session++;
    this.isOpen = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.closeDevice();
  }
}

export { errnoText } from './fd-io';
