// Standard base64 (RFC 4648 alphabet, '=' padding) encoding, and decoding with the exact
// leniency of glib's g_base64_decode() behind qemu's qbase64_decode() character check.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace qga {

inline size_t Base64EncodedLength(size_t n) { return (n + 2) / 3 * 4; }
// Upper bound of the decoded size of `len` input characters.
inline size_t Base64DecodedMax(size_t len) { return len / 4 * 3; }

inline size_t Base64InPlaceGap(size_t n) { return (n + 2) / 3 + 8; }

enum class EncoderKind { Best, Scalar, Avx2 };

// Writes exactly Base64EncodedLength(n) bytes to `out`. The input may live in the same
// buffer as the output if it starts at least Base64InPlaceGap(n) bytes after `out`: every step
// reads its input before writing, and the output never catches up with unread input.
void Base64Encode(const uint8_t* in, size_t n, uint8_t* out, EncoderKind kind = EncoderKind::Best);
// True when this CPU can run the AVX2 encoder.
bool Base64HaveAvx2();

// Decodes like qemu-ga does: the input is cut at its first NUL (qemu treats it as a C string);
// every remaining character must be A-Z a-z 0-9 + / = or '\n' (else returns false and
// `out` holds garbage); '\n' is skipped; every complete group of 4 characters gives 3 bytes
// minus one per '=' in its 3rd and 4th position ('=' elsewhere counts as the value 0);
// a trailing incomplete group is dropped. `out` needs Base64DecodedMax(len) bytes.
// `kind` picks the implementation (tests compare them); Best uses AVX2 when the CPU has it.
// In place (out == in) is allowed: output never overtakes unread input.
bool Base64DecodeGlib(const uint8_t* in, size_t len, uint8_t* out, size_t* out_len,
                      EncoderKind kind = EncoderKind::Best);

// The same decoder over an input fed in parts (the caller cuts it at its first NUL): `state`
// carries a group split between parts, so the parts' outputs concatenated are the whole
// input's. Each part needs Base64DecodedMax(len) + 3 bytes of output room.
struct Base64GlibState {
  uint32_t acc = 0;
  unsigned have = 0;
  uint8_t third = 0, fourth = 0;
};
bool Base64DecodeGlibPart(const uint8_t* in, size_t len, uint8_t* out, size_t* out_len, Base64GlibState* state,
                          EncoderKind kind = EncoderKind::Best);

}  // namespace qga
