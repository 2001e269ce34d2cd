//! `cargo xtask test` (the workspace's tests, then its doc tests) and `cargo xtask ci` (fmt,
//! clippy, then the same tests).

use std::process::ExitCode;

use crate::{cargo, run};

/// `cargo xtask test`.
pub(crate) fn test() -> ExitCode {
    match run_tests() {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Unit, integration and bench-target tests, then doc tests. Both run even when the first
/// fails, so one run shows every failure; the result fails when either does.
fn run_tests() -> Result<(), ExitCode> {
    let mut all = cargo();
    all.args(["test", "--workspace", "--all-targets"]);
    let first = run(all);
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    let second = run(doc);
    first.and(second)
}

/// `cargo xtask ci`: stops at the first step that fails.
pub(crate) fn ci() -> ExitCode {
    let steps = || -> Result<(), ExitCode> {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        run(fmt)?;
        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        run(clippy)?;
        run_tests()
    };
    match steps() {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
