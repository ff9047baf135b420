/**
 * Differential test: Debian's qemu-ga and node-qga's handlers on the real /sys and /proc of
 * this machine, reply member by member. Values that change by nature (traffic counters,
 * used bytes) are compared by type and range. Documented differences from qemu-ga 7.2:
 * it lists duplicate major:minor mounts (10.x skips them, so do we) and has no
 * total-bytes-privileged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { defaultConfig } from '../lib/config-types';
import { networkCommands } from '../lib/commands/network';
import { vcpuCommands } from '../lib/commands/vcpus';
import { fsinfoCommands } from '../lib/commands/fsinfo';
import { memoryCommands } from '../lib/commands/memory';
import type { CommandDef } from '../lib/commands/define';

const QEMU_GA = '/usr/sbin/qemu-ga';
const available = fs.existsSync(QEMU_GA);
const ctx = { config: defaultConfig() } as any;

let dir = '';
let child: ChildProcess | undefined;
let sock: net.Socket | undefined;
let buffered = '';
const waiting: Array<(line: string) => void> = [];

async function startQemuGa(): Promise<void> {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-diff-'));
  const sockPath = path.join(dir, 'sock');
  fs.mkdirSync(path.join(dir, 'state'));
  child = spawn(QEMU_GA, ['-m', 'unix-listen', '-p', sockPath, '-t', path.join(dir, 'state'), '-f', path.join(dir, 'pid'), '-l', path.join(dir, 'log')], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !fs.existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 50));
  sock = net.createConnection(sockPath);
  await new Promise<void>((resolve, reject) => { sock!.once('connect', resolve); sock!.once('error', reject); });
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
}

async function qga(execute: string): Promise<any> {
  const line = await new Promise<string>((resolve) => {
    waiting.push(resolve);
    sock!.write(JSON.stringify({ execute }) + '\n');
  });
  const reply = JSON.parse(line);
  if (reply.error) throw new Error(`${execute}: ${reply.error.desc}`);
  return reply.return;
}

async function ours(cmds: CommandDef[], name: string): Promise<any> {
  const cmd = cmds.find((c) => c.name === name)!;
  // Through JSON, as the wire would carry it (bigints do not occur on this machine).
  return JSON.parse(JSON.stringify(await cmd.run({}, ctx)));
}

if (!available) {
  console.log(`  SKIP inventory-vs-qemu-ga: ${QEMU_GA} not installed (apt-get install -y qemu-guest-agent)`);
  test.skip('differential comparison with qemu-ga');
} else {
  test.before(startQemuGa);
  test.after(() => {
    sock?.destroy();
    if (child?.pid) process.kill(child.pid, 'SIGKILL'); // qemu-ga 7.2 can deadlock on SIGTERM; a live child would hang this file
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('guest-network-get-interfaces', async () => {
    const theirs = await qga('guest-network-get-interfaces');
    const mine = await ours(networkCommands, 'guest-network-get-interfaces');
    assert.equal(mine.map((i: any) => i.name), theirs.map((i: any) => i.name), 'same interfaces in the same order');
    theirs.forEach((t: any, n: number) => {
      const m = mine[n];
      assert.equal(Object.keys(m).sort(), Object.keys(t).sort(), `members of ${t.name}`);
      assert.is(m['hardware-address'], t['hardware-address'], `hardware-address of ${t.name}`);
      assert.equal(m['ip-addresses'], t['ip-addresses'], `ip-addresses of ${t.name}`);
      if (t.statistics) {
        assert.equal(Object.keys(m.statistics).sort(), Object.keys(t.statistics).sort());
        // Counters only grow, and ours were read after qemu-ga's.
        for (const k of Object.keys(t.statistics)) {
          assert.type(m.statistics[k], 'number');
          assert.ok(m.statistics[k] >= t.statistics[k], `${t.name} ${k}: ${m.statistics[k]} >= ${t.statistics[k]}`);
        }
      }
    });
  });

  test('guest-get-vcpus', async () => {
    assert.equal(await ours(vcpuCommands, 'guest-get-vcpus'), await qga('guest-get-vcpus'));
  });

  test('guest-get-memory-blocks and guest-get-memory-block-info', async () => {
    assert.equal(await ours(memoryCommands, 'guest-get-memory-blocks'), await qga('guest-get-memory-blocks'));
    assert.equal(await ours(memoryCommands, 'guest-get-memory-block-info'), await qga('guest-get-memory-block-info'));
  });

  /** qemu-ga 7.2 keeps duplicate devices; 10.x (and node-qga) keep the first mount of each. */
  function dedupLike10x(list: any[]): any[] {
    return list.filter((f, i) => !list.slice(i + 1).some((g) => g.name === f.name));
  }

  test('guest-get-fsinfo', async () => {
    // Other work on this machine may mount loop images meanwhile: retry until both snapshots agree.
    let theirs: any[] = [];
    let mine: any[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      theirs = dedupLike10x(await qga('guest-get-fsinfo'));
      mine = await ours(fsinfoCommands, 'guest-get-fsinfo');
      if (JSON.stringify(mine.map((f) => f.mountpoint)) === JSON.stringify(theirs.map((f) => f.mountpoint))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(mine.map((f) => f.mountpoint), theirs.map((f) => f.mountpoint), 'same filesystems in the same order');
    theirs.forEach((t, n) => {
      const m = mine[n];
      assert.equal(Object.keys(m).sort(), [...Object.keys(t), 'total-bytes-privileged'].sort(), `members for ${t.mountpoint}`);
      assert.is(m.name, t.name);
      assert.is(m.type, t.type);
      assert.equal(m.disk, t.disk, `disks of ${t.mountpoint}`);
      // used + available is fixed for a filesystem; used moves with other writers.
      assert.is(m['total-bytes'], t['total-bytes']);
      assert.type(m['used-bytes'], 'number');
      assert.ok(m['used-bytes'] >= 0 && m['used-bytes'] <= m['total-bytes']);
      assert.ok(m['total-bytes-privileged'] >= m['total-bytes']);
    });
  });
}

test.run();
