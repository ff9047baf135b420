#include "base64.h"

#include <string.h>

namespace qga {

namespace {

const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Encoding: one lookup turns 12 input bits into 2 output characters.
struct PairTable {
  uint16_t pairs[4096];
  PairTable() {
    for (unsigned i = 0; i < 4096; i++) {
      uint8_t two[2] = {static_cast<uint8_t>(kAlphabet[i >> 6]), static_cast<uint8_t>(kAlphabet[i & 63])};
      memcpy(&pairs[i], two, 2);
    }
  }
};
const PairTable kPairs;

inline void Store2(uint8_t* out, unsigned twelve_bits) { memcpy(out, &kPairs.pairs[twelve_bits], 2); }

inline uint64_t LoadBigEndian64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

// Encodes whole 3-byte groups with the pair table and returns how many input bytes it used;
// the caller finishes the tail (< 3 bytes, or the bytes the 8-byte loads could not reach).
size_t EncodeScalarBody(const uint8_t* in, size_t n, uint8_t* out) {
  size_t i = 0;
  // 6 input bytes per step, read as one big-endian 64-bit word (needs 8 readable bytes).
  while (i + 8 <= n) {
    uint64_t v = LoadBigEndian64(in + i);
    Store2(out, (v >> 52) & 0xfff);
    Store2(out + 2, (v >> 40) & 0xfff);
    Store2(out + 4, (v >> 28) & 0xfff);
    Store2(out + 6, (v >> 16) & 0xfff);
    i += 6;
    out += 8;
  }
  while (i + 3 <= n) {
    unsigned v = (unsigned(in[i]) << 16) | (unsigned(in[i + 1]) << 8) | in[i + 2];
    Store2(out, v >> 12);
    Store2(out + 2, v & 0xfff);
    i += 3;
    out += 4;
  }
  return i;
}

void EncodeTail(const uint8_t* in, size_t rest, uint8_t* out) {
  if (rest == 1) {
    out[0] = kAlphabet[in[0] >> 2];
    out[1] = kAlphabet[(in[0] & 3) << 4];
    out[2] = '=';
    out[3] = '=';
  } else if (rest == 2) {
    out[0] = kAlphabet[in[0] >> 2];
    out[1] = kAlphabet[((in[0] & 3) << 4) | (in[1] >> 4)];
    out[2] = kAlphabet[(in[1] & 15) << 2];
    out[3] = '=';
  }
}

void EncodeScalar(const uint8_t* in, size_t n, uint8_t* out) {
  size_t used = EncodeScalarBody(in, n, out);
  EncodeTail(in + used, n - used, out + used / 3 * 4);
}

}  // namespace

#if defined(__x86_64__)
size_t DecodeAvx2Body(const uint8_t* in, size_t n, uint8_t* out);  // base64_avx2.cc
size_t EncodeAvx2Body(const uint8_t* in, size_t n, uint8_t* out);  // base64_avx2.cc
bool Base64HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
}
#else
bool Base64HaveAvx2() { return false; }
#endif

void Base64Encode(const uint8_t* in, size_t n, uint8_t* out, EncoderKind kind) {
#if defined(__x86_64__)
  if (kind != EncoderKind::Scalar && Base64HaveAvx2()) {
    size_t used = EncodeAvx2Body(in, n, out);
    EncodeScalar(in + used, n - used, out + used / 3 * 4);
    return;
  }
#endif
  (void)kind;
  EncodeScalar(in, n, out);
}

namespace {

// Decoding tables: kDecode[k][c] is the 6-bit value of character c shifted into place k of a
// 24-bit group. Characters that need the careful path ('=', '\n', invalid, NUL) carry kSlow,
// so OR-ing four lookups tells in one test whether a group is plain.
constexpr uint32_t kSlow = 0x80000000u;

struct DecodeTables {
  uint32_t shifted[4][256];
  uint8_t rank[256];  // 0..63, or 0xff for "not in the alphabet"
  DecodeTables() {
    memset(rank, 0xff, sizeof rank);
    for (unsigned i = 0; i < 64; i++) rank[static_cast<uint8_t>(kAlphabet[i])] = static_cast<uint8_t>(i);
    for (unsigned c = 0; c < 256; c++) {
      for (unsigned k = 0; k < 4; k++)
        shifted[k][c] = rank[c] == 0xff ? kSlow : uint32_t(rank[c]) << (18 - 6 * k);
    }
  }
};
const DecodeTables kDec;

}  // namespace

bool Base64DecodeGlib(const uint8_t* in, size_t len, uint8_t* out, size_t* out_len, EncoderKind kind) {
  const void* nul = memchr(in, 0, len);
  if (nul != nullptr) len = static_cast<const uint8_t*>(nul) - in;
  Base64GlibState state;
  return Base64DecodeGlibPart(in, len, out, out_len, &state, kind);
}

bool Base64DecodeGlibPart(const uint8_t* in, size_t len, uint8_t* out, size_t* out_len, Base64GlibState* state,
                          EncoderKind kind) {
#if defined(__x86_64__)
  const bool simd = kind != EncoderKind::Scalar && Base64HaveAvx2();
#else
  (void)kind;
  const bool simd = false;
#endif
  uint8_t* const out_start = out;
  size_t i = 0;
  // Slow-path group state: characters collected so far in the current group.
  uint32_t acc = state->acc;
  unsigned have = state->have;
  uint8_t third = state->third, fourth = state->fourth;

  while (i < len) {
    if (have == 0) {
#if defined(__x86_64__)
      // Fastest path: whole 32-character blocks of plain alphabet characters.
      if (simd && i + 32 <= len) {
        size_t used = DecodeAvx2Body(in + i, len - i, out);
        i += used;
        out += used / 4 * 3;
      }
#endif
      // Fast path: four plain alphabet characters at a group boundary.
      while (i + 4 <= len) {
        uint32_t v = kDec.shifted[0][in[i]] | kDec.shifted[1][in[i + 1]] | kDec.shifted[2][in[i + 2]] |
                     kDec.shifted[3][in[i + 3]];
        if (v & kSlow) break;
        out[0] = static_cast<uint8_t>(v >> 16);
        out[1] = static_cast<uint8_t>(v >> 8);
        out[2] = static_cast<uint8_t>(v);
        out += 3;
        i += 4;
      }
      if (i >= len) break;
    }
    // Careful path, one character at a time, until the group is complete again.
    uint8_t c = in[i++];
    uint8_t r;
    if (c == '\n') continue;
    if (c == '=') {
      r = 0;
    } else {
      r = kDec.rank[c];
      if (r == 0xff) return false;
    }
    acc = (acc << 6) | r;
    third = fourth;
    fourth = c;
    if (++have == 4) {
      *out++ = static_cast<uint8_t>(acc >> 16);
      if (third != '=') *out++ = static_cast<uint8_t>(acc >> 8);
      if (fourth != '=') *out++ = static_cast<uint8_t>(acc);
      have = 0;
      acc = 0;
    }
  }
  state->acc = acc;
  state->have = have;
  state->third = third;
  state->fourth = fourth;
  *out_len = out - out_start;
  return true;
}

}  // namespace qga
