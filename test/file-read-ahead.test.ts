/**
 * The read-ahead window for small guest-file-reads (lib/commands/read-ahead.ts), on every
 * available backend: the bytes and eof flags are what reads without it give, a run of 4 KiB
 * reads costs one pool read per 64 KiB, and writes or opens on any handle, seeks, and the end
 * of the file are honoured. (FIFOs, which have no window, are in file.test.ts.)
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { availableBackends, startAgent, type TestAgent } from './helpers/agent';
import type { QgaClient } from '../lib/client';
import { readAheadStats } from '../lib/commands/read-ahead';

interface ReadReply { count: number; 'buf-b64': string; eof: boolean }

/** Windows filled and reads answered from one while `fn` runs. */
async function windowUse<T>(fn: () => Promise<T>): Promise<{ value: T; fills: number; hits: number }> {
  const before = { ...readAheadStats };
  const value = await fn();
  return { value, fills: readAheadStats.fills - before.fills, hits: readAheadStats.hits - before.hits };
}

for (const backend of availableBackends()) {
  const s = suite(`file read-ahead (${backend})`);
  let t: TestAgent;
  let c: QgaClient;
  const data = randomBytes(256 * 1024 + 1234);
  let file: string;
  s.before(async () => {
    t = await startAgent(backend);
    c = await t.connect();
    file = path.join(t.dir, 'data.bin');
    fs.writeFileSync(file, data);
  });
  s.after(async () => { c.close(); await t.stop(); });

  const read = (handle: number, count?: number) => c.call('guest-file-read', count === undefined ? { handle } : { handle, count }) as Promise<ReadReply>;

  s('4 KiB reads to the end: exact bytes, eof only on the short read; one pool read per 64 KiB', async () => {
    const h = await c.call('guest-file-open', { path: file }) as number;
    const { value: got, fills, hits } = await windowUse(async () => {
      const parts: ReadReply[] = [];
      for (;;) {
        const r = await read(h);
        parts.push(r);
        if (r.count < 4096) break;
      }
      return parts;
    });
    const whole = Buffer.concat(got.map((r) => Buffer.from(r['buf-b64'], 'base64')));
    assert.ok(whole.equals(data), 'the bytes read are the file');
    for (const r of got) assert.is(r.count, Buffer.from(r['buf-b64'], 'base64').length);
    assert.equal(got.slice(0, -1).map((r) => r.eof), got.slice(0, -1).map(() => false), 'full reads say eof false');
    assert.equal(got[got.length - 1], { count: 1234, 'buf-b64': data.subarray(256 * 1024).toString('base64'), eof: true });
    // 65 requests: 5 windows of 64 KiB, each read once; the 1234-byte tail goes to the backend.
    assert.is(got.length, 65);
    assert.is(fills, 5, 'one pool read per 64 KiB');
    assert.is(hits, 64, 'every full 4 KiB read answered from a window');
    assert.equal(await read(h), { count: 0, 'buf-b64': '', eof: true }, 'at the end: empty, eof');
    await c.call('guest-file-close', { handle: h });
  });

  s('seeks inside and outside the window; counts up to 16 KiB and above it', async () => {
    const h = await c.call('guest-file-open', { path: file }) as number;
    const expect = (at: number, n: number) => ({ count: n, 'buf-b64': data.subarray(at, at + n).toString('base64'), eof: false });
    assert.equal(await read(h, 100), expect(0, 100));
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: 5000, whence: 'set' }), { position: 5000, eof: false });
    assert.equal(await read(h, 16384), expect(5000, 16384));
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: 200000, whence: 'set' }), { position: 200000, eof: false });
    assert.equal(await read(h, 3), expect(200000, 3));
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: -100, whence: 'cur' }), { position: 199903, eof: false });
    assert.equal(await read(h, 16385), expect(199903, 16385), 'a larger read goes to the backend');
    assert.equal(await read(h, 50), expect(216288, 50));
    await c.call('guest-file-close', { handle: h });
  });

  s('a write through another handle, and an opening that truncates, are seen by the next read', async () => {
    const copy = path.join(t.dir, 'copy.bin');
    fs.writeFileSync(copy, data);
    const r = await c.call('guest-file-open', { path: copy }) as number;
    assert.is((await read(r)).count, 4096);
    const w = await c.call('guest-file-open', { path: copy, mode: 'r+' }) as number;
    await c.call('guest-file-seek', { handle: w, offset: 4096, whence: 'set' });
    assert.equal(await c.call('guest-file-write', { handle: w, 'buf-b64': Buffer.from('fresh bytes').toString('base64') }), { count: 11, eof: false });
    const next = await read(r, 11);
    assert.is(Buffer.from(next['buf-b64'], 'base64').toString(), 'fresh bytes');
    // Reopening with "w" truncates: the reader's next read finds the end.
    const trunc = await c.call('guest-file-open', { path: copy, mode: 'w' }) as number;
    assert.equal(await read(r, 100), { count: 0, 'buf-b64': '', eof: true });
    for (const h of [r, w, trunc]) await c.call('guest-file-close', { handle: h });
  });

  s('a file changed by another process is read fresh once the window is older than 50 ms', async () => {
    const other = path.join(t.dir, 'other.bin');
    fs.writeFileSync(other, data);
    const h = await c.call('guest-file-open', { path: other }) as number;
    assert.is((await read(h)).count, 4096);
    const fd = fs.openSync(other, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0x41), 0, 4096, 4096);
    fs.closeSync(fd);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(await read(h), { count: 4096, 'buf-b64': Buffer.alloc(4096, 0x41).toString('base64'), eof: false });
    await c.call('guest-file-close', { handle: h });
  });

  s.run();
}
