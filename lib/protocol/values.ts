/**
 * Values the protocol parser produces. JSON integers that do not fit a JS number exactly are
 * bigints (qemu-ga keeps int64/uint64 exact, e.g. guest-get-time's nanoseconds).
 * Long strings without escapes stay as raw byte ranges (RawString), so a 64 MiB `buf-b64`
 * never becomes a JavaScript string.
 */
export type JsonValue = null | boolean | number | bigint | string | RawString | JsonFloat | JsonValue[] | JsonMap | JsonObject;
/** Objects parsed from the wire are Maps: insertion order is kept exactly (QDict order depends on it). */
export type JsonMap = Map<string, JsonValue>;
/** Objects built by handlers for replies. */
export interface JsonObject { [key: string]: JsonValue | undefined }

/** A string member kept as bytes of the received request: ASCII-safe, no escapes inside. */
export class RawString {
  constructor(readonly buf: Buffer, readonly start: number, readonly end: number) {}
  get length(): number { return this.end - this.start; }
  /** The bytes between the quotes. */
  bytes(): Buffer { return this.buf.subarray(this.start, this.end); }
  toString(): string { return this.buf.toString('latin1', this.start, this.end); }
}

/** A double that came from a JSON number with a fraction or exponent (kept apart from ints). */
export class JsonFloat {
  constructor(readonly value: number) {}
}

export function asString(v: string | RawString): string {
  return typeof v === 'string' ? v : v.toString();
}
