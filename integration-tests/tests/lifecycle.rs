//! Reload under load and graceful shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_bin::Config;
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let builder = |inst: &Upstream| TestGateway::builder().catch_all(&[inst]);
    let gw = Arc::new(builder(&a).start().await);
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (gw, failures, done) = (gw.clone(), failures.clone(), done.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..150 {
                match gw.client.get(gw.url("/x")).send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Alternate between two configurations while requests run.
    let configs = [builder(&b).toml(), builder(&a).toml()];
    let mut i = 0;
    while done.load(Ordering::SeqCst) < 600 && i < 200 {
        let config = Config::from_toml_str(&configs[i % 2]).unwrap();
        gw.gateway.reload(config).await.expect("valid reload");
        i += 1;
        // The pace of reloads under test, spread over the load rather than all at once.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in load {
        t.await.unwrap();
    }
    assert!(i > 1, "reloads happened during the load");
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(a.hits() > 0);
}

#[tokio::test]
async fn invalid_reload_is_refused_and_the_old_config_keeps_serving() {
    let a = Upstream::echo("a").await;
    let gw = TestGateway::catch_all(&a).await;
    let mut bad = Config::from_toml_str(&TestGateway::builder().catch_all(&[&a]).toml()).unwrap();
    bad.routes[0].service = "missing".into();
    let err = gw.gateway.reload(bad).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("routes[0].service: unknown service \"missing\""),
        "{err}"
    );
    assert_eq!(gw.get("/x").await.status(), 200);
}

#[tokio::test]
async fn reload_changes_instances() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::catch_all(&a).await;
    assert_eq!(gw.get_json("/x").await.1["instance"], "a");
    let next = TestGateway::builder().catch_all(&[&b]).toml();
    gw.gateway
        .reload(Config::from_toml_str(&next).unwrap())
        .await
        .unwrap();
    assert_eq!(gw.get_json("/x").await.1["instance"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight_and_stops_accepting() {
    let slow = Upstream::delay("slow", Duration::from_millis(800)).await;
    let gw = TestGateway::builder()
        .raw("[server]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout_secs = 10")
        .catch_all(&[&slow])
        .start()
        .await;
    let url = gw.url("/slow");
    let client = gw.client.clone();
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    assert!(
        integration_tests::eventually(Duration::from_secs(5), || async { slow.hits() == 1 }).await
    );
    let addr = gw.gateway.proxy_addr();
    gw.gateway.shutdown().await;
    let res = in_flight
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["instance"], "slow");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
