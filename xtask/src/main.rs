//! Project tasks, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! | task | what it does |
//! |---|---|
//! | `cargo xtask demo` | starts five small demo services (user ×2, order ×2, payment ×1) on the ports that `config/demo.toml` names, then the gateway in-process with that file, prints curl commands to try (routing, JWT auth, rate limits, breakers, the admin API), and stops everything on Ctrl-C |
//! | `cargo xtask demo --redis URL [--nodes N]` | the same with `store.backend = "redis"` (key prefix `demo:`) and N gateway nodes (default 1, at most 5) sharing that Redis: node k listens on proxy 8080+k-1 and admin 9901+k-1; prints commands that show a change made on node 1 serving on node 2 |
//! | `cargo xtask test` | `cargo test --workspace --all-targets`, then `cargo test --workspace --doc` |
//! | `cargo xtask ci` | what CI runs: `cargo fmt --all -- --check`, `cargo clippy --workspace --all-targets -- -D warnings`, then `cargo xtask test` |
//! | `cargo xtask pgo` | builds `gateway` with profile-guided optimisation (instrumented build, a training load in front of an upstream of its own, `llvm-profdata merge`, optimised build) into `target/pgo/use/<host>/release/gateway`; needs `rustup component add llvm-tools` |
//! | `cargo xtask bench [--plain] [-- ARGS]` | builds `gateway` (as `cargo xtask pgo` does when `llvm-profdata` is installed, else or with `--plain` a plain release build), runs it pinned to CPU 1 with one worker in front of the harness's upstream, and runs the harness `bench/run.sh` against it (ARGS go to `run.sh`) |
//!
//! The task exits with the exit code of the first command that failed (the harness's own code
//! for `bench`), 2 on unknown input.
//!
//! Each task lives in a file of its own: `demo.rs`, `test.rs` (`test` and `ci`), `bench.rs` and
//! `pgo.rs`; this file parses the arguments and holds what several tasks share (running
//! commands, starting and stopping a built gateway).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

mod bench;
mod demo;
mod pgo;
mod test;

/// What `cargo xtask` without a task, or with input it does not know, prints.
const USAGE: &str =
    "usage: cargo xtask <demo [--redis URL] [--nodes N] | test | ci | pgo | bench [--plain] [-- ARGS for run.sh]>\n  pgo builds the gateway with profile-guided optimisation (needs `rustup component add llvm-tools`)\n  bench starts four gateways (plain, resilience, jwt+limit memory, jwt+limit redis) and runs bench/run.sh against them and the anchors;\n  it measures the profile-guided build when llvm-profdata is installed, a plain release build otherwise or with --plain";

/// Runs the task the arguments name.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => return usage(),
    };
    match (task, rest) {
        ("demo", opts) => match demo::DemoOptions::parse(opts) {
            Ok(options) => demo::demo(options),
            Err(why) => {
                eprintln!("xtask: {why}");
                usage()
            }
        },
        ("test", []) => test::test(),
        ("ci", []) => test::ci(),
        ("pgo", []) => pgo::pgo(),
        ("bench", opts) => {
            let (plain, opts) = match opts.split_first() {
                Some((flag, rest)) if flag == "--plain" => (true, rest),
                _ => (false, opts),
            };
            match opts {
                [] => bench::bench(plain, &[]),
                [sep, extra @ ..] if sep == "--" => bench::bench(plain, extra),
                _ => usage(),
            }
        }
        _ => usage(),
    }
}

/// Prints [`USAGE`]; exit code 2.
fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `cargo` that runs us (so that `+toolchain` and `CARGO_HOME` carry over).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd` with inherited stdio; `Err(code)` when it fails or cannot start.
fn run(mut cmd: Command) -> Result<(), ExitCode> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: running {shown}");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            eprintln!("xtask: failed ({status}): {shown}");
            Err(exit_code(status.code()))
        }
        Err(e) => {
            eprintln!("xtask: cannot run {shown}: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// A child's exit code as ours (1 when it was killed by a signal or is out of range).
fn exit_code(code: Option<i32>) -> ExitCode {
    match code.and_then(|c| u8::try_from(c).ok()) {
        Some(0) | None => ExitCode::FAILURE,
        Some(c) => ExitCode::from(c),
    }
}

// ---------------------------------------------------------------------------------------------
// shared by bench and pgo

/// `cargo build --release -p gateway-bin --bin gateway`.
pub(crate) fn gateway_release_build() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "gateway-bin",
        "--bin",
        "gateway",
    ]);
    cmd
}

/// Whether `GET /health` on `addr` answers 200.
fn health_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer.starts_with(b"HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}

/// Stops the child (SIGTERM through `kill`, then SIGKILL after 5 s) when dropped, also on error.
#[derive(Debug)]
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                eprintln!("xtask: gateway (pid {pid}) stopped");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        eprintln!("xtask: gateway (pid {pid}) killed");
    }
}

/// Removes a temporary file when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
