// Tests of the API drift check itself (scripts/check-api.mjs): it passes on
// the repository as it is, and fails, naming exactly what differs, on
// mutated copies of each of its three sources.
//
// Run: node --test tests/api/   (needs pkg/: scripts/build.sh, scripts/package.sh)
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, cpSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { ROOT, checkApi, coreSchema } from "../../scripts/check-api.mjs";

const DTS = join(ROOT, "pkg", "resilient_transcriber.d.ts");
const DOCS = join(ROOT, "docs", "api.md");
const JS = join(ROOT, "pkg", "resilient_transcriber.js");
let schema, dir;

before(() => {
  assert.ok(existsSync(DTS), `${DTS} is missing: run scripts/build.sh and scripts/package.sh`);
  schema = coreSchema();
  dir = mkdtempSync(join(tmpdir(), "rt-check-api-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
});

/** A copy of `path` with `from` replaced by `to` (which must occur). */
function mutated(path, name, from, to) {
  const src = readFileSync(path, "utf8");
  assert.ok(src.includes(from), `${path} no longer contains ${JSON.stringify(from)}: update this test`);
  const out = join(dir, name);
  writeFileSync(out, src.replace(from, to));
  return out;
}

const run = (over = {}) => checkApi({ schema, dtsPath: DTS, docsPath: DOCS, jsPath: JS, ...over });

test("the repository agrees with itself", async () => {
  assert.deepEqual(await run(), []);
});

test("a payload field removed from the d.ts is reported", async () => {
  const dtsPath = mutated(DTS, "no-retry.d.ts", "retryInMs: number | null; ", "");
  assert.deepEqual(await run({ dtsPath }), [
    "event `state` field `retryInMs`: in the core and docs/api.md, not in the d.ts",
  ]);
});

test("a field's type that disagrees with the payload is reported", async () => {
  const dtsPath = mutated(DTS, "speaker.d.ts", "speaker: string | null;", "speaker: string;");
  assert.deepEqual(await run({ dtsPath }), [
    "event `transcript` field `speaker`: the core sends null | string, the d.ts declares `string`",
    "event `transcript` field `speaker`: docs/api.md says type `string | null`, the d.ts says `string`",
    // An utterance's finals are TranscriptEvents too.
    "event `utterance` field `finals[].speaker`: the core sends null | string, the d.ts declares `string`",
    "event `utterance` field `finals[].speaker`: docs/api.md says type `string | null`, the d.ts says `string`",
  ]);
});

test("an option missing from docs/api.md is reported", async () => {
  const docsPath = mutated(DOCS, "no-ttl.md", /\| `buffer\.ttlMs` .*\n/.exec(readFileSync(DOCS, "utf8"))[0], "");
  assert.deepEqual(await run({ docsPath }), [
    "option `buffer.ttlMs`: in the core and the d.ts, not in docs/api.md",
  ]);
});

test("a default in docs/api.md that is not the core's is reported", async () => {
  const docsPath = mutated(DOCS, "default.md", "| `reconnect.initialDelayMs` | `number` | `500` |", "| `reconnect.initialDelayMs` | `number` | `250` |");
  assert.deepEqual(await run({ docsPath }), [
    "option `reconnect.initialDelayMs`: docs/api.md says default `250`, the core says `500`",
  ]);
});

test("a field the core starts sending is reported", async () => {
  const s = structuredClone(schema);
  for (const p of s.events.reconnecting) p.cause = "stale";
  assert.deepEqual(await run({ schema: s }), [
    "event `reconnecting` field `cause`: in the core, not in the d.ts or docs/api.md",
  ]);
});

test("an error code the shell starts raising is reported", async () => {
  const webDir = join(dir, "web");
  cpSync(join(ROOT, "src", "web"), webDir, { recursive: true });
  writeFileSync(join(webDir, "extra.rs"), 'fn f() { client_error("mic-busy", "the device is busy"); }\n');
  assert.deepEqual(await run({ webDir }), [
    "error code `mic-busy`: in the core or the shell (src/web), not in the d.ts or docs/api.md",
  ]);
});

test("a state or a drop reason on one side only is reported", async () => {
  const s = structuredClone(schema);
  s.states.push("paused");
  s.dropReasons = s.dropReasons.filter((r) => r !== "format");
  assert.deepEqual(await run({ schema: s }), [
    "drop reason `format`: in the d.ts and docs/api.md, not in the core",
    "state `paused`: in the core, not in the d.ts or docs/api.md",
  ]);
});

test("an exported name that shadows a DOM global is reported", async () => {
  const dtsPath = mutated(DTS, "shadow.d.ts", "export interface TranscriptionMessageEvent", "export interface MessageEvent { data: string }\nexport interface TranscriptionMessageEvent");
  assert.deepEqual(await run({ dtsPath }), [
    "the d.ts: exported `MessageEvent` shadows the DOM global of the same name",
  ]);
});

test("the command line fails with exit 1 and the list of differences", () => {
  const docsPath = mutated(DOCS, "cli.md", /\| `buffer\.ttlMs` .*\n/.exec(readFileSync(DOCS, "utf8"))[0], "");
  const schemaPath = join(dir, "schema.json");
  writeFileSync(schemaPath, JSON.stringify(schema));
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "check-api.mjs"), "--schema", schemaPath, "--docs", docsPath], { encoding: "utf8" });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /disagree \(1\):\n {2}- option `buffer\.ttlMs`: in the core and the d\.ts, not in docs\/api\.md\n/);
});
