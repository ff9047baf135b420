#!/bin/sh
# Short fuzz run for CI (about a minute): the libFuzzer base64 harness (ASan+UBSan) and the
# JS protocol fuzzer, each from its committed seeds. Exits non-zero on any finding.
#   FUZZ_SECONDS=25 (per fuzzer)   FUZZ_SKIP_NATIVE=1 (skip the C++ harness)
# The C++ harness needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev);
# without them it is skipped with a message, and the JS fuzzer still runs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${FUZZ_SECONDS:-25}
status=0

if [ "${FUZZ_SKIP_NATIVE:-0}" = 1 ]; then
  echo "SKIP base64 libFuzzer harness: FUZZ_SKIP_NATIVE=1"
elif ! command -v clang++ >/dev/null 2>&1; then
  echo "SKIP base64 libFuzzer harness: clang++ not installed (apt-get install clang libclang-rt-14-dev)"
elif ! "$here/base64/build.sh"; then
  echo "SKIP base64 libFuzzer harness: build failed (libclang-rt-14-dev missing?)"
else
  work=$(mktemp -d)
  # A fresh working corpus from the seeds; crashes land in fuzz/base64/out/.
  if (cd "$here/base64/out" && ./base64_fuzz -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$here/base64/out/" "$work" "$here/base64/seeds" >"$here/base64/out/short.log" 2>&1); then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss|cov:' "$here/base64/out/short.log" | tail -3
    echo "base64 libFuzzer: no findings"
  else
    tail -30 "$here/base64/out/short.log"
    echo "base64 libFuzzer: FINDING (see fuzz/base64/out/)"
    status=1
  fi
  rm -rf "$work"
fi

if node --import tsx "$here/js/fuzz-protocol.ts" --seconds "$secs" --seed "${FUZZ_SEED:-$(date +%s)}"; then
  echo "protocol fuzzer: no findings"
else
  echo "protocol fuzzer: FINDING (see fuzz/js/out/; replay with node --import tsx fuzz/js/fuzz-protocol.ts --replay FILE)"
  status=1
fi
exit $status
