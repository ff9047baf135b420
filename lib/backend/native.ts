/**
 * SystemBackend on top of the native addon (lib/backend/load-addon.ts). The addon does the
 * syscalls off the JS thread; this file maps the contract's conventions onto it (null
 * position -> -1, 'EQGA' errors -> QgaError) and adds the file-level work the addon does not:
 * choosing the RTC device and its UTC/LOCAL mode, and editing the shadow file.
 */
import { createFallbackSystem, MissingToolError } from './fallback-system';
import type { AgentConfig } from '../config-types';
import { QgaError } from '../errors';
import { rtcDevicePath, rtcKeepsLocalTime, DEFAULT_ADJTIME_FILE } from '../platform/rtc';
import { setShadowPassword } from '../platform/shadow';
import type { NativeAddon } from './load-addon';
import type { FileReadReply, InterfaceAddressEntry, SystemBackend, TrimResult } from './types';

/**
 * A reply whose memory can be reused as soon as it has been written: call `release()` then
 * (never before; the Buffer's bytes may be overwritten afterwards). Not calling it is safe,
 * the memory then comes back when the Buffer is garbage-collected, but reusing it avoids
 * page-faulting fresh memory for every large read, which costs more than the read itself.
 */
export interface RecyclableFileReadReply extends FileReadReply {
  release(): void;
}

export interface NativeBackendOptions {
  /** hwclock's configuration, read for UTC vs LOCAL (default /etc/adjtime). */
  adjtimeFile?: string;
}

const INVALID_BASE64 = 'Base64 data contains invalid characters';
const BASE64_ALPHABET_AND_NEWLINE = /^[A-Za-z0-9+/=\n]*$/;

/** Addon errors with code 'EQGA' carry a message for the host verbatim. */
function translate(e: unknown): never {
  if (e instanceof Error && (e as NodeJS.ErrnoException).code === 'EQGA') throw new QgaError(e.message);
  throw e;
}

export function createNativeBackend(addon: NativeAddon, config: AgentConfig, options: NativeBackendOptions = {}): SystemBackend {
  const adjtimeFile = options.adjtimeFile ?? DEFAULT_ADJTIME_FILE;
  // Feature-detected: an addon built before native/netif.cc has no getifaddrs.
  const getifaddrs = (addon as unknown as { getifaddrs?: () => Promise<InterfaceAddressEntry[]> }).getifaddrs;

  return {
    kind: 'native',

    // async everywhere: the addon throws argument errors synchronously; callers get rejections.
    freeze: async (mountpoint: string): Promise<void> => addon.freeze(mountpoint),
    thaw: async (mountpoint: string): Promise<boolean> => addon.thaw(mountpoint),
    trim: async (mountpoint: string, minimum: bigint): Promise<TrimResult> => addon.trim(mountpoint, minimum),

    setSystemTime: async (ns: bigint): Promise<void> => addon.setSystemTime(ns),
    systemTimeToRtc: async (): Promise<void> => addon.rtcWrite(rtcDevicePath(config.devRoot), rtcKeepsLocalTime(adjtimeFile)),
    async rtcToSystemTime(): Promise<void> {
      const ns = await addon.rtcRead(rtcDevicePath(config.devRoot), rtcKeepsLocalTime(adjtimeFile));
      await addon.setSystemTime(ns);
    },

    async setUserPassword(user: string, password: string, crypted: boolean): Promise<void> {
      const hash = crypted ? password : await addon.crypt(password).catch(translate);
      await setShadowPassword(config.shadowFile, user, hash);
    },

    powerOff: async (mode): Promise<void> => {
      // A bad mode is refused by the addon before anything else can happen.
      if (mode !== 'powerdown' && mode !== 'halt' && mode !== 'reboot') return addon.reboot(mode);
      // An orderly shutdown through the guest's own init when it has the tools (services stop,
      // filesystems unmount); reboot(2) after sync() only on guests that have none (busybox initramfs).
      try {
        await createFallbackSystem(config).powerOff(mode);
        return;
      } catch (e) {
        if (!(e instanceof MissingToolError)) throw e;
      }
      await addon.reboot(mode);
    },

    async readFileReply(fd: number, position: number | null, count: number, idSuffix: string): Promise<RecyclableFileReadReply> {
      const r = await addon.readFileReply(fd, position ?? -1, count, idSuffix).catch(translate);
      return { chunks: [r.reply], count: r.count, eof: r.eof, release: () => void addon.recycleReply(r.token) };
    },

    async writeBase64(fd, position, src, start, end, count, opts): Promise<number> {
      // The addon reads -1 as "all"; any other count it cannot represent exactly (negative,
      // beyond 2^53) is invalid, but qemu-ga checks the data first, so this path does too.
      if (count !== undefined && (typeof count !== 'number' || count < 0 || !Number.isSafeInteger(count))) {
        if (!BASE64_ALPHABET_AND_NEWLINE.test(src.toString('latin1', start, end).split('\0', 1)[0])) throw new QgaError(INVALID_BASE64);
        throw new QgaError(`value '${String(count)}' is invalid for argument count`);
      }
      return addon.writeBase64(fd, position ?? -1, src, start, end, count ?? -1, opts?.consume === true).catch(translate);
    },

    ...(typeof addon.preadInto === 'function'
      ? { preadInto: (fd: number, buf: Buffer, length: number, position: number) => addon.preadInto!(fd, buf, 0, length, position) }
      : {}),

    ...(typeof getifaddrs === 'function' ? { listInterfaceAddresses: async () => getifaddrs.call(addon) } : {}),
  };
}
