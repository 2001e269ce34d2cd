//! The smallest honest [`ControlPlane`]: a fixed, read-only route table. Its admin router
//! (behind [`AccessControl`]) is mounted into a plain axum app; `GET /admin/routes` from a
//! local peer is answered, the same request with a foreign `Host` is refused with 403.
//!
//! Run with `cargo run -p gw-admin --example control_plane`.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use gw_admin::model::{Health, Metrics, NodeStatus};
use gw_admin::{admin_router, AccessControl, AdminError, ControlPlane, RouteChange, RouteDocument};
use gw_core::ConnInfo;
use http::{header, Request};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

/// A fixed route table; writes are refused, metrics and health are constant. Every other
/// trait method keeps its default body ("not available").
struct ReadOnly {
    routes: Vec<RouteDocument>,
}

impl ControlPlane for ReadOnly {
    async fn list_routes(&self) -> Vec<RouteDocument> {
        self.routes.clone()
    }
    async fn get_route(&self, id: &str) -> Option<RouteDocument> {
        self.routes.iter().find(|r| r.id() == Some(id)).cloned()
    }
    async fn put_route(&self, _route: RouteDocument) -> Result<RouteChange, AdminError> {
        Err(AdminError::bad_request("read-only control plane"))
    }
    async fn delete_route(&self, _id: &str) -> Result<bool, AdminError> {
        Err(AdminError::bad_request("read-only control plane"))
    }
    fn metrics_json(&self) -> Metrics {
        Metrics {
            timestamp: 0,
            total_requests: 0,
            status_codes: Default::default(),
            services: Default::default(),
        }
    }
    fn metrics_prometheus(&self) -> String {
        String::new()
    }
    async fn health(&self) -> Health {
        Health {
            status: NodeStatus::Healthy,
            timestamp: 0,
            version: "example".into(),
            config_version: None,
            node: None,
            uptime_secs: None,
            services: Default::default(),
            circuit_breakers: Default::default(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let control = Arc::new(ReadOnly {
        routes: vec![serde_json::from_value(
            json!({"id": "users", "service": "user-service", "pattern": "^/api/users"}),
        )?],
    });
    let admin_addr = "127.0.0.1:9901".parse()?;
    let access = AccessControl {
        allow: vec!["127.0.0.0/8".parse()?, "::1/128".parse()?],
        token: None,
        hosts: Some(AccessControl::default_hosts(admin_addr)),
    };
    let app = Router::new().merge(admin_router(control, access));

    for host in ["127.0.0.1:9901", "evil.example"] {
        let mut req = Request::get("/admin/routes")
            .header(header::HOST, host)
            .body(Body::empty())?;
        // The gateway's listener inserts this; here the peer is a local client.
        req.extensions_mut().insert(ConnInfo {
            peer: "127.0.0.1:50000".parse()?,
            local: admin_addr,
            tls: false,
        });
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "GET /admin/routes (Host: {host}) -> {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
