/** Shared by the native tests: the loaded addon (or why it is missing) and small fixtures. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon, type NativeAddon } from '../../lib/backend/load-addon';

export function nativeAddonOrSkip(file: string): NativeAddon | undefined {
  const loaded = loadAddon();
  if ('addon' in loaded) return loaded.addon;
  console.log(`SKIP ${file}: native addon not available (${loaded.error.message}); tried ${loaded.tried.join(', ')}`);
  return undefined;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `node-qga-${prefix}-`));
}

/** glib's g_base64_decode written plainly, as the reference for the addon's decoder. */
export function referenceGlibDecode(input: Buffer): Buffer | 'invalid' {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const nul = input.indexOf(0);
  const text = (nul >= 0 ? input.subarray(0, nul) : input).toString('latin1');
  if (/[^A-Za-z0-9+/=\n]/.test(text)) return 'invalid';
  const out: number[] = [];
  let v = 0;
  let k = 0;
  let last0 = '';
  let last1 = '';
  for (const c of text) {
    if (c === '\n') continue;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | (c === '=' ? 0 : alphabet.indexOf(c))) & 0xffffff;
    if (++k === 4) {
      out.push(v >> 16);
      if (last1 !== '=') out.push((v >> 8) & 0xff);
      if (last0 !== '=') out.push(v & 0xff);
      k = 0;
    }
  }
  return Buffer.from(out);
}

/** A predictable pseudo-random generator, so failures can be reproduced. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

export function randomBytes(n: number, rnd: () => number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}
