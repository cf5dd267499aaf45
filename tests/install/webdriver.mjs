// A minimal W3C WebDriver client over HTTP (node's fetch), enough for the
// install tests to drive Firefox (geckodriver) and WebKitGTK
// (WebKitWebDriver): start the driver on a free port, open a session, load
// a page, wait for a value the page sets, quit. Every wait is bounded.
import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts a WebDriver server: `command` (an array: the driver binary, or
 * `xvfb-run -a <binary>`) with `portArgs(port)` appended; resolves with
 * { url, stop(), log() } once it answers /status.
 */
export async function startDriver(command, portArgs) {
  const port = await freePort();
  const [bin, ...args] = command;
  const child = spawn(bin, [...args, ...portArgs(port)], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${command.join(" ")} exited (${child.exitCode}):\n${out}`);
    try {
      const r = await fetch(`${url}/status`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      process.kill(-child.pid, "SIGKILL");
      throw new Error(`${command.join(" ")} did not answer /status in 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    log: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      // The driver and what it started (xvfb-run's Xvfb, the browser): its process group.
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
    },
  };
}

async function call(base, method, path, body, timeoutMs = 60_000) {
  const r = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const json = await r.json().catch(() => ({}));
  if (!r.ok) {
    const v = json.value || {};
    throw new Error(`WebDriver ${method} ${path}: HTTP ${r.status} ${v.error ?? ""}: ${v.message ?? JSON.stringify(json)}`);
  }
  return json.value;
}

/** A session on `driver` with `capabilities` (alwaysMatch). */
export async function newSession(driver, capabilities) {
  const v = await call(driver.url, "POST", "/session", { capabilities: { alwaysMatch: capabilities } }, 90_000);
  const base = `${driver.url}/session/${v.sessionId}`;
  return {
    capabilities: v.capabilities,
    goto: (url) => call(base, "POST", "/url", { url }),
    /** Runs `script` (a function body) in the page; returns its value. */
    execute: (script, args = []) => call(base, "POST", "/execute/sync", { script, args }),
    /**
     * Polls `expression` in the page every 250 ms until it is not
     * null/undefined; rejects after `timeoutMs` with the last `diag` value.
     */
    async waitFor(expression, timeoutMs, diag = "null") {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await call(base, "POST", "/execute/sync", { script: `return ${expression};`, args: [] });
        if (v !== null && v !== undefined) return v;
        if (Date.now() > deadline) {
          const d = await call(base, "POST", "/execute/sync", { script: `return ${diag};`, args: [] }).catch((e) => String(e));
          throw new Error(`no ${expression} in ${timeoutMs} ms; page says: ${JSON.stringify(d)}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    /** A real click (a user gesture) on the first element matching `css`. */
    async click(css) {
      const el = await call(base, "POST", "/element", { using: "css selector", value: css });
      const id = el["element-6066-11e4-a52e-4f735466cecf"];
      await call(base, "POST", `/element/${id}/click`, {});
    },
    quit: () => call(base, "DELETE", "", undefined, 30_000).catch(() => {}),
  };
}
