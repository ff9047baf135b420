/**
 * Where the hardware clock is and how it keeps time, for the native backend's replacement
 * of `hwclock -w` / `hwclock -s`. Like hwclock, the RTC is taken to hold UTC unless the third
 * line of /etc/adjtime says LOCAL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_ADJTIME_FILE = '/etc/adjtime';

/** The RTC device under `devRoot`: rtc0 when present, else the legacy `rtc` name, else rtc0 (open will say ENOENT). */
export function rtcDevicePath(devRoot: string): string {
  for (const name of ['rtc0', 'rtc']) {
    const p = path.join(devRoot, name);
    if (fs.existsSync(p)) return p;
  }
  return path.join(devRoot, 'rtc0');
}

/** True when the RTC keeps local time: /etc/adjtime's third line is `LOCAL`. A missing file means UTC. */
export function rtcKeepsLocalTime(adjtimeFile: string = DEFAULT_ADJTIME_FILE): boolean {
  let text: string;
  try {
    text = fs.readFileSync(adjtimeFile, 'utf8');
  } catch {
    return false;
  }
  return (text.split('\n')[2] ?? '').trim() === 'LOCAL';
}
