#!/usr/bin/env bash
# `npm run bench`: WASM AudioPreprocessor vs a plain JS implementation of the
# same resample → PCM16 → chunk operation, and client.sendAudio() cost, in
# headless Chromium; bundle sizes against the peers (bench/sizes.mjs); the
# fault runner's detection and recovery figures (target/faults.json); memory
# during a 10-minute outage (examples/outage_memory.rs); push-to-talk
# latency (bench/ptt.mjs). Builds pkg/, the bench package and the devserver
# when stale; prints the tables, writes bench/results/latest.json and
# docs/bench.md. BENCH_RUNS / BENCH_SECONDS
# override the repeat count (7) and the input length (60 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

# The benchmark's package: the release build plus `AudioPreprocessor`
# (feature `bench`), in target/bench-pkg so pkg/ stays the published one.
wasm=target/bench-pkg/resilient_transcriber_bg.wasm
if [ ! -f "$wasm" ] || [ -n "$(find src audio Cargo.toml Cargo.lock .cargo -newer "$wasm" -print -quit 2>/dev/null)" ]; then
  echo "[bench] building the package with the bench feature (scripts/build.sh)"
  BUILD_OUT=target/bench-pkg BUILD_FEATURES=bench bash scripts/build.sh
fi
if [ ! -x target/release/devserver ] || [ -n "$(find devserver relay Cargo.lock -newer target/release/devserver -print -quit)" ]; then
  echo "[bench] building the devserver (release)"
  cargo build --release -p devserver --quiet
fi
# The published package, whose size (a) compares with the peers.
if [ ! -f pkg/resilient_transcriber_bg.wasm ] || [ -n "$(find src audio Cargo.toml Cargo.lock .cargo -newer pkg/resilient_transcriber_bg.wasm -print -quit 2>/dev/null)" ]; then
  echo "[bench] building the package (scripts/build.sh)"
  bash scripts/build.sh
fi
echo "[bench] a 10-minute outage on the core's simulated clock (examples/outage_memory.rs)"
mkdir -p target/bench
cargo run --release --quiet --example outage_memory > target/bench/outage.jsonl
export BENCH_OUTAGE_JSON=target/bench/outage.jsonl
node bench/bench.mjs
# Push-to-talk: endUtterance() → result, median and p95 over 20 utterances.
node bench/ptt.mjs
