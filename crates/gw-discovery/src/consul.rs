//! Consul discovery with blocking queries: a background future that the binary spawns.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use tokio::task::{JoinHandle, JoinSet};

use crate::client::HttpClient;
use crate::{ConfigProblem, ConsulConfig, Instance, Registry, DEFAULT_WEIGHT};

/// First pause after a failed query; doubled on each failure in a row.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two failed queries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// An answer this quick without a new index is not a blocking query at work (a proxy in
/// between, or a Consul quirk): pause before the next one rather than spin.
const TOO_QUICK: Duration = Duration::from_millis(50);

/// Watches Consul and keeps the registry's Consul instances current.
///
/// With `services = []` it watches `/v1/catalog/services` and, for each service there
/// (except Consul's own `consul` service), `/v1/health/service/{name}?passing=true`; with a
/// list, only those services' health. Every watch is a blocking query (`index`, `wait`), so
/// a change is seen as soon as Consul has it and an idle catalog costs one request per
/// `wait_secs` per watch. Each answer replaces the service's Consul instances; a service
/// that leaves the catalog loses them. While Consul is unreachable or answers errors, the
/// watches back off (100 ms doubling to 5 s, with jitter) and the last known instances stay.
///
/// Instance id = `Service.ID`; address = `Service.Address`, or `Node.Address` when empty;
/// metadata = `Service.Meta`; weight = `Service.Weights.Passing` (at least 1; 100 without
/// `Weights`). Each entry is then validated as an admin-registered instance would be
/// ([`Instance::problems`]): an entry that fails (a weight above [`crate::MAX_WEIGHT`], a
/// bad host, …) is skipped with a warning, the others are used. Two entries with the same `Service.ID` on different nodes become
/// `ID` and `ID@node`.
///
/// ```no_run
/// # async fn demo() {
/// use gw_discovery::{ConsulConfig, ConsulWatcher, Registry};
/// let registry = Registry::new();
/// let config = ConsulConfig { url: "http://127.0.0.1:8500".into(), ..Default::default() };
/// tokio::spawn(ConsulWatcher::new(config, registry.clone()).run(std::future::pending()));
/// # }
/// ```
#[derive(Debug)]
pub struct ConsulWatcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: String,
    wait: Duration,
    services: Vec<String>,
    registry: Arc<Registry>,
    client: HttpClient,
}

impl ConsulWatcher {
    /// A watcher of the Consul at `config.url`, feeding `registry`.
    pub fn new(config: ConsulConfig, registry: Arc<Registry>) -> Self {
        ConsulWatcher {
            inner: Arc::new(Inner {
                base: config.url.trim_end_matches('/').to_owned(),
                wait: Duration::from_secs(config.wait_secs.max(1)),
                services: config.services,
                registry,
                client: HttpClient::new(),
            }),
        }
    }

    /// Watches until `shutdown` completes; every query in flight is cancelled then. The
    /// registry keeps the Consul instances last seen.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = shutdown => {}
            () = self.inner.clone().watch() => {}
        }
    }
}

impl Inner {
    async fn watch(self: Arc<Self>) {
        let mut tasks = JoinSet::new();
        if !self.services.is_empty() {
            for name in &self.services {
                tasks.spawn(self.clone().watch_service(name.clone()));
            }
            while tasks.join_next().await.is_some() {}
            return;
        }
        let mut watched: HashMap<String, Watch> = HashMap::new();
        let mut query = Query::new("catalog");
        loop {
            let Some(body) = query.next(&self, "/v1/catalog/services?".to_owned()).await else {
                continue;
            };
            let catalog: BTreeMap<String, serde_json::Value> = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => {
                    query.failed(&format!("invalid catalog JSON: {e}")).await;
                    continue;
                }
            };
            let gone: Vec<String> = watched
                .keys()
                .filter(|name| !catalog.contains_key(*name))
                .cloned()
                .collect();
            for name in gone {
                if let Some(watch) = watched.remove(&name) {
                    // The service's own query saw the same change and may be storing its
                    // (empty) answer on another thread right now: wait until the watch has
                    // really stopped, or that answer would bring the service back.
                    watch.stop().await;
                }
                tracing::info!(service = %name, "service left the Consul catalog");
                self.registry.remove_consul(&name);
            }
            for name in catalog.keys() {
                if name == "consul" || watched.contains_key(name) {
                    continue;
                }
                let task = tokio::spawn(self.clone().watch_service(name.clone()));
                watched.insert(name.clone(), Watch(task));
            }
        }
    }

    async fn watch_service(self: Arc<Self>, name: String) {
        let path = format!("/v1/health/service/{}?passing=true&", encode(&name));
        let mut query = Query::new("health");
        loop {
            let Some(body) = query.next(&self, path.clone()).await else {
                continue;
            };
            match parse_health(&body) {
                Ok(instances) => {
                    tracing::debug!(service = %name, instances = instances.len(), "Consul instances");
                    self.registry.set_consul(&name, instances);
                }
                Err(e) => query.failed(&format!("invalid health JSON: {e}")).await,
            }
        }
    }
}

/// One service's watch task; dropping it (the watcher's shutdown) cancels the task.
#[derive(Debug)]
struct Watch(JoinHandle<()>);

impl Watch {
    /// Cancels the task and waits until it has stopped: after this, it stores nothing more.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The state of one blocking-query loop: index, backoff, error reporting.
#[derive(Debug)]
struct Query {
    what: &'static str,
    index: u64,
    fresh: bool,
    failures: u32,
}

impl Query {
    fn new(what: &'static str) -> Self {
        Query {
            what,
            index: 0,
            fresh: true,
            failures: 0,
        }
    }

    /// Makes the next blocking query of `path_and_query` (ending in `?` or `&`); the body when
    /// it holds something new, else `None` (after any pause that is due).
    async fn next(&mut self, consul: &Inner, mut path_and_query: String) -> Option<Bytes> {
        if self.index > 0 {
            path_and_query.push_str(&format!("index={}&", self.index));
        }
        path_and_query.push_str(&format!("wait={}s", consul.wait.as_secs()));
        let url = format!("{}{}", consul.base, path_and_query);
        // Consul adds up to wait/16 of jitter; leave room for a slow answer too.
        let timeout = consul.wait + consul.wait / 16 + Duration::from_secs(5);
        let started = Instant::now();
        let (parts, body) = match consul.client.get(&url, timeout).await {
            Ok(answer) => answer,
            Err(e) => {
                self.failed(&e.to_string()).await;
                return None;
            }
        };
        if !parts.status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            self.failed(&format!("status {}: {}", parts.status, text.trim()))
                .await;
            return None;
        }
        if self.failures > 0 {
            tracing::info!(query = self.what, url, "Consul answers again");
            self.failures = 0;
        }
        let index = parts
            .headers
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let changed = self.fresh || index != self.index;
        // Consul's rules: an index that goes backwards resets the watch; never send 0.
        self.index = if index < self.index { 0 } else { index.max(1) };
        if !changed || index == 0 {
            if started.elapsed() < TOO_QUICK {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if !changed {
                return None;
            }
        }
        self.fresh = false;
        Some(body)
    }

    /// Reports a failed query and pauses: 100 ms doubling to 5 s, ±20 % jitter.
    async fn failed(&mut self, error: &str) {
        if self.failures == 0 {
            tracing::warn!(
                query = self.what,
                error,
                "Consul query failed; keeping the last known instances"
            );
        } else {
            tracing::debug!(
                query = self.what,
                error,
                failures = self.failures,
                "Consul query failed"
            );
        }
        let exp = BACKOFF_MIN.saturating_mul(1u32 << self.failures.min(16));
        let pause = exp.min(BACKOFF_MAX).mul_f64(0.8 + fastrand::f64() * 0.4);
        self.failures = self.failures.saturating_add(1);
        // The answer after an error is applied even when its index did not move.
        self.fresh = true;
        tokio::time::sleep(pause).await;
    }
}

#[derive(Deserialize)]
struct HealthEntry {
    #[serde(rename = "Node")]
    node: Node,
    #[serde(rename = "Service")]
    service: ServiceEntry,
}

#[derive(Deserialize)]
struct Node {
    #[serde(rename = "Node", default)]
    name: String,
    #[serde(rename = "Address", default)]
    address: String,
}

#[derive(Deserialize)]
struct ServiceEntry {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Service", default)]
    service: String,
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Port", default)]
    port: u16,
    #[serde(rename = "Meta", default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(rename = "Weights", default)]
    weights: Option<Weights>,
}

#[derive(Deserialize)]
struct Weights {
    #[serde(rename = "Passing", default)]
    passing: i64,
}

/// The instances of a `/v1/health/service/{name}` answer.
fn parse_health(body: &[u8]) -> Result<Vec<Instance>, serde_json::Error> {
    let entries: Vec<HealthEntry> = serde_json::from_slice(body)?;
    let mut out: Vec<Instance> = Vec::with_capacity(entries.len());
    for e in entries {
        let host = if e.service.address.is_empty() {
            e.node.address
        } else {
            e.service.address
        };
        let mut id = if e.service.id.is_empty() {
            e.service.service
        } else {
            e.service.id
        };
        if host.is_empty() || e.service.port == 0 || id.is_empty() {
            tracing::debug!(
                id,
                host,
                port = e.service.port,
                "Consul entry without an address skipped"
            );
            continue;
        }
        if out.iter().any(|i| i.id == id) {
            id = format!("{id}@{}", e.node.name);
        }
        let weight = match e.service.weights {
            Some(w) => u32::try_from(w.passing.max(1)).unwrap_or(u32::MAX),
            None => DEFAULT_WEIGHT,
        };
        let instance = Instance {
            id,
            host,
            port: e.service.port,
            weight,
            metadata: e.service.meta.unwrap_or_default(),
        };
        let problems = instance.problems();
        if !problems.is_empty() {
            let why = ConfigProblem::join(&problems);
            tracing::warn!(
                addr = %instance.authority(),
                instance = %instance.id,
                problems = %why,
                "invalid Consul entry skipped"
            );
            continue;
        }
        out.push(instance);
    }
    Ok(out)
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_entries_become_instances() {
        let body = br#"[
          {"Node": {"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1"},
           "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080,
                       "Tags": ["a"], "Meta": {"version": "2"},
                       "Weights": {"Passing": 5, "Warning": 1}},
           "Checks": [{"Status": "passing"}]},
          {"Node": {"Node": "n2", "Address": "10.0.0.2"},
           "Service": {"ID": "web-1", "Service": "web", "Address": "10.0.0.9", "Port": 8081,
                       "Meta": null, "Weights": {"Passing": 0, "Warning": 1}},
           "Checks": []},
          {"Node": {"Node": "n3", "Address": "10.0.0.3"},
           "Service": {"ID": "web-3", "Service": "web", "Address": "", "Port": 8082},
           "Checks": []},
          {"Node": {"Node": "n4", "Address": ""},
           "Service": {"ID": "web-4", "Service": "web", "Address": "", "Port": 8083},
           "Checks": []}
        ]"#;
        let got = parse_health(body).unwrap();
        assert_eq!(got.len(), 3, "the entry without any address is skipped");
        assert_eq!(got[0].id, "web-1");
        assert_eq!(
            got[0].host, "10.0.0.1",
            "Node.Address when Service.Address is empty"
        );
        assert_eq!(got[0].port, 8080);
        assert_eq!(got[0].weight, 5);
        assert_eq!(got[0].metadata["version"], "2");
        assert_eq!(
            got[1].id, "web-1@n2",
            "a duplicate id is told apart by node"
        );
        assert_eq!(got[1].host, "10.0.0.9");
        assert_eq!(got[1].weight, 1, "weights are at least 1");
        assert!(got[1].metadata.is_empty());
        assert_eq!(got[2].weight, 100, "no Weights: the default weight");
        assert!(parse_health(b"{}").is_err());
    }

    #[test]
    fn invalid_entries_are_skipped_not_fatal() {
        let body = br#"[
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "huge", "Service": "web", "Address": "", "Port": 8080,
                       "Weights": {"Passing": 4294967295, "Warning": 1}}},
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "over", "Service": "web", "Address": "", "Port": 8081,
                       "Weights": {"Passing": 10001, "Warning": 1}}},
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "bad-host", "Service": "web", "Address": "a b", "Port": 8082}},
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "ok", "Service": "web", "Address": "", "Port": 8083,
                       "Weights": {"Passing": 10000, "Warning": 1}}}
        ]"#;
        let got = parse_health(body).unwrap();
        let ids: Vec<_> = got.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["ok"]);
        assert_eq!(got[0].weight, crate::MAX_WEIGHT);
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(encode("web-api_v1.2"), "web-api_v1.2");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
