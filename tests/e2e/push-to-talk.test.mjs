// Push-to-talk in headless Chromium against the devserver's Deepgram
// endpoint with the pocketsphinx engine (issue 14): five utterances spoken
// into a fake microphone, the connection reset in the middle of the third;
// every one resolves with its words, none is lost, none times out.
//
// Run: node --test tests/e2e/push-to-talk.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ROOT, buildIfNeeded, startDevserver, launchChromium, openDemo, control, withTimeout,
} from "./lib.mjs";

const SPEECH_48K = join(ROOT, "tests", "fixtures", "speech-a-48k.wav");
let server;

before(async () => {
  buildIfNeeded();
  server = await startDevserver({ engine: "pocketsphinx" });
});

after(async () => {
  await server?.stop();
});

test("five utterances with a reset in the third all resolve with their words", { timeout: 120_000 }, async () => {
  await control(server.base, "DELETE", "/control/sessions");
  const browser = await launchChromium({ fakeAudio: SPEECH_48K });
  try {
    const { page, problems } = await openDemo(browser, `${server.base}/`);
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
      const c = new TranscriptionClient({
        url: `ws://${location.host}/v1/listen?engine=pocketsphinx`,
        pushToTalk: { timeoutMs: 8000 },
        // A reset is noticed by the close event; retry at once.
        reconnect: { initialDelayMs: 100, jitter: 0 },
      });
      const log = { dropped: [], states: [], events: [] };
      c.on("dropped", (d) => log.dropped.push(d));
      c.on("state", (s) => log.states.push(s.state));
      c.on("utterance", (u) => log.events.push(u.id));
      await c.connect();
      await c.startMicrophone({ echoCancellation: false, noiseSuppression: false, autoGainControl: false });
      // Let the file's leading silence pass (it is gated, not streamed).
      await sleep(700);
      const pending = [];
      for (let i = 0; i < 5; i++) {
        const id = c.beginUtterance();
        if (i === 2) {
          await sleep(1000);
          await fetch("/control/reset", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
          await sleep(1200);
        } else {
          await sleep(2200);
        }
        pending.push({ id, result: c.endUtterance() });
        await sleep(400);
      }
      const results = [];
      for (const p of pending) results.push({ id: p.id, ...(await p.result) });
      const summary = await c.close();
      return { results, summary, log };
    }), 90_000, "push-to-talk");
    const { results, summary, log } = r;
    for (const u of results) {
      console.log(`# utterance ${u.id}: ${u.audioMs.toFixed(0)} ms of audio, ${u.latencyMs} ms to resolve, ` +
        `${u.finals.length} finals${u.timedOut ? " (timed out)" : ""}: ${JSON.stringify(u.text)}`);
    }
    assert.deepEqual(results.map((u) => u.id), [1, 2, 3, 4, 5]);
    assert.deepEqual(log.events, [1, 2, 3, 4, 5]);
    for (const u of results) {
      assert.ok(!u.timedOut, `utterance ${u.id} timed out: ${JSON.stringify(u)}`);
      assert.match(u.text, /[a-z]/, `utterance ${u.id} has no words: ${JSON.stringify(u)}`);
      // 2.2 s held plus the 300 ms pre-roll.
      assert.ok(u.audioMs >= 2300 && u.audioMs <= 2800, `utterance ${u.id}: ${u.audioMs} ms`);
    }
    // Each starts in the stream where the last ended: nothing between them.
    for (let i = 1; i < results.length; i++) {
      assert.ok(Math.abs(results[i].startMs - results[i - 1].endMs) < 1, JSON.stringify(results.map((u) => [u.startMs, u.endMs])));
    }
    assert.ok(log.states.includes("reconnecting"), `no reconnect after the reset: ${log.states.join(" → ")}`);
    assert.deepEqual(log.dropped, []);
    assert.equal(summary.code, 1000, JSON.stringify(summary));
    assert.equal(summary.stats.bytesDropped, 0);
    // The stream holds the utterances and nothing else.
    const streamMs = results.reduce((n, u) => n + u.audioMs, 0);
    assert.ok(Math.abs(summary.stats.bytesPushed / 32 - streamMs) < 1, `${summary.stats.bytesPushed / 32} ms pushed, utterances ${streamMs} ms`);
    // 0.7 s of leading silence and four 0.4 s gaps, less five pre-rolls.
    assert.ok(summary.stats.audioMsGated > 500, JSON.stringify(summary.stats));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("the demo's hold-to-talk: the space bar and the button each give an utterance result", { timeout: 90_000 }, async () => {
  const browser = await launchChromium({ fakeAudio: SPEECH_48K });
  try {
    const { page, problems } = await openDemo(browser, `${server.base}/?engine=pocketsphinx&ptt=1`);
    assert.ok(await page.isChecked("#ptt"));
    await page.click("#start");
    await page.waitForFunction(() => window.rtDemo.client?.capturing && window.rtDemo.client.state === "open", null, { timeout: 10_000 });
    assert.equal(await page.isDisabled("#talk"), false);
    await page.waitForTimeout(800);
    await page.keyboard.down("Space");
    await page.waitForTimeout(2000);
    assert.equal(await page.getAttribute("#talk", "aria-pressed"), "true");
    await page.keyboard.up("Space");
    await page.waitForFunction(() => window.rtDemo.utterances.length === 1, null, { timeout: 10_000 });
    await page.hover("#talk");
    await page.mouse.down();
    await page.waitForTimeout(2000);
    await page.mouse.up();
    await page.waitForFunction(() => window.rtDemo.utterances.length === 2, null, { timeout: 10_000 });
    const shown = await page.$$eval("#utterances li", (lis) => lis.map((li) => li.textContent));
    const us = await page.evaluate(() => window.rtDemo.utterances);
    console.log(`# demo utterances: ${JSON.stringify(shown)}`);
    assert.equal(shown.length, 2);
    for (const u of us) {
      assert.ok(!u.timedOut, JSON.stringify(u));
      assert.match(u.text, /[a-z]/, JSON.stringify(u));
    }
    assert.match(shown[1], /^#1 \(2\.\d s, \d+ ms after release\): [a-z]/);
    await page.click("#stop");
    await page.waitForFunction(() => window.rtDemo.lastSummary, null, { timeout: 15_000 });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
