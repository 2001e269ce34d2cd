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

mod pgo;

const USAGE: &str =
    "usage: cargo xtask <demo [--redis URL] [--nodes N] | test | ci | pgo | bench [--plain] [-- ARGS for run.sh]>\n  pgo builds the gateway with profile-guided optimisation (needs `rustup component add llvm-tools`)\n  bench starts four gateways (plain, resilience, jwt+limit memory, jwt+limit redis) and runs bench/run.sh against them and the anchors;\n  it measures the profile-guided build when llvm-profdata is installed, a plain release build otherwise or with --plain";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => return usage(),
    };
    match (task, rest) {
        ("demo", opts) => match DemoOptions::parse(opts) {
            Ok(options) => demo(options),
            Err(why) => {
                eprintln!("xtask: {why}");
                usage()
            }
        },
        ("test", []) => test(),
        ("ci", []) => ci(),
        ("pgo", []) => pgo::pgo(),
        ("bench", opts) => {
            let (plain, opts) = match opts.split_first() {
                Some((flag, rest)) if flag == "--plain" => (true, rest),
                _ => (false, opts),
            };
            match opts {
                [] => bench(plain, &[]),
                [sep, extra @ ..] if sep == "--" => bench(plain, extra),
                _ => usage(),
            }
        }
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

/// The harness's upstream (nginx, started by run.sh).
const BENCH_UPSTREAM_PORT: u16 = 18081;

/// One gateway configuration measured side by side with the others and the anchors.
pub(crate) struct BenchProfile {
    /// Target name in the harness's table.
    name: &'static str,
    /// Proxy port (admin is port + 1).
    port: u16,
    /// What it measures.
    about: &'static str,
    /// TOML added to the common part.
    extra: &'static str,
    /// `[circuit_breaker]` enabled.
    breakers: bool,
    /// Route keys.
    route: &'static str,
}

/// JWT settings the harness's tokens verify against (`jwt.py`: HS256, iss "bench", aud "api").
const BENCH_JWT: &str = r#"
[auth.jwt]
algorithms = ["HS256"]
secret = "SECRET"
issuer = "bench"
audience = ["api"]
user_lookup = false

[rate_limit]
algorithm = "sliding_window"
default = { requests_per_minute = 1000000000 }
"#;

pub(crate) const PROFILES: &[BenchProfile] = &[
    BenchProfile {
        name: "gateway",
        port: 18100,
        about: "plain proxying: no auth, no limit, no breaker",
        extra: "",
        breakers: false,
        route: "",
    },
    BenchProfile {
        name: "gw-resilience",
        port: 18110,
        about: "circuit breaker + outlier detection + active health checks",
        extra: "",
        breakers: true,
        route: "",
    },
    BenchProfile {
        name: "gw-jwt-limit",
        port: 18120,
        about: "JWT (HS256) + sliding-window limit per user, memory store",
        extra: BENCH_JWT,
        breakers: false,
        route: "auth_required = true\n",
    },
    BenchProfile {
        name: "gw-jwt-redis",
        port: 18130,
        about: "JWT (HS256) + sliding-window limit per user, Redis store",
        extra: BENCH_JWT,
        breakers: false,
        route: "auth_required = true\n",
    },
];

fn bench(plain: bool, extra: &[String]) -> ExitCode {
    match run_bench(plain, extra) {
        Ok(code) | Err(code) => code,
    }
}

/// The gateway configuration of profile `p` on proxy port `port` (admin `port + 1`) in front
/// of an upstream on `upstream_port`.
pub(crate) fn bench_config(
    p: &BenchProfile,
    secret: &str,
    port: u16,
    upstream_port: u16,
) -> String {
    let store = if p.name.ends_with("redis") {
        format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"bench:{}:\"\n",
            std::process::id()
        )
    } else {
        String::new()
    };
    let health = if p.breakers {
        "health_check = { path = \"/api/v1/health\", interval_secs = 1, timeout_ms = 500 }\n"
    } else {
        ""
    };
    format!(
        r#"# Written by `cargo xtask bench` ({about}); removed when it ends.
[server]
listen = "127.0.0.1:{port}"
workers = 1
shutdown_timeout_secs = 2

[admin]
listen = "127.0.0.1:{admin}"

[log]
level = "warn"
access_log = "off"

[circuit_breaker]
enabled = {breakers}
{store}{extra}
[services.bench]
instances = [{{ id = "bench-upstream", host = "127.0.0.1", port = {upstream_port} }}]
{health}
[[routes]]
id = "bench"
path = "/"
service = "bench"
{route}"#,
        about = p.about,
        admin = port + 1,
        breakers = p.breakers,
        extra = p.extra.replace("SECRET", secret),
        route = p.route,
    )
}

fn run_bench(plain: bool, extra: &[String]) -> Result<ExitCode, ExitCode> {
    let root = root();
    let harness = root.join("bench/run.sh");
    if !harness.is_file() {
        eprintln!(
            "xtask: benchmark harness not found at {}",
            harness.display()
        );
        return Err(ExitCode::FAILURE);
    }

    let binary = if !plain && pgo::llvm_profdata().is_some() {
        eprintln!(
            "xtask: measuring the profile-guided build (`--plain` for a plain release build)"
        );
        pgo::build()?
    } else {
        if !plain {
            eprintln!("xtask: llvm-profdata not found (`rustup component add llvm-tools`): measuring a plain release build");
        }
        run(gateway_release_build())?;
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target_dir.join("release/gateway")
    };
    // The harness mints its tokens with BENCH_JWT_SECRET and exports it to what it starts.
    let secret = std::env::var("BENCH_JWT_SECRET")
        .unwrap_or_else(|_| "bench-hs256-secret-change-me".to_string());

    let mut gateways = Vec::new();
    let mut files = Vec::new();
    let mut harness_args: Vec<String> = Vec::new();
    for p in PROFILES {
        let config_path =
            std::env::temp_dir().join(format!("gw-bench-{}-{}.toml", p.name, std::process::id()));
        if let Err(e) = std::fs::write(
            &config_path,
            bench_config(p, &secret, p.port, BENCH_UPSTREAM_PORT),
        ) {
            eprintln!("xtask: cannot write {}: {e}", config_path.display());
            return Err(ExitCode::FAILURE);
        }
        files.push(RemoveOnDrop(config_path.clone()));
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
            "xtask: starting {} ({}) on 127.0.0.1:{}",
            p.name, p.about, p.port
        );
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("xtask: cannot start {}: {e}", binary.display());
                return Err(ExitCode::FAILURE);
            }
        };
        // taskset execs the gateway, so the pid is the gateway's own.
        let gateway = KillOnDrop(child);
        let pid = gateway.0.id();
        gateways.push(gateway);
        let addr = SocketAddr::from(([127, 0, 0, 1], p.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !health_ok(addr) {
            if let Some(Ok(Some(status))) = gateways.last_mut().map(|g| g.0.try_wait()) {
                eprintln!(
                    "xtask: {} exited before it answered /health ({status})",
                    p.name
                );
                return Err(ExitCode::FAILURE);
            }
            if Instant::now() > deadline {
                eprintln!(
                    "xtask: {} did not answer http://{addr}/health within 30 s",
                    p.name
                );
                return Err(ExitCode::FAILURE);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        harness_args.push("--target".into());
        harness_args.push(format!("{}=http://{addr}", p.name));
        harness_args.push("--target-pid".into());
        harness_args.push(format!("{}={pid}", p.name));
    }
    for p in PROFILES {
        eprintln!("xtask: {:14} {}", p.name, p.about);
    }

    let mut harness_cmd = Command::new("bash");
    harness_cmd
        .current_dir(&root)
        .arg(&harness)
        .args(&harness_args)
        .args(extra);
    let result = match run(harness_cmd) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(code) => Err(code),
    };
    drop(gateways);
    drop(files);
    result
}

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

/// `cargo xtask demo [--redis URL] [--nodes N]`.
#[derive(Clone, Debug, Default)]
struct DemoOptions {
    /// Shared store: `store.backend = "redis"` with this URL.
    redis: Option<String>,
    /// Gateway nodes (1 unless given).
    nodes: u16,
}

/// Key prefix of the demo's Redis keys, so that they stay apart from anything else there.
const DEMO_KEY_PREFIX: &str = "demo:";
/// Most nodes `--nodes` accepts (ports 8080.. and 9901.. must stay apart).
const MAX_NODES: u16 = 5;

impl DemoOptions {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = DemoOptions {
            redis: None,
            nodes: 1,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name {
                "--redis" => options.redis = Some(value()?),
                "--nodes" => {
                    let v = value()?;
                    options.nodes = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_NODES).contains(n))
                        .ok_or_else(|| {
                            format!("--nodes must be a number from 1 to {MAX_NODES}, got {v:?}")
                        })?;
                }
                other => return Err(format!("unknown demo option {other:?}")),
            }
        }
        if options.nodes > 1 && options.redis.is_none() {
            return Err(
                "--nodes above 1 needs --redis URL: the nodes share state through Redis".into(),
            );
        }
        Ok(options)
    }
}

fn demo(options: DemoOptions) -> ExitCode {
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
    runtime.block_on(run_demo(options))
}

/// One demo service instance: who it is and where it listens.
#[derive(Clone, Debug)]
struct DemoInstance {
    service: String,
    instance: String,
    port: u16,
}

/// `host:port` of a `redis://` URL, for a reachability check (`None` when it has no host).
fn redis_addr(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    Some(if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    })
}

/// `addr` with its port moved up by `by` (node k of the demo).
fn shifted(addr: SocketAddr, by: u16) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port().saturating_add(by))
}

async fn run_demo(options: DemoOptions) -> ExitCode {
    let path = root().join("config/demo.toml");
    let mut config = match Config::load(Some(&path)) {
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

    if let Some(url) = &options.redis {
        config.store.backend = gateway_bin::store::Backend::Redis;
        config.store.redis_url = url.clone();
        config.store.key_prefix = DEMO_KEY_PREFIX.to_owned();
        match redis_addr(url) {
            Some(addr) => {
                let reachable = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                if !reachable {
                    eprintln!(
                        "xtask: warning: Redis at {addr} does not answer; the gateway starts \
                         anyway and connects when it can (start one with `redis-server`)"
                    );
                }
            }
            None => {
                eprintln!("xtask: --redis {url:?} is not a redis:// URL");
                return ExitCode::FAILURE;
            }
        }
    }

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

    let mut gateways: Vec<Gateway> = Vec::new();
    for k in 0..options.nodes {
        let mut node_config = config.clone();
        node_config.server.listen = shifted(config.server.listen, k);
        node_config.admin.listen = shifted(config.admin.listen, k);
        // Node 1 reloads from the file; the others run with their changed ports only.
        let node_path = (k == 0 && options.redis.is_none()).then(|| path.clone());
        match Gateway::start(node_config, node_path).await {
            Ok(g) => gateways.push(g),
            Err(e) => {
                eprintln!("xtask: cannot start gateway node {}: {e}", k + 1);
                if matches!(e, gateway_bin::StartError::Bind { .. }) {
                    eprintln!(
                        "xtask: that port is busy (another gateway or demo still running?); \
                         free it or change {}",
                        path.display()
                    );
                }
                for g in gateways {
                    g.shutdown().await;
                }
                for s in &servers {
                    s.abort();
                }
                return ExitCode::FAILURE;
            }
        }
    }

    let nodes: Vec<(SocketAddr, SocketAddr)> = gateways
        .iter()
        .map(|g| (g.proxy_addr(), g.admin_addr()))
        .collect();
    print_banner(&instances, &nodes, options.redis.as_deref());

    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("xtask: cannot wait for Ctrl-C: {e}");
    }
    eprintln!("\nxtask: stopping the gateway and the demo services");
    for g in gateways {
        g.shutdown().await;
    }
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
        "x-user-role",
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

fn print_banner(
    instances: &[DemoInstance],
    nodes: &[(SocketAddr, SocketAddr)],
    redis: Option<&str>,
) {
    let (p, a) = nodes[0];
    let mut out = String::new();
    out.push_str("\n=== gateway demo ===\n");
    for i in instances {
        out.push_str(&format!(
            "  demo service {:<18} {:<16} on 127.0.0.1:{}\n",
            i.instance, i.service, i.port
        ));
    }
    for (k, (proxy, admin)) in nodes.iter().enumerate() {
        out.push_str(&format!(
            "  gateway node {} proxy on http://{proxy}, admin API on http://{admin} (config/demo.toml)\n",
            k + 1
        ));
    }
    match redis {
        Some(url) => out.push_str(&format!(
            "  store: Redis {url}, keys prefixed \"{DEMO_KEY_PREFIX}\" (routes added here survive restarts of the demo)\n"
        )),
        None => out.push_str("  store: memory (admin changes last until the demo stops)\n"),
    }
    out.push_str("  access log: one JSON line per request below\n\n");
    out.push_str("Try (in another terminal):\n\n");
    let mut cmds: Vec<(&str, String)> = vec![
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
            "JWT: mint a token for alice (role user) through the admin API",
            format!(
                "TOKEN=$(curl -s -X POST -H 'Content-Type: application/json' -d '{{\"user_id\": \"alice\", \"username\": \"alice\", \"role\": \"user\"}}' http://{a}/admin/tokens | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\necho \"$TOKEN\""
            ),
        ),
        (
            "401: the account route needs a token",
            format!("curl -si http://{p}/api/v1/account/profile"),
        ),
        (
            "200 with the token: the user service sees x-user-id alice and x-user-role user",
            format!("curl -s -H \"Authorization: Bearer $TOKEN\" http://{p}/api/v1/account/profile"),
        ),
        (
            "revoke the token: the same call now answers 401 Token has been revoked",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d \"{{\\\"token\\\": \\\"$TOKEN\\\"}}\" http://{a}/admin/tokens/revoke\ncurl -s -H \"Authorization: Bearer $TOKEN\" http://{p}/api/v1/account/profile"
            ),
        ),
        (
            "429: the payment route allows 5 requests a minute per client (the POST above counted too)",
            format!(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p}/api/v1/payments; done; echo\ncurl -si http://{p}/api/v1/payments | grep -i -e '^HTTP' -e '^x-ratelimit' -e '^retry-after' -e '^ratelimit' -e 'error'"
            ),
        ),
        (
            "admin: the rate limits and their busiest keys",
            format!("curl -s http://{a}/admin/rate-limits"),
        ),
        (
            "admin: one circuit breaker per service (closed while the services answer)",
            format!("curl -s http://{a}/admin/circuit-breakers"),
        ),
        (
            "admin: services, and the health-checked instances of one",
            format!("curl -s http://{a}/admin/services\ncurl -s http://{a}/admin/services/user_service"),
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
    if let Some(&(p2, a2)) = nodes.get(1) {
        cmds.extend([
            (
                "many nodes as one: add a route on node 1; ?wait=all answers once every node runs it",
                format!(
                    "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"shared\", \"path\": \"/shared\", \"strip_prefix\": true, \"service\": \"order_service\"}}' 'http://{a}/admin/routes?wait=all'"
                ),
            ),
            (
                "... and it serves on node 2 (the order service sees /1); both nodes report the same config_version",
                format!(
                    "curl -s http://{p2}/shared/1\ncurl -s http://{a}/admin/health | grep -o '\"config_version\":[0-9]*'\ncurl -s http://{a2}/admin/health | grep -o '\"config_version\":[0-9]*'"
                ),
            ),
            (
                "an instance registered on node 2 shows on node 1",
                format!(
                    "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"order-service-3\", \"host\": \"127.0.0.1\", \"port\": 18012}}' 'http://{a2}/admin/services/order_service/instances?wait=all'\ncurl -s http://{a}/admin/services/order_service"
                ),
            ),
            (
                "remove both on node 1: node 2 answers 404 Route not found",
                format!(
                    "curl -s -X DELETE 'http://{a}/admin/services/order_service/instances/order-service-3?wait=all'\ncurl -s -X DELETE 'http://{a}/admin/routes/shared?wait=all'\ncurl -s http://{p2}/shared/1"
                ),
            ),
            (
                "rate limits count across nodes: 3 on node 1 + 3 on node 2, the 6th is 429 (wait a minute after the 429 demo above)",
                format!(
                    "for i in 1 2 3; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p}/api/v1/payments; done; for i in 1 2 3; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p2}/api/v1/payments; done; echo"
                ),
            ),
        ]);
    }
    for (what, cmd) in &cmds {
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
