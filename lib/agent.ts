/**
 * Wires a channel to the decoder and the dispatcher. Requests run one at a time, in order
 * (as in qemu-ga), replies leave in the same order; reading pauses while too much work is
 * queued, so a flood of pipelined requests cannot grow memory without bound.
 */
import type { Channel } from './transport/types';
import { StreamDecoder, type DecodedMessage, type StringScanner } from './protocol/decoder';
import { loadAddon } from './backend/load-addon';
import { errorReply } from './protocol/encoder';
import { Dispatcher } from './dispatcher';
import { allCommands } from './commands';
import type { AgentServices, CommandDef } from './commands/define';
import type { AgentConfig } from './config-types';
import type { SystemBackend } from './backend/types';
import { Logger } from './log';
import { StateStore } from './state';
import { FileTable } from './commands/file';
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

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.backend = opts.backend;
    this.channel = opts.channel;
    this.log = opts.log ?? new Logger(opts.config.verbose, opts.config.logfile);
    this.state = opts.state ?? StateStore.open(opts.config.statedir);
    this.services.files = new FileTable();
    this.decoder = new StreamDecoder(this.backend.kind === 'native' ? nativeStringScanner() : undefined);
    this.dispatcher = new Dispatcher(opts.commands ?? allCommands, { blockRpcs: opts.config.blockRpcs, allowRpcs: opts.config.allowRpcs }, {
      backend: this.backend, config: this.config, state: this.state, log: this.log, services: this.services,
    });
    this.channel.on('data', (d: Buffer) => this.onData(d));
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
    // A marker from a previous instance is settled first: frozen (as qemu-ga) or thawed by the guardian.
    await this.freeze.recover();
    await this.channel.start();
    this.log.info(`node-qga listening on ${this.channel.description}, ${this.backend.kind} backend`);
  }

  async stop(): Promise<void> {
    await this.channel.close();
    await this.freeze.shutdown();
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
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    let out: Array<Buffer | string> = [];
    let outBytes = 0;
    let outGeneration = this.generation;
    let releases: Array<() => void> = [];
    const flush = async () => {
      if (out.length === 0) return;
      const chunks = out;
      const done = releases;
      out = [];
      outBytes = 0;
      releases = [];
      try {
        if (outGeneration === this.generation) await this.channel.write(chunks);
      } finally {
        for (const r of done) r();
      }
    };
    try {
      while (this.queue.length > 0) {
        const { msg, generation } = this.queue.shift()!;
        if (this.paused && this.queue.length < MAX_QUEUED / 2) { this.paused = false; this.channel.resume(); }
        if (generation !== this.generation) continue;
        if (generation !== outGeneration) { await flush(); outGeneration = generation; }
        let chunks: Array<Buffer | string> | undefined;
        if ('error' in msg) {
          chunks = [errorReply('GenericError', msg.error, undefined, false)];
        } else {
          const name = msg.value instanceof Map ? msg.value.get('execute') : undefined;
          if (this.config.verbose) this.log.debug(`processing command ${typeof name === 'string' ? name : '(invalid)'}`);
          // Replies are batched only behind quick commands: a slow one must not hold earlier replies back.
          if (out.length > 0 && !(typeof name === 'string' && QUICK.has(name))) await flush();
          let reply;
          try {
            reply = await this.dispatcher.dispatch(msg.value);
          } finally {
            msg.release?.();
          }
          chunks = reply?.chunks;
          if (reply?.release) releases.push(reply.release);
        }
        if (chunks) {
          for (const c of chunks) { out.push(c); outBytes += c.length; }
        }
        if (this.queue.length === 0 || outBytes >= BATCH_BYTES) await flush();
      }
      await flush();
    } catch (e) {
      this.log.error(`internal error while serving requests: ${(e as Error).stack ?? e}`);
    } finally {
      this.running = false;
      if (this.paused) { this.paused = false; this.channel.resume(); }
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
    }
    if (this.queue.length > 0) void this.drain();
  }
}
