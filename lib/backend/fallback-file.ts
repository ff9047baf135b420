/**
 * The pure-TypeScript half of the zero-copy file path. It never JSON-encodes the payload:
 * the reply goes out as three pieces (header, the base64 text written as latin1, trailer),
 * and the request's payload is decoded from the received bytes.
 */
import * as fs from 'node:fs';
import { QgaError } from '../errors';
import { decodeBase64Qga } from '../base64';
import { fileReadReplyChunks } from '../protocol/encoder';
import type { FileReadReply } from './types';

/** One pread of up to `length` bytes at `position` into `buf` from 0, on the pool (the read-ahead window). */
export function preadInto(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return read(fd, buf, 0, length, position);
}

function read(fd: number, buf: Buffer, off: number, len: number, pos: number | null): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}
function write(fd: number, buf: Buffer, off: number, len: number, pos: number | null): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

/** One reusable read buffer: file commands run one at a time, so it is rarely contended. */
let spare: Buffer | null = null;

export async function readFileReply(fd: number, position: number | null, count: number, idSuffix: string): Promise<FileReadReply> {
  let buf = spare && spare.length >= count ? spare : Buffer.allocUnsafe(Math.max(count, 65536));
  spare = null;
  try {
    let got = 0;
    let eof = false;
    while (got < count) {
      let n: number;
      try {
        n = await read(fd, buf, got, count - got, position === null ? null : position + got);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN' && got > 0) break;
        throw e;
      }
      if (n === 0) { eof = true; break; }
      got += n;
    }
    return { chunks: fileReadReplyChunks(buf.subarray(0, got), eof, idSuffix), count: got, eof };
  } finally {
    if (buf.length <= 64 * 1024 * 1024) spare = buf;
  }
}

/** Reused decode output, for the same reason as the read buffer: fresh memory is expensive. */
let decodeSpare: Buffer | null = null;
const SLICE = 1 << 20; // a multiple of 4: base64 groups never straddle slices
const DIGIT = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') DIGIT[c.charCodeAt(0)] = 1;

/** True when buf[start, end) holds only base64 digits (a byte loop beats a regex over a string here). */
function allDigits(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (DIGIT[buf[i]] !== 1) return false;
  return true;
}

/**
 * Clean base64 (no newlines, padding only at the end) is decoded slice by slice into a reused
 * buffer, which avoids one huge string; anything else takes the exact glib-compatible path.
 */
function decodePayload(src: Buffer, start: number, end: number): Buffer {
  const len = end - start;
  let digitsEnd = end;
  if (digitsEnd > start && src[digitsEnd - 1] === 0x3d) digitsEnd--;
  if (digitsEnd > start && src[digitsEnd - 1] === 0x3d) digitsEnd--;
  if (len % 4 === 0 && allDigits(src, start, digitsEnd)) {
    let out = decodeSpare && decodeSpare.length >= (len / 4) * 3 ? decodeSpare : Buffer.allocUnsafeSlow((len / 4) * 3);
    decodeSpare = null;
    let o = 0;
    for (let a = start; a < end; a += SLICE) o += out.write(src.toString('latin1', a, Math.min(end, a + SLICE)), o, 'base64');
    return out.subarray(0, o);
  }
  return decodeBase64Qga(src.toString('latin1', start, end));
}

export async function writeBase64(fd: number, position: number | null, src: Buffer, start: number, end: number, count: number | undefined): Promise<number> {
  const data = decodePayload(src, start, end);
  try {
    return await writeDecoded(fd, position, data, count);
  } finally {
    // The decoded bytes are written (or failed): the buffer can serve the next write.
    if (data.buffer.byteLength <= 64 * 1024 * 1024 && data.byteOffset === 0 && data.buffer.byteLength >= 65536) decodeSpare = Buffer.from(data.buffer, 0, data.buffer.byteLength);
  }
}

async function writeDecoded(fd: number, position: number | null, data: Buffer, count: number | undefined): Promise<number> {
  if (count === undefined) count = data.length;
  if (count < 0 || count > data.length) throw new QgaError(`value '${count}' is invalid for argument count`);
  let done = 0;
  while (done < count) {
    const n = await write(fd, data, done, count - done, position === null ? null : position + done);
    done += n;
  }
  return done;
}
