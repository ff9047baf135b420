import * as fs from 'node:fs';

export interface MountEntry {
  /** The mount point, octal escapes (\040) decoded. */
  mountpoint: string;
  type: string;
  source: string;
  major: number;
  minor: number;
}

/** Decode the octal escapes the kernel writes for space, tab, newline and backslash. */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parse /proc/self/mountinfo text into raw entries, in file order. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 5 || right.length < 2) continue;
    const [maj, min] = left[2].split(':').map(Number);
    out.push({ mountpoint: unescapeMountField(left[4]), type: right[0], source: unescapeMountField(right[1]), major: maj, minor: min });
  }
  return out;
}

/**
 * The local block-device filesystems qemu-ga acts on (freeze, thaw, fstrim, get-fsinfo), in
 * mount order: entries with major 0 (tmpfs, proc, NFS, overlay...) are skipped except btrfs,
 * whose device numbers come from stat(source); a device already listed (bind mounts and
 * duplicate mounts) is skipped, as qemu-ga does since 8.0.
 */
export function localFilesystems(text: string, statSource: (p: string) => { major: number; minor: number } | null = statBlockDevice): MountEntry[] {
  const seen = new Set<string>();
  const out: MountEntry[] = [];
  for (const e of parseMountinfo(text)) {
    let { major, minor } = e;
    if (major === 0) {
      if (e.type !== 'btrfs') continue;
      const dev = statSource(e.source);
      if (!dev) continue;
      ({ major, minor } = dev);
    }
    const key = `${major}:${minor}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ ...e, major, minor });
  }
  return out;
}

function statBlockDevice(p: string): { major: number; minor: number } | null {
  try {
    const st = fs.statSync(p);
    if (!st.isBlockDevice()) return null;
    return { major: Math.floor(st.rdev / 256) & 0xfff, minor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) };
  } catch { return null; }
}

export function readMountinfo(procRoot = '/proc'): string {
  return fs.readFileSync(`${procRoot}/self/mountinfo`, 'utf8');
}
