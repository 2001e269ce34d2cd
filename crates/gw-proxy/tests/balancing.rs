//! Load balancing through the Proxy against real upstreams.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gw_core::{Body, Identity};
use gw_proxy::{LoadBalancer, ProxyConfig};
use http::Response;
use support::*;
use test_support::wait_until;
use tokio::sync::Notify;

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let a = fixed("a", 200).await;
    let b = fixed("b", 200).await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![a.instance("a"), b.instance("b")],
        ProxyConfig::default(),
    );
    let mut seq = String::new();
    for _ in 0..10 {
        let (status, body) = call(&proxy, get("/")).await;
        assert_eq!(status, 200);
        seq.push_str(&body);
    }
    assert!(seq == "ababababab" || seq == "bababababa", "{seq}");
    assert_eq!((a.hits(), b.hits()), (5, 5));
}

#[tokio::test]
async fn weighted_follows_nginx_smooth_sequence() {
    let a = fixed("a", 200).await;
    let b = fixed("b", 200).await;
    let c = fixed("c", 200).await;
    let (proxy, _) = proxy(
        LoadBalancer::Weighted,
        vec![
            instance("a", a.addr, 5),
            instance("b", b.addr, 1),
            instance("c", c.addr, 1),
        ],
        ProxyConfig::default(),
    );
    let mut seq = String::new();
    for _ in 0..70 {
        seq.push_str(&call(&proxy, get("/")).await.1);
    }
    assert_eq!(&seq[..7], "aabacaa");
    assert_eq!(seq, "aabacaa".repeat(10));
    assert_eq!((a.hits(), b.hits(), c.hits()), (50, 10, 10));
}

#[tokio::test]
async fn least_conn_prefers_the_idle_instance() {
    let release = Arc::new(Notify::new());
    let slow = |id: &'static str, release: Arc<Notify>| {
        serve(move |req| {
            let release = release.clone();
            async move {
                if req.uri().path() == "/slow" {
                    release.notified().await;
                }
                Response::new(Body::from(id))
            }
        })
    };
    let a = slow("a", release.clone()).await;
    let b = slow("b", release.clone()).await;
    let (proxy, _) = proxy(
        LoadBalancer::LeastConn,
        vec![a.instance("a"), b.instance("b")],
        ProxyConfig::default(),
    );
    let p = proxy.clone();
    let pending = tokio::spawn(async move { call(&p, get("/slow")).await });
    wait_until(Duration::from_secs(5), "one upstream reached", || {
        a.hits() + b.hits() == 1
    })
    .await;
    let busy = if a.hits() == 1 { "a" } else { "b" };
    for _ in 0..6 {
        let (status, body) = call(&proxy, get("/fast")).await;
        assert_eq!(status, 200);
        assert_ne!(body, busy, "request went to the busy instance");
    }
    release.notify_waiters();
    let (status, body) = pending.await.unwrap();
    assert_eq!((status, body.as_str()), (200, busy));
    // Once the slow one finished, both are idle again and take turns.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(call(&proxy, get("/fast")).await.1);
    }
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn consistent_hash_is_sticky_per_user_and_spreads_users() {
    let a = fixed("a", 200).await;
    let b = fixed("b", 200).await;
    let c = fixed("c", 200).await;
    let (proxy, _) = proxy(
        LoadBalancer::ConsistentHash,
        vec![a.instance("a"), b.instance("b"), c.instance("c")],
        ProxyConfig::default(),
    );
    let as_user = |user: &str| {
        let mut req = get("/");
        req.extensions_mut().insert(Identity {
            user_id: user.into(),
            ..Identity::default()
        });
        req
    };
    let first = call(&proxy, as_user("alice")).await.1;
    for _ in 0..10 {
        assert_eq!(call(&proxy, as_user("alice")).await.1, first);
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for i in 0..300 {
        *counts
            .entry(call(&proxy, as_user(&format!("user-{i}"))).await.1)
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n >= 40), "uneven: {counts:?}");
}

#[tokio::test]
async fn consistent_hash_by_client_address_without_identity() {
    let a = fixed("a", 200).await;
    let b = fixed("b", 200).await;
    let (proxy, up) = proxy(
        LoadBalancer::ConsistentHash,
        vec![a.instance("a"), b.instance("b")],
        ProxyConfig::default(),
    );
    let first = call(&proxy, get("/")).await.1;
    for _ in 0..5 {
        assert_eq!(call(&proxy, get("/")).await.1, first);
    }
    // Swapping in the same set keeps the mapping (the ring depends on ids only).
    up.set_instances(vec![b.instance("b"), a.instance("a")]);
    assert_eq!(call(&proxy, get("/")).await.1, first);
}

#[tokio::test]
async fn no_instances_is_503() {
    let (proxy, up) = proxy(LoadBalancer::RoundRobin, vec![], ProxyConfig::default());
    let (status, body) = call(&proxy, get("/")).await;
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "No healthy upstream");
    assert_eq!(v["request_id"], REQUEST_ID);
    // Instances added at runtime are used at once.
    let a = fixed("a", 200).await;
    up.set_instances(vec![a.instance("a")]);
    assert_eq!(call(&proxy, get("/")).await, (200, "a".to_string()));
    assert_eq!(up.instances().len(), 1);
}
