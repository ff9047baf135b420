/**
 * The only place that loads the native addon (build/Release/qga_native.node). Loading never
 * throws: a missing, stale or broken build (ERR_DLOPEN_FAILED, a missing libcrypt, a wrong
 * architecture) is reported as data so backend selection can fall back to pure TypeScript.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The interface the addon exports (native/*.cc). Promise-returning calls run off the JS thread. */
export interface NativeAddon {
  readonly abiVersion: number;
  /** 'avx2' or 'scalar': the base64 encoder this CPU uses. */
  readonly base64Encoder: string;
  /** libxcrypt's preferred method prefix, e.g. '$y$'. */
  readonly cryptPreferredMethod: string;

  freeze(path: string): Promise<void>;
  thaw(path: string): Promise<boolean>;
  trim(path: string, minimum: bigint): Promise<{ trimmed: bigint; minimum: bigint }>;

  setSystemTime(ns: bigint): Promise<void>;
  /** System time → RTC, broken down as local time when `local`, else UTC. */
  rtcWrite(devicePath: string, local: boolean): Promise<void>;
  /** RTC → nanoseconds since the epoch (whole seconds). */
  rtcRead(devicePath: string, local: boolean): Promise<bigint>;

  /** Hash with crypt_r; `setting` is a method prefix ('$6$'), a full setting or hash, or omitted (system default). */
  crypt(password: string, setting?: string): Promise<string>;
  /** sync() + reboot(2). Only settles if reboot(2) failed. */
  reboot(mode: 'powerdown' | 'halt' | 'reboot'): Promise<void>;

  /**
   * The guest-file-read reply line in one Buffer. Its memory returns to the addon's pool when
   * `recycleReply(token)` is called (after the bytes were written out) or when it is collected.
   */
  readFileReply(fd: number, position: number, count: number, idSuffix: string): Promise<{ reply: Buffer; count: number; eof: boolean; token: number }>;
  /** The reply with this token is no longer needed; its bytes may be overwritten from now on. False if unknown or already recycled. */
  recycleReply(token: number): boolean;
  /** With inPlace the decoded bytes overwrite src from `start` on (the caller is done with it). */
  writeBase64(fd: number, position: number, src: Buffer, start: number, end: number, count: number, inPlace?: boolean): Promise<number>;
  /** One pread(2) into buf[offset, offset + length) on the I/O lane; missing in older builds. */
  preadInto?(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  base64Encode(buf: Buffer, impl?: 'best' | 'scalar' | 'avx2'): Buffer;
  base64DecodeGlib(buf: Buffer, impl?: 'scalar' | 'avx2' | 'best'): Buffer;
  /**
   * The I/O lane (native/io_lane.cc) that runs readFileReply and writeBase64: jobs finished
   * within the JS thread's wait, jobs that outlasted it, and jobs sent to libuv's pool.
   */
  laneStats?(): { enabled: boolean; waited: number; later: number; pool: number; waitMicros: number; idleMicros: number };
  /** The decoder's string scan (native/json_scan.cc); missing in addons built before it. */
  scanJsonString?(buf: Uint8Array, from: number, to: number, quote: number): number;
}

export type LoadAddonResult = { addon: NativeAddon } | { error: Error; tried: string[] };

/** The addon interface version this code expects (native/addon.cc kAbiVersion). */
export const ADDON_ABI_VERSION = 1;
const ADDON_FILE = 'qga_native.node';

/** The package root: the nearest directory above this file holding package.json (works from lib/ and dist/). */
export function packageRoot(from: string = __dirname): string {
  let dir = from;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(from, '..', '..');
    dir = parent;
  }
}

function candidatePaths(root: string): string[] {
  return ['build/Release', 'build/Debug', 'build', 'out/Release'].map((d) => path.join(root, d, ADDON_FILE));
}

let cached: LoadAddonResult | undefined;

/**
 * Loads the addon once (later calls return the same result). `options.paths` replaces the
 * default candidates (tests); `options.fresh` bypasses the cache.
 */
export function loadAddon(options: { paths?: string[]; fresh?: boolean } = {}): LoadAddonResult {
  if (cached && !options.fresh && !options.paths) return cached;
  const tried: string[] = [];
  let lastError: Error | undefined;
  for (const file of options.paths ?? candidatePaths(packageRoot())) {
    tried.push(file);
    if (!fs.existsSync(file)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as NativeAddon;
      if (addon.abiVersion !== ADDON_ABI_VERSION) {
        lastError = new Error(`${file}: addon interface version ${String(addon.abiVersion)}, expected ${ADDON_ABI_VERSION} (rebuild with npm run build:native)`);
        continue;
      }
      const result = { addon };
      if (!options.paths) cached = result;
      return result;
    } catch (e) {
      lastError = e instanceof Error ? e : new Error(String(e));
    }
  }
  const result = { error: lastError ?? new Error(`${ADDON_FILE} not found (not built)`), tried };
  if (!options.paths) cached = result;
  return result;
}
