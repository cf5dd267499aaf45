// Bundle size against the peers a user would otherwise pick, measured in
// the same run: each peer's typical browser entry (bench/peers/*.js),
// bundled by esbuild (--bundle --minify --format=esm --platform=browser)
// from the exact versions in package.json's devDependencies, then gzip -9
// and brotli (quality 11) of the result. Ours: the shipped files,
// pkg/resilient_transcriber_bg.wasm + pkg/resilient_transcriber.js, each
// compressed on its own, as a server sends them.
//
// `node bench/sizes.mjs` prints the table; `sizes()` returns it.
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import { build } from "esbuild";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkgJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

/** The peers: name, the packages it takes (versions from package.json), its entry, extra runtime files. */
export const PEERS = [
  { name: "partysocket", packages: ["partysocket"], entry: "partysocket.js", what: "reconnecting WebSocket" },
  { name: "reconnecting-websocket", packages: ["reconnecting-websocket"], entry: "reconnecting-websocket.js", what: "reconnecting WebSocket" },
  { name: "socket.io-client", packages: ["socket.io-client"], entry: "socket.io-client.js", what: "socket.io client" },
  { name: "@deepgram/sdk (live client)", packages: ["@deepgram/sdk"], entry: "deepgram-sdk.js", what: "Deepgram SDK, listen.v1.connect" },
  {
    name: "@speechmatics/real-time-client + browser-audio-input", packages: ["@speechmatics/real-time-client", "@speechmatics/browser-audio-input"],
    entry: "speechmatics.js", what: "Speechmatics client + capture (its worklet file included)",
    extra: ["node_modules/@speechmatics/browser-audio-input/dist/pcm-audio-worklet.min.js"],
  },
  { name: "@soniox/speech-to-text-web", packages: ["@soniox/speech-to-text-web"], entry: "soniox.js", what: "Soniox browser SDK" },
  { name: "assemblyai (streaming)", packages: ["assemblyai"], entry: "assemblyai.js", what: "AssemblyAI StreamingTranscriber" },
];

const gz = (b) => gzipSync(b, { level: 9 }).length;
const br = (b) => brotliCompressSync(b, {
  params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: b.length },
}).length;

function measure(files) {
  let raw = 0, gzip = 0, brotli = 0;
  for (const b of files) { raw += b.length; gzip += gz(b); brotli += br(b); }
  return { raw, gzip, brotli };
}

async function bundle(entry) {
  const r = await build({
    entryPoints: [join(ROOT, "bench", "peers", entry)],
    bundle: true, minify: true, format: "esm", platform: "browser", write: false,
    legalComments: "none", logLevel: "silent", absWorkingDir: ROOT,
    define: { "process.env.NODE_ENV": '"production"' },
  });
  return Buffer.from(r.outputFiles[0].contents);
}

export async function sizes() {
  const wasm = readFileSync(join(ROOT, "pkg", "resilient_transcriber_bg.wasm"));
  const glue = readFileSync(join(ROOT, "pkg", "resilient_transcriber.js"));
  const ours = { name: "resilient-transcriber (this package)", version: pkgJson.version, what: ".wasm + JS glue, as shipped", ...measure([wasm, glue]) };
  const rebundled = await bundle("resilient-transcriber.js");
  ours.rebundled = measure([wasm, rebundled]);
  const rows = [];
  for (const p of PEERS) {
    const version = p.packages.map((n) => `${n}@${pkgJson.devDependencies[n]}`).join(" + ");
    try {
      const files = [await bundle(p.entry), ...(p.extra ?? []).map((f) => readFileSync(join(ROOT, f)))];
      const m = measure(files);
      rows.push({ ...p, version, ...m, ratioGzip: m.gzip / ours.gzip, ratioBrotli: m.brotli / ours.brotli });
    } catch (e) {
      rows.push({ ...p, version, error: String(e.message ?? e).split("\n")[0] });
    }
  }
  return { ours, peers: rows };
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** The markdown table. */
export function sizesTable({ ours, peers }) {
  const lines = [
    "| package | version | raw | gzip -9 | brotli | gzip vs ours |",
    "|---|---|---:|---:|---:|---:|",
    `| **${ours.name}** (${ours.what}) | ${ours.version} | ${kb(ours.raw)} | **${kb(ours.gzip)}** | **${kb(ours.brotli)}** | 1.00× |`,
  ];
  for (const p of peers) {
    if (p.error) { lines.push(`| ${p.name} | ${p.version} | bundle failed: ${p.error} | | | |`); continue; }
    lines.push(`| ${p.name} (${p.what}) | ${p.version} | ${kb(p.raw)} | ${kb(p.gzip)} | ${kb(p.brotli)} | ${p.ratioGzip.toFixed(2)}× |`);
  }
  return lines.join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const s = await sizes();
  console.log(sizesTable(s));
  console.log(`\nOurs re-bundled by the same esbuild command: .wasm + JS ${kb(s.ours.rebundled.gzip)} gzip, ${kb(s.ours.rebundled.brotli)} brotli.`);
}
