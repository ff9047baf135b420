/**
 * Property tests (fast-check) of base64 as qemu-ga reads it: lib/base64.ts decodeBase64Qga and
 * the addon's base64DecodeGlib are compared with a plain reference of glib's g_base64_decode
 * (after qemu's character check) on random text over the allowed alphabet, with '=' and '\n'
 * anywhere, NULs and the odd invalid character; the addon's encoders are compared with Node's.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeBase64Qga, INVALID_BASE64 } from '../lib/base64';
import { QgaError } from '../lib/errors';
import { loadAddon } from '../lib/backend/load-addon';

const test = suite('property: base64');

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * glib's decoder, written from its description: every alphabet character (and '=', worth 0)
 * shifts 6 bits into a 24-bit group; a full group gives 3 bytes, less one if the group's third
 * character was '=' and one if its fourth was; a partial group at the end is dropped. qemu
 * first rejects anything outside A-Z a-z 0-9 + / = \n, and reads the text as a C string.
 */
function reference(text: string): Buffer | 'invalid' {
  const end = text.indexOf('\0');
  const chars = [...(end >= 0 ? text.slice(0, end) : text)];
  if (chars.some((c) => c !== '=' && c !== '\n' && !DIGITS.includes(c))) return 'invalid';
  const group = chars.filter((c) => c !== '\n');
  const out: number[] = [];
  for (let g = 0; g + 4 <= group.length; g += 4) {
    const four = group.slice(g, g + 4);
    const bits = four.reduce((acc, c) => acc * 64 + (c === '=' ? 0 : DIGITS.indexOf(c)), 0);
    out.push((bits >> 16) & 0xff);
    if (four[2] !== '=') out.push((bits >> 8) & 0xff);
    if (four[3] !== '=') out.push(bits & 0xff);
  }
  return Buffer.from(out);
}

function ours(text: string): Buffer | 'invalid' {
  try {
    return decodeBase64Qga(text);
  } catch (e) {
    if (e instanceof QgaError && e.desc === INVALID_BASE64) return 'invalid';
    throw e;
  }
}

/** Mostly-valid text: digits, '=' and '\n' anywhere, sometimes a NUL or a bad character. */
const base64ish = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...DIGITS, '=', '\n'), maxLength: 64 }) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...DIGITS, ...DIGITS, '=', '\n', '\0', ' ', '-', '_', '\r', '\u00e9'), maxLength: 64 }) },
  // Clean base64 of random bytes, possibly unpadded, wrapped, or with the padding moved.
  { weight: 3, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 80 }), fc.nat(3), fc.nat(80)).map(([b, mode, at]) => {
    const s = Buffer.from(b).toString('base64');
    if (mode === 0) return s;
    if (mode === 1) return s.replace(/=+$/, '');
    if (mode === 2) return s.replace(/(.{1,76})/g, '$1\n');
    const i = at % (s.length + 1);
    return s.slice(0, i) + '=' + s.slice(i);
  }) },
);

test('decodeBase64Qga agrees with the glib reference', () => {
  fc.assert(fc.property(base64ish, (text) => {
    assert.equal(ours(text), reference(text), JSON.stringify(text));
  }), { numRuns: 5000 });
});

test('decodeBase64Qga of Node-encoded random bytes gives the bytes back', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), (b) => {
    assert.ok(decodeBase64Qga(Buffer.from(b).toString('base64')).equals(Buffer.from(b)));
  }), { numRuns: 500 });
});

const loaded = loadAddon();
if ('addon' in loaded) {
  const addon = loaded.addon;
  const native = (text: string): Buffer | 'invalid' => {
    try {
      return addon.base64DecodeGlib(Buffer.from(text, 'latin1'));
    } catch (e) {
      if ((e as Error).message === INVALID_BASE64) return 'invalid';
      throw e;
    }
  };

  test('native base64DecodeGlib agrees with the glib reference', () => {
    // Only one-byte characters here: the addon sees bytes, the reference sees characters.
    fc.assert(fc.property(base64ish.filter((t) => !/[^\x00-\x7f]/.test(t)), (text) => {
      assert.equal(native(text), reference(text), JSON.stringify(text));
    }), { numRuns: 5000 });
  });

  test('native base64Encode (scalar, avx2, best) equals Node base64 for any bytes and length', () => {
    const impls: Array<'scalar' | 'avx2' | 'best'> = ['scalar', 'best'];
    if (addon.base64Encoder === 'avx2') impls.push('avx2');
    else console.log('  (this CPU has no AVX2: the avx2 encoder is not compared)');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(7), (b, skew) => {
      // A view at an odd offset, so the encoders' unaligned loads are exercised too.
      const backing = Buffer.alloc(b.length + skew);
      backing.set(b, skew);
      const view = backing.subarray(skew);
      const want = Buffer.from(b).toString('base64');
      for (const impl of impls) assert.is(addon.base64Encode(view, impl).toString('latin1'), want, impl);
      assert.ok(addon.base64DecodeGlib(Buffer.from(want)).equals(Buffer.from(b)));
    }), { numRuns: 2000 });
  });
} else {
  console.log(`  SKIP native base64 properties: addon not loaded (${loaded.error.message})`);
}

test.run();
