/**
 * Read-ahead for runs of small guest-file-reads on a regular file.
 *
 * qemu-ga reads through stdio, whose buffer answers most of a run of small reads without a
 * system call. node-qga keeps blocking calls off the event loop, so each read is a trip through
 * the thread pool, and for 4 KiB that trip costs several times the pread itself. So a small read
 * fills a 64 KiB window once (on the pool), and the small reads that follow inside it are answered
 * from memory on the event loop.
 *
 * Staleness is bounded: a window serves only within 50 ms of being filled (a host reading in a
 * loop stays well inside that; any later read goes to the file again), and every
 * guest-file-open or guest-file-write on any handle invalidates all windows (`generation`).
 * A read the window cannot cover in full goes to the backend as before, so short reads and
 * end-of-file are answered exactly as without it.
 */
import { preadInto as poolRead } from '../backend/fallback-file';

/** Reads of at most this many bytes use the window. */
export const SMALL_READ_MAX = 16 * 1024;
const WINDOW = 64 * 1024;
const TTL_MS = 50;

/** Counters for tests and diagnostics: windows filled, reads answered from a window. */
export const readAheadStats = { fills: 0, hits: 0 };

/** pread(2) of up to `length` bytes at `position` into `buf` from 0. */
export type WindowReader = (fd: number, buf: Buffer, length: number, position: number) => Promise<number>;

export class ReadAhead {
  private buf: Buffer | null = null;
  private start = 0;
  private len = 0;
  private filledAt = 0;
  private generation = -1;

  /** The bytes at [position, position + count) when the window holds them all and is fresh. */
  take(position: number, count: number, generation: number): Buffer | null {
    if (this.buf === null || generation !== this.generation) return null;
    if (position < this.start || position + count > this.start + this.len) return null;
    if (Date.now() - this.filledAt > TTL_MS) return null;
    readAheadStats.hits++;
    return this.buf.subarray(position - this.start, position - this.start + count);
  }

  /**
   * One pread of the window at `position`, off the event loop (`pread`: the backend's, the I/O
   * lane for the native one; fs.read on the pool by default); resolves with the bytes the window holds.
   */
  async fill(fd: number, position: number, generation: number, pread: WindowReader = poolRead): Promise<number> {
    this.buf ??= Buffer.allocUnsafeSlow(WINDOW);
    this.generation = -1; // unusable until this read has completed
    readAheadStats.fills++;
    const n = await pread(fd, this.buf, WINDOW, position);
    this.start = position;
    this.len = n;
    this.filledAt = Date.now();
    this.generation = generation;
    return n;
  }
}
