//! Redis for the tests: `GW_TEST_REDIS_URL`, else 127.0.0.1:6379 when it answers, else a
//! `redis-server` from PATH started on an ephemeral port (and one line saying what to install
//! when there is none). Each test takes its own key prefix ([`unique_prefix`]); a test that
//! stops Redis on purpose starts its own ([`OwnRedis`]).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};

/// A redis-server this test started; killed on drop.
#[derive(Debug)]
pub struct OwnRedis {
    /// Its port.
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
        assert!(
            crate::wait_until_blocking(Duration::from_secs(10), || ping(&me.url())),
            "redis-server on {port} did not start"
        );
        me
    }

    /// `redis://127.0.0.1:{port}`.
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

/// A pool on `url`.
pub fn pool(url: &str) -> Pool {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .expect("redis pool")
}

/// A key prefix no other test uses: `test:{test}:{random}:`.
pub fn unique_prefix(test: &str) -> String {
    format!("test:{test}:{:016x}:", fastrand::u64(..))
}

/// The shared test Redis, found (or started) once per test process.
pub fn shared_url() -> String {
    static SHARED: std::sync::OnceLock<(String, Option<std::sync::Mutex<OwnRedis>>)> =
        std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (url, own) = redis_url();
            (url, own.map(std::sync::Mutex::new))
        })
        .0
        .clone()
}
