/**
 * guest-set-user-password: qemu-ga's base64 and character checks, then the backend (native:
 * crypt(3) + atomic shadow rewrite; fallback: chpasswd). The password never reaches the log.
 */
import { defineCommand, type CommandDef } from './define';
import { T } from '../schema';
import { QgaError, strerror } from '../errors';
import { asString, type RawString } from '../protocol/values';

const B64_RANK = (() => {
  const rank = new Int16Array(256).fill(-1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < alphabet.length; i++) rank[alphabet.charCodeAt(i)] = i;
  rank['='.charCodeAt(0)] = 0; // glib treats '=' as a zero digit and drops bytes after it
  return rank;
})();

/**
 * qemu-ga's qbase64_decode(): the text is a C string (cut at NUL), only `A-Za-z0-9+/=` and `\n`
 * are allowed, then glib's lenient decoding (missing padding fine, a partial group dropped).
 */
export function decodeQgaBase64(text: string): Buffer {
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul);
  if (!/^[A-Za-z0-9+/=\n]*$/.test(text)) throw new QgaError('Base64 data contains invalid characters');
  const out: number[] = [];
  let v = 0, n = 0, last0 = 0, last1 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const r = B64_RANK[c];
    if (r < 0) continue; // newline
    last1 = last0; last0 = c;
    v = ((v << 6) | r) & 0xffffff;
    if (++n === 4) {
      out.push(v >> 16);
      if (last1 !== 0x3d) out.push((v >> 8) & 0xff);
      if (last0 !== 0x3d) out.push(v & 0xff);
      n = 0;
    }
  }
  return Buffer.from(out);
}

/** The clear-text or crypted password as the backend gets it; qemu-ga's checks and texts. */
export function checkPasswordArgs(username: string, passwordB64: string): { user: string; password: string } {
  let raw = decodeQgaBase64(passwordB64);
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
