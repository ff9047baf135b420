/**
 * guest-network-get-interfaces on the native backend (getifaddrs(3), native/netif.cc):
 * - the walk itself on synthetic entries (order, aliases, hardware addresses, statistics);
 * - the whole agent against Debian's qemu-ga on this machine, byte for byte;
 * - both inside a private network namespace (unshare -n -m, sysfs remounted there) holding
 *   interfaces that are down, not running, alias-labelled, point-to-point and without a
 *   link-layer address: addresses of down interfaces are reported as qemu-ga reports them,
 *   which os.networkInterfaces() (the fallback) cannot. The host's interfaces are never touched:
 *   every `ip` command runs inside the new namespace, which vanishes with its processes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { listFromIfaddrs } from '../lib/commands/network';
import type { InterfaceAddressEntry } from '../lib/backend/types';
import { availableBackends, rawExchange, startAgent, tempDir } from './helpers/agent';
import { buildTree, removeTree } from './inventory-fixture';

const QEMU_GA = '/usr/sbin/qemu-ga';
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const nativeAvailable = availableBackends().includes('native');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Counters move between two calls. */
const maskCounters = (s: string) => s.replace(/"((?:rx|tx)-(?:bytes|packets|errs|dropped))": \d+/g, '"$1": N');
const REQUEST = '{"execute":"guest-network-get-interfaces","id":7}\n';

async function ask(sock: string): Promise<string> {
  return (await rawExchange(sock, REQUEST, 1, 10000)).toString('latin1');
}

async function waitFor(file: string, what: string, proc?: ChildProcess, stderr?: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(file)) return;
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}): ${stderr?.() ?? ''}`);
    await sleep(50);
  }
  throw new Error(`${what} did not create ${file}: ${stderr?.() ?? ''}`);
}

test('the getifaddrs walk: records by first appearance, aliases, hardware addresses, statistics only with addresses', () => {
  const root = tempDir('qga-ifaddrs-');
  try {
    buildTree(`${root}/sys`, { 'class/net': { tun9: { address: '\n' } } });
    buildTree(`${root}/proc`, {
      'net/dev': 'Inter-| Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n'
        + '  eth1: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n',
    });
    const entries: InterfaceAddressEntry[] = [
      { name: 'lo', family: 'packet', hwaddr: '00:00:00:00:00:00' },
      { name: 'eth1', family: 'packet', hwaddr: '52:54:00:12:34:56' },
      { name: 'tun9', family: 'none' },
      { name: 'gone0', family: 'none' },
      { name: 'eth1', family: 'ipv4', address: '192.0.2.10', prefix: 24 },
      { name: 'eth1:7', family: 'ipv4', address: '198.51.100.9', prefix: 25 },
      { name: 'tun9', family: 'ipv4', address: '203.0.113.1' }, // no netmask: prefix 0, as qemu-ga
      { name: 'eth1', family: 'ipv6', address: '2001:db8::10', prefix: 64 },
      { name: 'eth1', family: 'other' },
    ];
    const got = listFromIfaddrs(entries, `${root}/sys`, `${root}/proc`);
    assert.equal(got.map((i) => i.name), ['lo', 'eth1', 'tun9', 'gone0', 'eth1:7']);
    assert.equal(got[0], { name: 'lo', 'hardware-address': '00:00:00:00:00:00' });
    assert.equal(got[1], {
      name: 'eth1',
      'hardware-address': '52:54:00:12:34:56',
      'ip-addresses': [
        { 'ip-address': '192.0.2.10', 'ip-address-type': 'ipv4', prefix: 24 },
        { 'ip-address': '2001:db8::10', 'ip-address-type': 'ipv6', prefix: 64 },
      ],
      statistics: { 'rx-bytes': 10, 'rx-packets': 1, 'rx-errs': 0, 'rx-dropped': 0, 'tx-bytes': 20, 'tx-packets': 2, 'tx-errs': 0, 'tx-dropped': 0 },
    });
    // No link-layer address: sysfs has an empty one (zeros), or nothing at all (still zeros: the link exists).
    assert.equal(got[2], { name: 'tun9', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{ 'ip-address': '203.0.113.1', 'ip-address-type': 'ipv4', prefix: 0 }] });
    assert.equal(got[3], { name: 'gone0', 'hardware-address': '00:00:00:00:00:00' });
    // The alias: its device's hardware address, no /proc/net/dev line of its own.
    assert.equal(got[4], { name: 'eth1:7', 'hardware-address': '52:54:00:12:34:56', 'ip-addresses': [{ 'ip-address': '198.51.100.9', 'ip-address-type': 'ipv4', prefix: 25 }] });
  } finally {
    removeTree(root);
  }
});

test('native backend: the agent answers exactly as qemu-ga on this machine', async () => {
  if (!nativeAvailable) { console.log('  SKIP native network comparison: the native addon is not built'); return; }
  if (!fs.existsSync(QEMU_GA)) { console.log(`  SKIP native network comparison: ${QEMU_GA} not installed (apt-get install -y qemu-guest-agent)`); return; }
  const agent = await startAgent('native');
  assert.type(agent.agent.backend.listInterfaceAddresses, 'function', 'the native backend lists addresses with getifaddrs');
  const dir = tempDir('qga-net-native-');
  fs.mkdirSync(path.join(dir, 'state'));
  const q = spawn(QEMU_GA, ['-m', 'unix-listen', '-p', path.join(dir, 'sock'), '-t', path.join(dir, 'state')], { stdio: 'ignore' });
  try {
    await waitFor(path.join(dir, 'sock'), 'qemu-ga', q);
    let theirs = '', ours = '';
    for (let attempt = 0; attempt < 5 && (theirs === '' || ours !== theirs); attempt++) {
      theirs = maskCounters(await ask(path.join(dir, 'sock')));
      ours = maskCounters(await ask(agent.sock));
    }
    assert.is(ours, theirs);
  } finally {
    process.kill(q.pid!, 'SIGKILL'); // qemu-ga 7.2 can deadlock on SIGTERM
    await agent.stop();
    removeTree(dir);
    removeTree(agent.dir);
  }
});

/** Why a private network namespace cannot be made here, or undefined. */
function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['unshare', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  const r = spawnSync('unshare', ['-n', '-m', 'sh', '-c', 'mount -t sysfs sysfs /sys && ip link add qgaprobe0 type veth peer name qgaprobe1 && ip tuntap add qgaprobe2 mode tun'], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot build a private network namespace with veth and tun (${(r.stderr || r.error?.message || '').trim()})`;
  return undefined;
}

// Inside the namespace: a veth pair whose first end stays down (IPv4, an alias label, IPv6),
// the other up without carrier (not RUNNING), a tun with a point-to-point address and no
// link-layer address, lo up. Then qemu-ga in the background and node-qga in the foreground.
const NETNS_SETUP = `
set -e
mount -t sysfs sysfs /sys
ip link set lo up
ip link add qv0 type veth peer name qv1
ip addr add 192.0.2.10/24 dev qv0
ip addr add 198.51.100.9/25 dev qv0 label qv0:7
ip -6 addr add 2001:db8::10/64 dev qv0 nodad
ip link set qv1 up
ip addr add 192.0.2.77/28 dev qv1
ip tuntap add qt0 mode tun
ip addr add 203.0.113.1 peer 203.0.113.2 dev qt0
"$QEMU_GA" -m unix-listen -p "$DIR/qemu-ga.sock" -t "$DIR/qstate" &
echo $! > "$DIR/qemu-ga.pid"
exec "$NODE" "$CLI" -m unix-listen -p "$DIR/ours.sock" -t "$DIR/ostate" --backend native
`;

test('private network namespace: down, not-running, alias, point-to-point and tun interfaces as qemu-ga reports them', async () => {
  if (!nativeAvailable) { console.log('  SKIP netns network test: the native addon is not built'); return; }
  if (!fs.existsSync(QEMU_GA)) { console.log(`  SKIP netns network test: ${QEMU_GA} not installed (apt-get install -y qemu-guest-agent)`); return; }
  if (!fs.existsSync(CLI)) { console.log(`  SKIP netns network test: ${CLI} is not built (npx tsc -p tsconfig.build.json)`); return; }
  const why = netnsUnavailable();
  if (why) { console.log(`  SKIP netns network test: ${why}`); return; }
  const dir = tempDir('qga-netns-');
  fs.mkdirSync(path.join(dir, 'qstate'));
  fs.mkdirSync(path.join(dir, 'ostate'));
  let stderr = '';
  const child = spawn('unshare', ['-n', '-m', 'sh', '-c', NETNS_SETUP], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, QEMU_GA, DIR: dir, NODE: process.execPath, CLI },
  });
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    await waitFor(path.join(dir, 'ours.sock'), 'node-qga in the namespace', child, () => stderr);
    await waitFor(path.join(dir, 'qemu-ga.sock'), 'qemu-ga in the namespace', child, () => stderr);
    const theirs = maskCounters(await ask(path.join(dir, 'qemu-ga.sock')));
    const ours = maskCounters(await ask(path.join(dir, 'ours.sock')));
    assert.is(ours, theirs);
    const list = JSON.parse(ours.replace(/: N\b/g, ': 0')).return as Array<{ name: string; 'hardware-address'?: string; 'ip-addresses'?: Array<{ 'ip-address': string; prefix: number }> }>;
    const byName = new Map(list.map((i) => [i.name, i]));
    // Links in the kernel's order (a veth's peer is registered first), then the alias label.
    assert.equal(list.map((i) => i.name), ['lo', 'qv1', 'qv0', 'qt0', 'qv0:7']);
    // The gap this closes: qv0 is down, yet its IPv4 address is listed (libuv would hide it).
    const qv0 = byName.get('qv0')!;
    assert.ok(qv0['ip-addresses']?.some((a) => a['ip-address'] === '192.0.2.10' && a.prefix === 24), JSON.stringify(qv0));
    assert.ok(qv0['ip-addresses']?.some((a) => a['ip-address'] === '2001:db8::10' && a.prefix === 64), JSON.stringify(qv0));
    assert.ok(byName.get('qv1')!['ip-addresses']?.some((a) => a['ip-address'] === '192.0.2.77' && a.prefix === 28));
    assert.equal(byName.get('qv0:7')!['ip-addresses'], [{ 'ip-address-type': 'ipv4', 'ip-address': '198.51.100.9', prefix: 25 }] as any);
    assert.is(byName.get('qv0:7')!['hardware-address'], qv0['hardware-address']);
    assert.is(byName.get('qt0')!['hardware-address'], '00:00:00:00:00:00');
    assert.ok(byName.get('qt0')!['ip-addresses']?.some((a) => a['ip-address'] === '203.0.113.1' && a.prefix === 32));
  } finally {
    const qpid = Number(fs.existsSync(path.join(dir, 'qemu-ga.pid')) ? fs.readFileSync(path.join(dir, 'qemu-ga.pid'), 'utf8') : NaN);
    if (qpid > 0) { try { process.kill(qpid, 'SIGTERM'); } catch { /* gone */ } }
    if (child.exitCode === null) { try { process.kill(child.pid!, 'SIGTERM'); } catch { /* gone */ } }
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null) { try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } }
    removeTree(dir);
  }
});

test.run();
