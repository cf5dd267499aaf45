// The API drift check (run by `npm test`): holds three descriptions of the
// JavaScript API against each other and fails on anything that exists in
// one and not in the others, printing exactly what differs.
//
//   1. the core's truth: `cargo run --example api_schema` (option keys and
//      defaults from core::options and Config, sample payloads of every
//      event built by core::payload, error codes, drop reasons, states),
//      plus the error codes the browser shell raises, found in src/web/;
//   2. the TypeScript declarations, read with the TypeScript compiler API
//      (pkg/resilient_transcriber.d.ts: src/web/api.d.ts and the class
//      wasm-bindgen generates), and the built class's methods at run time;
//   3. the reference, docs/api.md: its tables of options (with defaults),
//      event fields (with types), methods, error codes, drop reasons and
//      states.
//
// Usage: node scripts/check-api.mjs [--schema F] [--dts F] [--docs F] [--js F]
// (defaults: the example's output, pkg/resilient_transcriber.d.ts,
// docs/api.md, pkg/resilient_transcriber.js). Exit 1 with one line per
// difference. tests/api/check-api.test.mjs feeds it mutated copies.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { spawnSync } from "node:child_process";
import ts from "typescript";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The core's schema, from `cargo run --example api_schema`. */
export function coreSchema() {
  const r = spawnSync("cargo", ["run", "--quiet", "--example", "api_schema"], {
    cwd: ROOT, encoding: "utf8", maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`cargo run --example api_schema failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---- 1. the core's schema -------------------------------------------------

/** JSON type names of a value. */
const jsonType = (v) => v === null ? "null" : Array.isArray(v) ? "array" : typeof v;

/** Flattens sample objects into path -> Set of JSON types (`words[].word`, `stats.bytesSent`). */
function flattenSamples(samples, prefix = "", out = new Map()) {
  for (const s of samples) {
    for (const [k, v] of Object.entries(s)) {
      const path = prefix + k;
      if (!out.has(path)) out.set(path, new Set());
      out.get(path).add(jsonType(v));
      if (jsonType(v) === "object") flattenSamples([v], `${path}.`, out);
      if (Array.isArray(v) && v.length && v.every((e) => jsonType(e) === "object")) {
        flattenSamples(v, `${path}[].`, out);
      }
    }
  }
  return out;
}

/** Every option as a path: `url`, `reconnect.initialDelayMs`, `startMicrophone.deviceId`, `close.flush`. */
function schemaOptions(schema) {
  const o = schema.options, out = [];
  for (const k of o.client) {
    if (o.sections[k]) out.push(...o.sections[k].map((s) => `${k}.${s}`));
    else out.push(k);
  }
  out.push(...o.capture.map((k) => `startMicrophone.${k}`), ...o.close.map((k) => `close.${k}`));
  out.push(...(o.startCapture ?? []).map((k) => `startCapture.${k}`), ...(o.utterance ?? []).map((k) => `beginUtterance.${k}`));
  return out;
}

/**
 * Error codes the browser shell raises itself (src/web/*.rs, *.js): the
 * first argument of client_error / error_event / rt_err, `code: "..."`
 * in payloads the JS side builds, and the codes mic_failed maps to.
 */
export function shellErrorCodes(dir = join(ROOT, "src", "web")) {
  const found = new Map();
  const patterns = [
    /client_error\(\s*"([a-z][a-z0-9-]*)"/g,
    /error_event\(\s*"([a-z][a-z0-9-]*)"/g,
    /rt_err\(\s*\d+\s*,\s*"([a-z][a-z0-9-]*)"/g,
    /\bcode:\s*"([a-z][a-z0-9-]*)"/g,
    /=>\s*"([a-z]+(?:-[a-z]+)+)",?\s*$/gm,
  ];
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(rs|js)$/.test(f)) continue;
    const src = readFileSync(join(dir, f), "utf8");
    for (const re of patterns) {
      for (const m of src.matchAll(re)) {
        if (!found.has(m[1])) found.set(m[1], `src/web/${f}`);
      }
    }
  }
  return found;
}

// ---- 2. the TypeScript declarations ----------------------------------------

/** Parses a .d.ts with the compiler API: a checker over it and the DOM lib. */
function loadDts(path) {
  const options = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], types: [] };
  const program = ts.createProgram([path], options);
  const source = program.getSourceFile(path);
  if (!source) throw new Error(`${path}: not readable by the TypeScript compiler`);
  const checker = program.getTypeChecker();
  const diagnostics = ts.getPreEmitDiagnostics(program, source)
    .map((d) => `${path}: TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exports = new Map(checker.getExportsOfModule(moduleSymbol).map((s) => [s.getName(), s]));
  return { program, checker, source, exports, diagnostics };
}

const text = (node) => node.getText().replace(/\s+/g, " ").trim();

/** A declared type (by name) as an object type: its properties with optional flag and type text. */
function declaredType(d, name) {
  const sym = d.exports.get(name);
  if (!sym) return null;
  const target = sym.flags & ts.SymbolFlags.Alias ? d.checker.getAliasedSymbol(sym) : sym;
  return d.checker.getDeclaredTypeOfSymbol(target);
}

/** The JSON types a TS type admits: number, string, boolean, null, array, object, any. */
function tsJsonTypes(d, type) {
  const out = new Set();
  const parts = type.isUnion() ? type.types : [type];
  for (const t of parts) {
    const f = t.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) out.add("any");
    else if (f & ts.TypeFlags.NumberLike) out.add("number");
    else if (f & ts.TypeFlags.StringLike) out.add("string");
    else if (f & ts.TypeFlags.BooleanLike) out.add("boolean");
    else if (f & ts.TypeFlags.Null) out.add("null");
    else if (f & ts.TypeFlags.Undefined) continue;
    else if (d.checker.isArrayType(t)) out.add("array");
    else if (t.getCallSignatures().length) out.add("function");
    else out.add("object");
  }
  return out;
}

/**
 * The single object type inside a property's type (for nesting), or null.
 * An option that is also a switch (`boolean | { preRollMs }`, `boolean |
 * MediaStream | { deviceId }`) nests its one object literal.
 */
function nestedObject(d, type) {
  let parts = (type.isUnion() ? type.types : [type]).filter((t) => !(t.flags & (ts.TypeFlags.Null | ts.TypeFlags.Undefined)));
  if (parts.length > 1 && parts.some((t) => t.flags & ts.TypeFlags.BooleanLike)) {
    const literal = parts.filter((t) => t.flags & ts.TypeFlags.Object && t.symbol?.getName() === "__type" && !t.getCallSignatures().length);
    parts = literal.length === 1 ? literal : parts;
  }
  if (parts.length !== 1) return null;
  const t = parts[0];
  if (d.checker.isArrayType(t)) {
    const [el] = d.checker.getTypeArguments(t);
    return el && el.flags & ts.TypeFlags.Object && !d.checker.isArrayType(el) ? { type: el, array: true } : null;
  }
  if (t.flags & ts.TypeFlags.Object && !t.getCallSignatures().length) return { type: t, array: false };
  return null;
}

/** Flattens a declared object type: path -> { types, optional, typeText }. */
function flattenType(d, type, prefix = "", out = new Map()) {
  for (const prop of d.checker.getPropertiesOfType(type)) {
    const decl = prop.valueDeclaration ?? prop.declarations?.[0];
    const t = d.checker.getTypeOfSymbolAtLocation(prop, decl);
    const path = prefix + prop.getName();
    const optional = !!(prop.flags & ts.SymbolFlags.Optional);
    const typeText = decl && decl.type ? text(decl.type) : d.checker.typeToString(t);
    out.set(path, { types: tsJsonTypes(d, t), optional, typeText });
    const nested = nestedObject(d, t);
    if (nested) flattenType(d, nested.type, `${path}${nested.array ? "[]" : ""}.`, out);
  }
  return out;
}

/** The string literals of a union type alias (`ErrorCode`) or of a property type. */
function literals(type) {
  const parts = type.isUnion() ? type.types : [type];
  return parts.filter((t) => t.isStringLiteral()).map((t) => t.value);
}

/** Names of the class's public members (methods, getters), from the class and the interfaces merged into it. */
function classMembers(d, name) {
  const type = declaredType(d, name);
  if (!type) return null;
  return d.checker.getPropertiesOfType(type).map((p) => p.getName()).filter((n) => !n.startsWith("__@"));
}

/** Names the DOM lib declares globally. */
function domGlobals(d) {
  const names = new Set();
  for (const sf of d.program.getSourceFiles()) {
    if (!/lib\.dom\.d\.ts$/.test(sf.fileName)) continue;
    for (const st of sf.statements) {
      if (st.name && ts.isIdentifier(st.name)) names.add(st.name.text);
      if (ts.isVariableStatement(st)) for (const v of st.declarationList.declarations) if (ts.isIdentifier(v.name)) names.add(v.name.text);
    }
  }
  return names;
}

// ---- 3. docs/api.md --------------------------------------------------------

/**
 * docs/api.md as sections: `## Title` → `### heading` → rows of its first
 * table (cells, backticks kept). A row's key is the first backticked word
 * of its first cell.
 */
export function parseDocs(md) {
  const sections = [];
  let h2 = null, h3 = null;
  for (const line of md.split("\n")) {
    if (/^## /.test(line)) { h2 = { title: line.slice(3).trim(), subs: [], rows: [] }; sections.push(h2); h3 = null; continue; }
    if (/^### /.test(line) && h2) { h3 = { heading: line.slice(4).trim(), rows: [] }; h2.subs.push(h3); continue; }
    const m = /^\|(.*)\|\s*$/.exec(line);
    if (!m || !h2) continue;
    const cells = m[1].split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    const key = /`([^`]+)`/.exec(cells[0]);
    if (!key) continue; // the header row
    (h3 ?? h2).rows.push({ key: key[1], cells });
  }
  return sections;
}

const unticked = (s) => s.replace(/`/g, "").trim();
/** `### \`name\` — \`Interface\``: [name, Interface]. */
const headingNames = (h) => [...h.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

// ---- the comparison --------------------------------------------------------

/**
 * Compares schema, d.ts and docs; returns the list of differences (empty:
 * they agree). `jsPath` (optional): the built module, whose class's
 * prototype is compared with the d.ts.
 */
export async function checkApi({ schema, dtsPath, docsPath, jsPath, webDir }) {
  const problems = [];
  const d = loadDts(dtsPath);
  problems.push(...d.diagnostics);
  const docs = parseDocs(readFileSync(docsPath, "utf8"));
  const DOCS = "docs/api.md", DTS = "the d.ts", CORE = "the core";
  const section = (title) => docs.find((s) => s.title.toLowerCase().startsWith(title.toLowerCase()));
  const sub = (sec, name) => sec?.subs.find((s) => headingNames(s.heading).includes(name));

  /** Reports every name not in all of the given sets. */
  const compareSets = (what, sets) => {
    const all = new Set(Object.values(sets).flatMap((s) => [...s]));
    for (const name of [...all].sort()) {
      const has = Object.entries(sets).filter(([, s]) => s.has(name)).map(([k]) => k);
      const lacks = Object.keys(sets).filter((k) => !has.includes(k));
      if (lacks.length) problems.push(`${what} \`${name}\`: in ${has.join(" and ")}, not in ${lacks.join(" or ")}`);
    }
  };

  // Options.
  const optionGroups = [
    ["TranscriptionClientOptions", "", "new TranscriptionClient"],
    ["MicrophoneOptions", "startMicrophone.", "startMicrophone"],
    ["CloseOptions", "close.", "close"],
    ["StartCaptureOptions", "startCapture.", "startCapture"],
    ["UtteranceOptions", "beginUtterance.", "beginUtterance"],
  ];
  const dtsOptions = new Map(), docsOptions = new Map();
  const optSec = section("Options");
  if (!optSec) problems.push(`${DOCS}: no "## Options" section`);
  for (const [iface, prefix, heading] of optionGroups) {
    const type = declaredType(d, iface);
    if (!type) { problems.push(`${DTS}: no exported \`${iface}\``); continue; }
    for (const [path, info] of flattenType(d, type)) {
      // Sections (`reconnect`) are containers, not options.
      if (!prefix && schema.options.sections[path]) continue;
      dtsOptions.set(prefix + path, info);
    }
    const s = optSec?.subs.find((x) => x.heading.includes(heading) && headingNames(x.heading).includes(iface));
    if (optSec && !s) { problems.push(`${DOCS}: no "### \`${heading}(...)\` — \`${iface}\`" table under "## Options"`); continue; }
    for (const r of s?.rows ?? []) docsOptions.set(prefix + r.key, r);
  }
  const coreOptions = schemaOptions(schema);
  compareSets("option", { [CORE]: new Set(coreOptions), [DTS]: new Set(dtsOptions.keys()), [DOCS]: new Set(docsOptions.keys()) });
  // Docs: the type cell is the d.ts type; the default cell starts with the core's default.
  for (const [path, row] of docsOptions) {
    const t = dtsOptions.get(path);
    if (t && unticked(row.cells[1] ?? "") !== t.typeText) {
      problems.push(`option \`${path}\`: ${DOCS} says type \`${unticked(row.cells[1] ?? "")}\`, ${DTS} says \`${t.typeText}\``);
    }
    const want = schema.defaults[path];
    const got = unticked(row.cells[2] ?? "");
    if (want !== undefined && !(got === want || got.startsWith(`${want} `) || got.startsWith(`${want},`) || got.startsWith(`${want}:`))) {
      problems.push(`option \`${path}\`: ${DOCS} says default \`${got}\`, ${CORE} says \`${want}\``);
    }
  }

  // Events: types, then each payload's fields and their JSON types.
  const mapType = declaredType(d, "TranscriptionEventMap");
  const evSec = section("Events");
  if (!evSec) problems.push(`${DOCS}: no "## Events" section`);
  const dtsEvents = new Map();
  if (!mapType) problems.push(`${DTS}: no exported \`TranscriptionEventMap\``);
  else for (const p of d.checker.getPropertiesOfType(mapType)) dtsEvents.set(p.getName(), d.checker.getTypeOfSymbolAtLocation(p, d.source));
  const docsEvents = new Set((evSec?.subs ?? []).filter((s) => /^`[a-z]+`/.test(s.heading)).map((s) => headingNames(s.heading)[0]));
  compareSets("event type", { [CORE]: new Set(schema.eventTypes), [DTS]: new Set(dtsEvents.keys()), [DOCS]: docsEvents });

  /** Docs fields of an interface section, following nested interface tables. */
  const docsFields = (iface, prefix = "", out = new Map(), seen = new Set()) => {
    if (seen.has(iface)) return out;
    seen.add(iface);
    const s = docs.flatMap((x) => x.subs).find((x) => headingNames(x.heading).includes(iface));
    if (!s) return null;
    for (const r of s.rows) {
      const typeText = unticked(r.cells[1] ?? "");
      out.set(prefix + r.key, typeText);
      const m = /^([A-Z]\w*)(\[\])?(?: \| null)?$/.exec(typeText);
      if (m && docs.flatMap((x) => x.subs).some((x) => headingNames(x.heading).includes(m[1]))) {
        docsFields(m[1], `${prefix}${r.key}${m[2] ? "[]" : ""}.`, out, seen);
      }
    }
    return out;
  };
  const shell = new Set((schema.shellFields ?? []).map((f) => `${f.event}:${f.field}`));
  for (const ev of schema.eventTypes) {
    const type = dtsEvents.get(ev);
    if (!type || !schema.events[ev]) continue;
    const iface = d.checker.typeToString(type);
    const core = flattenSamples(schema.events[ev]);
    const dts = flattenType(d, type);
    const docSub = sub(evSec, ev);
    const docNames = docSub ? headingNames(docSub.heading) : [];
    if (docSub && !docNames.includes(iface)) problems.push(`event \`${ev}\`: ${DOCS} heading names ${docNames.slice(1).map((n) => `\`${n}\``).join(", ") || "no type"}, ${DTS} says \`${iface}\``);
    const doc = docSub ? docsFields(iface) ?? new Map() : new Map();
    if (docSub && !docs.flatMap((x) => x.subs).some((x) => headingNames(x.heading).includes(iface))) problems.push(`event \`${ev}\`: ${DOCS} has no table for \`${iface}\``);
    const coreSet = new Set(core.keys());
    // A field the shell adds (listed in the schema) counts as the core's.
    for (const [path, info] of dts) if (shell.has(`${ev}:${path}`) && info.optional) coreSet.add(path);
    compareSets(`event \`${ev}\` field`, { [CORE]: coreSet, [DTS]: new Set(dts.keys()), ...(docSub ? { [DOCS]: new Set(doc.keys()) } : {}) });
    for (const [path, types] of core) {
      const t = dts.get(path);
      if (!t || t.types.has("any")) continue;
      const missing = [...types].filter((x) => !t.types.has(x));
      const extra = [...t.types].filter((x) => !types.has(x) && x !== "function");
      if (missing.length || extra.length) {
        problems.push(`event \`${ev}\` field \`${path}\`: ${CORE} sends ${[...types].sort().join(" | ")}, ${DTS} declares \`${t.typeText}\``);
      }
      if (t.optional && !shell.has(`${ev}:${path}`)) problems.push(`event \`${ev}\` field \`${path}\`: optional in ${DTS}, but ${CORE} always sends it`);
    }
    for (const [path, typeText] of doc) {
      const t = dts.get(path);
      if (t && typeText !== t.typeText) problems.push(`event \`${ev}\` field \`${path}\`: ${DOCS} says type \`${typeText}\`, ${DTS} says \`${t.typeText}\``);
    }
  }
  // stats() is the close summary's `stats`; compare it on its own too.
  const statsType = declaredType(d, "TranscriptionStats");
  if (statsType) {
    const core = flattenSamples(schema.stats);
    const doc = docsFields("TranscriptionStats");
    if (!doc) problems.push(`${DOCS}: no table for \`TranscriptionStats\``);
    compareSets("stats field", { [CORE]: new Set(core.keys()), [DTS]: new Set(flattenType(d, statsType).keys()), ...(doc ? { [DOCS]: new Set(doc.keys()) } : {}) });
  } else problems.push(`${DTS}: no exported \`TranscriptionStats\``);

  // Error codes: the core's and the shell's, the d.ts union, the docs table.
  const shellCodes = shellErrorCodes(webDir);
  const codeType = declaredType(d, "ErrorCode");
  const dtsCodes = new Set(codeType ? literals(codeType) : []);
  if (!codeType) problems.push(`${DTS}: no exported \`ErrorCode\``);
  const codesSec = section("Error codes");
  if (!codesSec) problems.push(`${DOCS}: no "## Error codes" section`);
  const produced = new Set([...schema.errorCodes, ...shellCodes.keys()]);
  compareSets("error code", { "the core or the shell (src/web)": produced, [DTS]: dtsCodes, [DOCS]: new Set((codesSec?.rows ?? []).map((r) => r.key)) });

  // Drop reasons and states: the core's enums, the d.ts unions, the docs tables.
  const dropped = declaredType(d, "DroppedEvent");
  const reasonProp = dropped && d.checker.getPropertyOfType(dropped, "reason");
  const dtsReasons = new Set(reasonProp ? literals(d.checker.getTypeOfSymbolAtLocation(reasonProp, d.source)) : []);
  compareSets("drop reason", { [CORE]: new Set(schema.dropReasons), [DTS]: dtsReasons, [DOCS]: new Set((section("Drop reasons")?.rows ?? []).map((r) => r.key)) });
  const stateType = declaredType(d, "TranscriptionState");
  compareSets("state", { [CORE]: new Set(schema.states), [DTS]: new Set(stateType ? literals(stateType) : []), [DOCS]: new Set((section("States")?.rows ?? []).map((r) => r.key)) });

  // Methods: the class in the d.ts, the built class at run time, the docs.
  const members = classMembers(d, "TranscriptionClient");
  if (!members) problems.push(`${DTS}: no exported class \`TranscriptionClient\``);
  const methSec = section("Methods");
  if (!methSec) problems.push(`${DOCS}: no "## Methods" section`);
  const docMethods = new Set((methSec?.subs ?? []).map((s) => (/`(?:client\.)?([A-Za-z_$][\w$]*)/.exec(s.heading) ?? [])[1]).filter(Boolean));
  const sets = { [DTS]: new Set(members ?? []), [DOCS]: docMethods };
  if (jsPath && existsSync(jsPath)) {
    const mod = await import(pathToFileURL(jsPath).href);
    const proto = mod.TranscriptionClient?.prototype;
    if (!proto) problems.push(`${jsPath}: exports no TranscriptionClient class`);
    else sets["the built class"] = new Set(Object.getOwnPropertyNames(proto).filter((n) => n !== "constructor" && !n.startsWith("__")));
  }
  compareSets("method", sets);

  // Exported names must not shadow DOM globals.
  const dom = domGlobals(d);
  for (const name of d.exports.keys()) if (dom.has(name)) problems.push(`${DTS}: exported \`${name}\` shadows the DOM global of the same name`);
  return problems;
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
  const schemaPath = opt("--schema");
  const schema = schemaPath ? JSON.parse(readFileSync(schemaPath, "utf8")) : coreSchema();
  const dtsPath = resolve(opt("--dts", join(ROOT, "pkg", "resilient_transcriber.d.ts")));
  if (!existsSync(dtsPath)) { console.error(`check-api: ${dtsPath} is missing; run scripts/build.sh`); process.exit(2); }
  const problems = await checkApi({
    schema,
    dtsPath,
    docsPath: resolve(opt("--docs", join(ROOT, "docs", "api.md"))),
    jsPath: opt("--js", join(ROOT, "pkg", "resilient_transcriber.js")),
  });
  if (problems.length) {
    console.error(`check-api: the core, the d.ts and docs/api.md disagree (${problems.length}):`);
    for (const p of problems) console.error(`  - ${p}`);
    process.exit(1);
  }
  console.log("check-api: options, defaults, events and their fields, stats, error codes, drop reasons, states and methods agree in the core, the d.ts and docs/api.md");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
