// Two hosts on one machine: network namespaces A (the browser) and B (the
// devserver), joined by one veth pair, 10.77.0.1/30 in A and 10.77.0.2/30
// in B, and nothing else: no route anywhere, no other interface but each
// namespace's own loopback. Taking A's end down is a Wi-Fi drop as the
// kernel sees it: no FIN, no RST, packets simply stop.
//
// Every command is bounded (spawnSync with a timeout); the namespaces are
// deleted on exit, on SIGINT/SIGTERM, and before a new pair is made.
import { spawnSync } from "node:child_process";

export const ADDR_A = "10.77.0.1";
export const ADDR_B = "10.77.0.2";

function ip(args, { netns = null, check = true } = {}) {
  const argv = netns ? ["netns", "exec", netns, "ip", ...args] : args;
  const r = spawnSync("ip", argv, { encoding: "utf8", timeout: 10_000 });
  const out = { ok: r.status === 0, stdout: r.stdout ?? "", stderr: (r.stderr ?? "").trim() || (r.error ? String(r.error) : "") };
  if (check && !out.ok) throw new Error(`ip ${argv.join(" ")}: ${out.stderr}`);
  return out;
}

let active = null;

function cleanup() {
  if (!active) return;
  for (const ns of [active.a, active.b]) ip(["netns", "del", ns], { check: false });
  active = null;
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { cleanup(); process.exit(130); });
}

/** Whether namespaces can be made here: { ok, reason }. */
export function probe() {
  const name = `rtprobe${process.pid}`;
  const r = ip(["netns", "add", name], { check: false });
  if (!r.ok) return { ok: false, reason: `ip netns add failed: ${r.stderr || "unknown error"}` };
  const v = ip(["link", "add", `rtp${process.pid % 100000}a`, "type", "veth", "peer", "name", `rtp${process.pid % 100000}b`], { check: false });
  ip(["link", "del", `rtp${process.pid % 100000}a`], { check: false });
  ip(["netns", "del", name], { check: false });
  if (!v.ok) return { ok: false, reason: `veth pairs unavailable: ${v.stderr}` };
  return { ok: true, reason: "" };
}

/** Makes the pair; returns { a, b, devA, devB, down(), up(), netem }. */
export function setup() {
  cleanup();
  const id = process.pid % 100000;
  const a = `rtA${id}`, b = `rtB${id}`, devA = `rt0-${id}`, devB = `rt1-${id}`;
  active = { a, b };
  ip(["netns", "add", a]);
  ip(["netns", "add", b]);
  ip(["link", "add", devA, "type", "veth", "peer", "name", devB]);
  ip(["link", "set", devA, "netns", a]);
  ip(["link", "set", devB, "netns", b]);
  ip(["addr", "add", `${ADDR_A}/30`, "dev", devA], { netns: a });
  ip(["addr", "add", `${ADDR_B}/30`, "dev", devB], { netns: b });
  for (const [ns, dev] of [[a, devA], [b, devB]]) {
    ip(["link", "set", "lo", "up"], { netns: ns });
    ip(["link", "set", dev, "up"], { netns: ns });
  }
  // tc netem would add delay and loss; this kernel may lack it. Say so.
  const tc = spawnSync("ip", ["netns", "exec", a, "tc", "qdisc", "add", "dev", devA, "root", "netem", "delay", "1ms"],
    { encoding: "utf8", timeout: 10_000 });
  let netem;
  if (tc.status === 0) {
    spawnSync("ip", ["netns", "exec", a, "tc", "qdisc", "del", "dev", devA, "root"], { timeout: 10_000 });
    netem = { available: true, note: "tc netem available" };
  } else {
    netem = { available: false, note: `tc netem unavailable (${(tc.stderr || String(tc.error || "")).trim() || `exit ${tc.status}`}): link up/down only` };
  }
  return {
    a, b, devA, devB, netem,
    /** The browser's link goes down: a true blackhole, no FIN, no RST. */
    down: () => ip(["link", "set", devA, "down"], { netns: a }),
    up: () => ip(["link", "set", devA, "up"], { netns: a }),
    teardown: cleanup,
  };
}
