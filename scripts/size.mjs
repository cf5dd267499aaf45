// The package's weight on the page: .wasm + JS glue, gzip -9 and brotli,
// each file compressed on its own (as a server sends them).
//
//   node scripts/size.mjs            print the figures
//   node scripts/size.mjs --check    and fail when over the budget in .size-limit.json
//   node scripts/size.mjs --breakdown target/size/named.wasm
//                                    and where the bytes are, by origin (npm run size)
//
// The budget follows the size-limit convention: the achieved size plus a
// small margin, lowered as the package shrinks.
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const pkg = join(ROOT, args.includes("--pkg") ? args[args.indexOf("--pkg") + 1] : "pkg");
const files = ["resilient_transcriber_bg.wasm", "resilient_transcriber.js"];

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
const rows = files.map((f) => {
  const bytes = readFileSync(join(pkg, f));
  return {
    file: f,
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
});
const total = rows.reduce((t, r) => ({ raw: t.raw + r.raw, gzip: t.gzip + r.gzip, brotli: t.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });

console.log(`${"file".padEnd(32)}${"raw".padStart(10)}${"gzip -9".padStart(10)}${"brotli".padStart(10)}`);
for (const r of [...rows, { file: ".wasm + JS glue", ...total }]) {
  console.log(`${r.file.padEnd(32)}${kb(r.raw).padStart(10)}${kb(r.gzip).padStart(10)}${kb(r.brotli).padStart(10)}`);
}

const budgets = JSON.parse(readFileSync(join(ROOT, ".size-limit.json"), "utf8"));
let over = false;
for (const b of budgets) {
  const limit = Number(String(b.limit).replace(/\s*KB$/i, "")) * 1000;
  const got = total[b.compression ?? "gzip"];
  const ok = got <= limit;
  over ||= !ok;
  console.log(`size budget "${b.name}": ${kb(got)} of ${b.limit} (${ok ? "within" : "OVER"} by ${kb(Math.abs(limit - got))})`);
}

const bi = args.indexOf("--breakdown");
if (bi >= 0) {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "wasm-breakdown.mjs"), args[bi + 1], "--top", "25"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
if (args.includes("--check") && over) {
  console.error("size: the package grew past its budget (.size-limit.json); take the weight out, or raise the budget in the same commit with the reason");
  process.exit(1);
}
