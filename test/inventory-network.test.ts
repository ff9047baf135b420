import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listNetworkInterfaces, formatIPv6, netmaskPrefix, hardwareAddress, networkCommands, type NodeInterfaceAddresses } from '../lib/commands/network';
import { QgaError } from '../lib/errors';
import { buildTree, tempRoot, removeTree, type TreeSpec } from './inventory-fixture';

let root = '';
const sys = () => `${root}/sys`;
const proc = () => `${root}/proc`;

const UP_RUNNING = '0x1043';
const DOWN = '0x1002';

function netdev(ifindex: number, flags: string, address?: string): TreeSpec {
  const d: TreeSpec = { ifindex: `${ifindex}\n`, flags: `${flags}\n` };
  if (address !== undefined) d.address = `${address}\n`;
  return d;
}

const PROC_NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0: 66471250    2617    1    2    0     0          0         0   171355    1529    3    4    0     0       0          0
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth1: 18446744073709551615 5 0 0 0 0 0 0 7 8 0 0 0 0 0 0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`;

// /proc/net/if_inet6 is in hash order: eth1's link-local comes before its global address.
const IF_INET6 = `fe800000000000000000000000000042 05 40 20 80     eth1
20010db8000000000000000000000001 05 40 00 00     eth1
00000000000000000000000000000001 01 80 10 80       lo
`;

test.before.each(() => {
  root = tempRoot('network');
  buildTree(sys(), {
    // /sys/class/net entries are symlinks into /sys/devices; created in an order unlike ifindex.
    'devices/virtual/net/tun0': netdev(4, '0x1091', ''), // no hardware address: zero-filled
    'devices/pci0000:00/0000:00:03.0/virtio2/net/eth0': netdev(2, UP_RUNNING, '02:FC:00:00:00:01'),
    'devices/virtual/net/lo': netdev(1, '0x9', '00:00:00:00:00:00'),
    'devices/virtual/net/ifb0': netdev(3, '0x82', '62:43:60:4f:87:38'),
    'devices/virtual/net/eth1': netdev(5, DOWN, '52:54:00:12:34:56'),
    'devices/virtual/net/sit0': netdev(6, '0x80', '00:00:00:00'), // 4-byte address, padded
    'devices/virtual/net/wg0': { ifindex: '7\n', flags: '0x91\n' }, // no address file at all
    'class/net': {
      tun0: { link: '../../devices/virtual/net/tun0' },
      eth1: { link: '../../devices/virtual/net/eth1' },
      eth0: { link: '../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0' },
      wg0: { link: '../../devices/virtual/net/wg0' },
      lo: { link: '../../devices/virtual/net/lo' },
      sit0: { link: '../../devices/virtual/net/sit0' },
      ifb0: { link: '../../devices/virtual/net/ifb0' },
    },
  });
  buildTree(proc(), { 'net/dev': PROC_NET_DEV, 'net/if_inet6': IF_INET6 });
});
test.after.each(() => removeTree(root));

// What libuv reports: UP+RUNNING interfaces only, in getifaddrs order (IPv4 before IPv6),
// with alias labels as their own names.
const NODE_ADDRESSES: NodeInterfaceAddresses = {
  lo: [
    { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' },
    { address: '::1', netmask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'IPv6' },
  ],
  eth0: [
    { address: '192.0.2.2', netmask: '255.255.255.0', family: 'IPv4' },
    { address: 'fd00::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' },
    { address: 'fe80::fc:ff:fe00:1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' },
  ],
  'eth0:1': [{ address: '198.51.100.7', netmask: '255.255.255.128', family: 'IPv4' }],
};

test('interfaces in ifindex order, addresses, hardware addresses and statistics', () => {
  const got = listNetworkInterfaces({ sysfsRoot: sys(), procRoot: proc(), addresses: NODE_ADDRESSES });
  assert.equal(got.map((i) => i.name), ['lo', 'eth0', 'ifb0', 'tun0', 'eth1', 'sit0', 'wg0', 'eth0:1']);
  assert.equal(got[0], {
    name: 'lo',
    'hardware-address': '00:00:00:00:00:00',
    'ip-addresses': [
      { 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 },
      { 'ip-address': '::1', 'ip-address-type': 'ipv6', prefix: 128 },
    ],
    statistics: { 'rx-bytes': 3193, 'rx-packets': 29, 'rx-errs': 0, 'rx-dropped': 0, 'tx-bytes': 3193, 'tx-packets': 29, 'tx-errs': 0, 'tx-dropped': 0 },
  });
  assert.equal(got[1], {
    name: 'eth0',
    'hardware-address': '02:fc:00:00:00:01',
    'ip-addresses': [
      { 'ip-address': '192.0.2.2', 'ip-address-type': 'ipv4', prefix: 24 },
      { 'ip-address': 'fd00::2', 'ip-address-type': 'ipv6', prefix: 64 },
      { 'ip-address': 'fe80::fc:ff:fe00:1', 'ip-address-type': 'ipv6', prefix: 64 },
    ],
    statistics: { 'rx-bytes': 66471250, 'rx-packets': 2617, 'rx-errs': 1, 'rx-dropped': 2, 'tx-bytes': 171355, 'tx-packets': 1529, 'tx-errs': 3, 'tx-dropped': 4 },
  });
  // No address: no statistics, as qemu-ga (it reads them when adding an address).
  assert.equal(got[2], { name: 'ifb0', 'hardware-address': '62:43:60:4f:87:38' });
  assert.equal(got[3], { name: 'tun0', 'hardware-address': '00:00:00:00:00:00' });
  // Down interface: libuv hides it, so IPv6 comes from /proc/net/if_inet6, global first.
  assert.equal(got[4], {
    name: 'eth1',
    'hardware-address': '52:54:00:12:34:56',
    'ip-addresses': [
      { 'ip-address': '2001:db8::1', 'ip-address-type': 'ipv6', prefix: 64 },
      { 'ip-address': 'fe80::42', 'ip-address-type': 'ipv6', prefix: 64 },
    ],
    statistics: { 'rx-bytes': 18446744073709551615n, 'rx-packets': 5, 'rx-errs': 0, 'rx-dropped': 0, 'tx-bytes': 7, 'tx-packets': 8, 'tx-errs': 0, 'tx-dropped': 0 },
  });
  assert.equal(got[5], { name: 'sit0', 'hardware-address': '00:00:00:00:00:00' });
  assert.equal(got[6], { name: 'wg0' });
  // The alias gets its device's hardware address; /proc/net/dev has no line for it.
  assert.equal(got[7], { name: 'eth0:1', 'hardware-address': '02:fc:00:00:00:01', 'ip-addresses': [{ 'ip-address': '198.51.100.7', 'ip-address-type': 'ipv4', prefix: 25 }] });
  assert.equal(Object.keys(got[1]), ['name', 'hardware-address', 'ip-addresses', 'statistics']);
  assert.equal(Object.keys(got[1].statistics!), ['rx-bytes', 'rx-packets', 'rx-errs', 'rx-dropped', 'tx-bytes', 'tx-packets', 'tx-errs', 'tx-dropped']);
});

test('no /sys/class/net: getifaddrs-style error', () => {
  removeTree(sys());
  try {
    listNetworkInterfaces({ sysfsRoot: sys(), procRoot: proc(), addresses: {} });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, QgaError);
    assert.is((e as QgaError).desc, 'getifaddrs failed: No such file or directory');
  }
});

test('missing /proc/net/dev: addresses without statistics', () => {
  removeTree(`${proc()}/net/dev`);
  const got = listNetworkInterfaces({ sysfsRoot: sys(), procRoot: proc(), addresses: NODE_ADDRESSES });
  assert.equal(Object.keys(got[0]), ['name', 'hardware-address', 'ip-addresses']);
});

test('inet_ntop formatting of IPv6', () => {
  const w = (s: string) => s.split(':').map((x) => parseInt(x, 16));
  assert.is(formatIPv6(w('0:0:0:0:0:0:0:1')), '::1');
  assert.is(formatIPv6(w('0:0:0:0:0:0:0:0')), '::');
  assert.is(formatIPv6(w('fe80:0:0:0:fc:ff:fe00:1')), 'fe80::fc:ff:fe00:1');
  assert.is(formatIPv6(w('1:0:0:2:0:0:0:3')), '1:0:0:2::3');
  assert.is(formatIPv6(w('1:0:0:2:3:0:0:4')), '1::2:3:0:0:4', 'first run wins a tie');
  assert.is(formatIPv6(w('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
  assert.is(formatIPv6(w('0:0:0:0:0:ffff:102:304')), '::ffff:1.2.3.4');
  assert.is(formatIPv6(w('0:0:0:0:0:0:102:304')), '::1.2.3.4');
  assert.is(formatIPv6(w('0:0:0:0:0:1:0:0')), '::1:0:0');
  assert.is(formatIPv6(w('2001:db8:0:0:0:0:0:0')), '2001:db8::');
});

test('netmask prefix and hardware address helpers', () => {
  assert.is(netmaskPrefix('255.255.255.0'), 24);
  assert.is(netmaskPrefix('255.255.255.255'), 32);
  assert.is(netmaskPrefix('ffff:ffff:ffff:ffff::'), 64);
  assert.is(netmaskPrefix('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 128);
  assert.is(netmaskPrefix('::'), 0);
  assert.is(hardwareAddress(sys(), 'nosuch'), undefined);
  assert.is(hardwareAddress(sys(), 'eth0:7'), '02:fc:00:00:00:01');
});

test('command definition', async () => {
  assert.equal(networkCommands.map((c) => c.name), ['guest-network-get-interfaces']);
  assert.equal(networkCommands[0].args, []);
  // Through the command: real os.networkInterfaces() paired with the fixture (names differ
  // from the machine's except lo/eth0, so only the fixture's link list is checked).
  const reply = await networkCommands[0].run({}, { config: { sysfsRoot: sys(), procRoot: proc() } } as any) as Array<{ name: string }>;
  assert.equal(reply.slice(0, 7).map((i) => i.name), ['lo', 'eth0', 'ifb0', 'tun0', 'eth1', 'sit0', 'wg0']);
});

test.run();
