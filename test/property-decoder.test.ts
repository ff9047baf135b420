/**
 * Property tests (fast-check) of the request stream decoder: how the bytes are split never
 * changes what is decoded; no input makes push() throw or keeps more than the size limit plus
 * one chunk buffered; a 0xFF after any garbage resynchronises so the next request is decoded.
 * Failures print fast-check's seed and shrunk counterexample, so they can be replayed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { StreamDecoder, MAX_TOKEN_SIZE, type DecodedMessage } from '../lib/protocol/decoder';
import { RawString, JsonFloat, type JsonValue } from '../lib/protocol/values';

const test = suite('property: decoder');

/** Decoded values as plain data for deep comparison (Map → sorted entries, RawString → string). */
function plain(v: JsonValue): unknown {
  if (v instanceof RawString) return v.toString();
  if (v instanceof JsonFloat) return { float: v.value };
  if (v instanceof Map) return { map: [...v.entries()].map(([k, x]) => [k, plain(x)]) };
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** What a message list means, computed before the decoder may reuse its buffer (release). */
function describe(msgs: DecodedMessage[]): unknown[] {
  return msgs.map((m) => {
    if ('error' in m) return { error: m.error };
    const p = plain(m.value);
    m.release?.();
    return p;
  });
}

/** Private state the bound checks look at (not part of the decoder's API). */
function retainedBytes(d: StreamDecoder): number {
  return (d as unknown as { chunkBytes: number }).chunkBytes;
}

function decodeChunks(chunks: Buffer[]): unknown[] {
  const d = new StreamDecoder();
  const out: unknown[] = [];
  for (const c of chunks) out.push(...describe(d.push(c)));
  return out;
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) { parts.push(buf.subarray(prev, p)); prev = p; }
  parts.push(buf.subarray(prev));
  return parts;
}

// ---- generators -------------------------------------------------------------

/** Strings JSON.stringify writes as valid qemu JSON (no lone surrogates), sometimes long enough to stay raw. */
const jsonString = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }) },
  // Long base64-like payloads: the RawString path (>= 4096 bytes, plain ASCII).
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 4000, max: 20000 }), fc.constantFrom('A', 'QUJD', 'x/+=')).map(([n, u]) => u.repeat(Math.ceil(n / u.length))) },
);
const jsonNumber = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonString, jsonNumber, fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
}));
const request = fc.record({
  execute: fc.constantFrom('guest-ping', 'guest-sync', 'guest-info', 'guest-file-write', 'nope'),
  arguments: fc.dictionary(fc.string({ maxLength: 10 }), jsonValue, { maxKeys: 4 }),
  id: fc.integer({ min: 0, max: 2 ** 40 }),
}, { requiredKeys: ['execute'] });
const whitespace = fc.stringMatching(/^[ \t\r\n]{0,3}$/);
/** A stream of requests, with whitespace between them. */
const requestStream = fc.array(fc.tuple(request, whitespace), { minLength: 1, maxLength: 6 })
  .map((list) => Buffer.from(list.map(([r, w]) => JSON.stringify(r) + w).join(''), 'utf8'));

/** Garbage: random bytes, 0xFF anywhere, truncated requests, stray structure, long open strings. */
const garbage = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.array(fc.constantFrom(...'{}[]:,"\'\\-0123456789.eE+ truefalsnul\u00ff\u00fe\u0000\u00c0\u0080\n'), { maxLength: 80 })
    .map((cs) => Buffer.from(cs.join(''), 'latin1')),
  fc.tuple(request, fc.nat()).map(([r, cut]) => { const b = Buffer.from(JSON.stringify(r)); return b.subarray(0, cut % (b.length + 1)); }),
  fc.integer({ min: 1, max: 300 }).map((n) => Buffer.from('['.repeat(n) + '{"a": "\\u12', 'latin1')),
);

/** A copy in its own memory, never adjacent to another chunk. */
function separateCopy(b: Buffer): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}

// ---- properties --------------------------------------------------------------

test('any split of a valid request sequence decodes to the same messages as the whole', () => {
  fc.assert(fc.property(requestStream, fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
    const whole = decodeChunks([bytes]);
    // Every request decodes, none is an error.
    if (whole.some((m) => typeof m === 'object' && m !== null && 'error' in m)) return false;
    // Views of one buffer (adjacent: the decoder joins them without copying) and separate copies
    // (the decoder assembles them) must both decode the same.
    const parts = splitAt(bytes, cuts);
    assert.equal(decodeChunks(parts), whole);
    assert.equal(decodeChunks(parts.map(separateCopy)), whole);
    return true;
  }), { numRuns: 300 });
});

test('decoded values equal what JSON.parse makes of the same text', () => {
  const normal = (v: unknown): unknown => {
    if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [k, normal(x)]));
    if (v instanceof RawString) return v.toString();
    if (v instanceof JsonFloat) return v.value;
    // Integers beyond 2^53 stay exact as bigints (by design); JSON.parse rounds them.
    if (typeof v === 'bigint') return Number(v);
    if (Array.isArray(v)) return v.map(normal);
    return v;
  };
  fc.assert(fc.property(request, (r) => {
    const text = JSON.stringify(r);
    const msgs = new StreamDecoder().push(Buffer.from(text, 'utf8'));
    assert.is(msgs.length, 1);
    const m = msgs[0];
    if ('error' in m) assert.unreachable(`error ${m.error} for ${text}`);
    else assert.equal(normal(m.value), JSON.parse(text));
  }), { numRuns: 300 });
});

test('byte-by-byte feeding of a request with a long payload gives the same value', () => {
  const payload = 'QUJD'.repeat(1500) + '\\n' + 'é'.repeat(10);
  const bytes = Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"${payload}"}}`, 'utf8');
  const whole = decodeChunks([bytes]);
  const single: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  assert.equal(decodeChunks(single), whole);
});

test('no input throws out of push() or keeps more than the limit plus one chunk', () => {
  const anyBytes = fc.oneof(garbage, requestStream);
  fc.assert(fc.property(fc.array(anyBytes, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, cuts) => {
    const d = new StreamDecoder();
    for (const chunk of splitAt(Buffer.concat(pieces), cuts)) {
      let msgs: DecodedMessage[] = [];
      try { msgs = d.push(chunk); } catch (e) { assert.unreachable(`push threw ${(e as Error).stack}`); }
      for (const m of msgs) if ('value' in m) m.release?.();
      assert.ok(retainedBytes(d) <= MAX_TOKEN_SIZE + 65536 + chunk.length);
    }
  }), { numRuns: 500 });
});

test('after any garbage, 0xFF then a valid request decodes that request last', () => {
  fc.assert(fc.property(garbage, request, fc.array(fc.nat(), { maxLength: 6 }), (junk, r, cuts) => {
    const good = Buffer.from(JSON.stringify(r), 'utf8');
    const expected = decodeChunks([good]);
    const got = decodeChunks(splitAt(Buffer.concat([junk, Buffer.from([0xff]), good]), cuts));
    assert.ok(got.length >= 2, 'at least the 0xFF error and the request');
    assert.equal(got[got.length - 1], expected[0]);
  }), { numRuns: 500 });
});

test('0xFF anywhere inside a request stream never throws, and the stream recovers', () => {
  fc.assert(fc.property(requestStream, fc.nat(), (bytes, at) => {
    const cut = at % (bytes.length + 1);
    const tail = Buffer.from('{"execute":"guest-ping"}');
    const got = decodeChunks([bytes.subarray(0, cut), Buffer.from([0xff]), bytes.subarray(cut), Buffer.from([0xff]), tail]);
    assert.equal(got[got.length - 1], { map: [['execute', 'guest-ping']] });
  }), { numRuns: 300 });
});

test('an endless string past the 64 MiB token limit is dropped with one error; memory stays bounded; the next request decodes', () => {
  const d = new StreamDecoder();
  const errors: string[] = [];
  const values: unknown[] = [];
  const take = (msgs: DecodedMessage[]) => {
    for (const m of msgs) { if ('error' in m) errors.push(m.error); else { values.push(plain(m.value)); m.release?.(); } }
  };
  const chunk = Buffer.alloc(1 << 20, 0x41); // 1 MiB of 'A'
  take(d.push(Buffer.from('{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"')));
  let maxRetained = 0;
  for (let i = 0; i < 70; i++) {
    take(d.push(chunk));
    maxRetained = Math.max(maxRetained, retainedBytes(d));
  }
  assert.ok(maxRetained <= MAX_TOKEN_SIZE + 65536 + chunk.length, `retained ${maxRetained}`);
  assert.equal(errors, ['JSON token size limit exceeded']);
  assert.is(retainedBytes(d), 0, 'nothing kept while skipping the rest of the oversized token');
  take(d.push(Buffer.from('"}}\xff{"execute":"guest-ping"}', 'latin1')));
  assert.equal(values[values.length - 1], { map: [['execute', 'guest-ping']] });
});

test('deep nesting past the limit is an error, not a crash, and the decoder recovers', () => {
  const d = new StreamDecoder();
  const msgs = d.push(Buffer.from('['.repeat(5000) + ']'.repeat(5000) + '\xff{"execute":"guest-ping"}', 'latin1'));
  assert.ok(msgs.some((m) => 'error' in m && m.error === 'JSON nesting depth limit exceeded'));
  assert.equal(describe([msgs[msgs.length - 1]]), [{ map: [['execute', 'guest-ping']] }]);
});

test.run();
