// WebKitGTK, standing in for the webview shells (Tauri on Linux is
// WebKitGTK; WKWebView on macOS and iOS is the same engine): the packed
// tarball, installed into a fresh project and served as a plain page,
// connects, streams from WebKit's mock capture device, survives a TCP
// reset and closes, in MiniBrowser under Xvfb driven by WebKitWebDriver.
//
// Run: node --test tests/install/webkit.test.mjs   (part of npm run test:install)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startDevserver } from "../e2e/lib.mjs";
import { freshProject, assertStreamed } from "./lib.mjs";
import { startDriver, newSession } from "./webdriver.mjs";

const MINIBROWSER = process.env.MINIBROWSER ?? "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
let app, server;

before(async () => {
  app = freshProject("webkit", {
    files: { "scenario.js": "scenario.js", "plain/index.html": "index.html", "plain/main.js": "main.js" },
  });
  server = await startDevserver({ engine: "meter", www: app, pkg: app });
});

after(async () => {
  await server?.stop();
});

test("WebKitGTK (MiniBrowser, mock microphone): connects, streams, survives a reset, closes", { timeout: 180_000 }, async () => {
  assert.ok(existsSync(MINIBROWSER), `${MINIBROWSER} is missing (scripts/setup.sh installs webkit2gtk-driver)`);
  const driver = await startDriver(["xvfb-run", "-a", "WebKitWebDriver"], (port) => [`--port=${port}`]);
  let session;
  try {
    session = await newSession(driver, {
      "webkitgtk:browserOptions": {
        binary: MINIBROWSER,
        args: ["--automation", "--enable-media-stream=true", "--enable-mock-capture-devices=true", "--autoplay-policy=allow"],
      },
    });
    await session.goto(`${server.base}/index.html`);
    const result = await session.waitFor("window.rtResult", 120_000, "window.rtProgress");
    assertStreamed(assert, result);
    assert.match(result.userAgent, /AppleWebKit/);
    assert.doesNotMatch(result.userAgent, /Chrome/);
  } finally {
    await session?.quit();
    await driver.stop();
  }
});
