/**
 * The native addon's own functions, called directly: base64, the file-read reply builder,
 * the base64 writer, crypt, and the error shapes of the clock/RTC/reboot calls that can be
 * exercised without touching this machine's clock, RTC or power state.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeAddonOrSkip, tempDir, referenceGlibDecode, prng, randomBytes } from './helpers/native';

const addon = nativeAddonOrSkip('test/native.test.ts');

const EDGE_SIZES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 23, 24, 27, 28, 29, 31, 32, 33, 4095, 4096, 4097];
const BIG = 3 * 1024 * 1024 + 7;

interface ErrLike { code?: string; errno?: number; syscall?: string; path?: string; message: string }
async function rejection(p: Promise<unknown>): Promise<ErrLike> {
  try {
    await p;
  } catch (e) {
    return e as ErrLike;
  }
  throw new Error('expected a rejection');
}

function expectedReply(data: Buffer, eof: boolean, idSuffix = ''): string {
  return `{"return": {"count": ${data.length}, "buf-b64": "${data.toString('base64')}", "eof": ${eof}}${idSuffix}}\n`;
}

if (addon) {
  const a = addon;
  const rnd = prng(0x5eed);
  let dir = '';
  test.before(() => {
    dir = tempDir('native');
  });
  test.after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('exports the whole interface', () => {
    for (const f of ['freeze', 'thaw', 'trim', 'setSystemTime', 'rtcWrite', 'rtcRead', 'crypt', 'reboot',
      'readFileReply', 'recycleReply', 'writeBase64', 'base64Encode', 'base64DecodeGlib']) {
      assert.type((a as unknown as Record<string, unknown>)[f], 'function', f);
    }
    assert.is(a.abiVersion, 1);
    assert.ok(['avx2', 'scalar'].includes(a.base64Encoder));
  });

  test('base64Encode matches Buffer on edge sizes and multi-MiB data, every encoder', () => {
    const impls: Array<'scalar' | 'best' | 'avx2'> = a.base64Encoder === 'avx2' ? ['scalar', 'avx2', 'best'] : ['scalar', 'best'];
    for (const n of [...EDGE_SIZES, 1000, 65536, BIG]) {
      const data = randomBytes(n, rnd);
      const want = data.toString('base64');
      for (const impl of impls) assert.is(a.base64Encode(data, impl).toString('latin1'), want, `size ${n} ${impl}`);
    }
  });

  test('base64DecodeGlib round-trips Buffer encodings of edge sizes and multi-MiB data', () => {
    for (const n of [...EDGE_SIZES, BIG]) {
      const data = randomBytes(n, rnd);
      assert.ok(a.base64DecodeGlib(Buffer.from(data.toString('base64'))).equals(data), `size ${n}`);
    }
  });

  test('base64DecodeGlib: glib leniency cases', () => {
    const dec = (s: string) => a.base64DecodeGlib(Buffer.from(s, 'latin1'));
    assert.is(dec('aGVsbG8').toString(), 'hel');
    assert.equal([...dec('QQ==QQ==')], [0x41, 0x41]);
    assert.equal([...dec('QQ=A')], [0x41, 0x00]);
    assert.equal([...dec('A===')], [0x00]);
    assert.equal([...dec('====')], [0x00]);
    assert.equal([...dec('=QQQ')], [0x01, 0x04, 0x10]);
    assert.is(dec('QUJDRA').toString(), 'ABC');
    assert.is(dec('').length, 0);
    assert.is(dec('\n\n').length, 0);
    assert.is(dec('QU\nJD\n').toString(), 'ABC');
    // qemu-ga treats the string as C text: it ends at the first NUL.
    assert.is(dec('QUJD\0!!!').toString(), 'ABC');
  });

  test('base64DecodeGlib: newlines every 76 characters (Perl encode_base64 style)', () => {
    const data = randomBytes(100_000, rnd);
    const wrapped = data.toString('base64').replace(/.{76}/g, '$&\n');
    assert.ok(a.base64DecodeGlib(Buffer.from(wrapped)).equals(data));
  });

  test('base64DecodeGlib rejects characters outside the alphabet with the qemu-ga text', () => {
    for (const bad of ['!!!!', 'QUJD ', 'QU\rJD', 'QUJ-', 'QUJ_', 'QUJD\t', 'QUJ\u00e9', '"QUJD"', 'QUJD\\n']) {
      let err: ErrLike | undefined;
      try {
        a.base64DecodeGlib(Buffer.from(bad, 'latin1'));
      } catch (e) {
        err = e as ErrLike;
      }
      assert.ok(err, `accepted ${JSON.stringify(bad)}`);
      assert.is(err!.message, 'Base64 data contains invalid characters');
      assert.is(err!.code, 'EQGA');
    }
  });

  test('base64DecodeGlib agrees with a plain glib reference on random inputs with = and newlines', () => {
    const pool = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==\n\n';
    for (let round = 0; round < 3000; round++) {
      const len = (rnd() * 40) | 0;
      let s = '';
      for (let i = 0; i < len; i++) s += pool[(rnd() * pool.length) | 0];
      if (round % 10 === 0) s += '*';
      const input = Buffer.from(s, 'latin1');
      const want = referenceGlibDecode(input);
      let got: Buffer | 'invalid';
      try {
        got = a.base64DecodeGlib(input);
      } catch {
        got = 'invalid';
      }
      if (want === 'invalid' || got === 'invalid') assert.is(got, want, JSON.stringify(s));
      else assert.ok(got.equals(want), JSON.stringify(s));
    }
  });

  test('base64DecodeGlib agrees with the real glib (g_base64_decode via python3 ctypes) on random inputs', () => {
    // The oracle: this machine's libglib, which qemu-ga links. Skips visibly without it.
    const oracle = `
import ctypes, json, random, sys
g = ctypes.CDLL('libglib-2.0.so.0')
g.g_base64_decode.restype = ctypes.c_void_p
g.g_base64_decode.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
g.g_free.argtypes = [ctypes.c_void_p]
rnd = random.Random(7)
pool = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/' + '=' * 12 + '\\n' * 6
out = []
for i in range(4000):
    s = ''.join(rnd.choice(pool) for _ in range(rnd.randrange(0, 48)))
    n = ctypes.c_size_t()
    p = g.g_base64_decode(s.encode(), ctypes.byref(n))
    out.append([s, ctypes.string_at(p, n.value).hex()])
    g.g_free(p)
json.dump(out, sys.stdout)
`;
    const r = spawnSync('python3', ['-c', oracle], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      console.log(`SKIP glib oracle: python3 or libglib-2.0.so.0 unavailable (${(r.stderr || String(r.error)).trim().split('\n').pop()})`);
      return;
    }
    const cases = JSON.parse(r.stdout) as Array<[string, string]>;
    assert.is(cases.length, 4000);
    for (const [s, hex] of cases) assert.is(a.base64DecodeGlib(Buffer.from(s, 'latin1')).toString('hex'), hex, JSON.stringify(s));
  });

  // ---- readFileReply ----

  test('readFileReply builds the exact reply line at positions, EOF and with an id suffix', async () => {
    const file = path.join(dir, 'read.bin');
    const data = randomBytes(10_000, rnd);
    fs.writeFileSync(file, data);
    const fd = fs.openSync(file, 'r');
    try {
      let r = await a.readFileReply(fd, 0, 4096, '');
      assert.is(r.reply.toString('latin1'), expectedReply(data.subarray(0, 4096), false));
      assert.is(r.count, 4096);
      assert.is(r.eof, false);

      r = await a.readFileReply(fd, 8000, 4096, ', "id": 42');
      assert.is(r.reply.toString('latin1'), expectedReply(data.subarray(8000), true, ', "id": 42'));
      assert.equal([r.count, r.eof], [2000, true]);

      r = await a.readFileReply(fd, 20_000, 10, '');
      assert.is(r.reply.toString('latin1'), '{"return": {"count": 0, "buf-b64": "", "eof": true}}\n');

      r = await a.readFileReply(fd, 0, 0, '');
      assert.is(r.reply.toString('latin1'), '{"return": {"count": 0, "buf-b64": "", "eof": false}}\n');

      // position -1: the descriptor's own offset, which advances.
      r = await a.readFileReply(fd, -1, 100, '');
      assert.is(r.reply.toString('latin1'), expectedReply(data.subarray(0, 100), false));
      r = await a.readFileReply(fd, -1, 100, ', "id": "x"');
      assert.is(r.reply.toString('latin1'), expectedReply(data.subarray(100, 200), false, ', "id": "x"'));
      const parsed = JSON.parse(r.reply.toString('latin1'));
      assert.equal(parsed, { return: { count: 100, 'buf-b64': data.subarray(100, 200).toString('base64'), eof: false }, id: 'x' });
    } finally {
      fs.closeSync(fd);
    }
  });

  test('recycleReply: once per token, and the recycled memory serves the next reply correctly', async () => {
    const file = path.join(dir, 'recycle.bin');
    const big = randomBytes(1 << 20, rnd);
    fs.writeFileSync(file, big);
    const fd = fs.openSync(file, 'r');
    try {
      const first = await a.readFileReply(fd, 0, big.length, '');
      assert.type(first.token, 'number');
      assert.is(a.recycleReply(first.token), true);
      assert.is(a.recycleReply(first.token), false, 'second recycle of the same token');
      assert.is(a.recycleReply(-1), false);
      for (const [pos, n] of [[1, big.length - 1], [0, big.length], [5, 1000]]) {
        const r = await a.readFileReply(fd, pos, n, ', "id": 3');
        assert.is(r.reply.toString('latin1'), expectedReply(big.subarray(pos, pos + n), false, ', "id": 3'));
        assert.is.not(r.token, first.token);
        a.recycleReply(r.token);
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  test('readFileReply on edge sizes and multi-MiB files: exact count vs one more', async () => {
    for (const n of [...EDGE_SIZES, BIG]) {
      const file = path.join(dir, `size-${n}`);
      const data = randomBytes(n, rnd);
      fs.writeFileSync(file, data);
      const fd = fs.openSync(file, 'r');
      try {
        const exact = await a.readFileReply(fd, 0, n, '');
        assert.is(exact.reply.toString('latin1'), expectedReply(data, false), `exact ${n}`);
        const more = await a.readFileReply(fd, 0, n + 1, '');
        assert.is(more.reply.toString('latin1'), expectedReply(data, true), `more ${n}`);
      } finally {
        fs.closeSync(fd);
      }
    }
  });

  test('readFileReply with huge-page reply blocks (≥ 4 MiB): recycled, reused, unmapped, bytes always right', async () => {
    const file = path.join(dir, 'huge');
    const data = randomBytes(40 * 1024 * 1024 + 3, rnd);
    fs.writeFileSync(file, data);
    const fd = fs.openSync(file, 'r');
    try {
      // 5 MiB twice (the second gets the first's recycled block), 40 MiB (beyond the pool: unmapped
      // after use), then 5 MiB at another offset (a block from the pool again, old bytes overwritten).
      for (const [at, n] of [[0, 5 << 20], [7, 5 << 20], [0, data.length], [123_457, 5 << 20]]) {
        const r = await a.readFileReply(fd, at, n, ', "id": 7');
        const want = data.subarray(at, at + n);
        const eof = at + n > data.length; // exactly to the end is not EOF yet (no 0-byte read seen)
        assert.is(r.count, want.length);
        assert.ok(r.reply.equals(Buffer.from(`{"return": {"count": ${want.length}, "buf-b64": "${want.toString('base64')}", "eof": ${eof}}, "id": 7}\n`, 'latin1')), `read of ${n} at ${at}`);
        assert.is(a.recycleReply(r.token), true);
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  test('readFileReply on a non-blocking FIFO: partial data, then EAGAIN; EOF without a writer', async () => {
    const fifo = path.join(dir, 'fifo-read');
    execFileSync('mkfifo', [fifo]);
    // O_RDWR keeps a writer alive (Linux allows it on FIFOs) so an empty pipe gives EAGAIN.
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      fs.writeSync(fd, Buffer.from('0123456789'));
      const r = await a.readFileReply(fd, -1, 100, '');
      assert.is(r.reply.toString('latin1'), expectedReply(Buffer.from('0123456789'), false));
      const e = await rejection(a.readFileReply(fd, -1, 100, ''));
      assert.is(e.code, 'EAGAIN');
      assert.is(e.errno, 11);
      assert.is(e.syscall, 'read');
    } finally {
      fs.closeSync(fd);
    }
    const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const r = await a.readFileReply(rd, -1, 100, '');
      assert.is(r.reply.toString('latin1'), '{"return": {"count": 0, "buf-b64": "", "eof": true}}\n');
    } finally {
      fs.closeSync(rd);
    }
  });

  test('readFileReply rejects with fs-style errors (EISDIR, EBADF)', async () => {
    const dfd = fs.openSync(dir, 'r');
    try {
      const e = await rejection(a.readFileReply(dfd, -1, 10, ''));
      assert.is(e.code, 'EISDIR');
      assert.is(e.syscall, 'read');
      assert.match(e.message, /^EISDIR: Is a directory, read/);
    } finally {
      fs.closeSync(dfd);
    }
    const wfd = fs.openSync(path.join(dir, 'wonly'), 'w');
    try {
      const e = await rejection(a.readFileReply(wfd, 0, 10, ''));
      assert.is(e.code, 'EBADF');
      assert.is(e.syscall, 'pread');
    } finally {
      fs.closeSync(wfd);
    }
  });

  // ---- writeBase64 ----

  test('writeBase64 decodes glib-style and writes at positions and at the current offset', async () => {
    const file = path.join(dir, 'write.bin');
    const fd = fs.openSync(file, 'w+');
    try {
      assert.is(await a.writeBase64(fd, -1, Buffer.from('aGVsbG8'), 0, 7, -1), 3);
      assert.is(await a.writeBase64(fd, -1, Buffer.from('IHdvcmxk'), 0, 8, -1), 6);
      assert.is(fs.readFileSync(file, 'latin1'), 'hel world');
      assert.is(await a.writeBase64(fd, 1, Buffer.from('QUJD'), 0, 4, 2), 2);
      assert.is(fs.readFileSync(file, 'latin1'), 'hAB world');
      // A slice of a bigger buffer, as the request parser hands it over.
      const line = Buffer.from('{"buf-b64": "WFla", "handle": 1}');
      assert.is(await a.writeBase64(fd, 0, line, 13, 17, -1), 3);
      assert.is(fs.readFileSync(file, 'latin1'), 'XYZ world');
      assert.is(await a.writeBase64(fd, 0, Buffer.from(''), 0, 0, -1), 0);
      assert.is(await a.writeBase64(fd, 0, Buffer.from('QUJD'), 0, 4, 0), 0);
      assert.is(fs.readFileSync(file, 'latin1'), 'XYZ world');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('writeBase64 in place: same file as with scratch memory, bytes outside the payload untouched', async () => {
    const { randomBytes } = await import('node:crypto');
    for (const size of [0, 1, 2, 3, 4095, 4096, 4097, (3 << 20) + 7]) {
      const data = randomBytes(size);
      const wrapped = size < 5000 ? data.toString('base64').replace(/.{76}/g, '$&\n') : data.toString('base64');
      const line = Buffer.from(`{"buf-b64": "${wrapped}", "handle": 1}`);
      const before = Buffer.from(line);
      const start = 13, end = 13 + wrapped.length;
      const file = path.join(dir, `inplace-${size}.bin`);
      const fd = fs.openSync(file, 'w+');
      try {
        assert.is(await a.writeBase64(fd, 0, line, start, end, -1, true), size);
      } finally { fs.closeSync(fd); }
      assert.ok(fs.readFileSync(file).equals(data), `size ${size}`);
      assert.ok(line.subarray(0, start).equals(before.subarray(0, start)) && line.subarray(end).equals(before.subarray(end)), `outside untouched, size ${size}`);
    }
    // Invalid data: an error and nothing written, in place too.
    const file = path.join(dir, 'inplace-bad.bin');
    const fd = fs.openSync(file, 'w+');
    try {
      const e = await rejection(a.writeBase64(fd, 0, Buffer.from('QUJDQUJD!!!!'), 0, 12, -1, true));
      assert.is(e.message, 'Base64 data contains invalid characters');
    } finally { fs.closeSync(fd); }
    assert.is(fs.statSync(file).size, 0);
  });

  test('writeBase64 writes nothing when the data or the count is invalid', async () => {
    const file = path.join(dir, 'untouched.bin');
    fs.writeFileSync(file, 'keep');
    const fd = fs.openSync(file, 'r+');
    try {
      let e = await rejection(a.writeBase64(fd, 0, Buffer.from('QUJD!!!!'), 0, 8, -1));
      assert.is(e.message, 'Base64 data contains invalid characters');
      assert.is(e.code, 'EQGA');
      // Invalid data is reported before an invalid count.
      e = await rejection(a.writeBase64(fd, 0, Buffer.from('QU JD'), 0, 5, 99));
      assert.is(e.message, 'Base64 data contains invalid characters');
      e = await rejection(a.writeBase64(fd, 0, Buffer.from('QUJD'), 0, 4, 4));
      assert.is(e.message, "value '4' is invalid for argument count");
      assert.is(e.code, 'EQGA');
      e = await rejection(a.writeBase64(fd, 0, Buffer.from('QUJD'), 0, 4, -5));
      assert.is(e.message, "value '-5' is invalid for argument count");
      assert.is(fs.readFileSync(file, 'latin1'), 'keep');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('writeBase64 of multi-MiB newline-wrapped data and of edge sizes', async () => {
    for (const n of [...EDGE_SIZES, BIG]) {
      const data = randomBytes(n, rnd);
      const b64 = Buffer.from(data.toString('base64').replace(/.{76}/g, '$&\n'));
      const file = path.join(dir, `w-${n}`);
      const fd = fs.openSync(file, 'w');
      try {
        assert.is(await a.writeBase64(fd, 0, b64, 0, b64.length, -1), n);
      } finally {
        fs.closeSync(fd);
      }
      assert.ok(fs.readFileSync(file).equals(data), `size ${n}`);
    }
  });

  test('writeBase64 to a full non-blocking pipe: short write, then EAGAIN; EBADF on a read-only fd', async () => {
    const fifo = path.join(dir, 'fifo-write');
    execFileSync('mkfifo', [fifo]);
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      const data = randomBytes(1 << 20, rnd);
      const b64 = Buffer.from(data.toString('base64'));
      const n = await a.writeBase64(fd, -1, b64, 0, b64.length, -1);
      assert.ok(n > 0 && n < data.length, `short write ${n}`);
      const e = await rejection(a.writeBase64(fd, -1, b64, 0, 8, -1));
      assert.is(e.code, 'EAGAIN');
      assert.is(e.syscall, 'write');
    } finally {
      fs.closeSync(fd);
    }
    const ro = fs.openSync(path.join(dir, 'untouched.bin'), 'r');
    try {
      const e = await rejection(a.writeBase64(ro, 0, Buffer.from('QUJD'), 0, 4, -1));
      assert.is(e.code, 'EBADF');
      assert.is(e.syscall, 'pwrite');
    } finally {
      fs.closeSync(ro);
    }
  });

  test('writeBase64 rejects out-of-range slices synchronously', () => {
    assert.throws(() => a.writeBase64(1, 0, Buffer.from('QUJD'), 2, 9, -1), /outside the buffer/);
  });

  // ---- crypt ----

  test('crypt hashes with the system default method and verifies', async () => {
    const hash = await a.crypt('correct horse');
    assert.ok(hash.startsWith(a.cryptPreferredMethod), hash);
    assert.is(await a.crypt('correct horse', hash), hash);
    assert.is.not(await a.crypt('wrong horse', hash), hash);
    assert.is.not(await a.crypt('correct horse'), hash, 'fresh salt each time');
  });

  test('crypt with a method prefix or a full setting', async () => {
    const sha = await a.crypt('pw', '$6$');
    assert.match(sha, /^\$6\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{86}$/);
    assert.is(await a.crypt('pw', sha), sha);
    // A fixed salt gives a fixed hash (glibc's documented SHA-512 example).
    assert.is(await a.crypt('Hello world!', '$6$saltstring'),
      '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1');
    const e = await rejection(a.crypt('pw', '$unknown$'));
    assert.ok(e.code === 'EINVAL' || e.code === 'ENOSYS', String(e.code));
  });

  // ---- calls that must not touch this machine: only their error paths ----

  test('freeze/thaw/trim report open() failures like fs errors', async () => {
    // One at a time: a promise created early could reject before anyone listens (an unhandled rejection).
    for (const call of [() => a.freeze('/nonexistent/node-qga'), () => a.thaw('/nonexistent/node-qga'), () => a.trim('/nonexistent/node-qga', 0n)]) {
      const e = await rejection(call());
      assert.is(e.code, 'ENOENT');
      assert.is(e.syscall, 'open');
      assert.is(e.path, '/nonexistent/node-qga');
    }
  });

  test('rtcRead/rtcWrite on a regular file fail with ENOTTY (no RTC is touched)', async () => {
    const file = path.join(dir, 'not-an-rtc');
    fs.writeFileSync(file, '');
    let e = await rejection(a.rtcRead(file, false));
    assert.equal([e.code, e.syscall, e.path], ['ENOTTY', 'ioctl(RTC_RD_TIME)', file]);
    e = await rejection(a.rtcWrite(file, false));
    assert.equal([e.code, e.syscall, e.path], ['ENOTTY', 'ioctl(RTC_SET_TIME)', file]);
    e = await rejection(a.rtcRead(path.join(dir, 'missing-rtc'), true));
    assert.equal([e.code, e.syscall], ['ENOENT', 'open']);
  });

  test('setSystemTime without CAP_SYS_TIME fails with EPERM (run as nobody in a child)', () => {
    const addonPath = path.resolve(__dirname, '..', 'build', 'Release', 'qga_native.node');
    if (process.getuid?.() !== 0) {
      console.log('SKIP setSystemTime EPERM check: needs root to drop to uid 65534');
      return;
    }
    const script = `require(${JSON.stringify(addonPath)}).setSystemTime(1000000000000000000n)` +
      '.then(() => console.log("SET"), (e) => console.log(JSON.stringify([e.code, e.errno, e.syscall])))';
    const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    assert.is(r.stdout.trim(), JSON.stringify(['EPERM', 1, 'settimeofday']), r.stderr);
  });

  test('reboot exists and rejects a bad mode without doing anything', () => {
    assert.type(a.reboot, 'function');
    assert.throws(() => a.reboot('sideways' as 'halt'), /mode must be/);
  });
}

test.run();
