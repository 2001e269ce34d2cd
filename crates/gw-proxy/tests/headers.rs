//! Headers sent upstream and back.

mod support;

use std::collections::BTreeMap;

use gw_core::{Body, Identity};
use gw_proxy::{HeaderRules, LoadBalancer, ProxyConfig, TrustedProxies};
use http::{HeaderName, HeaderValue, Response};
use support::*;

/// An upstream that answers with the request headers it received, one `name: value` a line.
async fn echo_headers() -> TestUpstream {
    serve(|req| async move {
        let mut out = String::new();
        for (name, value) in req.headers() {
            out.push_str(&format!("{}: {}\n", name, value.to_str().unwrap()));
        }
        Response::builder()
            .header("x-upstream-secret", "s")
            .header("x-upstream-kept", "k")
            .header("keep-alive", "timeout=5")
            .body(Body::from(out))
            .unwrap()
    })
    .await
}

fn parse(body: &str) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::<String, Vec<String>>::new();
    for line in body.lines() {
        let (k, v) = line.split_once(": ").unwrap();
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    map
}

fn one<'a>(h: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| {
        assert_eq!(v.len(), 1, "{name}: {v:?}");
        v[0].as_str()
    })
}

#[tokio::test]
async fn untrusted_peer_headers() {
    let up = echo_headers().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        ProxyConfig::default(),
    );
    let mut req = get("/path?q=1");
    let h = req.headers_mut();
    h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
    h.insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-drop-me"),
    );
    h.insert("x-drop-me", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    h.insert("x-user-id", HeaderValue::from_static("admin"));
    h.insert("x-user-role", HeaderValue::from_static("admin"));
    h.insert("x-request-id", HeaderValue::from_static("client-chosen"));
    h.insert("x-gateway-version", HeaderValue::from_static("spoofed"));
    h.insert("x-kept", HeaderValue::from_static("yes"));
    let res = send(&proxy, req).await;
    assert_eq!(res.status(), 200);
    // Response hop-by-hop removed, end-to-end kept.
    assert!(res.headers().get("keep-alive").is_none());
    assert_eq!(res.headers()["x-upstream-kept"], "k");
    let h = parse(&text(res).await);
    assert_eq!(one(&h, "host"), Some("gw.example"));
    assert_eq!(one(&h, "x-forwarded-for"), Some("192.0.2.10"));
    assert_eq!(one(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(one(&h, "x-forwarded-host"), Some("gw.example"));
    assert_eq!(one(&h, "x-request-id"), Some(REQUEST_ID));
    assert_eq!(one(&h, "x-gateway-version"), Some(gw_core::VERSION));
    assert_eq!(one(&h, "te"), Some("trailers"));
    assert_eq!(one(&h, "x-kept"), Some("yes"));
    for gone in [
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "upgrade",
        "x-user-id",
        "x-user-role",
        "connection",
    ] {
        assert!(!h.contains_key(gone), "{gone} was forwarded: {h:?}");
    }
}

#[tokio::test]
async fn trusted_peer_headers_are_kept_and_appended() {
    let up = echo_headers().await;
    let config = ProxyConfig {
        trusted_proxies: TrustedProxies::new(vec!["192.0.2.0/24".parse().unwrap()]),
        ..ProxyConfig::default()
    };
    let (proxy, _) = proxy(LoadBalancer::RoundRobin, vec![up.instance("a")], config);
    let mut req = get("/");
    let h = req.headers_mut();
    h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    h.insert(
        "x-forwarded-host",
        HeaderValue::from_static("public.example"),
    );
    let h = parse(&call(&proxy, req).await.1);
    assert_eq!(one(&h, "x-forwarded-for"), Some("1.1.1.1, 192.0.2.10"));
    assert_eq!(one(&h, "x-forwarded-proto"), Some("https"));
    assert_eq!(one(&h, "x-forwarded-host"), Some("public.example"));
}

#[tokio::test]
async fn identity_sets_user_headers() {
    let up = echo_headers().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        ProxyConfig::default(),
    );
    let mut req = get("/");
    req.headers_mut()
        .insert("x-user-id", HeaderValue::from_static("evil"));
    req.headers_mut()
        .insert("x-user-other", HeaderValue::from_static("evil"));
    req.extensions_mut().insert(Identity {
        user_id: "u-1".into(),
        role: Some("admin".into()),
        ..Identity::default()
    });
    let h = parse(&call(&proxy, req).await.1);
    assert_eq!(one(&h, "x-user-id"), Some("u-1"));
    assert_eq!(one(&h, "x-user-role"), Some("admin"));
    assert!(!h.contains_key("x-user-other"));
}

#[tokio::test]
async fn route_header_rules_apply_both_ways() {
    let up = echo_headers().await;
    let config = ProxyConfig {
        request_headers: HeaderRules {
            add: vec![(
                HeaderName::from_static("x-route"),
                HeaderValue::from_static("r1"),
            )],
            remove: vec![HeaderName::from_static("x-remove-me")],
        },
        response_headers: HeaderRules {
            add: vec![(
                HeaderName::from_static("x-resp"),
                HeaderValue::from_static("1"),
            )],
            remove: vec![HeaderName::from_static("x-upstream-secret")],
        },
        ..ProxyConfig::default()
    };
    let (proxy, _) = proxy(LoadBalancer::RoundRobin, vec![up.instance("a")], config);
    let mut req = get("/");
    req.headers_mut()
        .insert("x-remove-me", HeaderValue::from_static("1"));
    req.headers_mut()
        .insert("x-route", HeaderValue::from_static("client"));
    let res = send(&proxy, req).await;
    assert_eq!(res.headers()["x-resp"], "1");
    assert!(res.headers().get("x-upstream-secret").is_none());
    let h = parse(&text(res).await);
    assert_eq!(one(&h, "x-route"), Some("r1"));
    assert!(!h.contains_key("x-remove-me"));
}

#[tokio::test]
async fn h2_style_request_without_host_uses_the_authority() {
    let up = echo_headers().await;
    let (proxy, _) = proxy(
        LoadBalancer::RoundRobin,
        vec![up.instance("a")],
        ProxyConfig::default(),
    );
    let mut req = http::Request::builder()
        .uri("https://api.example:8443/x")
        .version(http::Version::HTTP_2)
        .body(Body::empty())
        .unwrap();
    add_extensions(&mut req);
    let (status, body) = call(&proxy, req).await;
    assert_eq!(status, 200);
    let h = parse(&body);
    assert_eq!(one(&h, "host"), Some("api.example:8443"));
    assert_eq!(one(&h, "x-forwarded-host"), Some("api.example:8443"));
}
