import type { SystemBackend } from '../backend/types';
import type { AgentConfig } from '../config-types';
import type { Logger } from '../log';
import type { StateStore } from '../state';
import type { JsonValue } from '../protocol/values';
import { membersOf, type Member, type TypeSpec } from '../schema';

/** A reply a handler has already serialised (the zero-copy file path); sent as is. */
export class RawReply {
  /** `release`, when given, is called once the chunks have been written (their memory is reused). */
  constructor(readonly chunks: Array<Buffer | string>, readonly release?: () => void) {}
}

/** What the dispatcher knows about commands, for guest-info. */
export interface CommandRegistryView {
  list(): Array<{ name: string; enabled: boolean; successResponse: boolean }>;
}

/** Everything a handler may use; handlers never touch the transport. */
export interface CommandContext {
  backend: SystemBackend;
  config: AgentConfig;
  state: StateStore;
  log: Logger;
  registry: CommandRegistryView;
  /** `, "id": <id>` to splice into a RawReply before its closing brace; '' without an id. */
  idSuffix: string;
  /** Agent-wide services that span commands (the freeze controller and the like). */
  services: AgentServices;
}

/** Shared long-lived services; commands modules add their own members by declaration merging. */
export interface AgentServices {
  [name: string]: unknown;
}

export type HandlerResult = JsonValue | RawReply | undefined | void;

export interface CommandDef<A = any> {
  name: string;
  /** Arguments in schema order (validation reports the first failure in this order). */
  args: readonly Member[];
  /** The return type, for documentation and for tests that check replies against it. */
  returns?: TypeSpec;
  /** false for commands that send nothing on success (shutdown, suspend). */
  successResponse: boolean;
  /** qemu-ga's frozen allow-list: ping, info, sync, sync-delimited, fsfreeze-status, fsfreeze-thaw. */
  allowedWhileFrozen: boolean;
  /** Commands qemu-ga registers on Linux but keeps disabled (guest-get-devices). */
  unsupported?: boolean;
  /** guest-sync-delimited: a successful reply is preceded by the 0xFF sentinel byte. */
  delimited?: boolean;
  run(args: A, ctx: CommandContext): Promise<HandlerResult> | HandlerResult;
}

export function defineCommand<A = Record<string, never>>(def: {
  name: string;
  args?: Record<string, TypeSpec>;
  returns?: TypeSpec;
  successResponse?: boolean;
  allowedWhileFrozen?: boolean;
  unsupported?: boolean;
  delimited?: boolean;
  run(args: A, ctx: CommandContext): Promise<HandlerResult> | HandlerResult;
}): CommandDef<A> {
  return {
    name: def.name,
    args: membersOf(def.args ?? {}),
    returns: def.returns,
    successResponse: def.successResponse ?? true,
    allowedWhileFrozen: def.allowedWhileFrozen ?? false,
    unsupported: def.unsupported,
    delimited: def.delimited,
    run: def.run,
  };
}

/** QAPI 'int' arguments arrive as numbers, or bigints outside the safe-integer range. */
export type Int = number | bigint;
export function toBigInt(v: Int): bigint { return typeof v === 'bigint' ? v : BigInt(v); }
