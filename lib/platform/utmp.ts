import * as fs from 'node:fs';

/**
 * The utmp file (glibc's struct utmp/utmpx on x86_64 and the other 64-bit Linux ABIs, which
 * keep 32-bit times for compatibility), read as whole 384-byte records like getutxent().
 * Layout: ut_type i16 @0, ut_pid i32 @4, ut_line[32] @8, ut_id[4] @40, ut_user[32] @44,
 * ut_host[256] @76, ut_exit @332, ut_session i32 @336, ut_tv {i32 sec, i32 usec} @340,
 * ut_addr_v6 @348, unused @364.
 */

export const UTMP_RECORD_SIZE = 384;
export const USER_PROCESS = 7;
export const DEFAULT_UTMP_FILE = '/var/run/utmp';

const OFF_TYPE = 0;
const OFF_PID = 4;
const OFF_LINE = 8;
const OFF_USER = 44;
const OFF_HOST = 76;
const OFF_TV_SEC = 340;
const OFF_TV_USEC = 344;

export interface UtmpRecord {
  type: number;
  pid: number;
  line: string;
  user: string;
  host: string;
  tvSec: number;
  tvUsec: number;
}

/** A C string inside a fixed field: up to the first NUL, or the field's end. */
function cString(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
}

export function parseUtmp(buf: Buffer): UtmpRecord[] {
  const out: UtmpRecord[] = [];
  // A trailing partial record is ignored, as getutxent() does.
  for (let at = 0; at + UTMP_RECORD_SIZE <= buf.length; at += UTMP_RECORD_SIZE) {
    out.push({
      type: buf.readInt16LE(at + OFF_TYPE),
      pid: buf.readInt32LE(at + OFF_PID),
      line: cString(buf, at + OFF_LINE, at + OFF_LINE + 32),
      // qemu-ga copies ut_user as a C string: a full 32-byte name runs on into ut_host.
      user: cString(buf, at + OFF_USER, at + OFF_HOST + 256),
      host: cString(buf, at + OFF_HOST, at + OFF_HOST + 256),
      tvSec: buf.readInt32LE(at + OFF_TV_SEC),
      tvUsec: buf.readInt32LE(at + OFF_TV_USEC),
    });
  }
  return out;
}

/** The records of a utmp file; none when it cannot be read (getutxent() just returns NULL). */
export function readUtmp(file: string): UtmpRecord[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return [];
  }
  return parseUtmp(buf);
}

/** One record in the on-disk layout (for fixtures). */
export function encodeUtmpRecord(r: Partial<UtmpRecord> & { type: number }): Buffer {
  const buf = Buffer.alloc(UTMP_RECORD_SIZE);
  buf.writeInt16LE(r.type, OFF_TYPE);
  buf.writeInt32LE(r.pid ?? 0, OFF_PID);
  if (r.line) buf.write(r.line, OFF_LINE, 32, 'utf8');
  if (r.user) buf.write(r.user, OFF_USER, 32, 'utf8');
  if (r.host) buf.write(r.host, OFF_HOST, 256, 'utf8');
  buf.writeInt32LE(r.tvSec ?? 0, OFF_TV_SEC);
  buf.writeInt32LE(r.tvUsec ?? 0, OFF_TV_USEC);
  return buf;
}

export interface LoggedInUser {
  user: string;
  /** Seconds since the epoch, with the microseconds as a fraction. */
  loginTime: number;
}

/**
 * qemu-ga's guest-get-users: USER_PROCESS records, one entry per user in order of first
 * appearance, keeping the earliest login time.
 */
export function loggedInUsers(records: UtmpRecord[]): LoggedInUser[] {
  const byName = new Map<string, LoggedInUser>();
  const out: LoggedInUser[] = [];
  for (const r of records) {
    if (r.type !== USER_PROCESS) continue;
    const loginTime = r.tvSec + r.tvUsec / 1e6;
    const seen = byName.get(r.user);
    if (seen) {
      if (loginTime < seen.loginTime) seen.loginTime = loginTime;
      continue;
    }
    const entry = { user: r.user, loginTime };
    byName.set(r.user, entry);
    out.push(entry);
  }
  return out;
}
