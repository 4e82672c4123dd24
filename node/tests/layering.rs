//! The node's modules form layers: a top-level module may use only modules
//! below it, so there is no import loop between two of them (the layers are
//! listed in `src/lib.rs`). This test reads the sources and fails on a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules its non-test code names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name");
        let module = first.trim_end_matches(".rs").to_owned();
        if ["lib", "main", "tests"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let names = graph.entry(module.clone()).or_default();
        for name in crate_paths(&without_tests(&text)) {
            if name != module {
                names.insert(name);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code before a file's `#[cfg(test)] mod tests`, without comments.
fn without_tests(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::a::…` path and of every name in a
/// `use crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').filter_map(|item| {
                let first = item.trim().split("::").next()?;
                (!first.is_empty()).then(|| first.to_owned())
            }));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// A loop in `graph`, as the modules along it, if there is one.
fn find_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut found = path[start..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(found) = visit(graph, next, path, done)
            {
                return Some(found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependencies(&src);
    assert!(graph.contains_key("coordinator") && graph.contains_key("peers"));
    assert!(
        graph["coordinator"].contains("peers"),
        "the scan finds the coordinator's use of the peer client"
    );
    if let Some(found) = find_loop(&graph) {
        panic!("import loop between node modules: {}", found.join(" -> "));
    }
}

#[test]
fn the_scan_finds_a_loop_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", crate_paths("use crate::{b::X, c};")),
        ("b", crate_paths("fn f() { crate::c::g() }")),
        ("c", crate_paths("use crate::a::Y;")),
    ]
    .into_iter()
    .map(|(name, deps)| (name.to_owned(), deps))
    .collect();
    assert_eq!(
        find_loop(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
