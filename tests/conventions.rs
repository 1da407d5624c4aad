//! Conventions of the tree that the compiler does not check: comments cite what is in this
//! repository or public (RFC sections, docs/compatibility.md), and no module imports a module
//! that imports it back (each concern can be read, and changed, from the bottom up).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("node_modules") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn comments_cite_nothing_outside_the_repository() {
    // Built at run time so this file does not match itself.
    let word = "reference";
    let needles = [format!("{word} "), format!("{word} section")];
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut found = Vec::new();
    for file in &files {
        for (n, line) in fs::read_to_string(file).unwrap().lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            let numbered = lower.match_indices(&needles[0]).any(|(i, m)| {
                lower[i + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            });
            if numbered || lower.contains(&needles[1]) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite the RFC section or docs/compatibility.md instead:\n{}",
        found.join("\n")
    );
}

/// The module path of a source file under src/ (`src/cache/shm/mod.rs` is `cache::shm`).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// `crate::a::b` and `super::x` paths in the code (tests excluded: they may reach anywhere).
fn paths_used(source: &str) -> Vec<(bool, Vec<String>)> {
    let code = source
        .find("#[cfg(test)]\nmod tests")
        .map_or(source, |i| &source[..i]);
    let mut out = Vec::new();
    for head in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(head) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i + head.len()..];
            rest = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: Vec<String> = tail
                .split("::")
                .map(|seg| {
                    seg.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|seg| !seg.is_empty())
                .collect();
            out.push((head == "super::", path));
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| (module_of(f), fs::read_to_string(f).unwrap()))
        .collect();
    let mut deps: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, source) in &modules {
        for (is_super, path) in paths_used(source) {
            let mut full = if is_super {
                module[..module.len().saturating_sub(1)].to_vec()
            } else {
                Vec::new()
            };
            full.extend(path);
            // The longest prefix that names a module of the tree.
            let Some(target) = (1..=full.len())
                .rev()
                .map(|k| full[..k].to_vec())
                .find(|m| modules.contains_key(m))
            else {
                continue;
            };
            if !target.starts_with(module) && !module.starts_with(&target) {
                deps.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    let top = |m: &Vec<String>| m.first().cloned().unwrap_or_default();
    let mut top_deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &deps {
        for to in tos {
            if top(from) != top(to) {
                top_deps.entry(top(from)).or_default().insert(top(to));
            }
        }
    }
    assert!(
        top_deps.len() > 5,
        "the scan found too few imports: {top_deps:?}"
    );
    let mut cycles = Vec::new();
    for (from, tos) in &deps {
        for to in tos {
            if from < to && deps.get(to).is_some_and(|back| back.contains(from)) {
                cycles.push(format!("{} <-> {}", from.join("::"), to.join("::")));
            }
        }
    }
    for (from, tos) in &top_deps {
        for to in tos {
            if from < to && top_deps.get(to).is_some_and(|back| back.contains(from)) {
                cycles.push(format!("{from} <-> {to} (top-level modules)"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{}",
        cycles.join("\n")
    );
}
