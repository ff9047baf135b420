/** Read-only inventory: network interfaces, filesystems, vCPUs, memory blocks (checked against sysfs/statfs). */
import { VmCase, assert, equal } from './harness';

export const cases: VmCase[] = [
  {
    name: 'network-get-interfaces: eth0 with the MAC given to QEMU and 10.0.2.15/24; lo',
    async run(ctx) {
      const ifs: any[] = await ctx.call('guest-network-get-interfaces');
      const eth0 = ifs.find((i) => i.name === 'eth0');
      assert(eth0, `no eth0 in ${JSON.stringify(ifs.map((i) => i.name))}`);
      equal(eth0['hardware-address'], ctx.vm.mac, 'eth0 hardware-address');
      const v4 = (eth0['ip-addresses'] || []).filter((a: any) => a['ip-address-type'] === 'ipv4');
      equal(v4, [{ 'ip-address-type': 'ipv4', 'ip-address': '10.0.2.15', prefix: 24 }], 'eth0 ipv4 addresses');
      assert(eth0.statistics && typeof eth0.statistics['rx-bytes'] === 'number', 'eth0 statistics present');
      const lo = ifs.find((i) => i.name === 'lo');
      assert(lo, 'no lo');
      equal(lo['hardware-address'], '00:00:00:00:00:00', 'lo hardware-address');
      assert((lo['ip-addresses'] || []).some((a: any) => a['ip-address'] === '127.0.0.1' && a.prefix === 8), 'lo has 127.0.0.1/8');
    },
  },
  {
    name: 'get-fsinfo: /data is ext4 on virtio vda at the PCI slot given to QEMU, sizes match statfs',
    async run(ctx) {
      const fss: any[] = await ctx.call('guest-get-fsinfo');
      const data = fss.find((f) => f.mountpoint === '/data');
      assert(data, `no /data in ${JSON.stringify(fss.map((f) => f.mountpoint))}`);
      equal(data.type, 'ext4', '/data type');
      equal(data.name, 'vda', '/data device name');
      assert(Array.isArray(data.disk) && data.disk.length === 1, `one disk expected: ${JSON.stringify(data.disk)}`);
      const d = data.disk[0];
      equal(d['bus-type'], 'virtio', 'bus-type');
      equal(d['pci-controller'], { domain: 0, bus: 0, slot: (ctx.vm as any).pciSlots.data, function: 0 }, 'pci-controller');
      const out = await ctx.guestRun('stat -f -c "%b %f %a %S" /data');
      const [blocks, bfree, bavail, frsize] = out.trim().split(/\s+/).map(Number);
      const used = (blocks - bfree) * frsize;
      equal(data['used-bytes'], used, 'used-bytes vs statfs');
      equal(data['total-bytes'], used + bavail * frsize, 'total-bytes vs statfs');
      ctx.notes.push(`total ${data['total-bytes']} B`);
    },
  },
  {
    name: 'get-vcpus: cpu0 and cpu1 online, cpu1 can be offlined',
    async run(ctx) {
      const cpus: any[] = await ctx.call('guest-get-vcpus');
      const byId = new Map(cpus.map((c) => [c['logical-id'], c]));
      equal([...byId.keys()].sort(), [0, 1], 'logical ids');
      equal(byId.get(1), { online: true, 'can-offline': true, 'logical-id': 1 }, 'cpu1');
      assert(byId.get(0).online === true, 'cpu0 online');
    },
  },
  {
    name: 'get-memory-blocks and get-memory-block-info match sysfs',
    async run(ctx) {
      const blocks: any[] = await ctx.call('guest-get-memory-blocks');
      assert(blocks.length > 0, 'no memory blocks');
      for (const b of blocks) assert(typeof b['phys-index'] === 'number' && typeof b.online === 'boolean' && typeof b['can-offline'] === 'boolean', `block shape ${JSON.stringify(b)}`);
      const info = await ctx.call('guest-get-memory-block-info');
      const hex = (await ctx.readGuestFile('/sys/devices/system/memory/block_size_bytes')).toString().trim();
      equal(info, { size: parseInt(hex, 16) }, 'memory block info');
      const listed = (await ctx.guestRun('ls -d /sys/devices/system/memory/memory* | sed "s/.*memory//" | sort -n')).trim().split('\n').map(Number);
      equal(blocks.map((b) => b['phys-index']).sort((a, b) => a - b), listed, 'phys-index list vs sysfs');
      ctx.notes.push(`${blocks.length} blocks of ${info.size} B`);
    },
  },
];
