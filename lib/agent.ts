/**
 * Wires a channel to the decoder and the dispatcher. Requests run one at a time, in order
 * (as in qemu-ga), replies leave in the same order; reading pauses while too much work is
 * queued, so a flood of pipelined requests cannot grow memory without bound.
 */
import type { Channel } from './transport/types';
import { StreamDecoder, type DecodedMessage, type StringScanner } from './protocol/decoder';
import { loadAddon } from './backend/load-addon';
import { errorReply } from './protocol/encoder';
import { Dispatcher, type Reply } from './dispatcher';
import { allCommands } from './commands';
import type { AgentServices, CommandDef } from './commands/define';
import type { AgentConfig } from './config-types';
import type { SystemBackend } from './backend/types';
import { Logger } from './log';
import { StateStore } from './state';
import type { FileTable } from './commands/file';
import { createFreezeController, type FreezeController } from './freeze/controller';

const MAX_QUEUED = 256;
/** Replies are batched into one write until this many bytes, or until the queue is empty. */
const BATCH_BYTES = 256 * 1024;

const QUICK = new Set(['guest-ping', 'guest-sync', 'guest-sync-delimited', 'guest-info', 'guest-get-time', 'guest-fsfreeze-status']);

/** The addon's string scan for the decoder (native backend only; the fallback stays pure JS). */
function nativeStringScanner(): StringScanner | undefined {
  const r = loadAddon();
  if ('error' in r || typeof r.addon.scanJsonString !== 'function') return undefined;
  return r.addon.scanJsonString.bind(r.addon);
}

interface Queued { msg: DecodedMessage; generation: number }

export interface AgentOptions {
  config: AgentConfig;
  backend: SystemBackend;
  channel: Channel;
  log?: Logger;
  state?: StateStore;
  commands?: readonly CommandDef[];
}

export class Agent {
  readonly config: AgentConfig;
  readonly backend: SystemBackend;
  readonly channel: Channel;
  readonly log: Logger;
  readonly state: StateStore;
  readonly dispatcher: Dispatcher;
  readonly services: AgentServices = {};
  private readonly decoder: StreamDecoder;
  private queue: Queued[] = [];
  private running = false;
  private paused = false;
  /** Bumped on every new connection: replies owed to a client that left are dropped. */
  private generation = 0;
  private idle: Array<() => void> = [];
  /** Replies batched for one write, their size, the connection they belong to, and what to call once written. */
  private out: Array<Buffer | string> = [];
  private outBytes = 0;
  private outGeneration = 0;
  private releases: Array<() => void> = [];

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.backend = opts.backend;
    this.channel = opts.channel;
    this.log = opts.log ?? new Logger(opts.config.verbose, opts.config.logfile);
    this.state = opts.state ?? StateStore.open(opts.config.statedir);
    this.decoder = new StreamDecoder(this.backend.kind === 'native' ? nativeStringScanner() : undefined);
    this.dispatcher = new Dispatcher(opts.commands ?? allCommands, { blockRpcs: opts.config.blockRpcs, allowRpcs: opts.config.allowRpcs }, {
      backend: this.backend, config: this.config, state: this.state, log: this.log, services: this.services,
    });
    this.channel.on('data', (d: Buffer) => this.onData(d));
    this.channel.setIdleProbe?.(() => !this.running && this.queue.length === 0);
    this.channel.on('connect', () => {
      // A new client gets a clean parser (qemu-ga keeps the old client's half request).
      this.generation++;
      this.decoder.reset();
      this.log.debug(`client connected on ${this.channel.description}`);
    });
    this.channel.on('disconnect', () => this.log.debug('client disconnected'));
    this.channel.on('eof', (finish: () => void) => { void this.whenIdle().then(finish); });
    this.channel.on('error', (e: Error) => this.log.warn(`channel error: ${e.message}`));
  }

  /** The freeze controller: frozen state, guardian, watchdog (created here so recovery runs before serving). */
  get freeze(): FreezeController {
    return (this.services.freeze ??= createFreezeController({ backend: this.backend, config: this.config, state: this.state, log: this.log }, {
      onDeferredExit: () => this.emitDeferredExit(),
    }));
  }

  private deferredExit?: () => void;
  /** Called when SIGTERM arrived while frozen and the guest has been thawed since. */
  onDeferredExit(fn: () => void): void { this.deferredExit = fn; }
  private emitDeferredExit(): void { this.deferredExit?.(); }

  async start(): Promise<void> {
    for (const w of this.state.warnings) this.log.warn(w);
    // A marker from a previous instance is settled first: frozen (as qemu-ga) or thawed by the guardian.
    await this.freeze.recover();
    await this.channel.start();
    this.log.info(`node-qga listening on ${this.channel.description}, ${this.backend.kind} backend`);
  }

  async stop(): Promise<void> {
    await this.channel.close();
    await this.freeze.shutdown();
    // Created by the first guest-file-open (commands/file.ts), so often absent.
    (this.services.files as FileTable | undefined)?.closeAll();
  }

  /** Resolves once every queued request has been answered (used by tests and shutdown). */
  whenIdle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private onData(chunk: Buffer): void {
    const msgs = this.decoder.push(chunk);
    if (msgs.length === 0) return;
    for (const msg of msgs) this.queue.push({ msg, generation: this.generation });
    if (this.queue.length > MAX_QUEUED && !this.paused) { this.paused = true; this.channel.pause(); }
    if (!this.running) this.drain();
  }

  /**
   * Serves the queue. Runs synchronously for as long as every reply is ready at once (quick
   * commands, decode errors) and the channel takes the bytes: a sequential guest-ping costs
   * no Promise and no microtask. The first handler still working, or a write that must be
   * waited for, continues the rest asynchronously (drainAsync).
   */
  private drain(): void {
    this.running = true;
    let wait: Promise<void> | undefined;
    try {
      wait = this.serveReady();
    } catch (e) {
      this.internalError(e);
    }
    if (wait) void this.drainAsync(wait); else this.finishDrain();
  }

  private async drainAsync(wait: Promise<void> | undefined): Promise<void> {
    try {
      while (wait) {
        await wait;
        wait = this.serveReady();
      }
    } catch (e) {
      this.internalError(e);
    }
    this.finishDrain();
  }

  private finishDrain(): void {
    this.running = false;
    if (this.paused) { this.paused = false; this.channel.resume(); }
    const waiters = this.idle;
    this.idle = [];
    for (const w of waiters) w();
    if (this.queue.length > 0) this.drain();
  }

  private internalError(e: unknown): void {
    this.log.error(`internal error while serving requests: ${(e as Error)?.stack ?? e}`);
    // Whatever was batched is dropped with the failed run; its buffers are given back.
    const done = this.releases;
    this.out = [];
    this.outBytes = 0;
    this.releases = [];
    for (const r of done) r();
  }

  /**
   * Answers queued requests in order until the queue is empty; returns what must be waited
   * for first (a handler's result, whose reply is then batched, or a write) otherwise.
   */
  private serveReady(): Promise<void> | undefined {
    while (this.queue.length > 0) {
      const { msg, generation } = this.queue.shift()!;
      if (this.paused && this.queue.length < MAX_QUEUED / 2) { this.paused = false; this.channel.resume(); }
      if (generation !== this.generation) continue;
      if (generation !== this.outGeneration) {
        // A batch still held here belongs to a client that left (afterReply writes it before
        // another connection's request otherwise): flush drops it, nothing to wait for.
        void this.flush();
        this.outGeneration = generation;
      }
      if ('error' in msg) {
        this.batch({ chunks: [errorReply('GenericError', msg.error, undefined, false)] });
      } else {
        if (this.config.verbose) {
          const name = commandName(msg);
          this.log.debug(`processing command ${name ?? '(invalid)'}`);
        }
        let reply: Reply | null | Promise<Reply | null>;
        try {
          reply = this.dispatcher.dispatch(msg.value);
        } catch (e) {
          msg.release?.();
          throw e;
        }
        if (reply instanceof Promise) {
          return reply.then((r) => { msg.release?.(); this.batch(r); return this.afterReply(); },
            (e: unknown) => { msg.release?.(); throw e; });
        }
        msg.release?.();
        this.batch(reply);
      }
      const wait = this.afterReply();
      if (wait) return wait;
    }
    return undefined;
  }

  private batch(reply: Reply | null): void {
    if (!reply) return;
    for (const c of reply.chunks) { this.out.push(c); this.outBytes += c.length; }
    if (reply.release) this.releases.push(reply.release);
  }

  /**
   * Writes the batch unless the next request may join it: replies are batched only ahead of
   * quick commands of the same connection (a slow one must not hold earlier replies back),
   * up to BATCH_BYTES.
   */
  private afterReply(): Promise<void> | undefined {
    const next = this.queue[0];
    if (next && this.outBytes < BATCH_BYTES && next.generation === this.outGeneration && isBatchable(next.msg)) return undefined;
    return this.flush();
  }

  /** Writes the batch; returns a Promise only when it must be waited for (buffers to give back, back-pressure). */
  private flush(): Promise<void> | undefined {
    if (this.out.length === 0) return undefined;
    const chunks = this.out;
    const done = this.releases;
    this.outBytes = 0;
    if (this.outGeneration !== this.generation) {
      // Owed to a client that left: dropped.
      this.out.length = 0;
      if (done.length > 0) { this.releases = []; for (const r of done) r(); }
      return undefined;
    }
    if (done.length === 0 && this.channel.send) {
      // Nothing to give back after the write: the channel copies or keeps the chunks itself.
      const wait = this.channel.send(chunks);
      this.out.length = 0;
      return wait;
    }
    this.out = [];
    this.releases = [];
    return this.channel.write(chunks).then(() => { for (const r of done) r(); });
  }
}

function commandName(msg: DecodedMessage): string | undefined {
  if ('error' in msg || !(msg.value instanceof Map)) return undefined;
  const name = msg.value.get('execute');
  return typeof name === 'string' ? name : undefined;
}

/** Decode errors and quick commands may wait behind earlier replies; nothing else does. */
function isBatchable(msg: DecodedMessage): boolean {
  if ('error' in msg) return true;
  const name = commandName(msg);
  return name !== undefined && QUICK.has(name);
}
