/**
 * The native fast paths of guest-file-write: the AVX2 base64 decoder (must give exactly the
 * scalar decoder's bytes and verdicts), the addon's JSON string scan used by the request
 * decoder (must give exactly the JS scan's results), and whole requests through an agent on
 * both backends, split across many socket writes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { nativeAddonOrSkip, tempDir, prng, randomBytes } from './helpers/native';
import { availableBackends, startAgent } from './helpers/agent';
import { StreamDecoder, type DecodedMessage } from '../lib/protocol/decoder';
import { RawString } from '../lib/protocol/values';

const addon = nativeAddonOrSkip('test/native-write-path.test.ts');
const rnd = prng(0x77e1);
const SIZES = [...Array.from({ length: 130 }, (_, i) => i), 4095, 4096, 4097, 3 * 1024 * 1024 + 5];
/** Characters that take the decoder off its fast paths: padding, newline, invalid ones, NUL. */
const ODD = ['=', '\n', '!', '\0', '.', '-', '_', ' ', '\x80', '\xff', '"'];

function decodeOrError(fn: () => Buffer): Buffer | string {
  try { return fn(); } catch (e) { return (e as Error).message; }
}

if (addon) {
  const a = addon;
  const impls: Array<'scalar' | 'avx2' | 'best'> = a.base64Encoder === 'avx2' ? ['avx2', 'best'] : ['best'];
  if (a.base64Encoder !== 'avx2') console.log('native-write-path: no AVX2 on this CPU; only the scalar decoder is compared');

  test('base64DecodeGlib: every implementation equals the scalar one (sizes 0..4097 and 3 MiB, odd characters at start/middle/end)', () => {
    for (const n of SIZES) {
      const text = Buffer.from(randomBytes(n, rnd).toString('base64'), 'latin1');
      const variants: Buffer[] = [text];
      if (text.length > 0) {
        for (const at of [0, text.length >> 1, text.length - 1, Math.floor(rnd() * text.length)]) {
          const odd = ODD[Math.floor(rnd() * ODD.length)];
          const v = Buffer.from(text);
          v[at] = odd.charCodeAt(0);
          variants.push(v);
        }
      }
      for (const v of variants) {
        const want = decodeOrError(() => a.base64DecodeGlib(v, 'scalar'));
        for (const impl of impls) {
          const got = decodeOrError(() => a.base64DecodeGlib(v, impl));
          assert.equal(got, want, `size ${n}, ${impl}`);
        }
      }
    }
  });

  test('base64DecodeGlib: the AVX2 path stops at each odd character in every position of a 96-character run', () => {
    const text = Buffer.from(randomBytes(72, rnd).toString('base64'), 'latin1');
    for (let at = 0; at < text.length; at++) {
      for (const odd of ODD) {
        const v = Buffer.from(text);
        v[at] = odd.charCodeAt(0);
        const want = decodeOrError(() => a.base64DecodeGlib(v, 'scalar'));
        for (const impl of impls) assert.equal(decodeOrError(() => a.base64DecodeGlib(v, impl)), want, `${JSON.stringify(odd)} at ${at}`);
      }
    }
  });

  test('writeBase64 in place: bad base64 at the start, middle or end writes nothing; good data lands whole', async () => {
    const dir = tempDir('native-write-path');
    try {
      for (const n of [0, 1, 4096, 4097, 65536, 3 * 1024 * 1024 + 5]) {
        const data = randomBytes(n, rnd);
        const file = path.join(dir, `f${n}`);
        const fd = fs.openSync(file, 'w');
        try {
          const b64 = Buffer.from(data.toString('base64'), 'latin1');
          for (const at of n > 0 ? [0, b64.length >> 1, b64.length - 1] : []) {
            const bad = Buffer.from(b64);
            bad[at] = 0x21;
            let msg = '';
            try { await a.writeBase64(fd, 0, bad, 0, bad.length, -1, true); } catch (e) { msg = (e as Error).message; }
            assert.is(msg, 'Base64 data contains invalid characters');
            assert.is(fs.fstatSync(fd).size, 0, `nothing written (size ${n}, bad at ${at})`);
          }
          assert.is(await a.writeBase64(fd, 0, Buffer.from(b64), 0, b64.length, -1, true), n);
          assert.ok(fs.readFileSync(file).equals(data), `size ${n}`);
        } finally {
          fs.closeSync(fd);
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('writeBase64 without consuming the source (payloads over 4 MiB go through the decoder in parts): same results as in place', async () => {
    const dir = tempDir('native-write-parts');
    try {
      const data = randomBytes(6 * 1024 * 1024 + 1, rnd);
      const plain = data.toString('base64');
      const variants: Array<[string, string, number]> = [
        ['plain', plain, -1],
        ['newline-wrapped', plain.replace(/.{76}/g, '$&\n'), -1],
        ['odd newlines', plain.replace(/.{4194301}/g, '$&\n\n'), -1],
        ['count below the total', plain, 5 * 1024 * 1024 + 3],
        ['count above the total', plain, data.length + 1],
        ['bad at the start', '!' + plain.slice(1), -1],
        ['bad in the middle', plain.slice(0, 4194304) + '*' + plain.slice(4194305), -1],
        ['bad at the end', plain.slice(0, -1) + '-', -1],
        ['= in the middle', plain.slice(0, 4194302) + '==' + plain.slice(4194304), -1],
        ['NUL after 5 MiB', plain.slice(0, 7000001) + '\0' + plain.slice(7000002), -1],
      ];
      for (const [name, text, count] of variants) {
        const results: string[] = [];
        for (const inPlace of [true, false]) {
          const file = path.join(dir, `${name}-${inPlace}`);
          const fd = fs.openSync(file, 'w');
          let r: string;
          try {
            r = String(await a.writeBase64(fd, 0, Buffer.from(text, 'latin1'), 0, text.length, count, inPlace));
          } catch (e) {
            r = (e as Error).message;
          } finally {
            fs.closeSync(fd);
          }
          const onDisk = fs.readFileSync(file);
          results.push(`${r} ${onDisk.length} ${onDisk.toString('base64').slice(-40)}`);
        }
        assert.is(results[1], results[0], name);
      }
      assert.ok(fs.readFileSync(path.join(dir, 'plain-false')).equals(data));
      assert.is(fs.statSync(path.join(dir, 'bad at the end-false')).size, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // The JS scan's definition (decoder.ts DQ_PLAIN / SQ_PLAIN), byte by byte.
  const plain = (c: number, quote: number) => c >= 0x20 && c <= 0xfd && c !== 0x5c && c !== quote;
  function referenceScan(buf: Uint8Array, from: number, to: number, quote: number): number {
    let high = 0;
    let i = from;
    for (; i < to && plain(buf[i], quote); i++) high |= buf[i];
    return high & 0x80 ? -i - 1 : i;
  }

  test('scanJsonString equals the byte-by-byte definition for every byte value at every position', () => {
    const base = Buffer.alloc(80, 0x41);
    for (const quote of [0x22, 0x27]) {
      for (let at = 0; at < base.length; at++) {
        for (let c = 0; c < 256; c++) {
          const b = Buffer.from(base);
          b[at] = c;
          if (at > 5) b[3] = 0xc3; // a high byte before the stop in half the cases
          for (const [from, to] of [[0, b.length], [1, b.length - 1], [at, b.length], [0, at]]) {
            assert.is(a.scanJsonString!(b, from, to, quote), referenceScan(b, from, to, quote), `byte ${c} at ${at}, [${from}, ${to})`);
          }
        }
      }
    }
    // Views with a byte offset, and argument checks.
    const big = Buffer.alloc(4096, 0x61);
    big[3000] = 0x22;
    assert.is(a.scanJsonString!(big.subarray(100), 0, 3996, 0x22), 2900);
    assert.throws(() => a.scanJsonString!(big, 0, 5000, 0x22), /outside/);
    assert.throws(() => a.scanJsonString!(big, 0, 10, 0x41), /quote/);
  });

  function describe(msgs: DecodedMessage[]): string[] {
    const show = (v: unknown): unknown => v instanceof Map ? [...v].map(([k, x]) => [k, show(x)])
      : Array.isArray(v) ? v.map(show) : v instanceof RawString ? `raw:${v.toString()}` : typeof v === 'bigint' ? `${v}n` : v;
    return msgs.map((m) => { const r = JSON.stringify('error' in m ? m : show(m.value)); if ('release' in m) m.release?.(); return r; });
  }

  function feed(d: StreamDecoder, stream: Buffer, cuts: () => number): string[] {
    const out: string[] = [];
    for (let i = 0; i < stream.length;) {
      const k = Math.max(1, cuts());
      out.push(...describe(d.push(stream.subarray(i, i + k))));
      i += k;
    }
    return out;
  }

  test('the decoder with the native scan gives exactly the JS results, on streams split across many reads', () => {
    const pieces = ['"', "'", '\\', '\\"', '\n', '\x01', '\x1f', '\xe9', '\xff', '\xfe', '{', '}', '[', ']', ':', ',', '0', '-1', '2.5e3', 'true', 'null', ' '];
    for (let round = 0; round < 300; round++) {
      const parts: Buffer[] = [];
      const count = 1 + Math.floor(rnd() * 40);
      for (let k = 0; k < count; k++) {
        if (rnd() < 0.5) parts.push(Buffer.alloc(Math.floor(rnd() * 3000), 0x61 + Math.floor(rnd() * 26)));
        else parts.push(Buffer.from(pieces[Math.floor(rnd() * pieces.length)], 'latin1'));
      }
      // Also well-formed writes with large payloads between the noise.
      if (round % 3 === 0) {
        parts.push(Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"${randomBytes(5000 + Math.floor(rnd() * 70000), rnd).toString('base64')}"}}`));
      }
      const stream = Buffer.concat(parts);
      const maxCut = [1, 7, 600, 4096, 65536][round % 5];
      const want = feed(new StreamDecoder(), stream, () => Math.floor(rnd() * maxCut) + 1);
      const got = feed(new StreamDecoder(a.scanJsonString), stream, () => Math.floor(rnd() * maxCut) + 1);
      assert.equal(got, want, `round ${round}`);
    }
  });
}

/** Writes `data` to a unix socket in pieces of random sizes, each its own write, and collects `lines` reply lines. */
function splitExchange(sock: string, data: Buffer, lines: number, maxPiece: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const got: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error('timeout')); }, 30000);
    s.on('connect', async () => {
      for (let i = 0; i < data.length;) {
        const k = 1 + Math.floor(rnd() * maxPiece);
        s.write(data.subarray(i, i + k));
        i += k;
        if (rnd() < 0.2) await new Promise((r) => setImmediate(r));
      }
    });
    s.on('data', (d) => {
      got.push(d);
      const text = Buffer.concat(got).toString('latin1');
      const all = text.split('\n').filter((l) => l.length > 0);
      if (all.length >= lines) { clearTimeout(timer); s.destroy(); resolve(all); }
    });
    s.on('error', reject);
  });
}

for (const backend of availableBackends()) {
  test(`guest-file-write through the agent (${backend}): requests split across many socket writes, bad base64 anywhere writes nothing`, async () => {
    const t = await startAgent(backend);
    try {
      const file = path.join(t.dir, 'out.bin');
      const [open] = await splitExchange(t.sock, Buffer.from(`{"execute":"guest-file-open","arguments":{"path":"${file}","mode":"w"}}\n`), 1, 10);
      const handle = JSON.parse(open).return as number;
      let expected = Buffer.alloc(0);
      for (const n of [0, 1, 3, 4095, 4096, 4097, 65536, 2 * 1024 * 1024 + 1]) {
        const data = randomBytes(n, rnd);
        const b64 = data.toString('base64');
        const req = (payload: string) => Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":${handle},"buf-b64":"${payload}"}}\n`, 'latin1');
        const bad = b64.length > 0 ? [0, b64.length >> 1, b64.length - 1].map((at) => b64.slice(0, at) + '!' + b64.slice(at + 1)) : [];
        const replies = await splitExchange(t.sock, Buffer.concat([...bad.map(req), req(b64)]), bad.length + 1, n > 100000 ? 70000 : 3000);
        for (const r of replies.slice(0, bad.length)) {
          assert.equal(JSON.parse(r), { error: { class: 'GenericError', desc: 'Base64 data contains invalid characters' } });
        }
        assert.equal(JSON.parse(replies[bad.length]), { return: { count: n, eof: false } }, `size ${n}`);
        expected = Buffer.concat([expected, data]);
        assert.ok(fs.readFileSync(file).equals(expected), `file contents after size ${n}`);
      }
    } finally {
      await t.stop();
    }
  });
}

test.run();
