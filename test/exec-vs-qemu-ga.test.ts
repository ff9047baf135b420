/**
 * Differential test: the same guest-exec / guest-exec-status requests to Debian's qemu-ga
 * 7.2 and to node-qga, harmless commands only (echo, true, sh -c 'exit 3', cat, env, head,
 * a sleep killed by its pid). Replies are compared byte for byte, pids aside: errors as
 * they come, a finished status once each agent reports exited (member by member, in wire
 * order). Differences on purpose: 7.2 only takes a boolean capture-output (the string
 * modes are 8.0+), so those are not asked here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgent, tempDir, type TestAgent } from './helpers/agent';
import { LineConn, qemuGaAvailable, QEMU_GA, startQemuGa, type QemuGa } from './exec-qemu-ga';

const dir = tempDir('qga-exec-diff-');
let theirs: QemuGa | undefined;
let agent: TestAgent | undefined;
let ours: LineConn | undefined;
const pids: number[] = [];

test.before(async () => {
  if (!qemuGaAvailable) return;
  theirs = await startQemuGa(path.join(dir, 'qemu-ga'));
  agent = await startAgent('fallback');
  ours = await LineConn.open(agent.sock);
});
test.after(async () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  ours?.close();
  await agent?.stop();
  await theirs?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  if (agent) fs.rmSync(agent.dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PID = /^\{"return": \{"pid": (\d+)\}\}$/;

async function finished(conn: LineConn, pid: number): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const line = await conn.ask({ execute: 'guest-exec-status', arguments: { pid } });
    if (!line.includes('"exited": false')) return line;
    assert.is(line, '{"return": {"exited": false}}');
    await sleep(25);
  }
  throw new Error(`pid ${pid} did not finish`);
}

/** Runs one guest-exec on both; returns the pids (or undefined after comparing errors). */
async function both(args: Record<string, unknown>): Promise<[number, number] | undefined> {
  const req = { execute: 'guest-exec', arguments: args };
  const [a, b] = [await theirs!.conn.ask(req), await ours!.ask(req)];
  const ma = PID.exec(a), mb = PID.exec(b);
  if (!ma || !mb) {
    assert.is(b, a, `guest-exec ${JSON.stringify(args)}`);
    return undefined;
  }
  pids.push(Number(ma[1]), Number(mb[1]));
  return [Number(ma[1]), Number(mb[1])];
}

async function compareRun(args: Record<string, unknown>): Promise<string> {
  const p = await both(args);
  assert.ok(p, `guest-exec ${JSON.stringify(args)} started on both`);
  const [a, b] = [await finished(theirs!.conn, p![0]), await finished(ours!, p![1])];
  assert.is(b, a, `status of ${JSON.stringify(args)}`);
  // Read once: the record is gone on both.
  const again = { execute: 'guest-exec-status', arguments: { pid: p![0] } };
  assert.is(await theirs!.conn.ask(again), '{"error": {"class": "GenericError", "desc": "Invalid parameter \'pid\'"}}');
  assert.is(await ours!.ask({ ...again, arguments: { pid: p![1] } }), '{"error": {"class": "GenericError", "desc": "Invalid parameter \'pid\'"}}');
  return b;
}

const skip = (): boolean => {
  if (!qemuGaAvailable) { console.log(`  SKIP: ${QEMU_GA} not installed`); return true; }
  return false;
};

test('test-qga guest-exec case: echo -n with quotes, absolute path and through PATH', async () => {
  if (skip()) return;
  await compareRun({ path: '/bin/echo', arg: ['-n', '" test_str "'], 'capture-output': true });
  await compareRun({ path: 'echo', arg: ['-n', '" test_str "'], 'capture-output': true });
});

test('exit codes, no output, no capture, capture false', async () => {
  if (skip()) return;
  await compareRun({ path: '/bin/true' });
  await compareRun({ path: '/bin/true', 'capture-output': true });
  await compareRun({ path: '/bin/false', 'capture-output': false });
  await compareRun({ path: '/bin/sh', arg: ['-c', 'exit 3'] });
  await compareRun({ path: '/bin/sh', arg: ['-c', 'echo o; echo e >&2; exit 7'] });
});

test('stdout and stderr captured apart', async () => {
  if (skip()) return;
  const r = await compareRun({ path: '/bin/sh', arg: ['-c', 'echo out; echo err >&2; printf "\\001\\377"'], 'capture-output': true });
  assert.match(r, '"err-data"');
});

test('input-data through cat (plain and line-wrapped base64), empty input, bad base64', async () => {
  if (skip()) return;
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
  await compareRun({ path: 'cat', 'input-data': data.toString('base64'), 'capture-output': true });
  await compareRun({ path: 'cat', 'input-data': data.toString('base64').replace(/(.{76})/g, '$1\n'), 'capture-output': true });
  await compareRun({ path: 'cat', 'input-data': '', 'capture-output': true });
  assert.is(await both({ path: 'cat', 'input-data': 'a*b=' }), undefined);
});

test('env replaces the environment; PATH from env', async () => {
  if (skip()) return;
  await compareRun({ path: '/usr/bin/env', env: ['A=1', 'B=x=y'], 'capture-output': true });
  await compareRun({ path: '/usr/bin/env', env: [], 'capture-output': true });
  await compareRun({ path: 'sh', arg: ['-c', 'echo "$X"'], env: ['X=from env'], 'capture-output': true });
  assert.is(await both({ path: 'true', env: ['PATH=/nonexistent'] }), undefined);
});

test('spawn failures and unknown pids', async () => {
  if (skip()) return;
  for (const p of ['/nonexistent/prog', 'nonexistent-prog-qga', '/tmp', '/etc/passwd', '', '/bin/invalid-cmd42']) {
    assert.is(await both({ path: p }), undefined);
  }
  for (const pid of [0, 1, -5]) {
    const req = { execute: 'guest-exec-status', arguments: { pid } };
    assert.is(await ours!.ask(req), await theirs!.conn.ask(req));
  }
});

test('a running child, then killed by a signal', async () => {
  if (skip()) return;
  for (const sig of ['SIGKILL', 'SIGTERM'] as const) {
    const p = await both({ path: 'sleep', arg: ['100'], 'capture-output': true });
    assert.ok(p);
    const st = (pid: number) => ({ execute: 'guest-exec-status', arguments: { pid } });
    assert.is(await ours!.ask(st(p![1])), await theirs!.conn.ask(st(p![0])));
    process.kill(p![0], sig); // both are descendants of this test
    process.kill(p![1], sig);
    assert.is(await finished(ours!, p![1]), await finished(theirs!.conn, p![0]));
  }
});

test('exited waits for the pipes: a background grandchild holds stdout', async () => {
  if (skip()) return;
  await compareRun({ path: '/bin/sh', arg: ['-c', 'sleep 0.5 & echo started'], 'capture-output': true });
});

test('17 MB of output: truncated at 16 MiB on both', async () => {
  if (skip()) return;
  const r = await compareRun({ path: 'head', arg: ['-c', '17000000', '/dev/zero'], 'capture-output': true });
  assert.match(r, '"out-truncated": true');
});

test.run();
