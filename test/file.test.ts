/**
 * guest-file-* end to end over a unix socket, on every available backend: qemu's own
 * test-qga sequences, error texts, handle persistence, base64 quirks, large transfers, and a
 * client vanishing mid-reply.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { availableBackends, startAgent, rawExchange, type TestAgent } from './helpers/agent';
import { QgaClient, QgaError } from '../lib/client';
import { decodeBase64Qga } from '../lib/base64';

const HELLO = Buffer.from('Hello World!\n\0');
const ENC = HELLO.toString('base64');

async function expectError(p: Promise<unknown>, desc: string | RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, QgaError);
    if (typeof desc === 'string') assert.is((e as QgaError).desc, desc);
    else assert.match((e as QgaError).desc, desc);
    return;
  }
  assert.unreachable(`expected error ${desc}`);
}

const glib = suite('base64 as qemu-ga (glib) decodes it');
glib('padding, partial groups, newlines, junk', () => {
  assert.is(decodeBase64Qga('aGVsbG8').toString(), 'hel');
  assert.is(decodeBase64Qga('aGVs\nbG8=\n').toString(), 'hello');
  assert.is(decodeBase64Qga('QQ==QQ==').toString(), 'AA');
  assert.equal([...decodeBase64Qga('l+=8')], [0x97, 0x3c]);
  assert.is(decodeBase64Qga('').length, 0);
  assert.throws(() => decodeBase64Qga('!!!!'), /Base64 data contains invalid characters/);
  assert.throws(() => decodeBase64Qga('aGVs bG8='), /Base64 data contains invalid characters/);
  const wrapped = randomBytes(1000).toString('base64').replace(/.{76}/g, '$&\n');
  assert.equal(decodeBase64Qga(wrapped), Buffer.from(wrapped.replace(/\n/g, ''), 'base64'));
});
glib.run();

for (const backend of availableBackends()) {
  const s = suite(`file commands (${backend})`);
  let t: TestAgent;
  let c: QgaClient;
  let cwd: string;
  s.before(async () => { t = await startAgent(backend); c = await t.connect(); cwd = t.dir; });
  s.after(async () => { c.close(); await t.stop(); });

  s('test-qga /qga/file-ops', async () => {
    const p = path.join(cwd, 'foo');
    const h = await c.call('guest-file-open', { path: p, mode: 'w+' });
    assert.ok(Number.isInteger(h) && h >= 1000);
    assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': ENC }), { count: 14, eof: false });
    assert.equal(await c.call('guest-file-flush', { handle: h }), {});
    assert.equal(await c.call('guest-file-close', { handle: h }), {});
    assert.equal(fs.readFileSync(p), HELLO);
    const r = await c.call('guest-file-open', { path: p, mode: 'r' });
    assert.equal(await c.call('guest-file-read', { handle: r }), { count: 14, 'buf-b64': ENC, eof: true });
    assert.equal(await c.call('guest-file-read', { handle: r }), { count: 0, 'buf-b64': '', eof: true });
    assert.equal(await c.call('guest-file-seek', { handle: r, offset: 6, whence: 'set' }), { position: 6, eof: false });
    const tail = await c.call('guest-file-read', { handle: r });
    assert.equal([tail.count, tail.eof, Buffer.from(tail['buf-b64'], 'base64')], [8, true, HELLO.subarray(6)]);
    await c.call('guest-file-close', { handle: r });
  });

  s('test-qga /qga/file-write-read: reading after writing starts at the end', async () => {
    const h = await c.call('guest-file-open', { path: path.join(cwd, 'foo2'), mode: 'w+' });
    assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': ENC }), { count: 14, eof: false });
    assert.equal(await c.call('guest-file-read', { handle: h }), { count: 0, 'buf-b64': '', eof: true });
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: 0, whence: 0 }), { position: 0, eof: false });
    assert.equal(await c.call('guest-file-read', { handle: h }), { count: 14, 'buf-b64': ENC, eof: true });
    await c.call('guest-file-close', { handle: h });
  });

  s('open modes, creation mode and error texts', async () => {
    const p = path.join(cwd, 'modes');
    await expectError(c.call('guest-file-open', { path: p, mode: 'rw' }), "invalid file open mode 'rw'");
    await expectError(c.call('guest-file-open', { path: p, mode: '' }), "invalid file open mode ''");
    await expectError(c.call('guest-file-open', { path: p }), `failed to open file '${p}' (mode: 'r'): No such file or directory`);
    const oldMask = process.umask(0o022);
    try {
      const h = await c.call('guest-file-open', { path: p, mode: 'a' });
      assert.is(fs.statSync(p).mode & 0o777, 0o644, 'new files get 0666 minus the umask');
      await c.call('guest-file-write', { handle: h, 'buf-b64': Buffer.from('one').toString('base64') });
      await c.call('guest-file-close', { handle: h });
    } finally { process.umask(oldMask); }
    const h2 = await c.call('guest-file-open', { path: p, mode: 'a+' });
    await c.call('guest-file-write', { handle: h2, 'buf-b64': Buffer.from('two').toString('base64') });
    assert.equal(await c.call('guest-file-seek', { handle: h2, offset: 0, whence: 'cur' }), { position: 6, eof: false });
    await c.call('guest-file-seek', { handle: h2, offset: 0, whence: 'set' });
    assert.is(Buffer.from((await c.call('guest-file-read', { handle: h2 }))['buf-b64'], 'base64').toString(), 'onetwo');
    await c.call('guest-file-close', { handle: h2 });
    // Write-only and read-only handles fail the other way with the OS reason.
    const w = await c.call('guest-file-open', { path: p, mode: 'w' });
    await expectError(c.call('guest-file-read', { handle: w }), 'failed to read file: Bad file descriptor');
    await c.call('guest-file-close', { handle: w });
    const r = await c.call('guest-file-open', { path: p, mode: 'r' });
    await expectError(c.call('guest-file-write', { handle: r, 'buf-b64': 'QUJD' }), 'failed to write to file: Bad file descriptor');
    await c.call('guest-file-close', { handle: r });
    const d = await c.call('guest-file-open', { path: cwd, mode: 'r' });
    await expectError(c.call('guest-file-read', { handle: d }), 'failed to read file: Is a directory');
    await c.call('guest-file-close', { handle: d });
  });

  s('handles: unknown ones, double close', async () => {
    await expectError(c.call('guest-file-read', { handle: 999999 }), "handle '999999' has not been found");
    const h = await c.call('guest-file-open', { path: path.join(cwd, 'foo'), mode: 'r' });
    await c.call('guest-file-close', { handle: h });
    await expectError(c.call('guest-file-close', { handle: h }), `handle '${h}' has not been found`);
  });

  s('read count limits and seek whence forms', async () => {
    const h = await c.call('guest-file-open', { path: path.join(cwd, 'foo'), mode: 'r' });
    await expectError(c.call('guest-file-read', { handle: h, count: -1 }), "value '-1' is invalid for argument count");
    await expectError(c.call('guest-file-read', { handle: h, count: 50331649 }), "value '50331649' is invalid for argument count");
    assert.equal(await c.call('guest-file-read', { handle: h, count: 0 }), { count: 0, 'buf-b64': '', eof: false });
    await expectError(c.call('guest-file-seek', { handle: h, offset: 0, whence: 3 }), 'invalid whence code 3');
    await expectError(c.call('guest-file-seek', { handle: h, offset: 0, whence: 'bogus' }), "Parameter 'whence' does not accept value 'bogus'");
    await expectError(c.call('guest-file-seek', { handle: h, offset: 0, whence: true }), "Invalid parameter type for 'whence', expected: GuestFileWhence");
    await expectError(c.call('guest-file-seek', { handle: h, offset: -1, whence: 'set' }), 'failed to seek file: Invalid argument');
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: 1000, whence: 'set' }), { position: 1000, eof: false });
    assert.equal(await c.call('guest-file-seek', { handle: h, offset: -4, whence: 2 }), { position: 10, eof: false });
    await c.call('guest-file-close', { handle: h });
  });

  s('write: newline-wrapped base64 accepted, junk and bad counts rejected with nothing written', async () => {
    const p = path.join(cwd, 'b64');
    const h = await c.call('guest-file-open', { path: p, mode: 'w+' });
    const data = randomBytes(300);
    const wrapped = data.toString('base64').replace(/.{76}/g, '$&\n');
    assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': wrapped }), { count: 300, eof: false });
    await expectError(c.call('guest-file-write', { handle: h, 'buf-b64': 'QUJD!!!!' }), 'Base64 data contains invalid characters');
    await expectError(c.call('guest-file-write', { handle: h, 'buf-b64': 'QUJD', count: 4 }), "value '4' is invalid for argument count");
    await expectError(c.call('guest-file-write', { handle: h, 'buf-b64': 'QUJD', count: -1 }), "value '-1' is invalid for argument count");
    assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': 'QUJD', count: 2 }), { count: 2, eof: false });
    assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': '' }), { count: 0, eof: false });
    await c.call('guest-file-close', { handle: h });
    assert.equal(fs.readFileSync(p), Buffer.concat([data, Buffer.from('AB')]));
  });

  s('a FIFO: no seek, EOF without a writer, EAGAIN with an idle writer', async () => {
    const fifo = path.join(cwd, 'fifo');
    fs.rmSync(fifo, { force: true });
    require('node:child_process').execFileSync('mkfifo', [fifo]);
    await expectError(c.call('guest-file-open', { path: fifo, mode: 'w' }), `failed to open file '${fifo}' (mode: 'w'): No such device or address`);
    const h = await c.call('guest-file-open', { path: fifo, mode: 'r' });
    assert.equal(await c.call('guest-file-read', { handle: h }), { count: 0, 'buf-b64': '', eof: true });
    await expectError(c.call('guest-file-seek', { handle: h, offset: 0, whence: 'set' }), 'failed to seek file: Illegal seek');
    const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    try {
      await expectError(c.call('guest-file-read', { handle: h }), 'failed to read file: Resource temporarily unavailable');
      fs.writeSync(writer, 'abc');
      assert.equal(await c.call('guest-file-read', { handle: h }), { count: 3, 'buf-b64': 'YWJj', eof: false });
    } finally { fs.closeSync(writer); }
    await c.call('guest-file-close', { handle: h });
  });

  s('8 MiB and 16 MiB round trips, checksums equal, ids echoed on raw replies', async () => {
    for (const size of [8 << 20, 16 << 20]) {
      const data = randomBytes(size);
      const p = path.join(cwd, `big${size}`);
      const h = await c.call('guest-file-open', { path: p, mode: 'w+' });
      assert.equal(await c.call('guest-file-write', { handle: h, 'buf-b64': data.toString('base64') }), { count: size, eof: false });
      assert.is(createHash('sha256').update(fs.readFileSync(p)).digest('hex'), createHash('sha256').update(data).digest('hex'));
      await c.call('guest-file-seek', { handle: h, offset: 0, whence: 'set' });
      c.send(`{"execute":"guest-file-read","arguments":{"handle":${h},"count":${size}},"id":"r1"}\n`);
      const reply = await c.readReply(30000);
      assert.is(reply.id, 'r1');
      assert.is(reply.return.count, size);
      assert.is(reply.return.eof, false);
      assert.ok(Buffer.from(reply.return['buf-b64'], 'base64').equals(data));
      await c.call('guest-file-close', { handle: h });
      fs.rmSync(p);
    }
  });

  s('handles are never reused, even across an agent restart', async () => {
    const h1 = await c.call('guest-file-open', { path: path.join(cwd, 'foo'), mode: 'r' });
    const state = fs.readFileSync(path.join(t.dir, 'qga.state'), 'utf8');
    assert.is(state, `[global]\nfd_counter=${h1 + 1}\n`);
    const t2 = await startAgent(backend, {}, fs.mkdtempSync(path.join(t.dir, 'second-')));
    fs.writeFileSync(path.join(t2.dir, 'qga.state'), state);
    await t2.stop();
    const t3 = await startAgent(backend, {}, t2.dir);
    const c3 = await t3.connect();
    assert.is(await c3.call('guest-file-open', { path: path.join(cwd, 'foo'), mode: 'r' }), h1 + 1);
    c3.close();
    await t3.stop();
    await c.call('guest-file-close', { handle: h1 });
  });

  s('a client that vanishes mid-reply (48 MiB read) does not stop the agent', async () => {
    const p = path.join(cwd, 'huge');
    fs.writeFileSync(p, randomBytes(48 << 20));
    const h = await c.call('guest-file-open', { path: p, mode: 'r' });
    c.close();
    // A second client asks for 48 MiB and hangs up after the first bytes of the reply.
    await new Promise<void>((resolve) => {
      const sock = net.connect(t.sock, () => sock.write(`{"execute":"guest-file-read","arguments":{"handle":${h},"count":50331648}}\n`));
      sock.once('data', () => sock.destroy());
      sock.on('close', () => resolve());
    });
    c = await t.connect();
    assert.equal(await c.call('guest-ping'), {});
    await c.call('guest-file-close', { handle: h });
    fs.rmSync(p);
  });

  s('the event loop keeps running during a 48 MiB read', async () => {
    const p = path.join(cwd, 'huge2');
    fs.writeFileSync(p, randomBytes(48 << 20));
    const h = await c.call('guest-file-open', { path: p, mode: 'r' });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const r = await c.call('guest-file-read', { handle: h, count: 48 << 20 }, { timeout: 60000 });
    clearInterval(timer);
    assert.is(r.count, 48 << 20);
    assert.ok(ticks > 0, 'timers fired while the agent read and encoded');
    await c.call('guest-file-close', { handle: h });
    fs.rmSync(p);
  });

  s.run();
}

const raw = suite('raw bytes');
raw('a write payload split across many reads and wrapped with escaped newlines decodes exactly', async () => {
  const t = await startAgent('fallback');
  try {
    const c = await t.connect();
    const p = path.join(t.dir, 'split');
    const h = await c.call('guest-file-open', { path: p, mode: 'w' });
    const data = randomBytes(200000);
    const body = `{"execute":"guest-file-write","arguments":{"handle":${h},"buf-b64":"${data.toString('base64').replace(/.{76}/g, '$&\\n')}"}}`;
    for (let i = 0; i < body.length; i += 7919) c.send(body.slice(i, i + 7919));
    assert.equal(await c.readReply(), { return: { count: 200000, eof: false } });
    await c.call('guest-file-close', { handle: h });
    assert.ok(fs.readFileSync(p).equals(data));
    c.close();
    const again = await rawExchange(t.sock, '{"execute":"guest-ping"}', 1);
    assert.is(again.toString(), '{"return": {}}\n');
  } finally { await t.stop(); }
});
raw.run();
