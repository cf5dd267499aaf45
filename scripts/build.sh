#!/usr/bin/env bash
# Builds the npm package: pkg/ (--target web, for <script type="module"> and
# the demo) and pkg-bundler/ (--target bundler), release, wasm-opt from the
# npm `binaryen` package (Debian's wasm-opt 108 corrupts wasm-bindgen output).
# Prints the gzipped size of .wasm + JS glue.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
if ! command -v wasm-opt >/dev/null || wasm-opt --version | grep -q 'version 108'; then
  echo "build: wasm-opt from npm binaryen is missing; run scripts/setup.sh" >&2
  exit 1
fi
targets=${BUILD_TARGETS:-"web bundler"}
for t in $targets; do
  out=pkg; [ "$t" = web ] || out=pkg-$t
  wasm-pack build --release --target "$t" --out-dir "$out" --out-name resilient_transcriber . >/dev/null 2>build-$t.log || { cat build-$t.log >&2; exit 1; }
  rm -f build-$t.log
done
wasm=$(stat -c %s pkg/resilient_transcriber_bg.wasm)
gz=$(cat pkg/resilient_transcriber_bg.wasm pkg/resilient_transcriber.js | gzip -9 | wc -c)
echo "build: pkg/ ready: .wasm ${wasm} bytes raw; .wasm + JS glue ${gz} bytes gzip -9"
