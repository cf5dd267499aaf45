// The packed tarball installed into fresh projects, used as a plain page
// (no bundler) in headless Chromium and Firefox ESR: it loads, connects to
// the devserver, streams from the browser's fake microphone, reconnects
// after a TCP reset, and closes with a summary. Also: init() with the .wasm
// served elsewhere (URL, Request, Response, bytes, WebAssembly.Module), a
// strict Content-Security-Policy (which directives the module and the
// worklet need), and the typings in a TypeScript project.
//
// Run: node --test tests/install/plain.test.mjs   (part of npm run test:install)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDevserver, launchChromium, withTimeout } from "../e2e/lib.mjs";
import { freshProject, lockedVersion, npx, assertStreamed, FIXTURES } from "./lib.mjs";
import { startDriver, newSession } from "./webdriver.mjs";

let app, server;

before(async () => {
  app = freshProject("plain", {
    files: { "scenario.js": "scenario.js", "plain/index.html": "index.html", "plain/main.js": "main.js",
      "plain/init.html": "init.html", "plain/init.js": "init.js", "plain/strict.js": "strict.js" },
  });
  // The .wasm "elsewhere", as a CDN or an asset protocol would serve it.
  mkdirSync(join(app, "cdn"));
  copyFileSync(join(app, "node_modules", "resilient-transcriber", "resilient_transcriber_bg.wasm"), join(app, "cdn", "rt.wasm"));
  server = await startDevserver({ engine: "meter", www: app, pkg: app });
  // Strict CSP pages: the directives the README lists, and each without one.
  const port = server.port;
  const csp = {
    "strict.html": `default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws://127.0.0.1:${port}`,
    "strict-no-wasm.html": `default-src 'none'; script-src 'self'; connect-src 'self' ws://127.0.0.1:${port}`,
  };
  for (const [file, policy] of Object.entries(csp)) {
    writeFileSync(join(app, file), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta http-equiv="Content-Security-Policy" content="${policy}">
<title>strict CSP</title><script type="module" src="./strict.js"></script></head><body></body></html>
`);
  }
});

after(async () => {
  await server?.stop();
});

/** Opens `path` in a fresh headless Chromium and returns window.rtResult. */
async function inChromium(path, timeout = 90_000) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
    await page.goto(`${server.base}/${path}`);
    await page.waitForFunction(() => window.rtResult, null, { timeout, polling: 100 }).catch(async (e) => {
      throw new Error(`${path}: ${e.message}; progress: ${JSON.stringify(await page.evaluate(() => window.rtProgress))}`);
    });
    return { result: await page.evaluate(() => window.rtResult), problems };
  } finally {
    await browser.close();
  }
}

test("the installed package: one ES module with its .wasm, types, worklet, docs and licenses; no sources", () => {
  const dir = join(app, "node_modules", "resilient-transcriber");
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  assert.equal(pkg.name, "resilient-transcriber");
  assert.equal(pkg.type, "module");
  assert.equal(pkg.sideEffects, false);
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  assert.equal(pkg.private, undefined);
  assert.deepEqual(pkg.exports["."], { types: "./resilient_transcriber.d.ts", default: "./resilient_transcriber.js" });
  const files = readdirSync(dir, { recursive: true }).filter((f) => !statSync(join(dir, f)).isDirectory()).sort();
  assert.deepEqual(files, [
    "CHANGELOG.md", "LICENSE-APACHE", "LICENSE-MIT", "README.md",
    "docs/api.md", "docs/images/indicator-open.png", "docs/images/indicator-reconnecting.png",
    "docs/protocol.md", "docs/reliability.md", "package.json",
    "resilient_transcriber.d.ts", "resilient_transcriber.js", "resilient_transcriber_bg.wasm", "rt-capture-worklet.js",
  ]);
  const readme = readFileSync(join(dir, "README.md"), "utf8");
  assert.match(readme, /npm install resilient-transcriber/);
  assert.doesNotMatch(readme, /npm start|npm test|cargo test/, "the package README is for users, not contributors");
  assert.match(readFileSync(join(dir, "rt-capture-worklet.js"), "utf8"), /registerProcessor\("rt-capture"/);
});

test("plain page in Chromium: connects, streams the microphone, survives a reset, closes", { timeout: 120_000 }, async () => {
  const { result, problems } = await inChromium("index.html");
  assertStreamed(assert, result);
  assert.deepEqual(problems, []);
});

for (const input of ["url", "URL", "request", "response", "bytes", "module"]) {
  test(`init({ module_or_path }) with a ${input} of the .wasm served elsewhere`, { timeout: 60_000 }, async () => {
    const { result, problems } = await inChromium(`init.html?input=${input}`);
    assertStreamed(assert, result, { reset: false });
    assert.deepEqual(problems, [], "no deprecation warning or error");
  });
}

test("strict CSP: script-src 'self' 'wasm-unsafe-eval' and the package's worklet file (workletUrl) stream", { timeout: 60_000 }, async () => {
  const { result } = await inChromium("strict.html?worklet=file");
  assertStreamed(assert, result, { reset: false });
});

test("strict CSP without blob: the default worklet is refused with audio-context, naming workletUrl", { timeout: 60_000 }, async () => {
  const { result } = await inChromium("strict.html?worklet=blob");
  assert.equal(result.code, "audio-context", JSON.stringify(result));
  assert.match(result.error, /workletUrl/);
});

test("strict CSP without 'wasm-unsafe-eval': init() is refused", { timeout: 60_000 }, async () => {
  const { result } = await inChromium("strict-no-wasm.html?worklet=file");
  assert.ok(result.error, JSON.stringify(result));
  assert.match(result.error, /CompileError|unsafe-eval|WebAssembly/i, result.error);
});

test("plain page in Firefox ESR (geckodriver): connects, streams with sendAudio, survives a reset, closes", { timeout: 150_000 }, async () => {
  const driver = await startDriver(["geckodriver"], (port) => ["--port", String(port), "--host", "127.0.0.1"]);
  let session;
  try {
    session = await newSession(driver, {
      browserName: "firefox",
      "moz:firefoxOptions": {
        binary: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
        args: ["-headless"],
        prefs: {
          "media.navigator.streams.fake": true,
          "media.navigator.permission.disabled": true,
          "media.autoplay.default": 0,
        },
      },
    });
    // Headless Firefox here has no audio device (no sound server in the
    // container): its AudioContext never leaves "suspended" (the client
    // reports audio-suspended), so this page streams with sendAudio. The
    // microphone path runs in Chromium and WebKitGTK.
    await session.goto(`${server.base}/index.html?audio=send`);
    const result = await session.waitFor("window.rtResult", 90_000, "window.rtProgress");
    assertStreamed(assert, result);
    assert.match(result.userAgent, /Firefox/);
  } finally {
    await session?.quit();
    await driver.stop();
  }
});

test("TypeScript: the typings compile with strict, no skipLibCheck, under the default libs of ES2020 (bundler resolution) and ES2022 (node16)", { timeout: 120_000 }, () => {
  const dir = freshProject("types", { deps: [lockedVersion("typescript")], files: { "ts/usage.ts": "usage.ts" } });
  for (const [target, resolution] of [["ES2020", "bundler"], ["ES2022", "node16"]]) {
    {
      const config = {
        compilerOptions: {
          target, module: resolution === "node16" ? "node16" : "ES2022", moduleResolution: resolution,
          strict: true, noEmit: true, skipLibCheck: false, types: [],
        },
        files: ["usage.ts"],
      };
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config));
      const r = npx(dir, "tsc", ["-p", "."], { stdio: "pipe" });
      assert.equal(r.status, 0, `${target}/${resolution}: ${r.stdout}${r.stderr}`);
    }
  }
  const dts = readFileSync(join(dir, "node_modules", "resilient-transcriber", "resilient_transcriber.d.ts"), "utf8");
  assert.doesNotMatch(dts, /^\s*\[Symbol\.dispose\]\(\)/m);
  void FIXTURES;
});
