/**
 * createNativeBackend: the SystemBackend contract on top of the addon (QgaError translation,
 * null positions, chunks), set-user-password against a shadow fixture, the RTC path choice,
 * and byte-for-byte parity with the pure-TypeScript file path (lib/backend/fallback-file.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultConfig } from '../lib/config-types';
import { QgaError } from '../lib/errors';
import { createNativeBackend } from '../lib/backend/native';
import * as fallbackFile from '../lib/backend/fallback-file';
import { rtcDevicePath, rtcKeepsLocalTime } from '../lib/platform/rtc';
import { nativeAddonOrSkip, tempDir, prng, randomBytes } from './helpers/native';

const addon = nativeAddonOrSkip('test/native-backend.test.ts');

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

test('rtc helpers: device choice under devRoot and /etc/adjtime mode', () => {
  const dir = tempDir('rtc');
  try {
    assert.is(rtcDevicePath(dir), path.join(dir, 'rtc0'));
    fs.writeFileSync(path.join(dir, 'rtc'), '');
    assert.is(rtcDevicePath(dir), path.join(dir, 'rtc'));
    fs.writeFileSync(path.join(dir, 'rtc0'), '');
    assert.is(rtcDevicePath(dir), path.join(dir, 'rtc0'));
    const adj = path.join(dir, 'adjtime');
    assert.is(rtcKeepsLocalTime(adj), false);
    fs.writeFileSync(adj, '0.0 0 0.0\n0\nLOCAL\n');
    assert.is(rtcKeepsLocalTime(adj), true);
    fs.writeFileSync(adj, '0.0 0 0.0\n0\nUTC\n');
    assert.is(rtcKeepsLocalTime(adj), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

if (addon) {
  const a = addon;
  const rnd = prng(42);
  let dir = '';
  const config = defaultConfig();
  test.before(() => {
    dir = tempDir('native-backend');
    config.shadowFile = path.join(dir, 'shadow');
    config.devRoot = path.join(dir, 'dev');
    fs.mkdirSync(config.devRoot);
  });
  test.after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('kind is native; bad inputs become rejections, not throws', async () => {
    const b = createNativeBackend(a, config);
    assert.is(b.kind, 'native');
    const e = await rejection(b.powerOff('sideways' as 'halt'));
    assert.match(e.message, /mode must be/);
  });

  test('readFileReply: null position reads at the offset; the reply is one Buffer chunk', async () => {
    const b = createNativeBackend(a, config);
    const file = path.join(dir, 'r');
    fs.writeFileSync(file, 'Hello World!\n\0');
    const fd = fs.openSync(file, 'r');
    try {
      const r = await b.readFileReply(fd, null, 4096, ', "id": 1');
      assert.is(r.chunks.length, 1);
      assert.ok(Buffer.isBuffer(r.chunks[0]));
      assert.is(r.chunks[0].toString(), '{"return": {"count": 14, "buf-b64": "SGVsbG8gV29ybGQhCgA=", "eof": true}, "id": 1}\n');
      assert.equal([r.count, r.eof], [14, true]);
      assert.type((r as { release?: unknown }).release, 'function');
      (r as unknown as { release(): void }).release();
    } finally {
      fs.closeSync(fd);
    }
  });

  test('writeBase64: QgaError for invalid data and counts, in qemu-ga order', async () => {
    const b = createNativeBackend(a, config);
    const file = path.join(dir, 'w');
    const fd = fs.openSync(file, 'w+');
    try {
      const cases: Array<[string, number | undefined, string]> = [
        ['QUJD!', undefined, 'Base64 data contains invalid characters'],
        ['QUJD', 4, "value '4' is invalid for argument count"],
        ['QUJD', -1, "value '-1' is invalid for argument count"],
        ['QU*D', -1, 'Base64 data contains invalid characters'],
        ['QUJD', 2 ** 60, `value '${2 ** 60}' is invalid for argument count`],
      ];
      for (const [data, count, msg] of cases) {
        const e = await rejection(b.writeBase64(fd, null, Buffer.from(data), 0, data.length, count));
        assert.instance(e, QgaError);
        assert.is((e as QgaError).desc, msg);
        assert.is((e as QgaError).errorClass, 'GenericError');
      }
      assert.is(fs.statSync(file).size, 0);
      assert.is(await b.writeBase64(fd, null, Buffer.from('aGVsbG8'), 0, 7, undefined), 3);
      assert.is(await b.writeBase64(fd, 0, Buffer.from('SGVs'), 0, 4, 1), 1);
      assert.is(fs.readFileSync(file, 'latin1'), 'Hel');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('setUserPassword hashes with crypt and edits only the user line', async () => {
    const b = createNativeBackend(a, config);
    const fixture = 'root:*:19000:0:99999:7:::\nguest:!:19000:0:99999:7:::\nother:x:1::::::\n';
    fs.writeFileSync(config.shadowFile, fixture, { mode: 0o640 });
    await b.setUserPassword('guest', 's3cret pass', false);
    const lines = fs.readFileSync(config.shadowFile, 'utf8').split('\n');
    const fields = lines[1].split(':');
    assert.is(fields[0], 'guest');
    assert.ok(fields[1].startsWith(a.cryptPreferredMethod), fields[1]);
    assert.is(await a.crypt('s3cret pass', fields[1]), fields[1]);
    assert.is(fields[2], String(Math.floor(Date.now() / 86_400_000)));
    assert.is(fields.slice(3).join(':'), '0:99999:7:::');
    assert.equal([lines[0], lines[2], lines[3]], ['root:*:19000:0:99999:7:::', 'other:x:1::::::', '']);
    assert.is(fs.statSync(config.shadowFile).mode & 0o777, 0o640);

    await b.setUserPassword('other', '$6$abc$precomputed', true);
    assert.match(fs.readFileSync(config.shadowFile, 'utf8'), /^other:\$6\$abc\$precomputed:\d+::::::$/m);

    const e = await rejection(b.setUserPassword('ghost', 'pw', false));
    assert.is(e.message, "user 'ghost' does not exist");
  });

  test('systemTimeToRtc / rtcToSystemTime use devRoot/rtc0 (a plain file here: ENOTTY, nothing set)', async () => {
    const b = createNativeBackend(a, config, { adjtimeFile: path.join(dir, 'no-adjtime') });
    let e = (await rejection(b.systemTimeToRtc())) as NodeJS.ErrnoException;
    assert.equal([e.code, e.syscall], ['ENOENT', 'open']);
    assert.is(e.path, path.join(config.devRoot, 'rtc0'));
    fs.writeFileSync(path.join(config.devRoot, 'rtc0'), '');
    e = (await rejection(b.rtcToSystemTime())) as NodeJS.ErrnoException;
    assert.equal([e.code, e.syscall], ['ENOTTY', 'ioctl(RTC_RD_TIME)']);
  });

  // ---- parity with the pure-TypeScript file path ----

  const SIZES = [0, 1, 2, 3, 4, 5, 4095, 4096, 4097, 65536, 1 << 20, (3 << 20) + 1];

  function joined(chunks: Array<Buffer | string>): Buffer {
    return Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'latin1') : c)));
  }

  test('parity: readFileReply replies are byte-identical to the fallback', async () => {
    const b = createNativeBackend(a, config);
    for (const n of SIZES) {
      const file = path.join(dir, `p-${n}`);
      fs.writeFileSync(file, randomBytes(n, rnd));
      // One descriptor per implementation: a null position reads (and moves) the fd's own offset.
      const fdNative = fs.openSync(file, 'r');
      const fdTs = fs.openSync(file, 'r');
      try {
        for (const [pos, count] of [[0, n], [0, n + 1], [1, 4096], [n, 10], [null, 4096], [null, 3], [0, 0]] as Array<[number | null, number]>) {
          const native = await b.readFileReply(fdNative, pos, count, ', "id": 7');
          const ts = await fallbackFile.readFileReply(fdTs, pos, count, ', "id": 7');
          assert.ok(joined(native.chunks).equals(joined(ts.chunks)), `size ${n} pos ${pos} count ${count}`);
          assert.equal([native.count, native.eof], [ts.count, ts.eof]);
        }
      } finally {
        fs.closeSync(fdNative);
        fs.closeSync(fdTs);
      }
    }
  });

  test('parity: writeBase64 produces identical files and identical errors', async () => {
    const b = createNativeBackend(a, config);
    const inputs: Array<[string, number | undefined]> = [];
    for (const n of SIZES) {
      const text = randomBytes(n, rnd).toString('base64');
      inputs.push([text, undefined], [text.replace(/.{76}/g, '$&\n'), undefined], [text.replace(/=+$/, ''), undefined]);
      if (n > 2) inputs.push([text, n - 1]);
    }
    const pool = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==\n';
    for (let i = 0; i < 300; i++) {
      let s = '';
      const len = (rnd() * 30) | 0;
      for (let j = 0; j < len; j++) s += pool[(rnd() * pool.length) | 0];
      inputs.push([s, undefined], [s, (rnd() * 20) | 0]);
    }
    // 'QQ=A' and 'Q=QQ': real glib 2.74 (g_base64_decode via ctypes) gives 41 00 and 40 04 10.
    inputs.push(['aGVsbG8', undefined], ['QQ==QQ==', undefined], ['QQ=A', undefined], ['Q=QQ', undefined], ['!!!!', undefined], ['QUJD', 9], ['QUJD', -1]);
    for (const [text, count] of inputs) {
      const src = Buffer.from(`xx${text}yy`, 'latin1');
      const results: Array<[string, Buffer]> = [];
      for (const impl of [b.writeBase64, fallbackFile.writeBase64]) {
        const file = path.join(dir, 'parity-w');
        fs.writeFileSync(file, 'previous');
        const fd = fs.openSync(file, 'r+');
        let outcome: string;
        try {
          outcome = String(await impl(fd, 0, src, 2, 2 + text.length, count));
        } catch (e) {
          outcome = `${(e as Error).constructor.name}: ${(e as Error).message}`;
        } finally {
          fs.closeSync(fd);
        }
        results.push([outcome, fs.readFileSync(file)]);
      }
      assert.is(results[0][0], results[1][0], JSON.stringify([text.slice(0, 40), count]));
      assert.ok(results[0][1].equals(results[1][1]), JSON.stringify([text.slice(0, 40), count]));
    }
  });
}

test.run();
