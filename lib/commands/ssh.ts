/**
 * guest-ssh-get/add/remove-authorized-keys (qemu-ga 5.2, POSIX). Keys are checked before the
 * user is looked up; the file handling (and its refusals of symlink tricks) is in
 * platform/authorized-keys.
 */
import { defineCommand } from './define';
import { T } from '../schema';
import { QgaError } from '../errors';
import { asString, type RawString } from '../protocol/values';
import { lookupUser, type PasswdEntry } from '../platform/passwd';
import { SshDir, joinLines, keyBytes, lineText, splitLines, stripAscii } from '../platform/authorized-keys';

const GuestAuthorizedKeys = T.struct('GuestAuthorizedKeys', { keys: T.list(T.str) });

type Str = string | RawString;

/** qemu-ga works on C strings: an argument ends at its first NUL. */
const cString = (s: Str): string => {
  const t = asString(s);
  const nul = t.indexOf('\0');
  return nul < 0 ? t : t.slice(0, nul);
};

/** qemu-ga's only sanity check: no comment, no newline (an empty key passes, as observed on 7.2). */
export function checkKeys(keys: readonly string[]): void {
  for (const k of keys) {
    if (k.startsWith('#') || k.includes('\n')) throw new QgaError(`invalid OpenSSH public key: '${k}'`);
  }
}

async function user(name: string, passwdFile: string): Promise<PasswdEntry> {
  const p = await lookupUser(name, passwdFile);
  // glib reports errno, which getpwnam leaves at 0 for a missing user.
  if (!p) throw new QgaError(`failed to lookup user '${name}': Success`);
  return p;
}

function withDir<R>(p: PasswdEntry, fn: (d: SshDir) => R): R {
  const d = new SshDir(p);
  try {
    return fn(d);
  } finally {
    d.close();
  }
}

/** The keys of a file: trimmed, no blanks or comments, last line first (qemu-ga prepends). */
export function keysOf(content: Buffer): string[] {
  const keys: string[] = [];
  for (const line of splitLines(content)) {
    const k = stripAscii(line);
    if (k === '' || k.startsWith('#')) continue;
    keys.unshift(lineText(k));
  }
  return keys;
}

/** The lines after adding `keys` (each only if not already an exact line). */
export function addedLines(existing: readonly string[], keys: readonly string[]): string[] {
  const lines = [...existing];
  const seen = new Set(lines);
  for (const k of keys.map(keyBytes)) {
    if (seen.has(k)) continue;
    seen.add(k);
    lines.push(k);
  }
  return lines;
}

/** The lines left after dropping every line equal to one of `keys`. */
export function removedLines(existing: readonly string[], keys: readonly string[]): string[] {
  const drop = new Set(keys.map(keyBytes));
  return existing.filter((l) => !drop.has(l));
}

export const sshCommands = [
  defineCommand<{ username: Str }>({
    name: 'guest-ssh-get-authorized-keys',
    args: { username: T.str },
    returns: GuestAuthorizedKeys,
    run: async (args, ctx) => {
      const p = await user(cString(args.username), ctx.config.passwdFile);
      return { keys: withDir(p, (d) => keysOf(d.read())) };
    },
  }),
  defineCommand<{ username: Str; keys: Str[]; reset?: boolean }>({
    name: 'guest-ssh-add-authorized-keys',
    args: { username: T.str, keys: T.list(T.str), '*reset': T.bool },
    run: async (args, ctx) => {
      const keys = args.keys.map(cString);
      checkKeys(keys);
      const p = await user(cString(args.username), ctx.config.passwdFile);
      withDir(p, (d) => {
        let existing: string[] | undefined;
        if (!args.reset) {
          try {
            existing = splitLines(d.read());
          } catch (e) {
            // Unreadable counts as absent (qemu-ga), but a refusal stays a refusal.
            if ((e as QgaError).desc?.startsWith('refusing')) throw e;
          }
        }
        if (existing === undefined) d.ensureDir();
        d.write(joinLines(addedLines(existing ?? [], keys)));
      });
      return {};
    },
  }),
  defineCommand<{ username: Str; keys: Str[] }>({
    name: 'guest-ssh-remove-authorized-keys',
    args: { username: T.str, keys: T.list(T.str) },
    run: async (args, ctx) => {
      const keys = args.keys.map(cString);
      checkKeys(keys);
      const p = await user(cString(args.username), ctx.config.passwdFile);
      withDir(p, (d) => {
        if (!d.fileExists()) return; // nothing to remove from
        d.write(joinLines(removedLines(splitLines(d.read()), keys)));
      });
      return {};
    },
  }),
];
