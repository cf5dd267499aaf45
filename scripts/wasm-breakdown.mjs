// Where the bytes of a .wasm are: section sizes, and the code section's
// function bodies grouped by origin (from the `name` section, which the
// build keeps for this purpose in a copy that is not shipped).
//
//   node scripts/wasm-breakdown.mjs path/to/module.wasm [--top N]
//
// Groups are matched on the demangled function name, first match wins
// (GROUPS below); a name section is required for the per-origin view.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const GROUPS = [
  // The exported methods: wasm-bindgen's shim with the method's body (and
  // whatever it inlined) in it, named after the JS method.
  ["exported methods (shim + inlined body)", /^transcriptionclient_|^utterance_|^audiopreprocessor_/],
  ["formatting (core::fmt)", /core::fmt|fmt::Write|Formatter|<.*as core::fmt|pad_integral|float_to_decimal|fmt_u64|write_fmt|Display|Debug/],
  ["panics", /panic|unwrap_failed|expect_failed|assert_failed|bounds_check|slice_index|str_index|slice_start|slice_end|begin_panic/],
  ["allocator", /dlmalloc|talc|lol_alloc|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_|alloc::alloc|RawVec|raw_vec|finish_grow|reserve_for_push|grow_one|capacity_overflow|handle_alloc_error/],
  ["JSON reader/writer", /core::json/],
  ["resampler and audio", /resilient_audio|core::audio/],
  ["session core", /core::session|core::link|core::liveness|core::receive|core::send|core::close|core::timeline|core::pacer/],
  ["queue and ledger", /core::queue/],
  ["protocols", /core::protocol/],
  ["config and validation", /core::config|core::error|core::options|redact/],
  ["payloads, text, diagnostics", /core::payload|core::text|core::diagnostics/],
  ["watchdog, backoff, clock, events", /core::watchdog|core::backoff|core::clock|core::event|core::io|core::timer|core::rng|core::time/],
  ["web shell", /resilient_transcriber::web/],
  ["exported shims (wasm-bindgen)", /__wbg_|__wbindgen|wasm_bindgen::convert|wbg_/],
  ["wasm-bindgen / js-sys / web-sys runtime", /wasm_bindgen|js_sys|web_sys/],
  ["futures", /futures|wasm_bindgen_futures|Waker|Poll|poll_fn|Task|executor/],
  ["gloo", /gloo/],
  ["std collections and strings", /alloc::|core::str|core::slice|VecDeque|hashbrown|String|core::iter/],
  ["other std/core", /core::|std::/],
];

function leb(buf, pos) {
  let result = 0, shift = 0, b;
  do {
    b = buf[pos++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [result, pos];
}

export function analyse(bytes) {
  const buf = new Uint8Array(bytes);
  let pos = 8;
  const sections = [];
  let code = null;
  let names = new Map();
  let imports = 0;
  let importedFuncs = 0;
  while (pos < buf.length) {
    const id = buf[pos++];
    let size;
    [size, pos] = leb(buf, pos);
    const start = pos;
    let name = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "datacount"][id] ?? `id${id}`;
    if (id === 0) {
      let n;
      [n, pos] = leb(buf, pos);
      const cname = new TextDecoder().decode(buf.subarray(pos, pos + n));
      name = `custom:${cname}`;
      if (cname === "name") {
        let p = pos + n;
        while (p < start + size) {
          const sub = buf[p++];
          let len;
          [len, p] = leb(buf, p);
          if (sub === 1) {
            let q = p, count;
            [count, q] = leb(buf, q);
            for (let i = 0; i < count; i++) {
              let idx, nl;
              [idx, q] = leb(buf, q);
              [nl, q] = leb(buf, q);
              names.set(idx, new TextDecoder().decode(buf.subarray(q, q + nl)));
              q += nl;
            }
          }
          p += len;
        }
      }
    } else if (id === 2) {
      let p = start, count;
      [count, p] = leb(buf, p);
      imports = count;
      for (let i = 0; i < count; i++) {
        let l;
        [l, p] = leb(buf, p); p += l;
        [l, p] = leb(buf, p); p += l;
        const kind = buf[p++];
        if (kind === 0) { [, p] = leb(buf, p); importedFuncs++; }
        else if (kind === 1) { p++; const f = buf[p++]; [, p] = leb(buf, p); if (f & 1) [, p] = leb(buf, p); }
        else if (kind === 2) { const f = buf[p++]; [, p] = leb(buf, p); if (f & 1) [, p] = leb(buf, p); }
        else if (kind === 3) { p += 2; }
      }
    } else if (id === 10) {
      let p = start, count;
      [count, p] = leb(buf, p);
      const bodies = [];
      for (let i = 0; i < count; i++) {
        let len;
        const at = p;
        [len, p] = leb(buf, p);
        bodies.push({ size: len + (p - at), at, end: p + len });
        p += len;
      }
      code = bodies;
    }
    sections.push({ name, size });
    pos = start + size;
  }
  const group = () => ({ bytes: 0, count: 0, parts: [] });
  const groups = new Map(GROUPS.map(([g]) => [g, group()]));
  groups.set("unnamed", group());
  const functions = [];
  if (code) {
    code.forEach(({ size, at, end }, i) => {
      const fname = names.get(i + importedFuncs) ?? "";
      const g = fname ? (GROUPS.find(([, re]) => re.test(fname))?.[0] ?? "other") : "unnamed";
      if (!groups.has(g)) groups.set(g, group());
      groups.get(g).bytes += size;
      groups.get(g).count += 1;
      groups.get(g).parts.push(buf.subarray(at, end));
      functions.push({ name: fname || `func[${i + importedFuncs}]`, size });
    });
  }
  // Each group's bodies compressed on their own: what the group would cost
  // on the wire if nothing else shared its patterns (so the column sums to
  // a little more than the code section's share of the whole).
  for (const v of groups.values()) {
    v.gzip = v.parts.length ? gzipSync(Buffer.concat(v.parts), { level: 9 }).length : 0;
    delete v.parts;
  }
  functions.sort((a, b) => b.size - a.size);
  return { sections, groups, functions, imports, importedFuncs, named: names.size > 0 };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = process.argv[2];
  const top = Number(process.argv[process.argv.indexOf("--top") + 1]) || 25;
  const r = analyse(readFileSync(path));
  console.log(`${path}: ${r.imports} imports (${r.importedFuncs} functions)`);
  console.log("\nsection                       bytes");
  for (const s of r.sections) console.log(`${s.name.padEnd(28)} ${String(s.size).padStart(8)}`);
  if (r.named) {
    console.log("\ncode by origin                           bytes  gzip -9  functions");
    for (const [g, v] of [...r.groups].sort((a, b) => b[1].bytes - a[1].bytes)) {
      if (v.count) console.log(`${g.padEnd(38)} ${String(v.bytes).padStart(8)} ${String(v.gzip).padStart(8)}  ${String(v.count).padStart(5)}`);
    }
    console.log(`\nlargest ${top} functions`);
    for (const f of r.functions.slice(0, top)) console.log(`${String(f.size).padStart(7)}  ${f.name.slice(0, 110)}`);
  } else {
    console.log("\n(no name section: build with names to see the breakdown)");
  }
}
