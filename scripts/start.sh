#!/usr/bin/env bash
# `npm start`: the demo on a fresh machine or a warm one.
#   1. scripts/setup.sh (idempotent: installs only what is missing)
#   2. the npm package into pkg/ (skipped when pkg/ is newer than the sources)
#   3. the devserver, release build
#   4. devserver serve on 127.0.0.1:${PORT:-8787}, in the foreground (Ctrl-C stops it)
# Environment: PORT (default 8787), ENGINE (pocketsphinx | meter, default pocketsphinx).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

port=${PORT:-8787}
engine=${ENGINE:-pocketsphinx}
say() { printf '[start] %s\n' "$*"; }

# Fail before minutes of building if the port is taken.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_taken "$port"; then
  say "port $port on 127.0.0.1 is already in use (another devserver or npm start?)." >&2
  say "stop that process or pick another port: PORT=8788 npm start" >&2
  exit 1
fi

bash scripts/setup.sh

wasm=pkg/resilient_transcriber_bg.wasm
if [ -f "$wasm" ] && [ -f pkg/resilient_transcriber.js ] \
  && [ -z "$(find src Cargo.toml Cargo.lock .cargo -newer "$wasm" -print -quit 2>/dev/null)" ]; then
  say "pkg/ is up to date"
else
  say "building the package (scripts/build.sh)"
  bash scripts/build.sh
fi

say "building the devserver (release)"
cargo build --release -p devserver --quiet

if port_taken "$port"; then
  say "port $port on 127.0.0.1 became busy while building; stop that process or set PORT" >&2
  exit 1
fi

log=$(mktemp)
./target/release/devserver serve --host 127.0.0.1 --port "$port" --engine "$engine" --www www --pkg pkg \
  > >(tee "$log") 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "listening on" "$log"; then
  if grep -qi "in use" "$log"; then
    say "port $port on 127.0.0.1 is already in use; stop that process or set PORT" >&2
  else
    say "the devserver did not start (output above)" >&2
  fi
  exit 1
fi
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
printf '\n  Demo: %s/\n  Faults: %s/control   (engine: %s; Ctrl-C to stop)\n\n' "$url" "$url" "$engine"
wait $server
