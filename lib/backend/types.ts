/**
 * The contract between command policy (lib/commands) and OS mechanism. Two implementations:
 * `native` (the C++ addon: ioctls, clock, crypt, zero-copy base64 file I/O) and `fallback`
 * (pure TypeScript plus standard tools: fsfreeze, fstrim, hwclock, chpasswd). Both must behave
 * the same; errors are ErrnoError-shaped (code, errno, syscall, path) like Node's fs errors.
 * Every method that can block runs off the event loop thread.
 */
export type BackendKind = 'native' | 'fallback';

export interface TrimResult {
  /** Bytes the kernel reports as trimmed (FITRIM's updated `len`). */
  trimmed: bigint;
  /** The kernel's updated `minlen`. */
  minimum: bigint;
}

export interface FileReadReply {
  /** The complete reply line, ready for the transport: `{"return": {...}<idSuffix>}\n`. */
  chunks: Array<Buffer | string>;
  count: number;
  eof: boolean;
  /** Hands the reply's memory back for reuse; call only after the bytes have been written. */
  release?(): void;
}

/** One getifaddrs(3) entry (native/netif.cc). */
export interface InterfaceAddressEntry {
  /** The interface name, or an alias label such as eth0:1 for IPv4 addresses. */
  name: string;
  /** 'packet' = the link itself (AF_PACKET); 'none' = a link without a link-layer address (ifa_addr NULL). */
  family: 'packet' | 'ipv4' | 'ipv6' | 'none' | 'other';
  /** ipv4/ipv6: inet_ntop text. */
  address?: string;
  /** ipv4/ipv6: set bits of the netmask; absent without a netmask. */
  prefix?: number;
  /** packet: the first 6 bytes of the link-layer address, zero-padded, lowercase hex with colons. */
  hwaddr?: string;
}

export interface SystemBackend {
  readonly kind: BackendKind;

  /** FIFREEZE the filesystem mounted at `mountpoint`. Rejects with code EOPNOTSUPP/EBUSY/... */
  freeze(mountpoint: string): Promise<void>;
  /** FITHAW repeatedly until it fails; true when at least one FITHAW succeeded. Rejects only when open() fails. */
  thaw(mountpoint: string): Promise<boolean>;
  /** FITRIM the whole filesystem with the given minimum extent length. */
  trim(mountpoint: string, minimum: bigint): Promise<TrimResult>;

  /** settimeofday() to `ns` nanoseconds since the epoch. */
  setSystemTime(ns: bigint): Promise<void>;
  /** Copy the system time into the hardware clock (what `hwclock -w` does). */
  systemTimeToRtc(): Promise<void>;
  /** Set the system time from the hardware clock (what `hwclock -s` does). */
  rtcToSystemTime(): Promise<void>;

  /**
   * Set `user`'s password: `password` is clear text, or a crypt(3) hash when `crypted`.
   * Native hashes with crypt(3) and rewrites the shadow file atomically; fallback runs chpasswd.
   */
  setUserPassword(user: string, password: string, crypted: boolean): Promise<void>;

  /** Power off, halt or reboot now (native: reboot(2) after sync; fallback: /sbin/shutdown). */
  powerOff(mode: 'powerdown' | 'halt' | 'reboot'): Promise<void>;

  /**
   * guest-file-read's reply built in place: read up to `count` bytes from `fd` (at `position`,
   * or the current offset when null), base64-encode them into the reply line with `idSuffix`
   * (`, "id": ...` or '') spliced in before the closing brace.
   */
  readFileReply(fd: number, position: number | null, count: number, idSuffix: string): Promise<FileReadReply>;
  /**
   * guest-file-write's payload: `src[start, end)` is base64 as received on the wire (qemu-ga's
   * alphabet, `\n` allowed). Validates, decodes and writes `count` bytes (all when undefined)
   * at `position` (current offset when null). Rejects with QgaError before writing anything
   * when the data or the count is invalid. Resolves with the bytes written.
   * `consume`: the caller is done with `src`, so a backend may decode into it in place.
   */
  writeBase64(fd: number, position: number | null, src: Buffer, start: number, end: number, count: number | undefined, opts?: { consume?: boolean }): Promise<number>;
  /**
   * One pread(2) of up to `length` bytes at `position` into `buf` from 0, for the read-ahead
   * window (native: the I/O lane; fallback: fs.read on the pool; absent: the pool as well).
   */
  preadInto?(fd: number, buf: Buffer, length: number, position: number): Promise<number>;

  /**
   * getifaddrs(3), entries in its order, down interfaces included (optional: the native backend
   * only; without it guest-network-get-interfaces uses os.networkInterfaces() and sysfs).
   * Rejects with an errno error.
   */
  listInterfaceAddresses?(): Promise<InterfaceAddressEntry[]>;
}
