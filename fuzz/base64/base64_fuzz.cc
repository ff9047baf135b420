// libFuzzer harness for the addon's base64 code (native/base64.cc, native/base64_avx2.cc),
// built with AddressSanitizer and UBSan by fuzz/base64/build.sh. Every input is used four ways:
//  1. decoded with Base64DecodeGlib into an exactly-sized buffer, and compared with a plain
//     reference written from glib's documented algorithm plus qemu's character check;
//  2. decoded in place (the output overwrites the input, as writeBase64 inPlace does);
//  3. encoded with the scalar and the best (AVX2 when the CPU has it) encoders, each compared
//     with a plain reference encoder, then decoded back to the input;
//  4. encoded in place at Base64InPlaceGap(n), as readFileReply does.
// Buffers are heap copies of exactly the size the contract promises, so ASan sees any byte read
// or written outside it. A mismatch aborts with a message (libFuzzer saves the input).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "base64.h"

namespace {

const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Rank(uint8_t c) {
  const char* p = c ? strchr(kAlphabet, c) : nullptr;
  return p ? static_cast<int>(p - kAlphabet) : -1;
}

// glib's g_base64_decode after qemu's check, one character at a time. False on a bad character.
bool ReferenceDecode(const uint8_t* in, size_t len, std::vector<uint8_t>* out) {
  out->clear();
  uint32_t v = 0;
  int k = 0;
  uint8_t last0 = 0, last1 = 0;
  for (size_t i = 0; i < len && in[i] != 0; i++) {
    uint8_t c = in[i];
    if (c == '\n') continue;
    int r = c == '=' ? 0 : Rank(c);
    if (r < 0) return false;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | static_cast<uint32_t>(r)) & 0xffffff;
    if (++k == 4) {
      out->push_back(static_cast<uint8_t>(v >> 16));
      if (last1 != '=') out->push_back(static_cast<uint8_t>(v >> 8));
      if (last0 != '=') out->push_back(static_cast<uint8_t>(v));
      k = 0;
    }
  }
  return true;
}

std::vector<uint8_t> ReferenceEncode(const uint8_t* in, size_t n) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(in[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(in[i + 1]) << 8;
    if (i + 2 < n) v |= in[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kAlphabet[v & 63] : '=');
  }
  return out;
}

[[noreturn]] void Fail(const char* what, size_t n) {
  fprintf(stderr, "MISMATCH: %s (input length %zu)\n", what, n);
  abort();
}

void CheckDecode(const uint8_t* data, size_t size) {
  std::vector<uint8_t> want;
  bool want_ok = ReferenceDecode(data, size, &want);

  // Out of place, into exactly Base64DecodedMax(size) bytes (malloc(0) may be null: use 1).
  size_t max = qga::Base64DecodedMax(size);
  uint8_t* in = static_cast<uint8_t*>(malloc(size ? size : 1));
  memcpy(in, data, size);
  uint8_t* out = static_cast<uint8_t*>(malloc(max ? max : 1));
  size_t got = 0;
  bool ok = qga::Base64DecodeGlib(in, size, out, &got);
  if (ok != want_ok) Fail("decode validity differs from the reference", size);
  if (ok && (got != want.size() || (got && memcmp(out, want.data(), got) != 0))) Fail("decoded bytes differ", size);
  free(out);

  // In place: the result overwrites the input.
  got = 0;
  ok = qga::Base64DecodeGlib(in, size, in, &got);
  if (ok != want_ok) Fail("in-place decode validity differs", size);
  if (ok && (got != want.size() || (got && memcmp(in, want.data(), got) != 0))) Fail("in-place decoded bytes differ", size);
  free(in);
}

void CheckEncode(const uint8_t* data, size_t size) {
  std::vector<uint8_t> want = ReferenceEncode(data, size);
  size_t elen = qga::Base64EncodedLength(size);
  if (elen != want.size()) Fail("encoded length", size);
  uint8_t* in = static_cast<uint8_t*>(malloc(size ? size : 1));
  memcpy(in, data, size);
  const qga::EncoderKind kinds[] = {qga::EncoderKind::Scalar, qga::EncoderKind::Best, qga::EncoderKind::Avx2};
  for (qga::EncoderKind kind : kinds) {
    uint8_t* out = static_cast<uint8_t*>(malloc(elen ? elen : 1));
    qga::Base64Encode(in, size, out, kind);
    if (elen && memcmp(out, want.data(), elen) != 0) Fail("encoded text differs from the reference", size);
    // Round trip through the decoder.
    uint8_t* back = static_cast<uint8_t*>(malloc(qga::Base64DecodedMax(elen) + 1));
    size_t got = 0;
    if (!qga::Base64DecodeGlib(out, elen, back, &got) || got != size || (size && memcmp(back, data, size) != 0))
      Fail("round trip", size);
    free(back);
    free(out);
  }
  free(in);

  // In place: the input sits Base64InPlaceGap(n) bytes after the output start.
  size_t gap = qga::Base64InPlaceGap(size);
  size_t total = gap + size > elen ? gap + size : elen;
  uint8_t* block = static_cast<uint8_t*>(malloc(total ? total : 1));
  memcpy(block + gap, data, size);
  qga::Base64Encode(block + gap, size, block);
  if (elen && memcmp(block, want.data(), elen) != 0) Fail("in-place encoding differs", size);
  free(block);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckDecode(data, size);
  CheckEncode(data, size);
  return 0;
}
