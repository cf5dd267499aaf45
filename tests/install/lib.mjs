// Helpers of the install tests: the packed tarball, fresh temporary
// projects that install it the way a user does (offline from the npm
// cache where possible), and the browsers that run them.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, buildIfNeeded } from "../e2e/lib.mjs";

export { ROOT };
export const FIXTURES = join(ROOT, "tests", "install", "fixtures");
const PKG = join(ROOT, "pkg");
const VERSION = JSON.parse(readFileSync(join(ROOT, "npm", "package.json"), "utf8")).version;
export const TARBALL = join(ROOT, "target", "npm", `resilient-transcriber-${VERSION}.tgz`);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${opts.cwd ?? ROOT}) failed with status ${r.status}:\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/**
 * The packed tarball, rebuilt when pkg/ or the package's sources are newer
 * (and pkg/ and the release devserver built when stale, as the e2e tests
 * do). RT_E2E_NO_BUILD=1 takes what is there.
 */
export function packedTarball() {
  buildIfNeeded();
  const sources = ["resilient_transcriber_bg.wasm", "resilient_transcriber.js", "rt-capture-worklet.js"].map((f) => join(PKG, f))
    .concat(["package.json", "README.md", "CHANGELOG.md"].map((f) => join(ROOT, "npm", f)),
      ["README.md", "docs/api.md", "docs/reliability.md", "docs/protocol.md"].map((f) => join(ROOT, f)));
  const newest = Math.max(...sources.map((p) => statSync(p).mtimeMs));
  if (!process.env.RT_E2E_NO_BUILD && (!existsSync(TARBALL) || statSync(TARBALL).mtimeMs < newest)) {
    sh("bash", ["scripts/package.sh"], { stdio: "inherit" });
  }
  if (!existsSync(TARBALL)) throw new Error(`${TARBALL} is missing: run scripts/build.sh && scripts/package.sh`);
  return TARBALL;
}

/** The exact version of a dev dependency, from the root lockfile (so the cache has it). */
export function lockedVersion(name) {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  const v = lock.packages[`node_modules/${name}`]?.version;
  if (!v) throw new Error(`${name} is not in package-lock.json: add it to the root devDependencies`);
  return `${name}@${v}`;
}

const keep = !!process.env.RT_INSTALL_KEEP;
const made = [];
process.on("exit", () => { if (!keep) for (const d of made) rmSync(d, { recursive: true, force: true }); });

/**
 * A fresh project in a temporary directory (removed at exit unless
 * RT_INSTALL_KEEP=1): package.json, then `npm install --offline` of the
 * tarball and `deps`. If the cache lacks something, the install is
 * repeated with --prefer-offline (it then reaches the registry) and a note
 * says so. `files` maps fixture paths to project paths.
 */
export function freshProject(name, { deps = [], files = {}, pkg = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `rt-install-${name}-`));
  made.push(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `rt-install-${name}`, private: true, type: "module", ...pkg }, null, 2));
  for (const [from, to] of Object.entries(files)) cpSync(join(FIXTURES, from), join(dir, to), { recursive: true });
  const args = ["install", "--no-audit", "--no-fund", "--loglevel=error", packedTarball(), ...deps];
  const t0 = Date.now();
  const offline = spawnSync("npm", [...args, "--offline"], { cwd: dir, encoding: "utf8" });
  let how = "offline, from the npm cache";
  if (offline.status !== 0) {
    console.log(`# note: npm install --offline failed in ${name} (${(offline.stderr.match(/ENOTCACHED|code E\w+/) || ["?"])[0]}); installing with --prefer-offline (reaches the registry)`);
    sh("npm", [...args, "--prefer-offline"], { cwd: dir });
    how = "online (the cache lacked a package)";
  }
  console.log(`# ${name}: installed ${["resilient-transcriber", ...deps].join(", ")} ${how} in ${Date.now() - t0} ms (${dir})`);
  return dir;
}

/** Runs an installed binary of the project (`node_modules/.bin/NAME`). */
export function npx(dir, bin, args, opts = {}) {
  return sh(join(dir, "node_modules", ".bin", bin), args, { cwd: dir, ...opts });
}

/** Checks a scenario result (tests/install/fixtures/scenario.js) and returns it. */
export function assertStreamed(assert, r, { reset = true } = {}) {
  assert.ok(r && !r.error, `the page failed: ${JSON.stringify(r)}`);
  const s = r.summary;
  assert.equal(s.state, "closed", JSON.stringify(r));
  assert.equal(s.code, 1000, JSON.stringify(r));
  const st = s.stats;
  assert.equal(st.bytesPushed, st.bytesSent + st.bytesQueued + st.bytesDropped, JSON.stringify(st));
  assert.equal(st.bytesQueued, 0, JSON.stringify(st));
  assert.ok(st.bytesSent >= 32_000, `at least 1 s of audio sent: ${JSON.stringify(st)}`);
  if (reset) {
    assert.ok(st.reconnects >= 1, `reconnected after the reset: ${JSON.stringify(st)}`);
    assert.ok(r.states.includes("reconnecting"), r.states.join(" "));
  }
  return r;
}
