//! A small Consul agent on `127.0.0.1:0` for discovery tests: `/v1/catalog/services` and
//! `/v1/health/service/{name}` with blocking queries (`index`, `wait`) and `X-Consul-Index`,
//! whose catalog a test changes as it goes, and which it can stop, restart or make fail.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::upstream::{json_answer, serve_on, Protocol, Serving};

/// One service instance in the fake Consul.
#[derive(Clone, Debug)]
pub struct ConsulEntry {
    /// The node's name.
    pub node: String,
    /// The node's address (used when the service has none).
    pub node_address: String,
    /// The service instance's id.
    pub id: String,
    /// The service's own address; empty: the node's.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Its `Meta` map.
    pub meta: BTreeMap<String, String>,
    /// `Weights.Passing`; `None`: no `Weights` object at all.
    pub passing_weight: Option<i64>,
    /// Whether its checks pass.
    pub passing: bool,
}

impl ConsulEntry {
    /// Instance `id` on `port` of node `n1` (`127.0.0.1`), passing, weight 1.
    pub fn new(id: &str, port: u16) -> Self {
        ConsulEntry {
            node: "n1".into(),
            node_address: "127.0.0.1".into(),
            id: id.into(),
            address: String::new(),
            port,
            meta: BTreeMap::new(),
            passing_weight: Some(1),
            passing: true,
        }
    }

    fn to_json(&self, service: &str) -> Value {
        let mut svc = json!({
            "ID": self.id, "Service": service, "Tags": [], "Address": self.address,
            "Port": self.port, "Meta": self.meta, "EnableTagOverride": false,
        });
        if let Some(w) = self.passing_weight {
            svc["Weights"] = json!({"Passing": w, "Warning": 1});
        }
        let status = if self.passing { "passing" } else { "critical" };
        json!({
            "Node": {"ID": "0000", "Node": self.node, "Address": self.node_address,
                     "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}},
            "Service": svc,
            "Checks": [{"Node": self.node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                        "Status": status, "ServiceID": "", "ServiceName": ""},
                       {"Node": self.node, "CheckID": format!("service:{}", self.id),
                        "Status": status, "ServiceID": self.id, "ServiceName": service}],
        })
    }
}

#[derive(Debug, Default)]
struct ConsulData {
    services: BTreeMap<String, Vec<ConsulEntry>>,
    error: bool,
}

#[derive(Debug)]
struct ConsulShared {
    data: Mutex<ConsulData>,
    index: watch::Sender<u64>,
    requests: Mutex<HashMap<String, usize>>,
}

/// A small Consul agent: catalog and health endpoints with blocking queries
/// (`index`, `wait`) and `X-Consul-Index`; one index for every change.
#[derive(Debug)]
pub struct FakeConsul {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<ConsulShared>,
    task: Mutex<Option<Serving>>,
}

impl FakeConsul {
    /// Starts one on `127.0.0.1:0` with an empty catalog.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ConsulShared {
            data: Mutex::new(ConsulData::default()),
            index: watch::channel(10).0,
            requests: Mutex::new(HashMap::new()),
        });
        let consul = FakeConsul {
            addr,
            shared,
            task: Mutex::new(None),
        };
        consul.listen(listener);
        consul
    }

    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn listen(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let set = serve_on(listener, Protocol::Http1, move |req| {
            handle(shared.clone(), req)
        });
        *self.task.lock() = Some(set);
    }

    /// Closes the listener and every connection (blocking queries in flight included).
    pub fn stop(&self) {
        self.task.lock().take();
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.listen(listener);
    }

    fn change(&self, f: impl FnOnce(&mut ConsulData)) {
        f(&mut self.shared.data.lock());
        self.shared.index.send_modify(|i| *i += 1);
    }

    /// Adds (or replaces by id) an instance of `service`; the service enters the catalog.
    pub fn upsert(&self, service: &str, entry: ConsulEntry) {
        self.change(|d| {
            let list = d.services.entry(service.to_owned()).or_default();
            list.retain(|e| e.id != entry.id);
            list.push(entry);
        });
    }

    /// Replaces every instance of `service` with `entries`; the service enters the catalog.
    pub fn set(&self, service: &str, entries: Vec<ConsulEntry>) {
        self.change(|d| {
            d.services.insert(service.to_owned(), entries);
        });
    }

    /// A service without instances, in the catalog.
    pub fn add_service(&self, service: &str) {
        self.change(|d| {
            d.services.entry(service.to_owned()).or_default();
        });
    }

    /// Marks instance `id` of `service` passing or critical.
    pub fn set_passing(&self, service: &str, id: &str, passing: bool) {
        self.change(|d| {
            for e in d.services.get_mut(service).into_iter().flatten() {
                if e.id == id {
                    e.passing = passing;
                }
            }
        });
    }

    /// Takes `service` out of the catalog.
    pub fn remove_service(&self, service: &str) {
        self.change(|d| {
            d.services.remove(service);
        });
    }

    /// Answer every request with 500 (`true`) or normally.
    pub fn set_error(&self, error: bool) {
        self.shared.data.lock().error = error;
    }

    /// Requests received whose path starts with `prefix`.
    pub fn requests(&self, prefix: &str) -> usize {
        self.shared
            .requests
            .lock()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn handle(shared: Arc<ConsulShared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    *shared.requests.lock().entry(path.clone()).or_default() += 1;
    if shared.data.lock().error {
        return json_answer(500, "rpc error: No cluster leader");
    }
    // Blocking query: hold while the caller's index is current, at most `wait`.
    let index: u64 = query_param(&query, "index")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wait = query_param(&query, "wait")
        .and_then(|v| v.strip_suffix('s'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
    let mut rx = shared.index.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    while *rx.borrow_and_update() <= index {
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let current = *shared.index.borrow();
    let data = shared.data.lock();
    let body = if path == "/v1/catalog/services" {
        let map: serde_json::Map<String, Value> = data
            .services
            .keys()
            .map(|k| (k.clone(), json!(["tag"])))
            .collect();
        Value::Object(map)
    } else if let Some(name) = path.strip_prefix("/v1/health/service/") {
        let passing_only = query_param(&query, "passing").is_some_and(|v| v != "false");
        let list: Vec<Value> = data
            .services
            .get(name)
            .into_iter()
            .flatten()
            .filter(|e| e.passing || !passing_only)
            .map(|e| e.to_json(name))
            .collect();
        Value::Array(list)
    } else {
        return json_answer(404, "not found");
    };
    let mut res = json_answer(200, serde_json::to_vec(&body).unwrap());
    res.headers_mut()
        .insert("x-consul-index", current.to_string().parse().unwrap());
    *res.status_mut() = StatusCode::OK;
    res
}
