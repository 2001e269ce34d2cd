//! Load balancing per service: round robin, smooth weighted, least connections, consistent hash.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::{TestGateway, Upstream};
use serde_json::Value;

async fn instance(gw: &TestGateway, path: &str) -> String {
    let res = gw.get(path).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["instance"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn round_robin_alternates() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = TestGateway::builder().catch_all(&[&a, &b]).start().await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(instance(&gw, "/").await);
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round robin must alternate: {seen:?}");
    }
    assert_eq!(a.hits(), 5);
    assert_eq!(b.hits(), 5);
}

#[tokio::test]
async fn weighted_follows_weights_smoothly() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let c = Upstream::echo("c").await;
    let gw = TestGateway::builder()
        .service_with(
            "s",
            "load_balancer = \"weighted\"",
            &[&a, &b, &c],
            &[5, 1, 1],
        )
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    let mut seq = String::new();
    for _ in 0..14 {
        seq.push_str(&instance(&gw, "/").await);
    }
    // nginx's smooth weighted round robin for 5:1:1 repeats "aabacaa".
    assert_eq!(seq, "aabacaaaabacaa");
}

#[tokio::test]
async fn least_conn_avoids_the_busy_instance() {
    let slow = Upstream::delay("slow", Duration::from_millis(1500)).await;
    let fast = Upstream::echo("fast").await;
    let gw = TestGateway::builder()
        .service_with("s", "load_balancer = \"least_conn\"", &[&slow, &fast], &[])
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    // Occupy whichever instance the first request goes to, then see where the rest go.
    let url = gw.url("/");
    let client = gw.client.clone();
    let busy = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    assert!(
        integration_tests::eventually(Duration::from_secs(5), || async {
            slow.hits() + fast.hits() >= 1
        })
        .await
    );
    if slow.hits() == 1 {
        for _ in 0..5 {
            assert_eq!(instance(&gw, "/").await, "fast");
        }
    }
    assert_eq!(busy.await.unwrap(), 200);
}

#[tokio::test]
async fn consistent_hash_keeps_a_client_on_one_instance() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let c = Upstream::echo("c").await;
    let gw = TestGateway::builder()
        .raw("[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.0/8\"]")
        .service_with(
            "s",
            "load_balancer = \"consistent_hash\"",
            &[&a, &b, &c],
            &[],
        )
        .route("id = \"r\"\npath = \"/\"\nservice = \"s\"")
        .start()
        .await;
    let mut per_client: HashMap<String, String> = HashMap::new();
    for round in 0..3 {
        for i in 0..30 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
            let res = gw
                .client
                .get(gw.url("/"))
                .header("x-forwarded-for", &ip)
                .send()
                .await
                .unwrap();
            let got = res.json::<Value>().await.unwrap()["instance"]
                .as_str()
                .unwrap()
                .to_string();
            if round == 0 {
                per_client.insert(ip, got);
            } else {
                assert_eq!(per_client[&ip], got, "client {ip} moved");
            }
        }
    }
    let spread: std::collections::HashSet<_> = per_client.values().collect();
    assert!(spread.len() >= 2, "30 clients should spread over instances");
}
