/** guest-set-time against the real clock and RTC (read back through sysfs with guest-file-read). */
import { Ctx, VmCase, assert, nsToSec } from './harness';

const TOLERANCE_S = 20; // TCG clocks wander a little; an hour is what we look for

async function guestTime(ctx: Ctx): Promise<number> {
  const ns = await ctx.call('guest-get-time');
  assert(typeof ns === 'number' || typeof ns === 'bigint', `get-time returned ${typeof ns}`);
  return nsToSec(ns);
}

async function rtcTime(ctx: Ctx): Promise<number> {
  return Number((await ctx.readGuestFile('/sys/class/rtc/rtc0/since_epoch')).toString().trim());
}

function near(actual: number, expected: number, what: string) {
  assert(Math.abs(actual - expected) <= TOLERANCE_S, `${what}: ${actual.toFixed(1)} is ${(actual - expected).toFixed(1)} s away from ${expected.toFixed(1)}`);
}

const hostNow = () => Date.now() / 1000;
const toNs = (sec: number) => BigInt(Math.round(sec * 1000)) * 1000000n;

export const cases: VmCase[] = [
  {
    name: 'set-time +1h moves the clock and writes the RTC; set-time without time restores from the RTC',
    timeoutMs: 120000,
    async run(ctx) {
      const offset = (await guestTime(ctx)) - hostNow(); // the guest's own offset from the host, kept through the test
      ctx.notes.push(`guest-host offset ${offset.toFixed(2)} s`);
      try {
        await ctx.call('guest-set-time', { time: toNs(hostNow() + offset + 3600) });
        near(await guestTime(ctx), hostNow() + offset + 3600, 'get-time after set-time +1h');
        near(await rtcTime(ctx), hostNow() + offset + 3600, 'RTC after set-time +1h');

        // Move the system clock back an hour behind the agent's back (the RTC keeps +1h) ...
        await ctx.guestRun('date -s @$(( $(date +%s) - 3600 )) >/dev/null');
        near(await guestTime(ctx), hostNow() + offset, 'get-time after the guest moved its clock back');
        // ... so that set-time with no argument proves it reads the RTC.
        await ctx.call('guest-set-time', {});
        near(await guestTime(ctx), hostNow() + offset + 3600, 'get-time after set-time without time (from RTC)');
      } finally {
        await ctx.call('guest-set-time', { time: toNs(hostNow() + offset) });
      }
      near(await guestTime(ctx), hostNow() + offset, 'get-time after restoring');
      near(await rtcTime(ctx), hostNow() + offset, 'RTC after restoring');
    },
  },
];
