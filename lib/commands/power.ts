/**
 * guest-shutdown and guest-suspend-disk/-ram/-hybrid (success-response false: nothing is sent
 * on success). Shutdown goes through the backend; suspend tries systemd, then pm-utils, then
 * the kernel's `<sysfs>/power/state`, with qemu-ga's order, support checks and error quirks.
 */
import * as fs from 'node:fs';
import { defineCommand, type CommandContext, type CommandDef } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { asString, type RawString } from '../protocol/values';
import { findTool, runTool } from '../backend/fallback-system';

const SHUTDOWN_MODES = ['halt', 'powerdown', 'reboot'] as const;
type ShutdownMode = typeof SHUTDOWN_MODES[number];

export type SuspendMode = 'disk' | 'ram' | 'hybrid';

const SYSTEMD_UNIT: Record<SuspendMode, string> = { disk: 'systemd-hibernate', ram: 'systemd-suspend', hybrid: 'systemd-hybrid-sleep' };
const SYSTEMCTL_VERB: Record<SuspendMode, string> = { disk: 'hibernate', ram: 'suspend', hybrid: 'hybrid-sleep' };
const PM_SUPPORT_ARG: Record<SuspendMode, string> = { disk: '--hibernate', ram: '--suspend', hybrid: '--suspend-hybrid' };
const PM_PROGRAM: Record<SuspendMode, string> = { disk: 'pm-hibernate', ram: 'pm-suspend', hybrid: 'pm-suspend-hybrid' };
const SYSFS_WORD: Record<SuspendMode, string | null> = { disk: 'disk', ram: 'mem', hybrid: null };

/** Exit status of a helper found on $PATH (as g_spawn_sync searches it); -1 when absent or killed. */
async function helperStatus(name: string, args: string[]): Promise<number> {
  const bin = findTool(name, (process.env.PATH ?? '').split(':'));
  if (!bin) return -1;
  try {
    const r = await runTool(bin, args);
    return r.code ?? -1;
  } catch {
    return -1;
  }
}

/**
 * The suspend policy. Resolves when a method took the request (or, qemu-ga's quirk, when an
 * earlier method claimed support but failed and sysfs has nothing to offer for disk/ram).
 */
export async function guestSuspend(mode: SuspendMode, sysfsRoot: string): Promise<void> {
  let supported = false;

  const systemdStatus = await helperStatus('systemctl', ['status', SYSTEMD_UNIT[mode]]);
  // LSB status codes: 1-3 mean the unit exists (3: not running); 4 means no such unit.
  if (systemdStatus > 0 && systemdStatus < 4) {
    supported = true;
    if (await helperStatus('systemctl', [SYSTEMCTL_VERB[mode]]) === 0) return;
    // qemu-ga drops this error and tries the next method.
  }

  if (await helperStatus('pm-is-supported', [PM_SUPPORT_ARG[mode]]) === 0) {
    supported = true;
    if (await helperStatus(PM_PROGRAM[mode], []) === 0) return;
  }

  const word = SYSFS_WORD[mode];
  const stateFile = `${sysfsRoot}/power/state`;
  let lastError: QgaError | null = null;
  if (word === null) {
    lastError = new QgaError('unknown guest suspend mode');
  } else if (sysfsSupports(stateFile, word)) {
    try {
      fs.writeFileSync(stateFile, word);
      return;
    } catch (e) {
      throw new QgaError(`suspend: cannot write to '${stateFile}': ${strerror(e)}`);
    }
  }
  if (!supported) throw new QgaError('the requested suspend mode is not supported by the guest');
  if (lastError) throw lastError;
}

function sysfsSupports(stateFile: string, word: string): boolean {
  let fd: number;
  try { fd = fs.openSync(stateFile, 'r'); } catch { return false; }
  try {
    const buf = Buffer.alloc(31);
    const n = fs.readSync(fd, buf, 0, 31, null);
    return n > 0 && buf.toString('latin1', 0, n).includes(word);
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

function suspendCommand(mode: SuspendMode): CommandDef {
  return defineCommand({
    name: `guest-suspend-${mode}`,
    successResponse: false,
    run: async (_args, ctx: CommandContext) => {
      await guestSuspend(mode, ctx.config.sysfsRoot);
      return undefined;
    },
  });
}

export const shutdownCommands: CommandDef[] = [
  defineCommand<{ mode?: string | RawString }>({
    name: 'guest-shutdown',
    args: { '*mode': T.str },
    successResponse: false,
    run: async (args, ctx) => {
      const given = args.mode === undefined ? undefined : asString(args.mode);
      ctx.log.info(`guest-shutdown called, mode: ${given ?? '(null)'}`);
      const mode = (given ?? 'powerdown') as ShutdownMode;
      if (!SHUTDOWN_MODES.includes(mode)) {
        // The missing ')' is qemu-ga's.
        throw new QgaError('mode is invalid (valid values are: halt|powerdown|reboot');
      }
      try {
        await ctx.backend.powerOff(mode);
      } catch (e) {
        if (e instanceof QgaError) throw e;
        throw new QgaError(`failed to shutdown: ${strerror(e)}`);
      }
      return undefined;
    },
  }),
];

export const suspendCommands: CommandDef[] = [suspendCommand('disk'), suspendCommand('ram'), suspendCommand('hybrid')];
