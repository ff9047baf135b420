/**
 * Reading and rewriting a user's ~/.ssh/authorized_keys for the guest-ssh-* commands, with
 * qemu-ga's observable behaviour (texts, line handling, modes and owners) but none of its
 * trust in paths the user controls. The agent runs as root and the user owns ~/.ssh, so:
 * - a `.ssh` or `authorized_keys` that is a symbolic link is refused, not followed;
 * - a `.ssh` owned by anyone but the user or root is refused;
 * - `.ssh` is opened once (O_NOFOLLOW|O_DIRECTORY) and everything inside is reached through
 *   /proc/self/fd/<fd>/..., so swapping `.ssh` for a link after the checks changes nothing;
 * - the file is replaced atomically: a new file (O_EXCL|O_NOFOLLOW, 0600, chowned to the
 *   user) in the same directory, fsync'd, renamed over the old one; the old inode is never
 *   written, so a hard link to another file cannot be used to overwrite it;
 * - the existing file is opened non-blocking and must be a regular file (a FIFO would
 *   otherwise hang the agent).
 * Paths in messages are always the real ones, never the /proc/self/fd aliases.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crypto } from './lazy-builtins';
import { QgaError, errnoError, strerror } from '../errors';
import type { PasswdEntry } from './passwd';

// Node opens every fd close-on-exec itself (fs.constants has no O_CLOEXEC).
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK, O_NOCTTY } = fs.constants as Record<string, number>;
const PROC_FD = '/proc/self/fd';

const q = (p: string) => `\u201C${p}\u201D`;

export function refusal(p: string, why: string): QgaError {
  return new QgaError(`refusing to use '${p}': ${why}`);
}

/** The user's ssh directory, opened (when it exists as a directory) for the checks and for *at-style access. */
export class SshDir {
  readonly dir: string;
  readonly file: string;
  private fd: number | null = null;

  constructor(readonly user: PasswdEntry) {
    this.dir = path.join(user.home, '.ssh');
    this.file = path.join(this.dir, 'authorized_keys');
  }

  /** How to reach a name inside .ssh: through the open fd when there is one. */
  private inside(name: string): string {
    return this.fd !== null && fs.existsSync(PROC_FD) ? `${PROC_FD}/${this.fd}/${name}` : path.join(this.dir, name);
  }

  /** Opens .ssh if it is a directory; refuses links and foreign owners. false: no such directory. */
  open(): boolean {
    if (this.fd !== null) return true;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.dir);
    } catch {
      return false;
    }
    if (st.isSymbolicLink()) throw refusal(this.dir, 'it is a symbolic link');
    if (!st.isDirectory()) return false;
    let fd: number;
    try {
      fd = fs.openSync(this.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw refusal(this.dir, 'it changed while being checked');
      }
      return false;
    }
    const own = fs.fstatSync(fd);
    if (own.uid !== this.user.uid && own.uid !== 0) {
      fs.closeSync(fd);
      throw refusal(this.dir, `it is owned by uid ${own.uid}, not by '${this.user.name}' or root`);
    }
    this.fd = fd;
    return true;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** Whether authorized_keys exists (stat through a link would follow it: links are refused). */
  fileExists(): boolean {
    if (!this.open()) return false;
    try {
      const st = fs.lstatSync(this.inside('authorized_keys'));
      if (st.isSymbolicLink()) throw refusal(this.file, 'it is a symbolic link');
      return true;
    } catch (e) {
      if (e instanceof QgaError) throw e;
      return false;
    }
  }

  /**
   * The file's bytes, or a QgaError with qemu-ga's text (g_file_get_contents' message after
   * "failed to read '<file>': ").
   */
  read(): Buffer {
    const fail = (msg: string) => new QgaError(`failed to read '${this.file}': ${msg}`);
    const opened = this.open();
    const where = opened ? this.inside('authorized_keys') : this.file;
    let fd: number;
    try {
      fd = fs.openSync(where, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw refusal(this.file, 'it is a symbolic link');
      throw fail(`Failed to open file ${q(this.file)}: ${strerror(e)}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw fail(`Error reading file ${q(this.file)}: Is a directory`);
      if (!st.isFile()) throw refusal(this.file, 'it is not a regular file');
      return fs.readFileSync(fd);
    } catch (e) {
      if (e instanceof QgaError) throw e;
      throw fail(`Error reading file ${q(this.file)}: ${strerror(e)}`);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Creates .ssh (0700, owned by the user) unless it is already a directory. */
  ensureDir(): void {
    if (this.open()) return;
    try {
      fs.mkdirSync(this.dir, 0o700);
    } catch (e) {
      throw new QgaError(`failed to create directory '${this.dir}': ${strerror(e)}`);
    }
    if (!this.open()) throw new QgaError(`failed to create directory '${this.dir}': ${strerror(errnoError('ENOENT'))}`);
    try {
      fs.fchownSync(this.fd!, this.user.uid, this.user.gid);
    } catch (e) {
      throw new QgaError(`failed to set ownership of directory '${this.dir}': ${strerror(e)}`);
    }
    try {
      fs.fchmodSync(this.fd!, 0o700); // whatever the umask was
    } catch (e) {
      throw new QgaError(`failed to set permissions of '${this.dir}': ${strerror(e)}`);
    }
  }

  /** Replaces authorized_keys with `content`, owned by the user, mode 0600. */
  write(content: Buffer): void {
    if (!this.open()) {
      // Gone since it was checked: report it as the write would have failed.
      throw new QgaError(`failed to write to '${this.file}': Failed to create file ${q(`${this.file}.XXXXXX`)}: No such file or directory`);
    }
    const suffix = crypto().randomBytes(6).toString('base64').replace(/[+/]/g, 'X').slice(0, 6);
    const tmpName = `authorized_keys.${suffix}`;
    const tmpReal = path.join(this.dir, tmpName);
    const tmp = this.inside(tmpName);
    let fd: number;
    try {
      fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch (e) {
      throw new QgaError(`failed to write to '${this.file}': Failed to create file ${q(tmpReal)}: ${strerror(e)}`);
    }
    let done = false;
    try {
      try {
        let off = 0;
        while (off < content.length) off += fs.writeSync(fd, content, off);
        fs.fsyncSync(fd);
      } catch (e) {
        throw new QgaError(`failed to write to '${this.file}': Failed to write file ${q(tmpReal)}: ${strerror(e)}`);
      }
      try {
        fs.fchownSync(fd, this.user.uid, this.user.gid);
      } catch (e) {
        // qemu-ga's text (it says "directory" for the file too).
        throw new QgaError(`failed to set ownership of directory '${this.file}': ${strerror(e)}`);
      }
      try {
        fs.fchmodSync(fd, 0o600);
      } catch (e) {
        throw new QgaError(`failed to set permissions of '${this.file}': ${strerror(e)}`);
      }
      fs.closeSync(fd);
      fd = -1;
      const target = this.inside('authorized_keys');
      try {
        if (fs.lstatSync(target).isSymbolicLink()) throw refusal(this.file, 'it is a symbolic link');
      } catch (e) {
        if (e instanceof QgaError) throw e;
      }
      try {
        fs.renameSync(tmp, target);
      } catch (e) {
        throw new QgaError(`failed to write to '${this.file}': Failed to rename file ${q(tmpReal)} to ${q(this.file)}: g_rename() failed: ${strerror(e)}`);
      }
      done = true;
    } finally {
      if (fd >= 0) fs.closeSync(fd);
      if (!done) { try { fs.unlinkSync(tmp); } catch { /* not created */ } }
    }
  }
}

/** g_strsplit(contents, "\n", -1): an empty file has no lines at all. */
export function splitLines(content: Buffer): string[] {
  if (content.length === 0) return [];
  return content.toString('latin1').split('\n');
}

/** g_strjoinv("\n", lines): no trailing newline beyond what an empty last element gives. */
export function joinLines(lines: readonly string[]): Buffer {
  return Buffer.from(lines.join('\n'), 'latin1');
}

/** g_strstrip: ASCII whitespace only (a latin1 0xA0 byte is not space to C's isspace). */
export function stripAscii(s: string): string {
  return s.replace(/^[ \t\n\v\f\r]+/, '').replace(/[ \t\n\v\f\r]+$/, '');
}

/** JSON key text → the file's byte representation (latin1 string of its UTF-8 bytes). */
export const keyBytes = (k: string): string => Buffer.from(k, 'utf8').toString('latin1');
/** A file line (latin1 bytes) → the reply's text. */
export const lineText = (l: string): string => Buffer.from(l, 'latin1').toString('utf8');
