/**
 * A small sysfs tree for guest-get-disks (used by the fixture and the differential tests):
 * a virtio-blk disk with two partitions and an empty slaves/ directory, an NVMe disk with a
 * "p" partition, a dm device over one partition of each with its DM_NAME in a udev
 * database, a size-0 zram disk (skipped) and a non-link entry in block/ (skipped).
 * Links are relative, so the tree also works bind-mounted on /sys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function buildDiskFixture(tmp: string): { sys: string; udev: string } {
  const write = (rel: string, content: string): void => {
    const p = path.join(tmp, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  };
  const link = (rel: string, target: string): void => {
    const p = path.join(tmp, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.symlinkSync(target, p);
  };
  const pci = 'sys/devices/pci0000:00/0000:00:04.0';
  link(`${pci}/driver`, '../../../bus/pci/drivers/virtio-pci');
  const vdb = `${pci}/virtio2/block/vdb`;
  write(`${vdb}/size`, '2048\n');
  write(`${vdb}/dev`, '254:16\n');
  write(`${vdb}/uevent`, 'MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n');
  for (const [p, minor] of [['vdb1', 17], ['vdb2', 18]] as const) {
    write(`${vdb}/${p}/uevent`, `MAJOR=254\nMINOR=${minor}\nDEVNAME=${p}\nDEVTYPE=partition\n`);
    write(`${vdb}/${p}/size`, '1024\n');
  }
  fs.mkdirSync(path.join(tmp, `${vdb}/queue`), { recursive: true }); // not a partition
  fs.mkdirSync(path.join(tmp, `${vdb}/slaves`), { recursive: true }); // present and empty
  link('sys/block/vdb', '../devices/pci0000:00/0000:00:04.0/virtio2/block/vdb');
  link('sys/dev/block/254:16', '../../devices/pci0000:00/0000:00:04.0/virtio2/block/vdb');

  const nvme = 'sys/devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1';
  link('sys/devices/pci0000:00/0000:00:05.0/driver', '../../../bus/pci/drivers/nvme');
  write(`${nvme}/size`, '4096\n');
  write(`${nvme}/dev`, '259:0\n');
  write(`${nvme}/uevent`, 'MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n');
  write(`${nvme}/nvme0n1p1/uevent`, 'MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\n');
  link('sys/block/nvme0n1', '../devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1');
  link('sys/dev/block/259:0', '../../devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1');

  const dm = 'sys/devices/virtual/block/dm-0';
  write(`${dm}/size`, '1000\n');
  write(`${dm}/dev`, '253:0\n');
  write(`${dm}/uevent`, 'MAJOR=253\nMINOR=0\nDEVNAME=dm-0\nDEVTYPE=disk\n');
  link(`${dm}/slaves/vdb2`, '../../../../pci0000:00/0000:00:04.0/virtio2/block/vdb/vdb2');
  link(`${dm}/slaves/nvme0n1p1`, '../../../../pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1/nvme0n1p1');
  link('sys/block/dm-0', '../devices/virtual/block/dm-0');
  write('udev/b253:0', 'S:mapper/vg-root\nE:DM_NAME=vg-root\nE:DM_UUID=LVM-x\n');

  const zram = 'sys/devices/virtual/block/zram0';
  write(`${zram}/size`, '0\n');
  write(`${zram}/uevent`, 'MAJOR=252\nMINOR=0\nDEVNAME=zram0\n');
  link('sys/block/zram0', '../devices/virtual/block/zram0');
  fs.mkdirSync(path.join(tmp, 'sys/block/not-a-link'), { recursive: true });
  return { sys: path.join(tmp, 'sys'), udev: path.join(tmp, 'udev') };
}

