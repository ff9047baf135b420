/**
 * guest-exec and guest-exec-status through a real agent: upstream test-qga's cases (echo with
 * quotes, separated and merged output), input-data through cat, the 16 MiB capture bound, a
 * killed child, env replacement and PATH rules, spawn errors and unknown pids with qemu-ga
 * 7.2's texts, status deleted after it was read, argument validation; then the ExecTable
 * bound on unread results and the PATH search on its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QgaClient, QgaError } from '../lib/client';
import { startAgent, tempDir, type TestAgent } from './helpers/agent';
import { ExecTable } from '../lib/platform/exec-table';
import { resolveProgram, searchPathFor } from '../lib/platform/exec-path';
import { startProcess } from '../lib/commands/exec';

let agent: TestAgent;
let qga: QgaClient;
const tmp = tempDir('qga-exec-');
const started: number[] = [];
/** Descriptors this process had before the agent started (inherited from the test runner). */
const INHERITED_FDS = fs.readdirSync('/proc/self/fd').map(Number).filter((n) => n > 2);

test.before(async () => {
  agent = await startAgent('fallback');
  qga = await agent.connect();
});
test.after(async () => {
  for (const pid of started) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  qga.close();
  await agent.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(agent.dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function exec(args: Record<string, unknown>): Promise<number> {
  const { pid } = await qga.call('guest-exec', args);
  assert.type(pid, 'number');
  assert.ok(pid > 0);
  started.push(pid);
  return pid;
}

/** Polls until exited (upstream polls for 5 s; a generous bound here, not a timing assertion). */
async function waitStatus(pid: number): Promise<any> {
  for (let i = 0; i < 600; i++) {
    const s = await qga.call('guest-exec-status', { pid });
    if (s.exited) return s;
    assert.equal(s, { exited: false });
    await sleep(50);
  }
  throw new Error(`process ${pid} did not finish`);
}

async function callError(execute: string, args: Record<string, unknown>): Promise<QgaError> {
  try {
    await qga.call(execute, args);
  } catch (e) {
    assert.instance(e, QgaError);
    return e as QgaError;
  }
  throw new Error(`${execute} succeeded`);
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const SCRIPT = 'for i in $(seq 4); do if (( $i % 2 )); then echo stdout; else echo stderr 1>&2; fi; done;';

test('test-qga /qga/guest-exec: echo -n with quotes, found through PATH', async () => {
  const pid = await exec({ path: 'echo', arg: ['-n', '" test_str "'], 'capture-output': true });
  const s = await waitStatus(pid);
  assert.equal(s, { exitcode: 0, 'out-data': b64('" test_str "'), 'out-truncated': false, exited: true });
  assert.is(Buffer.from(s['out-data'], 'base64').length, 12);
});

test('test-qga /qga/guest-exec-separated: stdout and stderr apart', async () => {
  const s = await waitStatus(await exec({ path: 'bash', arg: ['-c', SCRIPT], 'capture-output': 'separated' }));
  assert.is(s.exitcode, 0);
  assert.is(Buffer.from(s['out-data'], 'base64').toString(), 'stdout\nstdout\n');
  assert.is(Buffer.from(s['err-data'], 'base64').toString(), 'stderr\nstderr\n');
  assert.is(s['out-truncated'], false);
  assert.is(s['err-truncated'], false);
});

test('test-qga /qga/guest-exec-merged: one stream, in order, no err-data', async () => {
  const s = await waitStatus(await exec({ path: 'bash', arg: ['-c', SCRIPT], 'capture-output': 'merged' }));
  assert.equal(s, { exitcode: 0, 'out-data': b64('stdout\nstderr\nstdout\nstderr\n'), 'out-truncated': false, exited: true });
});

test('capture stdout only / stderr only / none / false', async () => {
  const cmd = { path: '/bin/sh', arg: ['-c', 'echo o; echo e >&2'] };
  assert.equal(await waitStatus(await exec({ ...cmd, 'capture-output': 'stdout' })), { exitcode: 0, 'out-data': b64('o\n'), 'out-truncated': false, exited: true });
  assert.equal(await waitStatus(await exec({ ...cmd, 'capture-output': 'stderr' })), { exitcode: 0, 'err-data': b64('e\n'), 'err-truncated': false, exited: true });
  assert.equal(await waitStatus(await exec({ ...cmd, 'capture-output': 'none' })), { exitcode: 0, exited: true });
  assert.equal(await waitStatus(await exec({ ...cmd, 'capture-output': false })), { exitcode: 0, exited: true });
  assert.equal(await waitStatus(await exec(cmd)), { exitcode: 0, exited: true });
});

test('no output: no data members; exit code reported', async () => {
  assert.equal(await waitStatus(await exec({ path: '/bin/true', 'capture-output': true })), { exitcode: 0, exited: true });
  assert.equal(await waitStatus(await exec({ path: '/bin/sh', arg: ['-c', 'exit 3'] })), { exitcode: 3, exited: true });
});

test('input-data goes to stdin (cat), then stdin is closed', async () => {
  const data = Buffer.from('line one\n\u00e9\0binary\xff', 'latin1');
  const s = await waitStatus(await exec({ path: 'cat', 'input-data': b64(data), 'capture-output': true }));
  assert.is(s.exitcode, 0);
  assert.ok(Buffer.from(s['out-data'], 'base64').equals(data));
  // Empty input-data: a pipe that is closed at once.
  assert.equal(await waitStatus(await exec({ path: 'cat', 'input-data': '', 'capture-output': true })), { exitcode: 0, exited: true });
  // Without input-data stdin is /dev/null.
  const t = await waitStatus(await exec({ path: '/bin/sh', arg: ['-c', 'readlink /proc/self/fd/0'], 'capture-output': true }));
  assert.is(Buffer.from(t['out-data'], 'base64').toString(), '/dev/null\n');
});

test('the child inherits no agent descriptors beyond 0, 1 and 2 (open guest files, sockets)', async () => {
  const file = path.join(tmp, 'open-file');
  const handle = await qga.call('guest-file-open', { path: file, mode: 'w' });
  try {
    const s = await waitStatus(await exec({ path: '/bin/sh', arg: ['-c', 'cd /proc/self/fd && echo *'], 'capture-output': true }));
    // Allowed: stdio, one fd of the shell's own (the glob reads the directory), and fds this
    // test process inherited from whoever started it without close-on-exec (glib would close
    // those too; Node cannot, see the exec notes).
    const fds = Buffer.from(s['out-data'], 'base64').toString().trim().split(' ').map(Number);
    const foreign = fds.filter((n) => n > 2 && !INHERITED_FDS.includes(n));
    assert.equal(fds.slice(0, 3), [0, 1, 2]);
    assert.ok(foreign.length <= 1, `fds: ${fds.join(' ')}`);
  } finally {
    await qga.call('guest-file-close', { handle });
  }
});

test('a child that does not read its input does not trouble the agent (EPIPE)', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
  const s = await waitStatus(await exec({ path: '/bin/true', 'input-data': b64(big) }));
  assert.equal(s, { exitcode: 0, exited: true });
});

test('17 MB of output: out-data is exactly 16777216 bytes, out-truncated true', async () => {
  const s = await waitStatus(await exec({ path: 'head', arg: ['-c', '17000000', '/dev/zero'], 'capture-output': true }));
  assert.is(s.exitcode, 0);
  const out = Buffer.from(s['out-data'], 'base64');
  assert.is(out.length, 16777216);
  assert.ok(out.every((b) => b === 0));
  assert.is(s['out-truncated'], true);
  assert.is(s['err-data'], undefined);
});

test('a killed child reports its signal; running children report only exited false', async () => {
  const pid = await exec({ path: 'sleep', arg: ['100'], 'capture-output': true });
  assert.equal(await qga.call('guest-exec-status', { pid }), { exited: false });
  process.kill(pid, 'SIGKILL'); // our own child
  assert.equal(await waitStatus(pid), { signal: 9, exited: true });
  const pid2 = await exec({ path: 'sleep', arg: ['100'] });
  process.kill(pid2, 'SIGTERM');
  assert.equal(await waitStatus(pid2), { signal: 15, exited: true });
});

test('exited waits for EOF on the pipes, not only for the child', async () => {
  // The shell exits at once; its background sleep keeps stdout open.
  const pid = await exec({ path: '/bin/sh', arg: ['-c', 'sleep 1 & echo started'], 'capture-output': true });
  for (let i = 0; i < 200 && fs.existsSync(`/proc/${pid}`); i++) await sleep(10);
  assert.not.ok(fs.existsSync(`/proc/${pid}`), 'the shell has been reaped');
  // Reaped (no zombie left), yet the grandchild still holds the pipe.
  const early = await qga.call('guest-exec-status', { pid });
  assert.equal(early, { exited: false });
  const s = await waitStatus(pid);
  assert.equal(s, { exitcode: 0, 'out-data': b64('started\n'), 'out-truncated': false, exited: true });
});

test('env replaces the whole environment', async () => {
  const s = await waitStatus(await exec({ path: '/usr/bin/env', env: ['A=1', 'B=x=y', 'A=2'], 'capture-output': true }));
  // The first of duplicate entries is the one getenv() returns, so it is the one kept.
  assert.is(Buffer.from(s['out-data'], 'base64').toString(), 'A=1\nB=x=y\n');
  assert.equal(await waitStatus(await exec({ path: '/usr/bin/env', env: [], 'capture-output': true })), { exitcode: 0, exited: true });
  // Without env the agent's own environment is inherited.
  const t = await waitStatus(await exec({ path: '/usr/bin/env', 'capture-output': true }));
  assert.ok(Buffer.from(t['out-data'], 'base64').toString().split('\n').includes(`PATH=${process.env.PATH}`));
});

test('PATH: from env when it has one; the agent\'s own otherwise', async () => {
  const e = await callError('guest-exec', { path: 'true', env: ['PATH=/nonexistent'] });
  assert.is(e.desc, "Guest agent command failed, error was 'Failed to execute child process \u201Ctrue\u201D (No such file or directory)'");
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'qga-test-prog'), '#!/bin/sh\necho "$0 $*"\n', { mode: 0o755 });
  const s = await waitStatus(await exec({ path: 'qga-test-prog', arg: ['a b'], env: [`PATH=/nonexistent:${bin}`], 'capture-output': true }));
  // argv[0] is the name as given, not the resolved file.
  assert.is(Buffer.from(s['out-data'], 'base64').toString(), `${path.join(bin, 'qga-test-prog')} a b\n`);
  // env without PATH: the agent's PATH finds sh.
  assert.equal(await waitStatus(await exec({ path: 'sh', arg: ['-c', 'exit 4'], env: ['X=1'] })), { exitcode: 4, exited: true });
});

test('spawn failures: qemu-ga 7.2 texts', async () => {
  const wrap = (p: string, why: string) => `Guest agent command failed, error was 'Failed to execute child process \u201C${p}\u201D (${why})'`;
  assert.is((await callError('guest-exec', { path: '/nonexistent/prog' })).desc, wrap('/nonexistent/prog', 'No such file or directory'));
  assert.is((await callError('guest-exec', { path: '/bin/invalid-cmd42' })).desc, wrap('/bin/invalid-cmd42', 'No such file or directory'));
  assert.is((await callError('guest-exec', { path: 'nonexistent-prog-qga' })).desc, wrap('nonexistent-prog-qga', 'No such file or directory'));
  assert.is((await callError('guest-exec', { path: '/tmp' })).desc, wrap('/tmp', 'Permission denied'));
  assert.is((await callError('guest-exec', { path: '/etc/passwd' })).desc, wrap('/etc/passwd', 'Permission denied'));
  assert.is((await callError('guest-exec', { path: '' })).desc, wrap('', 'No such file or directory'));
  const e = await callError('guest-exec', { path: '/bin/invalid-cmd42', 'capture-output': 'merged' });
  assert.is(e.errorClass, 'GenericError');
});

test('unknown pid, and the record is gone once read', async () => {
  for (const pid of [0, 1, -1, 2 ** 40]) {
    const e = await callError('guest-exec-status', { pid });
    assert.is(e.errorClass, 'GenericError');
    assert.is(e.desc, "Invalid parameter 'pid'");
  }
  const pid = await exec({ path: '/bin/true' });
  assert.equal(await waitStatus(pid), { exitcode: 0, exited: true });
  assert.is((await callError('guest-exec-status', { pid })).desc, "Invalid parameter 'pid'");
});

test('bad input-data: no process started', async () => {
  const marker = path.join(tmp, 'should-not-exist');
  const e = await callError('guest-exec', { path: '/usr/bin/touch', arg: [marker], 'input-data': 'not base64!' });
  assert.is(e.desc, 'Base64 data contains invalid characters');
  await sleep(100);
  assert.not.ok(fs.existsSync(marker));
});

test('argument validation on the wire', async () => {
  // The agent serves one client at a time: ask on the open connection, read the raw line.
  const ask = async (req: unknown) => { qga.socket.write(JSON.stringify(req) + '\n'); return (await qga.readLine()).toString() + '\n'; };
  assert.is(await ask({ execute: 'guest-exec', arguments: {} }), '{"error": {"class": "GenericError", "desc": "Parameter \'path\' is missing"}}\n');
  assert.is(await ask({ execute: 'guest-exec', arguments: { path: '/bin/true', 'capture-output': 'bogus' } }),
    '{"error": {"class": "GenericError", "desc": "Parameter \'capture-output\' does not accept value \'bogus\'"}}\n');
  assert.is(await ask({ execute: 'guest-exec', arguments: { path: '/bin/true', 'capture-output': 1 } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'capture-output\', expected: GuestExecCaptureOutput"}}\n');
  assert.is(await ask({ execute: 'guest-exec', arguments: { path: '/bin/true', arg: 'x' } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'arg\', expected: array"}}\n');
  assert.is(await ask({ execute: 'guest-exec', arguments: { path: '/bin/true', extra: 1 } }),
    '{"error": {"class": "GenericError", "desc": "Parameter \'extra\' is unexpected"}}\n');
  assert.is(await ask({ execute: 'guest-exec-status', arguments: {} }), '{"error": {"class": "GenericError", "desc": "Parameter \'pid\' is missing"}}\n');
  assert.is(await ask({ execute: 'guest-exec-status', arguments: { pid: 'x' } }),
    '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'pid\', expected: integer"}}\n');
  // Reply key order of a full status (QDict order): exitcode, err-data, out-data, err-truncated, out-truncated, exited.
  const pid = await exec({ path: '/bin/sh', arg: ['-c', 'echo o; echo e >&2'], 'capture-output': true });
  for (let i = 0; i < 400; i++) {
    const line = await ask({ execute: 'guest-exec-status', arguments: { pid } });
    if (line.includes('"exited": false')) { await sleep(25); continue; }
    assert.is(line, `{"return": {"exitcode": 0, "err-data": "${b64('e\n')}", "out-data": "${b64('o\n')}", "err-truncated": false, "out-truncated": false, "exited": true}}\n`);
    return;
  }
  throw new Error('did not finish');
});

test('guest-info lists the exec commands, after the memory commands', async () => {
  const info = await qga.call('guest-info');
  const names: string[] = info.supported_commands.map((c: { name: string }) => c.name);
  const at = (n: string) => names.indexOf(n);
  assert.ok(at('guest-exec') >= 0 && at('guest-exec-status') >= 0);
  // guest-info lists in reverse registration order.
  assert.is(at('guest-exec-status'), at('guest-exec') + 1);
  assert.is(at('guest-get-memory-block-info'), at('guest-exec-status') + 1);
  assert.is(at('guest-exec'), at('guest-get-host-name') + 1);
});

// ---------------------------------------------------------------- the table on its own

test('ExecTable: finished-but-unread records are bounded, oldest dropped first', async () => {
  const warnings: string[] = [];
  const table = new ExecTable({ records: 2, bytes: 1 << 30 }, (m) => warnings.push(m));
  const pids: number[] = [];
  for (let i = 0; i < 3; i++) {
    pids.push(await startProcess(table, { path: '/bin/true', capture: 'none' }));
    // Wait for this one to finish before the next, so "oldest" is well defined.
    for (let j = 0; j < 400 && table.size > table.unreadFinished; j++) await sleep(10);
  }
  assert.is(table.unreadFinished, 2);
  assert.is(table.status(pids[0]), undefined);
  assert.equal(table.status(pids[1]), { exited: true, exitcode: 0 });
  assert.equal(table.status(pids[2]), { exited: true, exitcode: 0 });
  assert.is(warnings.length, 1);
  assert.match(warnings[0], String(pids[0]));
});

test('ExecTable: the byte bound counts retained output', async () => {
  const table = new ExecTable({ records: 100, bytes: 1000 }, () => {});
  const a = await startProcess(table, { path: 'head', arg: ['-c', '800', '/dev/zero'], capture: 'separated' });
  for (let j = 0; j < 400 && table.unreadFinished < 1; j++) await sleep(10);
  const b = await startProcess(table, { path: 'head', arg: ['-c', '800', '/dev/zero'], capture: 'separated' });
  for (let j = 0; j < 400 && table.size > table.unreadFinished; j++) await sleep(10);
  assert.is(table.status(a), undefined);
  assert.is(Buffer.from(table.status(b)!['out-data']!, 'base64').length, 800);
});

test('PATH search: glib rules', () => {
  const dir = path.join(tmp, 'search');
  fs.mkdirSync(path.join(dir, 'a', 'prog'), { recursive: true }); // a directory: skipped
  fs.mkdirSync(path.join(dir, 'b'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'c'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'b', 'prog'), '', { mode: 0o644 }); // not executable: skipped
  fs.writeFileSync(path.join(dir, 'c', 'prog'), '', { mode: 0o755 });
  const p = (...d: string[]) => d.map((x) => path.join(dir, x)).join(':');
  assert.equal(resolveProgram('prog', p('a', 'b', 'c')), { file: path.join(dir, 'c', 'prog') });
  const noexec = resolveProgram('prog', p('a', 'b'));
  assert.is('error' in noexec && noexec.error.code, 'EACCES');
  const none = resolveProgram('prog', p('nothing'));
  assert.is('error' in none && none.error.code, 'ENOENT');
  assert.equal(resolveProgram('./x/y', ''), { file: './x/y' });
  assert.is(searchPathFor(['A=1', 'PATH=/x', 'PATH=/y'], { PATH: '/agent' }), '/x');
  assert.is(searchPathFor(['A=1'], { PATH: '/agent' }), '/agent');
  assert.is(searchPathFor(undefined, {}), '/bin:/usr/bin:.');
});

test.run();
