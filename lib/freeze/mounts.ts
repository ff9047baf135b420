/**
 * The mount list freeze, thaw and fstrim act on, read from `<procRoot>/self/mountinfo` (tests
 * point procRoot at a fixture listing only loop mounts, so no host filesystem is ever touched).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaError } from '../errors';
import { localFilesystems, parseMountinfo, readMountinfo, type MountEntry } from '../platform/mountinfo';

/** Local block-device filesystems in mount order; qemu-ga's error text when nothing can be read. */
export function listLocalMounts(procRoot: string): MountEntry[] {
  let text: string;
  try {
    text = readMountinfo(procRoot);
  } catch {
    throw new QgaError(`failed to open mtab file: '${procRoot}/self/mounts'`);
  }
  return localFilesystems(text);
}

/**
 * The mount entry (from all mounts, pseudo ones included) holding `dir`: the longest mount
 * point that is a prefix of its real path. Null when that cannot be told.
 */
export function mountOf(procRoot: string, dir: string): MountEntry | null {
  let real: string;
  let entries: MountEntry[];
  try {
    real = fs.realpathSync(dir);
    entries = parseMountinfo(readMountinfo(procRoot));
  } catch { return null; }
  let best: MountEntry | null = null;
  for (const e of entries) {
    const mp = e.mountpoint;
    const inside = mp === '/' || real === mp || real.startsWith(mp.endsWith(path.sep) ? mp : mp + path.sep);
    // Later entries over-mount earlier ones at the same point: keep the last match of equal length.
    if (inside && (!best || mp.length >= best.mountpoint.length)) best = e;
  }
  return best;
}

/** Whether two mount entries are the same filesystem (freezing one freezes the other). */
export function sameFilesystem(a: MountEntry, b: MountEntry): boolean {
  if (a.mountpoint === b.mountpoint) return true;
  if (a.major !== 0 && a.major === b.major && a.minor === b.minor) return true;
  return a.source.startsWith('/') && a.source === b.source && a.type === b.type;
}
