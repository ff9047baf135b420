/**
 * JSON writer that produces qemu-ga's exact bytes: `": "` and `", "` separators, pure-ASCII
 * strings with uppercase \uXXXX escapes, %.17g doubles, and object keys in QEMU's QDict
 * hash-bucket order (tdb_hash mod 512, the most recently inserted first within a bucket).
 * Replies never contain a raw 0xFF byte, so the guest-sync-delimited sentinel is unambiguous.
 */
import { RawString, JsonFloat } from './values';

const BUCKETS = 512;
const bucketCache = new Map<string, number>();

/** QEMU's tdb_hash of a key (its UTF-8 bytes), mod the QDict bucket count. */
export function qdictBucket(key: string): number {
  let cached = bucketCache.get(key);
  if (cached !== undefined) return cached;
  const bytes = Buffer.from(key, 'utf8');
  let v = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) v = (v + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0;
  cached = ((Math.imul(1103515243, v) + 12345) >>> 0) % BUCKETS;
  if (bucketCache.size < 10000) bucketCache.set(key, cached);
  return cached;
}

/** Keys in the order QEMU would print a QDict built by inserting them in the given order. */
export function qdictOrder(keys: string[]): string[] {
  if (keys.length < 2) return keys;
  const indexed = keys.map((k, i) => ({ k, i, b: qdictBucket(k) }));
  indexed.sort((x, y) => x.b - y.b || y.i - x.i);
  return indexed.map((e) => e.k);
}

const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

export function quoteString(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    switch (c) {
      case 0x22: out += '\\"'; continue;
      case 0x5c: out += '\\\\'; continue;
      case 0x08: out += '\\b'; continue;
      case 0x0c: out += '\\f'; continue;
      case 0x0a: out += '\\n'; continue;
      case 0x0d: out += '\\r'; continue;
      case 0x09: out += '\\t'; continue;
    }
    if (c >= 0x20 && c < 0x7f) { out += s[i]; continue; }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { out += hex(c) + hex(d); i++; continue; }
    }
    out += c >= 0xd800 && c <= 0xdfff ? '\\uFFFD' : hex(c);
  }
  return out + '"';
}

function hex(c: number): string {
  return '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
}

/** C's printf("%.17g"). */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mant, expText] = x.toExponential(16).split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 17) {
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const fixed = x.toFixed(16 - exp);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

export function writeJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string': return quoteString(v);
    case 'boolean': return v ? 'true' : 'false';
    case 'bigint': return v.toString();
    case 'number': return Number.isInteger(v) && !Object.is(v, -0) ? String(v) : formatDouble(v);
  }
  if (v instanceof RawString) return quoteString(v.toString());
  if (v instanceof JsonFloat) return formatDouble(v.value);
  if (Array.isArray(v)) return v.length ? `[${v.map(writeJson).join(', ')}]` : '[]';
  if (v instanceof Map) {
    const keys = qdictOrder([...v.keys()]);
    return keys.length ? `{${keys.map((k) => `${quoteString(k)}: ${writeJson(v.get(k))}`).join(', ')}}` : '{}';
  }
  const obj = v as Record<string, unknown>;
  const keys = qdictOrder(Object.keys(obj).filter((k) => obj[k] !== undefined));
  return keys.length ? `{${keys.map((k) => `${quoteString(k)}: ${writeJson(obj[k])}`).join(', ')}}` : '{}';
}

/** `, "id": <id>` to splice before a success reply's closing brace (return sorts before id). */
export function idSuffix(id: unknown, hasId: boolean): string {
  return hasId ? `, "id": ${writeJson(id)}` : '';
}

const EMPTY_RETURN = '{"return": {}}\n';

export function successReply(ret: unknown, id: unknown, hasId: boolean): string {
  // The most common reply of all (guest-ping and every command without a return value).
  if (!hasId && ret !== null && typeof ret === 'object' && !Array.isArray(ret) && !(ret instanceof Map) && Object.keys(ret).length === 0) return EMPTY_RETURN;
  // One member needs no QDict ordering: exactly what writeJson prints for {return: ret}, without the Map.
  if (!hasId) return `{"return": ${writeJson(ret)}}\n`;
  const m = new Map<string, unknown>([['return', ret]]);
  m.set('id', id);
  return writeJson(m) + '\n';
}

export function errorReply(errorClass: string, desc: string, id: unknown, hasId: boolean): string {
  const m = new Map<string, unknown>();
  if (hasId) m.set('id', id);
  m.set('error', new Map([['class', errorClass], ['desc', desc]]));
  return writeJson(m) + '\n';
}

/**
 * A guest-file-read reply in three pieces (head, the base64 text, tail), so that the payload is
 * never JSON-encoded; the same bytes as successReply would print (count, buf-b64, eof in QDict
 * order, the id spliced in by `idSuffixText`).
 */
export function fileReadReplyChunks(bytes: Buffer, eof: boolean, idSuffixText: string): string[] {
  return [`{"return": {"count": ${bytes.length}, "buf-b64": "`, bytes.toString('base64'), `", "eof": ${eof}}${idSuffixText}}\n`];
}
