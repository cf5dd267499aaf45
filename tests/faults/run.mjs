// `npm run faults`: the fault matrix, driving the real package (pkg/) in
// headless Chromium against the devserver (counter engine), one fresh page
// per scenario and provider. Every sample the page pushed is accounted
// for by its stream position: covered by a final transcript the user saw,
// or reported in a `dropped` event; what is neither is *unaccounted*, and
// must be 0. Prints a markdown table, writes target/faults.json, and (for
// the full matrix) the table in docs/reliability.md. A broken bound fails
// the run (exit 1).
//
//   node tests/faults/run.mjs [--only id[,id...]] [--provider p[,p...]]
//                             [--ci] [--net] [--no-net] [--no-slow] [--jobs N]
//
// --ci       the `npm test` subset (scenarios marked ci), network-level
//            ones included when namespaces can be made here
// --net      only the network-level scenarios (namespaces, veth pair)
// --no-net   leave them out; --no-slow leaves out the 10-minute default run
// --jobs N   scenarios run N at a time (default 3), each with its own
//            devserver and browser; the network-level ones run one at a
//            time beside them, in their own pair of namespaces
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import os from "node:os";
import {
  ROOT, buildIfNeeded, startDevserver, launchChromium, control, sleep, deliveries, streamDelivery,
  finalRanges, union, measure, clip, overlapSamples, intersect, ms, RATE,
} from "./lib.mjs";
import { SCENARIOS, PROVIDERS, CLIENT_DEFAULTS } from "./scenarios.mjs";
import * as net from "./net.mjs";

// --- arguments -------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name) => {
  const i = argv.indexOf(name);
  if (i < 0) return null;
  if (i + 1 >= argv.length) throw new Error(`${name} needs a value`);
  return argv[i + 1];
};
const known = new Set(["--only", "--provider", "--ci", "--net", "--no-net", "--no-slow", "--jobs"]);
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) { console.error(`unknown argument ${argv[i]}\n${readFileSync(new URL(import.meta.url), "utf8").split("\n").slice(9, 21).join("\n")}`); process.exit(2); }
  if (["--only", "--provider", "--jobs"].includes(argv[i])) i++;
}
const only = value("--only")?.split(",");
const providersWanted = value("--provider")?.split(",");
const ci = flag("--ci");
const netOnly = flag("--net");
const noNet = flag("--no-net");
const noSlow = flag("--no-slow");
const jobs = Math.max(1, Number(value("--jobs") ?? 3));
const fullMatrix = !only && !providersWanted && !ci && !netOnly && !noNet && !noSlow;

for (const id of only ?? []) {
  if (!SCENARIOS.some((s) => s.id === id)) { console.error(`no scenario ${id}; scenarios: ${SCENARIOS.map((s) => s.id).join(" ")}`); process.exit(2); }
}
for (const p of providersWanted ?? []) {
  if (!PROVIDERS.includes(p)) { console.error(`no provider ${p}; providers: ${PROVIDERS.join(" ")}`); process.exit(2); }
}

// --- the cases ------------------------------------------------------------

let cases = [];
for (const s of SCENARIOS) {
  if (only && !only.includes(s.id)) continue;
  if (ci && !s.ci) continue;
  if (netOnly && !s.net) continue;
  if (noNet && s.net) continue;
  if (noSlow && s.slow) continue;
  for (const p of s.providers) {
    if (providersWanted && !providersWanted.includes(p)) continue;
    cases.push({ scenario: s, provider: p });
  }
}
let netStatus = null;
if (cases.some((c) => c.scenario.net)) {
  netStatus = net.probe();
  if (!netStatus.ok) {
    console.log(`# network-level scenarios skipped: ${netStatus.reason}`);
    cases = cases.filter((c) => !c.scenario.net);
  }
}
if (cases.length === 0) { console.error("no scenario selected"); process.exit(2); }

// --- helpers ----------------------------------------------------------------

function merge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && a?.[k] && typeof a[k] === "object" ? merge(a[k], v) : v;
  }
  return out;
}

function seedOf(text) {
  let h = 2166136261;
  for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h % 1_000_000_007;
}

function withTimeout(promise, msLimit, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${msLimit} ms`)), msLimit); }),
  ]);
}

const PATHS = { deepgram: "/v1/listen", omi: "/v4/web/listen", generic: "/v1/stream" };

// --- one case -----------------------------------------------------------------

/** The context a scenario's `before`/`run` get. */
class Ctx {
  constructor({ server, page, cdp, provider, netCtl }) {
    Object.assign(this, { server, page, cdp, provider, net: netCtl });
    this.marks = { start: null, end: null };
    this.faults = [];
    this.info = {};
    this.started = null;
    this.taken = { events: [], finals: [] };
  }

  stream(msLimit) { return sleep(msLimit); }

  /** POSTs a fault; the first one marks the fault start unless `mark: false`. */
  async fault(cmd, body = {}, { mark = true } = {}) {
    const wall = Date.now();
    const r = await control(this.server, "POST", `/control/${cmd}`, body);
    this.faults.push({ cmd, body, wall });
    if (mark && this.marks.start === null) this.marks.start = wall;
    return r;
  }

  /** Closes the live session, waiting (bounded) until the devserver lists it as live. */
  async closeCurrent(body, { mark = true } = {}) {
    for (let i = 0; i < 80; i++) {
      const r = await this.fault("close", body, { mark: mark && i === 0 });
      if (r.applied_to >= 1) return;
      await sleep(25);
    }
    throw new Error("no live session to close in 2 s");
  }

  start(wall = Date.now()) { if (this.marks.start === null) this.marks.start = wall; }
  end(wall = Date.now()) { this.marks.end = wall; }

  waitPage(fn, arg, timeout) {
    return this.page.waitForFunction(fn, arg, { timeout, polling: 50 });
  }

  opens() { return this.page.evaluate(() => window.rt.opens); }

  acked() { return this.page.evaluate(() => window.rt.client.stats().bytesAcked); }

  sent() { return this.page.evaluate(() => window.rt.client.stats().bytesSent); }

  /** When the last rejected handshake was answered (devserver clock). */
  async lastRejectedEnd() {
    const { sessions } = await control(this.server, "GET", "/control/sessions");
    const rejected = sessions.filter((s) => s.http_status >= 400);
    return Math.max(...rejected.map((s) => s.ended_at_ms ?? s.started_at_ms));
  }

  /**
   * JS heap after a full GC, the WASM memory, and the package's live
   * callbacks. The page's own records are taken out first (and kept here),
   * so what grows is the package's.
   */
  async memory() {
    const taken = await this.page.evaluate(() => window.rt.takeRecords());
    this.taken.events.push(...taken.events);
    this.taken.finals.push(...taken.finals);
    await this.cdp.send("HeapProfiler.collectGarbage");
    const heap = await this.cdp.send("Runtime.getHeapUsage");
    const page = await this.page.evaluate(() => ({ ...window.rt.client.debugStats(), wasmBytes: window.rt.wasmBytes() }));
    return { heapUsed: heap.usedSize, ...page };
  }
}

async function runCase(worker, { scenario, provider }) {
  const { server, browser } = worker;
  await control(server, "POST", "/control/clear", {});
  await control(server, "DELETE", "/control/sessions");
  const context = await browser.newContext();
  const errors = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      // Chromium's own log line for every failed WebSocket handshake (the
      // scenario made it fail) is the browser's, not the page's.
      if (m.type() === "error" && !/^WebSocket connection to '.*' failed: /.test(m.text())) errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${server.base}/`);
    await page.waitForSelector("html[data-ready=true]", { timeout: 20_000 });
    const cdp = await context.newCDPSession(page);
    const options = merge({
      url: `${server.ws}${PATHS[provider]}?engine=counter`,
      provider,
      token: "t",
      seed: seedOf(`${scenario.id}/${provider}`),
    }, scenario.client);
    const t = new Ctx({ server, page, cdp, provider, netCtl: worker.net });
    if (scenario.before) await scenario.before(t);
    t.started = Date.now();
    await page.evaluate((o) => window.rt.start(o), { options });
    await scenario.run(t);
    const closeMs = (options.closeTimeoutMs ?? 5000) + 10_000;
    const report = await withTimeout(page.evaluate(() => window.rt.finish({ flush: true })), closeMs, "close()");
    report.events = t.taken.events.concat(report.events);
    report.finals = t.taken.finals.concat(report.finals);
    // The devserver records a session when it ends; the last one ends with the close.
    await sleep(200);
    const sessions = await deliveries(server);
    let stored = null;
    const stream = sessions.find((s) => s.stream)?.stream;
    if (provider === "generic" && stream) stored = await streamDelivery(server, stream);
    return { report, sessions, stored, marks: t.marks, faults: t.faults, info: t.info, options, errors };
  } finally {
    await context.close().catch(() => {});
  }
}

// --- accounting -------------------------------------------------------------------

function account(c, data) {
  const { provider } = c;
  const { report, sessions, stored, marks } = data;
  const P = report.pushed;
  const finals = report.finals.map((f) => ({ ...f, ranges: finalRanges(f.text) }));
  const finalIntervals = finals.flatMap((f) => f.ranges);
  const beyond = finalIntervals.filter(([, b]) => b > P);
  const covered = measure(clip(union(finalIntervals), P));
  const dropped = report.events.filter((e) => e.type === "dropped");
  const droppedBytes = dropped.reduce((n, d) => n + d.bytes, 0);
  const droppedS = droppedBytes / 2;
  const reasons = {};
  for (const d of dropped) reasons[d.reason] = (reasons[d.reason] ?? 0) + d.audioMs;
  const uncovered = P - covered;
  const unaccounted = Math.max(0, uncovered - droppedS);
  const overReported = Math.max(0, droppedS - uncovered);

  const pieces = sessions.flatMap((s) => s.pieces.map((p) => ({ ...p, session: s.id })));
  const deliveredU = union(pieces.map((p) => [p.start, p.end]));
  const wireTotal = pieces.reduce((n, p) => n + (p.end - p.start), 0);
  const wireDup = wireTotal - measure(deliveredU);
  // Delivered: what the server received, by position (the generic store
  // keeps at most 10 min of a stream, gaps included, so it is not the
  // measure of delivery; it is the measure of what was stored twice).
  const delivered = measure(clip(deliveredU, P));
  let dupDelivered = wireDup;
  let storedDup = null;
  if (provider === "generic") {
    storedDup = overlapSamples(stored?.runs ?? []);
    dupDelivered = storedDup;
  }
  // What the client sent must decode, every sample (the generic store
  // keeps the gaps the client reported with `seek` as silence: not counted).
  const undecodable = sessions.reduce((n, s) => n + s.undecodable, 0);

  // Audio delivered again on a connection the client opened after a final
  // covering it had reached the user: the client resent what was already
  // confirmed (Deepgram and Omi confirm by finals; the generic protocol by
  // acks, which the page does not see). A piece is placed at its
  // connection's start, not at its arrival: a stuck server that reads an
  // abandoned connection's backlog late did not receive a resend.
  let dupConfirmed = 0;
  if (provider !== "generic") {
    const opened = new Map(sessions.map((s) => [s.id, s.started_at_ms]));
    const timeline = [
      ...finals.map((f) => ({ t: f.wall + 20, final: f })),
      ...pieces.map((p) => ({ t: opened.get(p.session) ?? p.at, piece: p })),
    ].sort((a, b) => a.t - b.t || (a.piece ? -1 : 1));
    let seen = [];
    for (const e of timeline) {
      if (e.final) seen = union(seen.concat(e.final.ranges));
      else dupConfirmed += measure(intersect(seen, [[e.piece.start, e.piece.end]]));
    }
  }
  const shownTwice = overlapSamples(finalIntervals);

  // Detection: fault start → the client's first reaction.
  const after = (w) => report.events.filter((e) => e.wall >= w);
  let detection = null;
  if (marks.start !== null) {
    const e = after(marks.start).find((x) => x.type === "reconnecting"
      || (x.type === "state" && (x.state === "failed" || x.state === "offline")));
    if (e) detection = { ms: e.wall - marks.start, how: e.type === "reconnecting" ? "reconnecting" : e.state, wall: e.wall };
  }
  const reconnectAfterEnd = marks.end !== null ? after(marks.end).find((x) => x.type === "reconnecting") : null;
  // Recovery: fault end (or, for faults that stay with the dead
  // connection, its detection) → the first audio the devserver received.
  const ref = marks.end ?? detection?.wall ?? null;
  let recovery = null;
  if (ref !== null) {
    const first = pieces.filter((p) => p.at >= ref).sort((a, b) => a.at - b.at)[0];
    if (first) recovery = { ms: first.at - ref, at: first.at, ref };
  }
  const scheduled = report.events.filter((e) => e.type === "reconnecting").map((e) => e.wall + e.delayMs).sort((a, b) => a - b);
  // The first attempt scheduled after the fault ended: one scheduled just
  // before it (the last rejected handshake's own) met the fault and failed.
  const nextAttempt = ref === null ? null : scheduled.find((s) => s > ref);
  const remainingBackoff = ref === null || nextAttempt === undefined ? 0 : Math.max(0, nextAttempt - ref);
  const online = marks.end === null ? null : report.events.find((e) => e.type === "online" && e.wall >= marks.end - 50);

  // close() after a fatal error returns the summary taken when the session
  // ended; the ledger goes on counting audio pushed after it (reported
  // `failed`), so the check reads stats() after the close.
  const stats = report.statsAfter;
  return {
    capturedMs: ms(P),
    deliveredMs: ms(delivered),
    coveredMs: ms(covered),
    droppedMs: ms(droppedS),
    dropReasons: reasons,
    unaccountedMs: ms(unaccounted),
    overReportedMs: ms(overReported),
    uncoveredMs: ms(uncovered),
    dupDeliveredMs: ms(dupDelivered),
    wireDupMs: ms(wireDup),
    storedDupMs: storedDup === null ? null : ms(storedDup),
    dupConfirmedMs: ms(dupConfirmed),
    shownTwiceMs: ms(shownTwice),
    undecodable,
    beyondPushed: beyond.length,
    detection, recovery, remainingBackoffMs: remainingBackoff,
    reconnectAfterEndMs: reconnectAfterEnd && marks.end !== null ? reconnectAfterEnd.wall - marks.end : null,
    onlineAfterEndMs: online ? online.wall - marks.end : null,
    attempts: stats.attempts,
    reconnects: stats.reconnects,
    maxQueuedBytes: report.maxQueued,
    maxBufferedAmount: report.maxBuffered,
    maxWasmBytes: report.maxWasm,
    finalState: report.summary.state,
    reconnectReasons: report.events.filter((e) => e.type === "state" && e.state === "reconnecting").map((e) => e.reason),
    closeCode: report.summary.code,
    pageErrors: data.errors.filter((e) => e.startsWith("pageerror")).length,
    consoleErrors: data.errors.filter((e) => e.startsWith("console")).length,
    skippedMs: report.skippedMs,
    ledger: {
      pushed: stats.bytesPushed, sent: stats.bytesSent, queued: stats.bytesQueued, dropped: stats.bytesDropped,
      reported: droppedBytes, resent: stats.bytesResent,
    },
    sessions: sessions.length,
    audioSessions: sessions.filter((s) => s.bytes_received > 0).length,
  };
}

// --- bounds ---------------------------------------------------------------------

const fmtS = (x) => `${(x / 1000).toFixed(1)} s`;

function checkBounds(c, m, data) {
  const b = c.scenario.bounds ?? {};
  const cfg = merge(CLIENT_DEFAULTS, data.options);
  const out = [];
  const add = (name, ok, limit, got) => out.push({ name, ok: Boolean(ok), limit, got });

  add("unaccounted", m.unaccountedMs === 0, "= 0", `${m.unaccountedMs.toFixed(1)} ms`);
  const tally = (prefix) => {
    const counts = new Map();
    for (const e of data.errors.filter((x) => x.startsWith(prefix))) {
      const text = e.slice(prefix.length).trim().slice(0, 120);
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
    return [...counts].map(([text, n]) => `${n}× "${text}"`).join(", ") || "0";
  };
  add("page errors", m.pageErrors === 0, "= 0", tally("pageerror:"));
  add("console errors", m.consoleErrors === 0, "= 0", tally("console:"));
  add("undecodable", m.undecodable === 0 && m.beyondPushed === 0, "= 0", `${m.undecodable} samples, ${m.beyondPushed} finals past the end`);
  const l = m.ledger;
  add("ledger", l.pushed === l.sent + l.queued + l.dropped && l.dropped === l.reported && l.pushed === m.capturedMs * 32,
    "pushed = sent + queued + dropped = captured; dropped = Σ events",
    `pushed ${l.pushed}, sent ${l.sent}, queued ${l.queued}, dropped ${l.dropped}, events ${l.reported}`);
  if (c.provider === "generic") {
    add("stored twice", m.storedDupMs === 0, "= 0", `${m.storedDupMs} ms`);
  } else {
    add("confirmed resent", m.dupConfirmedMs === 0, "= 0", `${m.dupConfirmedMs.toFixed(1)} ms`);
  }
  const state = b.state ?? "closed";
  add("state", m.finalState === state, state, m.finalState);
  if (b.reconnects) {
    const [lo, hi] = b.reconnects;
    add("reconnects", m.reconnects >= lo && m.reconnects <= hi, lo === hi ? `${lo}` : `${lo}..${hi}`, `${m.reconnects}`);
  }
  if (b.attempts) {
    const [lo, hi] = b.attempts;
    add("attempts", m.attempts >= lo && m.attempts <= hi, lo === hi ? `${lo}` : `${lo}..${hi}`, `${m.attempts}`);
  }
  if (b.detect) {
    if (b.detect === "resume") {
      // A connection that did not survive the freeze is replaced within
      // the 2 s proof of life plus a handshake of the resume.
      const got = m.reconnectAfterEndMs;
      add("detect", got === null || got <= 3000, "≤ 3.0 s after resume (if replaced)", got === null ? "kept" : fmtS(got));
    } else {
      const limit = b.detect === "immediate" ? 1000
        : b.detect === "stale" ? cfg.watchdog.staleAfterMs + 1000
          : b.detect === "connect" ? cfg.connectTimeoutMs + 1000
            : b.detect.maxMs;
      add("detect", m.detection !== null && m.detection.ms <= limit, `≤ ${fmtS(limit)}`,
        m.detection ? `${fmtS(m.detection.ms)} (${m.detection.how})` : "never");
    }
  }
  if (b.recover) {
    let limit;
    let label;
    if (b.recover === "backoff") { limit = m.remainingBackoffMs + 1000; label = `≤ backoff ${fmtS(m.remainingBackoffMs)} + 1 s`; }
    else if (b.recover === "online") {
      if (m.onlineAfterEndMs !== null) { limit = m.onlineAfterEndMs + 1000; label = `≤ 1 s after online (online ${Math.max(0, m.onlineAfterEndMs)} ms after link up)`; }
      else { limit = m.remainingBackoffMs + 1000; label = `≤ backoff ${fmtS(m.remainingBackoffMs)} + 1 s (no online event)`; }
    } else { limit = b.recover.maxMs; label = `≤ ${fmtS(limit)}`; }
    add("recover", m.recovery !== null && m.recovery.ms <= limit, label, m.recovery ? fmtS(m.recovery.ms) : "never");
  }
  if (b.exactLoss !== undefined) {
    add("loss reported exactly", m.overReportedMs <= b.exactLoss, `reported − uncovered ≤ ${b.exactLoss} ms`,
      `${m.overReportedMs.toFixed(1)} ms over`);
  }
  if (b.quietWhileFault) {
    // Nothing written into a link the browser says is down: at most the
    // chunk already handed over when the event arrived.
    const [before, after] = data.info.sent ?? [0, Infinity];
    add("audio written while offline", after - before <= 3200, "≤ 3200 B", `${after - before} B`);
  }
  if (b.finalsOnce) {
    add("finals shown twice", m.shownTwiceMs === 0, "= 0", `${m.shownTwiceMs} ms`);
  }
  if (b.leak) {
    const lk = data.info.leak;
    if (!lk) add("leak", false, "probes", "missing");
    else {
      const heap = lk.at200.heapUsed - lk.at20.heapUsed;
      const wasm = lk.at200.wasmBytes - lk.at20.wasmBytes;
      add("listeners", lk.at200.liveListeners <= lk.at20.liveListeners, `≤ ${lk.at20.liveListeners} (cycle 20)`, `${lk.at200.liveListeners}`);
      add("timers", lk.at200.liveTimers <= lk.at20.liveTimers, `≤ ${lk.at20.liveTimers} (cycle 20)`, `${lk.at200.liveTimers}`);
      add("JS heap growth", heap <= b.leak.heapBytes, `≤ ${b.leak.heapBytes >> 10} KiB (cycles 20→200)`, `${(heap / 1024).toFixed(0)} KiB`);
      add("WASM memory growth", wasm <= b.leak.wasmBytes, `≤ ${b.leak.wasmBytes >> 10} KiB (cycles 20→200)`, `${(wasm / 1024).toFixed(0)} KiB`);
    }
  }
  return out;
}

// --- workers --------------------------------------------------------------------------

let browserVersion = "?";

async function makeWorker(kind, netCtl = null) {
  const server = netCtl
    ? await startDevserver({ netns: netCtl.b, pageHost: net.ADDR_B })
    : await startDevserver();
  const browser = await launchChromium(netCtl ? { netns: netCtl.a } : {});
  browserVersion = browser.version();
  return { kind, server, browser, net: netCtl };
}

async function stopWorker(w) {
  await w.browser.close().catch(() => {});
  await w.server.stop();
}

const results = [];
const t0 = Date.now();

function caseTimeout(c) {
  return 2 * (c.scenario.estMs ?? 60_000) + 90_000;
}

async function runQueue(queue, worker) {
  while (queue.length) {
    const c = queue.shift();
    const started = Date.now();
    let r;
    try {
      const data = await withTimeout(runCase(worker, c), caseTimeout(c), `${c.scenario.id}/${c.provider}`);
      const m = account(c, data);
      const bounds = checkBounds(c, m, data);
      r = { id: c.scenario.id, provider: c.provider, title: c.scenario.title, net: Boolean(c.scenario.net), ...m, bounds, info: data.info,
        faults: data.faults, marks: data.marks, options: data.options, errors: data.errors, wallMs: Date.now() - started };
    } catch (e) {
      r = { id: c.scenario.id, provider: c.provider, title: c.scenario.title, net: Boolean(c.scenario.net), error: String(e && e.stack || e),
        bounds: [{ name: "ran", ok: false, limit: "completes", got: String(e && e.message || e) }], wallMs: Date.now() - started };
      // A broken case may leave the worker's browser or server unusable.
      await stopWorker(worker).catch(() => {});
      Object.assign(worker, await makeWorker(worker.kind, worker.net));
    }
    results.push(r);
    const failed = r.bounds.filter((x) => !x.ok);
    console.log(`# ${failed.length ? "FAIL" : "ok  "} ${r.id}/${r.provider} in ${fmtS(r.wallMs)}`
      + (failed.length ? `: ${failed.map((x) => `${x.name} ${x.got} (bound ${x.limit})`).join("; ")}` : "")
      + (failed.length && r.reconnectReasons.length ? ` [reconnected: ${r.reconnectReasons.slice(0, 3).join("; ")}]` : ""));
  }
}

buildIfNeeded();
const byLength = (a, b) => (b.scenario.estMs ?? 0) - (a.scenario.estMs ?? 0);
const local = cases.filter((c) => !c.scenario.net).sort(byLength);
const netCases = cases.filter((c) => c.scenario.net).sort(byLength);
console.log(`# ${cases.length} cases (${local.length} on loopback, ${jobs} at a time; ${netCases.length} network-level)`);

const runners = [];
const workers = [];
try {
  for (let i = 0; i < Math.min(jobs, local.length); i++) {
    const w = await makeWorker("local");
    workers.push(w);
    runners.push(runQueue(local, w));
  }
  let netInfo = null;
  if (netCases.length) {
    const netCtl = net.setup();
    netInfo = netCtl.netem.note;
    console.log(`# network-level: namespaces ${netCtl.a} (browser, ${net.ADDR_A}) and ${netCtl.b} (devserver, ${net.ADDR_B}); ${netInfo}`);
    const w = await makeWorker("net", netCtl);
    workers.push(w);
    runners.push(runQueue(netCases, w));
  }
  await Promise.all(runners);
  finish(netInfo);
} finally {
  for (const w of workers) await stopWorker(w).catch(() => {});
  for (const w of workers) if (w.net) w.net.teardown();
}

// --- output -------------------------------------------------------------------------------

function cell(x, d = 0) {
  if (x === null || x === undefined) return "–";
  return typeof x === "number" ? x.toLocaleString("en", { maximumFractionDigits: d, minimumFractionDigits: d }) : String(x);
}

function table(rows) {
  const order = new Map(SCENARIOS.map((s, i) => [s.id, i]));
  rows = [...rows].sort((a, b) => order.get(a.id) - order.get(b.id) || PROVIDERS.indexOf(a.provider) - PROVIDERS.indexOf(b.provider));
  const head = ["scenario", "provider", "captured ms", "delivered ms", "covered by finals ms", "reported dropped ms", "unaccounted ms",
    "dup delivered ms", "detection ms", "recovery ms", "attempts", "max queued B", "final state", "page errors", "bounds"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((h, i) => (i < 2 || i >= 12 ? "---" : "---:")).join("|")}|`];
  for (const r of rows) {
    const failed = r.bounds.filter((x) => !x.ok);
    const bounds = (failed.length ? `**FAIL** ${failed.map((x) => `${x.name} ${x.got} (bound ${x.limit})`).join("; ")}; ok: ` : "ok: ")
      + r.bounds.filter((x) => x.ok).map((x) => `${x.name} ${x.limit}`).join(", ");
    if (r.error) {
      lines.push(`| ${r.id} | ${r.provider} | ${Array(12).fill("–").join(" | ")} | ${bounds} |`);
      continue;
    }
    const reasons = Object.entries(r.dropReasons).map(([k, v]) => `${k} ${cell(v)}`).join(", ");
    lines.push(`| ${r.id} | ${r.provider} | ${cell(r.capturedMs)} | ${cell(r.deliveredMs)} | ${cell(r.coveredMs)} | ${cell(r.droppedMs)}${reasons ? ` (${reasons})` : ""} | ${cell(r.unaccountedMs, 1)} | ${cell(r.dupDeliveredMs)} | ${r.detection ? `${cell(r.detection.ms)} (${r.detection.how})` : "–"} | ${r.recovery ? cell(r.recovery.ms) : "–"} | ${r.attempts} | ${cell(r.maxQueuedBytes)} | ${r.finalState} | ${r.pageErrors} | ${bounds} |`);
  }
  return lines.join("\n");
}

function finish(netInfo) {
  const failed = results.filter((r) => r.bounds.some((x) => !x.ok));
  const minutes = (Date.now() - t0) / 60000;
  const mode = fullMatrix ? "full matrix" : ci ? "CI subset" : `selection (${argv.join(" ")})`;
  const md = table(results);
  const header = `Fault matrix, ${mode}: ${results.length} cases in ${minutes.toFixed(1)} min, ${failed.length} failing; `
    + `${os.cpus().length} cores, ${os.type()} ${os.release()}, headless Chromium ${browserVersion}; network level: `
    + `${netStatus === null ? "not selected" : netStatus.ok ? netInfo : `skipped (${netStatus.reason})`}.`;
  console.log(`\n${header}\n\n${md}\n`);
  mkdirSync(join(ROOT, "target"), { recursive: true });
  const json = JSON.stringify({
    date: new Date().toISOString(), mode, argv, minutes, network: netStatus === null ? null : { ...netStatus, note: netInfo },
    results,
  }, null, 1) + "\n";
  writeFileSync(join(ROOT, "target", "faults.json"), json);
  console.log(`Saved target/faults.json${fullMatrix ? " and target/faults-full.json" : ""}`);
  if (fullMatrix) {
    // Kept apart so that a later selection run does not replace the
    // figures `npm run bench` reports.
    writeFileSync(join(ROOT, "target", "faults-full.json"), json);
    writeDocs(header, md);
    console.log("Updated the table in docs/reliability.md");
  }
  if (failed.length) {
    console.log(`\n${failed.length} case(s) broke a bound:`);
    for (const r of failed) console.log(`  ${r.id}/${r.provider}: ${r.bounds.filter((x) => !x.ok).map((x) => `${x.name} ${x.got} (bound ${x.limit})`).join("; ")}`);
    process.exitCode = 1;
  }
}

function writeDocs(header, md) {
  const path = join(ROOT, "docs", "reliability.md");
  const doc = readFileSync(path, "utf8");
  const begin = "<!-- faults:begin (written by tests/faults/run.mjs) -->";
  const end = "<!-- faults:end -->";
  const block = `${begin}\n_Reproduce: \`npm run faults\` (${new Date().toISOString().slice(0, 10)})._ ${header}\n\n${md}\n${end}`;
  const i = doc.indexOf(begin), j = doc.indexOf(end);
  if (i < 0 || j < 0) throw new Error("docs/reliability.md lacks the faults markers");
  writeFileSync(path, doc.slice(0, i) + block + doc.slice(j + end.length));
}
