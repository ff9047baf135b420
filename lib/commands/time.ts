/**
 * guest-set-time: validate as qemu-ga does (before touching anything), set the system clock,
 * then copy it to the RTC; without `time`, set the system clock from the RTC.
 */
import { defineCommand, toBigInt, type CommandDef, type Int } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';

const NS_PER_SEC = 1_000_000_000n;
const INT64_MAX = (1n << 63n) - 1n;

/** The local-time year of `sec` (qemu-ga uses g_date_set_time_t, i.e. localtime). NaN if out of range. */
export function localYear(sec: bigint): number {
  if (sec > 8_640_000_000_000n || sec < -8_640_000_000_000n) return NaN;
  return new Date(Number(sec) * 1000).getFullYear();
}

/** The error qemu-ga gives for `ns`, or null when the value is acceptable. */
export function validateTime(ns: bigint): string | null {
  // C division truncates toward zero, as BigInt division does.
  const sec = ns / NS_PER_SEC;
  if (sec > INT64_MAX || sec < -INT64_MAX - 1n) return `Time ${ns} is too large`; // only with a 32-bit time_t
  const year = localYear(sec);
  if (!(year >= 1970 && year < 2070)) return 'Invalid time';
  return null;
}

function rtcError(e: unknown): QgaError {
  if (e instanceof QgaError) return e;
  return new QgaError(`failed to set hardware clock to system time: ${strerror(e)}`);
}

export const timeCommands: CommandDef[] = [
  defineCommand<{ time?: Int }>({
    name: 'guest-set-time',
    args: { '*time': T.int },
    run: async (args, ctx) => {
      if (args.time === undefined) {
        try { await ctx.backend.rtcToSystemTime(); } catch (e) { throw rtcError(e); }
        return {};
      }
      const ns = toBigInt(args.time);
      const invalid = validateTime(ns);
      if (invalid) throw new QgaError(invalid);
      try {
        await ctx.backend.setSystemTime(ns);
      } catch (e) {
        if (e instanceof QgaError) throw e;
        throw new QgaError(`Failed to set time to guest: ${strerror(e)}`);
      }
      try { await ctx.backend.systemTimeToRtc(); } catch (e) { throw rtcError(e); }
      return {};
    },
  }),
];
