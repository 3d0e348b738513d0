//! The crate's layering, checked from its source: no import circle between
//! files, none between top-level modules, and the commands on top (nothing
//! but the command-line front end depends on a command module). The rule
//! and how a circle is broken are in docs/design.md, "Layers". Also: every
//! document a comment cites is in the repository.
//!
//! A module's own submodules are its parts: a parent that declares or
//! re-exports a child does not depend on it, and a child that uses its
//! parent's items does. Every other use of another file's item is an edge,
//! whether through `use`, a full path in code, or a name imported earlier.
//! A name re-exported by a module is followed to the module defining it.
//! This reads the source with a small scanner rather than the compiler's
//! resolution: it sees `use` trees, `crate::`/`super::`/`self::` paths,
//! child modules named directly and names imported as modules, which is
//! every form this crate uses; macros' bodies are read as written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root (`["store", "history"]`).
type ModPath = Vec<String>;

/// Top-level modules that may depend on the commands: the front end that
/// dispatches to them, and the commands themselves.
const ABOVE_COMMANDS: &[&str] = &["cli", "commands"];

#[test]
fn no_import_circle_between_files() {
    let krate = Crate::read();
    let edges = krate.file_edges();
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "import circles between files:\n{}",
        show(&cycles, &edges)
    );
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let krate = Crate::read();
    let edges = krate.top_edges();
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "import circles between top-level modules:\n{}",
        show(&cycles, &edges)
    );
}

#[test]
fn only_the_front_end_depends_on_commands() {
    let krate = Crate::read();
    let bad: Vec<String> = krate
        .top_edges()
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| to.as_str() == "commands" && !ABOVE_COMMANDS.contains(&from.as_str()))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        bad.is_empty(),
        "modules below the commands that use them: {bad:?}"
    );
}

/// The checker itself, on small made-up crates: it must see a circle where
/// there is one, or the tests above prove nothing.
#[test]
fn the_checker_finds_circles_it_is_shown() {
    let sibling = Crate::from_files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::b::B; pub struct A;"),
        ("b.rs", "pub struct B; fn f() -> crate::a::A { todo!() }"),
    ]);
    assert_eq!(cycles(&sibling.file_edges()).len(), 1);

    // Through a re-export in the parent, to a child of another module.
    let reexport = Crate::from_files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a/mod.rs", "mod inner; pub use inner::Thing;"),
        (
            "a/inner.rs",
            "use crate::b; pub struct Thing; fn f() { b::go(); }",
        ),
        ("b.rs", "use crate::a::Thing; pub fn go() {}"),
    ]);
    let found = cycles(&reexport.file_edges());
    assert_eq!(found, vec![vec!["a::inner".to_string(), "b".to_string()]]);
    assert_eq!(cycles(&reexport.top_edges()).len(), 1);

    // Parent and child are not a circle; `super` in an inline test module
    // is its own file; comments and strings are not code.
    let fine = Crate::from_files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a/mod.rs", "mod c; pub use c::C; pub struct P;"),
        ("a/c.rs", "use super::P; pub struct C;"),
        (
            "b.rs",
            "use crate::a::C; // crate::a is fine, and so is this: crate::c\n\
             const S: &str = \"crate::b\"; #[cfg(test)] mod tests { use super::*; }",
        ),
    ]);
    assert!(cycles(&fine.file_edges()).is_empty());
    assert!(cycles(&fine.top_edges()).is_empty());

    // A brace tree, and a module imported by name and used later.
    let tree = Crate::from_files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::{b, x::Y}; fn f() { b::g(); }"),
        ("b.rs", "use crate::a as other; pub fn g() { other::h(); }"),
    ]);
    assert_eq!(cycles(&tree.file_edges()).len(), 1);
}

/// Every module of the crate, by path, with its code (comments and literals
/// blanked).
struct Crate {
    modules: BTreeMap<ModPath, String>,
}

impl Crate {
    /// This crate's library (the binary's `main.rs` is only a shim).
    fn read() -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut modules = BTreeMap::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            if rel == Path::new("main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            modules.insert(module_path(rel), strip(&text));
        }
        Crate { modules }
    }

    fn from_files(files: &[(&str, &str)]) -> Crate {
        let modules = files
            .iter()
            .map(|(path, text)| (module_path(Path::new(path)), strip(text)))
            .collect();
        Crate { modules }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.modules.contains_key(path)
    }

    /// Module-to-module edges between files.
    fn file_edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, code) in &self.modules {
            if module.is_empty() {
                continue;
            }
            let from = module.join("::");
            let entry = edges.entry(from).or_default();
            for target in self.uses(module, code) {
                if target.is_empty() || target.starts_with(module) {
                    continue;
                }
                entry.insert(target.join("::"));
            }
        }
        edges
    }

    /// Edges between top-level modules.
    fn top_edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, tos) in self.file_edges() {
            let top = from.split("::").next().unwrap().to_string();
            let entry = edges.entry(top.clone()).or_default();
            for to in tos {
                let to_top = to.split("::").next().unwrap().to_string();
                if to_top != top {
                    entry.insert(to_top);
                }
            }
        }
        edges
    }

    /// The modules the code of `module` refers to.
    fn uses(&self, module: &ModPath, code: &str) -> BTreeSet<ModPath> {
        let mut found = BTreeSet::new();
        // Names this file imports that are modules: `use crate::history;`
        // then `history::x()`.
        let mut aliases: BTreeMap<String, ModPath> = BTreeMap::new();
        for (inline, path, alias) in use_paths(code) {
            let Some(abs) = self.absolute(module, inline, &path, &aliases) else {
                continue;
            };
            let target = self.resolve(&abs, 0);
            if self.is_module(&abs) {
                let name = alias.unwrap_or_else(|| abs.last().cloned().unwrap_or_default());
                aliases.insert(name, abs.clone());
            }
            found.insert(target);
        }
        for (inline, path) in code_paths(code) {
            if let Some(abs) = self.absolute(module, inline, &path, &aliases) {
                found.insert(self.resolve(&abs, 0));
            }
        }
        found
    }

    /// A path as written in `module`, inside `inline` nested inline
    /// modules, made absolute; `None` for another crate's path.
    fn absolute(
        &self,
        module: &ModPath,
        inline: usize,
        path: &[String],
        aliases: &BTreeMap<String, ModPath>,
    ) -> Option<ModPath> {
        let first = path.first()?;
        let mut base = module.clone();
        let mut rest = path;
        match first.as_str() {
            "crate" => {
                base.clear();
                rest = &path[1..];
            }
            "self" => rest = &path[1..],
            "super" => {
                let mut inline = inline;
                while rest.first().is_some_and(|s| s == "super") {
                    if inline > 0 {
                        inline -= 1;
                    } else {
                        base.pop()?;
                    }
                    rest = &rest[1..];
                }
            }
            name => {
                let mut child = module.clone();
                child.push(name.to_string());
                if self.is_module(&child) {
                    base = child;
                    rest = &path[1..];
                } else if let Some(target) = aliases.get(name) {
                    base = target.clone();
                    rest = &path[1..];
                } else {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module defining what `path` names: its longest prefix that is a
    /// module, followed through that module's re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> ModPath {
        let mut n = path.len();
        while n > 0 && !self.is_module(&path[..n]) {
            n -= 1;
        }
        let module = path[..n].to_vec();
        let (Some(item), true) = (path.get(n), depth < 8) else {
            return module;
        };
        let code = &self.modules[&module];
        for (inline, reexport, alias) in use_paths(code) {
            if inline > 0 {
                continue;
            }
            let name = alias.as_ref().or(reexport.last());
            let glob = reexport.last().is_some_and(|s| s == "*");
            if name != Some(item) && !glob {
                continue;
            }
            let Some(abs) = self.absolute(&module, 0, &reexport, &BTreeMap::new()) else {
                continue;
            };
            let abs: ModPath = if glob {
                let mut m = abs[..abs.len() - 1].to_vec();
                m.push(item.clone());
                m
            } else {
                abs
            };
            if abs.starts_with(&module) && abs.len() > module.len() + 1 {
                return self.resolve(&abs, depth + 1);
            }
        }
        module
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` is the root.
fn module_path(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code with comments, strings and character literals blanked out
/// (lengths kept), so only code is scanned.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&b, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            for &ch in &b[i..end] {
                out.push(blank(ch));
            }
            i = end;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime.
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&j| b[j] == '\'').map(|j| j + 1)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &ch in &b[i..end] {
                        out.push(blank(ch));
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The inline-module depth at each byte of the code: how many `mod name {`
/// blocks enclose it.
fn inline_depths(code: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut depths = vec![0; bytes.len() + 1];
    let mut braces = 0usize;
    let mut opened: Vec<usize> = Vec::new();
    let mut pending_mod = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() && (i == 0 || !is_ident(bytes[i - 1] as char)) {
            let end = (i..bytes.len())
                .find(|&j| !is_ident(bytes[j] as char))
                .unwrap_or(bytes.len());
            if &code[i..end] == "mod" {
                pending_mod = true;
            }
            for d in &mut depths[i..end] {
                *d = opened.len();
            }
            i = end;
            continue;
        }
        match c {
            b'{' => {
                braces += 1;
                if pending_mod {
                    opened.push(braces);
                }
                pending_mod = false;
            }
            b'}' => {
                if opened.last() == Some(&braces) {
                    opened.pop();
                }
                braces = braces.saturating_sub(1);
            }
            b';' => pending_mod = false,
            _ => {}
        }
        depths[i] = opened.len();
        i += 1;
    }
    depths
}

/// Every path a `use` declaration names, expanded from its brace tree,
/// with the inline-module depth it sits at and its `as` name.
fn use_paths(code: &str) -> Vec<(usize, Vec<String>, Option<String>)> {
    let depths = inline_depths(code);
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(pos) = find_word(code, "use", at) {
        let Some(len) = code[pos..].find(';') else {
            break;
        };
        let tree = &code[pos + 3..pos + len];
        let mut paths = Vec::new();
        expand(tree, &mut Vec::new(), &mut paths);
        for (path, alias) in paths {
            out.push((depths[pos], path, alias));
        }
        at = pos + len;
    }
    out
}

/// Expands `a::{b, c::{d as e}}` into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim();
    let tree = tree.strip_prefix("::").unwrap_or(tree);
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end().trim_end_matches("::");
        let close = tree.rfind('}').unwrap_or(tree.len());
        let len = prefix.len();
        prefix.extend(segments(head));
        for part in split_top(&tree[open + 1..close]) {
            expand(part, prefix, out);
        }
        prefix.truncate(len);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.trim().to_string())),
        None => (tree, None),
    };
    let mut full = prefix.clone();
    full.extend(segments(path));
    if full.last().is_some_and(|s| s == "self") {
        full.pop();
    }
    if !full.is_empty() {
        out.push((full, alias.filter(|a| a != "_")));
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The comma-separated parts of a brace group's inside, at its top level.
fn split_top(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Paths in code outside `use` declarations: `a::b::c` sequences.
fn code_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let depths = inline_depths(code);
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut in_use = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == ';' {
            in_use = false;
        }
        if !(c.is_alphabetic() || c == '_')
            || (i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':'))
        {
            i += 1;
            continue;
        }
        let start = i;
        let mut path = Vec::new();
        loop {
            let end = (i..bytes.len())
                .find(|&j| !is_ident(bytes[j] as char))
                .unwrap_or(bytes.len());
            path.push(code[i..end].to_string());
            i = end;
            if code[i..].starts_with("::")
                && code[i + 2..].starts_with(|ch: char| ch.is_alphabetic() || ch == '_')
            {
                i += 2;
            } else {
                break;
            }
        }
        if path.len() == 1 && path[0] == "use" {
            in_use = true;
        } else if path.len() > 1 && !in_use {
            out.push((depths[start], path));
        }
    }
    out
}

fn find_word(code: &str, word: &str, from: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut at = from;
    while let Some(p) = code[at..].find(word) {
        let pos = at + p;
        let before = pos == 0 || !is_ident(bytes[pos - 1] as char);
        let after = bytes
            .get(pos + word.len())
            .is_none_or(|&b| !is_ident(b as char));
        if before && after {
            return Some(pos);
        }
        at = pos + word.len();
    }
    None
}

/// The strongly connected components with more than one member (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            if let Some(tos) = self.edges.get(v) {
                for w in tos {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let lw = self.low[w];
                        let lv = self.low.get_mut(v).unwrap();
                        *lv = (*lv).min(lw);
                    } else if self.on_stack.contains(w) {
                        let iw = self.index[w];
                        let lv = self.low.get_mut(v).unwrap();
                        *lv = (*lv).min(iw);
                    }
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// Each circle: its members, then the edges between them.
fn show(cycles: &[Vec<String>], edges: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut out = String::new();
    for members in cycles {
        out += &format!("  {}\n", members.join(", "));
        for from in members {
            for to in edges[from].iter().filter(|to| members.contains(to)) {
                out += &format!("    {from} -> {to}\n");
            }
        }
    }
    out
}

/// Every document a comment cites lives in this repository: a `.md` path
/// named in the source, the tests, the benchmark or the build script exists
/// from the repository's root (`docs/design.md`, `vendor/sled/PATCHED.md`),
/// or from its own file for a relative `include_str!` path.
#[test]
fn cited_documents_are_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        walk(&root.join(dir), &mut files);
    }
    files.push(root.join("build.rs"));
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices(".md") {
            let end = at + 3;
            if text[end..].starts_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let start = text[..at]
                .rfind(|c: char| !(c.is_alphanumeric() || "_./-".contains(c)))
                .map_or(0, |i| i + 1);
            let cited = &text[start..end];
            // `include_str!` paths are relative to their file.
            let here = file.parent().unwrap().join(cited);
            if cited == ".md"
                || root.join(cited).is_file()
                || (cited.starts_with("..") && here.is_file())
            {
                continue;
            }
            let rel = file.strip_prefix(root).unwrap().display();
            missing.push(format!("{rel}: {cited}"));
        }
    }
    assert!(
        missing.is_empty(),
        "documents cited but not in the repository: {missing:#?}"
    );
}
