// Deferred closing of channel descriptors (lib/transport/fd-io.ts): a descriptor with a
// thread-pool read or write in flight is closed only when that operation has completed, so a
// queued operation can never land on a file that reused the number.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { beginPoolOp, closeFd, poolOpsInFlight } from '../lib/transport/fd-io';

function isOpen(fd: number): boolean {
  try { fs.fstatSync(fd); return true; } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EBADF') return false; throw e; }
}

const waitClose = () => new Promise((r) => setTimeout(r, 50));

test('closeFd closes at once when nothing is in flight', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-fdio-'));
  const fd = fs.openSync(path.join(dir, 'f'), 'w');
  closeFd(fd);
  await waitClose();
  assert.is(isOpen(fd), false);
  fs.rmSync(dir, { recursive: true });
});

test('closeFd waits for every pool operation on the descriptor, and only that descriptor', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-fdio-'));
  const fd = fs.openSync(path.join(dir, 'a'), 'w');
  const other = fs.openSync(path.join(dir, 'b'), 'w');
  const endRead = beginPoolOp(fd);
  const endWrite = beginPoolOp(fd);
  const endOther = beginPoolOp(other);
  assert.is(poolOpsInFlight(fd), 2);
  closeFd(fd);
  await waitClose();
  assert.is(isOpen(fd), true, 'open while two operations are in flight');
  endRead();
  endRead(); // a second call of the same end is ignored
  await waitClose();
  assert.is(isOpen(fd), true, 'open while one operation is in flight');
  assert.is(poolOpsInFlight(fd), 1);
  endWrite();
  await waitClose();
  assert.is(isOpen(fd), false, 'closed after the last operation');
  assert.is(isOpen(other), true, 'the other descriptor is untouched');
  endOther();
  await waitClose();
  assert.is(isOpen(other), true, 'ending an operation never closes a descriptor nobody asked to close');
  fs.closeSync(other);
  fs.rmSync(dir, { recursive: true });
});

test('a real fs.writev in flight holds the close until it completes, and its bytes land in the right file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-fdio-'));
  const file = path.join(dir, 'reply');
  const fd = fs.openSync(file, 'w');
  const end = beginPoolOp(fd);
  const written = new Promise<number>((resolve, reject) =>
    fs.writev(fd, [Buffer.from('{"return": {}}\n')], null, (err, n) => { end(); if (err) reject(err); else resolve(n); }));
  closeFd(fd);
  // A file opened now must not get the number while the write is pending.
  const next = fs.openSync(path.join(dir, 'guest-file'), 'w');
  assert.is.not(next, fd);
  assert.is(await written, 15);
  await waitClose();
  assert.is(isOpen(fd), false);
  assert.is(fs.readFileSync(file, 'utf8'), '{"return": {}}\n');
  assert.is(fs.readFileSync(path.join(dir, 'guest-file'), 'utf8'), '');
  fs.closeSync(next);
  fs.rmSync(dir, { recursive: true });
});

test.run();
