/**
 * Differential test: Debian's qemu-ga 7.2 and node-qga asked the same requests on this
 * machine, for every command of this area that 7.2 has. Replies that do not move (host
 * name, users, time zone, OS info, the disabled guest-get-devices, disks) must be byte for
 * byte identical; counters (diskstats, cpustats) are compared member by member: same
 * entries, same members in the same wire order, and each value between qemu-ga's readings
 * taken just before and just after ours.
 *
 * Users: qemu-ga reads /var/run/utmp, which this machine lacks; it runs in a private mount
 * namespace (unshare -m) with a tmpfs on /run holding a fixture utmp, so the host's /run is
 * untouched. get-disks cannot be fed a fixture the same way: libudev refuses a /sys that is
 * not sysfs (it checks the statfs magic), so it is compared on this machine's real /sys;
 * the fixture cases (partitions, dm, aliases) are in sysinfo.test.ts.
 * guest-get-load and guest-network-get-route are not in 7.2 (10.x shapes).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { encodeUtmpRecord, USER_PROCESS } from '../lib/platform/utmp';
import { rawExchange, startAgent, tempDir, type TestAgent } from './helpers/agent';

const QEMU_GA = '/usr/sbin/qemu-ga';
const available = fs.existsSync(QEMU_GA);
const canUnshare = available && spawnSync('unshare', ['-m', 'true']).status === 0;
const dir = tempDir('qga-sysinfo-diff-');

interface QemuGa { ask(request: string): Promise<string>; stop(): Promise<void> }

async function startQemuGa(name: string, env: Record<string, string | undefined> = {}, utmp?: string): Promise<QemuGa> {
  const base = path.join(dir, name);
  fs.mkdirSync(path.join(base, 'state'), { recursive: true });
  const sockPath = path.join(base, 'sock');
  const args = ['-m', 'unix-listen', '-p', sockPath, '-t', path.join(base, 'state'), '-f', path.join(base, 'pid'), '-l', path.join(base, 'log')];
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, TZ: undefined, QGA_OS_RELEASE: undefined, ...env })) if (v !== undefined) childEnv[k] = v;
  let child: ChildProcess;
  if (utmp) {
    // Private mount namespace: a tmpfs on /run (so /var/run/utmp) seen by this qemu-ga only.
    child = spawn('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /run && cp "$0" /run/utmp && exec "$@"', utmp, QEMU_GA, ...args], { stdio: 'ignore', env: childEnv });
  } else {
    child = spawn(QEMU_GA, args, { stdio: 'ignore', env: childEnv });
  }
  for (let i = 0; i < 100 && !fs.existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 50));
  const sock = net.createConnection(sockPath);
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  sock.setEncoding('latin1');
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    ask: (request) => new Promise<string>((resolve) => { waiting.push(resolve); sock.write(request + '\n'); }),
    stop: async () => {
      sock.destroy();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM'); // this child only, by its pid
      // qemu-ga 7.2 can deadlock in its own SIGTERM handler (seen here): SIGKILL after 3 s.
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function ours(agent: TestAgent, request: string, env: Record<string, string | undefined> = {}): Promise<string> {
  const saved: Record<string, string | undefined> = {};
  for (const k of ['TZ', 'QGA_OS_RELEASE', ...Object.keys(env)]) saved[k] = process.env[k];
  for (const [k, v] of Object.entries({ TZ: undefined, QGA_OS_RELEASE: undefined, ...env })) {
    if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
  try {
    return (await rawExchange(agent.sock, request + '\n', 1)).toString('latin1').replace(/\n$/, '');
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

const req = (execute: string) => JSON.stringify({ execute });

function utmpFixture(): string {
  const file = path.join(dir, 'utmp');
  fs.writeFileSync(file, Buffer.concat([
    encodeUtmpRecord({ type: 2, user: 'reboot', tvSec: 1600000000 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'alice', line: 'pts/0', tvSec: 1700000000, tvUsec: 100000 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'bob', line: 'pts/1', tvSec: 1700000100, tvUsec: 123456 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'alice', line: 'pts/2', tvSec: 1699999999, tvUsec: 500000 }),
    encodeUtmpRecord({ type: 8, user: 'carol', tvSec: 1600000000 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'r\u00e9my-with-a-rather-long-name-x', tvSec: 1, tvUsec: 999999 }),
    encodeUtmpRecord({ type: USER_PROCESS, user: 'zed', tvSec: -5, tvUsec: 250000 }),
  ]));
  return file;
}

const OS_RELEASE_FIXTURES: Record<string, string> = {
  upstream: 'ID=qemu-ga-test\nNAME=QEMU-GA\nPRETTY_NAME="QEMU Guest Agent test"\nVERSION="Test 1"\nVERSION_ID=1\n'
    + 'VARIANT="Unit test \\"\\\'\\$\\`\\\\ and \\\\\\\\ etc."\nVARIANT_ID=unit-test\n',
  quirks: "  ID = 'single quoted' \r\n# comment\n\nNAME=semi;colon\nPRETTY_NAME=\"a \\x b\" tail\nVERSION=\"unterminated\nID=second;x\n"
    + 'VERSION_ID=\nVARIANT=caf\u00e9 au lait\nVARIANT_ID="\\\\"\n',
  malformed: 'ID=debian\nthis line is not a pair\nNAME=x\n',
  othergroup: 'ID=a\n[Other]\nNAME=b\n[os-release]\nVERSION=c\n',
  badgroup: 'ID=a\n[bad]group]\n',
  encoding: 'Encoding=UTF-8\nID=enc\n',
  unterminated: 'VERSION="a\\$b\nNAME="caf\u00e9\nID="x\\\n',
};

let agent: TestAgent | undefined;

test.before(async () => {
  if (available) agent = await startAgent('fallback', { utmpFile: canUnshare ? utmpFixture() : undefined });
});
test.after(async () => {
  await agent?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('identical bytes: host name, disabled get-devices, OS info (this machine), guest-info entries', async () => {
  if (!available) { console.log(`  SKIP: ${QEMU_GA} not installed`); return; }
  const q = await startQemuGa('plain');
  try {
    for (const execute of ['guest-get-host-name', 'guest-get-devices', 'guest-get-osinfo']) {
      assert.is(await ours(agent!, req(execute)), await q.ask(req(execute)), execute);
    }
    const info = (s: string) => new Map<string, unknown>(JSON.parse(s).return.supported_commands.map((c: any) => [c.name, JSON.stringify(c)]));
    const theirs = info(await q.ask(req('guest-info')));
    const mine = info(await ours(agent!, req('guest-info')));
    for (const name of ['guest-get-host-name', 'guest-get-users', 'guest-get-timezone', 'guest-get-osinfo', 'guest-get-devices',
      'guest-get-disks', 'guest-get-diskstats', 'guest-get-cpustats']) {
      assert.is(mine.get(name), theirs.get(name), name);
    }
    // Newer than 7.2: present here, absent there.
    for (const name of ['guest-get-load', 'guest-network-get-route']) {
      assert.is(theirs.has(name), false);
      assert.is(mine.has(name), true);
    }
  } finally {
    await q.stop();
  }
});

test('identical bytes: guest-get-users on a fixture utmp (login times as %.17g)', async () => {
  if (!canUnshare) { console.log('  SKIP: qemu-ga or unshare -m not available'); return; }
  const q = await startQemuGa('users', {}, path.join(dir, 'utmp'));
  try {
    const theirs = await q.ask(req('guest-get-users'));
    assert.ok(theirs.includes('"alice"'), theirs);
    assert.is(await ours(agent!, req('guest-get-users')), theirs);
  } finally {
    await q.stop();
  }
});

test('identical bytes: guest-get-timezone under several TZ settings', async () => {
  if (!available) { console.log(`  SKIP: ${QEMU_GA} not installed`); return; }
  const zones: Array<string | undefined> = [undefined, 'UTC', 'Europe/Berlin', ':America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata',
    'America/St_Johns', 'EST5EDT,M3.2.0,M11.1.0', '<+0530>-5:30', 'AEST-10AEDT,M10.1.0,M4.1.0/3', 'No/Such_Zone', '/usr/share/zoneinfo/Asia/Tokyo'];
  for (const tz of zones) {
    const q = await startQemuGa(`tz-${zones.indexOf(tz)}`, { TZ: tz });
    try {
      assert.is(await ours(agent!, req('guest-get-timezone'), { TZ: tz }), await q.ask(req('guest-get-timezone')), `TZ=${tz}`);
    } finally {
      await q.stop();
    }
  }
});

test('identical bytes: guest-get-osinfo with QGA_OS_RELEASE fixtures', async () => {
  if (!available) { console.log(`  SKIP: ${QEMU_GA} not installed`); return; }
  for (const [name, content] of Object.entries(OS_RELEASE_FIXTURES)) {
    const file = path.join(dir, `os-release-${name}`);
    fs.writeFileSync(file, content);
    const q = await startQemuGa(`os-${name}`, { QGA_OS_RELEASE: file });
    try {
      assert.is(await ours(agent!, req('guest-get-osinfo'), { QGA_OS_RELEASE: file }), await q.ask(req('guest-get-osinfo')), name);
    } finally {
      await q.stop();
    }
  }
  // A missing file: only the uname members.
  const missing = path.join(dir, 'no-such-os-release');
  const q = await startQemuGa('os-missing', { QGA_OS_RELEASE: missing });
  try {
    assert.is(await ours(agent!, req('guest-get-osinfo'), { QGA_OS_RELEASE: missing }), await q.ask(req('guest-get-osinfo')));
  } finally {
    await q.stop();
  }
});

test('identical bytes: guest-get-disks (retried while loop devices of other tests come and go)', async () => {
  if (!available) { console.log(`  SKIP: ${QEMU_GA} not installed`); return; }
  const q = await startQemuGa('disks');
  try {
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await q.ask(req('guest-get-disks'));
      const mine = await ours(agent!, req('guest-get-disks'));
      const after = await q.ask(req('guest-get-disks'));
      if (before === after) {
        assert.is(mine, before);
        return;
      }
      last = `${before}\n${mine}\n${after}`;
    }
    assert.unreachable(`block devices kept changing:\n${last}`);
  } finally {
    await q.stop();
  }
});

/** Member-by-member comparison of counter lists: same entries and wire order, values in range. */
function compareCounters(before: any[], mine: any[], after: any[], key: (e: any) => string, gauges: Set<string>, label: string): void {
  assert.equal(mine.map(key), before.map(key), `${label}: entries`);
  assert.equal(after.map(key), before.map(key), `${label}: entries (after)`);
  const walk = (b: any, m: any, a: any, where: string): void => {
    assert.equal(Object.keys(m), Object.keys(b), `${where}: members and order`);
    for (const k of Object.keys(b)) {
      const at = `${where}.${k}`;
      if (typeof b[k] === 'object') { walk(b[k], m[k], a[k], at); continue; }
      assert.is(typeof m[k], typeof b[k], at);
      if (typeof b[k] !== 'number' || gauges.has(k)) {
        if (typeof b[k] !== 'number') assert.is(m[k], b[k], at);
        else assert.ok(Number.isInteger(m[k]) && m[k] >= 0, at);
        continue;
      }
      assert.ok(b[k] <= m[k] && m[k] <= a[k], `${at}: ${b[k]} <= ${m[k]} <= ${a[k]}`);
    }
  };
  before.forEach((b, i) => walk(b, mine[i], after[i], `${label}[${key(b)}]`));
}

test('member by member: guest-get-diskstats and guest-get-cpustats', async () => {
  if (!available) { console.log(`  SKIP: ${QEMU_GA} not installed`); return; }
  const q = await startQemuGa('counters');
  try {
    for (const [execute, key, gauges] of [
      ['guest-get-diskstats', (e: any) => `${e.name} ${e.major}:${e.minor}`, new Set(['ios-pgr'])],
      ['guest-get-cpustats', (e: any) => `cpu${e.cpu}`, new Set<string>()],
    ] as const) {
      let ok = false;
      for (let attempt = 0; attempt < 5 && !ok; attempt++) {
        const before = JSON.parse(await q.ask(req(execute))).return;
        const mine = JSON.parse(await ours(agent!, req(execute))).return;
        const after = JSON.parse(await q.ask(req(execute))).return;
        // Loop devices appearing between the readings: read again.
        if (JSON.stringify(before.map(key)) !== JSON.stringify(after.map(key))) continue;
        compareCounters(before, mine, after, key, gauges, execute);
        ok = true;
      }
      assert.ok(ok, `${execute}: device list kept changing`);
    }
  } finally {
    await q.stop();
  }
});

test.run();
