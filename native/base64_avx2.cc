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
