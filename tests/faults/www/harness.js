// The fault-matrix page: the real package (/pkg/), one client per page,
// self-describing audio pushed at real time by a page-side timer, and
// every event the client emits recorded with both clocks (performance.now
// for intervals, Date.now to line up with the devserver's records).
//
// Audio: the sample at stream position i is the high 16 bits of i at even
// i and the low 16 bits at odd i (tests/common/audio.rs), so the server's
// recording and the counter engine's finals name exact positions.
import init, { TranscriptionClient } from "/pkg/resilient_transcriber.js";

const RATE = 16000;
let wasm = null;

// Timer throttling as Chrome applies it to hidden pages (wake-ups aligned
// to whole multiples of `align` ms), for every timer of the page: the
// package's (src/web/shell.js calls the global setTimeout) and this
// harness's audio timer. Headless Chromium keeps every page visible and
// unthrottled (checked: a background or "minimized" page still runs its
// 100 ms timers every 100 ms), so the hidden/throttled scenario emulates
// the two things a hidden page changes: `document.visibilityState` with
// its `visibilitychange` event, and the alignment of timer wake-ups.
const realSetTimeout = window.setTimeout.bind(window);
let align = 0;
window.setTimeout = (fn, ms = 0, ...args) => {
  if (!align) return realSetTimeout(fn, ms, ...args);
  const now = performance.now();
  const due = Math.ceil((now + Math.max(0, ms)) / align) * align;
  return realSetTimeout(fn, due - now, ...args);
};
let hidden = false;
Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });

export async function boot() {
  wasm = await init();
  window.addEventListener("online", () => rt.note({ type: "online" }));
  window.addEventListener("offline", () => rt.note({ type: "offline" }));
  document.addEventListener("visibilitychange", () => rt.note({ type: "visibility", state: document.visibilityState }));
  document.addEventListener("freeze", () => rt.note({ type: "freeze" }));
  document.addEventListener("resume", () => rt.note({ type: "resume" }));
}

const sampleAt = (i) => (i % 2 === 0 ? Math.floor(i / 65536) : i % 65536) & 0xffff;

const rt = window.rt = {
  client: null,
  events: [],
  finals: [],
  interims: 0,
  messages: 0,
  pushed: 0,          // samples pushed so far (= the next stream position)
  skippedMs: 0,       // audio the timer did not catch up after the page did not run
  maxQueued: 0,
  maxWasm: 0,
  taken: { events: [], finals: [] },
  maxBuffered: 0,
  opens: 0,
  timer: 0,
  connectResult: null,

  note(e) {
    e.t = performance.now();
    e.wall = Date.now();
    rt.events.push(e);
    return e;
  },

  wasmBytes() { return wasm ? wasm.memory.buffer.byteLength : 0; },

  /**
   * Creates the client and starts pushing audio. `options` go to the
   * constructor as they are; `chunkMs` is the block the timer pushes;
   * `maxCatchUpMs` is how far behind the timer catches up (a page that
   * did not run for longer skips the rest, counted in skippedMs).
   */
  start({ options, chunkMs = 100, maxCatchUpMs = 2000, audio = true }) {
    const client = rt.client = new TranscriptionClient(options);
    for (const type of ["state", "open", "dropped", "error", "close", "reconnecting"]) {
      client.on(type, (p) => {
        const e = rt.note({ type, ...p });
        if (type === "open") rt.opens += 1;
        if (type === "close") delete e.stats;
      });
    }
    client.on("transcript", (t) => {
      if (t.isFinal) rt.finals.push({ text: t.text, start: t.start, end: t.end, wall: Date.now() });
      else rt.interims += 1;
    });
    client.on("message", () => { rt.messages += 1; });
    rt.connectResult = "pending";
    client.connect().then(() => { rt.connectResult = "ready"; },
      (e) => { rt.connectResult = `rejected: ${e && e.code}: ${e && e.message}`; });
    if (audio) rt.startAudio(chunkMs, maxCatchUpMs);
  },

  startAudio(chunkMs, maxCatchUpMs) {
    const block = RATE * chunkMs / 1000;
    let next = performance.now();
    const tick = () => {
      if (rt.audioStopped) return;
      const now = performance.now();
      if (now - next > maxCatchUpMs) {
        const skip = Math.floor((now - next - maxCatchUpMs) / chunkMs);
        rt.skippedMs += skip * chunkMs;
        next += skip * chunkMs;
      }
      while (next <= now) {
        const chunk = new Int16Array(block);
        for (let k = 0; k < block; k++) chunk[k] = sampleAt(rt.pushed + k);
        rt.client.sendAudio(chunk, RATE);
        rt.pushed += block;
        next += chunkMs;
      }
      const s = rt.client.stats();
      if (s.bytesQueued > rt.maxQueued) rt.maxQueued = s.bytesQueued;
      if (s.bufferedAmount > rt.maxBuffered) rt.maxBuffered = s.bufferedAmount;
      const w = rt.wasmBytes();
      if (w > rt.maxWasm) rt.maxWasm = w;
      rt.timer = window.setTimeout(tick, 20);
    };
    rt.audioStopped = false;
    tick();
  },

  stopAudio() { clearTimeout(rt.timer); rt.timer = 0; rt.audioStopped = true; },

  /** Hides the page (or shows it again) with timers aligned to `alignMs` while hidden. */
  setHidden(on, alignMs = 1000) {
    hidden = on;
    align = on ? alignMs : 0;
    document.dispatchEvent(new Event("visibilitychange"));
  },

  /** A cheap look for the runner's polling. */
  snapshot() {
    const c = rt.client;
    return {
      state: c ? c.state : "none", opens: rt.opens, pushed: rt.pushed, finals: rt.finals.length,
      events: rt.events.length, connectResult: rt.connectResult, stats: c ? c.stats() : null,
    };
  },

  /**
   * Hands the events and finals recorded so far to the runner and forgets
   * them, so a memory probe measures the package, not this page's records.
   */
  takeRecords() {
    const out = { events: rt.events, finals: rt.finals };
    rt.events = [];
    rt.finals = [];
    return out;
  },

  /** Stops the audio, closes with `closeOptions`, returns everything. */
  async finish(closeOptions) {
    rt.stopAudio();
    const c = rt.client;
    const summary = await c.close(closeOptions);
    // Let listeners of the last events run.
    await new Promise((r) => setTimeout(r, 50));
    return rt.report(summary);
  },

  report(summary) {
    return {
      summary, statsAfter: rt.client.stats(), events: rt.events, finals: rt.finals, interims: rt.interims, messages: rt.messages,
      pushed: rt.pushed, skippedMs: rt.skippedMs, maxQueued: rt.maxQueued, maxBuffered: rt.maxBuffered, maxWasm: rt.maxWasm,
      debug: rt.client.debugStats(), wasmBytes: rt.wasmBytes(), connectResult: rt.connectResult,
    };
  },
};
