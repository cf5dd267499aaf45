#!/usr/bin/env bash
# `npm run bench`: WASM AudioPreprocessor vs a plain JS implementation of the
# same resample → PCM16 → chunk operation, and client.sendAudio() cost, in
# headless Chromium; then push-to-talk latency (bench/ptt.mjs). Builds pkg/ and the devserver when stale; prints a
# table and writes bench/results/latest.json. BENCH_RUNS / BENCH_SECONDS
# override the repeat count (7) and the input length (60 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

# The benchmark's package: the release build plus `AudioPreprocessor`
# (feature `bench`), in target/bench-pkg so pkg/ stays the published one.
wasm=target/bench-pkg/resilient_transcriber_bg.wasm
if [ ! -f "$wasm" ] || [ -n "$(find src Cargo.toml Cargo.lock .cargo -newer "$wasm" -print -quit 2>/dev/null)" ]; then
  echo "[bench] building the package with the bench feature (scripts/build.sh)"
  BUILD_OUT=target/bench-pkg BUILD_FEATURES=bench bash scripts/build.sh
fi
if [ ! -x target/release/devserver ] || [ -n "$(find devserver Cargo.lock -newer target/release/devserver -print -quit)" ]; then
  echo "[bench] building the devserver (release)"
  cargo build --release -p devserver --quiet
fi
node bench/bench.mjs
# Push-to-talk: endUtterance() → result, median and p95 over 20 utterances.
node bench/ptt.mjs
