import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The local time zone the way glib's g_time_zone_new_local() finds it (qemu-ga's
 * guest-get-timezone): TZ from the environment (a leading ':' ignored) naming a TZif file
 * under TZDIR or /usr/share/zoneinfo, or an absolute path, or else a POSIX TZ rule string;
 * without TZ, /etc/localtime; UTC when nothing loads. The zone in effect at a UTC instant
 * comes from the TZif transitions, and past the last one from the file's POSIX footer rule.
 */

export interface ZoneAtInstant {
  /** The abbreviation (CET, EDT, +0530 …). */
  abbreviation: string;
  /** Seconds east of UTC. */
  offset: number;
}

interface LocalTimeType { utoff: number; isDst: boolean; abbreviation: string }

interface PosixRule {
  std: LocalTimeType;
  dst?: LocalTimeType;
  start?: RuleDate;
  end?: RuleDate;
}

type RuleDate =
  | { kind: 'J'; day: number; time: number }    // Jn: 1..365, February 29 never counted
  | { kind: 'n'; day: number; time: number }    // n: 0..365, leap days counted
  | { kind: 'M'; month: number; week: number; weekday: number; time: number };

interface Zone {
  transitions: number[];     // UTC seconds, ascending
  transitionTypes: number[]; // index into types for each transition
  types: LocalTimeType[];
  footer?: PosixRule;
}

const UTC_ZONE: ZoneAtInstant = { abbreviation: 'UTC', offset: 0 };

export function localZoneAt(nowSeconds: number, env: NodeJS.ProcessEnv = process.env): ZoneAtInstant {
  const zone = loadLocalZone(env);
  return zone ? zoneAt(zone, nowSeconds) : UTC_ZONE;
}

function loadLocalZone(env: NodeJS.ProcessEnv): Zone | null {
  let id = env.TZ;
  if (id === undefined) return loadTzif('/etc/localtime');
  if (id.startsWith(':')) id = id.slice(1);
  if (id === '') return loadTzif('/etc/localtime');
  const file = path.isAbsolute(id) ? id : path.join(env.TZDIR || '/usr/share/zoneinfo', id);
  const fromFile = loadTzif(file);
  if (fromFile) return fromFile;
  const rule = parsePosixTz(id);
  return rule ? { transitions: [], transitionTypes: [], types: [rule.std], footer: rule } : null;
}

/** A TZif file (RFC 8536), using the 64-bit data of version 2+ files. */
export function loadTzif(file: string): Zone | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return null;
  }
  try {
    return parseTzif(buf);
  } catch {
    return null;
  }
}

export function parseTzif(buf: Buffer): Zone | null {
  if (buf.length < 44 || buf.toString('latin1', 0, 4) !== 'TZif') return null;
  const version = buf[4];
  const counts = (at: number) => ({
    isut: buf.readUInt32BE(at + 20), isstd: buf.readUInt32BE(at + 24), leap: buf.readUInt32BE(at + 28),
    time: buf.readUInt32BE(at + 32), type: buf.readUInt32BE(at + 36), char: buf.readUInt32BE(at + 40),
  });
  let header = 0;
  let c = counts(0);
  let timeSize = 4;
  if (version >= 0x32) {
    // Skip the 32-bit block to the 64-bit header.
    header = 44 + c.time * 5 + c.type * 6 + c.char + c.leap * 8 + c.isstd + c.isut;
    c = counts(header);
    timeSize = 8;
  }
  let at = header + 44;
  const transitions: number[] = [];
  for (let i = 0; i < c.time; i++, at += timeSize) {
    transitions.push(timeSize === 8 ? Number(buf.readBigInt64BE(at)) : buf.readInt32BE(at));
  }
  const transitionTypes: number[] = [];
  for (let i = 0; i < c.time; i++) transitionTypes.push(buf[at++]);
  const raw: Array<{ utoff: number; isDst: boolean; idx: number }> = [];
  for (let i = 0; i < c.type; i++, at += 6) raw.push({ utoff: buf.readInt32BE(at), isDst: buf[at + 4] !== 0, idx: buf[at + 5] });
  const chars = buf.subarray(at, at + c.char);
  at += c.char + c.leap * (timeSize + 4) + c.isstd + c.isut;
  const types = raw.map((t) => {
    const end = chars.indexOf(0, t.idx);
    return { utoff: t.utoff, isDst: t.isDst, abbreviation: chars.toString('latin1', t.idx, end >= 0 ? end : chars.length) };
  });
  let footer: PosixRule | undefined;
  if (timeSize === 8 && buf[at] === 0x0a) {
    const nl = buf.indexOf(0x0a, at + 1);
    if (nl > at + 1) footer = parsePosixTz(buf.toString('latin1', at + 1, nl)) ?? undefined;
  }
  if (types.length === 0) return null;
  return { transitions, transitionTypes, types, footer };
}

export function zoneAt(zone: Zone, t: number): ZoneAtInstant {
  const { transitions } = zone;
  let type: LocalTimeType;
  if (transitions.length === 0 || t < transitions[0]) {
    if (transitions.length === 0 && zone.footer) return ruleAt(zone.footer, t);
    // Before the first transition glib uses the first standard-time type.
    type = zone.types.find((x) => !x.isDst) ?? zone.types[0];
  } else if (t >= transitions[transitions.length - 1] && zone.footer?.dst) {
    // Past the table: the footer rule (glib extends the table from it).
    return ruleAt(zone.footer, t);
  } else {
    let lo = 0, hi = transitions.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (transitions[mid] <= t) lo = mid; else hi = mid - 1;
    }
    type = zone.types[zone.transitionTypes[lo]] ?? zone.types[0];
  }
  return { abbreviation: type.abbreviation, offset: type.utoff };
}

function ruleAt(rule: PosixRule, t: number): ZoneAtInstant {
  const pick = (x: LocalTimeType) => ({ abbreviation: x.abbreviation, offset: x.utoff });
  if (!rule.dst) return pick(rule.std);
  const start = rule.start ?? { kind: 'M', month: 3, week: 2, weekday: 0, time: 7200 };
  const end = rule.end ?? { kind: 'M', month: 11, week: 1, weekday: 0, time: 7200 };
  const year = new Date((t + rule.std.utoff) * 1000).getUTCFullYear();
  // Start is given in standard local time, end in daylight local time.
  const dstStart = ruleDateSeconds(year, start) - rule.std.utoff;
  const dstEnd = ruleDateSeconds(year, end) - rule.dst.utoff;
  const inDst = dstStart < dstEnd ? t >= dstStart && t < dstEnd : !(t >= dstEnd && t < dstStart);
  return pick(inDst ? rule.dst : rule.std);
}

/** Local seconds since the epoch of a rule date in a year (as if local time were UTC). */
function ruleDateSeconds(year: number, d: RuleDate): number {
  const jan1 = Date.UTC(year, 0, 1) / 1000;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  let day: number;
  if (d.kind === 'J') day = d.day - 1 + (leap && d.day >= 60 ? 1 : 0);
  else if (d.kind === 'n') day = d.day;
  else {
    const first = Date.UTC(year, d.month - 1, 1) / 1000;
    const firstWeekday = new Date(first * 1000).getUTCDay();
    let dom = 1 + ((d.weekday - firstWeekday + 7) % 7) + (d.week - 1) * 7;
    const daysInMonth = new Date(Date.UTC(year, d.month, 0)).getUTCDate();
    while (dom > daysInMonth) dom -= 7; // week 5 means the last such weekday
    return first + (dom - 1) * 86400 + d.time;
  }
  return jan1 + day * 86400 + d.time;
}

/** A POSIX TZ string: std offset [dst [offset] [,start[/time],end[/time]]]. */
export function parsePosixTz(s: string): PosixRule | null {
  let i = 0;
  const name = (): string | null => {
    if (s[i] === '<') {
      const close = s.indexOf('>', i);
      if (close < 0) return null;
      const n = s.slice(i + 1, close);
      i = close + 1;
      return n.length >= 3 ? n : null;
    }
    const m = /^[A-Za-z]{3,}/.exec(s.slice(i));
    if (!m) return null;
    i += m[0].length;
    return m[0];
  };
  const hms = (allowSign: boolean): number | null => {
    const m = (allowSign ? /^([+-]?)(\d{1,3})(?::(\d{1,2})(?::(\d{1,2}))?)?/ : /^()(\d{1,3})(?::(\d{1,2})(?::(\d{1,2}))?)?/).exec(s.slice(i));
    if (!m) return null;
    i += m[0].length;
    const v = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
    return m[1] === '-' ? 0 - v : v;
  };
  const date = (): RuleDate | null => {
    let d: RuleDate;
    let m: RegExpExecArray | null;
    if ((m = /^M(\d{1,2})\.(\d)\.(\d)/.exec(s.slice(i)))) d = { kind: 'M', month: +m[1], week: +m[2], weekday: +m[3], time: 7200 };
    else if ((m = /^J(\d{1,3})/.exec(s.slice(i)))) d = { kind: 'J', day: +m[1], time: 7200 };
    else if ((m = /^(\d{1,3})/.exec(s.slice(i)))) d = { kind: 'n', day: +m[1], time: 7200 };
    else return null;
    i += m[0].length;
    if (s[i] === '/') {
      i++;
      const t = hms(true);
      if (t === null) return null;
      d.time = t;
    }
    return d;
  };

  const stdName = name();
  if (stdName === null) return null;
  const stdOff = hms(true);
  if (stdOff === null) return null;
  const rule: PosixRule = { std: { abbreviation: stdName, utoff: 0 - stdOff, isDst: false } };
  if (i === s.length) return rule;
  const dstName = name();
  if (dstName === null) return null;
  let dstUtoff = 3600 - stdOff;
  if (i < s.length && s[i] !== ',') {
    const off = hms(true);
    if (off === null) return null;
    dstUtoff = 0 - off;
  }
  rule.dst = { abbreviation: dstName, utoff: dstUtoff, isDst: true };
  if (s[i] === ',') {
    i++;
    const start = date();
    if (!start || s[i] !== ',') return null;
    i++;
    const end = date();
    if (!end) return null;
    rule.start = start;
    rule.end = end;
  }
  return i === s.length ? rule : null;
}
