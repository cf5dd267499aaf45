#!/usr/bin/env bash
# THE test command (`npm test`): formatting, lints, native tests of the core
# and the devserver, then the browser suites.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "core builds for wasm32 with no web dependency reachable from core"
cargo build --lib --target wasm32-unknown-unknown --quiet
step "cargo test (core + devserver)"
cargo test --workspace
