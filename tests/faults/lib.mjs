// The fault runner's library: the devserver (release build, counter
// engine) on a free port, optionally inside a network namespace; a fresh
// Chromium page per scenario on the harness page (www/harness.js); the
// accounting of every sample by its stream position; the table.
//
// Positions: the harness pushes self-describing PCM16 (the sample at
// stream position i is the high 16 bits of i at even i, the low 16 bits at
// odd i), so the devserver's recording decodes to exact positions, and the
// counter engine's finals name the positions they cover ("pos A-B").
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import http from "node:http";
import { join, dirname } from "node:path";
import { chromium } from "playwright-core";

import { ROOT, CHROMIUM, buildIfNeeded as buildPackage } from "../e2e/lib.mjs";

export { ROOT, CHROMIUM };
export const RATE = 16000;
export const SAMPLES_PER_MS = RATE / 1000;
const WWW = join(ROOT, "tests", "faults", "www");

/** pkg/ and the release devserver, rebuilt when older than their sources (RT_FAULTS_NO_BUILD=1 skips). */
export const buildIfNeeded = () => buildPackage({ skip: process.env.RT_FAULTS_NO_BUILD });

/**
 * `target/release/devserver serve --port 0 --engine counter` serving the
 * harness page. With `netns`, it runs inside that namespace (`ip netns
 * exec`) on all of its interfaces, `pageHost` is the address the browser
 * uses, and the control API is reached through a Unix socket proxied into
 * the namespace (tests/faults/uds-proxy.mjs), so nothing but the veth pair
 * ever carries a packet between the two hosts. Resolves with
 * { base, ws, request(), stop(), log() }.
 */
export async function startDevserver({ netns = null, pageHost = null } = {}) {
  const bin = join(ROOT, "target", "release", "devserver");
  const host = netns ? "0.0.0.0" : "127.0.0.1";
  const args = ["serve", "--port", "0", "--host", host, "--engine", "counter", "--www", WWW, "--pkg", join(ROOT, "pkg")];
  const child = netns
    ? spawn("ip", ["netns", "exec", netns, bin, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(bin, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const children = [child];
  let out = "";
  const exitedOf = (c) => new Promise((r) => c.once("exit", r));
  const exited = exitedOf(child);
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`devserver did not start in 20 s:\n${out}`)), 20_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/devserver listening on http:\/\/[\d.]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.stderr.on("data", (d) => { out += d; if (out.length > 1e6) out = out.slice(-5e5); });
    exited.then((code) => { clearTimeout(timer); reject(new Error(`devserver exited (${code}):\n${out}`)); });
  });
  const base = `http://${pageHost ?? "127.0.0.1"}:${port}`;
  let request;
  if (netns) {
    const sock = join(ROOT, "target", "faults", `control-${process.pid}-${port}.sock`);
    mkdirSync(dirname(sock), { recursive: true });
    rmSync(sock, { force: true });
    const proxy = spawn("ip", ["netns", "exec", netns, process.execPath, join(ROOT, "tests", "faults", "uds-proxy.mjs"), sock, "127.0.0.1", String(port)],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    children.push(proxy);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("control proxy did not start in 10 s")), 10_000);
      proxy.stdout.on("data", (d) => { if (String(d).includes("ready")) { clearTimeout(timer); resolve(); } });
      proxy.once("exit", (c) => { clearTimeout(timer); reject(new Error(`control proxy exited (${c})`)); });
    });
    request = (method, path, body) => udsRequest(sock, method, path, body);
  } else {
    request = (method, path, body) => fetchRequest(`http://127.0.0.1:${port}`, method, path, body);
  }
  return {
    base,
    ws: base.replace("http://", "ws://"),
    request,
    log: () => out,
    async stop() {
      for (const c of children.reverse()) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        const done = exitedOf(c);
        c.kill("SIGTERM");
        const t = new Promise((r) => setTimeout(r, 3000, "timeout"));
        if (await Promise.race([done, t]) === "timeout") { c.kill("SIGKILL"); await done; }
      }
    },
  };
}

async function fetchRequest(origin, method, path, body) {
  const r = await fetch(origin + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

function udsRequest(socketPath, method, path, body) {
  const data = body ? Buffer.from(JSON.stringify(body)) : null;
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath, method, path, timeout: 30_000,
      headers: data ? { "content-type": "application/json", "content-length": data.length } : {},
    }, (res) => {
      const parts = [];
      res.on("data", (d) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on("error", reject);
    req.end(data ?? undefined);
  });
}

/** JSON from the devserver's control API; throws on an HTTP error. */
export async function control(server, method, path, body) {
  const r = await server.request(method, path, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: HTTP ${r.status} ${r.body}`);
  return JSON.parse(String(r.body));
}

export const CHROMIUM_ARGS = [
  "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
  "--enable-precise-memory-info",
];

/** Headless system Chromium; `netns` runs it inside that namespace. */
export function launchChromium({ netns = null } = {}) {
  if (!netns) return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  // playwright needs an executable: a wrapper script that enters the namespace.
  return chromium.launch({ executablePath: netnsWrapper(netns), args: CHROMIUM_ARGS });
}

const wrappers = new Map();
function netnsWrapper(netns) {
  if (wrappers.has(netns)) return wrappers.get(netns);
  const path = join(ROOT, "target", "faults", `chromium-in-${netns}.sh`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${netns} ${CHROMIUM} "$@"\n`);
  chmodSync(path, 0o755);
  wrappers.set(netns, path);
  return path;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- positions ---------------------------------------------------------

/** Raw PCM16 samples (as unsigned 16-bit) of a mono WAV. */
export function wavSamples(buf) {
  const b = Buffer.from(buf);
  if (b.toString("ascii", 0, 4) !== "RIFF") throw new Error("not a WAV");
  let pos = 12;
  while (pos + 8 <= b.length) {
    const id = b.toString("ascii", pos, pos + 4);
    let size = b.readUInt32LE(pos + 4);
    if (id === "data") {
      size = Math.min(size, b.length - pos - 8);
      const out = new Uint16Array(size >> 1);
      for (let i = 0; i < out.length; i++) out[i] = b.readUInt16LE(pos + 8 + 2 * i);
      return out;
    }
    pos += 8 + size + (size & 1);
  }
  throw new Error("WAV without a data chunk");
}

/**
 * Decodes a recording into runs of stream positions [start, end), in
 * arrival order. Every frame the client sends starts at an even position
 * and has even length, so the recording is a sequence of aligned pairs,
 * each of which names its own position: (hi(p), lo(p+1)) → p. Pairs that
 * do not decode count as `undecodable` samples.
 */
export function decodeRuns(u16) {
  const runs = [];
  let undecodable = 0;
  let cur = null;
  for (let k = 0; k + 1 < u16.length; k += 2) {
    const hi = u16[k], lo = u16[k + 1];
    if ((lo & 1) === 0) { undecodable += 2; cur = null; continue; }
    const p = hi * 65536 + (lo - 1);
    if (cur && cur[1] === p) cur[1] = p + 2;
    else { cur = [p, p + 2]; runs.push(cur); }
  }
  if (u16.length % 2) undecodable += 1;
  return { runs, undecodable };
}

/** The positions a counter-engine final names: "pos A-B" (or a bare "A-B" word left by trimming). */
export function finalRanges(text) {
  const out = [];
  for (const m of String(text).matchAll(/(?:^|\s)(?:pos\s+)?(\d+)-(\d+)(?=\s|$)/g)) {
    const a = Number(m[1]), b = Number(m[2]);
    if (b > a) out.push([a, b]);
  }
  return out;
}

/** Sorted, merged union of [start, end) intervals. */
export function union(intervals) {
  const s = intervals.filter(([a, b]) => b > a).map(([a, b]) => [a, b]).sort((x, y) => x[0] - y[0]);
  const out = [];
  for (const [a, b] of s) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export const measure = (u) => u.reduce((n, [a, b]) => n + (b - a), 0);

/** The union clipped to [0, limit). */
export function clip(u, limit) {
  return u.map(([a, b]) => [Math.max(0, a), Math.min(limit, b)]).filter(([a, b]) => b > a);
}

/** [0, limit) minus the union `u`. */
export function complement(u, limit) {
  const out = [];
  let at = 0;
  for (const [a, b] of clip(u, limit)) {
    if (a > at) out.push([at, a]);
    at = Math.max(at, b);
  }
  if (at < limit) out.push([at, limit]);
  return out;
}

/** Samples covered more than once by `intervals` (the overlap beyond one copy). */
export function overlapSamples(intervals) {
  return intervals.reduce((n, [a, b]) => n + (b - a), 0) - measure(union(intervals));
}

/** The intervals covered at least twice. */
export function coveredTwice(intervals) {
  const ev = [];
  for (const [a, b] of intervals) if (b > a) { ev.push([a, 1]); ev.push([b, -1]); }
  ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const out = [];
  let depth = 0, from = 0;
  for (const [p, d] of ev) {
    const before = depth;
    depth += d;
    if (before < 2 && depth >= 2) from = p;
    if (before >= 2 && depth < 2 && p > from) out.push([from, p]);
  }
  return union(out);
}

export function intersect(u, v) {
  const out = [];
  let i = 0, j = 0;
  while (i < u.length && j < v.length) {
    const a = Math.max(u[i][0], v[j][0]), b = Math.min(u[i][1], v[j][1]);
    if (b > a) out.push([a, b]);
    if (u[i][1] < v[j][1]) i++; else j++;
  }
  return out;
}

export const ms = (samples) => samples / SAMPLES_PER_MS;

/**
 * What the devserver received, session by session: each session's record,
 * and its audio frame by frame with arrival times, decoded to positions:
 * `pieces: [{ at, start, end }]` (`at`: the server's wall clock, ms).
 */
export async function deliveries(server) {
  const { sessions } = await control(server, "GET", "/control/sessions");
  const out = [];
  for (const s of sessions) {
    const pieces = [];
    let undecodable = 0;
    if (s.bytes_received > 0) {
      const audio = await server.request("GET", `/control/sessions/${s.id}/audio`);
      const u16 = wavSamples(audio.body);
      const { frames } = await control(server, "GET", `/control/sessions/${s.id}/frames`);
      let at = 0;
      for (const [ms, bytes] of frames) {
        const n = bytes >> 1;
        const d = decodeRuns(u16.subarray(at, at + n));
        undecodable += d.undecodable;
        for (const [a, b] of d.runs) pieces.push({ at: ms, start: a, end: b });
        at += n;
      }
    }
    out.push({ ...s, pieces, undecodable });
  }
  return out;
}

/** A generic stream as the devserver stored it (deduplicated), decoded. */
export async function streamDelivery(server, stream) {
  const r = await server.request("GET", `/control/streams/${stream}/audio`);
  if (r.status !== 200) return null;
  return decodeRuns(wavSamples(r.body));
}
