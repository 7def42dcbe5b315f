//! The structure the code keeps: the cross-cutting layers (`http/`,
//! `store/`, `push/`, and the shared state and errors) import no feature,
//! so features plug into them and never the other way round.

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
