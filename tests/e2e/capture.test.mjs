// Capture in headless Chromium (fake microphone playing a fixture): the
// shell's part of issue 8. Every sample the worklet posts is delivered or
// reported, however the capture ends; start/stop/start races resolve to
// the latest call; a browser that fires `ended` synchronously inside
// track.stop() cannot abort the client; a denied microphone is fatal to the
// capture, not to the session.
//
// Run: node --test tests/e2e/   (builds pkg/ and the devserver if stale)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, buildIfNeeded, startDevserver, launchChromium, openDemo, withTimeout } from "./lib.mjs";

const FIXTURE_48K = join(ROOT, "tests", "fixtures", "speech-a-48k.wav");
let server;

before(async () => {
  buildIfNeeded();
  server = await startDevserver({ engine: "meter" });
});

after(async () => {
  await server?.stop();
});

/**
 * The demo page (it loads the package and exposes the class), with hooks
 * installed before any script runs: every AudioWorkletNode's port messages
 * are tapped (float samples and their rate), AudioContexts are counted.
 */
async function openPage(init = () => {}) {
  const browser = await launchChromium({ fakeAudio: FIXTURE_48K });
  const tap = () => {
    window.rtTap = { frames: 0, rate: 0, contexts: 0, closed: 0 };
    const Node = window.AudioWorkletNode;
    window.AudioWorkletNode = class extends Node {
      constructor(...args) {
        super(...args);
        this.port.addEventListener("message", (e) => {
          if (e.data && e.data.samples) {
            window.rtTap.frames += e.data.samples.length;
            window.rtTap.rate = e.data.sampleRate;
          }
        });
      }
    };
    const Ctx = window.AudioContext;
    window.AudioContext = class extends Ctx {
      constructor(...args) { super(...args); window.rtTap.contexts += 1; }
      close() { window.rtTap.closed += 1; return super.close(); }
    };
  };
  return { browser, ...await openDemo(browser, `${server.base}/?engine=meter`, { init: [tap, init] }) };
}

test("every sample the worklet posts is delivered or reported, however the capture ends", { timeout: 90_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const url = `ws://${location.host}/v1/listen?engine=meter`;
      const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
      const out = [];
      for (const how of ["close-flush", "close-no-flush", "stop-then-close"]) {
        window.rtTap.frames = 0;
        const c = new TranscriptionClient({ url });
        await c.connect();
        await c.startMicrophone();
        await sleep(1200);
        if (how === "stop-then-close") await c.stopMicrophone();
        const summary = await c.close({ flush: how !== "close-no-flush" });
        out.push({ how, summary, frames: window.rtTap.frames, rate: window.rtTap.rate });
      }
      return out;
    }), 60_000, "three captures");
    for (const { how, summary, frames, rate } of r) {
      const st = summary.stats;
      // What the worklet posted, at 16 kHz, is what the session counted.
      const posted16k = frames * 16000 / rate;
      assert.ok(Math.abs(st.bytesPushed / 2 - posted16k) <= 2,
        `${how}: worklet posted ${posted16k.toFixed(1)} samples at 16 kHz, session got ${st.bytesPushed / 2}`);
      assert.equal(st.bytesPushed, st.bytesSent + st.bytesQueued + st.bytesDropped, how);
      if (how === "close-no-flush") {
        assert.ok(st.bytesDropped > 0, `${how}: unsent audio is reported: ${JSON.stringify(st)}`);
      } else {
        assert.equal(st.bytesDropped, 0, `${how}: ${JSON.stringify(st)}`);
      }
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("start, stop, start: the latest call wins and exactly one capture runs", { timeout: 60_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const c = new TranscriptionClient({ url: `ws://${location.host}/v1/listen?engine=meter` });
      await c.connect();
      const settle = (p) => p.then(() => ({ ok: true }), (e) => ({ ok: false, code: e.code }));
      const first = settle(c.startMicrophone());
      const stop = c.stopMicrophone();
      const second = settle(c.startMicrophone());
      const res = { first: await first, second: await second };
      await stop;
      await new Promise((ok) => setTimeout(ok, 800));
      res.capturing = c.capturing;
      res.contexts = window.rtTap.contexts - window.rtTap.closed;
      res.pushed = c.stats().bytesPushed;
      await c.close();
      res.afterClose = window.rtTap.contexts - window.rtTap.closed;
      return res;
    }), 30_000, "race");
    assert.equal(r.first.code, "mic-superseded", JSON.stringify(r));
    assert.deepEqual(r.second, { ok: true });
    assert.equal(r.capturing, true);
    assert.equal(r.contexts, 1, `one AudioContext left running: ${JSON.stringify(r)}`);
    assert.ok(r.pushed > 0);
    assert.equal(r.afterClose, 0);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("an `ended` fired synchronously inside track.stop() does not abort the client", { timeout: 60_000 }, async () => {
  // Before: stopMicrophone() held the driver's borrow across track.stop();
  // the `ended` listener borrowed it again, and with panic = "abort" the
  // whole module died.
  const { browser, page, problems } = await openPage(() => {
    const stop = MediaStreamTrack.prototype.stop;
    MediaStreamTrack.prototype.stop = function () {
      stop.call(this);
      this.dispatchEvent(new Event("ended"));
    };
  });
  try {
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const c = new TranscriptionClient({ url: `ws://${location.host}/v1/listen?engine=meter` });
      await c.connect();
      await c.startMicrophone();
      await new Promise((ok) => setTimeout(ok, 500));
      await c.stopMicrophone();
      c.sendAudio(new Int16Array(1600));
      const summary = await c.close();
      return { state: c.state, summary };
    }), 30_000, "re-entrant ended");
    assert.equal(r.state, "closed");
    assert.equal(r.summary.code, 1000, JSON.stringify(r.summary));
    assert.equal(r.summary.stats.bytesDropped, 0);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("a denied microphone is fatal to the capture, not to the session", { timeout: 60_000 }, async () => {
  const { browser, page, problems } = await openPage(() => {
    navigator.mediaDevices.getUserMedia = () =>
      Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
  });
  try {
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const c = new TranscriptionClient({ url: `ws://${location.host}/v1/listen?engine=meter` });
      const errors = [];
      c.on("error", (e) => errors.push({ code: e.code, fatal: e.fatal }));
      await c.connect();
      const mic = await c.startMicrophone().then(() => "resolved", (e) => e.code);
      c.sendAudio(new Int16Array(16000));
      const state = c.state;
      const summary = await c.close();
      return { mic, errors, state, summary };
    }), 30_000, "denied");
    assert.equal(r.mic, "mic-permission");
    assert.deepEqual(r.errors, [{ code: "mic-permission", fatal: false }]);
    assert.equal(r.state, "open");
    assert.equal(r.summary.stats.bytesSent, 32000, JSON.stringify(r.summary.stats));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
