//! The command line of docs/command-line.md, run as a real process: `--check-config`, `--version`,
//! SIGHUP reload and SIGTERM shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::wait_until_blocking;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    // The test environment must not leak overrides into the child.
    for (k, _) in std::env::vars() {
        if k.starts_with("GW_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_ok() {
    let out = gateway()
        .args([
            "--check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gateway.toml"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration OK"
    );
}

#[test]
fn check_config_lists_every_error_with_its_path() {
    let path = temp_file(
        "bad",
        r#"
[services.users]
instances = []

[[routes]]
id = "a"
path = "/a"
service = "users"

[[routes]]
id = "b"
path = "/b"
service = "users"

[[routes]]
id = "c"
path = "c"
service = "bills"
"#,
    );
    let out = gateway().arg("--check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("routes[2].service: unknown service \"bills\""),
        "{text}"
    );
    assert!(
        text.contains("routes[2].path: must start with '/'"),
        "{text}"
    );
}

#[test]
fn check_config_names_unknown_keys() {
    let path = temp_file(
        "unknown",
        "[server]\nlisten = \"127.0.0.1:1\"\nworkerz = 2\n",
    );
    let out = gateway().arg("--check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workerz"), "{text}");
}

#[test]
fn version() {
    let out = gateway().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn config_text(proxy: u16, admin: u16, route_path: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{proxy}\"\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\naccess_log = \"off\"\n\
         [services.s]\ninstances = [{{ id = \"i\", host = \"127.0.0.1\", port = 9 }}]\n\
         [[routes]]\nid = \"r\"\npath = \"{route_path}\"\nservice = \"s\"\n"
    )
}

/// The gateway on the configuration at `path`, once its `/health` on `proxy` answers.
fn start(path: &Path, proxy: u16, stderr: Stdio) -> (Child, SocketAddr) {
    let child = gateway()
        .arg("--config")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{proxy}").parse().unwrap();
    assert!(wait_until_blocking(Duration::from_secs(20), || http_get(
        addr, "/health"
    )
    .is_some_and(|(s, _)| s == 200)));
    (child, addr)
}

#[test]
fn sighup_reloads_and_sigterm_exits_zero() {
    let (proxy, admin) = (free_port(), free_port());
    let path = temp_file("signals", &config_text(proxy, admin, "/one"));
    let (mut child, addr) = start(&path, proxy, Stdio::piped());
    // What the gateway logs, read as it comes, so the test can wait for a line.
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (stderr, log) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    // /one is routed (to a port nothing listens on: 502), /two is not (404).
    assert_eq!(http_get(addr, "/one").unwrap().0, 502);
    assert_eq!(http_get(addr, "/two").unwrap().0, 404);

    std::fs::write(&path, config_text(proxy, admin, "/two")).unwrap();
    signal(&child, "-HUP");
    assert!(wait_until_blocking(Duration::from_secs(10), || http_get(
        addr, "/two"
    )
    .is_some_and(|(s, _)| s == 502)));

    // A broken file is refused; the running configuration stays.
    std::fs::write(&path, "[[routes]]\nid = 1\n").unwrap();
    signal(&child, "-HUP");
    wait_until_blocking(Duration::from_secs(10), || {
        log.lock().unwrap().contains("reload refused")
    });
    assert_eq!(http_get(addr, "/two").unwrap().0, 502);

    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
    let err = log.lock().unwrap().clone();
    assert!(
        err.contains("reload refused"),
        "the refusal is logged:\n{err}"
    );
}

/// With one worker and no access log the gateway is a single-threaded process: Linux then
/// takes no reference on a socket's file for each `recv`/`send` (it does whenever another
/// thread shares the file table), and glibc's system-call wrappers skip their cancellation
/// bookkeeping. A helper thread (the metrics exporter's upkeep was one) would undo both.
#[cfg(target_os = "linux")]
#[test]
fn one_worker_runs_as_a_single_thread() {
    let (proxy, admin) = (free_port(), free_port());
    let path = temp_file("threads", &config_text(proxy, admin, "/one"));
    let (mut child, addr) = start(&path, proxy, Stdio::null());
    // A proxied request, a scrape, and the once-a-second housekeeping tick.
    assert_eq!(http_get(addr, "/one").unwrap().0, 502);
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    assert_eq!(http_get(admin_addr, "/metrics").unwrap().0, 200);
    // Past the once-a-second housekeeping tick on purpose: the thread count is read after it.
    std::thread::sleep(Duration::from_millis(1200));

    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|t| {
            let t = t.unwrap().path();
            std::fs::read_to_string(t.join("comm")).unwrap_or_default()
        })
        .collect();
    signal(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(threads.len(), 1, "threads: {threads:?}");
}

/// An upstream answering every request `200 ok` and closing (a thread per connection).
fn tiny_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// Under `prlimit --nofile=256`, 400 connections that send one byte and stop: the
/// connection limit (`server.max_connections = 200`) keeps file descriptors for the accept
/// loop, the admin listener and upstream connections, the refusals are logged (at most once
/// a second), `accept` never runs out of descriptors, and a normal request on a new
/// connection is answered once the idle ones are closed (`idle_timeout_secs = 1`).
#[cfg(target_os = "linux")]
#[test]
fn a_connection_flood_under_a_low_descriptor_limit_leaves_room_for_requests() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit (util-linux) not found: test skipped");
        return;
    }
    let (proxy, admin, upstream) = (free_port(), free_port(), tiny_upstream());
    let path = temp_file(
        "flood",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{proxy}\"\nworkers = 1\nidle_timeout_secs = 5\nmax_connections = 200\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\naccess_log = \"off\"\nlevel = \"warn\"\n\
             [services.s]\ninstances = [{{ id = \"i\", host = \"127.0.0.1\", port = {upstream} }}]\n\
             [[routes]]\nid = \"r\"\npath = \"/up\"\nservice = \"s\"\n"
        ),
    );
    let log_path = path.with_file_name("stderr.log");
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=256", "--"])
        .arg(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("GW_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{proxy}").parse().unwrap();
    assert!(wait_until_blocking(Duration::from_secs(20), || http_get(
        addr, "/health"
    )
    .is_some_and(|(s, _)| s == 200)));

    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            let _ = s.write_all(b"P");
            Some(s)
        })
        .collect();
    assert_eq!(flood.len(), 400, "the kernel takes every connection");
    // The idle ones are closed within two periods (the period is long enough that all 400
    // are open before the first is closed, also on a loaded machine, so the limit is
    // reached); a request on a new connection may be refused at the limit until then, so
    // it is retried.
    let answered = wait_until_blocking(Duration::from_secs(30), || {
        http_get(addr, "/up").is_some_and(|(s, _)| s == 200)
    });
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let admin_ok = http_get(admin_addr, "/metrics").is_some_and(|(s, _)| s == 200);
    drop(flood);
    signal(&child, "-TERM");
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(answered, "a normal request is answered 200:\n{log}");
    assert!(admin_ok, "the admin listener answers:\n{log}");
    assert!(
        log.contains("connection limit reached"),
        "connections over the limit are refused:\n{log}"
    );
    assert!(
        !log.contains("accept failed"),
        "the limit keeps accept within the descriptor limit:\n{log}"
    );
    assert!(
        log.matches("connection limit reached").count() <= 20,
        "refusals are logged at most once a second:\n{log}"
    );
}

#[test]
fn check_config_refuses_a_zero_connection_limit() {
    let path = temp_file(
        "zero-conns",
        "[server]\nlisten = \"127.0.0.1:1\"\nmax_connections = 0\n",
    );
    let out = gateway().arg("--check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("server.max_connections: must be greater than 0"),
        "{text}"
    );
}
