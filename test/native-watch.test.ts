/**
 * The addon's readiness watcher (native/fd_watch.cc) on FIFOs: callbacks on data and on
 * hang-up, stop/start, the hang-up back-off (no spin), close() before the descriptor is closed,
 * and that a closed watcher does not keep the process alive while an open one does.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { loadAddon } from '../lib/backend/load-addon';
import type { WatchFd } from '../lib/transport/fd-io';

const loaded = loadAddon();
const watchFd = 'error' in loaded ? undefined : (loaded.addon as unknown as { watchFd?: WatchFd }).watchFd;
const addonFile = path.join(__dirname, '..', 'build', 'Release', 'qga_native.node');
const skip = !watchFd ? `the native addon has no watchFd (${'error' in loaded ? loaded.error.message.split('\n')[0] : 'old build'})` : undefined;
if (skip) console.log(`  SKIPPED native-watch tests: ${skip}`);

const t = suite('native watchFd');
let dir = '';
t.before.each(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-watch-')); });
t.after.each(() => fs.rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A FIFO with both ends open non-blocking: [readFd, writeFd]. */
function fifo(): [number, number] {
  const p = path.join(dir, `fifo${Math.random().toString(36).slice(2)}`);
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
  const rd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  return [rd, wr];
}

function readNow(fd: number): Buffer | 'EAGAIN' {
  const buf = Buffer.alloc(4096);
  try {
    return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, null));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 'EAGAIN';
    throw e;
  }
}

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t('data is reported readable and read; a closed writer is a hang-up; backoff() keeps it from spinning', async () => {
  if (skip) return;
  const [rd, wr] = fifo();
  const got: string[] = [];
  let hangups = 0;
  const w = watchFd!(rd, (status, events) => {
    assert.is(status, 0);
    assert.ok(events & 1, `events ${events}`);
    const data = readNow(rd);
    if (data === 'EAGAIN') return;
    if (data.length === 0) { hangups++; w.backoff(100); return; }
    got.push(data.toString());
  });
  fs.writeSync(wr, 'hello');
  await until('the first chunk', () => got.length === 1);
  fs.writeSync(wr, ' world');
  await until('the second chunk', () => got.length === 2);
  assert.equal(got, ['hello', ' world']);
  fs.closeSync(wr);
  await sleep(500);
  // Level-triggered POLLHUP would call back thousands of times in 0.5 s; one per 100 ms back-off.
  assert.ok(hangups >= 1 && hangups <= 10, `${hangups} hang-up callbacks in 0.5 s`);
  w.close();
  const after = hangups;
  await sleep(250);
  assert.is(hangups, after, 'callbacks after close()');
  fs.closeSync(rd);
});

t('stop() holds callbacks while data waits; start() delivers it', async () => {
  if (skip) return;
  const [rd, wr] = fifo();
  let calls = 0;
  const w = watchFd!(rd, () => { calls++; readNow(rd); });
  w.stop();
  fs.writeSync(wr, 'x');
  await sleep(200);
  assert.is(calls, 0);
  w.start();
  await until('the callback after start()', () => calls === 1);
  // A back-off and a stop() together: the timer must not re-arm a stopped watcher.
  w.backoff(20);
  w.stop();
  fs.writeSync(wr, 'y');
  await sleep(150);
  assert.is(calls, 1);
  w.start();
  await until('the callback after the second start()', () => calls === 2);
  w.close();
  w.close(); // idempotent, and the other methods are no-ops afterwards
  w.start();
  w.backoff(1);
  fs.writeSync(wr, 'z');
  await sleep(100);
  assert.is(calls, 2);
  fs.closeSync(wr);
  fs.closeSync(rd);
});

t('arguments are checked; a regular file cannot be watched (EPERM, the caller falls back to polling)', () => {
  if (skip) return;
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, 'x');
  const fd = fs.openSync(file, 'r');
  try {
    assert.throws(() => watchFd!(fd, () => undefined), (e: NodeJS.ErrnoException) => e.code === 'EPERM' && /uv_poll_init/.test(e.message));
  } finally {
    fs.closeSync(fd);
  }
  assert.throws(() => watchFd!(-1, () => undefined), /bad file descriptor/);
  assert.throws(() => (watchFd as any)(0, 'nope'), /callback/);
});

/** Runs a small script in a child node with the addon; resolves its exit code, or 'alive' after `ms`. */
async function child(script: string, ms: number): Promise<{ code: number | null | 'alive'; out: string }> {
  const p = spawn(process.execPath, ['--expose-gc', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ADDON: addonFile, DIR: dir } });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  const code = await Promise.race([exited, sleep(ms).then(() => 'alive' as const)]);
  if (code === 'alive') { process.kill(p.pid!, 'SIGKILL'); await exited; }
  return { code, out };
}

const CHILD_PRELUDE = `
const fs = require('fs'), cp = require('child_process'), path = require('path');
const a = require(process.env.ADDON);
const p = path.join(process.env.DIR, 'c' + process.pid);
cp.execFileSync('mkfifo', [p]);
const rd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
const wr = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
`;

t('an open watcher keeps the process alive; after close() it exits by itself', async () => {
  if (skip) return;
  const open = await child(`${CHILD_PRELUDE} a.watchFd(rd, () => {}); console.log('watching');`, 800);
  assert.is(open.code, 'alive', `exited: ${open.out}`);
  const closed = await child(`${CHILD_PRELUDE}
    const w = a.watchFd(rd, () => {});
    setTimeout(() => { w.close(); fs.closeSync(rd); console.log('closed'); }, 100);`, 5000);
  assert.is(closed.code, 0, closed.out);
  assert.match(closed.out, 'closed');
});

t('SIGTERM with process.exit while watching, and a watcher dropped without close() then collected: no crash', async () => {
  if (skip) return;
  const term = await child(`${CHILD_PRELUDE}
    a.watchFd(rd, () => {});
    process.on('SIGTERM', () => process.exit(0));
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 100);`, 5000);
  assert.is(term.code, 0, term.out);
  const gc = await child(`${CHILD_PRELUDE}
    (function () { a.watchFd(rd, () => {}); })();
    setTimeout(() => { global.gc(); setTimeout(() => { fs.writeSync(wr, 'x'); setTimeout(() => { console.log('ok'); process.exit(0); }, 100); }, 50); }, 50);`, 5000);
  assert.is(gc.code, 0, gc.out);
  assert.match(gc.out, 'ok');
});

t('an exception thrown by the callback reaches uncaughtException', async () => {
  if (skip) return;
  const r = await child(`${CHILD_PRELUDE}
    process.on('uncaughtException', (e) => { console.log('caught ' + e.message); process.exit(0); });
    a.watchFd(rd, () => { throw new Error('from callback'); });
    fs.writeSync(wr, 'x');`, 5000);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, 'caught from callback');
});

t.run();
