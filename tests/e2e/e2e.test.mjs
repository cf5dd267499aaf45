// End to end: the demo page, served by the release devserver exactly as
// `npm start` serves it, in headless Chromium whose fake microphone plays
// tests/fixtures/speech-a-48k.wav once. What the devserver recorded must be
// what the microphone heard, through faults too, and misuse from the page
// must reject with a code, never hang.
//
// Run: node --test tests/e2e/   (builds pkg/ and the devserver if stale)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ROOT, buildIfNeeded, startDevserver, launchChromium, openDemo, control, recordedAudio, readWav,
  bestCorrelation, segments, segmentReport, withTimeout, wavBytes,
} from "./lib.mjs";

const FIXTURE_48K = join(ROOT, "tests", "fixtures", "speech-a-48k.wav");
const FIXTURE_16K = join(ROOT, "tests", "fixtures", "speech-a-16k.wav");
const FIXTURE_S = 15.76;
const BYTES_PER_MS = 32; // 16 kHz PCM16 mono
const RESULTS = join(ROOT, "test-results");

let server;

before(async () => {
  buildIfNeeded();
  // The same command line as scripts/start.sh, on a free port; the audio
  // tests pick the meter engine through the demo's ?engine= selector.
  server = await startDevserver({ engine: "pocketsphinx" });
});

after(async () => {
  await server?.stop();
});

/** A fresh browser (the fake file restarts per launch) on the demo page. */
async function launchDemo(query, { fakeAudio = FIXTURE_48K } = {}) {
  const browser = await launchChromium({ fakeAudio });
  return { browser, ...await openDemo(browser, `${server.base}/${query}`, { viewport: { width: 1100, height: 900 } }) };
}

const pushedMs = (page) => page.evaluate(() => {
  const c = window.rtDemo.client;
  return c ? c.stats().bytesPushed / 32 : 0;
});

async function waitPushed(page, ms, timeout = 30_000) {
  await page.waitForFunction((want) => {
    const c = window.rtDemo.client;
    return c && c.stats().bytesPushed / 32 >= want;
  }, ms, { timeout, polling: 50 });
}

/** Clicks Stop and returns the close summary. */
async function stopDemo(page) {
  await page.click("#stop");
  await page.waitForFunction(() => window.rtDemo.lastSummary, null, { timeout: 15_000 });
  return page.evaluate(() => window.rtDemo.lastSummary);
}

/**
 * One pass of the fixture through the demo: start, let the file play, stop,
 * and compare what the devserver recorded with the 16 kHz fixture.
 */
async function captureFixtureOnce() {
  await control(server.base, "DELETE", "/control/sessions");
  const { browser, page, problems } = await launchDemo("?engine=meter");
  try {
    await page.click("#start");
    await page.waitForFunction(() => window.rtDemo.client?.capturing, null, { timeout: 10_000 });
    // Let the whole file play: stop once that much audio was captured.
    await waitPushed(page, FIXTURE_S * 1000);
    const summary = await stopDemo(page);
    const states = (await page.evaluate(() => window.rtDemo.states))
      .map((st) => `${st.state}${st.reason ? ` (${st.reason})` : ""}`).join(" → ");
    assert.equal(summary.code, 1000, `close summary: ${JSON.stringify(summary)}`);
    // A healthy link: the client never replaced its connection.
    assert.equal(summary.stats.reconnects, 0, `reconnected on a healthy link: ${states}`);
    assert.equal(summary.stats.bytesResent, 0);
    assert.equal(await page.evaluate(() => window.rtDemo.droppedMs), 0);
    assert.match(await page.textContent("#indicator"), /closed/);
    assert.deepEqual(problems, []);

    const rec = await recordedAudio(server.base);
    assert.equal(rec.sampleRate, 16000);
    // Every byte the client counted as sent arrived.
    assert.equal(rec.samples.length * 2, summary.stats.bytesSent);
    const seconds = rec.samples.length / rec.sampleRate;
    assert.ok(Math.abs(seconds - FIXTURE_S) <= 0.05 * FIXTURE_S,
      `received ${seconds.toFixed(3)} s, fixture ${FIXTURE_S} s`);
    const ref = readWav(FIXTURE_16K);
    const { lag, correlation } = bestCorrelation(rec.samples, ref.samples, 8000);
    console.log(`# (a) received ${seconds.toFixed(3)} s; correlation ${correlation.toFixed(4)} at lag ${lag} samples`);
    let report = "";
    let steps = null;
    if (correlation < 0.9) {
      mkdirSync(RESULTS, { recursive: true });
      writeFileSync(join(RESULTS, "received-intact.wav"), wavBytes(rec.samples, rec.sampleRate));
      report = segmentReport(rec.samples, ref.samples);
      console.log(`# (a) per second (s:lag/score): ${report}`);
      const seg = segments(rec.samples, ref.samples);
      steps = { seg, jumps: seg.slice(1).map((g, i) => Math.abs(g.lag - seg[i].lag)).filter((d) => d > 2) };
    }
    return { correlation, lag, report, states, steps };
  } finally {
    await browser.close();
  }
}

test("the demo delivers the microphone stream intact (meter engine)", { timeout: 120_000 }, async () => {
  // No retry: a misaligned recording used to be blamed on Chromium's fake
  // microphone under load, and the retry hid a real defect (the client
  // dropping its own healthy connection after ~10 s and resending a tail).
  //
  // What the client sent arrived byte for byte, with no reconnect, resend
  // or drop (asserted above), and tests/e2e/capture.test.mjs shows every
  // sample the worklet posts is delivered. What is left to compare is the
  // capture itself, where Chromium's fake device works in 10 ms buffers
  // (160 samples at 16 kHz): on a saturated 2-core machine it repeats or
  // skips one now and then (seen in CI: every second intact, the lag
  // stepping once by exactly 160; in a later clean-clone run four steps
  // of 480, 320, 160 and 160 samples in 13 s, each second between them
  // at 0.99-1.00). So: the whole stream correlates, or the lag moves only
  // by whole device buffers (1 to 4 of them, at most 6 steps) and only the
  // seconds around a step match less well. A lost or repeated chunk of
  // ours (100 ms) or worklet batch (20 ms) would break either, and so
  // would any loss the byte accounting above did not already catch.
  const r = await captureFixtureOnce();
  const buffers = (d) => Math.round(d / 160);
  const deviceSteps = r.steps
    && r.steps.jumps.length <= 6
    // the seconds a step falls in (or next to) match less well, the others fully
    && r.steps.seg.filter((g) => g.score < 0.9).length <= 2 * r.steps.jumps.length
    && r.steps.seg.every((g) => g.score >= 0.5)
    && r.steps.jumps.every((d) => buffers(d) >= 1 && buffers(d) <= 4 && Math.abs(d - 160 * buffers(d)) <= 2);
  if (deviceSteps) console.log(`# (a) the capture device repeated or skipped ${r.steps.jumps.length} 10 ms buffer(s); every second intact`);
  assert.ok(r.correlation >= 0.9 || deviceSteps, `normalised cross-correlation ${r.correlation} at lag ${r.lag}; ` +
    `per second (s:lag/score): ${r.report}; state transitions: ${r.states}`);
});

test("a TCP reset and a 10 s blackhole mid-stream leave no unreported gap", { timeout: 120_000 }, async () => {
  await control(server.base, "DELETE", "/control/sessions");
  await control(server.base, "POST", "/control/clear", {});
  // Watchdog 3 s instead of 25 s so the blackhole is noticed quickly (the
  // keepalive must be shorter than that, so 1 s); a
  // fixed 1.5 s first backoff keeps "reconnecting" on screen long enough to
  // photograph it.
  const STALE_MS = 3000;
  const { browser, page, problems } = await launchDemo(
    `?engine=meter&staleAfterMs=${STALE_MS}&keepaliveMs=1000&initialDelayMs=1500&jitter=0`);
  try {
    await page.click("#start");
    await page.waitForFunction(() => window.rtDemo.client?.state === "open", null, { timeout: 10_000 });

    // Reset through the demo's own button.
    await waitPushed(page, 3000);
    await page.click('[data-fault="reset"]');
    await page.waitForFunction(
      () => document.getElementById("indicator").dataset.state === "reconnecting", null,
      { timeout: 10_000, polling: "raf" });
    // (c) A screenshot mid-reconnect. The DOM is read before and after it:
    // the same state and attempt on both sides means the picture shows it
    // (a new "reconnecting" would carry a higher attempt number).
    const readIndicator = () => page.evaluate(() => {
      const el = document.getElementById("indicator");
      return { state: el.dataset.state, text: el.textContent.trim().replace(/\s+/g, " ") };
    });
    const before = await readIndicator();
    mkdirSync(RESULTS, { recursive: true });
    const shot = join(RESULTS, "reconnecting.png");
    await page.screenshot({ path: shot, fullPage: true });
    const afterShot = await readIndicator();
    assert.equal(before.state, "reconnecting");
    assert.deepEqual(afterShot.state, before.state);
    assert.equal(afterShot.text.replace(/in \d+ s/, ""), before.text.replace(/in \d+ s/, ""));
    assert.match(before.text, /^reconnecting in \d+ s, attempt \d+$/);
    const png = readFileSync(shot);
    assert.equal(png.subarray(1, 4).toString("ascii"), "PNG");
    assert.ok(png.readUInt32BE(16) >= 1000 && png.readUInt32BE(20) >= 600, "screenshot dimensions");
    assert.ok(statSync(shot).size > 20_000, `screenshot is only ${statSync(shot).size} bytes`);

    await page.waitForFunction(() => window.rtDemo.client?.state === "open", null, { timeout: 10_000 });
    // A 10 s blackhole (the demo's button uses 40 s; same code path).
    await waitPushed(page, 6000);
    await page.evaluate(() => window.rtDemo.fault("blackhole", { ms: 10_000 }));
    await waitPushed(page, FIXTURE_S * 1000);
    const summary = await stopDemo(page);
    assert.equal(summary.code, 1000, `close summary: ${JSON.stringify(summary)}`);

    const { states, droppedMs } = await page.evaluate(() => ({
      states: window.rtDemo.states.map((s) => `${s.state}${s.reason ? ` (${s.reason})` : ""}`),
      droppedMs: window.rtDemo.droppedMs,
    }));
    const reconnects = states.filter((s) => s.startsWith("reconnecting"));
    assert.ok(reconnects.length >= 2, `expected a reconnect after the reset and one after the blackhole: ${states.join(" → ")}`);
    assert.ok(reconnects.some((s) => /stale/.test(s)), `the watchdog should have found the blackhole: ${states.join(" → ")}`);

    const rec = await recordedAudio(server.base);
    const capturedMs = summary.stats.bytesPushed / BYTES_PER_MS;
    const receivedMs = rec.samples.length / (rec.sampleRate / 1000);
    // The client keeps sent audio until the server's results cover it, and
    // resends the unconfirmed tail of a connection that dies (the chunks
    // written into the blackhole, what sat in the socket at the reset). So
    // every captured byte that was not reported dropped reached the server,
    // and the only bytes that may arrive twice are those resends.
    const resentMs = summary.stats.bytesResent / BYTES_PER_MS;
    const sessions = rec.sessions.filter((s) => s.bytes_received > 0);
    console.log(`# (b) captured ${capturedMs.toFixed(0)} ms, received ${receivedMs.toFixed(0)} ms in ${sessions.length} sessions, ` +
      `dropped (reported) ${droppedMs} ms, resent ${resentMs.toFixed(0)} ms; states: ${states.join(" → ")}`);
    assert.ok(sessions.length >= 3, `sessions: ${JSON.stringify(rec.sessions.map((s) => [s.id, s.bytes_received, s.faults]))}`);
    assert.ok(summary.stats.bytesResent > 0, "the blackholed audio should have been resent");
    // One sample of rounding per session for the WAV framing.
    const slackMs = sessions.length / (rec.sampleRate / 1000);
    assert.ok(receivedMs >= capturedMs - droppedMs - slackMs,
      `unreported gap: captured ${capturedMs} ms, received ${receivedMs} ms, dropped ${droppedMs} ms`);
    assert.ok(receivedMs <= capturedMs - droppedMs + resentMs + slackMs,
      `duplicates beyond the resends: captured ${capturedMs} ms, received ${receivedMs} ms, resent ${resentMs} ms`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("microphone misuse from the page rejects with a code and never hangs", { timeout: 60_000 }, async () => {
  const { browser, page, problems } = await launchDemo("?engine=meter", { fakeAudio: null });
  try {
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const url = `ws://${location.host}/v1/listen?engine=meter`;
      const settle = (p) => Promise.race([
        p.then(() => ({ ok: true }), (e) => ({ ok: false, code: e.code, message: e.message })),
        new Promise((r) => setTimeout(() => r({ timeout: true }), 5000)),
      ]);
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const out = {};

      // Twice while starting: the latest call wins and the first rejects
      // with mic-superseded; once running, another start is mic-active.
      const a = new TranscriptionClient({ url });
      const first = settle(a.startMicrophone()); // handled at once: it will reject
      out.secondWhileStarting = await settle(a.startMicrophone());
      out.first = await first;
      out.secondWhileRunning = await settle(a.startMicrophone());

      // Without connect(): documented as allowed, the audio is queued.
      await sleep(700);
      out.unconnected = { state: a.state, capturing: a.capturing, stats: a.stats() };
      const dropped = [];
      a.on("dropped", (d) => dropped.push(d));
      out.closeSummary = await Promise.race([a.close({ flush: false }), sleep(5000).then(() => "timeout")]);
      out.droppedOnClose = dropped;
      out.capturingAfterClose = a.capturing;

      // After close(): rejects with "closed".
      out.afterClose = await settle(a.startMicrophone());
      const b = new TranscriptionClient({ url });
      await b.close();
      out.afterCloseFresh = await settle(b.startMicrophone());

      // Bad options throw synchronously, naming the option.
      try { a.startMicrophone({ sampleRate: 16000 }); out.badOption = "no throw"; } catch (e) { out.badOption = `${e.name}: ${e.message}`; }
      out.stopIdle = await settle(a.stopMicrophone()); // harmless when not capturing

      // close({flush:true}) while capturing, without stopMicrophone(): the
      // samples still in the worklet are delivered first, nothing dropped.
      const c = new TranscriptionClient({ url });
      const cDropped = [];
      c.on("dropped", (d) => cDropped.push(d));
      await c.connect();
      await c.startMicrophone();
      await sleep(1000);
      const cSummary = await Promise.race([c.close({ flush: true }), sleep(8000).then(() => "timeout")]);
      out.closeWhileCapturing = { summary: cSummary, dropped: cDropped, capturing: c.capturing };
      return out;
    }), 30_000, "misuse scenario in the page");

    assert.deepEqual(r.secondWhileStarting, { ok: true });
    assert.equal(r.first.code, "mic-superseded", JSON.stringify(r.first));
    assert.equal(r.secondWhileRunning.code, "mic-active", JSON.stringify(r.secondWhileRunning));
    assert.equal(r.unconnected.state, "idle");
    assert.equal(r.unconnected.capturing, true);
    assert.equal(r.unconnected.stats.bytesSent, 0);
    assert.ok(r.unconnected.stats.bytesQueued >= 200 * BYTES_PER_MS,
      `audio captured before connect() should be queued: ${JSON.stringify(r.unconnected.stats)}`);
    assert.notEqual(r.closeSummary, "timeout", "close() hung");
    assert.equal(r.closeSummary.state, "closed");
    assert.ok(r.droppedOnClose.some((d) => d.reason === "closed" && d.audioMs > 0),
      `queued audio must be reported when closing without flush: ${JSON.stringify(r.droppedOnClose)}`);
    assert.equal(r.capturingAfterClose, false);
    assert.deepEqual(r.stopIdle, { ok: true });
    const cw = r.closeWhileCapturing;
    assert.notEqual(cw.summary, "timeout", "close() while capturing hung");
    assert.equal(cw.summary.code, 1000, JSON.stringify(cw.summary));
    assert.deepEqual(cw.dropped, [], "close({flush:true}) while capturing must lose nothing");
    assert.equal(cw.summary.stats.bytesSent, cw.summary.stats.bytesPushed, JSON.stringify(cw.summary.stats));
    assert.equal(cw.capturing, false);
    assert.equal(r.afterClose.code, "closed", JSON.stringify(r.afterClose));
    assert.equal(r.afterCloseFresh.code, "closed", JSON.stringify(r.afterCloseFresh));
    assert.match(r.badOption, /^TypeError: .*unknown option `sampleRate`/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("the demo as `npm start` serves it: pocketsphinx transcripts, every provider connects", { timeout: 90_000 }, async () => {
  const { browser, page, problems } = await launchDemo("");
  try {
    assert.equal(await page.inputValue("#engine"), "pocketsphinx");
    assert.equal(await page.inputValue("#provider"), "deepgram");
    await page.click("#start");
    // Recognition quality on espeak audio is poor; any final words will do.
    await page.waitForSelector("#transcript p.final", { timeout: 20_000 });
    const color = await page.$eval("#transcript p.final", (p) => getComputedStyle(p).color);
    assert.equal(color, "rgb(26, 28, 32)");
    // Interim results: one grey line at the end, replaced by each final.
    const interim = await (await page.waitForFunction(() => {
      const ps = [...document.querySelectorAll("#transcript p")];
      const line = ps.find((p) => p.className === "interim");
      return line && {
        count: ps.filter((p) => p.className === "interim").length,
        last: ps.at(-1) === line,
        classes: ps.map((p) => p.className),
        color: getComputedStyle(line).color,
      };
    }, null, { timeout: 15_000 })).jsonValue();
    assert.ok(interim.last, JSON.stringify(interim.classes));
    assert.equal(interim.count, 1, JSON.stringify(interim.classes));
    assert.equal(interim.color, "rgb(107, 114, 128)");
    assert.match(await page.textContent("#indicator"), /connected/);
    assert.equal((await stopDemo(page)).code, 1000);

    for (const provider of ["omi", "generic"]) {
      await page.selectOption("#provider", provider);
      await page.selectOption("#engine", "meter");
      await page.evaluate(() => { window.rtDemo.lastSummary = null; });
      await page.click("#start");
      await page.waitForFunction(() => window.rtDemo.client?.stats().chunksSent >= 3, null, { timeout: 10_000 });
      assert.match(await page.textContent("#indicator"), /connected/);
      const summary = await stopDemo(page);
      assert.equal(summary.state, "closed", `${provider}: ${JSON.stringify(summary)}`);
      if (provider === "omi") {
        // Omi has no finalize: the tail no segment confirmed before the
        // close is reported `unconfirmed`, never assumed delivered.
        const dropped = await page.evaluate(() => window.rtDemo.dropped);
        assert.ok(dropped.every((d) => d.reason === "unconfirmed"), JSON.stringify(dropped));
        assert.ok(summary.stats.bytesDropped <= 32000, JSON.stringify(summary.stats));
      } else {
        assert.equal(summary.stats.bytesDropped, 0, provider);
      }
    }
    assert.match(page.url(), /provider=generic/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
