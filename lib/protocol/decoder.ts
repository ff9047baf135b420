/**
 * Incremental decoder for the qemu-ga request stream, byte-compatible with QEMU's JSON
 * lexer, streamer and parser (qobject/json-*.c since 3.0): the same tokens (including
 * single-quoted strings), the same error texts, the same recovery after a lexical error, the
 * same limits. A 0xFF byte is a lexical error like in qemu-ga, so it discards a half-sent
 * request and yields one error reply: that is how clients flush the channel.
 *
 * Work is split in two passes: the lexer walks every byte once and records token offsets;
 * when a message's nesting closes, its bytes are joined once and the parser builds values
 * from the token list. Long plain ASCII strings are not decoded: they become RawString views
 * of the request bytes (the guest-file-write payload stays bytes end to end).
 */
import { RawString, JsonFloat, type JsonValue } from './values';

/**
 * A decoded request, or the error it produced. `release`, when present, must be called once
 * the request's values are no longer used: its strings live in the decoder's reused buffer.
 */
export type DecodedMessage = { value: JsonValue; release?: () => void } | { error: string };

/** qemu's limits (json-streamer.c). */
export const MAX_TOKEN_SIZE = 64 * 1024 * 1024;
export const MAX_TOKEN_COUNT = 2 * 1024 * 1024;
export const MAX_NESTING = 1024;
/** Strings at least this long with no escapes and only ASCII stay as RawString views. */
const RAW_STRING_MIN = 4096;
/**
 * Messages at least this big are assembled in one reused buffer rather than a fresh one: fresh
 * memory costs a page fault per 4 KiB, which on a VM dominates the cost of a large write.
 */
const POOL_MIN = 16 << 10;
/** A pool buffer bigger than this is dropped after a quiet spell, so idle memory comes back down. */
const POOL_KEEP = 16 << 20;
const POOL_IDLE_MS = 10_000;

const enum Tok { LCurly, RCurly, LSquare, RSquare, Comma, Colon, String, Integer, Float, Keyword }

const enum St {
  Start, Recovery, DqString, DqEscape, SqString, SqEscape,
  Sign, Zero, Digits, Mantissa, MantissaDigits, ExpE, ExpSign, ExpDigits, Keyword,
}

// Byte classes for the hot string loop: 1 = an ordinary string byte (0x20..0xFD, not \ or the quote).
const DQ_PLAIN = new Uint8Array(256);
const SQ_PLAIN = new Uint8Array(256);
for (let b = 0x20; b <= 0xfd; b++) {
  DQ_PLAIN[b] = b !== 0x5c && b !== 0x22 ? 1 : 0;
  SQ_PLAIN[b] = b !== 0x5c && b !== 0x27 ? 1 : 0;
}
/** OR of the bytes the last scanPlain() passed over (bit 7 set: the string has non-ASCII bytes). */
let scanHighBits = 0;
/**
 * The hot loop: long payloads (base64) spend nearly all their time here. It tests four bytes at
 * a time (SWAR bit tricks on aligned 32-bit words: any byte below 0x20, at or above 0x80, equal
 * to the quote or to a backslash stops the word loop) and falls back to the byte table around
 * the bytes that need a closer look. Kept in its own small function so V8 optimises it apart
 * from the big state machine. Returns the index of the first byte that is not plain.
 */
function scanPlain(chunk: Uint8Array, i: number, n: number, plain: Uint8Array): number {
  const quoteWord = plain === DQ_PLAIN ? 0x22222222 : 0x27272727;
  let high = 0;
  for (;;) {
    // One byte at a time up to a 4-byte boundary.
    while (i < n && ((chunk.byteOffset + i) & 3) !== 0) {
      const c = chunk[i];
      if (plain[c] !== 1) { scanHighBits = high; return i; }
      high |= c;
      i++;
    }
    const words = (n - i) >> 2;
    if (words > 0) {
      const w = new Uint32Array(chunk.buffer, chunk.byteOffset + i, words);
      let k = 0;
      for (; k < words; k++) {
        const x = w[k];
        const q = x ^ quoteWord;
        const b = x ^ 0x5c5c5c5c;
        if ((((x - 0x20202020) & ~x) | x | ((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) break;
      }
      i += k * 4;
      if (k < words) {
        // This word holds a byte to look at (a quote, an escape, a control or non-ASCII byte).
        for (const end = i + 4; i < end; i++) {
          const c = chunk[i];
          if (plain[c] !== 1) { scanHighBits = high; return i; }
          high |= c;
        }
        continue;
      }
    }
    while (i < n) {
      const c = chunk[i];
      if (plain[c] !== 1) break;
      high |= c;
      i++;
    }
    scanHighBits = high;
    return i;
  }
}
/**
 * A faster equivalent of scanPlain for long runs (the addon's scanJsonString): the index of the
 * first byte in [from, to) that is not plain for `quote` (or `to`), as -(index + 1) when a
 * byte >= 0x80 came before it. Results must be exactly scanPlain's.
 */
export type StringScanner = (buf: Uint8Array, from: number, to: number, quote: number) => number;
/**
 * The addon is called only with at least SCANNER_MIN bytes left in the chunk, and only after
 * the JS loop went SCANNER_PROBE bytes without the string ending: for the short strings of
 * ordinary (e.g. pipelined) requests the call would cost more than it saves.
 */
const SCANNER_MIN = 512;
const SCANNER_PROBE = 64;

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isLower = (b: number) => b >= 0x61 && b <= 0x7a;
const isWhite = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
/** Bytes that end the lexer's recovery mode: structural characters, control bytes but TAB, 0xFE, 0xFF. */
const endsRecovery = (b: number) =>
  b === 0x5b || b === 0x5d || b === 0x7b || b === 0x7d || b === 0x2c || b === 0x3a ||
  (b < 0x20 && b !== 0x09) || b >= 0xfe;

export class StreamDecoder {
  /** `scanString`: an optional native scan for long strings (the base64 of file writes). */
  constructor(private readonly scanString?: StringScanner) {}

  private state = St.Start;
  /** Bytes of the message being collected (from its first token on). */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Absolute stream offset of chunks[0][0]. */
  private base = 0;
  /** Token list of the current message: kind, start, end (absolute offsets; end exclusive). */
  private tokKinds: number[] = [];
  private tokStarts: number[] = [];
  private tokEnds: number[] = [];
  private tokenStart = 0;
  private tokenBytes = 0;
  private braces = 0;
  private brackets = 0;
  /** Absolute offset of the next byte to be fed. */
  private pos = 0;
  /** Whether the current string token has escapes or non-ASCII bytes (so it needs decoding). */
  private strNeedsDecode = false;
  /** The reused assembly buffer for large messages, and whether a message still uses it. */
  private pool: Buffer | null = null;
  private poolInUse = false;
  private poolTimer: NodeJS.Timeout | null = null;
  private assembledInPool = false;

  /** Forget everything buffered (a new client connected). */
  reset(): void {
    this.state = St.Start;
    this.clearMessage();
  }

  /** Feed bytes; returns the messages and errors completed by them, in order. */
  push(chunk: Buffer): DecodedMessage[] {
    const out: DecodedMessage[] = [];
    const chunkStart = this.pos;
    if (this.collecting()) this.addChunk(chunk);
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      const b = chunk[i];
      switch (this.state) {
        case St.Start: {
          if (isWhite(b)) { i++; continue; }
          const at = chunkStart + i;
          if (!this.collecting()) this.beginCollecting(chunk, chunkStart);
          this.tokenStart = at;
          switch (b) {
            case 0x7b: i++; this.braces++; this.token(Tok.LCurly, at + 1, out); continue;
            case 0x7d: i++; this.braces--; this.token(Tok.RCurly, at + 1, out); continue;
            case 0x5b: i++; this.brackets++; this.token(Tok.LSquare, at + 1, out); continue;
            case 0x5d: i++; this.brackets--; this.token(Tok.RSquare, at + 1, out); continue;
            case 0x2c: i++; this.token(Tok.Comma, at + 1, out); continue;
            case 0x3a: i++; this.token(Tok.Colon, at + 1, out); continue;
            case 0x22: i++; this.state = St.DqString; this.strNeedsDecode = false; continue;
            case 0x27: i++; this.state = St.SqString; this.strNeedsDecode = false; continue;
            case 0x2d: i++; this.state = St.Sign; continue;
            case 0x30: i++; this.state = St.Zero; continue;
          }
          if (isDigit(b)) { i++; this.state = St.Digits; continue; }
          if (isLower(b)) { i++; this.state = St.Keyword; continue; }
          i++; this.lexError(at + 1, out); continue;
        }
        case St.Recovery:
          if (endsRecovery(b)) { this.state = St.Start; continue; }
          i++; continue;
        case St.DqString:
        case St.SqString: {
          // Short strings end within the JS probe; only a long run goes on in the addon.
          const probeEnd = this.scanString !== undefined && n - i >= SCANNER_MIN ? i + SCANNER_PROBE : n;
          i = scanPlain(chunk, i, probeEnd, this.state === St.DqString ? DQ_PLAIN : SQ_PLAIN);
          if (scanHighBits & 0x80) this.strNeedsDecode = true;
          if (i === probeEnd && probeEnd < n) {
            const r = this.scanString!(chunk, i, n, this.state === St.DqString ? 0x22 : 0x27);
            if (r < 0) { i = -r - 1; this.strNeedsDecode = true; } else i = r;
          }
          if (i >= n) continue;
          const c = chunk[i];
          i++;
          if (c === 0x5c) { this.strNeedsDecode = true; this.state = this.state === St.DqString ? St.DqEscape : St.SqEscape; continue; }
          if ((c === 0x22 && this.state === St.DqString) || (c === 0x27 && this.state === St.SqString)) {
            this.state = St.Start;
            this.token(Tok.String, chunkStart + i, out);
            continue;
          }
          this.lexError(chunkStart + i, out);
          continue;
        }
        case St.DqEscape:
        case St.SqEscape:
          i++;
          if (b >= 0x20 && b <= 0xfd) { this.state = this.state === St.DqEscape ? St.DqString : St.SqString; continue; }
          this.lexError(chunkStart + i, out); continue;
        case St.Sign:
          i++;
          if (b === 0x30) { this.state = St.Zero; continue; }
          if (isDigit(b)) { this.state = St.Digits; continue; }
          this.lexError(chunkStart + i, out); continue;
        case St.Zero:
          if (isDigit(b)) { i++; this.lexError(chunkStart + i, out); continue; }
          if (b === 0x2e) { i++; this.state = St.Mantissa; continue; }
          if (b === 0x65 || b === 0x45) { i++; this.state = St.ExpE; continue; }
          this.state = St.Start; this.token(Tok.Integer, chunkStart + i, out); continue;
        case St.Digits:
          if (isDigit(b)) { i++; continue; }
          if (b === 0x2e) { i++; this.state = St.Mantissa; continue; }
          if (b === 0x65 || b === 0x45) { i++; this.state = St.ExpE; continue; }
          this.state = St.Start; this.token(Tok.Integer, chunkStart + i, out); continue;
        case St.Mantissa:
          i++;
          if (isDigit(b)) { this.state = St.MantissaDigits; continue; }
          this.lexError(chunkStart + i, out); continue;
        case St.MantissaDigits:
          if (isDigit(b)) { i++; continue; }
          if (b === 0x65 || b === 0x45) { i++; this.state = St.ExpE; continue; }
          this.state = St.Start; this.token(Tok.Float, chunkStart + i, out); continue;
        case St.ExpE:
          i++;
          if (b === 0x2b || b === 0x2d) { this.state = St.ExpSign; continue; }
          if (isDigit(b)) { this.state = St.ExpDigits; continue; }
          this.lexError(chunkStart + i, out); continue;
        case St.ExpSign:
          i++;
          if (isDigit(b)) { this.state = St.ExpDigits; continue; }
          this.lexError(chunkStart + i, out); continue;
        case St.ExpDigits:
          if (isDigit(b)) { i++; continue; }
          this.state = St.Start; this.token(Tok.Float, chunkStart + i, out); continue;
        case St.Keyword:
          if (isLower(b)) { i++; continue; }
          this.state = St.Start; this.token(Tok.Keyword, chunkStart + i, out); continue;
      }
    }
    this.pos = chunkStart + n;
    // Drop bytes nobody needs any more (between messages, or in recovery).
    if (!this.inToken() && this.tokKinds.length === 0) this.clearMessage();
    // An endless token or message must not eat memory: qemu's size limit, checked per chunk.
    else if (this.collecting() && this.pos - this.base > MAX_TOKEN_SIZE + 65536) this.tooBig(out);
    return out;
  }

  // ---- message collection -------------------------------------------------

  private collecting(): boolean { return this.chunks.length > 0; }

  private inToken(): boolean { return this.state !== St.Start && this.state !== St.Recovery; }

  /** The first token of a message starts in `chunk`: keep the chunk (a view of it later). */
  private beginCollecting(chunk: Buffer, chunkStart: number): void {
    this.chunks = [chunk];
    this.chunkBytes = chunk.length;
    this.base = chunkStart;
  }

  private addChunk(chunk: Buffer): void {
    this.chunkBytes += chunk.length;
    // Reads that land back to back in one buffer (the descriptor-driven socket's slab) stay one
    // view: a message spread over them is then used in place, never copied together.
    const last = this.chunks[this.chunks.length - 1];
    if (last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset) {
      this.chunks[this.chunks.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + chunk.length);
      return;
    }
    this.chunks.push(chunk);
  }

  private clearMessage(): void {
    this.chunks = [];
    this.chunkBytes = 0;
    this.tokKinds.length = 0;
    this.tokStarts.length = 0;
    this.tokEnds.length = 0;
    this.tokenBytes = 0;
    this.braces = 0;
    this.brackets = 0;
  }

  /** The bytes [start, end) of the stream as one Buffer (a view when they sit in one chunk). */
  private bytes(start: number, end: number, forMessage = false): Buffer {
    let off = this.base;
    for (const c of this.chunks) {
      if (start >= off && end <= off + c.length) return c.subarray(start - off, end - off);
      off += c.length;
    }
    let whole: Buffer;
    if (forMessage && !this.poolInUse && this.chunkBytes >= POOL_MIN) {
      if (!this.pool || this.pool.length < this.chunkBytes) this.pool = Buffer.allocUnsafeSlow(this.chunkBytes);
      let at = 0;
      for (const c of this.chunks) at += c.copy(this.pool, at);
      whole = this.pool.subarray(0, this.chunkBytes);
      this.poolInUse = true;
      this.assembledInPool = true;
    } else {
      whole = Buffer.concat(this.chunks, this.chunkBytes);
    }
    this.chunks = [whole];
    return whole.subarray(start - this.base, end - this.base);
  }

  // ---- streamer -----------------------------------------------------------

  /** A message grew past the size limit before completing: drop it and resynchronise. */
  private tooBig(out: DecodedMessage[]): void {
    out.push({ error: 'JSON token size limit exceeded' });
    this.clearMessage();
    this.state = St.Recovery;
  }

  private lexError(end: number, out: DecodedMessage[]): void {
    const text = this.bytes(this.tokenStart, end);
    out.push({ error: `JSON parse error, stray '${decodeLoose(text)}'` });
    this.state = St.Recovery;
    this.clearMessage();
  }

  private token(kind: Tok, end: number, out: DecodedMessage[]): void {
    const len = end - this.tokenStart;
    let error: string | undefined;
    if (this.tokenBytes + len + 1 > MAX_TOKEN_SIZE) error = 'JSON token size limit exceeded';
    else if (this.tokKinds.length + 1 > MAX_TOKEN_COUNT) error = 'JSON token count limit exceeded';
    else if (this.braces + this.brackets > MAX_NESTING) error = 'JSON nesting depth limit exceeded';
    if (error) { out.push({ error }); this.clearMessage(); return; }
    this.tokKinds.push(kind);
    this.tokStarts.push(this.tokenStart);
    this.tokEnds.push(kind === Tok.String && this.strNeedsDecode ? -end : end);
    this.tokenBytes += len;
    if ((this.braces > 0 || this.brackets > 0) && this.braces >= 0 && this.brackets >= 0) return;
    out.push(this.parseMessage());
    this.clearMessage();
  }

  private parseMessage(): DecodedMessage {
    const first = this.tokStarts[0];
    const last = Math.abs(this.tokEnds[this.tokEnds.length - 1]);
    this.assembledInPool = false;
    const buf = this.bytes(first, last, true);
    const pooled = this.assembledInPool;
    const parser = new Parser(buf, first, this.tokKinds, this.tokStarts, this.tokEnds);
    const value = parser.parseValue();
    if (parser.error !== undefined) {
      if (pooled) this.poolInUse = false;
      return { error: `JSON parse error, ${parser.error}` };
    }
    if (!pooled) return { value: value as JsonValue };
    return { value: value as JsonValue, release: () => this.releasePool() };
  }

  private releasePool(): void {
    this.poolInUse = false;
    if (this.poolTimer) clearTimeout(this.poolTimer);
    this.poolTimer = null;
    if (this.pool && this.pool.length > POOL_KEEP) {
      this.poolTimer = setTimeout(() => { if (!this.poolInUse) this.pool = null; this.poolTimer = null; }, POOL_IDLE_MS);
      this.poolTimer.unref();
    }
  }
}

// ---- parser -----------------------------------------------------------------

class Parser {
  error: string | undefined;
  private i = 0;
  constructor(
    private buf: Buffer, private base: number,
    private kinds: number[], private starts: number[], private ends: number[],
  ) {}

  private fail(msg: string): undefined {
    if (this.error === undefined) this.error = msg;
    return undefined;
  }

  private text(k: number): string {
    return this.buf.toString('latin1', this.starts[k] - this.base, Math.abs(this.ends[k]) - this.base);
  }

  parseValue(): JsonValue | undefined {
    if (this.i >= this.kinds.length) return this.fail('premature EOI');
    switch (this.kinds[this.i]) {
      case Tok.LCurly: return this.parseObject();
      case Tok.LSquare: return this.parseArray();
      case Tok.String: return this.parseString(this.i++);
      case Tok.Integer: return parseInteger(this.text(this.i++));
      case Tok.Float: return new JsonFloat(Number(this.text(this.i++)));
      case Tok.Keyword: {
        const word = this.text(this.i++);
        if (word === 'true') return true;
        if (word === 'false') return false;
        if (word === 'null') return null;
        return this.fail(`invalid keyword '${word}'`);
      }
      default: return this.fail('expecting value');
    }
  }

  private parseObject(): JsonValue | undefined {
    this.i++;
    const obj = new Map<string, JsonValue>();
    if (this.i >= this.kinds.length) return this.fail('premature EOI');
    if (this.kinds[this.i] === Tok.RCurly) { this.i++; return obj; }
    if (!this.parsePair(obj)) return undefined;
    for (;;) {
      if (this.i >= this.kinds.length) return this.fail('premature EOI');
      const k = this.kinds[this.i++];
      if (k === Tok.RCurly) return obj;
      if (k !== Tok.Comma) return this.fail('expected separator in dict');
      if (!this.parsePair(obj)) return undefined;
    }
  }

  private parsePair(obj: Map<string, JsonValue>): boolean {
    if (this.i >= this.kinds.length) { this.fail('premature EOI'); return false; }
    const key = this.parseValue();
    if (typeof key !== 'string' && !(key instanceof RawString)) { this.fail('key is not a string in object'); return false; }
    if (this.i >= this.kinds.length) { this.fail('premature EOI'); return false; }
    if (this.kinds[this.i++] !== Tok.Colon) { this.fail('missing : in object pair'); return false; }
    const value = this.parseValue();
    if (value === undefined) { this.fail('Missing value in dict'); return false; }
    const name = key.toString();
    if (obj.has(name)) { this.fail('duplicate key'); return false; }
    obj.set(name, value);
    return true;
  }

  private parseArray(): JsonValue | undefined {
    this.i++;
    const list: JsonValue[] = [];
    if (this.i >= this.kinds.length) return this.fail('premature EOI');
    if (this.kinds[this.i] === Tok.RSquare) { this.i++; return list; }
    for (;;) {
      const v = this.parseValue();
      if (v === undefined) return this.fail('expecting value');
      list.push(v);
      if (this.i >= this.kinds.length) return this.fail('premature EOI');
      const k = this.kinds[this.i++];
      if (k === Tok.RSquare) return list;
      if (k !== Tok.Comma) return this.fail('expected separator in list');
    }
  }

  private parseString(k: number): JsonValue | undefined {
    const start = this.starts[k] - this.base + 1;
    const end = Math.abs(this.ends[k]) - this.base - 1;
    if (this.ends[k] > 0) {
      // Plain ASCII, no escapes: the bytes are the string.
      if (end - start >= RAW_STRING_MIN) return new RawString(this.buf, start, end);
      return this.buf.toString('latin1', start, end);
    }
    const r = decodeStringBody(this.buf, start, end);
    if (typeof r === 'string') return r;
    return this.fail(r.error);
  }
}

/** qemu parses non-negative integers as uint64 and negative ones as int64, else as a double. */
function parseInteger(text: string): JsonValue {
  if (text.length < 16) return Number(text) || 0; // -0 is the integer 0
  const big = BigInt(text);
  if (big >= -(1n << 63n) && big < 1n << 64n) {
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  return new JsonFloat(Number(text));
}

/**
 * Decodes a string token's body with qemu's rules: escapes \" \' \\ \/ \b \f \n \r \t \uXXXX
 * (surrogate pairs joined), modified UTF-8 (C0 80 is U+0000), anything else an error.
 */
export function decodeStringBody(buf: Buffer, start: number, end: number): string | { error: string } {
  let out = '';
  let runStart = start;
  let i = start;
  const flushAscii = () => { if (i > runStart) out += buf.toString('latin1', runStart, i); };
  while (i < end) {
    const b = buf[i];
    if (b < 0x80 && b !== 0x5c) { i++; continue; }
    flushAscii();
    if (b === 0x5c) {
      const e = buf[i + 1];
      switch (e) {
        case 0x22: out += '"'; i += 2; break;
        case 0x27: out += "'"; i += 2; break;
        case 0x5c: out += '\\'; i += 2; break;
        case 0x2f: out += '/'; i += 2; break;
        case 0x62: out += '\b'; i += 2; break;
        case 0x66: out += '\f'; i += 2; break;
        case 0x6e: out += '\n'; i += 2; break;
        case 0x72: out += '\r'; i += 2; break;
        case 0x74: out += '\t'; i += 2; break;
        case 0x75: {
          const beg = i;
          let cp = hex4(buf, i + 2, end);
          i += 6;
          if (cp >= 0xd800 && cp <= 0xdbff && buf[i] === 0x5c && buf[i + 1] === 0x75 && i + 1 < end) {
            const trail = hex4(buf, i + 2, end);
            if (trail >= 0xdc00 && trail <= 0xdfff) {
              cp = 0x10000 + ((cp & 0x3ff) << 10) + (trail & 0x3ff);
              i += 6;
            } else cp = -1;
          }
          if (cp < 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return { error: `${buf.toString('latin1', beg, Math.min(i, end + 1))} is not a valid Unicode character` };
          }
          out += String.fromCodePoint(cp);
          break;
        }
        default: return { error: 'invalid escape sequence in string' };
      }
    } else {
      const r = modUtf8(buf, i, end);
      if (r < 0) return { error: 'invalid UTF-8 sequence in string' };
      out += String.fromCodePoint(r >>> 3);
      i += r & 7;
    }
    runStart = i;
  }
  flushAscii();
  return out;
}

function hex4(buf: Buffer, at: number, end: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    if (at + k >= end) return -1;
    const c = buf[at + k];
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/**
 * One modified-UTF-8 code point at buf[i] (a byte >= 0x80): returns codepoint*8 + length,
 * or -1. Overlong forms, surrogates and values above U+10FFFF are invalid; C0 80 is U+0000.
 */
function modUtf8(buf: Buffer, i: number, end: number): number {
  const b = buf[i];
  let len: number, cp: number, min: number;
  if (b >= 0xc0 && b <= 0xdf) { len = 2; cp = b & 0x1f; min = 0x80; }
  else if (b >= 0xe0 && b <= 0xef) { len = 3; cp = b & 0x0f; min = 0x800; }
  else if (b >= 0xf0 && b <= 0xf7) { len = 4; cp = b & 0x07; min = 0x10000; }
  else return -1;
  if (i + len > end) return -1;
  for (let k = 1; k < len; k++) {
    const c = buf[i + k];
    if ((c & 0xc0) !== 0x80) return -1;
    cp = (cp << 6) | (c & 0x3f);
  }
  if (len === 2 && cp === 0) return len; // C0 80
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  return cp * 8 + len;
}

/** Token text for an error message: bytes as qemu's writer shows them (invalid UTF-8 → U+FFFD, NUL ends it). */
function decodeLoose(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return (nul >= 0 ? bytes.subarray(0, nul) : bytes).toString('utf8');
}
