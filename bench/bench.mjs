// `npm run bench` (via scripts/bench.sh): serves bench/ with the devserver
// (a temporary --www holding the bench page and the speech fixture; pkg/
// at /pkg/ as usual), runs bench-page.js in headless Chromium, prints a
// table and writes bench/results/latest.json.
//
// Environment: BENCH_RUNS (default 7), BENCH_SECONDS (default 60).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startDevserver, launchChromium } from "../tests/e2e/lib.mjs";

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

const out = join(ROOT, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "latest.json"), JSON.stringify({ date: new Date().toISOString(), goals, ...result }, null, 2) + "\n");
console.log(`Saved bench/results/latest.json`);
