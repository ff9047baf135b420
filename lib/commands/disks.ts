import * as fs from 'node:fs';
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import type { JsonValue } from '../protocol/values';
import { BlockDeviceResolver, type DiskAddress } from '../platform/sysfs-disk';
import { readdirInKernelOrder } from '../platform/dir-order';
import { GuestDiskAddress } from './fsinfo';

/**
 * guest-get-disks (5.2) and guest-get-diskstats (7.1), Linux shapes as in qemu-ga 7.2.
 * Disks come from /sys/block as libudev sees them (devnode from the device's uevent
 * DEVNAME, DM_NAME from the udev database); bus addresses reuse fsinfo's sysfs resolver.
 */

export const GuestDiskInfo = T.struct('GuestDiskInfo', {
  name: T.str,
  partition: T.bool,
  '*dependencies': T.list(T.str),
  '*address': GuestDiskAddress,
  '*alias': T.str,
  '*smart': T.any, // GuestDiskSmart (NVMe SMART log): not produced, see below
});

const DISK_STAT_MEMBERS = [
  'read-sectors', 'read-ios', 'read-merges', 'write-sectors', 'write-ios', 'write-merges',
  'discard-sectors', 'discard-ios', 'discard-merges', 'flush-ios', 'read-ticks', 'write-ticks',
  'discard-ticks', 'flush-ticks', 'ios-pgr', 'total-ticks', 'weight-ticks',
] as const;
type DiskStatMember = (typeof DISK_STAT_MEMBERS)[number];

export const GuestDiskStats = T.struct('GuestDiskStats', Object.fromEntries(DISK_STAT_MEMBERS.map((m) => [`*${m}`, T.uint64])));
export const GuestDiskStatsInfo = T.struct('GuestDiskStatsInfo', { name: T.str, major: T.uint64, minor: T.uint64, stats: GuestDiskStats });

export interface DiskInfo {
  name: string;
  partition: boolean;
  dependencies?: string[];
  address?: DiskAddress;
  alias?: string;
}

export interface DiskRoots {
  sysfsRoot: string;
  udevDataDir: string;
}

/** A device's udev properties: its uevent file, then the udev database entry (which wins). */
function udevProperties(syspath: string, udevDataDir: string): Map<string, string> | null {
  let uevent: string;
  try {
    uevent = fs.readFileSync(`${syspath}/uevent`, 'utf8');
  } catch {
    return null; // libudev has no device without a uevent file
  }
  const props = new Map<string, string>();
  for (const line of uevent.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const major = props.get('MAJOR');
  const minor = props.get('MINOR');
  if (major !== undefined && minor !== undefined) {
    try {
      const db = fs.readFileSync(`${udevDataDir}/b${major}:${minor}`, 'utf8');
      for (const line of db.split('\n')) {
        if (!line.startsWith('E:')) continue;
        const eq = line.indexOf('=');
        if (eq > 2) props.set(line.slice(2, eq), line.slice(eq + 1));
      }
    } catch { /* no udev database entry */ }
  }
  return props;
}

/** libudev's devnode: /dev/ + DEVNAME; null without one (qemu-ga then skips the entry). */
function devnode(props: Map<string, string> | null): string | null {
  const name = props?.get('DEVNAME');
  if (!name) return null;
  return name.startsWith('/') ? name : `/dev/${name}`;
}

function readDevNumbers(diskDir: string): { major: number; minor: number } | null {
  try {
    const m = /^(\d+):(\d+)/.exec(fs.readFileSync(`${diskDir}/dev`, 'latin1'));
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
  } catch {
    return null;
  }
}

function isPartitionOf(disk: string, entry: string): boolean {
  if (!entry.startsWith(disk)) return false;
  const rest = entry.slice(disk.length);
  return /^[0-9]/.test(rest) || /^p[0-9]/.test(rest);
}

export function getDisks(roots: DiskRoots): DiskInfo[] {
  const blockDir = `${roots.sysfsRoot}/block`;
  let entries: fs.Dirent[];
  try {
    entries = readdirInKernelOrder(blockDir);
  } catch (e) {
    throw new QgaError(`Can't open directory "${blockDir}": ${strerror(e)}`);
  }
  const resolver = new BlockDeviceResolver({ sysfsRoot: roots.sysfsRoot, udevDataDir: roots.udevDataDir });
  const out: DiskInfo[] = [];
  for (const entry of entries) {
    if (!entry.isSymbolicLink()) continue;
    const diskDir = `${blockDir}/${entry.name}`;
    let size: string;
    try {
      size = fs.readFileSync(`${diskDir}/size`, 'latin1');
    } catch {
      continue;
    }
    if (size === '0\n') continue; // empty loop devices, zram without a disk size, …
    const props = udevProperties(diskDir, roots.udevDataDir);
    const name = devnode(props);
    if (name === null) continue;

    let address: DiskAddress | undefined;
    let real: string | null = null;
    try { real = fs.realpathSync.native(diskDir); } catch { /* treated as virtual: no address */ }
    if (real !== null && !real.includes('/devices/virtual/block/')) {
      const nums = readDevNumbers(diskDir);
      if (nums) {
        try {
          address = resolver.resolve(nums.major, nums.minor).disks[0];
        } catch { /* qemu-ga ignores address errors here */ }
      }
    }

    let dependencies: string[] | undefined;
    try {
      const deps = readdirInKernelOrder(`${diskDir}/slaves`);
      dependencies = [];
      for (const dep of deps) {
        const node = devnode(udevProperties(`${diskDir}/slaves/${dep.name}`, roots.udevDataDir));
        if (node !== null) dependencies.unshift(node);
      }
    } catch { /* no slaves directory: no dependencies member */ }

    const alias = props?.get('DM_NAME');
    // Members in schema order; qemu-ga prepends every entry, so the reply runs backwards.
    const disk: DiskInfo = { name, partition: false };
    if (dependencies) disk.dependencies = dependencies;
    if (address) disk.address = address;
    if (alias) disk.alias = alias;
    out.unshift(disk);

    let children: fs.Dirent[] = [];
    try { children = readdirInKernelOrder(diskDir); } catch { /* none */ }
    for (const child of children) {
      if (!child.isDirectory() || !isPartitionOf(entry.name, child.name)) continue;
      const part = devnode(udevProperties(`${diskDir}/${child.name}`, roots.udevDataDir));
      if (part === null) continue;
      out.unshift({ name: part, partition: true, dependencies: [name] });
    }
  }
  return out;
}

/** An unsigned C integer as a JSON number, or bigint past 2^53. */
function uint(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * sscanf-style conversions over whitespace-separated fields: the first field is taken as
 * is, the rest as unsigned decimals, stopping at the first one that does not convert.
 * Returns how many converted (sscanf's count minus the leading fields given).
 */
function scanUnsigned(fields: string[]): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    const m = /^[+-]?\d+/.exec(f);
    if (!m) break;
    let v = BigInt(m[0]);
    if (v < 0n) v = BigInt.asUintN(64, v); // strtoul wraps negatives
    if (v > 0xffffffffffffffffn) v = 0xffffffffffffffffn; // and saturates overflow
    out.push(v);
    if (m[0].length !== f.length) break; // the rest of the field fails the next conversion
  }
  return out;
}

export type DiskStats = Partial<Record<DiskStatMember, number | bigint>>;
export interface DiskStatsInfo { name: string; major: number | bigint; minor: number | bigint; stats: DiskStats }

/** /proc/diskstats as qemu-ga 7.2 reads it (sscanf of up to 20 fields per line). */
export function parseDiskstats(text: string): DiskStatsInfo[] {
  const out: DiskStatsInfo[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/).filter((f) => f !== '');
    // major %u, minor %u, name %s, then 17 numbers; 'n' counts conversions like sscanf.
    const head = scanUnsigned(fields.slice(0, 2));
    if (head.length < 2 || fields.length < 3) continue;
    const nums = scanUnsigned(fields.slice(3, 20));
    const n = 3 + nums.length;
    if (n < 7) continue;
    // Fields qemu-ga scans with %u are stored in an unsigned int.
    const u32 = (v: bigint) => uint(BigInt.asUintN(32, v));
    const u64 = (v: bigint) => uint(v);
    const [rdIos, f5, f6, f7, wrIos, wrMerges, wrSec, wrTicks, iosPgr, totTicks, rqTicks, dcIos, dcMerges, dcSec, dcTicks, flIos, flTicks] = nums;
    const s: Record<string, number | bigint> = {};
    if (n === 7) {
      // Old kernels' partition lines: reads, read sectors, writes, write sectors.
      s['read-sectors'] = u64(f5);
      s['read-ios'] = u64(rdIos);
      s['write-sectors'] = u64(f7);
      s['write-ios'] = u64(f6);
    }
    if (n >= 14) {
      s['read-sectors'] = u64(f6);
      s['read-ios'] = u64(rdIos);
      s['read-merges'] = u64(f5);
      s['write-sectors'] = u64(wrSec);
      s['write-ios'] = u64(wrIos);
      s['write-merges'] = u64(wrMerges);
    }
    if (n >= 18) {
      s['discard-sectors'] = u64(dcSec);
      s['discard-ios'] = u64(dcIos);
      s['discard-merges'] = u64(dcMerges);
    }
    if (n >= 20) s['flush-ios'] = u64(flIos);
    if (n >= 14) {
      s['read-ticks'] = u64(f7);
      s['write-ticks'] = u32(wrTicks);
    }
    if (n >= 18) s['discard-ticks'] = u32(dcTicks);
    if (n >= 20) s['flush-ticks'] = u32(flTicks);
    if (n >= 14) {
      s['ios-pgr'] = u32(iosPgr);
      s['total-ticks'] = u32(totTicks);
      s['weight-ticks'] = u32(rqTicks);
    }
    out.push({ name: fields[2], major: uint(BigInt.asUintN(32, head[0])), minor: uint(BigInt.asUintN(32, head[1])), stats: s as DiskStats });
  }
  return out;
}

export function getDiskstats(procRoot: string): DiskStatsInfo[] {
  const file = `${procRoot}/diskstats`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QgaError(`open("${file}"): ${strerror(e)}`);
  }
  return parseDiskstats(text);
}

/** qemu-ga registers guest-get-disks next to the fsinfo command (before it), diskstats much later. */
export const getDisksCommand = defineCommand({
  name: 'guest-get-disks',
  returns: T.list(GuestDiskInfo),
  run: (_a, ctx) =>
    getDisks({ sysfsRoot: ctx.config.sysfsRoot, udevDataDir: ctx.config.udevDataDir ?? '/run/udev/data' }) as unknown as JsonValue,
});

export const diskstatsCommands = [
  defineCommand({
    name: 'guest-get-diskstats',
    returns: T.list(GuestDiskStatsInfo),
    run: (_a, ctx) => getDiskstats(ctx.config.procRoot) as unknown as JsonValue,
  }),
];
