//! The gateway in-process on ephemeral ports: [`GatewayBuilder`] writes its TOML (listeners on
//! port 0, access log off) and [`TestGateway`] runs it with a plain HTTP client.
//!
//! ```no_run
//! # async fn t() {
//! use test_support::{TestGateway, Upstream};
//! let up = Upstream::echo("a").await;
//! let gw = TestGateway::builder().service("svc", &[&up]).route(r#"id = "r"
//! path = "/api"
//! service = "svc""#).start().await;
//! let res = gw.get("/api/x").await;
//! assert_eq!(res.status(), 200);
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use gateway_bin::{Config, Gateway};

use crate::upstream::Upstream;

/// Builds the TOML of a test gateway: listeners on port 0, access log off.
#[derive(Debug, Default, Clone)]
pub struct GatewayBuilder {
    head: String,
    services: Vec<String>,
    routes: Vec<String>,
}

impl GatewayBuilder {
    /// Extra top-level TOML (e.g. `[server]` keys are merged: give whole sections).
    pub fn raw(mut self, toml: &str) -> Self {
        self.head.push_str(toml);
        self.head.push('\n');
        self
    }

    /// A round-robin service over `upstreams`.
    pub fn service(self, name: &str, upstreams: &[&Upstream]) -> Self {
        self.service_with(name, "", upstreams, &[])
    }

    /// A service with extra keys (`load_balancer = "weighted"`) and per-instance weights
    /// (empty: 100 each).
    pub fn service_with(
        mut self,
        name: &str,
        extra: &str,
        upstreams: &[&Upstream],
        weights: &[u32],
    ) -> Self {
        let instances: Vec<String> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                format!(
                    "{{ id = \"{}\", host = \"127.0.0.1\", port = {}, weight = {} }}",
                    u.name,
                    u.addr.port(),
                    weights.get(i).copied().unwrap_or(100)
                )
            })
            .collect();
        self.services.push(format!(
            "[services.{name}]\n{extra}\ninstances = [{}]\n",
            instances.join(", ")
        ));
        self
    }

    /// Service `s` over `upstreams` and route `r` sending every path (`/`) to it: the setup of
    /// most tests.
    pub fn catch_all(self, upstreams: &[&Upstream]) -> Self {
        self.service("s", upstreams)
            .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
    }

    /// A service whose instances are given as raw addresses.
    pub fn service_addrs(mut self, name: &str, addrs: &[SocketAddr]) -> Self {
        let instances: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "{{ id = \"{name}-{i}\", host = \"{}\", port = {} }}",
                    a.ip(),
                    a.port()
                )
            })
            .collect();
        self.services.push(format!(
            "[services.{name}]\ninstances = [{}]\n",
            instances.join(", ")
        ));
        self
    }

    /// One `[[routes]]` table's body.
    pub fn route(mut self, body: &str) -> Self {
        self.routes.push(format!("[[routes]]\n{body}\n"));
        self
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut text = String::new();
        if !self.head.contains("[server]") {
            text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !self.head.contains("[admin]") {
            text.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !self.head.contains("[log]") {
            text.push_str("[log]\naccess_log = \"off\"\nlevel = \"warn\"\n");
        }
        text.push_str(&self.head);
        for s in &self.services {
            text.push_str(s);
        }
        for r in &self.routes {
            text.push_str(r);
        }
        text
    }

    /// Parses, validates and starts the gateway.
    pub async fn start(self) -> TestGateway {
        let text = self.toml();
        let config = Config::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{text}"));
        TestGateway::start(config).await
    }
}

/// A gateway started in-process, with a client.
#[derive(Debug)]
pub struct TestGateway {
    /// The gateway.
    pub gateway: Gateway,
    /// A client with no proxy and no pooling surprises.
    pub client: reqwest::Client,
}

impl TestGateway {
    /// A builder for the configuration.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// A gateway with [`GatewayBuilder::catch_all`] over `upstream`, started.
    pub async fn catch_all(upstream: &Upstream) -> TestGateway {
        Self::builder().catch_all(&[upstream]).start().await
    }

    /// Starts a gateway with `config`.
    pub async fn start(config: Config) -> TestGateway {
        let gateway = Gateway::start(config, None).await.expect("gateway starts");
        TestGateway {
            gateway,
            client: client(),
        }
    }

    /// `http://proxy/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.proxy_addr())
    }

    /// `http://admin/path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr())
    }

    /// GET on the proxy listener.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET on the proxy listener, answer as JSON (with the status).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }

    /// A request on the admin listener, with `body` as JSON when given: the status and the
    /// JSON body (`Null` when the body is not JSON).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, self.admin_url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("admin request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GET on the admin listener: the status and the JSON body (`Null` when not JSON).
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        self.admin(reqwest::Method::GET, path, None).await
    }

    /// GET on the admin listener, whatever the status: the body, which must be JSON.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        self.client
            .get(self.admin_url(path))
            .send()
            .await
            .expect("admin request")
            .json()
            .await
            .expect("admin JSON")
    }

    /// POST `body` as JSON on the admin listener: the status and the JSON body.
    pub async fn admin_post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.admin(reqwest::Method::POST, path, Some(body)).await
    }

    /// DELETE on the admin listener: the status and the JSON body.
    pub async fn admin_delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.admin(reqwest::Method::DELETE, path, None).await
    }

    /// `GET /admin/services/{name}` (asserting `200`): the service's detail.
    pub async fn service_detail(&self, name: &str) -> serde_json::Value {
        let (status, body) = self.admin_get(&format!("/admin/services/{name}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Instance `id` of `service` from [`TestGateway::service_detail`], or `Null` when the
    /// service has no such instance.
    pub async fn instance(&self, service: &str, id: &str) -> serde_json::Value {
        self.service_detail(service).await["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// The value of the Prometheus sample `name{...}` whose labels include every `labels`
    /// pair.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The breaker object of `service` from `GET /admin/circuit-breakers/{service}`
    /// (asserting `200`).
    pub async fn breaker(&self, service: &str) -> serde_json::Value {
        let (status, body) = self
            .admin_get(&format!("/admin/circuit-breakers/{service}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["circuit_breaker"].clone()
    }

    /// The state of `service`'s breaker: `closed`, `open` or `half_open`.
    pub async fn breaker_state(&self, service: &str) -> String {
        self.breaker(service).await["state"]
            .as_str()
            .expect("a state")
            .to_string()
    }

    /// The Prometheus text of `GET /metrics` on the admin listener.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// A reqwest client that never uses a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
