/**
 * guest-file-* commands. Handles come from the state directory's persistent counter (never
 * reused across restarts) and live for the agent's lifetime, not a connection's.
 *
 * Unlike qemu-ga there is no stdio buffering: every write reaches the kernel before its
 * reply, so guest-file-flush has nothing left to push (it does not fsync) and switching
 * between reading and writing needs no implicit flush. The agent tracks each handle's
 * position itself and reads/writes at it, which gives the same results as qemu-ga's stream
 * positions (append mode writes at the end, as O_APPEND does).
 */
import * as fs from 'node:fs';
import { defineCommand, RawReply, type CommandContext, type Int } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { RawString } from '../protocol/values';
import { fileReadReplyChunks } from '../protocol/encoder';
import { ReadAhead, SMALL_READ_MAX } from './read-ahead';

/** qemu-ga's cap on one read (48 MiB: base64 of it stays under the 64 MiB JSON limit). */
export const FILE_READ_MAX = 48 * 1024 * 1024;

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_NOCTTY, O_NONBLOCK } = fs.constants;

/** The fopen modes qemu-ga accepts and the open(2) flags each one means. */
const MODES: Record<string, number> = {
  r: O_RDONLY, rb: O_RDONLY,
  w: O_WRONLY | O_CREAT | O_TRUNC, wb: O_WRONLY | O_CREAT | O_TRUNC,
  a: O_WRONLY | O_CREAT | O_APPEND, ab: O_WRONLY | O_CREAT | O_APPEND,
  'r+': O_RDWR, 'rb+': O_RDWR, 'r+b': O_RDWR,
  'w+': O_RDWR | O_CREAT | O_TRUNC, 'wb+': O_RDWR | O_CREAT | O_TRUNC, 'w+b': O_RDWR | O_CREAT | O_TRUNC,
  'a+': O_RDWR | O_CREAT | O_APPEND, 'ab+': O_RDWR | O_CREAT | O_APPEND, 'a+b': O_RDWR | O_CREAT | O_APPEND,
};

interface OpenFile {
  fd: number;
  path: string;
  append: boolean;
  /** Our own file position; null for pipes, sockets and ttys, which have none. */
  position: number | null;
  /** Regular files only: the window that serves runs of small reads (read-ahead.ts). */
  ahead: ReadAhead | null;
}

/** The handle table, shared by every connection for the agent's life. */
export class FileTable {
  private readonly files = new Map<number, OpenFile>();
  /** Bumped by every open and write: read-ahead windows filled before it are not used. */
  generation = 0;
  get size(): number { return this.files.size; }
  add(handle: number, f: OpenFile): void { this.files.set(handle, f); }
  get(handle: Int): OpenFile {
    const f = typeof handle === 'number' ? this.files.get(handle) : undefined;
    if (!f) throw new QgaError(`handle '${handle}' has not been found`);
    return f;
  }
  remove(handle: number): void { this.files.delete(handle); }
  closeAll(): void {
    for (const f of this.files.values()) { try { fs.closeSync(f.fd); } catch { /* already gone */ } }
    this.files.clear();
  }
}

declare module './define' {
  interface AgentServices { files?: FileTable }
}

function table(ctx: CommandContext): FileTable {
  return (ctx.services.files ??= new FileTable());
}

/** open(2) on the pool (a path on a slow or hung filesystem must not stall the agent). */
async function openFd(path: string, flags: number, createMode: number): Promise<number> {
  const extra = O_NOCTTY | O_NONBLOCK;
  if (flags & O_CREAT) {
    try {
      return await fsOpen(path, flags | O_EXCL | extra, createMode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return fsOpen(path, (flags & ~O_CREAT) | extra);
}

function fsOpen(path: string, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise<fs.Stats>((resolve, reject) => fs.fstat(fd, (err, s) => (err ? reject(err) : resolve(s))));
}

const openAndClose = [
  defineCommand<{ path: string | RawString; mode?: string | RawString }>({
    name: 'guest-file-open',
    args: { path: T.str, '*mode': T.str },
    returns: T.int,
    run: async ({ path: p, mode: m }, ctx) => {
      const path = p.toString();
      const mode = m === undefined ? 'r' : m.toString();
      ctx.log.info(`guest-file-open called, filepath: ${path}, mode: ${mode}`);
      const flags = Object.prototype.hasOwnProperty.call(MODES, mode) ? MODES[mode] : undefined;
      if (flags === undefined) throw new QgaError(`invalid file open mode '${mode}'`);
      let fd: number;
      try {
        fd = await openFd(path, flags, ctx.config.fileCreateMode);
      } catch (e) {
        throw new QgaError(`failed to open file '${path}' (mode: '${mode}'): ${strerror(e)}`);
      }
      let handle: number;
      let st: fs.Stats;
      try {
        st = await fstat(fd);
        handle = await ctx.state.nextHandle();
      } catch (e) {
        // Closed before the error is answered: the caller sees no descriptor of a failed open.
        await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
        throw e;
      }
      const seekable = st.isFile() || st.isBlockDevice() || st.isDirectory();
      const files = table(ctx);
      files.generation++; // O_TRUNC, or a file another handle has read ahead in
      files.add(handle, { fd, path, append: (flags & O_APPEND) !== 0, position: seekable ? 0 : null, ahead: st.isFile() ? new ReadAhead() : null });
      ctx.log.info(`guest-file-open, handle: ${handle}`);
      return handle;
    },
  }),
  defineCommand<{ handle: Int }>({
    name: 'guest-file-close',
    args: { handle: T.int },
    run: ({ handle }, ctx) => {
      const f = table(ctx).get(handle);
      ctx.log.info(`guest-file-close called, handle: ${handle}`);
      try {
        fs.closeSync(f.fd);
      } catch (e) {
        throw new QgaError(`failed to close handle: ${strerror(e)}`);
      }
      table(ctx).remove(Number(handle));
      return {};
    },
  }),
];

const GuestFileRead = T.struct('GuestFileRead', { count: T.int, 'buf-b64': T.str, eof: T.bool });
const GuestFileWrite = T.struct('GuestFileWrite', { count: T.int, eof: T.bool });
const GuestFileSeek = T.struct('GuestFileSeek', { position: T.int, eof: T.bool });
const GuestFileWhence = T.alternate('GuestFileWhence', [T.int, T.enum('QGASeek', ['set', 'cur', 'end'])]);

const readWriteSeekFlush = [
  defineCommand<{ handle: Int; count?: Int }>({
    name: 'guest-file-read',
    args: { handle: T.int, '*count': T.int },
    returns: GuestFileRead,
    run: ({ handle, count }, ctx) => {
      const files = table(ctx);
      const f = files.get(handle);
      const n = count === undefined ? 4096 : count;
      if (n < 0 || n > FILE_READ_MAX) throw new QgaError(`value '${n}' is invalid for argument count`);
      if (f.ahead !== null && f.position !== null && n > 0 && n <= SMALL_READ_MAX) {
        // Answered from the window without leaving the event loop when it covers the read.
        const hit = f.ahead.take(f.position, Number(n), files.generation);
        if (hit !== null) return fromWindow(f, hit, ctx);
        return readAhead(f, Number(n), files.generation, ctx);
      }
      return readFromBackend(f, Number(n), ctx);
    },
  }),
  defineCommand<{ handle: Int; 'buf-b64': string | RawString; count?: Int }>({
    name: 'guest-file-write',
    args: { handle: T.int, 'buf-b64': T.str, '*count': T.int },
    returns: GuestFileWrite,
    run: async (args, ctx) => {
      const f = table(ctx).get(args.handle);
      const b64 = args['buf-b64'];
      const src = b64 instanceof RawString ? b64 : Buffer.from(b64, 'latin1');
      const [buf, start, end] = src instanceof RawString ? [src.buf, src.start, src.end] : [src, 0, src.length];
      const count = args.count === undefined ? undefined : typeof args.count === 'bigint' ? -1 : args.count;
      // Non-ASCII text cannot be base64: latin1 would fold it into the alphabet, so reject it here.
      if (typeof b64 === 'string' && /[^\x00-\x7f]/.test(b64)) throw new QgaError('Base64 data contains invalid characters');
      const position = f.position === null ? null : f.append ? fs.fstatSync(f.fd).size : f.position;
      const files = table(ctx);
      files.generation++;
      let written: number;
      try {
        // The request's bytes are not needed after this: the backend may decode in place.
        written = await ctx.backend.writeBase64(f.fd, position, buf, start, end, count === -1 ? Number(args.count) : count, { consume: true });
      } catch (e) {
        if (e instanceof QgaError) throw e;
        throw new QgaError(`failed to write to file: ${strerror(e)}`);
      } finally {
        files.generation++; // a window filled while the write ran may hold the old bytes
      }
      if (f.position !== null) f.position = position! + written;
      return { count: written, eof: false };
    },
  }),
  defineCommand<{ handle: Int; offset: Int; whence: Int | string }>({
    name: 'guest-file-seek',
    args: { handle: T.int, offset: T.int, whence: GuestFileWhence },
    returns: GuestFileSeek,
    run: ({ handle, offset, whence }, ctx) => {
      const f = table(ctx).get(handle);
      const code = typeof whence === 'string' ? ['set', 'cur', 'end'].indexOf(whence) : whence;
      if (code !== 0 && code !== 1 && code !== 2) throw new QgaError(`invalid whence code ${whence}`);
      if (f.position === null) throw new QgaError('failed to seek file: Illegal seek');
      const base = code === 0 ? 0 : code === 1 ? f.position : fs.fstatSync(f.fd).size;
      const target = base + Number(offset);
      if (target < 0 || !Number.isSafeInteger(target)) throw new QgaError('failed to seek file: Invalid argument');
      f.position = target;
      return { position: target, eof: false };
    },
  }),
  defineCommand<{ handle: Int }>({
    name: 'guest-file-flush',
    args: { handle: T.int },
    run: ({ handle }, ctx) => {
      // Writes are unbuffered: they are in the kernel already. Checking the handle is all that is left.
      table(ctx).get(handle);
      return {};
    },
  }),
];

async function readFromBackend(f: OpenFile, n: number, ctx: CommandContext): Promise<RawReply> {
  let r;
  try {
    r = await ctx.backend.readFileReply(f.fd, f.position, n, ctx.idSuffix);
  } catch (e) {
    throw new QgaError(`failed to read file: ${strerror(e)}`);
  }
  if (f.position !== null) f.position += r.count;
  return new RawReply(r.chunks, r.release?.bind(r));
}

/** Fills the window at the handle's position; a read it cannot cover goes to the backend. */
async function readAhead(f: OpenFile, n: number, generation: number, ctx: CommandContext): Promise<RawReply> {
  const at = f.position!;
  let got: number;
  try {
    got = await f.ahead!.fill(f.fd, at, generation, ctx.backend.preadInto);
  } catch (e) {
    throw new QgaError(`failed to read file: ${strerror(e)}`);
  }
  const hit = got >= n && f.position === at ? f.ahead!.take(at, n, generation) : null;
  return hit !== null ? fromWindow(f, hit, ctx) : readFromBackend(f, n, ctx);
}

function fromWindow(f: OpenFile, bytes: Buffer, ctx: CommandContext): RawReply {
  f.position! += bytes.length;
  return new RawReply(fileReadReplyChunks(bytes, false, ctx.idSuffix));
}

/** In schema order: open, close, read, write, seek, flush. */
export const fileCommands = [...openAndClose, ...readWriteSeekFlush];
