// The request decoder's hot loop in native code: finding where a long JSON string ends.
// lib/protocol/decoder.ts walks string bytes in JavaScript (four at a time); for the base64
// payload of a large guest-file-write that walk costs more than decoding and writing the data.
// Same byte classes as decoder.ts's DQ_PLAIN / SQ_PLAIN: plain = 0x20..0xFD except '\' and the
// quote. CPU work only (no system call), so it runs on the JS thread.
//
// scanJsonString(buf, from, to, quote) -> number: the index of the first byte in [from, to)
// that is not plain (or `to`), as -(index + 1) when a byte >= 0x80 was passed before it (the
// string then needs UTF-8 decoding).
#include <napi.h>

#include <stdint.h>

#include "common.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace qga {

namespace {

inline bool Plain(uint8_t c, uint8_t quote) { return c >= 0x20 && c <= 0xfd && c != '\\' && c != quote; }

// Returns the stop index; *high is set when a byte >= 0x80 precedes it.
size_t ScanPlain(const uint8_t* p, size_t from, size_t to, uint8_t quote, bool* high) {
  size_t i = from;
  unsigned high_bits = 0;
#if defined(__x86_64__)
  const __m128i below = _mm_set1_epi8(0x1f);
  const __m128i above = _mm_set1_epi8(static_cast<char>(0xfd));
  const __m128i q = _mm_set1_epi8(static_cast<char>(quote));
  const __m128i bs = _mm_set1_epi8('\\');
  while (i + 16 <= to) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // Unsigned range tests: v <= 0x1f iff max(v, 0x1f) == 0x1f; v >= 0xfe iff min(v, 0xfd) != v.
    __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, below), below);
    __m128i ok_hi = _mm_cmpeq_epi8(_mm_min_epu8(v, above), v);
    __m128i special = _mm_or_si128(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, q)), _mm_cmpeq_epi8(v, bs));
    unsigned stop = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(special, _mm_xor_si128(ok_hi, _mm_set1_epi8(-1)))));
    unsigned hb = static_cast<unsigned>(_mm_movemask_epi8(v));
    if (stop != 0) {
      unsigned k = static_cast<unsigned>(__builtin_ctz(stop));
      high_bits |= hb & ((1u << k) - 1);
      *high = high_bits != 0;
      return i + k;
    }
    high_bits |= hb;
    i += 16;
  }
#endif
  for (; i < to; i++) {
    uint8_t c = p[i];
    if (!Plain(c, quote)) break;
    high_bits |= c & 0x80;
  }
  *high = high_bits != 0;
  return i;
}

Napi::Value ScanJsonString(const Napi::CallbackInfo& info) {
  if (info.Length() < 4 || !info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "argument 'buf' must be a Uint8Array");
  Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
  int64_t from = ArgInt64(info, 1, "from");
  int64_t to = ArgInt64(info, 2, "to");
  int64_t quote = ArgInt64(info, 3, "quote");
  if (from < 0 || to < from || static_cast<uint64_t>(to) > buf.ElementLength())
    throw Napi::RangeError::New(info.Env(), "from/to are outside the buffer");
  if (quote != '"' && quote != '\'') throw Napi::RangeError::New(info.Env(), "argument 'quote' must be a quote character");
  bool high = false;
  size_t stop = ScanPlain(buf.Data(), static_cast<size_t>(from), static_cast<size_t>(to), static_cast<uint8_t>(quote), &high);
  double r = static_cast<double>(stop);
  return Napi::Number::New(info.Env(), high ? -r - 1 : r);
}

}  // namespace

void InitJsonScan(Napi::Env env, Napi::Object exports) {
  exports.Set("scanJsonString", Napi::Function::New(env, ScanJsonString, "scanJsonString"));
}

}  // namespace qga
