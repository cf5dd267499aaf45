// A rolling restart of two relays loses no audio.
//
// Two resilient-relay processes on loopback sit behind a tiny round-robin
// TCP proxy (what any L4 load balancer does), with the devserver as their
// upstream. The real package (pkg/) in headless Chromium streams
// self-describing PCM16 through the proxy with a token minted the way an
// app's backend would (node:crypto, below). The relay holding the session
// gets SIGTERM mid-stream, is restarted on the same port, then the other
// one. Each drain closes the client with 1012; the client reconnects
// through the proxy to the relay still accepting and resends what the
// upstream had not confirmed. The devserver's recording must show no gap,
// and a position recorded twice only inside that resent tail.
//
// Why one URL and a proxy rather than the client given both relay URLs:
// the client library takes one `url` by contract, real deployments put a
// load balancer in front of stateless relays, and the relay must not
// depend on client-side failover. The proxy retries the next backend when
// one refuses the TCP connection, as a load balancer whose health check
// has not yet noticed a drained instance would.
//
// Run: node --test tests/relay/   (builds pkg/ and the debug binaries if needed)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createHmac } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, launchChromium, control, parseWav, withTimeout } from "../e2e/lib.mjs";

const SECRET = "rolling-restart-secret-0123456789abcdef";
const AUDIENCE = "rolling-restart-test";
const PROVIDER_KEY = "provider-key-only-the-relay-holds";
const CHUNK = 1600; // 100 ms at 16 kHz

/** An HS256 token, as the app's backend mints one (relay/README.md). */
function mint({ sub, aud, ttlSec = 300 }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, aud, iat: now, nbf: now, exp: now + ttlSec })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

/** Sample i of the stream: high 16 bits of i at even i, low 16 bits at odd i. */
const sampleAt = (i) => (i % 2 === 0 ? Math.floor(i / 65536) : i % 65536) & 0xffff;

function build() {
  if (!existsSync(join(ROOT, "pkg", "resilient_transcriber_bg.wasm"))) {
    const r = spawnSync("bash", ["scripts/build.sh"], { cwd: ROOT, stdio: "inherit" });
    if (r.status !== 0) throw new Error("scripts/build.sh failed");
  }
  const r = spawnSync("cargo", ["build", "--quiet", "-p", "devserver", "-p", "resilient-relay"], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error("cargo build failed");
}

/** Spawns `bin args`, resolves { child, line, log(), exited } once stdout matches `ready`. */
function startProcess(bin, args, env, ready) {
  const child = spawn(join(ROOT, "target", "debug", bin), args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} did not start in 20 s:\n${out}${err}`)), 20_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(ready);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    child.stderr.on("data", (d) => { err += d; });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`${bin} exited (${code}):\n${out}${err}`)); });
  });
  return started.then((m) => ({ child, match: m, log: () => err, exited }));
}

async function stopProcess(p) {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGKILL");
  await withTimeout(p.exited, 5000, "exit after SIGKILL");
}

/** A round-robin TCP proxy; a backend that refuses the connection is skipped. */
function roundRobin(backends) {
  let next = 0;
  const sockets = new Set();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    const tryBackend = (left) => {
      if (left === 0) { client.destroy(); return; }
      const port = backends[next++ % backends.length];
      const upstream = net.connect({ host: "127.0.0.1", port });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.once("error", () => {
        if (!upstream.connecting && upstream.bytesRead + upstream.bytesWritten > 0) { client.destroy(); return; }
        tryBackend(left - 1);
      });
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        upstream.on("error", () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
    };
    tryBackend(backends.length);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); },
  })));
}

let devserver;
let proxy;
let browser;
const relays = [null, null];

before(async () => {
  build();
  devserver = await startProcess("devserver",
    ["serve", "--port", "0", "--engine", "meter", "--www", "www", "--pkg", "pkg", "--token", PROVIDER_KEY], {},
    /devserver listening on (http:\/\/[\d.]+:\d+)/);
  devserver.base = devserver.match[1];
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  for (const r of relays) await stopProcess(r);
  await stopProcess(devserver);
});

function startRelay(port) {
  const upstream = devserver.base.replace("http://", "ws://");
  return startProcess("resilient-relay", [
    "--listen", `127.0.0.1:${port}`, "--upstream", upstream, "--audience", AUDIENCE,
    "--allow-origin", devserver.base, "--drain-timeout", "5s",
  ], { RELAY_JWT_SECRET: SECRET, RELAY_AUTH_HEADER: `Token ${PROVIDER_KEY}` },
  /resilient-relay listening on ws:\/\/127\.0\.0\.1:(\d+)/).then((p) => Object.assign(p, { port: Number(p.match[1]) }));
}

async function openSessions(relay) {
  const r = await fetch(`http://127.0.0.1:${relay.port}/metrics`);
  const m = (await r.text()).match(/^relay_connections_open (\d+)$/m);
  return Number(m?.[1] ?? 0);
}

/** SIGTERM the relay holding the session, check it drained, restart it on its port. */
async function rollingRestartOf(i, page) {
  const relay = relays[i];
  const opensBefore = await page.evaluate(() => window.rt.opens);
  relay.child.kill("SIGTERM");
  const { code } = await withTimeout(relay.exited, 10_000, "relay exit after SIGTERM");
  assert.equal(code, 0, `relay ${i} exit code; log:\n${relay.log()}`);
  assert.match(relay.log(), /session ended .*side="relay" code=1012/, `relay ${i} did not drain a session with 1012:\n${relay.log()}`);
  // The client is back, through the other relay.
  await page.waitForFunction((n) => window.rt.opens > n && window.rt.client.state === "open", opensBefore, { timeout: 10_000, polling: 50 });
  relays[i] = await startRelay(relay.port);
}

test("a rolling restart of two relays loses no audio (1012 drain, reconnect, resend)", { timeout: 90_000 }, async () => {
  relays[0] = await startRelay(0);
  relays[1] = await startRelay(0);
  proxy = await roundRobin([relays[0].port, relays[1].port]);
  browser = await launchChromium();
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  await page.exposeFunction("mintToken", () => mint({ sub: "browser-user", aud: AUDIENCE, ttlSec: 120 }));
  await page.goto(`${devserver.base}/`);
  const url = `ws://127.0.0.1:${proxy.port}/v1/listen?engine=meter`;
  await page.evaluate(async ({ url, CHUNK }) => {
    const mod = await import("/pkg/resilient_transcriber.js");
    await mod.default();
    const client = new mod.TranscriptionClient({
      url, provider: "deepgram", getToken: () => window.mintToken(),
      reconnect: { initialDelayMs: 200, maxDelayMs: 2000 },
    });
    const rt = window.rt = { client, opens: 0, states: [], dropped: [], errors: [], sent: 0 };
    client.on("open", () => { rt.opens += 1; });
    client.on("state", (s) => rt.states.push(`${s.state}${s.reason ? ` (${s.reason})` : ""}`));
    client.on("dropped", (d) => rt.dropped.push(d));
    client.on("error", (e) => rt.errors.push(`${e.code}: ${e.message}`));
    await client.connect();
    const sampleAt = (i) => (i % 2 === 0 ? Math.floor(i / 65536) : i % 65536) & 0xffff;
    // 100 ms of audio per call, paced by the wall clock.
    const t0 = performance.now();
    rt.timer = setInterval(() => {
      const due = Math.floor((performance.now() - t0) / 100) + 1;
      while (!rt.stopped && rt.sent < due) {
        const chunk = new Int16Array(CHUNK);
        for (let k = 0; k < CHUNK; k++) chunk[k] = sampleAt(rt.sent * CHUNK + k);
        client.sendAudio(chunk);
        rt.sent += 1;
      }
    }, 20);
  }, { url, CHUNK });

  const streamFor = (ms) => new Promise((r) => setTimeout(r, ms));
  await streamFor(3000);
  // Restart whichever relay holds the session, then the other one.
  const holder = (await openSessions(relays[0])) === 1 ? 0 : 1;
  assert.equal(await openSessions(relays[holder]), 1, "one relay holds the session");
  await rollingRestartOf(holder, page);
  await streamFor(3000);
  const other = 1 - holder;
  assert.equal(await openSessions(relays[other]), 1, "the session moved to the other relay");
  await rollingRestartOf(other, page);
  await streamFor(3000);

  const summary = await page.evaluate(async () => {
    const rt = window.rt;
    rt.stopped = true;
    clearInterval(rt.timer);
    const s = await rt.client.close({ flush: true });
    return { code: s.code, stats: s.stats, sent: rt.sent, states: rt.states, dropped: rt.dropped, errors: rt.errors };
  });
  assert.equal(summary.code, 1000, JSON.stringify(summary));
  // Each restart reached the client as a 1012 close frame, not a reset.
  const restarts = summary.states.filter((s) => s === 'reconnecting (close 1012 "service restart")');
  assert.equal(restarts.length, 2, summary.states.join(" → "));
  assert.deepEqual(summary.dropped, []);
  assert.equal(summary.stats.bytesDropped, 0);
  assert.deepEqual(problems, []);

  // What the devserver recorded, session by session in the order they began.
  const { sessions } = await control(devserver.base, "GET", "/control/sessions");
  const audio = sessions.filter((s) => s.bytes_received > 0).sort((a, b) => a.started_at_ms - b.started_at_ms);
  assert.ok(audio.length >= 3, `expected a session per relay lifetime: ${JSON.stringify(sessions.map((s) => [s.id, s.bytes_received, s.close_code_received]))}`);
  // Every session came through the relay with the operator's key, none with the browser's token.
  for (const s of sessions) assert.equal(s.http_status, 101, JSON.stringify(s));
  const runs = [];
  for (const s of audio) {
    const w = parseWav(await (await fetch(`${devserver.base}/control/sessions/${s.id}/audio`)).arrayBuffer());
    const raw = new Uint16Array(w.samples.length);
    for (let k = 0; k < raw.length; k++) raw[k] = Math.round(w.samples[k] * 32768) & 0xffff;
    assert.equal(raw.length % 2, 0, `session ${s.id}: odd sample count`);
    const first = ((raw[0] * 65536) + raw[1]) - 1;
    for (let k = 0; k < raw.length; k++) {
      if (raw[k] !== sampleAt(first + k)) {
        assert.fail(`session ${s.id}: sample ${k} is ${raw[k]}, expected ${sampleAt(first + k)} (stream position ${first + k}): a splice inside one session`);
      }
    }
    runs.push({ id: s.id, start: first, end: first + raw.length, closeReceived: s.close_code_received });
  }
  const total = summary.sent * CHUNK;
  assert.equal(runs[0].start, 0, "the stream starts at position 0");
  let duplicated = 0;
  for (let k = 1; k < runs.length; k++) {
    const gap = runs[k].start - runs[k - 1].end;
    assert.ok(gap <= 0, `gap of ${gap} samples between ${runs[k - 1].id} and ${runs[k].id}: ${JSON.stringify(runs)}`);
    duplicated += -gap;
  }
  assert.equal(Math.max(...runs.map((r) => r.end)), total, `the recording ends at the last sample sent: ${JSON.stringify(runs)}`);
  // Only the resent unconfirmed tail arrived twice.
  assert.ok(duplicated * 2 <= summary.stats.bytesResent,
    `${duplicated * 2} bytes recorded twice, but only ${summary.stats.bytesResent} were resent: ${JSON.stringify(runs)}`);
  // The drained sessions were closed towards the upstream with 1001, not reset.
  assert.ok(runs.filter((r) => r.closeReceived === 1001).length >= 2, JSON.stringify(runs));
  console.log(`# ${runs.length} sessions ${runs.map((r) => `${r.id}:[${r.start},${r.end})`).join(" ")}; ` +
    `${total} samples sent, ${duplicated} recorded twice (resent ${summary.stats.bytesResent / 2}); states: ${summary.states.join(" → ")}`);
});
