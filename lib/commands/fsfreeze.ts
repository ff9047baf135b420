/**
 * guest-fsfreeze-status/-freeze/-freeze-list/-thaw and guest-fstrim. Freeze policy lives in the
 * freeze controller (lib/freeze/controller.ts), an agent-wide service; fstrim is stateless.
 */
import { defineCommand, toBigInt, type CommandContext, type CommandDef, type Int } from './define';
import { T } from '../schema';
import { QgaError, isErrnoError, strerror } from '../errors';
import { createFreezeController, type FreezeController } from '../freeze/controller';
import { listLocalMounts } from '../freeze/mounts';
import type { JsonObject, JsonValue } from '../protocol/values';

declare module './define' {
  interface AgentServices {
    /** Created by the agent at startup (and recovered); created on first use otherwise. */
    freeze?: FreezeController;
  }
}

export function freezeControllerOf(ctx: CommandContext): FreezeController {
  if (!ctx.services.freeze) {
    ctx.services.freeze = createFreezeController({ backend: ctx.backend, config: ctx.config, state: ctx.state, log: ctx.log });
  }
  return ctx.services.freeze;
}

const fsfreezeStatusEnum = T.enum('GuestFsfreezeStatus', ['thawed', 'frozen']);

const trimResult = T.struct('GuestFilesystemTrimResult', {
  path: T.str, '*trimmed': T.int, '*minimum': T.int, '*error': T.str,
});

/** A JSON integer: a number when exact, else a bigint (int64 as qemu-ga prints it). */
function jsonInt(v: bigint): number | bigint {
  const s = BigInt.asIntN(64, v);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
}

export const fsfreezeCommands: CommandDef[] = [
  defineCommand({
    name: 'guest-fsfreeze-status',
    returns: fsfreezeStatusEnum,
    allowedWhileFrozen: true,
    run: (_args, ctx) => freezeControllerOf(ctx).status(),
  }),
  defineCommand({
    name: 'guest-fsfreeze-freeze',
    returns: T.int,
    run: (_args, ctx) => freezeControllerOf(ctx).freeze(),
  }),
  defineCommand<{ mountpoints?: string[] }>({
    name: 'guest-fsfreeze-freeze-list',
    args: { '*mountpoints': T.list(T.str) },
    returns: T.int,
    run: (args, ctx) => freezeControllerOf(ctx).freeze(args.mountpoints?.map(String)),
  }),
  defineCommand({
    name: 'guest-fsfreeze-thaw',
    returns: T.int,
    allowedWhileFrozen: true,
    run: (_args, ctx) => freezeControllerOf(ctx).thaw(),
  }),
];

export const fstrimCommands: CommandDef[] = [
  defineCommand<{ minimum?: Int }>({
    name: 'guest-fstrim',
    args: { '*minimum': T.int },
    returns: T.struct('GuestFilesystemTrimResponse', { paths: T.list(trimResult) }),
    run: async (args, ctx) => {
      ctx.log.info('guest-fstrim called');
      const mounts = listLocalMounts(ctx.config.procRoot);
      // qemu-ga stores the int64 in FITRIM's u64 minlen.
      const minimum = args.minimum === undefined ? 0n : BigInt.asUintN(64, toBigInt(args.minimum));
      const paths: JsonValue[] = [];
      for (const m of mounts) {
        let entry: JsonObject;
        try {
          const r = await ctx.backend.trim(m.mountpoint, minimum);
          entry = { minimum: jsonInt(r.minimum), path: m.mountpoint, trimmed: jsonInt(r.trimmed) };
        } catch (e) {
          entry = { path: m.mountpoint, error: trimErrorText(e) };
        }
        paths.unshift(entry); // qemu-ga prepends: reverse mount order
      }
      return { paths };
    },
  }),
];

function trimErrorText(e: unknown): string {
  if (e instanceof QgaError) return e.desc;
  if (isErrnoError(e)) {
    if (e.syscall === 'open') return `failed to open: ${strerror(e)}`;
    if (e.code === 'ENOTTY' || e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP') return 'trim not supported';
  }
  return `failed to trim: ${strerror(e)}`;
}
