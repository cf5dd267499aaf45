#!/usr/bin/env bash
# Installs what a fresh machine lacks to build, run and test the project.
# Idempotent: every step checks first and skips what is already there.
# Usage: scripts/setup.sh            (everything)
#        SETUP_SKIP_BROWSERS=1 ...   (native only: no browsers/drivers)
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml | head -1)
: "${WASM_BINDGEN_VERSION:?could not read the pinned wasm-bindgen version from Cargo.toml}"

log() { printf '[setup] %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

# --- Debian packages -------------------------------------------------------
pkgs=(pkg-config libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us)
if [ -z "${SETUP_SKIP_BROWSERS:-}" ]; then
  pkgs+=(chromium chromium-driver firefox-esr webkit2gtk-driver xvfb xauth)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# --- Rust targets and tools ------------------------------------------------
if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! command -v wasm-pack >/dev/null; then
  log "cargo install wasm-pack"
  cargo install wasm-pack --locked --quiet
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # No --locked: its lockfile names crate versions this registry may lack.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force --quiet
fi
if [ -z "${SETUP_SKIP_BROWSERS:-}" ] && ! command -v geckodriver >/dev/null; then
  log "cargo install geckodriver"
  cargo install geckodriver --locked --quiet
fi

# --- npm packages (binaryen's wasm-opt, playwright-core, typescript) -------
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  log "npm install"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
else
  log "npm packages present"
fi
log "done"
