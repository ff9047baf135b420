import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaError, isErrnoError, strerror } from '../errors';
import { readdirInKernelOrder } from './dir-order';

/**
 * Resolves a block device (major:minor) to the disks under it, through sysfs, the way
 * qemu-ga's guest-get-fsinfo does: /sys/dev/block/<maj>:<min> is resolved with realpath,
 * virtual devices (dm, md) recurse into slaves/, and a real device's sysfs path is decoded
 * into a bus type, PCI controller address and bus/target/unit. udev's view (devnode and
 * ID_SERIAL) is read from the device's `uevent` and the udev database, as libudev would.
 */

export const DISK_BUS_TYPES = [
  'ide', 'fdc', 'scsi', 'virtio', 'xen', 'usb', 'uml', 'sata', 'sd', 'unknown', 'ieee1394', 'ssa', 'fibre',
  'raid', 'iscsi', 'sas', 'mmc', 'virtual', 'file-backed-virtual', 'nvme', 'cpu',
] as const;
export type DiskBusType = (typeof DISK_BUS_TYPES)[number];

export interface PciAddress { domain: number; bus: number; slot: number; function: number }
export interface CcwAddress { cssid: number; ssid: number; subchno: number; devno: number }

/** Members in schema order, which is the order the reply is built in. */
export interface DiskAddress {
  'pci-controller': PciAddress;
  'bus-type': DiskBusType;
  bus: number;
  target: number;
  unit: number;
  serial?: string;
  dev?: string;
  'ccw-address'?: CcwAddress;
}

export interface DiskProbeRoots {
  /** Where sysfs is mounted (/sys, or a fixture tree). */
  sysfsRoot: string;
  /** udev's database directory (/run/udev/data), for ID_SERIAL. */
  udevDataDir: string;
}

export interface ResolvedBlockDevice {
  /** The device's sysfs name (vda1, dm-0), or "<maj>:<min>" when sysfs has no such device. */
  name: string;
  /** The disks under it, in qemu-ga's order (prepended as found). */
  disks: DiskAddress[];
}

/** PCI drivers qemu-ga recognises as disk controllers; the walk up the PCI path stops at one. */
const CONTROLLER_DRIVERS = new Set(['ata_piix', 'sym53c8xx', 'virtio-pci', 'ahci', 'nvme', 'xhci_hcd', 'ehci-pci']);
/** qemu-ga keeps at most this many hosts when numbering IDE buses and SATA ports. */
const MAX_HOSTS = 8;

const HEX = '[0-9a-fA-F]+';
const PCI_ROOT_RE = new RegExp(`^${HEX}:${HEX}/(${HEX}):(${HEX}):(${HEX})\\.(${HEX})`);
const PCI_FUNC_RE = new RegExp(`^/(${HEX}):(${HEX}):(${HEX})\\.(${HEX})`);
/** "target<h>:<c>:<t>/<h>:<channel>:<id>:<lun>" after "/target". */
const TARGET_RE = /^\d+:\d+:\d+\/\d+:(\d+):(\d+):(\d+)/;
const CCW_RE = new RegExp(`^${HEX}/(${HEX})\\.(${HEX})\\.(${HEX})/${HEX}\\.${HEX}\\.(${HEX})`);

/**
 * A sysfs path seen two ways: `rel` as it would read under /sys (what qemu-ga's string
 * matching runs on, so a fixture tree's own location cannot confuse it) and the real
 * path to open.
 */
class SysPath {
  constructor(private readonly rootReal: string, readonly real: string) {}
  get rel(): string {
    return this.real.startsWith(this.rootReal + '/') ? '/sys' + this.real.slice(this.rootReal.length) : this.real;
  }
  /** The real path of a prefix of `rel`. */
  realOf(relPrefix: string): string {
    return this.real.startsWith(this.rootReal + '/') ? this.rootReal + relPrefix.slice(4) : relPrefix;
  }
}

export class BlockDeviceResolver {
  private readonly rootReal: string;

  constructor(private readonly roots: DiskProbeRoots) {
    let rootReal = roots.sysfsRoot;
    try { rootReal = fs.realpathSync.native(roots.sysfsRoot); } catch { /* keep as given */ }
    this.rootReal = rootReal.replace(/\/+$/, '');
  }

  resolve(major: number, minor: number): ResolvedBlockDevice {
    const state: { name?: string; disks: DiskAddress[] } = { disks: [] };
    this.resolveDevice(`${this.roots.sysfsRoot}/dev/block/${major}:${minor}`, state);
    return { name: state.name ?? `${major}:${minor}`, disks: state.disks };
  }

  private resolveDevice(devpath: string, state: { name?: string; disks: DiskAddress[] }): void {
    let real: string;
    try {
      real = fs.realpathSync.native(devpath);
    } catch (e) {
      // ENOENT: the device is not visible here (containers); report it by number, no disks.
      if (isErrnoError(e) && e.code === 'ENOENT') {
        state.name ??= path.basename(devpath);
        return;
      }
      throw new QgaError(`realpath("${devpath}"): ${strerror(e)}`);
    }
    state.name ??= path.basename(real);
    const sys = new SysPath(this.rootReal, real);
    if (sys.rel.includes('/devices/virtual/block/')) this.resolveVirtual(sys, state);
    else this.resolveReal(sys, state);
  }

  /** dm, md and the like: the disks are those of every device under slaves/. */
  private resolveVirtual(sys: SysPath, state: { name?: string; disks: DiskAddress[] }): void {
    const dirpath = `${sys.real}/slaves`;
    let entries: fs.Dirent[];
    try {
      entries = readdirInKernelOrder(dirpath);
    } catch (e) {
      if (isErrnoError(e) && e.code === 'ENOENT') return;
      throw new QgaError(`opendir("${dirpath}"): ${strerror(e)}`);
    }
    for (const entry of entries) {
      if (entry.isSymbolicLink()) this.resolveDevice(`${sys.real}/slaves/${entry.name}`, state);
    }
  }

  private resolveReal(sys: SysPath, state: { disks: DiskAddress[] }): void {
    const disk: DiskAddress = {
      'pci-controller': { domain: -1, bus: -1, slot: -1, function: -1 },
      'bus-type': 'unknown',
      bus: 0,
      target: 0,
      unit: 0,
    };
    const udev = this.udevInfo(sys.real);
    const rel = sys.rel;
    let recognised: boolean;
    if (rel.includes('/devices/pci')) recognised = this.decodePci(sys, disk);
    else if (rel.includes('/devices/css')) recognised = decodeCcw(rel, disk);
    else if (rel.includes('/virtio')) recognised = decodeNonPciVirtio(rel, disk);
    else recognised = false;
    if (udev.serial !== undefined) disk.serial = udev.serial;
    if (udev.dev !== undefined) disk.dev = udev.dev;
    if (disk['ccw-address']) {
      // Keep schema order: ccw-address is the last member.
      const ccw = disk['ccw-address'];
      delete disk['ccw-address'];
      disk['ccw-address'] = ccw;
    }
    if (recognised || disk.dev !== undefined || disk.serial !== undefined) state.disks.unshift(disk);
  }

  /**
   * What libudev reports for the device: devnode from DEVNAME in `uevent`, ID_SERIAL from
   * the uevent properties or the udev database entry b<maj>:<min>. Without a uevent file
   * libudev has no device, hence neither.
   */
  private udevInfo(syspath: string): { dev?: string; serial?: string } {
    let uevent: string;
    try {
      uevent = fs.readFileSync(`${syspath}/uevent`, 'latin1');
    } catch {
      return {};
    }
    const props = new Map<string, string>();
    for (const line of uevent.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
    }
    const out: { dev?: string; serial?: string } = {};
    const devname = props.get('DEVNAME');
    if (devname) out.dev = devname.startsWith('/') ? devname : `/dev/${devname}`;
    let serial = props.get('ID_SERIAL');
    const major = props.get('MAJOR');
    const minor = props.get('MINOR');
    if (major !== undefined && minor !== undefined) {
      try {
        const db = fs.readFileSync(`${this.roots.udevDataDir}/b${major}:${minor}`, 'utf8');
        for (const line of db.split('\n')) {
          if (line.startsWith('E:ID_SERIAL=')) serial = line.slice('E:ID_SERIAL='.length);
        }
      } catch { /* no udev database: no serial */ }
    }
    if (serial) out.serial = serial;
    return out;
  }

  /** The PCI path decoding: returns whether the hardware was recognised. */
  private decodePci(sys: SysPath, disk: DiskAddress): boolean {
    const rel = sys.rel;
    const at = rel.indexOf('/devices/pci');
    const root = PCI_ROOT_RE.exec(rel.slice(at + 12));
    if (!root) return false;
    let pci = root.slice(1, 5).map((x) => parseInt(x, 16));
    let pos = at + 12 + root[0].length;
    let driver: string | null;
    for (;;) {
      driver = this.pciDriver(sys.realOf(rel.slice(0, pos)));
      if (driver !== null && CONTROLLER_DRIVERS.has(driver)) break;
      // Not a disk controller (a bridge, say): go one PCI function further down the path.
      const next = PCI_FUNC_RE.exec(rel.slice(pos));
      if (!next) return false;
      pci = next.slice(1, 5).map((x) => parseInt(x, 16));
      pos += next[0].length;
    }

    let tgt: number[] | null = null;
    const t = rel.indexOf('/target');
    if (t >= 0) {
      const m = TARGET_RE.exec(rel.slice(t + 7));
      if (m) tgt = m.slice(1, 4).map(Number);
    }

    let host: number | null = null;
    let hosts: number[] = [];
    let hostAt = rel.indexOf('/ata');
    const isAta = hostAt >= 0;
    const numberAt = isAta ? hostAt + 4 : (hostAt = rel.indexOf('/host')) + 5;
    if (hostAt >= 0) {
      const m = /^\d+/.exec(rel.slice(numberAt));
      if (m) {
        host = Number(m[0]);
        hosts = this.listHosts(sys.realOf(rel.slice(0, hostAt)), isAta);
      }
    }

    disk['pci-controller'] = { domain: pci[0], bus: pci[1], slot: pci[2], function: pci[3] };

    switch (driver) {
      case 'ata_piix': {
        // One host (ata port) per IDE bus; the unit is the target id.
        if (host === null || !tgt) return false;
        const i = hosts.indexOf(host);
        if (i < 0) return false;
        disk['bus-type'] = 'ide';
        disk.bus = i;
        disk.unit = tgt[1];
        return true;
      }
      case 'sym53c8xx':
        if (!tgt) return false;
        disk['bus-type'] = 'scsi';
        disk.unit = tgt[1];
        return true;
      case 'virtio-pci':
        if (tgt) {
          disk['bus-type'] = 'scsi'; // virtio-scsi: the unit is the LUN
          disk.unit = tgt[2];
        } else {
          disk['bus-type'] = 'virtio'; // virtio-blk: one disk per PCI function
        }
        return true;
      case 'ahci': {
        // One host per SATA port: the unit is the port's index.
        if (host === null || !tgt) return false;
        const i = hosts.indexOf(host);
        if (i < 0) return false;
        disk.unit = i;
        disk['bus-type'] = 'sata';
        return true;
      }
      case 'nvme':
        disk['bus-type'] = 'nvme';
        return true;
      case 'xhci_hcd':
      case 'ehci-pci':
        disk['bus-type'] = 'usb';
        return true;
      default:
        return false;
    }
  }

  private pciDriver(devicePath: string): string | null {
    try {
      return path.basename(fs.readlinkSync(`${devicePath}/driver`));
    } catch {
      return null;
    }
  }

  /** The sorted numbers of the `ata<N>` (or `host<N>`) entries beside the disk's host. */
  private listHosts(dirpath: string, ata: boolean): number[] {
    let entries: fs.Dirent[];
    try {
      entries = readdirInKernelOrder(dirpath);
    } catch (e) {
      throw new QgaError(`opendir("${dirpath}"): ${strerror(e)}`);
    }
    const re = ata ? /^ata([+-]?\d+)/ : /^host([+-]?\d+)/;
    const hosts: number[] = [];
    for (const entry of entries) {
      if (hosts.length >= MAX_HOSTS) break;
      const m = re.exec(entry.name);
      if (m) hosts.push(Number(m[1]) >>> 0);
    }
    return hosts.sort((a, b) => a - b);
  }
}

/** s390 channel I/O: /devices/css<N>/<cssid>.<ssid>.<subchno>/<x>.<y>.<devno>/... */
function decodeCcw(rel: string, disk: DiskAddress): boolean {
  const at = rel.indexOf('/devices/css');
  const m = CCW_RE.exec(rel.slice(at + 12));
  if (!m) return false;
  const [cssid, ssid, subchno, devno] = m.slice(1, 5).map((x) => parseInt(x, 16));
  disk['ccw-address'] = { cssid, ssid, subchno, devno };
  if (rel.slice(at).includes('/virtio')) decodeNonPciVirtio(rel, disk);
  return true;
}

/** virtio without PCI (virtio-mmio, ccw): virtio-blk, or virtio-scsi with a target. */
function decodeNonPciVirtio(rel: string, disk: DiskAddress): boolean {
  if (!rel.includes('/virtio') || !rel.includes('/block')) return false;
  const t = rel.indexOf('/target');
  const m = t >= 0 ? TARGET_RE.exec(rel.slice(t + 7)) : null;
  if (m) {
    disk['bus-type'] = 'scsi';
    disk.bus = Number(m[1]);
    disk.target = Number(m[2]);
    disk.unit = Number(m[3]);
  } else {
    disk['bus-type'] = 'virtio';
  }
  return true;
}
