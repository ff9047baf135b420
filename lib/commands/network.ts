import * as fs from 'node:fs';
import * as os from 'node:os';
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { readdirInKernelOrder } from '../platform/dir-order';
import type { JsonValue } from '../protocol/values';
import type { InterfaceAddressEntry } from '../backend/types';

/**
 * guest-network-get-interfaces. With the native backend it is qemu-ga's own walk over
 * getifaddrs(3) (listFromIfaddrs): one record per name in order of first appearance, every
 * IPv4/IPv6 entry an address, down interfaces included. Without it, the walk is reproduced
 * without native code (listNetworkInterfaces):
 * - interfaces come from <sysfs>/class/net in ifindex order (getifaddrs lists links first,
 *   in the kernel's link-dump order), including those without addresses;
 * - hardware-address is what SIOCGIFHWADDR returns: the first 6 bytes of the device
 *   address, zero-padded (loopback and tun give 00:00:00:00:00:00), taken from sysfs;
 * - addresses come from os.networkInterfaces() (libuv's getifaddrs walk: exact order,
 *   alias labels such as eth0:1 as their own interfaces), but libuv drops interfaces that
 *   are not both UP and RUNNING, so for those IPv6 addresses come from /proc/net/if_inet6;
 * - statistics from /proc/net/dev, only for interfaces with at least one address.
 */

export const GuestIpAddress = T.struct('GuestIpAddress', {
  'ip-address': T.str,
  'ip-address-type': T.enum('GuestIpAddressType', ['ipv4', 'ipv6']),
  prefix: T.int,
});

export const GuestNetworkInterfaceStat = T.struct('GuestNetworkInterfaceStat', {
  'rx-bytes': T.uint64,
  'rx-packets': T.uint64,
  'rx-errs': T.uint64,
  'rx-dropped': T.uint64,
  'tx-bytes': T.uint64,
  'tx-packets': T.uint64,
  'tx-errs': T.uint64,
  'tx-dropped': T.uint64,
});

export const GuestNetworkInterface = T.struct('GuestNetworkInterface', {
  name: T.str,
  '*hardware-address': T.str,
  '*ip-addresses': T.list(GuestIpAddress),
  '*statistics': GuestNetworkInterfaceStat,
});

export interface IpAddress {
  'ip-address': string;
  'ip-address-type': 'ipv4' | 'ipv6';
  prefix: number;
}

export type InterfaceStats = Record<
  'rx-bytes' | 'rx-packets' | 'rx-errs' | 'rx-dropped' | 'tx-bytes' | 'tx-packets' | 'tx-errs' | 'tx-dropped',
  number | bigint
>;

export interface NetworkInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: IpAddress[];
  statistics?: InterfaceStats;
}

/** The subset of os.networkInterfaces() this module reads. */
export type NodeInterfaceAddresses = Record<string, Array<{ address: string; netmask: string; family: string | number }> | undefined>;

export interface NetworkSources {
  sysfsRoot: string;
  procRoot: string;
  /** os.networkInterfaces(), injectable so tests can pair it with fixture trees. */
  addresses: NodeInterfaceAddresses;
}

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;

function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

interface Link { name: string; ifindex: number; running: boolean }

/** The links of this network namespace in kernel (ifindex) order. */
function listLinks(sysfsRoot: string): Link[] {
  const classNet = `${sysfsRoot}/class/net`;
  let names: string[];
  try {
    names = readdirInKernelOrder(classNet).map((e) => e.name);
  } catch (e) {
    throw new QgaError(`getifaddrs failed: ${strerror(e)}`);
  }
  const links = names.map((name) => {
    const ifindex = parseInt(readText(`${classNet}/${name}/ifindex`) ?? '', 10);
    const flags = parseInt(readText(`${classNet}/${name}/flags`) ?? '0', 16) || 0;
    return {
      name,
      ifindex: Number.isNaN(ifindex) ? Number.MAX_SAFE_INTEGER : ifindex,
      running: (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0,
    };
  });
  return links.sort((a, b) => a.ifindex - b.ifindex); // stable: unknown indexes keep readdir order
}

/**
 * SIOCGIFHWADDR's answer: the kernel resolves "eth0:1" to eth0, copies up to 6 bytes of the
 * device address and leaves the rest zero. undefined when the device has no readable address.
 */
export function hardwareAddress(sysfsRoot: string, name: string): string | undefined {
  const device = name.split(':')[0];
  const text = readText(`${sysfsRoot}/class/net/${device}/address`);
  if (text === undefined) return undefined;
  const bytes = text.trim() === '' ? [] : text.trim().split(':').map((h) => parseInt(h, 16) & 0xff);
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push((bytes[i] ?? 0).toString(16).padStart(2, '0'));
  return out.join(':');
}

/** inet_ntop(AF_INET6): longest zero run (2+ groups, first on a tie) as "::", v4 tail when mapped/compatible. */
export function formatIPv6(words: number[]): string {
  let bestBase = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestBase = i; bestLen = j - i; }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += `${words[6] >> 8}.${words[6] & 0xff}.${words[7] >> 8}.${words[7] & 0xff}`;
      break;
    }
    out += words[i].toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** The kernel's ipv6_addr_src_scope rank: its address lists keep global before site before link before host. */
function scopeRank(words: number[]): number {
  if ((words[0] & 0xffc0) === 0xfe80) return 0x2; // link-local
  if ((words[0] & 0xffc0) === 0xfec0) return 0x5; // site-local
  if (words.slice(0, 7).every((w) => w === 0) && words[7] === 1) return 0x1; // loopback
  return 0xe; // global
}

/** /proc/net/if_inet6: "<32 hex> <ifindex> <prefix> <scope> <flags> <name>", hash order. */
function readIfInet6(procRoot: string): Map<string, IpAddress[]> {
  const byName = new Map<string, Array<IpAddress & { rank: number }>>();
  for (const line of (readText(`${procRoot}/net/if_inet6`) ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-fA-F]{32}$/.test(f[0])) continue;
    const words: number[] = [];
    for (let i = 0; i < 32; i += 4) words.push(parseInt(f[0].slice(i, i + 4), 16));
    const list = byName.get(f[5]) ?? [];
    list.push({ 'ip-address': formatIPv6(words), 'ip-address-type': 'ipv6', prefix: parseInt(f[2], 16), rank: scopeRank(words) });
    byName.set(f[5], list);
  }
  const out = new Map<string, IpAddress[]>();
  for (const [name, list] of byName) {
    list.sort((a, b) => b.rank - a.rank);
    out.set(name, list.map(({ rank: _rank, ...a }) => a));
  }
  return out;
}

/** Population count of a netmask in text form (what qemu-ga's ctpop32 over the mask gives). */
export function netmaskPrefix(mask: string): number {
  let bits = 0;
  const count = (n: number) => { for (; n; n &= n - 1) bits++; };
  if (mask.includes(':')) {
    const [head, tail = ''] = mask.split('::');
    const h = head ? head.split(':') : [];
    const t = mask.includes('::') && tail ? tail.split(':') : [];
    for (const g of [...h, ...t]) count(parseInt(g, 16) & 0xffff);
  } else {
    for (const o of mask.split('.')) count(parseInt(o, 10) & 0xff);
  }
  return bits;
}

/** /proc/net/dev's 16 counters for `name`, or undefined when the line is missing or short. */
export function interfaceStats(procRoot: string, name: string): InterfaceStats | undefined {
  const text = readText(`${procRoot}/net/dev`);
  if (text === undefined) return undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimStart();
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon) !== name) continue;
    const nums = line.slice(colon + 1).trim().split(/\s+/);
    if (nums.length < 16 || !nums.slice(0, 16).every((n) => /^\d+$/.test(n))) continue;
    const v = (i: number): number | bigint => {
      const b = BigInt(nums[i]);
      return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    };
    return {
      'rx-bytes': v(0), 'rx-packets': v(1), 'rx-errs': v(2), 'rx-dropped': v(3),
      'tx-bytes': v(8), 'tx-packets': v(9), 'tx-errs': v(10), 'tx-dropped': v(11),
    };
  }
  return undefined;
}

function nodeAddresses(list: NonNullable<NodeInterfaceAddresses[string]>): IpAddress[] {
  const out: IpAddress[] = [];
  for (const a of list) {
    const v6 = a.family === 'IPv6' || a.family === 6;
    // libuv prints link-local addresses without a scope suffix already; strip one if present.
    out.push({ 'ip-address': a.address.replace(/%.*$/, ''), 'ip-address-type': v6 ? 'ipv6' : 'ipv4', prefix: netmaskPrefix(a.netmask) });
  }
  return out;
}

export function listNetworkInterfaces(src: NetworkSources): NetworkInterface[] {
  const links = listLinks(src.sysfsRoot);
  const linkNames = new Set(links.map((l) => l.name));
  let inet6: Map<string, IpAddress[]> | undefined;
  const records: Array<{ name: string; addresses: IpAddress[] }> = [];

  for (const link of links) {
    const fromNode = src.addresses[link.name];
    let addresses: IpAddress[];
    if (fromNode && fromNode.length > 0) {
      addresses = nodeAddresses(fromNode);
    } else {
      // libuv hides interfaces that are not UP and RUNNING; IPv4 of those is not visible
      // without netlink, IPv6 is in /proc. Running ones without addresses have none there.
      inet6 ??= readIfInet6(src.procRoot);
      addresses = link.running ? [] : inet6.get(link.name) ?? [];
    }
    records.push({ name: link.name, addresses });
  }
  // Alias labels (eth0:1) are separate records, after every link (they first appear among
  // the AF_INET entries), in getifaddrs order.
  for (const [name, list] of Object.entries(src.addresses)) {
    if (!linkNames.has(name) && list && list.length > 0) records.push({ name, addresses: nodeAddresses(list) });
  }

  return records.map(({ name, addresses }) => toRecord(name, hardwareAddress(src.sysfsRoot, name), addresses, src.procRoot));
}

function toRecord(name: string, hw: string | undefined, addresses: IpAddress[], procRoot: string): NetworkInterface {
  const iface: NetworkInterface = { name };
  if (hw !== undefined) iface['hardware-address'] = hw;
  if (addresses.length > 0) {
    iface['ip-addresses'] = addresses;
    // Only for interfaces with an address: qemu-ga reads them when it adds one.
    const stats = interfaceStats(procRoot, name);
    if (stats) iface.statistics = stats;
  }
  return iface;
}

/**
 * qemu-ga's walk over getifaddrs(3): a record per name, in order of first appearance (links
 * first, then alias labels from the IPv4 entries), an address per IPv4/IPv6 entry (prefix 0
 * without a netmask, as qemu-ga leaves it). The hardware address is SIOCGIFHWADDR's answer:
 * the device's (an alias resolves to its device) first 6 link-layer bytes, zero-padded; that is
 * the AF_PACKET entry's, and a link without one (tun) has none, so sysfs decides (empty: zeros).
 */
export function listFromIfaddrs(entries: readonly InterfaceAddressEntry[], sysfsRoot: string, procRoot: string): NetworkInterface[] {
  const linkHw = new Map<string, string>();
  const links = new Set<string>();
  const byName = new Map<string, IpAddress[]>();
  for (const e of entries) {
    if (e.family === 'packet' || e.family === 'none') links.add(e.name);
    if (e.family === 'packet' && e.hwaddr !== undefined && !linkHw.has(e.name)) linkHw.set(e.name, e.hwaddr);
    let addresses = byName.get(e.name);
    if (!addresses) byName.set(e.name, addresses = []);
    if ((e.family === 'ipv4' || e.family === 'ipv6') && e.address !== undefined) {
      addresses.push({ 'ip-address': e.address, 'ip-address-type': e.family, prefix: e.prefix ?? 0 });
    }
  }
  return [...byName].map(([name, addresses]) => {
    const device = name.split(':')[0];
    const hw = linkHw.get(device) ?? hardwareAddress(sysfsRoot, name) ?? (links.has(device) ? '00:00:00:00:00:00' : undefined);
    return toRecord(name, hw, addresses, procRoot);
  });
}

export const networkCommands = [
  defineCommand({
    name: 'guest-network-get-interfaces',
    returns: T.list(GuestNetworkInterface),
    run: async (_args, ctx) => {
      const { sysfsRoot, procRoot } = ctx.config;
      const backend = ctx.backend;
      if (backend?.listInterfaceAddresses) {
        let entries: InterfaceAddressEntry[];
        try {
          entries = await backend.listInterfaceAddresses();
        } catch (e) {
          throw new QgaError(`getifaddrs failed: ${strerror(e)}`);
        }
        return listFromIfaddrs(entries, sysfsRoot, procRoot) as unknown as JsonValue;
      }
      return listNetworkInterfaces({ sysfsRoot, procRoot, addresses: os.networkInterfaces() }) as unknown as JsonValue;
    },
  }),
];
