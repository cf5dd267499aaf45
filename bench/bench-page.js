// Benchmark page: the WASM AudioPreprocessor against a plain JavaScript
// implementation of the same operation (48 kHz float → 16 kHz PCM16 in
// 100 ms chunks), and the main-thread cost of client.sendAudio().
import init, { AudioPreprocessor, TranscriptionClient } from "/pkg/resilient_transcriber.js";

const FROM = 48000;
const TO = 16000;
const CHUNK_MS = 100;

// ---- the JavaScript reference implementation ---------------------------------
// The same filter as the Rust core (src/core/audio/resample.rs): a
// Kaiser-windowed sinc, cutoff 0.46 × 16 kHz, transition 0.08 × 16 kHz,
// 90 dB stopband → 224 taps, normalised to unit DC gain, centred on the
// output instant (input before the start is silence). For an integer ratio
// a polyphase resampler reduces to computing every 3rd output of the FIR.

function besselI0(x) {
  let sum = 1, term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function designKernel(from, to) {
  const minRate = Math.min(from, to);
  const cutoff = (0.46 * minRate) / from;
  const transition = (0.08 * minRate) / from;
  const att = 90;
  const beta = 0.1102 * (att - 8.7);
  const len = (att - 8) / (2.285 * 2 * Math.PI * transition);
  const taps = Math.max(16, Math.ceil((Math.ceil(len) + 1) / 16) * 16);
  const half = taps / 2;
  const c = new Float64Array(taps);
  let sum = 0;
  for (let k = 0; k < taps; k++) {
    const x = half - 1 - k;
    const z = x / half;
    const window = Math.abs(z) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - z * z)) / besselI0(beta);
    const u = 2 * cutoff * x;
    const sinc = u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u);
    c[k] = 2 * cutoff * sinc * window;
    sum += c[k];
  }
  return Float32Array.from(c, (v) => v / sum);
}

export class JsPreprocessor {
  constructor(from, to, chunkMs) {
    if (from % to !== 0) throw new RangeError("the JS reference only decimates by an integer factor");
    this.step = from / to;
    this.coeffs = designKernel(from, to);
    this.taps = this.coeffs.length;
    this.buf = new Float32Array(this.taps * 2 + 65536);
    this.len = this.taps / 2 - 1; // leading silence, so output n is centred on input n·step
    this.start = 0; // buffer index of the next output's first tap
    this.chunk = new Int16Array((to * chunkMs) / 1000);
    this.fill = 0;
    this.chunks = 0;
    this.last = null;
  }

  /** Pushes float samples; returns the number of full chunks so far. */
  push(samples) {
    let off = 0;
    while (off < samples.length) {
      if (this.len === this.buf.length) {
        this.buf.copyWithin(0, this.start, this.len);
        this.len -= this.start;
        this.start = 0;
      }
      const n = Math.min(samples.length - off, this.buf.length - this.len);
      this.buf.set(samples.subarray(off, off + n), this.len);
      this.len += n;
      off += n;
      this.run();
    }
    return this.chunks;
  }

  run() {
    const { buf, coeffs, taps, step } = this;
    while (this.start + taps <= this.len) {
      let acc = 0;
      for (let k = 0, i = this.start; k < taps; k++, i++) acc += buf[i] * coeffs[k];
      this.start += step;
      this.emit(acc);
    }
  }

  emit(x) {
    // PCM16 exactly as the core quantises: NaN → 0, clip, × 32767, ties to even.
    const v = (x !== x ? 0 : x < -1 ? -1 : x > 1 ? 1 : x) * 32767;
    let r = Math.round(v);
    if (r - v === 0.5 && (r & 1)) r -= 1;
    this.chunk[this.fill++] = r;
    if (this.fill === this.chunk.length) {
      this.chunks++;
      this.last = this.chunk;
      this.chunk = new Int16Array(this.chunk.length);
      this.fill = 0;
    }
  }

  lastChunk() {
    return new Uint8Array(this.last.buffer);
  }
}

// ---- input ---------------------------------------------------------------------------

function parseWav(buf) {
  const v = new DataView(buf);
  let pos = 12;
  while (pos + 8 <= v.byteLength) {
    const id = String.fromCharCode(v.getUint8(pos), v.getUint8(pos + 1), v.getUint8(pos + 2), v.getUint8(pos + 3));
    const size = v.getUint32(pos + 4, true);
    if (id === "data") {
      const n = Math.min(size, v.byteLength - pos - 8) >> 1;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = v.getInt16(pos + 8 + 2 * i, true) / 32768;
      return out;
    }
    pos += 8 + size + (size & 1);
  }
  throw new Error("no data chunk");
}

/** `seconds` of 48 kHz audio: the speech fixture, looped. */
async function input(seconds) {
  const speech = parseWav(await (await fetch("fixture-48k.wav")).arrayBuffer());
  const out = new Float32Array(seconds * FROM);
  for (let i = 0; i < out.length; i += speech.length) out.set(speech.subarray(0, out.length - i), i);
  return out;
}

// ---- measurements ----------------------------------------------------------------------

/** Milliseconds to push `samples` through `make()` in blocks of `block`. */
function timePreprocessor(make, samples, block) {
  const p = make();
  const views = [];
  for (let i = 0; i < samples.length; i += block) views.push(samples.subarray(i, i + block));
  const t0 = performance.now();
  let chunks = 0;
  for (const v of views) chunks = p.push(v, FROM);
  const ms = performance.now() - t0;
  const last = p.lastChunk();
  p.free?.();
  return { ms, chunks, last };
}

/** Milliseconds for all of `samples` through client.sendAudio in 100 ms blocks, unconnected. */
function timeSendAudio(samples) {
  const client = new TranscriptionClient({
    url: "ws://127.0.0.1:9/never-connected",
    // Keep everything queued: no capacity drops muddying the measurement.
    buffer: { maxBytes: 64 * 1024 * 1024, ttlMs: 3_600_000 },
  });
  const block = (FROM * CHUNK_MS) / 1000;
  const blocks = [];
  for (let i = 0; i + block <= samples.length; i += block) blocks.push(samples.slice(i, i + block));
  const t0 = performance.now();
  for (const b of blocks) client.sendAudio(b, FROM);
  const ms = performance.now() - t0;
  const queued = client.stats().chunksQueued;
  client.close({ flush: false });
  client.free();
  return { ms, calls: blocks.length, queued };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Compares the two implementations' output on the same input (LSB differences). */
function agreement(samples) {
  const w = new AudioPreprocessor(TO, CHUNK_MS);
  const j = new JsPreprocessor(FROM, TO, CHUNK_MS);
  let maxDiff = 0, differing = 0, total = 0;
  const block = FROM / 10; // compare every 100 ms chunk as it completes
  for (let i = 0; i < samples.length; i += block) {
    const a = w.push(samples.subarray(i, i + block), FROM);
    const b = j.push(samples.subarray(i, i + block));
    if (a !== b) throw new Error(`chunk counts differ: wasm ${a}, js ${b}`);
    if (a === 0) continue;
    const wa = new Int16Array(w.lastChunk().buffer);
    const ja = j.last;
    for (let k = 0; k < wa.length; k++) {
      const d = Math.abs(wa[k] - ja[k]);
      if (d) differing++;
      if (d > maxDiff) maxDiff = d;
      total++;
    }
  }
  w.free();
  return { comparedSamples: total, maxDiffLsb: maxDiff, differingSamples: differing };
}

/**
 * Runs everything `runs` times (interleaved, after one warm-up round) and
 * returns medians and the raw numbers.
 */
export async function runBench({ seconds = 60, runs = 7 } = {}) {
  await ready;
  const samples = await input(seconds);
  const configs = [
    { name: "wasm", block: 128, make: () => new AudioPreprocessor(TO, CHUNK_MS) },
    { name: "js", block: 128, make: () => new JsPreprocessor(FROM, TO, CHUNK_MS) },
    { name: "wasm", block: 960, make: () => new AudioPreprocessor(TO, CHUNK_MS) },
    { name: "js", block: 960, make: () => new JsPreprocessor(FROM, TO, CHUNK_MS) },
  ];
  const raw = Object.fromEntries(configs.map((c) => [`${c.name}/${c.block}`, []]));
  raw.sendAudio = [];
  const expectChunks = Math.floor((seconds * 1000) / CHUNK_MS) - 1; // the filter's look-ahead holds back the tail
  for (let r = -1; r < runs; r++) {
    for (const c of configs) {
      const t = timePreprocessor(c.make, samples, c.block);
      if (t.chunks < expectChunks) throw new Error(`${c.name}/${c.block}: ${t.chunks} chunks, expected ≥ ${expectChunks}`);
      if (r >= 0) raw[`${c.name}/${c.block}`].push(t.ms);
    }
    const s = timeSendAudio(samples);
    if (r >= 0) raw.sendAudio.push(s.ms / s.calls);
    await new Promise((res) => setTimeout(res, 0)); // let the page breathe between rounds
  }
  const n = samples.length;
  const rows = configs.map((c) => {
    const ms = median(raw[`${c.name}/${c.block}`]);
    return {
      impl: c.name, block: c.block, medianMs: ms, nsPerSample: (ms * 1e6) / n, realtimeFactor: (seconds * 1000) / ms,
    };
  });
  const ratio = Object.fromEntries([128, 960].map((b) => {
    const js = rows.find((r) => r.impl === "js" && r.block === b);
    const wasm = rows.find((r) => r.impl === "wasm" && r.block === b);
    return [b, js.medianMs / wasm.medianMs];
  }));
  const sendMs = median(raw.sendAudio);
  return {
    input: { seconds, sampleRate: FROM, samples: n, source: "tests/fixtures/speech-a-48k.wav looped" },
    target: { sampleRate: TO, chunkMs: CHUNK_MS, taps: new JsPreprocessor(FROM, TO, CHUNK_MS).taps },
    runs,
    userAgent: navigator.userAgent,
    rows,
    speedup: ratio,
    sendAudio: { msPerChunk: sendMs, usPerChunk: sendMs * 1000, chunkMs: CHUNK_MS, mainThreadShare: sendMs / CHUNK_MS },
    agreement: agreement(samples.subarray(0, 10 * FROM)),
    raw,
  };
}

const ready = init();
window.runBench = runBench;
await ready;
const button = document.getElementById("run");
button.disabled = false;
button.addEventListener("click", async () => {
  button.disabled = true;
  const r = await runBench();
  document.getElementById("out").textContent = JSON.stringify(r, null, 2);
  button.disabled = false;
});
document.documentElement.dataset.ready = "true";
