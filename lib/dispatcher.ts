/**
 * Turns one decoded request into its reply: envelope checks in qemu-ga's order and words,
 * command lookup, the block/allow lists and the frozen allow-list, argument validation
 * against the command's declaration, then the handler. Replies come back as ready-to-send
 * chunks; the dispatcher does no I/O.
 */
import type { CommandContext, CommandDef, CommandRegistryView } from './commands/define';
import { RawReply } from './commands/define';
import { QgaError } from './errors';
import { errorReply, idSuffix, qdictOrder, successReply } from './protocol/encoder';
import { validateArguments } from './protocol/validate';
import type { JsonValue } from './protocol/values';

export const SENTINEL = Buffer.from([0xff]);

/** Handlers read their arguments; none writes to them, so requests without any share one. */
const NO_ARGUMENTS = new Map<string, JsonValue>();

/** `{"return": {}}` and no id: the reply of guest-ping and of every command returning nothing, encoded once. */
const EMPTY_RETURN_LINE = successReply({}, undefined, false);
const EMPTY_RETURN_BYTES = Buffer.from(EMPTY_RETURN_LINE, 'latin1');
/** Shared by every such reply: the agent only reads replies, and writes their chunks in order. */
const EMPTY_RETURN_REPLY: Reply = Object.freeze({ chunks: Object.freeze([EMPTY_RETURN_BYTES]) as unknown as Buffer[] });

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}

function isEmptyObject(v: unknown): boolean {
  if (v === undefined) return true;
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Map || v instanceof RawReply) return false;
  for (const k in v) if ((v as Record<string, unknown>)[k] !== undefined) return false;
  return Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * The first envelope error in qemu-ga's order, or undefined. The common case (only known
 * members, well typed) is checked without sorting; the QDict order decides only between errors.
 */
function checkEnvelope(request: Map<string, JsonValue>): QgaError | undefined {
  let bad = false;
  for (const [key, v] of request) {
    if (key === 'execute') { if (typeof v !== 'string') bad = true; }
    else if (key === 'arguments') { if (!(v instanceof Map)) bad = true; }
    else if (key !== 'id') bad = true;
  }
  if (!bad) return undefined;
  for (const key of qdictOrder([...request.keys()])) {
    const v = request.get(key);
    if (key === 'execute') { if (typeof v !== 'string') return new QgaError("QMP input member 'execute' must be a string"); }
    else if (key === 'arguments') { if (!(v instanceof Map)) return new QgaError("QMP input member 'arguments' must be an object"); }
    else if (key !== 'id') return new QgaError(`QMP input member '${key}' is unexpected`);
  }
  return undefined;
}

export interface Reply {
  chunks: Array<Buffer | string>;
  /** Called after the chunks have been written (or dropped). */
  release?: () => void;
}

export interface DispatcherOptions {
  blockRpcs: readonly string[];
  allowRpcs?: readonly string[];
}

export class Dispatcher implements CommandRegistryView {
  private readonly commands = new Map<string, CommandDef>();
  private readonly blocked: Set<string>;
  private readonly allowed?: Set<string>;

  /** What handlers get (besides idSuffix); the registry member is this dispatcher. */
  private readonly context: Omit<CommandContext, 'idSuffix'>;
  /** The context of every request without an id (most of them), built once. */
  private readonly contextWithoutId: CommandContext;

  constructor(commands: readonly CommandDef[], opts: DispatcherOptions, context: Omit<CommandContext, 'idSuffix' | 'registry'>) {
    this.context = { ...context, registry: this };
    this.contextWithoutId = { ...this.context, idSuffix: '' };
    for (const c of commands) this.commands.set(c.name, c);
    // Names are matched exactly as qemu-ga does; surrounding whitespace is not a way around a list.
    this.blocked = new Set(opts.blockRpcs.map((n) => n.trim()));
    this.allowed = opts.allowRpcs ? new Set(opts.allowRpcs.map((n) => n.trim())) : undefined;
  }

  /** Why a command is disabled right now, or undefined when it may run. */
  disabledReason(name: string): string | undefined {
    const cmd = this.commands.get(name);
    if (!cmd) return undefined;
    if (this.context.state.frozen && !cmd.allowedWhileFrozen) return `Command ${name} has been disabled: the agent is in frozen state`;
    if (cmd.unsupported || this.blocked.has(name) || (this.allowed && !this.allowed.has(name))) return `Command ${name} has been disabled`;
    return undefined;
  }

  list(): Array<{ name: string; enabled: boolean; successResponse: boolean }> {
    return [...this.commands.values()].reverse().map((c) => ({
      name: c.name, enabled: this.disabledReason(c.name) === undefined, successResponse: c.successResponse,
    }));
  }

  get names(): string[] { return [...this.commands.keys()]; }

  /**
   * The reply to one request. Synchronous when the handler is (guest-ping, guest-sync, ...):
   * the agent then answers without a Promise or a microtask per request.
   */
  dispatch(request: JsonValue): Reply | null | Promise<Reply | null> {
    if (!(request instanceof Map)) return { chunks: [errorReply('GenericError', 'QMP input must be a JSON object', undefined, false)] };
    const hasId = request.has('id');
    const id = request.get('id');
    const fail = (e: QgaError): Reply => ({ chunks: [errorReply(e.errorClass, e.desc, id, hasId)] });

    const envelopeError = checkEnvelope(request);
    if (envelopeError) return fail(envelopeError);
    const name = request.get('execute');
    if (name === undefined) return fail(new QgaError("QMP input lacks member 'execute'"));
    const cmd = this.commands.get(name as string);
    if (!cmd) return fail(new QgaError(`The command ${name as string} has not been found`, 'CommandNotFound'));
    const disabled = this.disabledReason(cmd.name);
    if (disabled) return fail(new QgaError(disabled, 'CommandNotFound'));

    const failed = (e: unknown): Reply => {
      if (e instanceof QgaError) return fail(e);
      // A bug or an unexpected OS error must not take the agent down: report it like qemu-ga would.
      this.context.log.error(`command ${cmd.name} failed unexpectedly: ${(e as Error)?.stack ?? e}`);
      return fail(new QgaError((e as Error)?.message ?? String(e)));
    };
    let result: unknown;
    try {
      const args = validateArguments(cmd.args, (request.get('arguments') as Map<string, JsonValue> | undefined) ?? NO_ARGUMENTS);
      result = cmd.run(args, hasId ? { ...this.context, idSuffix: idSuffix(id, hasId) } : this.contextWithoutId);
    } catch (e) {
      return failed(e);
    }
    if (isThenable(result)) return Promise.resolve(result).then((r) => this.success(cmd, r, id, hasId), failed);
    return this.success(cmd, result, id, hasId);
  }

  private success(cmd: CommandDef, result: unknown, id: unknown, hasId: boolean): Reply | null {
    if (!cmd.successResponse) return null;
    if (result instanceof RawReply) return { chunks: result.chunks, release: result.release };
    if (!hasId && !cmd.delimited && isEmptyObject(result)) return EMPTY_RETURN_REPLY;
    const line = successReply(result === undefined ? {} : result, id, hasId);
    return { chunks: cmd.delimited ? [SENTINEL, line] : [line] };
  }
}
