import * as fs from 'node:fs';

/**
 * os-release as qemu-ga reads it for guest-get-osinfo: the file named by QGA_OS_RELEASE,
 * else /etc/os-release, else /usr/lib/os-release; parsed as a glib key file with a
 * "[os-release]" group line put in front, so anything glib would reject as a key file
 * makes every os-release field disappear. Values are then cleaned the way qemu-ga does.
 */

export const OS_RELEASE_FIELDS = [
  ['id', 'ID'], ['name', 'NAME'], ['pretty-name', 'PRETTY_NAME'], ['version', 'VERSION'],
  ['version-id', 'VERSION_ID'], ['variant', 'VARIANT'], ['variant-id', 'VARIANT_ID'],
] as const;

export type OsReleaseMember = (typeof OS_RELEASE_FIELDS)[number][0];

const GROUP = 'os-release';

/** The files tried, in order; env is the agent's environment (QGA_OS_RELEASE). */
export function osReleaseCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.QGA_OS_RELEASE;
  return override !== undefined ? [override] : ['/etc/os-release', '/usr/lib/os-release'];
}

/** The raw key/value pairs of the os-release group, or null when glib would not load the file. */
export function parseOsRelease(content: Buffer): Map<string, string> | null {
  // glib validates and copies the file as a C string: a NUL ends it.
  const nul = content.indexOf(0);
  const bytes = nul >= 0 ? content.subarray(0, nul) : content;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null; // not UTF-8: qemu-ga logs and reports no os-release fields
  }
  const groups = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  groups.set(GROUP, current);
  let currentName = GROUP;

  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const start = line.replace(/^[ \t\n\v\f\r]+/, '');
    if (start === '' || start.startsWith('#')) continue;
    const group = start.startsWith('[') ? groupName(start) : undefined;
    if (group === null) return null; // a group line with an invalid name
    if (group !== undefined) {
      currentName = group;
      current = groups.get(group) ?? new Map();
      groups.set(group, current);
      continue;
    }
    if (!isKeyValue(start)) return null; // "not a key-value pair, group, or comment"
    const eq = start.indexOf('=');
    const key = start.slice(0, eq).replace(/[ \t\n\v\f\r]+$/, '');
    if (!isKeyName(key)) return null;
    const value = start.slice(eq + 1).replace(/^[ \t\n\v\f\r]+/, '');
    if (currentName === GROUP && key === 'Encoding' && value.toUpperCase() !== 'UTF-8') return null;
    current.set(key, value); // a repeated key: the last one wins
  }
  return groups.get(GROUP)!;
}

/** undefined: not a group line; null: a group line glib rejects; else the group's name. */
function groupName(line: string): string | null | undefined {
  const close = line.indexOf(']');
  if (close < 0) return undefined;
  if (!/^[ \t]*$/.test(line.slice(close + 1))) return undefined;
  const name = line.slice(1, close);
  // glib: non-empty, no brackets, no control characters.
  if (name === '' || /[[\]\x00-\x1f\x7f]/.test(name)) return null;
  return name;
}

function isKeyValue(line: string): boolean {
  const eq = line.indexOf('=');
  return eq > 0;
}

/** glib's key names: anything without = [ ], optionally followed by one [locale] suffix. */
function isKeyName(key: string): boolean {
  return /^[^=[\]]+(\[[-_.@A-Za-z0-9]*\])?$/.test(key);
}

/**
 * qemu-ga's clean-up of a raw value. A value not starting with a double quote is cut at
 * the first space or ';' (single-quoted values too, keeping their quotes: an upstream
 * quirk). A double-quoted value is unescaped in place (\$ \' \" \\ \` lose their
 * backslash, any other backslash stays) up to the closing quote, where the string ends.
 * Without a closing quote nothing terminates the shifted copy, so the original bytes
 * after it remain (`"abc` gives `abcc`): done on bytes here to keep that exactly.
 */
export function cleanOsReleaseValue(raw: string): string {
  if (raw[0] !== '"') {
    const cut = raw.search(/[ ;]/);
    return cut >= 0 ? raw.slice(0, cut) : raw;
  }
  const buf = Buffer.from(raw, 'utf8');
  const ESCAPED = new Set([0x24, 0x27, 0x22, 0x5c, 0x60]); // $ ' " \ `
  let dst = 0;
  let p = 1;
  while (p < buf.length) {
    if (buf[p] === 0x5c) {
      p++;
      if (!(p < buf.length && ESCAPED.has(buf[p]))) p--; // keep the backslash itself
    } else if (buf[p] === 0x22) {
      return buf.toString('utf8', 0, dst);
    }
    buf[dst++] = buf[p++];
  }
  return buf.toString('utf8');
}

/** The os-release members of GuestOSInfo present in the first loadable candidate file. */
export function readOsReleaseFields(candidates: string[]): Partial<Record<OsReleaseMember, string>> {
  let pairs: Map<string, string> | null = null;
  for (const file of candidates) {
    let content: Buffer;
    try {
      content = fs.readFileSync(file);
    } catch {
      continue; // qemu-ga: "failed to read '…'", try the next file
    }
    pairs = parseOsRelease(content);
    if (pairs) break;
  }
  const out: Partial<Record<OsReleaseMember, string>> = {};
  if (!pairs) return out;
  for (const [member, key] of OS_RELEASE_FIELDS) {
    const raw = pairs.get(key);
    if (raw !== undefined) out[member] = cleanOsReleaseValue(raw);
  }
  return out;
}
