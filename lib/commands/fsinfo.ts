import * as fs from 'node:fs';
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError } from '../errors';
import { localFilesystems, readMountinfo, type MountEntry } from '../platform/mountinfo';
import { BlockDeviceResolver, DISK_BUS_TYPES, type DiskAddress } from '../platform/sysfs-disk';
import type { JsonValue } from '../protocol/values';

declare module '../config-types' {
  interface AgentConfig {
    /** udev's database directory, for disk serial numbers (default /run/udev/data). */
    udevDataDir?: string;
  }
}

/**
 * guest-get-fsinfo: every local block-device filesystem (qemu-ga's mount list, in reverse
 * mount order) with its sizes from statfs and the disks under it resolved through sysfs.
 * The reply has the later qemu-ga shape: used-bytes, total-bytes, total-bytes-privileged
 * and per-disk serial/dev.
 */

export const GuestPCIAddress = T.struct('GuestPCIAddress', { domain: T.int, bus: T.int, slot: T.int, function: T.int });
export const GuestCCWAddress = T.struct('GuestCCWAddress', { cssid: T.int, ssid: T.int, subchno: T.int, devno: T.int });
export const GuestDiskAddress = T.struct('GuestDiskAddress', {
  'pci-controller': GuestPCIAddress,
  'bus-type': T.enum('GuestDiskBusType', DISK_BUS_TYPES),
  bus: T.int,
  target: T.int,
  unit: T.int,
  '*serial': T.str,
  '*dev': T.str,
  '*ccw-address': GuestCCWAddress,
});
export const GuestFilesystemInfo = T.struct('GuestFilesystemInfo', {
  name: T.str,
  mountpoint: T.str,
  type: T.str,
  '*used-bytes': T.uint64,
  '*total-bytes': T.uint64,
  '*total-bytes-privileged': T.uint64,
  disk: T.list(GuestDiskAddress),
});

export interface FilesystemInfo {
  name: string;
  mountpoint: string;
  type: string;
  'used-bytes'?: number | bigint;
  'total-bytes'?: number | bigint;
  'total-bytes-privileged'?: number | bigint;
  disk: DiskAddress[];
}

export interface FsinfoRoots {
  sysfsRoot: string;
  procRoot: string;
  devRoot: string;
  udevDataDir: string;
}

function toJsonInt(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** statvfs sizes as qemu-ga computes them; undefined when statfs fails (sizes omitted). */
export function filesystemSizes(mountpoint: string): { used: bigint; total: bigint; privileged: bigint } | undefined {
  let st: fs.BigIntStatsFs;
  try {
    st = fs.statfsSync(mountpoint, { bigint: true });
  } catch {
    return undefined;
  }
  const used = st.blocks - st.bfree;
  return { used: used * st.bsize, total: (used + st.bavail) * st.bsize, privileged: st.blocks * st.bsize };
}

/** btrfs mounts carry major 0: qemu-ga stats the source device instead (under devRoot here). */
function statSourceUnder(devRoot: string): (p: string) => { major: number; minor: number } | null {
  return (p) => {
    const target = devRoot !== '/dev' && p.startsWith('/dev/') ? devRoot + p.slice(4) : p;
    try {
      const st = fs.statSync(target);
      if (!st.isBlockDevice()) return null;
      return { major: Math.floor(st.rdev / 256) & 0xfff, minor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) };
    } catch {
      return null;
    }
  };
}

export function getFsinfo(roots: FsinfoRoots): FilesystemInfo[] {
  let mounts: MountEntry[];
  try {
    mounts = localFilesystems(readMountinfo(roots.procRoot), statSourceUnder(roots.devRoot));
  } catch (e) {
    // qemu-ga falls back to /proc/self/mounts and reports that file when both are unreadable.
    throw new QgaError(`failed to open mtab file: '${roots.procRoot}/self/mounts'`);
  }
  const resolver = new BlockDeviceResolver({ sysfsRoot: roots.sysfsRoot, udevDataDir: roots.udevDataDir });
  const out: FilesystemInfo[] = [];
  for (const mount of mounts) {
    const device = resolver.resolve(mount.major, mount.minor);
    const sizes = filesystemSizes(mount.mountpoint);
    const info: FilesystemInfo = {
      name: device.name,
      mountpoint: mount.mountpoint,
      type: mount.type,
      ...(sizes && {
        'used-bytes': toJsonInt(sizes.used),
        'total-bytes': toJsonInt(sizes.total),
        'total-bytes-privileged': toJsonInt(sizes.privileged),
      }),
      disk: device.disks,
    };
    out.unshift(info); // qemu-ga prepends: the reply lists the last mount first
  }
  return out;
}

export const fsinfoCommands = [
  defineCommand({
    name: 'guest-get-fsinfo',
    returns: T.list(GuestFilesystemInfo),
    run: (_args, ctx) =>
      getFsinfo({
        sysfsRoot: ctx.config.sysfsRoot,
        procRoot: ctx.config.procRoot,
        devRoot: ctx.config.devRoot,
        udevDataDir: ctx.config.udevDataDir ?? '/run/udev/data',
      }) as unknown as JsonValue,
  }),
];
