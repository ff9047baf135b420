/**
 * The pure-TypeScript half of the zero-copy file path. It never JSON-encodes the payload:
 * the reply goes out as three pieces (header, the base64 text written as latin1, trailer),
 * and the request's payload is decoded from the received bytes.
 */
import * as fs from 'node:fs';
import { QgaError } from '../errors';
import { decodeBase64Qga } from '../base64';
import type { FileReadReply } from './types';

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
    const head = `{"return": {"count": ${got}, "buf-b64": "`;
    const body = buf.toString('base64', 0, got);
    const tail = `", "eof": ${eof}}${idSuffix}}\n`;
    return { chunks: [head, body, tail], count: got, eof };
  } finally {
    if (buf.length <= 64 * 1024 * 1024) spare = buf;
  }
}

export async function writeBase64(fd: number, position: number | null, src: Buffer, start: number, end: number, count: number | undefined): Promise<number> {
  const data = decodeBase64Qga(src.toString('latin1', start, end));
  if (count === undefined) count = data.length;
  if (count < 0 || count > data.length) throw new QgaError(`value '${count}' is invalid for argument count`);
  let done = 0;
  while (done < count) {
    const n = await write(fd, data, done, count - done, position === null ? null : position + done);
    done += n;
  }
  return done;
}
