//! Project tasks, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! | task | what it does |
//! |---|---|
//! | `cargo xtask demo` | starts five small demo services (user ×2, order ×2, payment ×1) on the ports that `config/demo.toml` names, then the gateway in-process with that file, prints curl commands to try, and stops everything on Ctrl-C |
//! | `cargo xtask test` | `cargo test --workspace --all-targets`, then `cargo test --workspace --doc` |
//! | `cargo xtask ci` | what CI runs: `cargo fmt --all -- --check`, `cargo clippy --workspace --all-targets -- -D warnings`, then `cargo xtask test` |
//! | `cargo xtask bench [-- ARGS]` | builds `gateway` in release, runs it pinned to CPU 1 with one worker in front of the harness's upstream, and runs `../shared/bench/run.sh` against it (ARGS go to `run.sh`) |
//!
//! The task exits with the exit code of the first command that failed (the harness's own code
//! for `bench`), 2 on unknown input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::Json;
use gateway_bin::{Config, Gateway};
use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask <demo | test | ci | bench [-- ARGS for run.sh]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => return usage(),
    };
    match (task, rest) {
        ("demo", []) => demo(),
        ("test", []) => test(),
        ("ci", []) => ci(),
        ("bench", []) => bench(&[]),
        ("bench", [sep, extra @ ..]) if sep == "--" => bench(extra),
        _ => usage(),
    }
}

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
// test, ci

fn test() -> ExitCode {
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

fn ci() -> ExitCode {
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

// ---------------------------------------------------------------------------------------------
// bench

const BENCH_PROXY: &str = "127.0.0.1:18100";
const BENCH_ADMIN: &str = "127.0.0.1:18101";
const BENCH_UPSTREAM_PORT: u16 = 18081;

fn bench(extra: &[String]) -> ExitCode {
    match run_bench(extra) {
        Ok(code) | Err(code) => code,
    }
}

fn run_bench(extra: &[String]) -> Result<ExitCode, ExitCode> {
    let root = root();
    let harness = root.join("../shared/bench/run.sh");
    if !harness.is_file() {
        eprintln!(
            "xtask: benchmark harness not found at {} (expected ../shared beside the workspace)",
            harness.display()
        );
        return Err(ExitCode::FAILURE);
    }

    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "gateway-bin",
        "--bin",
        "gateway",
    ]);
    run(build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target_dir.join("release/gateway");

    let config_path = std::env::temp_dir().join(format!("gw-bench-{}.toml", std::process::id()));
    let config = format!(
        r#"# Written by `cargo xtask bench`; removed when it ends.
[server]
listen = "{BENCH_PROXY}"
workers = 1
shutdown_timeout_secs = 2

[admin]
listen = "{BENCH_ADMIN}"

[log]
level = "warn"
access_log = "off"

[services.bench]
instances = [{{ id = "bench-upstream", host = "127.0.0.1", port = {BENCH_UPSTREAM_PORT} }}]

[[routes]]
id = "bench"
path = "/"
service = "bench"
"#
    );
    if let Err(e) = std::fs::write(&config_path, config) {
        eprintln!("xtask: cannot write {}: {e}", config_path.display());
        return Err(ExitCode::FAILURE);
    }
    let _config_file = RemoveOnDrop(config_path.clone());

    let mut cmd = if has_program("taskset") {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(&binary);
        c
    } else {
        eprintln!("xtask: taskset not found; the gateway runs unpinned");
        Command::new(&binary)
    };
    cmd.arg("--config")
        .arg(&config_path)
        .env_remove("GW_CONFIG");
    eprintln!(
        "xtask: starting {} --config {}",
        binary.display(),
        config_path.display()
    );
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask: cannot start {}: {e}", binary.display());
            return Err(ExitCode::FAILURE);
        }
    };
    // taskset execs the gateway, so the pid is the gateway's own.
    let mut gateway = KillOnDrop(child);
    let pid = gateway.0.id();

    let addr: SocketAddr = BENCH_PROXY.parse().expect("valid address");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if health_ok(addr) {
            break;
        }
        if let Ok(Some(status)) = gateway.0.try_wait() {
            eprintln!("xtask: the gateway exited before it answered /health ({status})");
            return Err(ExitCode::FAILURE);
        }
        if Instant::now() > deadline {
            eprintln!("xtask: the gateway did not answer http://{addr}/health within 30 s");
            return Err(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("xtask: gateway (pid {pid}) answers on http://{addr}");

    let mut harness_cmd = Command::new("bash");
    harness_cmd
        .current_dir(&root)
        .arg(&harness)
        .arg("--target")
        .arg(format!("gateway=http://{BENCH_PROXY}"))
        .arg("--target-pid")
        .arg(format!("gateway={pid}"))
        .args(extra);
    let result = match run(harness_cmd) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(code) => Err(code),
    };
    drop(gateway);
    result
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

fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
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

// ---------------------------------------------------------------------------------------------
// demo

fn demo() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_demo())
}

/// One demo service instance: who it is and where it listens.
#[derive(Clone, Debug)]
struct DemoInstance {
    service: String,
    instance: String,
    port: u16,
}

async fn run_demo() -> ExitCode {
    let path = root().join("config/demo.toml");
    let config = match Config::load(Some(&path)) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("xtask: {} is invalid:", path.display());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    gateway_bin::logging::init(&config.log.level);

    // The demo services are the instances that demo.toml names on this machine.
    let instances: Vec<DemoInstance> = config
        .services
        .iter()
        .flat_map(|(service, sc)| {
            sc.instances
                .iter()
                .filter(|i| matches!(i.host.as_str(), "127.0.0.1" | "localhost"))
                .map(move |i| DemoInstance {
                    service: service.clone(),
                    instance: i.id.clone(),
                    port: i.port,
                })
        })
        .collect();

    let mut servers = Vec::new();
    for inst in &instances {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", inst.port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "xtask: cannot listen on 127.0.0.1:{port} for demo service {id}: {e}; \
                     `ss -ltnp | grep :{port}` shows who holds the port",
                    port = inst.port,
                    id = inst.instance,
                );
                return ExitCode::FAILURE;
            }
        };
        let app = axum::Router::new().fallback({
            let inst = inst.clone();
            move |req: Request| echo(inst.clone(), req)
        });
        servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("xtask: demo service stopped: {e}");
            }
        }));
    }

    let gateway = match Gateway::start(config, Some(path.clone())).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("xtask: cannot start the gateway: {e}");
            if matches!(e, gateway_bin::StartError::Bind { .. }) {
                eprintln!(
                    "xtask: that port is busy (another gateway or demo still running?); \
                     free it or change {}",
                    path.display()
                );
            }
            for s in &servers {
                s.abort();
            }
            return ExitCode::FAILURE;
        }
    };

    print_banner(&instances, gateway.proxy_addr(), gateway.admin_addr());

    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("xtask: cannot wait for Ctrl-C: {e}");
    }
    eprintln!("\nxtask: stopping the gateway and the demo services");
    gateway.shutdown().await;
    for s in servers {
        s.abort();
        let _ = s.await;
    }
    eprintln!("xtask: stopped");
    ExitCode::SUCCESS
}

/// The demo services' one handler: JSON naming the instance and echoing what it was sent.
async fn echo(inst: DemoInstance, req: Request) -> Json<Value> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut headers = BTreeMap::new();
    for name in [
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-gateway-version",
        "x-user-id",
    ] {
        let value = parts.headers.get(name).and_then(|v| v.to_str().ok());
        headers.insert(name.to_owned(), json!(value));
    }
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("x-demo-") {
            headers.insert(name.as_str().to_owned(), json!(value.to_str().ok()));
        }
    }
    Json(json!({
        "service": inst.service,
        "instance": inst.instance,
        "port": inst.port,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

fn print_banner(instances: &[DemoInstance], proxy: SocketAddr, admin: SocketAddr) {
    let mut out = String::new();
    out.push_str("\n=== gateway demo ===\n");
    for i in instances {
        out.push_str(&format!(
            "  demo service {:<18} {:<16} on 127.0.0.1:{}\n",
            i.instance, i.service, i.port
        ));
    }
    out.push_str(&format!(
        "  gateway proxy on http://{proxy}, admin API on http://{admin} (config/demo.toml)\n"
    ));
    out.push_str("  access log: one JSON line per request below\n\n");
    out.push_str("Try (in another terminal):\n\n");
    let p = proxy;
    let a = admin;
    let cmds: &[(&str, String)] = &[
        (
            "a user, twice: round robin answers from user-service-1, then user-service-2",
            format!("curl -s http://{p}/api/v1/users/42\ncurl -s http://{p}/api/v1/users/42"),
        ),
        (
            "headers: your X-Request-ID is kept, a spoofed X-User-ID never reaches the service; \
             the route adds X-Demo-Route to the answer",
            format!(
                "curl -si -H 'X-Request-ID: demo-1' -H 'X-User-ID: spoofed' http://{p}/api/v1/users/42"
            ),
        ),
        (
            "an order: path route with strip_prefix, the service sees /7?expand=items (least_conn)",
            format!("curl -s 'http://{p}/api/v1/orders/7?expand=items'"),
        ),
        (
            "a payment (POST is allowed on this route)",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"amount\": 42}}' http://{p}/api/v1/payments"
            ),
        ),
        (
            "405: DELETE is not in the payment route's methods (see the Allow header)",
            format!("curl -si -X DELETE http://{p}/api/v1/payments/1"),
        ),
        (
            "404: no route matches",
            format!("curl -si http://{p}/api/v2/nothing"),
        ),
        (
            "the gateway's own health check",
            format!("curl -s http://{p}/health"),
        ),
        (
            "admin: the route table",
            format!("curl -s http://{a}/admin/routes"),
        ),
        (
            "admin: add a route at runtime, then use it (the user service sees /7)",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"accounts\", \"path\": \"/accounts\", \"strip_prefix\": true, \"service\": \"user_service\"}}' http://{a}/admin/routes\ncurl -s http://{p}/accounts/7"
            ),
        ),
        (
            "metrics: JSON, and Prometheus text",
            format!("curl -s http://{a}/admin/metrics\ncurl -s http://{a}/metrics | grep '^gateway_requests_total'"),
        ),
    ];
    for (what, cmd) in cmds {
        out.push_str(&format!("  # {what}\n"));
        for line in cmd.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push('\n');
    }
    out.push_str("Press Ctrl-C to stop.\n");
    print!("{out}");
    let _ = std::io::stdout().flush();
}
