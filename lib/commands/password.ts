/**
 * guest-set-user-password: qemu-ga's base64 and character checks, then the backend (native:
 * crypt(3) + atomic shadow rewrite; fallback: chpasswd). The password never reaches the log.
 */
import { decodeBase64Qga } from '../base64';
import { defineCommand, type CommandDef } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { asString, type RawString } from '../protocol/values';

/** qemu-ga's qbase64_decode(): one implementation for every command (lib/base64.ts). */
export const decodeQgaBase64 = decodeBase64Qga;

/** The clear-text or crypted password as the backend gets it; qemu-ga's checks and texts. */
export function checkPasswordArgs(username: string, passwordB64: string): { user: string; password: string } {
  const decoded = decodeQgaBase64(passwordB64);
  try {
    let raw = decoded;
    const nul = raw.indexOf(0);
    if (nul >= 0) raw = raw.subarray(0, nul); // used as a C string
    if (raw.includes(0x0a)) throw new QgaError('forbidden characters in raw password');
    // NUL cannot reach qemu-ga (its parser refuses \u0000); here it is refused like ':' and '\n'.
    if (/[\n:\0]/.test(username)) throw new QgaError('forbidden characters in username');
    let password: string;
    try {
      password = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      // Backends take a string; bytes that are not UTF-8 could not reach them unchanged.
      throw new QgaError('forbidden characters in raw password');
    }
    return { user: username, password };
  } finally {
    // The clear-text bytes do not outlive this call (the JS string cannot be wiped).
    decoded.fill(0);
  }
}

export const passwordCommands: CommandDef[] = [
  defineCommand<{ username: string | RawString; password: string | RawString; crypted: boolean }>({
    name: 'guest-set-user-password',
    args: { username: T.str, password: T.str, crypted: T.bool },
    run: async (args, ctx) => {
      const { user, password } = checkPasswordArgs(asString(args.username), asString(args.password));
      try {
        await ctx.backend.setUserPassword(user, password, args.crypted);
      } catch (e) {
        if (e instanceof QgaError) throw e;
        // qemu-ga's wording (clients match its prefix), with the reason after it as 10.x does.
        throw new QgaError(`child process has failed to set user password: ${strerror(e)}`);
      }
      return {};
    },
  }),
];
