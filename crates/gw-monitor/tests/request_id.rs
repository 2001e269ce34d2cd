//! `RequestIdLayer` through a tower stack.

use std::convert::Infallible;

use gw_core::RequestId;
use gw_monitor::RequestIdLayer;
use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt};

/// Runs one request; returns (id the inner service saw in the header, in the extension,
/// response x-request-id, response x-gateway).
async fn run(client_id: Option<&str>) -> (String, String, String, String) {
    let svc =
        ServiceBuilder::new()
            .layer(RequestIdLayer)
            .service_fn(|req: Request<()>| async move {
                let header = req.headers()["x-request-id"].to_str().unwrap().to_owned();
                let ext = req
                    .extensions()
                    .get::<RequestId>()
                    .unwrap()
                    .as_str()
                    .to_owned();
                let mut res = Response::new(());
                res.headers_mut()
                    .insert("x-seen", format!("{header} {ext}").parse().unwrap());
                Ok::<_, Infallible>(res)
            });
    let mut req = Request::builder().uri("/x");
    if let Some(id) = client_id {
        req = req.header("x-request-id", id);
    }
    let res = svc.oneshot(req.body(()).unwrap()).await.unwrap();
    let seen = res.headers()["x-seen"].to_str().unwrap().to_owned();
    let (h, e) = seen.split_once(' ').unwrap();
    (
        h.to_owned(),
        e.to_owned(),
        res.headers()["x-request-id"].to_str().unwrap().to_owned(),
        res.headers()["x-gateway"].to_str().unwrap().to_owned(),
    )
}

fn is_generated(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test(flavor = "current_thread")]
async fn valid_client_id_is_kept_everywhere() {
    let (h, e, r, g) = run(Some("abc-DEF_1.2:3")).await;
    assert_eq!(h, "abc-DEF_1.2:3");
    assert_eq!(e, h);
    assert_eq!(r, h);
    assert_eq!(g, gw_core::GATEWAY_NAME);
}

#[tokio::test(flavor = "current_thread")]
async fn missing_id_is_generated() {
    let (h, e, r, g) = run(None).await;
    assert!(is_generated(&h), "{h}");
    assert_eq!(e, h);
    assert_eq!(r, h);
    assert_eq!(g, "rust-api-gateway");
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_ids_are_replaced() {
    let long = "a".repeat(129);
    for bad in ["has space", "semi;colon", long.as_str()] {
        let (h, e, r, _) = run(Some(bad)).await;
        assert!(is_generated(&h), "{bad:?} → {h}");
        assert_eq!(e, h);
        assert_eq!(r, h);
    }
    let max = "b".repeat(128);
    let (h, _, r, _) = run(Some(&max)).await;
    assert_eq!(h, max);
    assert_eq!(r, max);
}

#[tokio::test(flavor = "current_thread")]
async fn upstream_id_on_response_is_overwritten() {
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .service_fn(|_req: Request<()>| async {
            let mut res = Response::new(());
            res.headers_mut()
                .insert("x-request-id", "from-upstream".parse().unwrap());
            Ok::<_, Infallible>(res)
        });
    let req = Request::builder()
        .header("x-request-id", "mine")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "mine");
}
