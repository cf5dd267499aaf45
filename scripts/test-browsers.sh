#!/usr/bin/env bash
# Browser suites: tests/web.rs under wasm-pack test in headless Chromium and
# Firefox, and WebKitGTK (the engine of Tauri on Linux) under Xvfb, all
# against one devserver (meter engine) started here and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

port=${RT_TEST_PORT:-8799}
cargo build -p devserver --quiet
log=$(mktemp)
./target/debug/devserver serve --port "$port" --engine meter --www www --pkg pkg >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; echo "devserver failed to start" >&2; exit 1; }
  sleep 0.1
done
grep -q "listening on" "$log" || { cat "$log" >&2; echo "devserver did not start" >&2; exit 1; }

export RT_DEVSERVER="127.0.0.1:$port"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
browsers=${RT_BROWSERS:-"chrome firefox safari"}
for b in $browsers; do
  printf '\n=== browser tests: %s\n' "$b"
  case $b in
    chrome) wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" -- --test web ;;
    firefox) wasm-pack test --headless --firefox --geckodriver "$(command -v geckodriver)" -- --test web ;;
    safari) xvfb-run -a wasm-pack test --headless --safari --safaridriver /usr/bin/WebKitWebDriver -- --test web ;;
    *) echo "unknown browser $b" >&2; exit 2 ;;
  esac
done
