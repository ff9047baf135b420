/**
 * Wall-clock time in nanoseconds with microsecond resolution, as qemu-ga reports it.
 * Date.now() has only milliseconds; the monotonic clock fills in the microseconds, and the
 * pair is recalibrated whenever they drift apart by a millisecond (someone set the clock).
 */
let baseWallMs = 0;
let baseMonoNs = 0n;

export function realtimeNs(): bigint {
  const wall = Date.now();
  const mono = process.hrtime.bigint();
  let estimateUs = BigInt(baseWallMs) * 1000n + (mono - baseMonoNs) / 1000n;
  const drift = Number(estimateUs / 1000n) - wall;
  if (baseWallMs === 0 || drift > 1 || drift < -1) {
    baseWallMs = wall;
    baseMonoNs = mono;
    estimateUs = BigInt(wall) * 1000n;
  }
  return estimateUs * 1000n;
}
