//! `cargo xtask bench`: the bench profiles (four gateway configurations, shared with
//! `cargo xtask pgo`'s training), their configuration files, and the run of the harness
//! `bench/run.sh` against gateways started from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::{gateway_release_build, health_ok, pgo, root, run, KillOnDrop, RemoveOnDrop};

/// The harness's upstream (nginx, started by run.sh).
const BENCH_UPSTREAM_PORT: u16 = 18081;

/// One gateway configuration measured side by side with the others and the anchors.
pub(crate) struct BenchProfile {
    /// Target name in the harness's table.
    pub(crate) name: &'static str,
    /// Proxy port (admin is port + 1).
    pub(crate) port: u16,
    /// What it measures.
    pub(crate) about: &'static str,
    /// TOML added to the common part.
    pub(crate) extra: &'static str,
    /// `[circuit_breaker]` enabled.
    pub(crate) breakers: bool,
    /// Route keys.
    pub(crate) route: &'static str,
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

/// The configurations `cargo xtask bench` measures (and `cargo xtask pgo` trains on).
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

/// `cargo xtask bench [--plain] [-- ARGS]`: `extra` goes to `run.sh`.
pub(crate) fn bench(plain: bool, extra: &[String]) -> ExitCode {
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

/// Builds the gateway, starts one per profile, and runs the harness against them; `Ok` holds
/// the harness's own exit code.
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

/// Whether an executable file `name` is in a folder of `PATH`.
fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}
