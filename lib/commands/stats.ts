import { formatIPv6 } from './network';
import * as fs from 'node:fs';
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { JsonFloat, type JsonValue } from '../protocol/values';

/**
 * Counters from /proc: guest-get-cpustats (7.1, as in qemu-ga 7.2), and two commands
 * qemu-ga 7.2 does not have, following the 10.x shapes: guest-get-load (10.0) and
 * guest-network-get-route (9.1).
 */

/** sysconf(_SC_CLK_TCK): USER_HZ, which Linux fixes at 100 on the architectures we run on. */
const CLK_TCK = 100n;

export const GuestCpuStats = T.struct('GuestCpuStats', {
  type: T.enum('GuestCpuStatsType', ['linux']),
  cpu: T.int, user: T.uint64, nice: T.uint64, system: T.uint64, idle: T.uint64,
  '*iowait': T.uint64, '*irq': T.uint64, '*softirq': T.uint64, '*steal': T.uint64, '*guest': T.uint64, '*guestnice': T.uint64,
});
export const GuestLoadAverage = T.struct('GuestLoadAverage', { load1m: T.number, load5m: T.number, load15m: T.number });
export const GuestNetworkRoute = T.struct('GuestNetworkRoute', {
  iface: T.str, destination: T.str, metric: T.int, '*gateway': T.str, '*mask': T.str, '*irtt': T.int,
  '*flags': T.uint64, '*refcnt': T.int, '*use': T.int, '*window': T.int, '*mtu': T.int,
  '*desprefixlen': T.str, '*source': T.str, '*srcprefixlen': T.str, '*nexthop': T.str, version: T.int,
});

function uint(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readProcFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QgaError(`open("${file}"): ${strerror(e)}`);
  }
}

/** %lu conversions after a leading %s, stopping at the first field that does not convert. */
function scanUnsignedLongs(fields: string[], max: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields.slice(0, max)) {
    const m = /^[+-]?\d+/.exec(f);
    if (!m) break;
    let v = BigInt.asUintN(64, BigInt(m[0]));
    if (BigInt(m[0]) > 0xffffffffffffffffn) v = 0xffffffffffffffffn;
    out.push(v);
    if (m[0].length !== f.length) break;
  }
  return out;
}

export type CpuStats = Record<string, string | number | bigint>;

export function parseCpuStats(text: string, log?: (msg: string) => void, file = '/proc/stat'): CpuStats[] {
  const out: CpuStats[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) continue;
    const name = fields[0];
    // Only the per-CPU lines "cpuN …"; the aggregate "cpu …" line is skipped.
    if (!name.startsWith('cpu') || name.length === 3) continue;
    const nums = scanUnsignedLongs(fields.slice(1), 10);
    const n = 1 + nums.length;
    if (n < 5) {
      log?.(`Parsing cpu stat from ${file} failed, see "man proc"`);
      break;
    }
    const ms = (ticks: bigint) => uint(BigInt.asUintN(64, ticks * 1000n) / CLK_TCK);
    const [user, nice, system, idle, iowait, irq, softirq, steal, guest, guestnice] = nums;
    const cpuDigits = /^[+-]?\d+/.exec(name.slice(3));
    // Union base member first, then the linux branch in schema order.
    const s: CpuStats = { type: 'linux', cpu: cpuDigits ? Number(cpuDigits[0]) | 0 : 0, user: ms(user), nice: ms(nice), system: ms(system), idle: ms(idle) };
    if (n > 5) s.iowait = ms(iowait);
    if (n > 6) {
      s.irq = ms(irq);
      s.softirq = ms(softirq ?? 0n); // qemu-ga reports softirq with irq even when the line stops there
    }
    if (n > 8) s.steal = ms(steal);
    if (n > 9) s.guest = ms(guest);
    if (n > 10) s.guestnice = ms(guestnice);
    out.push(s);
  }
  return out;
}

export function getCpuStats(procRoot: string, log?: (msg: string) => void): CpuStats[] {
  return parseCpuStats(readProcFile(`${procRoot}/stat`), log);
}

/** getloadavg(): glibc reads the first three numbers of /proc/loadavg. */
export function getLoad(procRoot: string): { load1m: JsonFloat; load5m: JsonFloat; load15m: JsonFloat } {
  let text: string;
  try {
    text = fs.readFileSync(`${procRoot}/loadavg`, 'latin1');
  } catch (e) {
    throw new QgaError(`cannot query load average: ${strerror(e)}`);
  }
  const m = /^\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s+([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s+([-+]?[0-9.]+(?:[eE][-+]?\d+)?)/.exec(text);
  if (!m) throw new QgaError('cannot query load average');
  return { load1m: new JsonFloat(Number(m[1])), load5m: new JsonFloat(Number(m[2])), load15m: new JsonFloat(Number(m[3])) };
}

/** /proc/net/route stores IPv4 addresses as the hex of a little-endian 32-bit word. */
function ipv4FromHex(word: number): string {
  return `${word & 0xff}.${(word >>> 8) & 0xff}.${(word >>> 16) & 0xff}.${(word >>> 24) & 0xff}`;
}

/** glibc's inet_ntop(AF_INET6) text of 16 address bytes (the formatter network.ts uses too). */
export function formatIpv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  return formatIPv6(words);
}

/** 32 hex digits as an address; undefined when a byte does not parse (qemu-ga's NULL). */
function ipv6FromHex(hex: string): string | undefined {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const m = /^[0-9a-fA-F]{1,2}/.exec(hex.slice(i * 2, i * 2 + 2));
    if (!m) return undefined;
    bytes[i] = parseInt(m[0], 16);
  }
  return formatIpv6(bytes);
}

/** %x / %X: hex digits (an optional 0x), as the C int or unsigned it is stored in. */
function hex32(f: string | undefined): number | undefined {
  const m = f === undefined ? null : /^[+-]?(?:0[xX])?[0-9a-fA-F]+/.exec(f);
  if (!m || m[0].length !== f!.length) return undefined;
  const neg = m[0].startsWith('-');
  const v = Number(BigInt.asUintN(32, BigInt((neg ? '-0x' : '0x') + m[0].replace(/^[+-]?(0[xX])?/, ''))));
  return v;
}
function dec32(f: string | undefined): number | undefined {
  const m = f === undefined ? null : /^[+-]?\d+$/.exec(f);
  return m ? Number(BigInt.asIntN(32, BigInt(m[0]))) : undefined;
}
const signed32 = (v: number) => v | 0;

export type Route = Record<string, string | number | bigint>;

export function parseIpv4Routes(text: string): Route[] {
  const out: Route[] = [];
  const lines = text.split('\n');
  for (const line of lines.slice(1)) { // the header line
    const f = line.trim().split(/\s+/);
    // "%s %X %X %x %d %d %d %X %d %d %d": all eleven must convert.
    const dest = hex32(f[1]), gw = hex32(f[2]), flags = hex32(f[3]);
    const refcnt = dec32(f[4]), use = dec32(f[5]), metric = dec32(f[6]);
    const mask = hex32(f[7]), mtu = dec32(f[8]), window = dec32(f[9]), irtt = dec32(f[10]);
    if (!f[0] || [dest, gw, flags, refcnt, use, metric, mask, mtu, window, irtt].some((v) => v === undefined)) continue;
    out.push({
      iface: f[0], destination: ipv4FromHex(dest!), metric: metric!, gateway: ipv4FromHex(gw!), mask: ipv4FromHex(mask!),
      irtt: irtt!, flags: flags!, refcnt: refcnt!, use: use!, window: window!, mtu: mtu!, version: 4,
    });
  }
  return out;
}

export function parseIpv6Routes(text: string): Route[] {
  const out: Route[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "%32s %x %32s %x %32s %x %x %x %x %s": all ten must convert.
    if (f.length < 10) continue;
    const desLen = hex32(f[1]), srcLen = hex32(f[3]), metric = hex32(f[5]), refcnt = hex32(f[6]), use = hex32(f[7]), flags = hex32(f[8]);
    if ([desLen, srcLen, metric, refcnt, use, flags].some((v) => v === undefined)) continue;
    const destination = ipv6FromHex(f[0]);
    if (destination === undefined) continue;
    const r: Route = { iface: f[9], destination, metric: signed32(metric!) };
    // The flags are scanned into a C int and widened to uint64.
    r.flags = uint(BigInt.asUintN(64, BigInt(signed32(flags!))));
    r.refcnt = signed32(refcnt!);
    r.use = signed32(use!);
    r.desprefixlen = String(signed32(desLen!));
    const source = ipv6FromHex(f[2]);
    if (source !== undefined) r.source = source;
    r.srcprefixlen = String(signed32(srcLen!));
    const nexthop = ipv6FromHex(f[4]);
    if (nexthop !== undefined) r.nexthop = nexthop;
    r.version = 6;
    out.push(r);
  }
  return out;
}

export function getRoutes(procRoot: string): Route[] {
  const out: Route[] = [];
  let firstError: QgaError | undefined;
  // qemu-ga reads both files and reports an open failure after trying each.
  for (const [file, parse] of [[`${procRoot}/net/route`, parseIpv4Routes], [`${procRoot}/net/ipv6_route`, parseIpv6Routes]] as const) {
    try {
      out.push(...parse(readProcFile(file)));
    } catch (e) {
      firstError ??= e as QgaError;
    }
  }
  if (firstError) throw firstError;
  return out;
}

export const statsCommands = [
  defineCommand({
    name: 'guest-get-cpustats',
    returns: T.list(GuestCpuStats),
    run: (_a, ctx) => getCpuStats(ctx.config.procRoot, (m) => ctx.log.info(m)) as unknown as JsonValue,
  }),
  defineCommand({
    name: 'guest-get-load',
    returns: GuestLoadAverage,
    run: (_a, ctx) => getLoad(ctx.config.procRoot) as unknown as JsonValue,
  }),
  defineCommand({
    name: 'guest-network-get-route',
    returns: T.list(GuestNetworkRoute),
    run: (_a, ctx) => getRoutes(ctx.config.procRoot) as unknown as JsonValue,
  }),
];
