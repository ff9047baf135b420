#!/bin/sh
# Builds the libFuzzer harness for native/base64*.cc with ASan + UBSan (needs Debian's clang and
# libclang-rt-14-dev). Output: fuzz/base64/out/base64_fuzz.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$here/out"
CXX=${CXX:-clang++}
$CXX -std=c++17 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/native" \
  "$here/base64_fuzz.cc" "$root/native/base64.cc" "$root/native/base64_avx2.cc" \
  -o "$here/out/base64_fuzz"
echo "built $here/out/base64_fuzz"
