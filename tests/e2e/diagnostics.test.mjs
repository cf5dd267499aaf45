// Diagnostics in headless Chromium (issue 11): the `logger` gets the
// transitions that explain a reset (state changes with reasons, the socket
// close with its code, the reconnect attempt, the queue level), the
// console gets them with `logLevel` alone, and `diagnostics()` holds a
// snapshot for a bug report; none of them carries the token, the URL's
// query string or the transcript's words.
//
// Run: node --test tests/e2e/diagnostics.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { buildIfNeeded, startDevserver, launchChromium, withTimeout } from "./lib.mjs";

let server;

before(async () => {
  buildIfNeeded();
  server = await startDevserver({ engine: "counter" });
});

after(async () => {
  await server?.stop();
});

test("the logger and diagnostics() explain a reset and hold no secret", { timeout: 60_000 }, async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const consoleLines = [];
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    await page.goto(`${server.base}/`);
    await page.waitForSelector("html[data-ready=true]", { timeout: 15_000 });
    const r = await withTimeout(page.evaluate(async () => {
      const { TranscriptionClient } = window.rtDemo;
      const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
      const entries = [];
      const transcripts = [];
      const c = new TranscriptionClient({
        url: `ws://${location.host}/v1/listen?engine=counter&api_key=SECRET-QUERY`,
        getToken: async () => "SECRET-TOKEN",
        logger: (e) => entries.push(e),
        logLevel: "debug",
        reconnect: { initialDelayMs: 100, jitter: 0 },
      });
      c.on("transcript", (t) => { if (t.text) transcripts.push(t.text); });
      await c.connect();
      const pump = setInterval(() => c.sendAudio(new Int16Array(1600).map((_, i) => Math.round(8000 * Math.sin(i / 5)))), 100);
      await sleep(1200);
      await fetch("/control/reset", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      await sleep(1500);
      clearInterval(pump);
      const before = c.diagnostics();
      await c.close();
      const after = c.diagnostics();
      // logLevel alone: the console.
      const quiet = new TranscriptionClient({ url: `ws://${location.host}/v1/listen?engine=counter`, logLevel: "info" });
      await quiet.connect();
      await quiet.close();
      return { entries, before, after, transcripts };
    }), 40_000, "diagnostics");
    const { entries, before, after, transcripts } = r;
    const all = JSON.stringify({ entries, before, after });
    for (const secret of ["SECRET-TOKEN", "SECRET-QUERY", "api_key"]) {
      assert.ok(!all.includes(secret), `${secret} leaked into the diagnostics`);
    }
    assert.ok(transcripts.length > 0, "the counter engine should have transcribed");
    for (const t of transcripts) assert.ok(!all.includes(t), `transcript text ${JSON.stringify(t)} leaked`);

    const kinds = entries.map((e) => e.event);
    for (const k of ["state", "open", "socket-closed", "reconnecting", "transcript", "closed"]) {
      assert.ok(kinds.includes(k), `no ${k} entry: ${kinds.join(",")}`);
    }
    for (const e of entries) {
      assert.ok(["error", "warn", "info", "debug"].includes(e.level), JSON.stringify(e));
      assert.equal(typeof e.atMs, "number");
    }
    const lost = entries.find((e) => e.event === "state" && e.data.state === "reconnecting");
    assert.match(lost.data.reason, /close 1006|reset/, JSON.stringify(lost));
    assert.equal(typeof lost.queuedMs, "number");
    const closed = entries.find((e) => e.event === "socket-closed");
    assert.equal(closed.data.code, 1006, JSON.stringify(closed));
    const rec = entries.find((e) => e.event === "reconnecting");
    assert.equal(rec.level, "warn");
    assert.equal(rec.data.attempt, 1);
    const tr = entries.find((e) => e.event === "transcript");
    assert.equal(tr.level, "debug");
    assert.equal(typeof tr.data.chars, "number");

    assert.equal(before.state, "open");
    assert.equal(before.connections, 2);
    assert.equal(before.version, "0.1.0");
    assert.ok(before.timings.lastConnectMs >= 0 && before.timings.lastConnectMs < 5000, JSON.stringify(before.timings));
    assert.ok(before.transitions.some((t) => t.from === "open" && t.to === "reconnecting"), JSON.stringify(before.transitions));
    assert.ok(before.closes.some((c) => c.code === 1006 && c.by === "server or network"), JSON.stringify(before.closes));
    assert.equal(before.config.url, `ws://${new URL(server.base).host}/v1/listen…`);
    assert.equal(before.config.getToken, true);
    assert.ok(before.stats.bytesSent > 0);
    assert.equal(after.state, "closed");
    assert.ok(after.closes.some((c) => c.by === "client" || c.code === 1000), JSON.stringify(after.closes));

    const consoleLogged = consoleLines.filter((l) => l.includes("[resilient-transcriber]"));
    assert.ok(consoleLogged.some((l) => /\[resilient-transcriber\] state/.test(l)), consoleLines.join("\n"));
    assert.ok(!consoleLines.some((l) => l.includes("SECRET")), consoleLines.join("\n"));
  } finally {
    await browser.close();
  }
});
