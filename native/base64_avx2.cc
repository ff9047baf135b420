// AVX2 base64 encoder body: 24 input bytes -> 32 characters per step. Compiled for AVX2 via a
// target attribute and only called after a CPU check, so the rest of the addon stays baseline.
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

namespace qga {

__attribute__((target("avx2"))) size_t EncodeAvx2Body(const uint8_t* in, size_t n, uint8_t* out) {
  // Per 128-bit lane: 12 input bytes b0..b11 -> four 32-bit words, each holding one 3-byte group
  // as [b1, b0, b2, b1] so that its two 16-bit halves are big-endian (b0:b1) and (b1:b2).
  const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,  //
                                          1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  // Low half (b0:b1): sextet a = bits 15..10 -> byte 0 (>>10), sextet b = bits 9..4 -> byte 1 (<<4).
  // High half (b1:b2): sextet c = bits 11..6 -> byte 2 (>>6), sextet d = bits 5..0 -> byte 3 (<<8).
  const __m256i mask_ac = _mm256_set1_epi32(0x0fc0fc00);
  const __m256i shift_ac = _mm256_set1_epi32(0x04000040);  // mulhi by 2^6 and 2^10: >>10, >>6
  const __m256i mask_bd = _mm256_set1_epi32(0x003f03f0);
  const __m256i shift_bd = _mm256_set1_epi32(0x01000010);  // mullo by 2^4 and 2^8
  // Sextet -> ASCII: add an offset chosen by range. Class: 0 for 0..25, 1 for 26..51,
  // 2..13 for 52..63 (saturating subtract of 51, plus one for everything above 25).
  const __m256i offsets = _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,  //
                                           65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
  const __m256i v51 = _mm256_set1_epi8(51);
  const __m256i v25 = _mm256_set1_epi8(25);

  size_t i = 0;
  // Each step reads 28 bytes (two 16-byte loads at +0 and +12) and consumes 24.
  while (i + 28 <= n) {
    __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 12));
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    v = _mm256_shuffle_epi8(v, spread);
    __m256i ac = _mm256_mulhi_epu16(_mm256_and_si256(v, mask_ac), shift_ac);
    __m256i bd = _mm256_mullo_epi16(_mm256_and_si256(v, mask_bd), shift_bd);
    __m256i sextets = _mm256_or_si256(ac, bd);
    __m256i cls = _mm256_subs_epu8(sextets, v51);
    cls = _mm256_sub_epi8(cls, _mm256_cmpgt_epi8(sextets, v25));
    __m256i ascii = _mm256_add_epi8(sextets, _mm256_shuffle_epi8(offsets, cls));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), ascii);
    i += 24;
    out += 32;
  }
  return i;
}

}  // namespace qga
#endif

#if defined(__x86_64__)
namespace qga {

// AVX2 decoder body: 32 characters -> 24 bytes per step, for blocks made only of the 64
// alphabet characters. It stops before the first block holding anything else ('=', '\n',
// an invalid character), which the caller's careful scalar path then handles, so results are
// those of the scalar decoder by construction. Returns the characters consumed (a multiple
// of 32). Safe in place (out == in): each step loads its block before storing, and the 24
// bytes stored end at or before the next unread character.
__attribute__((target("avx2"))) size_t DecodeAvx2Body(const uint8_t* in, size_t n, uint8_t* out) {
  // Validity by nibbles: a character is in the alphabet iff (lo_lut[low] & hi_lut[high]) == 0.
  const __m256i lo_lut = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a,
                                          0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a);
  const __m256i hi_lut = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
                                          0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
  // Character -> sextet: add an offset chosen by the high nibble ('/' shares '+''s nibble, so
  // it is moved one entry down).
  const __m256i roll_lut = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i slash = _mm256_set1_epi8('/');
  // Four sextets -> one 24-bit group per 32-bit word, then the 3 bytes of each word gathered.
  const __m256i merge_pairs = _mm256_set1_epi32(0x01400140);
  const __m256i merge_quads = _mm256_set1_epi32(0x00011000);
  const __m256i gather = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
                                          2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i pack = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);

  size_t i = 0;
  while (i + 32 <= n) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nibble);
    __m256i lo = _mm256_and_si256(v, nibble);
    if (!_mm256_testz_si256(_mm256_shuffle_epi8(lo_lut, lo), _mm256_shuffle_epi8(hi_lut, hi))) break;
    __m256i roll = _mm256_shuffle_epi8(roll_lut, _mm256_add_epi8(_mm256_cmpeq_epi8(v, slash), hi));
    __m256i sextets = _mm256_add_epi8(v, roll);
    __m256i words = _mm256_madd_epi16(_mm256_maddubs_epi16(sextets, merge_pairs), merge_quads);
    __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(words, gather), pack);
    // Exactly 24 bytes: 16 + 8, nothing past the group's output.
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(bytes));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 16), _mm256_extracti128_si256(bytes, 1));
    i += 32;
    out += 24;
  }
  return i;
}

}  // namespace qga
#endif
