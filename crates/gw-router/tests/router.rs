//! `Router` as a tower service: dispatch, URI rewriting, 404/405 answers, tags, swaps.

mod support;

use std::sync::Arc;

use arc_swap::ArcSwap;
use gw_core::{RequestId, RouteTag};
use gw_router::{Body, RouteSpec, RouteTable, Router};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::*;
use tower::{Service, ServiceExt};

fn router(routes: Vec<(RouteSpec, &'static str)>) -> Router {
    let table = RouteTable::new(
        routes
            .into_iter()
            .map(|(spec, name)| (spec, echo(name)))
            .collect(),
    )
    .unwrap();
    Router::new(Arc::new(ArcSwap::from_pointee(table)))
}

async fn send(router: &Router, req: Request<Body>) -> Response<Body> {
    router.clone().oneshot(req).await.unwrap()
}

async fn body(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn dispatches_and_keeps_the_query() {
    let r = router(vec![
        (strip("api", "/api"), "api"),
        (
            with_priority(pattern("users", "^/users(/.*)?$"), 1),
            "users",
        ),
        (prefix("root", "/"), "root"),
    ]);
    assert_eq!(
        body(send(&r, get("/api/v1/x?a=1&b=2")).await).await,
        "api /v1/x?a=1&b=2"
    );
    assert_eq!(body(send(&r, get("/api?q")).await).await, "api /?q");
    assert_eq!(
        body(send(&r, get("/users/7?full=true")).await).await,
        "users /7?full=true"
    );
    assert_eq!(
        body(send(&r, get("/other/path?x=%20y")).await).await,
        "root /other/path?x=%20y"
    );
}

#[tokio::test]
async fn rewrite_keeps_scheme_and_authority() {
    let r = router(vec![(strip("api", "/api"), "api")]);
    let req = Request::get("http://gw.example.com:8080/api/items?id=3")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        body(send(&r, req).await).await,
        "api http://gw.example.com:8080/items?id=3"
    );
}

#[tokio::test]
async fn query_is_not_matched_by_patterns() {
    let r = router(vec![(pattern("p", "^/a$"), "p")]);
    assert_eq!(send(&r, get("/a?x=/b")).await.status(), StatusCode::OK);
    let r = router(vec![(pattern("p", "x=1"), "p")]);
    assert_eq!(
        send(&r, get("/a?x=1")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn not_found_is_the_spec_json() {
    let r = router(vec![(prefix("api", "/api"), "api")]);
    let mut req = get("/nope");
    req.extensions_mut()
        .insert(RequestId::new(HeaderValue::from_static("req-1")));
    let res = send(&r, req).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.extensions().get::<RouteTag>().is_none());
    assert_eq!(
        body(res).await,
        r#"{"error":"Route not found","request_id":"req-1"}"#
    );
}

#[tokio::test]
async fn method_not_allowed_with_allow() {
    let r = router(vec![
        (
            with_methods(prefix("a", "/api"), &[Method::POST, Method::GET]),
            "a",
        ),
        (
            with_methods(pattern("b", "^/api/x"), &[Method::DELETE]),
            "b",
        ),
    ]);
    let req = Request::put("/api/x").body(Body::empty()).unwrap();
    let res = send(&r, req).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, POST, DELETE");
    assert_eq!(body(res).await, r#"{"error":"Method not allowed"}"#);
}

#[tokio::test]
async fn route_tag_in_response_extensions() {
    let r = router(vec![(prefix("orders", "/orders"), "orders")]);
    let res = send(&r, get("/orders/1")).await;
    let tag = res.extensions().get::<RouteTag>().unwrap();
    assert_eq!(&*tag.route, "orders");
    assert_eq!(&*tag.service, "orders_svc");

    let untagged = r.clone().tag_responses(false);
    let res = send(&untagged, get("/orders/1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<RouteTag>().is_none());
}

#[tokio::test]
async fn host_from_header_then_authority() {
    let r = router(vec![
        (with_host(prefix("a", "/"), "a.example.com"), "a"),
        (with_host(prefix("w", "/"), "*.example.org"), "w"),
    ]);
    let req = Request::get("/x")
        .header("host", "A.example.com:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(body(send(&r, req).await).await, "a /x");

    // HTTP/2: no Host header, the authority of the URI.
    let req = Request::get("https://api.example.org:8443/x")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        body(send(&r, req).await).await,
        "w https://api.example.org:8443/x"
    );

    // The Host header wins over the authority.
    let req = Request::get("https://api.example.org/x")
        .header("host", "a.example.com")
        .body(Body::empty())
        .unwrap();
    assert!(body(send(&r, req).await).await.starts_with("a "));

    assert_eq!(send(&r, get("/x")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn snapshot_swap_between_requests() {
    let r = router(vec![(prefix("old", "/"), "old")]);
    assert_eq!(body(send(&r, get("/x")).await).await, "old /x");

    let new = RouteTable::new(vec![(strip("new", "/x"), echo("new"))]).unwrap();
    r.table().store(Arc::new(new));
    assert_eq!(body(send(&r, get("/x/y")).await).await, "new /y");
    assert_eq!(send(&r, get("/z")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn in_flight_request_finishes_on_its_snapshot() {
    let r = router(vec![(prefix("old", "/"), "old")]);
    let mut svc = r.clone();
    // Call (the route is chosen) before the swap, await after.
    let fut = svc.call(get("/x"));
    r.table().store(Arc::new(RouteTable::empty()));
    let res = fut.await.unwrap();
    assert_eq!(body(res).await, "old /x");
    assert_eq!(send(&r, get("/x")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn router_is_always_ready_and_debug() {
    let mut r = router(vec![]);
    std::future::poll_fn(|cx| r.poll_ready(cx)).await.unwrap();
    assert!(format!("{r:?}").contains("Router"));
    let fut = r.call(get("/"));
    assert!(format!("{fut:?}").contains("ResponseFuture"));
}

#[test]
fn router_and_table_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
    assert_send_sync::<RouteTable>();
    fn assert_send<T: Send>() {}
    assert_send::<gw_router::ResponseFuture>();
}
