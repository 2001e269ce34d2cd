//! House rules over the tree, as tests: every Rust file opens with a `//!` line; no gw-*
//! feature crate depends on another gw-* crate except gw-core (and gw-proxy on gw-discovery),
//! so each crate stays usable on its own; every crate has a runnable example; no Rust file
//! grows past [`MAX_LINES`] unless [`LONG_FILES`] says why; the repository cites only its own
//! documents; and the workspace asks for documentation on public items.

use std::path::{Path, PathBuf};

/// The folders that hold the workspace's Rust code.
const RUST_DIRS: [&str; 5] = [
    "crates",
    "gateway-bin",
    "integration-tests",
    "test-support",
    "xtask",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A path relative to the workspace root, with `/` separators, for messages and allow-lists.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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
    for dir in RUST_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.lines().take(5).any(|l| l.starts_with("//!"))
        })
        .map(|f| relative(&root, f))
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

/// Crates under `crates/` that have no example yet, each with the reason. Shrink it: a crate
/// listed here that gains an example makes [`every_crate_has_an_example`] fail until its
/// entry is removed.
const WITHOUT_EXAMPLES: &[(&str, &str)] = &[];

#[test]
fn every_crate_has_an_example() {
    let root = root();
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        checked += 1;
        let krate = entry.file_name().to_string_lossy().to_string();
        let has_example = std::fs::read_dir(entry.path().join("examples"))
            .map(|dir| dir.flatten().any(|e| e.path().is_file()))
            .unwrap_or(false);
        let allowed = WITHOUT_EXAMPLES.iter().any(|(name, _)| *name == krate);
        match (has_example, allowed) {
            (false, false) => missing.push(krate),
            (true, true) => stale.push(krate),
            _ => {}
        }
    }
    assert!(checked >= 9, "expected the gw-* crates, checked {checked}");
    assert!(
        missing.is_empty(),
        "crates without a file in examples/: {missing:?}. Every crate shows how to use it on \
         its own with a runnable example (`cargo run -p <crate> --example <name>`); see \
         docs/using-a-crate.md"
    );
    assert!(
        stale.is_empty(),
        "crates with an example that are still in WITHOUT_EXAMPLES: {stale:?}; remove their \
         entries from integration-tests/tests/tidy.rs"
    );
}

/// The most lines a Rust file may have before it is split (or listed in [`LONG_FILES`]).
const MAX_LINES: usize = 500;

/// Rust files allowed over [`MAX_LINES`], each with the reason. Shrink it: an entry whose file
/// is gone or back under the limit makes [`no_rust_file_is_over_the_line_limit`] fail until it
/// is removed.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "crates/gw-admin/src/model.rs",
        "every request and answer type of the admin API in one place, next to their unit tests",
    ),
    (
        "crates/gw-admin/tests/admin.rs",
        "one feature's tests: every admin endpoint through the Router",
    ),
    (
        "crates/gw-auth/src/authenticator.rs",
        "one type: the authenticator's checks in order (token, key, store, policy), ~110 lines of unit tests",
    ),
    (
        "crates/gw-auth/src/jwt.rs",
        "one concern: JWT and JWKS verification, ~140 lines of unit tests",
    ),
    (
        "crates/gw-auth/tests/layer.rs",
        "one feature's tests: the auth layer, one test per answer",
    ),
    (
        "crates/gw-auth/tests/prop_jwt.rs",
        "one feature's property tests: JWT headers and claims",
    ),
    (
        "crates/gw-core/src/h1.rs",
        "one codec: the HTTP/1.1 pieces both ends share, ~175 lines of unit tests",
    ),
    (
        "crates/gw-core/src/strict.rs",
        "one serde Deserializer wrapper: every method forwards, ~210 lines of unit tests",
    ),
    (
        "crates/gw-discovery/src/registry.rs",
        "one type: the registry's instance table and its change feed",
    ),
    (
        "crates/gw-edge/src/lib.rs",
        "one function: canonicalize and its header pass, ~190 lines of unit tests",
    ),
    (
        "crates/gw-monitor/src/registry.rs",
        "one type: the pre-built metric handles per route and status",
    ),
    (
        "crates/gw-proxy/src/balancer.rs",
        "one concern: the load-balancing algorithms, ~200 lines of unit tests",
    ),
    (
        "crates/gw-proxy/src/client.rs",
        "one type: the per-protocol upstream client, ~80 lines of unit tests",
    ),
    (
        "crates/gw-ratelimit/tests/layer.rs",
        "one feature's tests: the rate-limit layer",
    ),
    (
        "gateway-bin/src/control.rs",
        "one trait implementation: the ControlPlane, ~80 lines of unit tests",
    ),
    (
        "integration-tests/tests/auth.rs",
        "one feature's tests: identity end to end",
    ),
    (
        "integration-tests/tests/conformance.rs",
        "one corpus: the request-smuggling and confusion cases",
    ),
    (
        "integration-tests/tests/rate_limit.rs",
        "one feature's tests: rate limits end to end",
    ),
    (
        "integration-tests/tests/resilience.rs",
        "one feature's tests: breakers, outliers and health end to end",
    ),
    (
        "test-support/src/raw.rs",
        "one tool: the raw HTTP/1.1 client and the recording upstream, ~115 lines of unit tests",
    ),
];

#[test]
fn no_rust_file_is_over_the_line_limit() {
    let root = root();
    let mut files = Vec::new();
    for dir in RUST_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut too_long = Vec::new();
    let mut lengths = std::collections::HashMap::new();
    for file in &files {
        let rel = relative(&root, file);
        let lines = std::fs::read_to_string(file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines > MAX_LINES && !LONG_FILES.iter().any(|(path, _)| *path == rel) {
            too_long.push(format!("{rel} ({lines} lines)"));
        }
        lengths.insert(rel, lines);
    }
    assert!(
        too_long.is_empty(),
        "Rust files over {MAX_LINES} lines: {too_long:?}. Split them by what they hold (one \
         type, one concern, one feature's tests per file), or, when a file is one cohesive \
         whole, add it to LONG_FILES in integration-tests/tests/tidy.rs with the reason"
    );
    let stale: Vec<&str> = LONG_FILES
        .iter()
        .filter(|(path, _)| lengths.get(*path).is_none_or(|&n| n <= MAX_LINES))
        .map(|(path, _)| *path)
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FILES entries whose file is gone or no longer over {MAX_LINES} lines: {stale:?}; \
         remove them from integration-tests/tests/tidy.rs"
    );
}

/// Text files whose content the citation rule covers: by extension anywhere, and every file
/// in the script folders.
fn is_checked_text(rel: &str) -> bool {
    const EXTENSIONS: [&str; 6] = [".rs", ".md", ".toml", ".sh", ".yml", ".yaml"];
    EXTENSIONS.iter().any(|e| rel.ends_with(e))
        || rel.starts_with("bench/")
        || rel.starts_with("xtask/")
}

fn text_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            let skip = name == "target"
                || name == ".git"
                || relative(root, &path) == "supply-chain/advisory-db";
            if !skip {
                text_files(root, &path, out);
            }
        } else if is_checked_text(&relative(root, &path)) {
            out.push(path);
        }
    }
}

/// Whether `line` names the outside contract: a path to the folder beside the repository,
/// its file name, a section of it, or its name as a word on its own (followed by `'s` or a
/// space, say; a longer identifier that starts with the same letters is another word).
fn cites_outside(line: &str) -> bool {
    // Spelled in pieces so that this file does not cite what it forbids.
    let word = concat!("SP", "EC");
    let needles = [
        concat!("..", "/shared"),
        concat!("SP", "EC.md"),
        concat!("SP", "EC §"),
    ];
    if needles.iter().any(|n| line.contains(n)) {
        return true;
    }
    let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].bytes().next_back();
        let after = line[at + word.len()..].bytes().next();
        !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte)
    })
}

#[test]
fn the_repository_cites_only_its_own_documents() {
    let root = root();
    let mut files = Vec::new();
    text_files(&root, &root, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut hits = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if cites_outside(line) {
                hits.push(format!(
                    "{}:{}: {}",
                    relative(&root, file),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "{} lines cite a document outside the repository (a fresh clone has none): cite \
         docs/*.md instead (docs/http-answers.md, docs/configuration.md, docs/admin-api.md, \
         docs/operations.md, docs/command-line.md):\n{}",
        hits.len(),
        hits.join("\n")
    );
}

#[test]
fn the_citation_rule_tells_words_apart() {
    let word = concat!("SP", "EC");
    assert!(cites_outside(&format!("the {word}'s message")));
    assert!(cites_outside(&format!("//! {word} JSON out")));
    assert!(cites_outside(&format!("see {word} §4")));
    assert!(cites_outside(concat!("read ..", "/shared/notes")));
    assert!(!cites_outside(&format!("const {word}IAL: [bool; 256]")));
    assert!(!cites_outside("a special case"));
}

#[test]
fn the_workspace_warns_on_missing_docs() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let section = text
        .split("\n[")
        .find(|s| s.starts_with("workspace.lints.rust]"))
        .unwrap_or("");
    let warns = section.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        key.trim() == "missing_docs" && value.trim() == "\"warn\""
    });
    assert!(
        warns,
        "the workspace Cargo.toml's [workspace.lints.rust] must have missing_docs = \"warn\": \
         every public item is documented"
    );
}
