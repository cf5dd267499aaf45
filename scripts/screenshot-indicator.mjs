// Takes the README's pictures of the demo's connection indicator
// (docs/images/indicator-open.png, indicator-reconnecting.png): the demo
// served by the release devserver in headless Chromium with a fake
// microphone; "reconnecting" after the devserver goes down and resets the
// connection. Run: node scripts/screenshot-indicator.mjs
import { join } from "node:path";
import { ROOT, buildIfNeeded, startDevserver, launchChromium, control } from "../tests/e2e/lib.mjs";

buildIfNeeded();
const server = await startDevserver({ engine: "meter" });
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 600 }, deviceScaleFactor: 1 });
  await page.goto(`${server.base}/?engine=meter&initialDelayMs=4000&maxDelayMs=8000&jitter=0`);
  await page.waitForSelector("html[data-ready=true]", { timeout: 15_000 });
  await page.click("#start");
  await page.waitForSelector('#indicator[data-state="open"]', { timeout: 15_000 });
  const bar = page.locator("header.bar");
  await bar.screenshot({ path: join(ROOT, "docs", "images", "indicator-open.png") });
  await control(server.base, "POST", "/control/down", { ms: 20_000 });
  await control(server.base, "POST", "/control/reset", {});
  await page.waitForSelector('#indicator[data-state="reconnecting"]', { timeout: 15_000 });
  await page.waitForFunction(() => /attempt [2-9]/.test(document.getElementById("indicator").textContent), null, { timeout: 20_000 });
  await bar.screenshot({ path: join(ROOT, "docs", "images", "indicator-reconnecting.png") });
  console.log("docs/images/indicator-open.png, docs/images/indicator-reconnecting.png");
} finally {
  await browser.close();
  await server.stop();
}
