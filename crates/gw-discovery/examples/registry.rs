//! A registry with static and admin instances and live health checks against two local
//! servers, one of which starts failing.
//!
//! `cargo run -p gw-discovery --example registry`

use std::time::Duration;

use gw_discovery::{HealthCheckConfig, HealthChecker, Instance, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A minimal HTTP/1.1 server answering every request with `status` (until `fail_after`
/// requests, then 500).
async fn server(fail_after: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            served += 1;
            let status = if served > fail_after {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    port
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let steady = server(usize::MAX).await;
    let flaky = server(3).await;

    let registry = Registry::new();
    registry.set_static(
        "user_service",
        vec![Instance::new("user-service-1", "127.0.0.1", steady)],
        Some(HealthCheckConfig {
            interval_secs: 0.2,
            timeout_ms: 500,
            ..HealthCheckConfig::default()
        }),
    );
    let registered = registry
        .register(
            "user_service",
            Instance::new("user-service-2", "127.0.0.1", flaky),
        )
        .unwrap();
    println!(
        "registered {}",
        serde_json::json!({"message": "Service instance registered", "instance": registered})
    );

    let mut changes = registry.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let checker = tokio::spawn(HealthChecker::new(registry.clone()).run(async {
        let _ = stopped.await;
    }));

    // What the binary does: on every change, hand the healthy instances to the proxy.
    let watch = async {
        while changes.changed().await.is_ok() {
            let healthy: Vec<String> = registry
                .healthy("user_service")
                .into_iter()
                .map(|i| i.id)
                .collect();
            println!("healthy instances now: {healthy:?}");
            if healthy.len() == 1 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), watch).await;

    println!(
        "GET /admin/services -> {}",
        serde_json::json!({"services": registry.summary()})
    );
    println!(
        "GET /admin/services/user_service -> {:#}",
        registry.detail("user_service").unwrap()
    );
    let _ = stop.send(());
    checker.await.unwrap();
}
