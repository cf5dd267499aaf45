// `npm run bench` (via scripts/bench.sh): serves bench/ with the devserver
// (a temporary --www holding the bench page and the speech fixture; pkg/
// at /pkg/ as usual), runs bench-page.js in headless Chromium, prints a
// table and writes bench/results/latest.json. Then one table of
// everything, written to docs/bench.md too:
//   (a) bundle size against the peers, bundled in this run (bench/sizes.mjs);
//   (b) the audio path, WASM against the JS baseline (above);
//   (c) detection and recovery, from the fault runner's last run
//       (target/faults.json: `npm run faults`);
//   (d) memory during a 10-minute outage at default settings: the core on
//       a simulated clock (examples/outage_memory.rs, BENCH_OUTAGE_JSON),
//       and the page's WebAssembly.Memory from the fault runner's
//       down-10min scenario when it ran.
//
// Environment: BENCH_RUNS (default 7), BENCH_SECONDS (default 60).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startDevserver, launchChromium } from "../tests/e2e/lib.mjs";
import { sizes, sizesTable } from "./sizes.mjs";

const runs = Number(process.env.BENCH_RUNS ?? 7);
const seconds = Number(process.env.BENCH_SECONDS ?? 60);

const www = mkdtempSync(join(tmpdir(), "rt-bench-"));
copyFileSync(join(ROOT, "bench", "index.html"), join(www, "index.html"));
copyFileSync(join(ROOT, "bench", "bench-page.js"), join(www, "bench-page.js"));
copyFileSync(join(ROOT, "tests", "fixtures", "speech-a-48k.wav"), join(www, "fixture-48k.wav"));

// The package built with the `bench` feature (AudioPreprocessor), which
// the published package leaves out.
const server = await startDevserver({ engine: "meter", www, pkg: process.env.BENCH_PKG ?? "target/bench-pkg" });
const browser = await launchChromium();
let result;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.base}/`);
  await page.waitForSelector("html[data-ready=true]", { timeout: 20_000 });
  result = await page.evaluate((o) => window.runBench(o), { runs, seconds });
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
  await server.stop();
  rmSync(www, { recursive: true, force: true });
}

const f = (x, d = 1) => x.toLocaleString("en", { minimumFractionDigits: d, maximumFractionDigits: d });
const pad = (s, n) => String(s).padStart(n);
console.log(`\nAudio preprocessing: ${seconds} s of 48 kHz speech → 16 kHz PCM16, ${result.target.chunkMs} ms chunks ` +
  `(${result.target.taps}-tap FIR), median of ${runs} runs, headless Chromium\n`);
console.log(`${"implementation".padEnd(16)}${pad("block", 7)}${pad("ms / 60 s", 12)}${pad("ns/sample", 11)}${pad("× real time", 13)}`);
for (const r of result.rows) {
  const name = r.impl === "wasm" ? "WASM (Rust)" : "JavaScript";
  console.log(`${name.padEnd(16)}${pad(r.block, 7)}${pad(f(r.medianMs), 12)}${pad(f(r.nsPerSample, 2), 11)}${pad(f(r.realtimeFactor, 0), 13)}`);
}
console.log("");
for (const [block, ratio] of Object.entries(result.speedup)) {
  console.log(`WASM speed-up over JS, ${block}-frame blocks: ${f(ratio, 2)}×`);
}
const s = result.sendAudio;
console.log(`client.sendAudio(Float32Array(4800), 48000), unconnected (queues): ${f(s.usPerChunk, 1)} µs per 100 ms chunk ` +
  `(${f(s.mainThreadShare * 100, 3)} % of the main thread)`);
const a = result.agreement;
console.log(`Output agreement WASM vs JS over ${a.comparedSamples.toLocaleString("en")} samples: max ${a.maxDiffLsb} LSB, ` +
  `${a.differingSamples.toLocaleString("en")} samples differ`);

const wasmRows = result.rows.filter((r) => r.impl === "wasm");
const goals = {
  wasmAtLeast2xJs: Object.values(result.speedup).every((x) => x >= 2),
  wasmAtLeast1000xRealtime: wasmRows.every((r) => r.realtimeFactor >= 1000),
};
console.log(`\nGoals: WASM ≥ 2× JS: ${goals.wasmAtLeast2xJs ? "met" : "NOT met"}; ` +
  `WASM ≥ 1000× real time: ${goals.wasmAtLeast1000xRealtime ? "met" : "NOT met"}`);

// --- the one table ------------------------------------------------------------

const size = await sizes();
console.log(`\nBundle size (esbuild ${(await import("esbuild")).version}: --bundle --minify --format=esm --platform=browser; gzip -9, brotli q11):\n`);
console.log(sizesTable(size));

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const rows = [];
const row = (section, measure, ours, other, ratio) => rows.push({ section, measure, ours, other, ratio });
for (const p of size.peers) {
  if (p.error) { row("(a) size", p.name, "", `bundle failed: ${p.error}`, ""); continue; }
  row("(a) size, gzip / brotli", `vs ${p.name} ${p.packages.map((n) => pkgVersion(n)).join(" + ")}`,
    `${kib(size.ours.gzip)} / ${kib(size.ours.brotli)}`, `${kib(p.gzip)} / ${kib(p.brotli)}`,
    `ours ${(size.ours.gzip / p.gzip).toFixed(1)}× / ${(size.ours.brotli / p.brotli).toFixed(1)}× the peer`);
}
for (const r of result.rows.filter((x) => x.impl === "wasm")) {
  const js = result.rows.find((x) => x.impl === "js" && x.block === r.block);
  row("(b) audio path", `48 kHz → 16 kHz PCM16, ${r.block}-frame blocks, × real time`, f(r.realtimeFactor, 0), `JS baseline ${f(js.realtimeFactor, 0)}`,
    `${f(result.speedup[r.block], 2)}× faster`);
}
row("(b) audio path", "client.sendAudio, main-thread µs per 100 ms chunk", f(s.usPerChunk, 1), `${f(s.mainThreadShare * 100, 3)} % of the main thread`, "");

// The last full matrix when there is one, else the last run of any kind.
const faultsPath = ["faults-full.json", "faults.json"].map((f) => join(ROOT, "target", f)).find((f) => existsSync(f)) ?? join(ROOT, "target", "faults.json");
let faults = null;
if (existsSync(faultsPath)) faults = JSON.parse(readFileSync(faultsPath, "utf8"));
const PICK = [
  ["reset", "TCP reset"], ["close-1012", "close 1012"], ["handshake-past-timeout", "handshake past connectTimeoutMs"],
  ["blackhole", "server blackhole, default settings"], ["down-60s", "server down 60 s, default backoff"],
  ["link-down-20s", "link down 20 s (namespaces)"], ["link-down-90s", "link down 90 s (namespaces)"], ["freeze-60s", "page frozen 60 s"],
];
if (!faults) row("(c) detection / recovery", "run `npm run faults` first", "", "", "");
else {
  for (const [id, label] of PICK) {
    for (const r of faults.results.filter((x) => x.id === id)) {
      const bound = (name) => r.bounds?.find((b) => b.name === name);
      const det = r.detection ? `${f(r.detection.ms, 0)} ms (${r.detection.how})` : "–";
      const rec = r.recovery ? `${f(r.recovery.ms, 0)} ms` : "–";
      const ok = r.bounds?.every((b) => b.ok) ? "bounds met" : "**bound broken**";
      row("(c) detection / recovery", `${label}, ${r.provider}`, `detect ${det}; recover ${rec}`,
        `bounds: detect ${bound("detect")?.limit ?? "–"}; recover ${bound("recover")?.limit ?? "–"}`, ok);
    }
  }
}
const outage = process.env.BENCH_OUTAGE_JSON ? readFileSync(process.env.BENCH_OUTAGE_JSON, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : [];
for (const o of outage) {
  row("(d) memory, 10-min outage (simulated clock)", `${o.provider}: peak resend window / bytes queued`, `${f(o.peak_window_bytes, 0)} / ${f(o.peak_bytes_queued, 0)} B`,
    `buffer.maxBytes ${f(o.max_bytes, 0)} B; dropped ${f(o.dropped_during_outage_ms / 1000, 1)} s of ${o.outage_ms / 1000} s (ttl), ${o.attempts_during_outage} attempts`,
    `${(o.peak_window_bytes / o.max_bytes).toFixed(2)}× the cap`);
}
for (const r of faults?.results.filter((x) => x.id === "down-10min") ?? []) {
  row("(d) memory, 10-min outage (browser)", `${r.provider}: peak bytesQueued, peak WASM memory`, `${f(r.maxQueuedBytes, 0)} B, ${kib(r.maxWasmBytes ?? 0)}`,
    `dropped ${f(r.droppedMs / 1000, 1)} s, unaccounted ${f(r.unaccountedMs, 0)} ms`, "");
}

function pkgVersion(name) {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  return `${name}@${pkg.devDependencies[name]}`;
}

const table = ["| section | measure | resilient-transcriber | peer / baseline / bound | ratio |", "|---|---|---:|---:|---|",
  ...rows.map((r) => `| ${r.section} | ${r.measure} | ${r.ours} | ${r.other} | ${r.ratio} |`)].join("\n");
const faultsNote = faults ? `(c) and the browser rows of (d) come from ${faultsPath.slice(ROOT.length + 1)} (${faults.mode}, ${faults.date}).` : "(c): no target/faults.json yet.";
console.log(`\nOne table (also in docs/bench.md):\n\n${table}\n\n${faultsNote}`);

const out = join(ROOT, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "latest.json"), JSON.stringify({ date: new Date().toISOString(), goals, ...result, sizes: size, outage, table: rows }, null, 2) + "\n");
console.log(`Saved bench/results/latest.json`);
const md = `# Benchmarks

_Written by \`npm run bench\` (bench/bench.mjs) on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "?"}, ${os.type()} ${os.release()}, headless Chromium._
One run, one table: (a) bundle size against the peers a user would otherwise pick, each bundled in
the same run from the exact versions in package.json (bench/sizes.mjs); (b) the audio path, WASM
against the JS baseline, median of ${runs} runs over ${seconds} s of speech; (c) detection and recovery
from the fault runner (\`npm run faults\`, tests/faults/); (d) memory during a 10-minute outage at
default settings (examples/outage_memory.rs on the core's simulated clock; the page's
WebAssembly.Memory when the fault runner's down-10min scenario ran).

${table}

${faultsNote}

## Bundle size in detail

Ours is the shipped pair, \`pkg/resilient_transcriber_bg.wasm\` + \`pkg/resilient_transcriber.js\`, each
compressed on its own (as a server sends them); through the same esbuild command it is
${kib(size.ours.rebundled.gzip)} gzip. Peers: their typical browser entry (bench/peers/), bundled with
\`esbuild --bundle --minify --format=esm --platform=browser\`; Speechmatics includes the worklet file
its capture loads at run time.

${sizesTable(size)}

Reproduce: \`npm run bench\`.
`;
writeFileSync(join(ROOT, "docs", "bench.md"), md);
console.log("Wrote docs/bench.md");
