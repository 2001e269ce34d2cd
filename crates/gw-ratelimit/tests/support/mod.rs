//! Test support: finding (or starting) a Redis, unique key prefixes, a manual clock.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::{Config, Pool, Runtime};

/// A clock the test moves by hand (ms since the epoch).
#[derive(Clone, Debug)]
pub struct ManualClock(pub Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn clock(&self) -> gw_ratelimit::Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("test:gw-ratelimit:{test}:{:016x}:", fastrand::u64(..))
}

/// A redis-server this test started; killed on drop.
#[derive(Debug)]
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts redis-server on a free ephemeral port.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        Self::start_on(port)
    }

    /// Starts redis-server on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("install redis-server (could not start it: {e})"));
        let me = Self {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(&me.url()) {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (it can be started again on the same port with `start_on`).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(url: &str) -> bool {
    let Ok(client) = deadpool_redis::redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    deadpool_redis::redis::cmd("PING")
        .query::<String>(&mut conn)
        .is_ok_and(|p| p == "PONG")
}

/// The Redis the tests share: `GW_TEST_REDIS_URL`, else 127.0.0.1:6379 when it answers, else
/// a redis-server started for this test process (kept alive by the returned guard).
pub fn redis_url() -> (String, Option<OwnRedis>) {
    if let Ok(url) = std::env::var("GW_TEST_REDIS_URL") {
        return (url, None);
    }
    let default = "redis://127.0.0.1:6379".to_owned();
    if ping(&default) {
        return (default, None);
    }
    let own = OwnRedis::start();
    (own.url(), Some(own))
}

pub fn pool(url: &str) -> Pool {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .expect("redis pool")
}
