// The fault matrix: every failure the field reports, declared once with
// its bounds. run.mjs runs each scenario on every provider it lists, in a
// fresh page, and checks the bounds written here.
//
// A scenario:
//   id, title        names in the table
//   providers        where it is meaningful
//   ci               true: part of the `npm test` subset (`--ci`)
//   net              true: needs the two network namespaces (`--net`)
//   slow             true: long at default settings (skipped by --no-slow)
//   estMs            rough wall time, for scheduling and the case timeout
//   client           client option overrides (merged over the defaults)
//   before(t)        faults armed before the client starts (handshakes)
//   run(t)           the scenario, audio streaming throughout
//   bounds           what must hold, beyond the bounds every case has
//                    (unaccounted = 0, no page errors, no confirmed audio
//                    delivered again, generic: nothing stored twice):
//     detect         "immediate" (≤ 1 s), "stale" (≤ staleAfterMs + 1 s),
//                    "connect" (≤ connectTimeoutMs + 1 s), "resume"
//                    (≤ 2 s probation + 1 s after the page runs again),
//                    or { maxMs }: fault start → `reconnecting` (or `offline`/`failed`)
//     recover        "backoff" (≤ the remaining backoff + 1 s for a
//                    handshake), "online" (≤ 1 s after the browser's
//                    `online`), or { maxMs }: fault end (or detection) →
//                    first audio the devserver receives
//     reconnects     [min, max] of stats().reconnects
//     state          the final state (default "closed")
//     exactLoss      reported dropped ≤ not covered + this many ms (the
//                    loss is reported with the right milliseconds)
//     leak           the reconnect-cycle leak bounds (run.mjs)
//     quietWhileFault  no audio written between t.start() and t.end()
//                    (t.info.sent: bytesSent at both), beyond one chunk
//     finalsOnce     no stretch of audio in two finals
//
// Times: t.fault() marks the fault start (the first one) at the instant
// the devserver was told; t.end() marks its end. Detection and recovery
// are measured from those marks.
import { sleep } from "./lib.mjs";

export const PROVIDERS = ["deepgram", "omi", "generic"];

/** Defaults of the client (src/core/config.rs), for the bounds. */
export const CLIENT_DEFAULTS = {
  watchdog: { staleAfterMs: 25_000, stallAfterMs: 10_000 },
  connectTimeoutMs: 10_000,
  buffer: { ttlMs: 30_000, maxBytes: 960_000 },
};

const streamFor = (t, ms) => t.stream(ms);

function handshakeDelay(ms, { ci = false } = {}) {
  return {
    id: `handshake-delay-${ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`}`,
    title: `handshake delayed ${ms / 1000} s (first connect; audio queued from the first sample)`,
    providers: PROVIDERS, ci, estMs: ms + 6000,
    before: (t) => t.fault("delay-handshake", { ms, scope: "next", count: 1 }),
    async run(t) { t.end(t.started + ms); await streamFor(t, ms + 4000); },
    bounds: { reconnects: [0, 0], attempts: [1, 1], recover: { maxMs: 1000 } },
  };
}

function reject(status) {
  return {
    id: `reject-${status}`,
    title: `upgrade answered HTTP ${status}, three times`,
    providers: PROVIDERS, estMs: 10_000,
    before: (t) => t.fault("reject", { status, scope: "next", count: 3 }),
    async run(t) {
      // The browser hides the status (close 1006): the client retries.
      await t.waitPage(() => window.rt.opens >= 1, null, 20_000);
      t.end(await t.lastRejectedEnd());
      await streamFor(t, 3000);
    },
    bounds: { attempts: [4, 4], reconnects: [0, 0], recover: "backoff" },
  };
}

function close(code, { fatal = false, ci = false, providers = PROVIDERS } = {}) {
  return {
    id: `close-${code}`,
    title: fatal ? `server closes ${code} (fatal: reported, never retried)` : `server closes ${code}${code === 1000 ? " unsolicited" : ""}`,
    providers, ci, estMs: 9000,
    async run(t) {
      // Half-way through a second of audio: the counter's finals cover
      // whole seconds, so the fault finds audio that no final covers yet.
      await streamFor(t, 3500);
      await t.fault("close", { code, reason: `fault ${code}` });
      await streamFor(t, 4000);
    },
    bounds: fatal
      ? { detect: "immediate", state: "failed", reconnects: [0, 0], attempts: [1, 1] }
      : { detect: "immediate", recover: "backoff", reconnects: [1, 1] },
  };
}

function down(label, ms, { client = {}, ci = false, slow = false, exactLoss = null } = {}) {
  return {
    id: `down-${label}`,
    title: `server down ${label} (reset, then HTTP 503 at every upgrade)${Object.keys(client).length ? ` with ${describe(client)}` : ""}`,
    providers: PROVIDERS, ci, slow, client, estMs: ms + 20_000 + Math.min(ms, 60_000),
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("down", { ms }, { mark: false });
      const since = Date.now();
      await t.fault("reset");
      t.end(since + ms);
      await t.waitPage(() => window.rt.opens >= 2, null, ms + 90_000);
      await streamFor(t, 4000);
    },
    bounds: { detect: "immediate", recover: "backoff", reconnects: [1, 1], ...(exactLoss !== null ? { exactLoss } : {}) },
  };
}

function malformed(kind) {
  return {
    id: `malformed-${kind}`,
    title: `server sends ${kind === "huge-text" ? "a 2 MB text frame" : kind === "invalid-json" ? "invalid JSON" : "an unexpected binary frame"}`,
    providers: PROVIDERS, ci: true, estMs: 9000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("malformed", { kind });
      await streamFor(t, 4000);
    },
    // Garbage is reported (an `error` event), not a reason to drop a
    // connection that still carries audio.
    bounds: { reconnects: [0, 0] },
  };
}

/**
 * The page stops running for `ms`: no timer, no event listener, no JS at
 * all (CDP Debugger.pause; the network stack keeps running, frames wait).
 * CDP Page.setWebLifecycleState does not freeze pages in this Chromium
 * (checked: timers keep firing every 100 ms and no freeze event comes,
 * headless or not), so a freeze is this pause with the events Chrome fires
 * around one: `freeze` before, `resume` after (dispatched as the page runs
 * again, so the first timers may run just before it).
 */
async function pageStopped(t, ms, { lifecycleEvents, during = async () => {} }) {
  await streamFor(t, 3000);
  if (lifecycleEvents) await t.page.evaluate(() => document.dispatchEvent(new Event("freeze")));
  t.start();
  await t.cdp.send("Debugger.enable");
  const paused = new Promise((resolve) => t.cdp.once("Debugger.paused", resolve));
  await t.cdp.send("Debugger.pause");
  await Promise.race([paused, sleep(5000).then(() => { throw new Error("the page did not pause in 5 s"); })]);
  await during();
  await sleep(ms);
  await t.cdp.send("Debugger.resume");
  await t.cdp.send("Debugger.disable");
  t.end();
  if (lifecycleEvents) await t.page.evaluate(() => document.dispatchEvent(new Event("resume")));
  await streamFor(t, 8000);
}

function describe(client) {
  const parts = [];
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === "object") walk(v, `${prefix}${k}.`);
      else parts.push(`${prefix}${k} ${v}`);
    }
  };
  walk(client, "");
  return parts.join(", ");
}

const FAST_CYCLES = { reconnect: { initialDelayMs: 20, maxDelayMs: 100, jitter: 0.5, resetAfterMs: 100 } };

export const SCENARIOS = [
  {
    id: "healthy",
    title: "healthy link, 8 s",
    providers: PROVIDERS, estMs: 10_000,
    run: (t) => streamFor(t, 8000),
    bounds: { reconnects: [0, 0], attempts: [1, 1] },
  },
  handshakeDelay(500),
  handshakeDelay(2000, { ci: true }),
  handshakeDelay(8000),
  {
    id: "handshake-past-timeout",
    title: "handshake delayed 12 s, past connectTimeoutMs (10 s)",
    providers: PROVIDERS, estMs: 20_000,
    before: (t) => t.fault("delay-handshake", { ms: 12_000, scope: "next", count: 1 }),
    async run(t) {
      await t.waitPage(() => window.rt.opens >= 1, null, 30_000);
      await streamFor(t, 3000);
    },
    bounds: { detect: "connect", recover: "backoff", attempts: [2, 2], reconnects: [0, 0] },
  },
  reject(401), reject(429), reject(500), reject(503),
  close(1000), close(1001), close(1011), close(1012), close(4000), close(4500),
  close(1008, { fatal: true, ci: true }),
  close(4001, { fatal: true }),
  {
    id: "close-held",
    title: "server sends close 1001, then holds the TCP connection 1.5 s answering nothing (a proxy that forwarded the close)",
    providers: PROVIDERS, ci: true, estMs: 10_000,
    async run(t) {
      await streamFor(t, 3500);
      await t.fault("close", { code: 1001, reason: "held", holdMs: 1500 });
      await streamFor(t, 4000);
    },
    // The browser reports the close only when the connection ends (the
    // hold, or its own closing-handshake timeout): detection is bounded by
    // that. Meanwhile the socket is CLOSING and takes no audio.
    bounds: { detect: { maxMs: 2500 }, recover: "backoff", reconnects: [1, 1] },
  },
  {
    id: "reset",
    title: "TCP reset (RST, no close frame)",
    providers: PROVIDERS, ci: true, estMs: 9000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("reset");
      await streamFor(t, 4000);
    },
    bounds: { detect: "immediate", recover: "backoff", reconnects: [1, 1] },
  },
  {
    id: "blackhole",
    title: "blackhole at the server for 40 s, default settings (no FIN, no RST, nothing read or written)",
    providers: PROVIDERS, ci: true, estMs: 42_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("blackhole", { ms: 40_000 });
      await t.waitPage(() => window.rt.opens >= 2, null, 60_000);
      await streamFor(t, 4000);
    },
    bounds: { detect: "stale", recover: "backoff", reconnects: [1, 1] },
  },
  down("5s", 5000),
  down("60s", 60_000),
  down("60s-cap5s", 60_000, { ci: true, client: { reconnect: { maxDelayMs: 5000 } } }),
  down("10min", 600_000, { slow: true, exactLoss: 1000 }),
  down("10min-scaled", 100_000, { exactLoss: 1000, client: { buffer: { ttlMs: 5000 }, reconnect: { maxDelayMs: 6000 } } }),
  {
    id: "flap",
    title: "flapping: every session closed 1012 once it lived 1 s, for 60 s",
    providers: PROVIDERS, estMs: 130_000,
    async run(t) {
      await streamFor(t, 3000);
      const since = Date.now();
      await t.fault("flap", { ms: 1000, durationMs: 60_000 });
      t.end(since + 60_000);
      await sleep(60_000);
      // After the flapping the client must come back by itself.
      const opens = await t.opens();
      await t.waitPage((n) => window.rt.opens > n || window.rt.client.state === "open", opens, 90_000);
      await streamFor(t, 4000);
    },
    bounds: { detect: "immediate", recover: "backoff" },
  },
  {
    id: "stop-acking",
    title: "server output stalled for 40 s: no acks, transcripts held back",
    providers: ["generic"], estMs: 50_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("stop-acking", { enabled: true });
      await sleep(40_000);
      await t.fault("stop-acking", { enabled: false }, { mark: false });
      t.end();
      await streamFor(t, 5000);
    },
    bounds: { detect: "stale" },
  },
  {
    id: "stuck-reader",
    title: "server keeps sending pings but has stopped reading, for 45 s",
    providers: ["omi"], ci: true, estMs: 55_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("stuck-reader", { ms: 45_000 });
      await sleep(45_000);
      t.end();
      await streamFor(t, 5000);
    },
    bounds: { detect: "stale" },
  },
  {
    id: "interims-then-reset",
    title: "interim results only for 5 s, then a reset (the finals never come)",
    providers: ["deepgram"], ci: true, estMs: 14_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("interims-only", { enabled: true }, { mark: false });
      await sleep(5000);
      await t.fault("interims-only", { enabled: false }, { mark: false });
      await t.fault("reset");
      await streamFor(t, 4000);
    },
    bounds: { detect: "immediate", recover: "backoff", reconnects: [1, 1] },
  },
  {
    id: "interims-40s-then-reset",
    title: "interim results only for 40 s (past buffer.ttlMs), then a reset",
    providers: ["deepgram"], estMs: 50_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("interims-only", { enabled: true }, { mark: false });
      await sleep(40_000);
      await t.fault("interims-only", { enabled: false }, { mark: false });
      await t.fault("reset");
      await streamFor(t, 4000);
    },
    bounds: { detect: "immediate", recover: "backoff", reconnects: [1, 1] },
  },
  malformed("invalid-json"), malformed("huge-text"), malformed("unexpected-binary"),
  {
    id: "slow-reads",
    title: "server reads at 1/8 real time (4 kB/s) for 30 s, then at full speed (backpressure)",
    providers: PROVIDERS, estMs: 50_000,
    async run(t) {
      await streamFor(t, 3000);
      await t.fault("slow-reads", { bytesPerSec: 4000 });
      await sleep(30_000);
      await t.fault("slow-reads", { bytesPerSec: 0 }, { mark: false });
      t.end();
      await streamFor(t, 10_000);
    },
    // A slow server is not a dead one: no reconnect, nothing lost.
    bounds: { reconnects: [0, 0] },
  },
  {
    id: "cycles-200",
    title: `200 reconnect cycles (close 1012 each), leak check; ${describe(FAST_CYCLES)}`,
    providers: PROVIDERS, ci: true, estMs: 150_000, client: FAST_CYCLES,
    async run(t) {
      await t.waitPage(() => window.rt.opens >= 1, null, 10_000);
      const probes = {};
      for (let i = 1; i <= 200; i++) {
        const opens = await t.opens();
        await t.closeCurrent({ code: 1012, reason: `cycle ${i}` }, { mark: i === 1 });
        // Each connection lives until it carried what waited and got a
        // confirmation: a leak check in steady state, not a pile-up of
        // audio no connection lived long enough to confirm.
        await t.waitPage(([n, acked]) => window.rt.opens > n && window.rt.client.state === "open"
          && window.rt.client.stats().bytesQueued <= 3200 && window.rt.client.stats().bytesAcked > acked,
        [opens, await t.acked()], 10_000);
        if (i === 20) probes.at20 = await t.memory();
      }
      probes.at200 = await t.memory();
      t.info.leak = probes;
      await streamFor(t, 2000);
    },
    bounds: { reconnects: [200, 200], leak: { heapBytes: 256 << 10, wasmBytes: 64 << 10 } },
  },
  {
    id: "freeze-60s",
    title: "page frozen 60 s (freeze event, no JS runs), then resumed (resume event)",
    providers: PROVIDERS, estMs: 75_000,
    run: (t) => pageStopped(t, 60_000, { lifecycleEvents: true }),
    bounds: { detect: "resume", recover: { maxMs: 3000 } },
  },
  {
    id: "stall-60s",
    title: "page does not run for 60 s with no lifecycle event (a sleeping laptop, a throttled tab)",
    providers: PROVIDERS, estMs: 75_000,
    run: (t) => pageStopped(t, 60_000, { lifecycleEvents: false }),
    bounds: { detect: "resume", recover: { maxMs: 3000 } },
  },
  {
    id: "freeze-12s",
    title: "page frozen 12 s (freeze event, no JS runs), the connection alive, then resumed",
    // Omi keeps a connection 90 s without audio; Deepgram (and the
    // devserver's generic endpoint) close after 10 s, so there a 12 s
    // freeze is a dead connection, which freeze-10s-dead covers.
    providers: ["omi"], ci: true, estMs: 27_000,
    run: (t) => pageStopped(t, 12_000, { lifecycleEvents: true }),
    // A surviving connection is kept: no reconnect, nothing resent that
    // the provider would transcribe twice.
    bounds: { reconnects: [0, 0], recover: { maxMs: 3000 } },
  },
  {
    id: "freeze-10s-dead",
    title: "page frozen 10 s while its connection died (blackholed: no FIN, no RST), then resumed",
    providers: PROVIDERS, ci: true, estMs: 25_000,
    run: (t) => pageStopped(t, 10_000, {
      lifecycleEvents: true,
      during: () => t.fault("blackhole", { ms: 60_000 }, { mark: false }),
    }),
    // Replaced within the 2 s proof of life plus a handshake.
    bounds: { detect: "resume", recover: { maxMs: 3000 }, reconnects: [1, 1] },
  },
  {
    id: "offline-6s",
    title: "browser offline 6 s (Playwright setOffline: the offline event), then online",
    providers: PROVIDERS, ci: true, estMs: 16_000,
    async run(t) {
      await streamFor(t, 3000);
      t.start();
      await t.page.context().setOffline(true);
      const before = await t.sent();
      await streamFor(t, 6000);
      const after = await t.sent();
      await t.page.context().setOffline(false);
      t.end();
      t.info.sent = [before, after];
      await streamFor(t, 4000);
    },
    // Audio is held, not written into a link that cannot carry it, so
    // nothing reaches the server twice and no final is shown twice.
    bounds: { detect: { maxMs: 1000 }, recover: "online", quietWhileFault: true, finalsOnce: true },
  },
  {
    id: "hidden-throttled",
    title: "page hidden 30 s with timer wake-ups aligned to 1 s (Chrome's hidden-page throttling, emulated)",
    providers: PROVIDERS, estMs: 40_000,
    async run(t) {
      await streamFor(t, 3000);
      t.start();
      await t.page.evaluate(() => window.rt.setHidden(true, 1000));
      await sleep(30_000);
      await t.page.evaluate(() => window.rt.setHidden(false));
      t.end();
      await streamFor(t, 4000);
    },
    bounds: { reconnects: [0, 0] },
  },
  // --- network level: two namespaces, one veth pair -------------------
  {
    id: "link-down-20s",
    title: "the browser's link down 20 s, then up (a true blackhole: no FIN, no RST)",
    providers: PROVIDERS, net: true, ci: true, estMs: 32_000,
    async run(t) {
      await streamFor(t, 3000);
      t.start();
      t.net.down();
      await sleep(20_000);
      t.net.up();
      t.end();
      await streamFor(t, 6000);
    },
    bounds: { detect: { maxMs: 1000 }, recover: "online" },
  },
  {
    id: "link-down-90s",
    title: "the browser's link down 90 s (past buffer.ttlMs): the loss reported, to the millisecond",
    providers: PROVIDERS, net: true, estMs: 102_000,
    async run(t) {
      await streamFor(t, 3000);
      t.start();
      t.net.down();
      await sleep(90_000);
      t.net.up();
      t.end();
      await streamFor(t, 6000);
    },
    bounds: { detect: { maxMs: 1000 }, recover: "online", exactLoss: 1000 },
  },
  {
    id: "link-flap",
    title: "the browser's link flapping: down 2 s, up 3 s, ten times",
    providers: PROVIDERS, net: true, estMs: 62_000,
    async run(t) {
      await streamFor(t, 3000);
      t.start();
      for (let i = 0; i < 10; i++) {
        t.net.down();
        await sleep(2000);
        t.net.up();
        t.end();
        await sleep(3000);
      }
      await streamFor(t, 3000);
    },
    bounds: { detect: { maxMs: 1000 }, recover: "online" },
  },
];
