//! House rules over the tree (STYLE.md): every Rust file opens with a `//!` line, and no
//! gw-* feature crate depends on another gw-* crate except gw-core (and gw-proxy on
//! gw-discovery), so each crate stays usable on its own.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_has_a_module_doc_line() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["crates", "gateway-bin", "integration-tests", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.lines().take(5).any(|l| l.starts_with("//!"))
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line: {missing:?}"
    );
}

#[test]
fn feature_crates_depend_only_on_gw_core() {
    let root = root();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let krate = entry.file_name().to_string_lossy().to_string();
        checked += 1;
        // Only [dependencies] counts; dev-dependencies may use anything.
        let deps = text
            .split("\n[")
            .find(|section| section.starts_with("dependencies]"))
            .unwrap_or("");
        for line in deps.lines() {
            let name = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
            if !name.starts_with("gw-") || name == "gw-core" {
                continue;
            }
            let allowed = krate == "gw-proxy" && name == "gw-discovery";
            assert!(
                allowed,
                "{krate} depends on {name}: feature crates may only use gw-core"
            );
        }
    }
    assert!(
        checked >= 9,
        "expected the nine gw-* crates, checked {checked}"
    );
}
