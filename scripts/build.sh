#!/usr/bin/env bash
# Builds the npm package into pkg/:
#   1. the crate as a cdylib only (`cargo rustc --crate-type cdylib`), so the
#      release profile's `lto = true` really applies (with the default
#      cdylib+rlib crate types cargo passes no -C lto at all);
#   2. wasm-bindgen (--target web: one ES module that works in a plain
#      <script type="module"> and in bundlers, with `new URL(..., import.meta.url)`);
#   3. wasm-opt -Oz from the npm `binaryen` package (Debian's wasm-opt 108
#      corrupts wasm-bindgen output);
#   4. the JS glue and src/web/shell.js bundled into one minified ES module
#      (esbuild), so a page loads one .js and one .wasm;
#   5. the AudioWorklet processor as its own file, for pages whose CSP
#      forbids blob: (`workletUrl`).
# Prints the size of .wasm + JS glue (gzip -9 and brotli). With
# BUILD_NAMES=1 it also keeps target/size/named.wasm (the same module with
# its name section) for scripts/wasm-breakdown.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
if ! command -v wasm-opt >/dev/null || wasm-opt --version | grep -q 'version 108'; then
  echo "build: wasm-opt from npm binaryen is missing; run scripts/setup.sh" >&2
  exit 1
fi
out=${BUILD_OUT:-pkg}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# BUILD_FEATURES=bench adds the benchmark's AudioPreprocessor (bench/).
cargo rustc -p resilient-transcriber --lib --release --target wasm32-unknown-unknown \
  --crate-type cdylib --quiet ${BUILD_FEATURES:+--features "$BUILD_FEATURES"} >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
raw=target/wasm32-unknown-unknown/release/resilient_transcriber.wasm
rm -rf "$out.tmp"
wasm-bindgen --target web --out-dir "$out.tmp" --out-name resilient_transcriber "$raw"
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-simd)
if [ -n "${BUILD_NAMES:-}" ]; then
  mkdir -p target/size
  wasm-opt -Oz -g "${features[@]}" "$out.tmp/resilient_transcriber_bg.wasm" -o target/size/named.wasm
fi
wasm-opt -Oz "${features[@]}" "$out.tmp/resilient_transcriber_bg.wasm" -o "$out.tmp/opt.wasm"
mv "$out.tmp/opt.wasm" "$out.tmp/resilient_transcriber_bg.wasm"
esbuild "$out.tmp/resilient_transcriber.js" --bundle --format=esm --minify --legal-comments=none \
  --log-level=error --outfile="$out.tmp/bundle.js"
mv "$out.tmp/bundle.js" "$out.tmp/resilient_transcriber.js"
rm -rf "$out.tmp/snippets"
node -e '
  import("./src/web/shell.js").then((m) => {
    require("node:fs").writeFileSync(process.argv[1], "// The capture processor of resilient-transcriber (processor name \"rt-capture\").\n// Serve this file and pass its URL as startMicrophone({ workletUrl }) when a\n// Content-Security-Policy forbids blob: URLs.\n" + m.rt_worklet_source() + "\n");
  });
' "$out.tmp/rt-capture-worklet.js"
# Keep what scripts/package.sh adds (package.json, README, LICENSE files).
if [ -d "$out" ]; then
  for f in package.json README.md LICENSE-MIT LICENSE-APACHE CHANGELOG.md; do
    [ -f "$out/$f" ] && cp "$out/$f" "$out.tmp/$f"
  done
fi
rm -rf "$out"
mv "$out.tmp" "$out"
wasm=$(stat -c %s "$out/resilient_transcriber_bg.wasm")
gz() { gzip -9 < "$1" | wc -c; }
total=$(( $(gz "$out/resilient_transcriber_bg.wasm") + $(gz "$out/resilient_transcriber.js") ))
echo "build: $out/ ready: .wasm ${wasm} bytes raw; .wasm + JS ${total} bytes gzip -9 (each file compressed on its own, as a server sends them)"
