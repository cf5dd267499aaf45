// Helpers shared by the end-to-end tests and the benchmark: build what is
// stale, run the release devserver on a free port, launch the system
// Chromium with a fake microphone, read WAVs, and compare audio.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, existsSync, statSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path)) t = Math.max(t, newestMtime(join(path, e)));
  return t;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed with status ${r.status}`);
}

const stale = (artifact, sources) => !existsSync(artifact)
  || statSync(artifact).mtimeMs < Math.max(...sources.map((p) => newestMtime(join(ROOT, p))));

/**
 * Builds pkg/ and the release devserver when they are missing or older
 * than their sources (the package: the crate, its audio crate and the
 * simd128 flag in .cargo, as scripts/bench.sh counts them; the devserver:
 * its crate and the relay it embeds). `skip` (by default
 * RT_E2E_NO_BUILD=1) uses whatever is there.
 */
export function buildIfNeeded({ skip = process.env.RT_E2E_NO_BUILD } = {}) {
  if (skip) return;
  if (stale(join(ROOT, "pkg", "resilient_transcriber_bg.wasm"), ["src", "audio", "Cargo.toml", "Cargo.lock", ".cargo"])) {
    run("bash", ["scripts/build.sh"]);
  }
  if (stale(join(ROOT, "target", "release", "devserver"), ["devserver", "relay", "Cargo.lock"])) {
    run("cargo", ["build", "--release", "-p", "devserver", "--quiet"]);
  }
}

/**
 * Starts `target/release/devserver serve --port 0 ...` and resolves with
 * { base, port, stop() } once it prints its address.
 */
export async function startDevserver({ engine = "pocketsphinx", www = "www", pkg = "pkg", extra = [] } = {}) {
  const bin = join(ROOT, "target", "release", "devserver");
  const child = spawn(bin, ["serve", "--port", "0", "--engine", engine, "--www", www, "--pkg", pkg, ...extra], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`devserver did not start in 20 s:\n${out}`)), 20_000);
    const onData = (d) => {
      out += d;
      const m = out.match(/devserver listening on (http:\/\/[\d.]+:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (d) => { out += d; });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`devserver exited (${code}):\n${out}`)); });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    base,
    port: Number(new URL(base).port),
    log: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

/** Headless system Chromium; `fakeAudio` (absolute path) plays once as the microphone. */
export function launchChromium({ fakeAudio } = {}) {
  const args = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  ];
  if (fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}%noloop`);
  return chromium.launch({ executablePath: CHROMIUM, args });
}

/**
 * A new page of `browser` on `url`, resolved once the demo says it is
 * ready (`html[data-ready=true]`), with its page errors and console errors
 * collected in `problems` (a test asserts it stays empty). `init` scripts
 * run in the page before any of its own (page.addInitScript).
 */
export async function openDemo(browser, url, { viewport, init = [] } = {}) {
  const page = await browser.newPage(viewport ? { viewport } : {});
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  for (const script of init) await page.addInitScript(script);
  await page.goto(url);
  await page.waitForSelector("html[data-ready=true]", { timeout: 15_000 });
  return { page, problems };
}

/** JSON from the devserver's control API. */
export async function control(base, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

/**
 * Parses a PCM16 WAV into { sampleRate, samples: Float32Array (−1..1) }:
 * mono unless `channels` says how many to expect, then `channelData` holds
 * one Float32Array per channel (deinterleaved) and `samples` the first.
 */
export function parseWav(buf, { channels: want = 1 } = {}) {
  const b = Buffer.from(buf);
  if (b.toString("ascii", 0, 4) !== "RIFF" || b.toString("ascii", 8, 12) !== "WAVE") throw new Error("not a WAV");
  let pos = 12, sampleRate = 0, channels = 0, bits = 0;
  while (pos + 8 <= b.length) {
    const id = b.toString("ascii", pos, pos + 4);
    let size = b.readUInt32LE(pos + 4);
    if (id === "fmt ") {
      channels = b.readUInt16LE(pos + 10);
      sampleRate = b.readUInt32LE(pos + 12);
      bits = b.readUInt16LE(pos + 22);
    } else if (id === "data") {
      if (bits !== 16 || channels !== want) throw new Error(`want PCM16 × ${want} channels, got ${bits} bits × ${channels}`);
      size = Math.min(size, b.length - pos - 8);
      const frames = Math.floor((size >> 1) / channels);
      const channelData = Array.from({ length: channels }, () => new Float32Array(frames));
      for (let i = 0; i < frames; i++) {
        for (let c = 0; c < channels; c++) channelData[c][i] = b.readInt16LE(pos + 8 + 2 * (i * channels + c)) / 32768;
      }
      return { sampleRate, channels, samples: channelData[0], channelData };
    }
    pos += 8 + size + (size & 1);
  }
  throw new Error("WAV without a data chunk");
}

/** A PCM16 mono WAV of `samples` (−1..1), for saving what a failed test received. */
export function wavBytes(samples, sampleRate) {
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write("RIFF", 0, "ascii"); b.writeUInt32LE(36 + samples.length * 2, 4); b.write("WAVEfmt ", 8, "ascii");
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write("data", 36, "ascii"); b.writeUInt32LE(samples.length * 2, 40);
  for (let i = 0; i < samples.length; i++) {
    b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768))), 44 + 2 * i);
  }
  return b;
}

export function readWav(path) {
  return parseWav(readFileSync(path));
}

/**
 * Everything the devserver recorded, sessions concatenated in the order
 * they started: { sessions, sampleRate, samples }.
 */
export async function recordedAudio(base) {
  const { sessions } = await control(base, "GET", "/control/sessions");
  const audioSessions = sessions.filter((s) => s.bytes_received > 0)
    .sort((a, b) => a.started_at_ms - b.started_at_ms);
  const parts = [];
  let sampleRate = 0;
  for (const s of audioSessions) {
    const r = await fetch(`${base}/control/sessions/${s.id}/audio`);
    const w = parseWav(await r.arrayBuffer());
    if (sampleRate && w.sampleRate !== sampleRate) throw new Error("sessions with different sample rates");
    sampleRate = w.sampleRate;
    parts.push(w.samples);
  }
  const samples = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { samples.set(p, at); at += p.length; }
  return { sessions, sampleRate, samples };
}

// In-place iterative radix-2 FFT on (re, im); inverse when `inv`.
function fft(re, im, inv) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (2 * Math.PI / len) * (inv ? 1 : -1);
    const wr = Math.cos(ang), wi = Math.sin(ang);
    const half = len >> 1;
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < half; k++) {
        const a = i + k, b = a + half;
        const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
  if (inv) for (let i = 0; i < n; i++) { re[i] /= n; im[i] /= n; }
}

/**
 * The normalised correlation of `x` with `y` from `start` (x[n] ≈
 * y[start + n]), refined to a tenth of a sample: the best over `y`
 * shifted by d in [-0.5, 0.5], each shift a phase ramp in the frequency
 * domain over `y[start - 32 .. start + x.length + 32]`. Two recordings of
 * one sound seldom sit a whole number of samples apart (a capture that
 * started between two output instants, a browser that resampled on the
 * way): at half a sample, speech at 16 kHz correlates at ~0.98 with
 * itself, which says nothing about the audio. Returns { correlation,
 * shift }.
 */
export function subsampleCorrelation(x, y, start) {
  const P = 32;
  let n = 1;
  while (n < x.length + 2 * P) n <<= 1;
  const re = new Float64Array(n), im = new Float64Array(n);
  for (let i = 0; i < x.length + 2 * P; i++) re[i] = y[start - P + i] ?? 0;
  fft(re, im, false);
  let best = { correlation: -Infinity, shift: 0 };
  const sr = new Float64Array(n), si = new Float64Array(n);
  for (let step = -5; step <= 5; step++) {
    const d = step / 10;
    for (let k = 0; k < n; k++) {
      // Frequency of bin k in cycles per sample, signed (the upper half negative).
      const f = (k <= n / 2 ? k : k - n) / n;
      const c = Math.cos(-2 * Math.PI * f * d), s = Math.sin(-2 * Math.PI * f * d);
      sr[k] = re[k] * c - im[k] * s;
      si[k] = re[k] * s + im[k] * c;
    }
    fft(sr, si, true);
    let dot = 0, ex = 0, ey = 0;
    for (let i = 0; i < x.length; i++) {
      const a = x[i], b = sr[P + i];
      dot += a * b; ex += a * a; ey += b * b;
    }
    const r = ex > 0 && ey > 0 ? dot / Math.sqrt(ex * ey) : 0;
    if (r > best.correlation) best = { correlation: r, shift: d };
  }
  return best;
}

/**
 * Normalised cross-correlation of `x` (received) against `y` (reference)
 * at the best lag in ±maxLag samples, where x[n + lag] ≈ y[n]:
 * Σ x[n+lag]·y[n] / sqrt(Σ x² · Σ y²) over the overlap at that lag.
 * The lag search runs on an FFT; the score at the winner is exact.
 */
export function bestCorrelation(x, y, maxLag) {
  let n = 1;
  while (n < x.length + y.length) n <<= 1;
  const xr = new Float64Array(n), xi = new Float64Array(n);
  const yr = new Float64Array(n), yi = new Float64Array(n);
  xr.set(x); yr.set(y);
  fft(xr, xi, false);
  fft(yr, yi, false);
  for (let k = 0; k < n; k++) { // X · conj(Y)
    const r = xr[k] * yr[k] + xi[k] * yi[k];
    const i = xi[k] * yr[k] - xr[k] * yi[k];
    xr[k] = r; xi[k] = i;
  }
  fft(xr, xi, true);
  const score = (lag) => {
    let dot = 0, ex = 0, ey = 0;
    const from = Math.max(0, -lag), to = Math.min(y.length, x.length - lag);
    for (let i = from; i < to; i++) {
      const a = x[i + lag], b = y[i];
      dot += a * b; ex += a * a; ey += b * b;
    }
    return ex > 0 && ey > 0 ? dot / Math.sqrt(ex * ey) : 0;
  };
  let best = 0, bestVal = -Infinity;
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const v = xr[(lag + n) % n];
    if (v > bestVal) { bestVal = v; best = lag; }
  }
  return { lag: best, correlation: score(best) };
}

/** Rejects after `ms` with a message, so no step can hang a test. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); }),
  ]);
}

/**
 * Per-second alignment of `x` against `y` (both 16 kHz): "second:lag/score"
 * for each 1 s window of `y`. A lag that jumps between windows shows where
 * audio went missing or was inserted. For failure messages.
 */
export function segments(x, y, rate = 16000) {
  const out = [];
  for (let s = rate; s + 2 * rate <= Math.min(x.length, y.length); s += rate) {
    const r = bestCorrelation(x.subarray(s - rate / 2, s + rate + rate / 2), y.subarray(s, s + rate), rate);
    out.push({ second: s / rate, lag: r.lag - rate / 2, score: r.correlation });
  }
  return out;
}

/** `segments` as text, `second:lag/score` each, for failure messages. */
export function segmentReport(x, y, rate = 16000) {
  return segments(x, y, rate).map((g) => `${g.second}:${g.lag}/${g.score.toFixed(2)}`).join(" ");
}
