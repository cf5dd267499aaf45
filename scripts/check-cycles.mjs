// No import cycles between sibling modules (issue 9): in every folder of
// src/, devserver/src/ and relay/src/, the modules side by side (files and
// sub-folders) must form a DAG by their `use` paths. A module's own
// children reaching up (`use super::*`) are not a cycle: a parent owns its
// children. Prints the cycles and exits 1 when there is one.
//
//   node scripts/check-cycles.mjs
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const CRATES = [["src", "crate"], ["devserver/src", "crate"], ["relay/src", "crate"]];

/** Every .rs file under `dir`, with its module path (["core", "session", "link"]). */
function files(dir, base = dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, base));
    else if (name.endsWith(".rs")) {
      const parts = relative(base, p).replace(/\.rs$/, "").split("/");
      if (["mod", "lib", "main"].includes(parts.at(-1))) parts.pop();
      out.push({ path: p, module: parts });
    }
  }
  return out;
}

/** The module paths a file names in `use` declarations and `crate::`/`super::` paths, absolute. */
function references(text, module, isDirModule) {
  const refs = [];
  // The module a `super::` in this file starts from: a mod.rs is its
  // folder's module, any other file a child of its folder's.
  const self = module;
  for (const m of text.matchAll(/\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
    const segs = m[1].split("::");
    let at;
    if (segs[0] === "crate") at = [];
    else if (segs[0] === "self") at = [...self];
    else {
      at = [...self];
      while (segs[0] === "super") { at.pop(); segs.shift(); }
      segs.unshift("super");
    }
    refs.push([...at, ...segs.slice(1)]);
  }
  return refs;
}

let cycles = 0;
for (const [dir] of CRATES) {
  const all = files(join(ROOT, dir));
  const modules = new Set(all.map((f) => f.module.join("::")));
  // Edges between siblings: for each file, each reference resolved to the
  // longest module it names; the edge is between the two children of their
  // common parent.
  const edges = new Map();
  for (const f of all) {
    const text = readFileSync(f.path, "utf8").replace(/\/\/.*$/gm, "");
    for (const ref of references(text, f.module)) {
      let target = null;
      for (let n = ref.length; n > 0; n--) {
        const key = ref.slice(0, n).join("::");
        if (modules.has(key)) { target = ref.slice(0, n); break; }
      }
      if (!target) continue;
      let i = 0;
      while (i < f.module.length && i < target.length && f.module[i] === target[i]) i++;
      // An ancestor or a descendant: parent and child, not siblings.
      if (i === f.module.length || i === target.length) continue;
      const parent = f.module.slice(0, i).join("::");
      const a = f.module[i];
      const b = target[i];
      if (!edges.has(parent)) edges.set(parent, new Map());
      const g = edges.get(parent);
      if (!g.has(a)) g.set(a, new Set());
      g.get(a).add(b);
    }
  }
  for (const [parent, g] of edges) {
    // Tarjan's strongly connected components.
    let index = 0;
    const idx = new Map();
    const low = new Map();
    const stack = [];
    const on = new Set();
    const visit = (v) => {
      idx.set(v, index); low.set(v, index); index++;
      stack.push(v); on.add(v);
      for (const w of g.get(v) ?? []) {
        if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
        else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
      }
      if (low.get(v) === idx.get(v)) {
        const comp = [];
        let w;
        do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
        if (comp.length > 1) {
          cycles++;
          console.log(`cycle in ${dir}${parent ? `/${parent.replaceAll("::", "/")}` : ""}: ${comp.reverse().join(" ↔ ")}`);
        }
      }
    };
    for (const v of g.keys()) if (!idx.has(v)) visit(v);
  }
  const count = [...edges.values()].reduce((n, g) => n + [...g.values()].reduce((m, s) => m + s.size, 0), 0);
  console.log(`${dir}: ${all.length} modules, ${count} edges between siblings`);
}
if (cycles) {
  console.log(`${cycles} import cycle(s) between sibling modules`);
  process.exit(1);
}
console.log("no import cycle between sibling modules");
