import * as fs from 'node:fs';
import { defineCommand, type Int } from './define';
import { T } from '../schema';
import { QgaError, isErrnoError, strerror } from '../errors';
import { readdirInKernelOrder } from '../platform/dir-order';
import type { JsonValue } from '../protocol/values';

/**
 * guest-get-vcpus / guest-set-vcpus over <sysfs>/devices/system/cpu/cpuN/online, the way
 * qemu-ga does it: directory order (not sorted), cpuN without `online` (usually cpu0) is
 * online and cannot be offlined, and set-vcpus stops at the first failure.
 */

export const GuestLogicalProcessor = T.struct('GuestLogicalProcessor', {
  'logical-id': T.int,
  online: T.bool,
  '*can-offline': T.bool,
});

interface LogicalProcessor {
  'logical-id': Int;
  online: boolean;
  'can-offline'?: boolean;
}

/** qemu-ga's error text: `<what>("<path>")` plus `: <strerror>` when errno is set. */
function sysError(what: string, path: string, e: unknown): QgaError {
  return new QgaError(`${what}("${path}"): ${strerror(e)}`);
}

function cpuDir(sysfsRoot: string, id: Int): string {
  // qemu-ga formats the path with a trailing slash, and its errors show it that way.
  return `${sysfsRoot}/devices/system/cpu/cpu${id}/`;
}

/** Opens the directory first, as qemu-ga does, so a missing CPU reports the directory. */
function checkDirectory(dirpath: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dirpath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw sysError('open', dirpath, e);
  }
  fs.closeSync(fd);
}

/** Reads the first byte of `online` (pread at 0); null when the file does not exist. */
function openOnline(dirpath: string, forWrite: boolean): number | null {
  const file = `${dirpath}/online`;
  try {
    return fs.openSync(file, forWrite ? fs.constants.O_RDWR : fs.constants.O_RDONLY);
  } catch (e) {
    if (isErrnoError(e) && e.code === 'ENOENT') return null;
    throw sysError('open', file, e);
  }
}

function readStatusByte(fd: number, file: string): string {
  const buf = Buffer.alloc(1);
  let n: number;
  try {
    n = fs.readSync(fd, buf, 0, 1, 0);
  } catch (e) {
    throw sysError('pread', file, e);
  }
  if (n === 0) throw new QgaError(`pread("${file}"): unexpected EOF`);
  return String.fromCharCode(buf[0]);
}

function readProcessor(sysfsRoot: string, id: number | bigint): LogicalProcessor {
  const dirpath = cpuDir(sysfsRoot, id);
  checkDirectory(dirpath);
  const fd = openOnline(dirpath, false);
  if (fd === null) return { 'logical-id': id, online: true, 'can-offline': false };
  try {
    const status = readStatusByte(fd, `${dirpath}/online`);
    return { 'logical-id': id, online: status !== '0', 'can-offline': true };
  } finally {
    fs.closeSync(fd);
  }
}

function applyProcessor(sysfsRoot: string, vcpu: LogicalProcessor): void {
  const id = vcpu['logical-id'];
  const dirpath = cpuDir(sysfsRoot, id);
  checkDirectory(dirpath);
  const fd = openOnline(dirpath, true);
  if (fd === null) {
    if (!vcpu.online) throw new QgaError(`logical processor #${id} can't be offlined`);
    return; // re-onlining a CPU that cannot go offline: nothing to do
  }
  const file = `${dirpath}/online`;
  try {
    const isOnline = readStatusByte(fd, file) !== '0';
    if (isOnline === vcpu.online) return;
    try {
      fs.writeSync(fd, vcpu.online ? '1' : '0', 0);
    } catch (e) {
      throw sysError('pwrite', file, e);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** qemu-ga parses names with sscanf("cpu%ld"): "cpu" then an optionally signed decimal. */
function parseCpuName(name: string): number | bigint | null {
  const m = /^cpu([ \t\n\v\f\r]*[+-]?\d+)/.exec(name);
  if (!m) return null;
  const big = BigInt(m[1].trim());
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

export function getVcpus(sysfsRoot: string): LogicalProcessor[] {
  const cpuRoot = `${sysfsRoot}/devices/system/cpu`;
  let names: string[];
  try {
    names = readdirInKernelOrder(cpuRoot).map((e) => e.name);
  } catch (e) {
    throw new QgaError(`failed to list entries: ${cpuRoot}: ${strerror(e)}`);
  }
  const out: LogicalProcessor[] = [];
  for (const name of names) {
    const id = parseCpuName(name);
    if (id === null) continue;
    out.push(readProcessor(sysfsRoot, id));
  }
  return out;
}

/** Returns how many leading entries were applied; the first entry's error is thrown. */
export function setVcpus(sysfsRoot: string, vcpus: LogicalProcessor[]): number {
  let processed = 0;
  for (const vcpu of vcpus) {
    try {
      applyProcessor(sysfsRoot, vcpu);
    } catch (e) {
      if (processed === 0) throw e;
      break; // the schema's rule: report partial success, drop the error
    }
    processed++;
  }
  return processed;
}

export const vcpuCommands = [
  defineCommand({
    name: 'guest-get-vcpus',
    returns: T.list(GuestLogicalProcessor),
    run: (_args, ctx) => getVcpus(ctx.config.sysfsRoot) as unknown as JsonValue,
  }),
  defineCommand<{ vcpus: LogicalProcessor[] }>({
    name: 'guest-set-vcpus',
    args: { vcpus: T.list(GuestLogicalProcessor) },
    returns: T.int,
    run: (args, ctx) => setVcpus(ctx.config.sysfsRoot, args.vcpus),
  }),
];
