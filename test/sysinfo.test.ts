/**
 * The read-only commands newer than the 2.4 schema, on fixtures: os-release (upstream's
 * test-qga fixture and qemu-ga's parsing quirks), a utmp file built here, time zones from
 * TZif files and POSIX TZ strings, /proc/diskstats, /proc/stat, /proc/loadavg,
 * /proc/net/route and ipv6_route, and a sysfs tree for guest-get-disks. Wire-level cases
 * go through a real agent (reply bytes, disabled guest-get-devices, guest-info).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getOsinfo, getTimezone, getUsers } from '../lib/commands/sysinfo';
import { cleanOsReleaseValue, parseOsRelease, readOsReleaseFields } from '../lib/platform/os-release';
import { encodeUtmpRecord, parseUtmp, USER_PROCESS } from '../lib/platform/utmp';
import { parsePosixTz } from '../lib/platform/tzfile';
import { getDisks, getDiskstats, parseDiskstats } from '../lib/commands/disks';
import { formatIpv6, getCpuStats, getLoad, getRoutes, parseCpuStats } from '../lib/commands/stats';
import { readdirInKernelOrder } from '../lib/platform/dir-order';
import { writeJson } from '../lib/protocol/encoder';
import { QgaError } from '../lib/errors';
import { rawExchange, startAgent, tempDir } from './helpers/agent';
import { buildDiskFixture } from './sysinfo-fixture';

const tmp = tempDir('qga-sysinfo-');
const write = (rel: string, content: string | Buffer): string => {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
};
const link = (rel: string, target: string): void => {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.symlinkSync(target, p);
};
const throwsQga = (fn: () => unknown, desc: string): void => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, QgaError);
    assert.is((e as QgaError).desc, desc);
    return;
  }
  assert.unreachable(`expected error: ${desc}`);
};

// ---------------------------------------------------------------- os-release

const UPSTREAM_OS_RELEASE = [
  'ID=qemu-ga-test',
  'NAME=QEMU-GA',
  'PRETTY_NAME="QEMU Guest Agent test"',
  'VERSION="Test 1"',
  'VERSION_ID=1',
  'VARIANT="Unit test \\"\\\'\\$\\`\\\\ and \\\\\\\\ etc."',
  'VARIANT_ID=unit-test',
  '',
].join('\n');

test('osinfo: upstream test-qga os-release fixture gives exactly its fields', () => {
  const file = write('os-release/upstream', UPSTREAM_OS_RELEASE);
  const info = getOsinfo({ QGA_OS_RELEASE: file });
  assert.is(info.id, 'qemu-ga-test');
  assert.is(info.name, 'QEMU-GA');
  assert.is(info['pretty-name'], 'QEMU Guest Agent test');
  assert.is(info.version, 'Test 1');
  assert.is(info['version-id'], '1');
  assert.is(info.variant, 'Unit test "\'$`\\ and \\\\ etc.');
  assert.is(info['variant-id'], 'unit-test');
  assert.is(info['kernel-release'], os.release());
  assert.is(info['kernel-version'], os.version());
  assert.is(info.machine, os.machine());
  assert.equal(Object.keys(info), ['kernel-release', 'kernel-version', 'machine', 'id', 'name', 'pretty-name', 'version', 'version-id', 'variant', 'variant-id']);
});

test('osinfo: value clean-up quirks', () => {
  assert.is(cleanOsReleaseValue('plain'), 'plain');
  assert.is(cleanOsReleaseValue('two words'), 'two');
  assert.is(cleanOsReleaseValue('a;b c'), 'a');
  assert.is(cleanOsReleaseValue("'single quoted'"), "'single"); // upstream bug kept
  assert.is(cleanOsReleaseValue('"dq" trailing'), 'dq');
  assert.is(cleanOsReleaseValue('"keep \\n and \\\\"'), 'keep \\n and \\');
  assert.is(cleanOsReleaseValue('"unterminated'), 'unterminatedd'); // no terminator written: the last byte repeats
  assert.is(cleanOsReleaseValue('"a\\$b'), 'a$b$b');
  assert.is(cleanOsReleaseValue(''), '');
});

test('osinfo: key-file rules (whitespace, comments, groups, malformed lines, encoding)', () => {
  const parse = (s: string | Buffer) => parseOsRelease(Buffer.isBuffer(s) ? s : Buffer.from(s));
  assert.equal([...parse('  ID = debian  \r\n# c\n\nNAME=x\nID=last\n')!], [['ID', 'last'], ['NAME', 'x']]);
  assert.is(parse('ID=a\nthis is not a pair\n'), null);
  assert.is(parse('=value\n'), null);
  assert.is(parse('BAD[KEY=1\n'), null);
  assert.is(parse('Encoding=latin1\n'), null);
  assert.is(parse(Buffer.from([0x49, 0x44, 0x3d, 0xff, 0x0a])), null); // not UTF-8
  // Keys after another group are not os-release keys; a NUL ends the file.
  assert.equal([...parse('ID=a\n[other]\nNAME=b\n[os-release]\nVERSION=c\n')!], [['ID', 'a'], ['VERSION', 'c']]);
  assert.equal([...parse(Buffer.from('ID=a\n\0NAME=b\n'))!], [['ID', 'a']]);
  // A malformed file loses every os-release field (uname members stay).
  const bad = write('os-release/bad', 'ID=debian\nnonsense\n');
  const info = getOsinfo({ QGA_OS_RELEASE: bad });
  assert.is(info.id, undefined);
  assert.is(info.machine, os.machine());
  // Without QGA_OS_RELEASE: the first candidate that loads wins.
  const good = write('os-release/good', 'ID=second\n');
  assert.equal(readOsReleaseFields([path.join(tmp, 'missing'), bad, good]), { id: 'second' });
});

// ---------------------------------------------------------------- utmp / users

function utmpFixture(): string {
  const recs = [
    encodeUtmpRecord({ type: 2, user: 'reboot', tvSec: 1600000000 }),                 // BOOT_TIME
    encodeUtmpRecord({ type: 6, user: 'LOGIN', line: 'tty1', tvSec: 1600000001 }),    // LOGIN_PROCESS
    encodeUtmpRecord({ type: USER_PROCESS, user: 'alice', line: 'pts/0', pid: 10, tvSec: 1700000000, tvUsec: 100000 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'bob', line: 'pts/1', tvSec: 1700000100, tvUsec: 0 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'alice', line: 'pts/2', tvSec: 1699999999, tvUsec: 500000 }),
    encodeUtmpRecord({ type: 8, user: 'carol', tvSec: 1600000000 }),                  // DEAD_PROCESS
    encodeUtmpRecord({ type: USER_PROCESS, user: 'alice', line: 'pts/3', tvSec: 1800000000 }),
    Buffer.alloc(100, 7), // a partial trailing record is ignored
  ];
  return write('utmp', Buffer.concat(recs));
}

test('users: USER_PROCESS only, first-appearance order, earliest login kept', () => {
  const file = utmpFixture();
  assert.is(parseUtmp(fs.readFileSync(file)).length, 7);
  const users = getUsers(file);
  assert.equal(users.map((u) => u.user), ['alice', 'bob']);
  assert.is(users[0]['login-time'].value, 1699999999.5);
  assert.is(users[1]['login-time'].value, 1700000100);
  assert.is(writeJson(users), '[{"login-time": 1699999999.5, "user": "alice"}, {"login-time": 1700000100, "user": "bob"}]');
  assert.equal(getUsers(path.join(tmp, 'no-such-utmp')), []);
});

test('users: login time printed with %.17g on the wire', async () => {
  const file = write('utmp2', encodeUtmpRecord({ type: USER_PROCESS, user: 'dave', tvSec: 1700000000, tvUsec: 100000 }));
  const a = await startAgent('fallback', { utmpFile: file });
  try {
    const reply = await rawExchange(a.sock, '{"execute": "guest-get-users"}\n', 1);
    assert.is(reply.toString(), '{"return": [{"login-time": 1700000000.0999999, "user": "dave"}]}\n');
  } finally {
    await a.stop();
  }
});

// ---------------------------------------------------------------- timezone

test('timezone: TZif zones, DST, past the table (footer rule), POSIX strings, UTC fallback', () => {
  const at = (tz: string | undefined, t: number) => getTimezone(t * 1000, tz === undefined ? {} : { TZ: tz });
  // Reference values from Python's zoneinfo on this machine's tzdata.
  assert.equal(at('Europe/Berlin', 1705000000), { zone: 'CET', offset: 3600 });
  assert.equal(at('Europe/Berlin', 1720000000), { zone: 'CEST', offset: 7200 });
  assert.equal(at('Europe/Berlin', 2225000000), { zone: 'CEST', offset: 7200 }); // 2040
  assert.equal(at('America/New_York', 1705000000), { zone: 'EST', offset: -18000 });
  assert.equal(at(':America/New_York', 1720000000), { zone: 'EDT', offset: -14400 });
  assert.equal(at('Australia/Lord_Howe', 1705000000), { zone: '+11', offset: 39600 });
  assert.equal(at('Australia/Lord_Howe', 1720000000), { zone: '+1030', offset: 37800 });
  assert.equal(at('Asia/Kolkata', 1720000000), { zone: 'IST', offset: 19800 });
  assert.equal(at('/usr/share/zoneinfo/Asia/Kolkata', 1720000000), { zone: 'IST', offset: 19800 });
  assert.equal(at('EST5EDT,M3.2.0,M11.1.0', 1720000000), { zone: 'EDT', offset: -14400 });
  assert.equal(at('EST5EDT,M3.2.0,M11.1.0', 1705000000), { zone: 'EST', offset: -18000 });
  assert.equal(at('<+0530>-5:30', 1705000000), { zone: '+0530', offset: 19800 });
  assert.equal(at('No/Such_Zone_x', 1705000000), { zone: 'UTC', offset: 0 });
  assert.is(Object.is(at('UTC0', 1705000000).offset, 0), true); // never -0
  // Southern hemisphere rule (DST spans the new year).
  assert.equal(at('AEST-10AEDT,M10.1.0,M4.1.0/3', 1705000000), { zone: 'AEDT', offset: 39600 });
  assert.equal(at('AEST-10AEDT,M10.1.0,M4.1.0/3', 1720000000), { zone: 'AEST', offset: 36000 });
  assert.is(parsePosixTz('x'), null);
});

// ---------------------------------------------------------------- diskstats

test('diskstats: members filled by field count (20, 18, 14, 7, other), order kept', () => {
  const text = [
    ' 254       0 vda 193325 34588 7355738 83191 91431 62062 15117448 70598 0 48612 173766 64209 45 10976072 13732 14595 6243',
    '   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15',
    '   8       1 sda1 1 2 3 4 5 6 7 8 9 10 11',
    '   3       1 hda1 11 12 13 14',
    '   9       0 md0 1 2 3 4 5 6 7',
    '   1       0 ram0 1',
    '',
  ].join('\n');
  const got = parseDiskstats(text);
  assert.equal(got.map((d) => d.name), ['vda', 'sda', 'sda1', 'hda1', 'md0']);
  assert.equal(got[0], {
    name: 'vda', major: 254, minor: 0,
    stats: {
      'read-sectors': 7355738, 'read-ios': 193325, 'read-merges': 34588, 'write-sectors': 15117448, 'write-ios': 91431,
      'write-merges': 62062, 'discard-sectors': 10976072, 'discard-ios': 64209, 'discard-merges': 45, 'flush-ios': 14595,
      'read-ticks': 83191, 'write-ticks': 70598, 'discard-ticks': 13732, 'flush-ticks': 6243, 'ios-pgr': 0,
      'total-ticks': 48612, 'weight-ticks': 173766,
    },
  });
  assert.equal(Object.keys(got[0].stats), [
    'read-sectors', 'read-ios', 'read-merges', 'write-sectors', 'write-ios', 'write-merges', 'discard-sectors', 'discard-ios',
    'discard-merges', 'flush-ios', 'read-ticks', 'write-ticks', 'discard-ticks', 'flush-ticks', 'ios-pgr', 'total-ticks', 'weight-ticks']);
  assert.is(Object.keys(got[1].stats).length, 15); // 18 fields: no flush pair
  assert.is(got[1].stats['discard-ticks'], 15);
  assert.is(got[1].stats['flush-ios'], undefined);
  assert.is(Object.keys(got[2].stats).length, 11); // 14 fields
  assert.equal(got[3].stats, { 'read-sectors': 12, 'read-ios': 11, 'write-sectors': 14, 'write-ios': 13 }); // 7 fields
  assert.equal(got[4].stats, {}); // 10 fields: qemu-ga fills nothing
  assert.is(writeJson(got[3]), '{"name": "hda1", "stats": {"write-ios": 13, "read-ios": 11, "write-sectors": 14, "read-sectors": 12}, "minor": 1, "major": 3}');
  // Ticks are C unsigned ints; sectors unsigned longs (exact beyond 2^53).
  const big = parseDiskstats('8 0 sdb 1 2 18446744073709551615 4 5 6 7 4294967297 9 10 11\n')[0];
  assert.is(big.stats['read-sectors'], 18446744073709551615n);
  assert.is(big.stats['write-ticks'], 1);
  throwsQga(() => getDiskstats(path.join(tmp, 'noproc')), `open("${path.join(tmp, 'noproc')}/diskstats"): No such file or directory`);
  write('proc/diskstats', text);
  assert.is(getDiskstats(path.join(tmp, 'proc')).length, 5);
});

// ---------------------------------------------------------------- cpustats, load

test('cpustats: per-CPU lines in milliseconds, optional members by column count', () => {
  const stat = [
    'cpu  100 200 300 400 500 600 700 800 900 1000',
    'cpu0 1 2 3 4 5 6 7 8 9 10',
    'cpu1 10 20 30 40',
    'cpu2 10 20 30 40 50 60',
    'cpu3 1 1 1 1 1 1 1 1 1',
    'intr 12345 0 0',
    'ctxt 999',
    '',
  ].join('\n');
  const got = parseCpuStats(stat);
  assert.equal(got[0], { type: 'linux', cpu: 0, user: 10, nice: 20, system: 30, idle: 40, iowait: 50, irq: 60, softirq: 70, steal: 80, guest: 90, guestnice: 100 });
  assert.equal(got[1], { type: 'linux', cpu: 1, user: 100, nice: 200, system: 300, idle: 400 });
  assert.equal(got[2], { type: 'linux', cpu: 2, user: 100, nice: 200, system: 300, idle: 400, iowait: 500, irq: 600, softirq: 0 });
  assert.equal(Object.keys(got[3]), ['type', 'cpu', 'user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal', 'guest']);
  assert.is(got.length, 4);
  assert.is(writeJson(got[1]), '{"cpu": 1, "idle": 400, "system": 300, "nice": 200, "type": "linux", "user": 100}');
  // A cpuN line with too few columns stops the scan (qemu-ga logs and returns what it has).
  const logged: string[] = [];
  assert.is(parseCpuStats('cpu0 1 2 3 4\ncpu1 1 2\ncpu2 1 2 3 4\n', (m) => logged.push(m)).length, 1);
  assert.equal(logged, ['Parsing cpu stat from /proc/stat failed, see "man proc"']);
  write('proc/stat', stat);
  assert.is(getCpuStats(path.join(tmp, 'proc')).length, 4);
  throwsQga(() => getCpuStats(path.join(tmp, 'noproc')), `open("${path.join(tmp, 'noproc')}/stat"): No such file or directory`);
});

test('load (10.x command): /proc/loadavg as doubles', () => {
  write('proc/loadavg', '0.12 1.50 10.00 3/456 7890\n');
  const load = getLoad(path.join(tmp, 'proc'));
  assert.is(writeJson(load), '{"load15m": 10, "load5m": 1.5, "load1m": 0.12}');
  throwsQga(() => getLoad(path.join(tmp, 'noproc')), 'cannot query load average: No such file or directory');
});

// ---------------------------------------------------------------- routes

test('network-get-route (10.x command): IPv4 and IPv6 tables', () => {
  write('proc/net/route', [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t1500\t0\t0',
    'broken line',
    '',
  ].join('\n'));
  write('proc/net/ipv6_route', [
    'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0',
    '00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo',
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo',
    '',
  ].join('\n'));
  const routes = getRoutes(path.join(tmp, 'proc'));
  assert.is(routes.length, 6);
  assert.equal(routes[0], {
    iface: 'eth0', destination: '0.0.0.0', metric: 100, gateway: '192.0.2.1', mask: '0.0.0.0',
    irtt: 0, flags: 3, refcnt: 0, use: 0, window: 0, mtu: 0, version: 4,
  });
  assert.is(routes[1].destination, '192.0.2.0');
  assert.is(routes[1].mask, '255.255.255.0');
  assert.is(routes[1].mtu, 1500);
  assert.equal(routes[2], {
    iface: 'eth0', destination: 'fd00::', metric: 256, flags: 1, refcnt: 1, use: 0,
    desprefixlen: '64', source: '::', srcprefixlen: '0', nexthop: '::', version: 6,
  });
  assert.is(routes[3].nexthop, 'fd00::1');
  assert.is(routes[3].destination, '::');
  assert.is(routes[4].destination, '::1');
  assert.is(routes[4].desprefixlen, '128');
  assert.is(routes[4].flags, 18446744071564165121n); // 0x80200001 in a C int, widened to uint64
  assert.is(routes[5].metric, -1); // 0xffffffff scanned into a C int
  assert.is(writeJson(routes[2]), '{"flags": 1, "source": "::", "metric": 256, "refcnt": 1, "version": 6, "nexthop": "::", "iface": "eth0", "destination": "fd00::", "desprefixlen": "64", "srcprefixlen": "0", "use": 0}');
  fs.rmSync(path.join(tmp, 'proc/net/ipv6_route'));
  throwsQga(() => getRoutes(path.join(tmp, 'proc')), `open("${path.join(tmp, 'proc')}/net/ipv6_route"): No such file or directory`);
});

test('inet_ntop formatting of IPv6 addresses', () => {
  const v6 = (hex: string) => formatIpv6(Buffer.from(hex, 'hex'));
  assert.is(v6('00000000000000000000000000000000'), '::');
  assert.is(v6('00000000000000000000000000000001'), '::1');
  assert.is(v6('20010db8000000000001000000000001'), '2001:db8::1:0:0:1');
  assert.is(v6('20010db8000100000000000000000000'), '2001:db8:1::');
  assert.is(v6('00000000000000000000ffffc0000201'), '::ffff:192.0.2.1');
  assert.is(v6('000000000000000000000000c0000201'), '::192.0.2.1');
  assert.is(v6('fe800000000000000000000000000001'), 'fe80::1');
  assert.is(v6('20010db8000000010000000000000001'), '2001:db8:0:1::1');
  assert.is(v6('20010db8aaaabbbbccccddddeeee0001'), '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1');
});

// ---------------------------------------------------------------- get-disks

test('get-disks: partitions, dm with slaves and alias, addresses, size-0 disks skipped, reversed order', () => {
  const { sys, udev } = buildDiskFixture(tmp);
  const disks = getDisks({ sysfsRoot: sys, udevDataDir: udev });
  const vdbAddr = {
    'pci-controller': { domain: 0, bus: 0, slot: 4, function: 0 }, 'bus-type': 'virtio', bus: 0, target: 0, unit: 0, dev: '/dev/vdb',
  };
  const nvmeAddr = {
    'pci-controller': { domain: 0, bus: 0, slot: 5, function: 0 }, 'bus-type': 'nvme', bus: 0, target: 0, unit: 0, dev: '/dev/nvme0n1',
  };
  const slaveOrder = readdirInKernelOrder(path.join(sys, 'devices/virtual/block/dm-0/slaves')).map((e) => `/dev/${e.name}`).reverse();
  const byDisk: Record<string, unknown[]> = {
    vdb: [
      ...readdirInKernelOrder(path.join(sys, 'block/vdb')).filter((e) => /^vdb\d/.test(e.name)).reverse()
        .map((e) => ({ name: `/dev/${e.name}`, partition: true, dependencies: ['/dev/vdb'] })),
      { name: '/dev/vdb', partition: false, dependencies: [], address: vdbAddr },
    ],
    nvme0n1: [
      { name: '/dev/nvme0n1p1', partition: true, dependencies: ['/dev/nvme0n1'] },
      { name: '/dev/nvme0n1', partition: false, address: nvmeAddr },
    ],
    'dm-0': [{ name: '/dev/dm-0', partition: false, dependencies: slaveOrder, alias: 'vg-root' }],
  };
  // qemu-ga walks /sys/block in readdir order and prepends: the last disk comes first.
  const expected = readdirInKernelOrder(path.join(sys, 'block')).map((e) => e.name).filter((n) => byDisk[n]).reverse().flatMap((n) => byDisk[n]);
  assert.equal(disks, expected);
  assert.is(disks.length, 6);
  // Wire form of the dm entry: QDict order.
  const dm = disks.find((d) => d.name === '/dev/dm-0')!;
  assert.is(writeJson(dm), `{"name": "/dev/dm-0", "dependencies": ${writeJson(slaveOrder)}, "partition": false, "alias": "vg-root"}`);
  throwsQga(() => getDisks({ sysfsRoot: path.join(tmp, 'nosys'), udevDataDir: udev }), `Can't open directory "${path.join(tmp, 'nosys')}/block": No such file or directory`);
});

// ---------------------------------------------------------------- through the agent

test('agent: guest-get-devices disabled like qemu-ga 7.2 on Linux; new commands listed in guest-info', async () => {
  const a = await startAgent('fallback');
  try {
    const reply = await rawExchange(a.sock, '{"execute": "guest-get-devices"}\n{"execute": "guest-info"}\n', 2);
    const [devices, info] = reply.toString().trim().split('\n');
    assert.is(devices, '{"error": {"class": "CommandNotFound", "desc": "Command guest-get-devices has been disabled"}}');
    const listed = new Map<string, boolean>(JSON.parse(info).return.supported_commands.map((c: any) => [c.name, c.enabled]));
    assert.is(listed.get('guest-get-devices'), false);
    for (const name of ['guest-get-host-name', 'guest-get-users', 'guest-get-timezone', 'guest-get-osinfo', 'guest-get-disks',
      'guest-get-diskstats', 'guest-get-cpustats', 'guest-get-load', 'guest-network-get-route']) {
      assert.is(listed.get(name), true, name);
    }
    const host = await rawExchange(a.sock, '{"execute": "guest-get-host-name"}\n', 1);
    assert.is(host.toString(), `{"return": {"host-name": ${writeJson(os.hostname())}}}\n`);
  } finally {
    await a.stop();
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
