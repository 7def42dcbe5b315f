//! The structure the code keeps: the cross-cutting layers (`http/`,
//! `store/`, `push/`, and the shared state and errors) import no feature,
//! so features plug into them and never the other way round; and no two
//! files import each other, directly or round a loop.

use std::path::{Path, PathBuf};

/// The feature modules (and the application that assembles them).
const FEATURES: &[&str] = &[
    "accounts",
    "app",
    "checkins",
    "circles",
    "devices",
    "jobs",
    "notifications",
    "ops",
    "organisations",
    "posts",
    "silence",
];

/// The layers that must know no feature.
const LAYERS: &[&str] = &[
    "src/http",
    "src/access_log",
    "src/store",
    "src/push",
    "src/state.rs",
    "src/error.rs",
    "src/secrets.rs",
    "src/clock.rs",
    "src/config.rs",
    "src/metrics.rs",
];

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        files.extend(rust_files(&entry.unwrap().path()));
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    files
}

#[test]
fn the_layers_import_no_feature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut read = 0;
    for layer in LAYERS {
        for file in rust_files(&root.join(layer)) {
            read += 1;
            let source = std::fs::read_to_string(&file).unwrap();
            for (n, line) in source.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for feature in FEATURES {
                    if code.contains(&format!("crate::{feature}::"))
                        || code.contains(&format!("crate::{feature};"))
                        || code.contains(&format!("kring::{feature}::"))
                    {
                        found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(read >= 20, "only {read} files read");
    assert!(found.is_empty(), "layers that import a feature: {found:#?}");
}

/// The file a module path names: the longest prefix of `segments` that is a
/// file under `src/` (`a/b.rs` or `a/b/mod.rs`).
fn module_file(src: &Path, segments: &[&str]) -> Option<PathBuf> {
    (1..=segments.len()).rev().find_map(|n| {
        let dir = segments[..n].iter().collect::<PathBuf>();
        [
            src.join(&dir).with_extension("rs"),
            src.join(&dir).join("mod.rs"),
        ]
        .into_iter()
        .find(|f| f.is_file())
    })
}

/// The module path of a file (`src/circles/members.rs` → `circles::members`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut segments: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    segments
}

/// The files `source` (the file at `module`) names through `crate::` and
/// `super::` paths, including the members of a `{...}` group.
fn imports(src: &Path, module: &[String], source: &str) -> Vec<PathBuf> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (prefix, rest) in paths(&code) {
        // `super` of `a/b.rs` and of `a/mod.rs` alike is `a`'s parent
        // module for the folder, `a` for the file: the module path less its
        // last segment.
        let base = match prefix {
            "crate" => &[][..],
            _ => &module[..module.len().saturating_sub(1)],
        };
        let segments: Vec<String> = base.iter().cloned().chain(rest).collect();
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let Some(file) = module_file(src, &refs) {
            found.push(file);
        }
    }
    found
}

/// Every `crate::a::b` / `super::a::b` path in `code`, a `{x, y::z}` group
/// after the last `::` giving one path per member (first level only).
fn paths(code: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for prefix in ["crate", "super"] {
        let needle = format!("{prefix}::");
        let mut at = 0;
        while let Some(i) = code[at..].find(&needle) {
            let start = at + i;
            at = start + needle.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut segments = Vec::new();
            let mut rest = &code[at..];
            loop {
                let ident: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() {
                    break;
                }
                rest = &rest[ident.len()..];
                segments.push(ident);
                match rest.strip_prefix("::") {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for member in inner.split(',') {
                    let first: Vec<String> = member
                        .trim()
                        .split("::")
                        .next()
                        .into_iter()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty() && s != "self")
                        .collect();
                    out.push((prefix, segments.iter().cloned().chain(first).collect()));
                }
            }
            out.push((prefix, segments));
        }
    }
    out
}

/// No two files of the crate import each other, directly or round a loop:
/// a circle of imports is a tangle that every later change has to pull on.
#[test]
fn no_file_imports_itself_round_a_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let files = rust_files(&src);
    assert!(files.len() >= 50, "only {} files read", files.len());
    let mut edges: std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>> =
        Default::default();
    for file in &files {
        let module = module_of(&src, file);
        let source = std::fs::read_to_string(file).unwrap();
        // Unit tests inside a file may reach anywhere.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        let targets = imports(&src, &module, source);
        edges
            .entry(file.clone())
            .or_default()
            .extend(targets.into_iter().filter(|t| t != file));
    }
    let arrows: usize = edges.values().map(|t| t.len()).sum();
    assert!(arrows >= 100, "only {arrows} imports found");
    // A file on a loop reaches itself.
    let mut loops = Vec::new();
    for start in edges.keys() {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<(&PathBuf, Vec<&PathBuf>)> = vec![(start, vec![start])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = trail
                        .iter()
                        .chain([&start])
                        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
                        .collect();
                    loops.push(names.join(" → "));
                } else if seen.insert(next) {
                    let mut longer = trail.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    assert!(loops.is_empty(), "files that import each other: {loops:#?}");
}
