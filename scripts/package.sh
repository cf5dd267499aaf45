#!/usr/bin/env bash
# Assembles the npm package in pkg/ and packs it: run after scripts/build.sh
# (`npm run package` does both).
#   1. npm/ (package.json, CHANGELOG.md) and the LICENSE files are copied
#      into pkg/, with docs/api.md, reliability.md, protocol.md and the
#      README's images; the package README is npm/README.md with the user
#      part of README.md included (scripts/package-readme.mjs);
#   2. the d.ts is post-processed (scripts/package-dts.mjs: `[Symbol.dispose]`
#      only where the user's TypeScript lib has it);
#   3. `npm pack` writes target/npm/resilient-transcriber-<version>.tgz and
#      prints its files and size.
# The package's version must equal the crate's (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
out=${BUILD_OUT:-pkg}
for f in resilient_transcriber.js resilient_transcriber_bg.wasm resilient_transcriber.d.ts rt-capture-worklet.js; do
  [ -f "$out/$f" ] || { echo "package: $out/$f is missing; run scripts/build.sh first" >&2; exit 1; }
done
version=$(node -p 'require("./npm/package.json").version')
crate=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
if [ "$version" != "$crate" ]; then
  echo "package: npm/package.json is $version but Cargo.toml is $crate; bump both (and CHANGELOG.md)" >&2
  exit 1
fi
grep -q "^## \[$version\]" npm/CHANGELOG.md || { echo "package: npm/CHANGELOG.md has no \"## [$version]\" entry" >&2; exit 1; }
cp -L npm/package.json npm/CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$out/"
rm -rf "$out/docs"
mkdir -p "$out/docs/images"
cp docs/api.md docs/reliability.md docs/protocol.md "$out/docs/"
cp docs/images/*.png "$out/docs/images/"
node scripts/package-readme.mjs "$out"
node scripts/package-dts.mjs "$out/resilient_transcriber.d.ts"
mkdir -p target/npm
rm -f target/npm/resilient-transcriber-*.tgz
json=$(cd "$out" && npm pack --json --pack-destination "$PWD/../target/npm" 2>/dev/null)
node -e '
  const [p] = JSON.parse(process.argv[1]);
  const kb = (n) => (n / 1024).toFixed(1) + " KB";
  for (const f of p.files) console.log(`  ${String(f.size).padStart(7)}  ${f.path}`);
  console.log(`package: target/npm/${p.filename}: ${p.files.length} files, ${kb(p.size)} packed, ${kb(p.unpackedSize)} unpacked`);
' "$json"
