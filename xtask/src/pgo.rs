//! `cargo xtask pgo`: the `gateway` binary built with profile-guided optimisation.
//!
//! 1. An instrumented build (`-Cprofile-generate`) into `target/pgo/gen`.
//! 2. Training: that binary runs, one worker each, the bench profiles that need no outside
//!    service (plain proxying; breakers + health checks; HS256 JWT + sliding-window limit) in
//!    front of an upstream served by this process, under a keep-alive load from this process
//!    (GETs, POSTs with a body, unknown routes). Each gateway is stopped with SIGTERM, which
//!    writes its profile.
//! 3. `llvm-profdata merge` (from `rustup component add llvm-tools`).
//! 4. The optimised build (`-Cprofile-use`) into `target/pgo/use`.
//!
//! When the instrumented build was already up to date and the profile on hand is newer than
//! it, steps 2 and 3 are skipped and step 4 finds nothing to do: a second run without changes
//! to the gateway's code takes seconds.
//!
//! Both builds name the host target explicitly, so the flags reach the gateway's code and not
//! the build scripts and proc macros (which would otherwise write profiles of their own).
//!
//! Why: the proxy's hot path is a long chain of small async state machines; with the profile
//! LLVM lays out the taken paths together and inlines by real call counts. Measured on the
//! plain-proxy load: ~20 % fewer instructions per request and ~23 % less user CPU time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::bench::{bench_config, PROFILES};
use crate::{gateway_release_build, health_ok, root, run, KillOnDrop, RemoveOnDrop};

/// How long each training load runs.
const TRAIN_FOR: Duration = Duration::from_secs(4);
/// Keep-alive connections of each training load (the harness's wrk uses 50).
const TRAIN_CONNECTIONS: usize = 50;
/// The secret the training gateway's JWT settings and tokens share.
const TRAIN_SECRET: &str = "pgo-training-secret";

/// `cargo xtask pgo`: builds and prints the path of the optimised binary.
pub(crate) fn pgo() -> ExitCode {
    match build() {
        Ok(binary) => {
            eprintln!("xtask: profile-guided build: {}", binary.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `llvm-profdata` of the toolchain that builds us, when the `llvm-tools` component is there.
pub(crate) fn llvm_profdata() -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(sysroot.stdout).ok()?;
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host_triple()?)
        .join("bin/llvm-profdata");
    path.is_file().then_some(path)
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
}

/// Runs the four steps; the optimised binary's path.
pub(crate) fn build() -> Result<PathBuf, ExitCode> {
    let Some(profdata) = llvm_profdata() else {
        eprintln!(
            "xtask: llvm-profdata not found in the toolchain; install it with `rustup component add llvm-tools`"
        );
        return Err(ExitCode::FAILURE);
    };
    let Some(host) = host_triple() else {
        eprintln!("xtask: cannot read the host target from `rustc -vV`");
        return Err(ExitCode::FAILURE);
    };
    let pgo_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("pgo");
    let profiles = pgo_dir.join("profiles");

    // 1. Instrumented build.
    let generate = format!("-Cprofile-generate={}", profiles.display());
    run(release_build(&pgo_dir.join("gen"), &host, &generate))?;
    let instrumented = pgo_dir.join("gen").join(&host).join("release/gateway");

    // 2.–3. Training and merge, unless the profile on hand was made with this very
    // instrumented binary (cargo left it as it was): then the optimised build is up to date too.
    if let Some(merged) = current_profile(&pgo_dir, &instrumented) {
        eprintln!(
            "xtask: the gateway is unchanged since {} was made; using it",
            merged.display()
        );
        return optimised_build(&pgo_dir, &host, &merged);
    }
    let _ = std::fs::remove_dir_all(&profiles);
    if let Err(e) = std::fs::create_dir_all(&profiles) {
        eprintln!("xtask: cannot create {}: {e}", profiles.display());
        return Err(ExitCode::FAILURE);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("xtask: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })?;
    runtime.block_on(train(&instrumented))?;
    drop(runtime);

    let merged = pgo_dir.join(format!("gateway-{}.profdata", unix_secs()));
    let mut merge = Command::new(&profdata);
    merge.arg("merge").arg("-o").arg(&merged).arg(&profiles);
    if let Err(code) = run(merge) {
        // Half a file must not pass for a profile next time.
        let _ = std::fs::remove_file(&merged);
        return Err(code);
    }
    // Older profiles are of no further use.
    for old in profdata_files(&pgo_dir) {
        if old != merged {
            let _ = std::fs::remove_file(old);
        }
    }
    optimised_build(&pgo_dir, &host, &merged)
}

/// The `*.profdata` files in `dir`.
fn profdata_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "profdata"))
                .collect()
        })
        .unwrap_or_default()
}

/// The merged profile in `pgo_dir` when it is newer than `instrumented`.
fn current_profile(pgo_dir: &Path, instrumented: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(instrumented).ok()?.modified().ok()?;
    profdata_files(pgo_dir).into_iter().find(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|made| made > built)
    })
}

/// 4. The build with `merged`; the binary's path.
fn optimised_build(pgo_dir: &Path, host: &str, merged: &Path) -> Result<PathBuf, ExitCode> {
    // A new profile file name each time it is remade, so that cargo sees the flags change
    // and rebuilds.
    let use_flag = format!("-Cprofile-use={}", merged.display());
    run(release_build(&pgo_dir.join("use"), host, &use_flag))?;
    Ok(pgo_dir.join("use").join(host).join("release/gateway"))
}

/// `cargo build --release -p gateway-bin --bin gateway --target HOST` with `flag` added to
/// `RUSTFLAGS`, into `target_dir`.
fn release_build(target_dir: &Path, host: &str, flag: &str) -> Command {
    let mut cmd = gateway_release_build();
    cmd.args(["--target", host])
        .env("CARGO_TARGET_DIR", target_dir);
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} {flag}"),
        _ => flag.to_owned(),
    };
    cmd.env("RUSTFLAGS", flags);
    cmd
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the instrumented gateway under each training load.
async fn train(binary: &Path) -> Result<(), ExitCode> {
    let upstream = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
        eprintln!("xtask: cannot bind the training upstream: {e}");
        ExitCode::FAILURE
    })?;
    let upstream_port = upstream.local_addr().map_err(|_| ExitCode::FAILURE)?.port();
    let app = Router::new()
        .route(
            "/api/v1/users/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<u64>| async move {
                Json(json!({"id": id, "name": "Ada Lovelace", "email": "ada@example.com", "role": "admin", "active": true}))
            }),
        )
        .route("/api/v1/health", get(|| async { "ok" }))
        .route(
            "/api/v1/orders",
            post(|body: axum::body::Bytes| async move {
                Json(json!({"ok": true, "received": body.len()}))
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(upstream, app).await;
    });

    let token = training_token().map_err(|e| {
        eprintln!("xtask: cannot mint the training token: {e}");
        ExitCode::FAILURE
    })?;
    let body = "x".repeat(1024);
    for p in PROFILES.iter().filter(|p| !p.name.ends_with("redis")) {
        let port = free_port().map_err(|e| {
            eprintln!("xtask: no free port: {e}");
            ExitCode::FAILURE
        })?;
        let config =
            std::env::temp_dir().join(format!("gw-pgo-{}-{}.toml", p.name, std::process::id()));
        if let Err(e) = std::fs::write(&config, bench_config(p, TRAIN_SECRET, port, upstream_port))
        {
            eprintln!("xtask: cannot write {}: {e}", config.display());
            return Err(ExitCode::FAILURE);
        }
        let _config = RemoveOnDrop(config.clone());
        eprintln!("xtask: training on {} ({})", p.name, p.about);
        let mut child = KillOnDrop(
            Command::new(binary)
                .arg("--config")
                .arg(&config)
                .env_remove("GW_CONFIG")
                .spawn()
                .map_err(|e| {
                    eprintln!("xtask: cannot start {}: {e}", binary.display());
                    ExitCode::FAILURE
                })?,
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !tokio::task::spawn_blocking(move || health_ok(addr))
            .await
            .unwrap_or(false)
        {
            if Instant::now() > deadline || matches!(child.0.try_wait(), Ok(Some(_))) {
                eprintln!("xtask: the instrumented gateway did not come up on {addr}");
                return Err(ExitCode::FAILURE);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let auth = format!("Authorization: Bearer {token}\r\n");
        let get = format!("GET /api/v1/users/123 HTTP/1.1\r\nHost: bench\r\n{auth}\r\n");
        let post = format!(
            "POST /api/v1/orders HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let missing = format!("GET /nowhere HTTP/1.1\r\nHost: bench\r\n{auth}\r\n");
        // Mostly the harness's request; some bodies and some answers the gateway makes itself.
        let loads = [
            (get, TRAIN_FOR, TRAIN_CONNECTIONS),
            (post, TRAIN_FOR / 4, TRAIN_CONNECTIONS / 5),
        ];
        for (request, duration, connections) in loads {
            let answered = drive(addr, request.into_bytes(), connections, duration).await;
            eprintln!("xtask:   {answered} answers");
            if answered == 0 {
                eprintln!("xtask: the training load got no 2xx answer");
                return Err(ExitCode::FAILURE);
            }
        }
        // A route that does not exist still answers (404, the gateway's own JSON).
        drive(addr, missing.into_bytes(), 2, Duration::from_millis(300)).await;
        // SIGTERM: the gateway drains and exits, writing its profile.
        let pid = child.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.0.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => {
                    eprintln!("xtask: the instrumented gateway exited with {status}");
                    return Err(ExitCode::FAILURE);
                }
                _ if Instant::now() > deadline => {
                    eprintln!("xtask: the instrumented gateway did not stop within 10 s");
                    return Err(ExitCode::FAILURE);
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    server.abort();
    Ok(())
}

/// An HS256 token that the bench profiles' JWT settings accept (`iss` "bench", `aud` "api").
fn training_token() -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "pgo-client", "iss": "bench", "aud": "api", "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(TRAIN_SECRET.as_bytes()),
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `connections` keep-alive connections sending `request` again and again for `duration`;
/// the number of 2xx answers.
async fn drive(addr: SocketAddr, request: Vec<u8>, connections: usize, duration: Duration) -> u64 {
    let request: &'static [u8] = Vec::leak(request);
    let end = tokio::time::Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(async move {
                let mut ok = 0u64;
                while tokio::time::Instant::now() < end {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        return ok;
                    };
                    let _ = stream.set_nodelay(true);
                    let mut buf = Vec::with_capacity(4096);
                    while tokio::time::Instant::now() < end {
                        if stream.write_all(request).await.is_err() {
                            break;
                        }
                        match read_answer(&mut stream, &mut buf).await {
                            Some(status) if (200..300).contains(&status) => ok += 1,
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total
}

/// Reads one answer with a `Content-Length` body; its status, `None` when the connection
/// broke or the answer cannot be read that way.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end + length);
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The training load reads keep-alive answers one by one, however the bytes arrive.
    #[tokio::test]
    async fn answers_are_read_one_by_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno";
            // The first answer's head in two pieces, then the rest at once.
            s.write_all(&two[..10]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(&two[10..]).await.unwrap();
        });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_answer(&mut stream, &mut buf).await, Some(200));
        assert_eq!(read_answer(&mut stream, &mut buf).await, Some(404));
        assert!(buf.is_empty());
        assert_eq!(read_answer(&mut stream, &mut buf).await, None, "closed");
    }

    /// Every profile the training runs is a configuration the gateway accepts.
    #[test]
    fn training_configurations_are_valid() {
        for p in PROFILES {
            let text = bench_config(p, TRAIN_SECRET, 18999, 18998);
            if let Err(e) = gateway_bin::Config::from_toml_str(&text) {
                panic!("{}: {e:?}\n{text}", p.name);
            }
        }
    }
}
