#!/usr/bin/env bash
# THE test command (`npm test`): formatting, lints, native tests of the core
# and the devserver, the package build and its typings, then the browser
# suites (Chromium, Firefox, WebKitGTK), the end-to-end demo test, the
# install tests of the packed npm tarball, the fault matrix's CI subset
# (tests/faults/run.mjs --ci; `npm run faults` runs all of it) and the
# relay's rolling-restart test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (native and wasm32)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p resilient-transcriber --lib --tests --target wasm32-unknown-unknown -- -D warnings
step "the core has no web dependency"
if cargo tree -p resilient-transcriber --target x86_64-unknown-linux-gnu -e normal --prefix none | grep -E '^(wasm-bindgen|web-sys|js-sys|gloo)'; then
  echo "a web crate is reachable from the native build of the core" >&2
  exit 1
fi
step "no import cycle between sibling modules (src/, devserver/src/, relay/src/)"
node scripts/check-cycles.mjs
step "cargo test (core + devserver + relay)"
cargo test --workspace
step "package build and its size budget (.size-limit.json)"
bash scripts/build.sh
node scripts/size.mjs --check
step "the npm package (scripts/package.sh: pkg/ assembled, packed into target/npm/)"
bash scripts/package.sh
step "TypeScript typings (tsc --strict over tests/types: ESNext.Disposable, and the default libs of ES2020 and ES2022)"
for config in tests/types/tsconfig.json tests/types/tsconfig.es2020.json tests/types/tsconfig.es2022.json; do
  tsc -p "$config"
done
step "API drift: the core, the d.ts and docs/api.md agree (scripts/check-api.mjs), and the check's own tests"
node scripts/check-api.mjs
node --test tests/api/
step "browser tests"
bash scripts/test-browsers.sh
step "end-to-end: the demo in headless Chromium with a fake microphone"
node --test tests/e2e/
step "fault matrix, CI subset (headless Chromium; network namespaces when they can be made)"
node tests/faults/run.mjs --ci
step "install: the packed tarball in fresh projects (plain page in Chromium and Firefox, Vite 7, webpack 5, TypeScript, WebKitGTK)"
node --test tests/install/
step "relay: a rolling restart of two relays behind a proxy loses no audio (headless Chromium)"
cargo build --quiet -p devserver -p resilient-relay
node --test tests/relay/
