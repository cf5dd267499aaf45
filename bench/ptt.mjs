// `npm run bench`, push-to-talk part (issue 14): how long from
// endUtterance() to its result, over 20 utterances, against the devserver
// (Deepgram endpoint, `Finalize`) in headless Chromium. The page feeds the
// speech fixture through sendAudio() in real time (100 ms blocks), holds
// the "key" for 1.5 s per utterance with 0.5 s between, and reads each
// result's latencyMs. Prints median and p95 per engine and provider and
// writes bench/results/ptt.json.
//
// Environment: PTT_UTTERANCES (default 20).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startDevserver, launchChromium } from "../tests/e2e/lib.mjs";

const utterances = Number(process.env.PTT_UTTERANCES ?? 20);
const www = mkdtempSync(join(tmpdir(), "rt-ptt-"));
copyFileSync(join(ROOT, "tests", "fixtures", "speech-a-16k.wav"), join(www, "speech.wav"));
writeFileSync(join(www, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module">
import init, { TranscriptionClient } from "/pkg/resilient_transcriber.js";
await init();
window.TranscriptionClient = TranscriptionClient;
document.documentElement.dataset.ready = "true";
</script>`);

async function page(server, browser, { provider, path, engine }) {
  const p = await browser.newPage();
  await p.goto(`${server.base}/`);
  await p.waitForSelector("html[data-ready=true]", { timeout: 20_000 });
  return p.evaluate(async ({ n, url, provider }) => {
    // The 16 kHz fixture's samples (a plain PCM16 WAV: data after 44 bytes).
    const wav = new Int16Array((await (await fetch("/speech.wav")).arrayBuffer()).slice(44));
    const c = new TranscriptionClient({ url, provider, pushToTalk: { timeoutMs: 5000 } });
    await c.connect();
    let at = 0;
    const block = () => {
      // 100 ms of the fixture, looping.
      const out = new Int16Array(1600);
      for (let i = 0; i < 1600; i++) out[i] = wav[(at + i) % wav.length];
      at += 1600;
      c.sendAudio(out);
    };
    const start = performance.now();
    let sent = 0;
    const feed = async (ms) => {
      // Real time: each block when its time has come.
      const until = sent + ms;
      while (sent < until) {
        const due = start + sent + 100;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        block();
        sent += 100;
      }
    };
    await feed(500);
    const results = [];
    for (let i = 0; i < n; i++) {
      c.beginUtterance();
      await feed(1500);
      const done = c.endUtterance();
      await feed(500);
      results.push(done);
    }
    const all = await Promise.all(results);
    await c.close();
    return all.map((u) => ({ latencyMs: u.latencyMs, timedOut: u.timedOut, words: u.text.split(/\s+/).filter(Boolean).length }));
  }, { n: utterances, url: `ws://${new URL(server.base).host}${path}?engine=${engine}`, provider });
}

const quantile = (xs, q) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const rows = [];
const cases = [
  { provider: "deepgram", path: "/v1/listen", engine: "pocketsphinx" },
  { provider: "deepgram", path: "/v1/listen", engine: "meter" },
  { provider: "generic", path: "/v1/stream", engine: "meter" },
];
for (const k of cases) {
  const server = await startDevserver({ engine: k.engine, www });
  const browser = await launchChromium();
  try {
    const r = await page(server, browser, k);
    const lat = r.map((u) => u.latencyMs);
    rows.push({
      ...k,
      utterances: r.length,
      medianMs: quantile(lat, 0.5),
      p95Ms: quantile(lat, 0.95),
      maxMs: Math.max(...lat),
      timedOut: r.filter((u) => u.timedOut).length,
      words: r.reduce((n, u) => n + u.words, 0),
    });
  } finally {
    await browser.close();
    await server.stop();
  }
}
rmSync(www, { recursive: true, force: true });

console.log(`\nPush-to-talk: endUtterance() → result, ${utterances} utterances of 1.5 s each (real-time sendAudio), headless Chromium\n`);
console.log(`${"provider / engine".padEnd(26)}${"median".padStart(9)}${"p95".padStart(9)}${"max".padStart(9)}${"timed out".padStart(11)}${"words".padStart(7)}`);
for (const r of rows) {
  console.log(`${`${r.provider} / ${r.engine}`.padEnd(26)}${`${r.medianMs} ms`.padStart(9)}${`${r.p95Ms} ms`.padStart(9)}` +
    `${`${r.maxMs} ms`.padStart(9)}${String(r.timedOut).padStart(11)}${String(r.words).padStart(7)}`);
}
mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
writeFileSync(join(ROOT, "bench", "results", "ptt.json"), JSON.stringify({ utterances, rows }, null, 2));
console.log("Saved bench/results/ptt.json");
