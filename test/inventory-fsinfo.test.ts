import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { getFsinfo, fsinfoCommands, type FilesystemInfo } from '../lib/commands/fsinfo';
import { BlockDeviceResolver } from '../lib/platform/sysfs-disk';
import { QgaError } from '../lib/errors';
import { buildTree, tempRoot, removeTree, rawOrder, type TreeSpec } from './inventory-fixture';

let root = '';
const sys = () => `${root}/sys`;
const roots = () => ({ sysfsRoot: sys(), procRoot: `${root}/proc`, devRoot: `${root}/dev`, udevDataDir: `${root}/run/udev/data` });

const PCI = '/devices/pci0000:00';
const blk = (name: string, major: number, minor: number, type = 'disk') =>
  `MAJOR=${major}\nMINOR=${minor}\nDEVNAME=${name}\nDEVTYPE=${type}\n`;
const driver = (name: string) => ({ link: `../../../bus/pci/drivers/${name}` });
const devLink = (target: string) => ({ link: `../..${target}` });

function sysTree(): TreeSpec {
  return {
    // virtio-blk disk vda with partition vda1 at 00:02.0
    [`${PCI}/0000:00:02.0/driver`]: driver('virtio-pci'),
    [`${PCI}/0000:00:02.0/virtio1/block/vda`]: { uevent: blk('vda', 254, 0), vda1: { uevent: blk('vda1', 254, 1, 'partition') } },
    // virtio-scsi at 00:05.0: host2, channel 0, id 1, lun 3
    [`${PCI}/0000:00:05.0/driver`]: driver('virtio-pci'),
    [`${PCI}/0000:00:05.0/virtio3/host2/target2:0:1/2:0:1:3/block/sda`]: { uevent: blk('sda', 8, 0) },
    // two virtio-blk disks under a device-mapper volume
    [`${PCI}/0000:00:06.0/driver`]: driver('virtio-pci'),
    [`${PCI}/0000:00:06.0/virtio4/block/vdb`]: { uevent: blk('vdb', 254, 16) },
    [`${PCI}/0000:00:07.0/driver`]: driver('virtio-pci'),
    [`${PCI}/0000:00:07.0/virtio5/block/vdc`]: { uevent: blk('vdc', 254, 32) },
    '/devices/virtual/block/dm-0': {
      uevent: blk('dm-0', 253, 0),
      slaves: { vdc: { link: `../../../..${PCI.slice(8)}/0000:00:07.0/virtio5/block/vdc` }, vdb: { link: `../../../..${PCI.slice(8)}/0000:00:06.0/virtio4/block/vdb` } },
    },
    // NVMe namespace partition at 00:04.0
    [`${PCI}/0000:00:04.0/driver`]: driver('nvme'),
    [`${PCI}/0000:00:04.0/nvme/nvme0/nvme0n1`]: { uevent: blk('nvme0n1', 259, 0), nvme0n1p1: { uevent: blk('nvme0n1p1', 259, 1, 'partition') } },
    // AHCI: the disk is on the second port (ata2)
    [`${PCI}/0000:00:1f.2/driver`]: driver('ahci'),
    [`${PCI}/0000:00:1f.2/ata1/host0`]: {},
    [`${PCI}/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb`]: { uevent: blk('sdb', 8, 16) },
    // PIIX IDE: secondary channel (ata2), target id 1
    [`${PCI}/0000:00:01.1/driver`]: driver('ata_piix'),
    [`${PCI}/0000:00:01.1/ata1`]: {},
    [`${PCI}/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/hdc`]: { uevent: blk('hdc', 22, 0) },
    // virtio-blk behind a PCI bridge: the controller is the function with the driver
    [`${PCI}/0000:00:1e.0/driver`]: driver('pcieport'),
    [`${PCI}/0000:00:1e.0/0000:01:00.0/driver`]: { link: '../../../../bus/pci/drivers/virtio-pci' },
    [`${PCI}/0000:00:1e.0/0000:01:00.0/virtio6/block/vdd`]: { uevent: blk('vdd', 254, 48) },
    // a loop device: virtual, empty slaves/
    '/devices/virtual/block/loop0': { uevent: blk('loop0', 7, 0), slaves: {} },
    // not PCI: an MMC card known to udev (kept for its dev), and a device without uevent (dropped)
    '/devices/platform/soc/mmc0/block/mmcblk0': { uevent: blk('mmcblk0', 179, 0) },
    '/devices/platform/other/block/odd0': {},
    // s390 CCW virtio-blk, and virtio-mmio SCSI
    '/devices/css0/0.0.0002/0.0.0000/virtio0/block/vde': { uevent: blk('vde', 94, 0) },
    '/devices/platform/a000000.virtio_mmio/virtio7/host0/target0:0:2/0:0:2:5/block/sdc': { uevent: blk('sdc', 8, 32) },
    'dev/block': {
      '254:0': devLink(`${PCI}/0000:00:02.0/virtio1/block/vda`),
      '254:1': devLink(`${PCI}/0000:00:02.0/virtio1/block/vda/vda1`),
      '8:0': devLink(`${PCI}/0000:00:05.0/virtio3/host2/target2:0:1/2:0:1:3/block/sda`),
      '253:0': devLink('/devices/virtual/block/dm-0'),
      '259:1': devLink(`${PCI}/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1`),
      '8:16': devLink(`${PCI}/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb`),
      '22:0': devLink(`${PCI}/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/hdc`),
      '254:48': devLink(`${PCI}/0000:00:1e.0/0000:01:00.0/virtio6/block/vdd`),
      '7:0': devLink('/devices/virtual/block/loop0'),
      '179:0': devLink('/devices/platform/soc/mmc0/block/mmcblk0'),
      '179:8': devLink('/devices/platform/other/block/odd0'),
      '94:0': devLink('/devices/css0/0.0.0002/0.0.0000/virtio0/block/vde'),
      '8:32': devLink('/devices/platform/a000000.virtio_mmio/virtio7/host0/target0:0:2/0:0:2:5/block/sdc'),
    },
  };
}

/** mountinfo lines: [maj:min, mountpoint, type, source]; mountpoints under <root>/mnt exist. */
const MOUNTS: Array<[string, string, string, string]> = [
  ['254:1', 'root', 'ext4', '/dev/vda1'],
  ['0:22', 'tmp', 'tmpfs', 'tmpfs'],
  ['8:0', 'scsi', 'xfs', '/dev/sda'],
  ['253:0', 'dm', 'ext4', '/dev/mapper/vg-lv'],
  ['259:1', 'nvme', 'ext4', '/dev/nvme0n1p1'],
  ['254:1', 'bind of root', 'ext4', '/dev/vda1'], // same device again: skipped
  ['8:16', 'sata', 'ext4', '/dev/sdb'],
  ['22:0', 'ide', 'ext2', '/dev/hdc'],
  ['254:48', 'bridge', 'ext4', '/dev/vdd'],
  ['7:0', 'loop', 'squashfs', '/dev/loop0'],
  ['9:9', 'gone', 'ext4', '/dev/md9'],
  ['179:0', 'mmc', 'vfat', '/dev/mmcblk0'],
  ['179:8', 'odd', 'ext4', '/dev/odd0'],
  ['94:0', 'ccw', 'ext4', '/dev/vde'],
  ['8:32', 'mmio', 'ext4', '/dev/sdc'],
];

function mountpoint(name: string): string {
  return `${root}/mnt/${name}`;
}

test.before.each(() => {
  root = tempRoot('fsinfo');
  buildTree(sys(), sysTree());
  buildTree(root, {
    'run/udev/data': { 'b254:1': 'S:disk/by-id/virtio-SER1-part1\nE:ID_SERIAL=SER1\nE:ID_PART_ENTRY_NUMBER=1\n', 'b8:0': 'E:ID_SERIAL=\n' },
  });
  const lines = MOUNTS.map(([devno, mp, type, source], i) => {
    fs.mkdirSync(mountpoint(mp), { recursive: true });
    const escaped = mountpoint(mp).replace(/ /g, '\\040');
    return `${30 + i} 1 ${devno} / ${escaped} rw,relatime - ${type} ${source} rw`;
  });
  // A mount whose mount point is not there: no sizes.
  lines.push('99 1 254:0 / /nonexistent/qga-fsinfo-test rw - ext4 /dev/vda rw');
  buildTree(root, { 'proc/self/mountinfo': lines.join('\n') + '\n' });
});
test.after.each(() => removeTree(root));

const noPci = { domain: -1, bus: -1, slot: -1, function: -1 };
const pci = (slot: number, bus = 0) => ({ domain: 0, bus, slot, function: 0 });

test('get-fsinfo: reversed mount order, dedup, names and disks', () => {
  const got = getFsinfo(roots());
  const byMp = new Map(got.map((f) => [f.mountpoint, f]));
  assert.equal(got.map((f) => f.mountpoint), [
    '/nonexistent/qga-fsinfo-test',
    ...MOUNTS.filter(([d, mp]) => d !== '0:22' && mp !== 'bind of root').map(([, mp]) => mountpoint(mp)).reverse(),
  ]);
  const disk = (mp: string) => byMp.get(mountpoint(mp))!.disk;

  assert.is(byMp.get(mountpoint('root'))!.name, 'vda1');
  assert.equal(disk('root'), [{ 'pci-controller': pci(2), 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, serial: 'SER1', dev: '/dev/vda1' }]);
  assert.equal(disk('scsi'), [{ 'pci-controller': pci(5), 'bus-type': 'scsi', bus: 0, target: 0, unit: 3, dev: '/dev/sda' }], 'empty ID_SERIAL is no serial');

  // dm-0: one entry per slave, prepended in slaves/ readdir order (so reversed).
  assert.is(byMp.get(mountpoint('dm'))!.name, 'dm-0');
  const slaves = rawOrder(`${sys()}/devices/virtual/block/dm-0/slaves`);
  const slaveDisk = { vdb: { 'pci-controller': pci(6), 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, dev: '/dev/vdb' },
    vdc: { 'pci-controller': pci(7), 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, dev: '/dev/vdc' } } as Record<string, unknown>;
  assert.equal(disk('dm'), slaves.reverse().map((s) => slaveDisk[s]));

  assert.is(byMp.get(mountpoint('nvme'))!.name, 'nvme0n1p1');
  assert.equal(disk('nvme'), [{ 'pci-controller': pci(4), 'bus-type': 'nvme', bus: 0, target: 0, unit: 0, dev: '/dev/nvme0n1p1' }]);
  assert.equal(disk('sata'), [{ 'pci-controller': { domain: 0, bus: 0, slot: 0x1f, function: 2 }, 'bus-type': 'sata', bus: 0, target: 0, unit: 1, dev: '/dev/sdb' }]);
  assert.equal(disk('ide'), [{ 'pci-controller': { domain: 0, bus: 0, slot: 1, function: 1 }, 'bus-type': 'ide', bus: 1, target: 0, unit: 1, dev: '/dev/hdc' }]);
  assert.equal(disk('bridge'), [{ 'pci-controller': pci(0, 1), 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, dev: '/dev/vdd' }]);
  assert.equal(disk('loop'), []);
  assert.is(byMp.get(mountpoint('gone'))!.name, '9:9');
  assert.equal(disk('gone'), []);
  assert.equal(disk('mmc'), [{ 'pci-controller': noPci, 'bus-type': 'unknown', bus: 0, target: 0, unit: 0, dev: '/dev/mmcblk0' }]);
  assert.is(byMp.get(mountpoint('odd'))!.name, 'odd0');
  assert.equal(disk('odd'), []);
  assert.equal(disk('ccw'), [{ 'pci-controller': noPci, 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, dev: '/dev/vde',
    'ccw-address': { cssid: 0, ssid: 0, subchno: 2, devno: 0 } }]);
  assert.equal(disk('mmio'), [{ 'pci-controller': noPci, 'bus-type': 'scsi', bus: 0, target: 2, unit: 5, dev: '/dev/sdc' }]);
  // Member order is the schema's.
  assert.equal(Object.keys(disk('ccw')[0]), ['pci-controller', 'bus-type', 'bus', 'target', 'unit', 'dev', 'ccw-address']);
});

test('get-fsinfo: sizes from statfs, omitted when statfs fails', () => {
  const got = getFsinfo(roots());
  const missing = got.find((f) => f.mountpoint === '/nonexistent/qga-fsinfo-test')!;
  assert.equal(Object.keys(missing), ['name', 'mountpoint', 'type', 'disk']);
  assert.is(missing.name, 'vda');
  const f = got.find((x) => x.mountpoint === mountpoint('root')) as FilesystemInfo;
  assert.equal(Object.keys(f), ['name', 'mountpoint', 'type', 'used-bytes', 'total-bytes', 'total-bytes-privileged', 'disk']);
  const st = fs.statfsSync(mountpoint('root'), { bigint: true });
  assert.is(BigInt(f['total-bytes-privileged']!), st.blocks * st.bsize);
  assert.is(BigInt(f['total-bytes']!), (st.blocks - st.bfree + st.bavail) * st.bsize);
  const used = BigInt(f['used-bytes']!);
  assert.ok(used > 0n && used <= BigInt(f['total-bytes']!));
});

test('get-fsinfo: errors that fail the whole command', () => {
  // A realpath error other than ENOENT: a symlink loop.
  fs.rmSync(`${sys()}/dev/block/7:0`);
  fs.symlinkSync('7:0', `${sys()}/dev/block/7:0`);
  try {
    getFsinfo(roots());
    assert.unreachable('should fail');
  } catch (e) {
    assert.instance(e, QgaError);
    assert.is((e as QgaError).desc, `realpath("${sys()}/dev/block/7:0"): Too many levels of symbolic links`);
  }
  fs.rmSync(`${sys()}/dev/block/7:0`);
  fs.rmSync(`${root}/proc/self/mountinfo`);
  try {
    getFsinfo(roots());
    assert.unreachable('should fail');
  } catch (e) {
    assert.is((e as QgaError).desc, `failed to open mtab file: '${root}/proc/self/mounts'`);
  }
});

test('resolver: a fixture root containing "/virtio" or "/devices/pci" does not confuse decoding', () => {
  const odd = `${root}/virtio9/devices/pci0000:00`;
  buildTree(odd, { 'sys/devices/platform/x/block/foo': { uevent: blk('foo', 1, 1) }, 'sys/dev/block/1:1': devLink('/devices/platform/x/block/foo') });
  const r = new BlockDeviceResolver({ sysfsRoot: `${odd}/sys`, udevDataDir: '/nonexistent' }).resolve(1, 1);
  assert.equal(r, { name: 'foo', disks: [{ 'pci-controller': noPci, 'bus-type': 'unknown', bus: 0, target: 0, unit: 0, dev: '/dev/foo' }] });
});

test('command definition', () => {
  const [cmd] = fsinfoCommands;
  assert.is(cmd.name, 'guest-get-fsinfo');
  assert.equal(cmd.args, []);
  const ctx = { config: { ...roots(), udevDataDir: `${root}/run/udev/data` } } as any;
  const reply = cmd.run({}, ctx) as unknown as FilesystemInfo[];
  assert.is(reply.length, MOUNTS.length - 1);
});

test.run();
