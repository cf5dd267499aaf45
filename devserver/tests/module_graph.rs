//! The modules of `devserver/src/` import each other without cycles
//! (issue 9): endpoints depend on the shared modules below them, never the
//! other way round, so each layer can be read, tested and moved on its own.
//!
//! The check reads every `src/**/*.rs`, finds each module's paths into the
//! crate (`use crate::..`, `use super::..`, `use self::..`, a child module's
//! name, and the same paths written inline in code, such as
//! `crate::deepgram::Params`), resolves each one to the module that
//! *defines* the item (following `use` re-exports and aliases, so
//! `crate::ServerConfig` is `config`, and `conn::admit` after
//! `use crate::conn::{self}` is `conn`), and fails on any strongly
//! connected component of more than one module. Inline modules
//! (`mod tests { .. }`) are modules of their own, so `use super::*` in a
//! test module points at the file it tests. Comments and string literals
//! are skipped; `#[cfg]` is ignored, so an edge counts in any build.
//!
//! `MODULE_GRAPH_SRC=/path/to/src` checks another tree (an old checkout,
//! say); `-- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[test]
fn devserver_modules_import_each_other_without_cycles() {
    let root = std::env::var_os("MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let files = read_tree(&root);
    assert!(
        files.iter().any(|(m, _)| m == "crate"),
        "no lib.rs under {}",
        root.display()
    );
    let graph = Graph::build(&files);
    println!("module graph of {}:\n{}", root.display(), graph.describe());
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "import cycles in {}:\n{}\nthe whole graph:\n{}",
        root.display(),
        cycles
            .iter()
            .map(|c| format!("  {}", c.join(" -> ")))
            .collect::<Vec<_>>()
            .join("\n"),
        graph.describe()
    );
}

/// The checker can fail: a two-module cycle through an inline path, one
/// through `super::` and a re-export, and a clean layout.
#[test]
fn the_checker_finds_cycles_through_every_kind_of_path() {
    let inline = [
        ("crate", "mod a; mod b;"),
        ("a", "pub fn f() { crate::b::g() }"),
        ("b", "use crate::a::{self, f};\npub fn g() { a::f() }"),
    ];
    assert_eq!(
        Graph::build(&own(&inline)).cycles(),
        vec![vec!["a", "b", "a"]]
    );

    // engine/mod.rs uses its child, the child imports a type defined in
    // the parent: a cycle. Defined in a leaf and only re-exported by the
    // parent: none.
    let parent_child = [
        ("crate", "pub mod engine;"),
        (
            "engine",
            "mod counter;\npub struct T;\nfn f() { counter::run() }",
        ),
        ("engine::counter", "use super::T;\npub fn run() {}"),
    ];
    assert_eq!(
        Graph::build(&own(&parent_child)).cycles(),
        vec![vec!["engine", "engine::counter", "engine"]]
    );
    let leaf = [
        ("crate", "pub mod engine;"),
        (
            "engine",
            "mod counter; mod types;\npub use types::T;\nfn f() { counter::run() }",
        ),
        ("engine::counter", "use super::T;\npub fn run() {}"),
        ("engine::types", "pub struct T;"),
    ];
    assert!(Graph::build(&own(&leaf)).cycles().is_empty());

    // A root that defines items its modules use, and uses theirs.
    let root_items = [
        ("crate", "mod x;\npub struct App { s: x::Store }"),
        ("x", "pub struct Store;\nfn f(_: &crate::App) {}"),
    ];
    assert_eq!(
        Graph::build(&own(&root_items)).cycles(),
        vec![vec!["crate", "x", "crate"]]
    );

    // Comments, strings, test modules and external crates are no edges.
    let quiet = [
        ("crate", "mod a; mod b;"),
        (
            "a",
            "// crate::b::x\n/* crate::b::y /* nested */ */\nconst S: &str = \"crate::b::z\";\n\
             const R: &str = r#\"crate::b::\"#; fn l<'a>(c: char) -> bool { c == '\"' }\n\
             use std::collections::HashMap;\nuse crate::b::B;",
        ),
        (
            "b",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}",
        ),
    ];
    let g = Graph::build(&own(&quiet));
    assert!(g.cycles().is_empty(), "{}", g.describe());
    assert_eq!(g.edges["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(g.edges["b::tests"], BTreeSet::from(["b".to_string()]));
}

fn own(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(m, s)| (m.to_string(), s.to_string()))
        .collect()
}

/// `(module path, source)` of every `.rs` file under `root`: `lib.rs` is
/// `crate`, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`. `main.rs` is
/// the binary's own crate (it reaches the library as `devserver::`), so it
/// cannot take part in a cycle of the library's modules and is left out.
fn read_tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(root).expect("under root");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts == ["main"] {
                continue;
            }
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let module = if parts.is_empty() {
                "crate".to_string()
            } else {
                parts.join("::")
            };
            let src = std::fs::read_to_string(&path).expect("readable source");
            out.push((module, src));
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust tokens as far as paths need them: identifiers, `::` and single
/// punctuation; comments, strings, chars and numbers dropped.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
            && raw_string_start(&c, i + 1 + usize::from(ch == 'b')).is_some()
        {
            let start = i + 1 + usize::from(ch == 'b');
            let hashes = raw_string_start(&c, start).expect("checked");
            i = start + hashes + 1;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if ch == 'b' && at(i + 1) == '"' {
            i = skip_string(&c, i + 2);
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            if at(i + 1) == '\\' {
                // Past the backslash and the escaped char (which may be a quote).
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[s..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !at(i + 1).is_ascii_digit() {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Tok::Path);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    out
}

/// The index after the closing quote of a string whose body starts at `i`.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"`, `r#"`, `r##"`...: the number of hashes when `c[i..]` opens a raw
/// string body (`i` just after the `r`).
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    let mut n = 0;
    while c.get(i + n) == Some(&'#') {
        n += 1;
    }
    (c.get(i + n) == Some(&'"')).then_some(n)
}

/// What one module says about paths, before resolution.
#[derive(Debug, Default)]
struct Module {
    /// Every path it names (imports and inline), as written.
    paths: Vec<Vec<String>>,
    /// `use` names: `conn` for `use crate::conn::{self}`, `T` for `use
    /// a::T`, `y` for `use x as y`, mapped to the path they stand for.
    aliases: BTreeMap<String, Vec<String>>,
    /// `use x::*` sources.
    globs: Vec<Vec<String>>,
}

/// Splits one file into its module and the inline modules it contains.
fn parse(module: &str, src: &str, out: &mut BTreeMap<String, Module>) {
    let toks = tokens(src);
    // (module path, brace depth its block opened at)
    let mut scopes: Vec<(String, usize)> = vec![(module.to_string(), 0)];
    let mut depth = 0usize;
    out.entry(module.to_string()).or_default();
    let mut i = 0;
    while i < toks.len() {
        let here = scopes.last().expect("the file's own scope").0.clone();
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scopes.len() > 1 && scopes.last().expect("inline scope").1 == depth {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    depth += 1;
                    let inner = child(&here, name);
                    out.entry(inner.clone()).or_default();
                    scopes.push((inner, depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(k) if k == "use" => {
                let m = out.get_mut(&here).expect("scope registered");
                i = use_tree(&toks, i + 1, Vec::new(), m);
                // Past the `;`.
                while i < toks.len() && toks[i] != Tok::Punct(';') {
                    i += 1;
                }
                i += 1;
            }
            Tok::Ident(first) if i == 0 || toks[i - 1] != Tok::Path => {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(s)) => {
                            path.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if path.len() > 1 {
                    out.get_mut(&here)
                        .expect("scope registered")
                        .paths
                        .push(path);
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

/// Parses a use tree at `i` under `prefix`; returns the index after it.
fn use_tree(toks: &[Tok], mut i: usize, mut prefix: Vec<String>, m: &mut Module) -> usize {
    if toks.get(i) == Some(&Tok::Path) {
        i += 1; // `use ::std::...`
    }
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) => {
                if s == "self" && !prefix.is_empty() {
                    // `a::{self}` imports `a` itself.
                    let name = prefix.last().expect("non-empty").clone();
                    i += 1;
                    let name = alias_name(toks, &mut i).unwrap_or(name);
                    m.paths.push(prefix.clone());
                    m.aliases.insert(name, prefix);
                    return i;
                }
                prefix.push(s.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                let name = alias_name(toks, &mut i).unwrap_or_else(|| s.clone());
                m.paths.push(prefix.clone());
                if name != "_" {
                    m.aliases.insert(name, prefix);
                }
                return i;
            }
            Some(Tok::Punct('*')) => {
                m.paths.push(prefix.clone());
                m.globs.push(prefix);
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i) {
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, prefix.clone(), m),
                    }
                }
            }
            _ => return i,
        }
    }
}

/// `as name` at `i`, consuming it.
fn alias_name(toks: &[Tok], i: &mut usize) -> Option<String> {
    match (toks.get(*i), toks.get(*i + 1)) {
        (Some(Tok::Ident(a)), Some(Tok::Ident(n))) if a == "as" => {
            *i += 2;
            Some(n.clone())
        }
        _ => None,
    }
}

fn child(parent: &str, name: &str) -> String {
    if parent == "crate" {
        name.to_string()
    } else {
        format!("{parent}::{name}")
    }
}

fn parent(module: &str) -> String {
    match module.rsplit_once("::") {
        Some((p, _)) => p.to_string(),
        None => "crate".to_string(),
    }
}

struct Graph {
    /// module → the modules it depends on.
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn build(files: &[(String, String)]) -> Graph {
        let mut modules = BTreeMap::new();
        for (m, src) in files {
            parse(m, src, &mut modules);
        }
        let r = Resolver { modules: &modules };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, m) in &modules {
            let e = edges.entry(name.clone()).or_default();
            for p in &m.paths {
                if let Some(t) = r.resolve(name, p, 0) {
                    if &t != name {
                        e.insert(t);
                    }
                }
            }
        }
        Graph { edges }
    }

    fn describe(&self) -> String {
        self.edges
            .iter()
            .map(|(m, to)| {
                let to: Vec<&str> = to.iter().map(String::as_str).collect();
                format!("  {m} -> {}", to.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One cycle per strongly connected component of two or more modules,
    /// written `a -> b -> a`: a shortest one through each module of the
    /// component in turn, duplicates removed, so every module caught in a
    /// cycle shows up in one.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for scc in self.sccs() {
            if scc.len() < 2 {
                continue;
            }
            let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
            for start in &scc {
                let c = self.cycle_through(start, &scc);
                // The same cycle from another start is a rotation of it.
                let mut key = c[..c.len() - 1].to_vec();
                let min = key
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, m)| *m)
                    .expect("non-empty")
                    .0;
                key.rotate_left(min);
                if seen.insert(key) {
                    out.push(c);
                }
            }
        }
        out.sort();
        out
    }

    /// Tarjan's algorithm, iteratively bounded by the module count.
    fn sccs(&self) -> Vec<BTreeSet<String>> {
        struct State<'a> {
            g: &'a Graph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            out: Vec<BTreeSet<String>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a str) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            s.on_stack.insert(v);
            let g = s.g;
            for w in g.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
            if s.low[v] == s.index[v] {
                let mut scc = BTreeSet::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    scc.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                s.out.push(scc);
            }
        }
        let mut s = State {
            g: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                visit(&mut s, v);
            }
        }
        s.out
    }

    /// A shortest cycle from `start` back to it inside `scc` (breadth first).
    fn cycle_through(&self, start: &str, scc: &BTreeSet<String>) -> Vec<String> {
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.to_string()]);
        while let Some(v) = queue.pop_front() {
            for w in self.edges.get(&v).into_iter().flatten() {
                if !scc.contains(w) {
                    continue;
                }
                if w == start {
                    // Walk back from `v` to `start`, then read it forwards.
                    let mut chain = vec![v.clone()];
                    let mut at = v.clone();
                    while at != start {
                        at = prev[&at].clone();
                        chain.push(at.clone());
                    }
                    chain.reverse();
                    chain.push(start.to_string());
                    return chain;
                }
                if !prev.contains_key(w) {
                    prev.insert(w.clone(), v.clone());
                    queue.push_back(w.clone());
                }
            }
        }
        vec![start.to_string()]
    }
}

struct Resolver<'a> {
    modules: &'a BTreeMap<String, Module>,
}

impl Resolver<'_> {
    fn is_module(&self, m: &str) -> bool {
        self.modules.contains_key(m)
    }

    /// The module that defines what `path`, written in module `at`, names;
    /// `None` for paths outside the crate (std, other crates, locals).
    fn resolve(&self, at: &str, path: &[String], hops: usize) -> Option<String> {
        if hops > 16 || path.is_empty() {
            return None;
        }
        let mut rest = path;
        let mut cur = match path[0].as_str() {
            "crate" => {
                rest = &path[1..];
                "crate".to_string()
            }
            "self" => {
                rest = &path[1..];
                at.to_string()
            }
            "super" => {
                let mut m = at.to_string();
                while rest.first().is_some_and(|s| s == "super") {
                    m = parent(&m);
                    rest = &rest[1..];
                }
                m
            }
            first => {
                let c = child(at, first);
                if self.is_module(&c) {
                    rest = &path[1..];
                    c
                } else if let Some(target) = self.alias(at, first, hops) {
                    let mut full = target;
                    full.extend_from_slice(&path[1..]);
                    return self.resolve(at, &full, hops + 1);
                } else {
                    return None;
                }
            }
        };
        for (k, seg) in rest.iter().enumerate() {
            let c = child(&cur, seg);
            if self.is_module(&c) {
                cur = c;
                continue;
            }
            // An item of `cur`, or a name `cur` imports from elsewhere.
            if let Some(target) = self.modules.get(&cur).and_then(|m| m.aliases.get(seg)) {
                let mut full = target.clone();
                full.extend_from_slice(&rest[k + 1..]);
                return self.resolve(&cur, &full, hops + 1).or(Some(cur));
            }
            return Some(cur);
        }
        Some(cur)
    }

    /// What a bare name stands for in module `at`, as an absolute path,
    /// when it leads into the crate: one of its own `use` names, or a child
    /// module or `use` name of what it glob-imports.
    fn alias(&self, at: &str, name: &str, hops: usize) -> Option<Vec<String>> {
        let m = self.modules.get(at)?;
        if let Some(p) = m.aliases.get(name) {
            let internal = matches!(p[0].as_str(), "crate" | "self" | "super")
                || self.is_module(&child(at, &p[0]));
            return internal.then(|| absolute(at, p));
        }
        for g in &m.globs {
            let Some(src) = self.resolve(at, g, hops + 1) else {
                continue;
            };
            let names_it = self.is_module(&child(&src, name))
                || self
                    .modules
                    .get(&src)
                    .is_some_and(|s| s.aliases.contains_key(name));
            if names_it {
                let mut p = absolute("crate", &[]);
                if src != "crate" {
                    p.extend(src.split("::").map(str::to_string));
                }
                p.push(name.to_string());
                return Some(p);
            }
        }
        None
    }
}

/// A `use` path written in module `at` made absolute (`crate::...`), so
/// it resolves the same from anywhere: `self::`/`super::` are relative to
/// `at`, and so is a leading child module's name (2018 paths).
fn absolute(at: &str, p: &[String]) -> Vec<String> {
    let mut m = at.to_string();
    let mut rest = p;
    match rest.first().map(String::as_str) {
        Some("crate") => return p.to_vec(),
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                m = parent(&m);
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    let mut out = vec!["crate".to_string()];
    if m != "crate" {
        out.extend(m.split("::").map(str::to_string));
    }
    out.extend_from_slice(rest);
    out
}
