import * as fs from 'node:fs';
import { defineCommand, type Int } from './define';
import { T } from '../schema';
import { QgaError, isErrnoError, strerror, ERRNO_NUMBERS } from '../errors';
import { readdirInKernelOrder } from '../platform/dir-order';
import type { JsonValue } from '../protocol/values';

/**
 * guest-get-memory-blocks, guest-set-memory-blocks and guest-get-memory-block-info over
 * <sysfs>/devices/system/memory, with qemu-ga's quirks kept: directory order, `state`
 * missing means "online, can't offline", a set reply's error-code is whatever errno was
 * when the block was left (2 for an online request on a block without `state`, 0 after
 * an empty read), and the block size is parsed as hex.
 */

export const GuestMemoryBlock = T.struct('GuestMemoryBlock', {
  'phys-index': T.uint64,
  online: T.bool,
  '*can-offline': T.bool,
});

export const GuestMemoryBlockResponse = T.struct('GuestMemoryBlockResponse', {
  'phys-index': T.uint64,
  response: T.enum('GuestMemoryBlockResponseType', ['success', 'not-found', 'operation-not-supported', 'operation-failed']),
  '*error-code': T.int,
});

export const GuestMemoryBlockInfo = T.struct('GuestMemoryBlockInfo', { size: T.uint64 });

interface MemoryBlock {
  'phys-index': Int;
  online: boolean;
  'can-offline'?: boolean;
}

type ResponseType = 'success' | 'not-found' | 'operation-not-supported' | 'operation-failed';
interface MemoryBlockResponse {
  'phys-index': Int;
  response: ResponseType;
  'error-code'?: number;
}

const UINT64_MAX = (1n << 64n) - 1n;

function memoryRoot(sysfsRoot: string): string {
  return `${sysfsRoot}/devices/system/memory/`;
}

/** qemu-ga prints the uint64 index with PRId64, so indexes above 2^63 appear negative. */
function blockDir(sysfsRoot: string, index: Int): string {
  return `${memoryRoot(sysfsRoot)}memory${BigInt.asIntN(64, BigInt(index))}/`;
}

function errnoOf(e: unknown): number {
  return isErrnoError(e) ? (e.errno ? Math.abs(e.errno) : ERRNO_NUMBERS[e.code] ?? 0) : 0;
}

function isEnoent(e: unknown): boolean {
  return isErrnoError(e) && e.code === 'ENOENT';
}

/** A failed sysfs read, remembering errno the way qemu-ga reads it afterwards (0 after EOF). */
class SysfsReadError extends QgaError {
  constructor(desc: string, readonly errno: number, readonly enoent: boolean) { super(desc); }
}

/** qemu-ga's ga_read_sysfs_file: open, one pread of up to `size` bytes at offset 0. */
function readSysfsFile(dirpath: string, name: string, size: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(dirpath + name, 'r');
  } catch (e) {
    throw new SysfsReadError(`open sysfs file "${name}": ${strerror(e)}`, errnoOf(e), isEnoent(e));
  }
  try {
    const buf = Buffer.alloc(size);
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, size, 0);
    } catch (e) {
      throw new SysfsReadError(`pread sysfs file "${name}": ${strerror(e)}`, errnoOf(e), isEnoent(e));
    }
    if (n === 0) throw new SysfsReadError(`pread sysfs file "${name}": unexpected EOF`, 0, false);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function openBlockDir(dirpath: string): void {
  const fd = fs.openSync(dirpath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  fs.closeSync(fd);
}

function readBlock(sysfsRoot: string, index: Int): MemoryBlock {
  const dirpath = blockDir(sysfsRoot, index);
  try {
    openBlockDir(dirpath);
  } catch (e) {
    throw new QgaError(`open("${dirpath}"): ${strerror(e)}`);
  }
  let state: Buffer;
  try {
    state = readSysfsFile(dirpath, 'state', 10);
  } catch (e) {
    // Kernels without `state` cannot change the block: report it online and fixed.
    if (e instanceof SysfsReadError && e.enoent) return { 'phys-index': index, online: true, 'can-offline': false };
    throw e;
  }
  const online = state.toString('latin1').startsWith('online');
  let canOffline = false;
  try {
    canOffline = readSysfsFile(dirpath, 'removable', 1)[0] !== 0x30;
  } catch (e) {
    if (!(e instanceof SysfsReadError && e.enoent)) throw e;
  }
  return { 'phys-index': index, online, 'can-offline': canOffline };
}

/** strtoul(name + 6, NULL, 10): leading decimal digits, 0 when there are none. */
function parseBlockIndex(suffix: string): Int {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(suffix);
  if (!m) return 0;
  let big = BigInt(m[2]);
  if (big > UINT64_MAX) big = UINT64_MAX;
  if (m[1] === '-') big = BigInt.asUintN(64, -big);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

export function getMemoryBlocks(sysfsRoot: string): MemoryBlock[] {
  const root = memoryRoot(sysfsRoot);
  let entries: fs.Dirent[];
  try {
    entries = readdirInKernelOrder(root);
  } catch (e) {
    // No memory hotplug in this kernel: an empty list, not an error.
    if (isEnoent(e)) return [];
    throw new QgaError(`Can't open directory"${root}": ${strerror(e)}`); // sic: no space
  }
  const blocks: MemoryBlock[] = [];
  for (const entry of entries) {
    if (!entry.name.startsWith('memory') || !entry.isDirectory()) continue;
    blocks.push(readBlock(sysfsRoot, parseBlockIndex(entry.name.slice(6))));
  }
  if (blocks.length === 0) throw new QgaError('guest reported zero memory blocks!');
  return blocks;
}

function setBlock(sysfsRoot: string, block: MemoryBlock): MemoryBlockResponse {
  const index = block['phys-index'];
  // qemu-ga zero-fills the response, so "success" is the value left when nothing sets it.
  let response: ResponseType = 'success';
  const failed = (errno: number): MemoryBlockResponse => ({ 'phys-index': index, response, 'error-code': errno });

  try {
    fs.closeSync(fs.openSync(memoryRoot(sysfsRoot), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
  } catch (e) {
    if (isEnoent(e)) response = 'operation-not-supported';
    return failed(errnoOf(e));
  }
  const dirpath = blockDir(sysfsRoot, index);
  try {
    openBlockDir(dirpath);
  } catch (e) {
    response = isEnoent(e) ? 'not-found' : 'operation-failed';
    return failed(errnoOf(e));
  }
  let state: Buffer;
  try {
    state = readSysfsFile(dirpath, 'state', 10);
  } catch (e) {
    const err = e as SysfsReadError;
    if (err.enoent) {
      // The quirk: onlining a block without `state` stays "success" but carries ENOENT.
      if (!block.online) response = 'operation-not-supported';
    } else {
      response = 'operation-failed';
    }
    return failed(err.errno);
  }
  const isOnline = state.toString('latin1').startsWith('online');
  if (isOnline !== block.online) {
    const newState = block.online ? 'online' : 'offline';
    try {
      const fd = fs.openSync(dirpath + 'state', fs.constants.O_WRONLY);
      try {
        fs.writeSync(fd, newState, 0);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      response = 'operation-failed';
      return failed(errnoOf(e));
    }
  }
  return { 'phys-index': index, response: 'success' };
}

export function setMemoryBlocks(sysfsRoot: string, blocks: MemoryBlock[]): MemoryBlockResponse[] {
  return blocks.map((b) => setBlock(sysfsRoot, b));
}

/** block_size_bytes holds hex without a prefix (e.g. "8000000"); strtol(…, 16) semantics. */
export function parseHexSize(text: string): Int {
  const m = /^[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]*)/.exec(text);
  if (!m || !m[2]) return 0;
  const LONG_MAX = (1n << 63n) - 1n;
  let v = BigInt('0x' + m[2]);
  if (v > LONG_MAX) v = m[1] === '-' ? LONG_MAX + 1n : LONG_MAX; // strtol saturates
  if (m[1] === '-') v = BigInt.asUintN(64, -v); // a negative long lands in the uint64 field
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

export function getMemoryBlockInfo(sysfsRoot: string): { size: Int } {
  const root = memoryRoot(sysfsRoot);
  try {
    openBlockDir(root);
  } catch (e) {
    throw new QgaError(`open("${root}"): ${strerror(e)}`);
  }
  const buf = readSysfsFile(root, 'block_size_bytes', 20);
  return { size: parseHexSize(buf.toString('latin1')) };
}

export const memoryCommands = [
  defineCommand({
    name: 'guest-get-memory-blocks',
    returns: T.list(GuestMemoryBlock),
    run: (_args, ctx) => getMemoryBlocks(ctx.config.sysfsRoot) as unknown as JsonValue,
  }),
  defineCommand<{ 'mem-blks': MemoryBlock[] }>({
    name: 'guest-set-memory-blocks',
    args: { 'mem-blks': T.list(GuestMemoryBlock) },
    returns: T.list(GuestMemoryBlockResponse),
    run: (args, ctx) => setMemoryBlocks(ctx.config.sysfsRoot, args['mem-blks']) as unknown as JsonValue,
  }),
  defineCommand({
    name: 'guest-get-memory-block-info',
    returns: GuestMemoryBlockInfo,
    run: (_args, ctx) => getMemoryBlockInfo(ctx.config.sysfsRoot),
  }),
];
