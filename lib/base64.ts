/**
 * Base64 as qemu-ga accepts it from hosts: the alphabet A-Z a-z 0-9 + / = plus '\n'
 * (Proxmox wraps lines at 76 characters); anything else is "Base64 data contains invalid
 * characters". Decoding follows glib's g_base64_decode, which qemu-ga uses: newlines are
 * skipped, '=' counts as a zero digit that only drops output bytes at the end of a 4-digit
 * group, and a trailing partial group is dropped ("aGVsbG8" decodes to "hel").
 */
import { QgaError } from './errors';

export const INVALID_BASE64 = 'Base64 data contains invalid characters';

// Searching for one bad character is far faster in V8 than matching an anchored pattern.
const INVALID = /[^A-Za-z0-9+/=\n]/;
const NOT_DIGIT = /[^A-Za-z0-9+/]/;

/** Clean base64: only digits, then at most two '=' at the very end, whole groups. */
function isStrict(text: string): boolean {
  if (text.length % 4 !== 0) return false;
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  if (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  return !NOT_DIGIT.test(end === text.length ? text : text.slice(0, end));
}

/** Decode text (already known to be ASCII) the way qemu-ga does; throws QgaError on junk. */
export function decodeBase64Qga(text: string): Buffer {
  // qemu-ga sees the argument as a C string: it ends at the first NUL.
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul);
  // The common case: clean, padded base64. Node's decoder gives glib's result for it.
  if (isStrict(text)) return Buffer.from(text, 'base64');
  if (INVALID.test(text)) throw new QgaError(INVALID_BASE64);
  const digits = text.includes('\n') ? text.replace(/\n/g, '') : text;
  const eq = digits.indexOf('=');
  if (eq < 0) {
    // No padding: decode whole groups, drop a partial one like glib.
    return Buffer.from(digits.slice(0, digits.length - (digits.length % 4)), 'base64');
  }
  if (isStrict(digits)) return Buffer.from(digits, 'base64');
  return decodeGlibGeneral(digits);
}

const RANK = new Int16Array(256).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => { RANK[c.charCodeAt(0)] = i; });
RANK[0x3d] = 0;

/** glib's decoding step, for the odd inputs with '=' inside the data. */
function decodeGlibGeneral(digits: string): Buffer {
  const out = Buffer.allocUnsafe(Math.floor(digits.length / 4) * 3);
  let n = 0, v = 0, k = 0, last0 = 0, last1 = 0;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    const r = RANK[c];
    if (r < 0) continue;
    last1 = last0; last0 = c;
    v = ((v << 6) | r) & 0xffffff;
    if (++k === 4) {
      out[n++] = v >> 16;
      if (last1 !== 0x3d) out[n++] = (v >> 8) & 0xff;
      if (last0 !== 0x3d) out[n++] = v & 0xff;
      k = 0;
    }
  }
  return out.subarray(0, n);
}
