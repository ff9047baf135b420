/**
 * The inventory commands through the whole agent on a unix socket: argument validation of
 * the set commands against fixture trees, and byte-exact replies compared with Debian's
 * qemu-ga for the commands whose values do not move (vcpus, memory blocks).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { startAgent, rawExchange, tempDir, type TestAgent } from './helpers/agent';
import { buildTree, removeTree } from './inventory-fixture';

const QEMU_GA = '/usr/sbin/qemu-ga';
let fixture = '';
let agent: TestAgent;
let realAgent: TestAgent;
let qemuGa: ChildProcess | undefined;
let qemuDir = '';

async function ask(sock: string, request: string): Promise<string> {
  return (await rawExchange(sock, request + '\n', 1)).toString('latin1');
}

test.before(async () => {
  fixture = tempDir('qga-inv-wire-');
  buildTree(fixture, {
    'sys/devices/system/cpu': { cpu0: {}, cpu1: { online: '1\n' } },
    'sys/devices/system/memory': { block_size_bytes: '8000000\n', memory4: { state: 'online\n', removable: '1\n' } },
  });
  agent = await startAgent('fallback', { sysfsRoot: `${fixture}/sys`, procRoot: `${fixture}/proc` });
  realAgent = await startAgent('fallback');
  if (fs.existsSync(QEMU_GA)) {
    qemuDir = tempDir('qga-inv-qemu-');
    fs.mkdirSync(path.join(qemuDir, 'state'));
    qemuGa = spawn(QEMU_GA, ['-m', 'unix-listen', '-p', path.join(qemuDir, 'sock'), '-t', path.join(qemuDir, 'state'), '-f', path.join(qemuDir, 'pid')], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !fs.existsSync(path.join(qemuDir, 'sock')); i++) await new Promise((r) => setTimeout(r, 50));
  }
});

test.after(async () => {
  await agent?.stop();
  await realAgent?.stop();
  if (qemuGa?.pid) process.kill(qemuGa.pid, 'SIGKILL'); // qemu-ga 7.2 can deadlock on SIGTERM
  removeTree(fixture);
  if (qemuDir) removeTree(qemuDir);
  if (agent) removeTree(agent.dir);
  if (realAgent) removeTree(realAgent.dir);
});

test('set-vcpus and set-memory-blocks: arguments validated from the declared structs', async () => {
  assert.is(await ask(agent.sock, '{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1}]}}'),
    '{"error": {"class": "GenericError", "desc": "Parameter \'vcpus[0].online\' is missing"}}\n');
  assert.is(await ask(agent.sock, '{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":"no"}]}}'),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'vcpus[0].online\', expected: boolean"}}\n');
  assert.is(await ask(agent.sock, '{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":false,"can-offline":true}]}}'),
    '{"return": 1}\n');
  assert.is(fs.readFileSync(`${fixture}/sys/devices/system/cpu/cpu1/online`, 'utf8'), '0\n');
  assert.is(await ask(agent.sock, '{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":false}]}}'),
    '{"error": {"class": "GenericError", "desc": "logical processor #0 can\'t be offlined"}}\n');
  assert.is(await ask(agent.sock, '{"execute":"guest-get-vcpus"}'),
    '{"return": [' + orderedCpus() + ']}\n');
  assert.is(await ask(agent.sock, '{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":4,"online":false},{"phys-index":9,"online":true}]}}'),
    '{"return": [{"response": "success", "phys-index": 4}, {"response": "not-found", "error-code": 2, "phys-index": 9}]}\n');
  assert.is(fs.readFileSync(`${fixture}/sys/devices/system/memory/memory4/state`, 'utf8').slice(0, 7), 'offline');
  assert.is(await ask(agent.sock, '{"execute":"guest-get-memory-block-info"}'), '{"return": {"size": 134217728}}\n');
});

/** get-vcpus reply members for the fixture, in directory order and qemu-ga's key order. */
function orderedCpus(): string {
  const d = fs.opendirSync(`${fixture}/sys/devices/system/cpu`);
  const names: string[] = [];
  for (let e = d.readSync(); e; e = d.readSync()) names.push(e.name);
  d.closeSync();
  return names.map((n) => n === 'cpu0'
    ? '{"online": true, "can-offline": false, "logical-id": 0}'
    : '{"online": false, "can-offline": true, "logical-id": 1}').join(', ');
}

test('byte-exact against qemu-ga: get-vcpus, get-memory-blocks, get-memory-block-info', async () => {
  if (!qemuGa) {
    console.log(`  SKIP byte comparison: ${QEMU_GA} not installed (apt-get install -y qemu-guest-agent)`);
    return;
  }
  for (const cmd of ['guest-get-vcpus', 'guest-get-memory-blocks', 'guest-get-memory-block-info']) {
    const request = `{"execute":"${cmd}","id":"x1"}`;
    const theirs = await ask(path.join(qemuDir, 'sock'), request);
    const ours = await ask(realAgent.sock, request);
    assert.is(ours, theirs, cmd);
  }
});

test('same bytes as qemu-ga apart from moving numbers: network-get-interfaces, get-fsinfo', async () => {
  if (!qemuGa) {
    console.log(`  SKIP byte comparison: ${QEMU_GA} not installed (apt-get install -y qemu-guest-agent)`);
    return;
  }
  // Counters and used bytes move between the two calls; 7.2 has no total-bytes-privileged.
  const mask = (s: string) => s
    .replace(/"((?:rx|tx)-(?:bytes|packets|errs|dropped)|used-bytes)": \d+/g, '"$1": N')
    .replace(/"total-bytes-privileged": \d+, /g, '');
  for (const cmd of ['guest-network-get-interfaces', 'guest-get-fsinfo']) {
    const request = `{"execute":"${cmd}","id":7}`;
    let theirs = '', ours = '';
    for (let attempt = 0; attempt < 5; attempt++) { // loop mounts from other tests may come and go
      theirs = mask(await ask(path.join(qemuDir, 'sock'), request));
      ours = mask(await ask(realAgent.sock, request));
      if (ours === theirs) break;
    }
    assert.is(ours, theirs, cmd);
  }
});

test.run();
