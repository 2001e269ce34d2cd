//! `AccessLogLayer` through a tower stack, writing into an in-memory buffer.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{ClientAddr, ConnInfo, Identity, RouteTag, UpstreamInfo};
use gw_monitor::{AccessLog, AccessLogLayer, RequestIdLayer};
use http::{HeaderMap, Request, Response, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use test_support::wait_until;
use tower::{ServiceBuilder, ServiceExt};

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    /// Waits (bounded) until `n` lines are written; returns them parsed.
    async fn lines(&self, n: usize) -> Vec<Value> {
        let parsed = || -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        wait_until(
            Duration::from_secs(5),
            &format!("{n} access-log lines"),
            || parsed().len() >= n,
        )
        .await;
        parsed()
    }
}

fn peer() -> ConnInfo {
    ConnInfo {
        peer: "10.0.0.7:5555".parse::<SocketAddr>().unwrap(),
        local: "127.0.0.1:8080".parse().unwrap(),
        tls: false,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn line_has_request_route_upstream_and_user_fields() {
    let buf = SharedBuf::default();
    let log = AccessLog::writer(Box::new(buf.clone()));
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(AccessLogLayer::new(log.clone()))
        .service_fn(|mut req: Request<()>| async move {
            // The router rewrites the URI later; the log keeps the original path.
            *req.uri_mut() = Uri::from_static("/rewritten");
            let mut res = Response::new(Full::new(Bytes::from_static(b"hello world")));
            res.extensions_mut().insert(RouteTag {
                route: "users".into(),
                service: "user_service".into(),
            });
            res.extensions_mut().insert(UpstreamInfo {
                addr: "127.0.0.1:8001".into(),
                instance: "user-service-1".into(),
                connect: Some(Duration::from_millis(2)),
                header: Duration::from_millis(4),
                attempts: 1,
            });
            res.extensions_mut().insert(Identity {
                user_id: "u-42".into(),
                ..Identity::default()
            });
            Ok::<_, Infallible>(res)
        });
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/users/42?x=1")
        .header("x-request-id", "req-abc")
        .body(())
        .unwrap();
    req.extensions_mut().insert(peer());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello world");

    let line = &buf.lines(1).await[0];
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], body.len());
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/api/v1/users/42");
    assert_eq!(line["request_id"], "req-abc");
    assert_eq!(line["client"], "10.0.0.7");
    assert_eq!(line["route"], "users");
    assert_eq!(line["service"], "user_service");
    assert_eq!(line["upstream"], "127.0.0.1:8001");
    assert_eq!(line["user_id"], "u-42");
    assert!((line["upstream_connect_time"].as_f64().unwrap() - 0.002).abs() < 1e-9);
    assert!((line["upstream_header_time"].as_f64().unwrap() - 0.004).abs() < 1e-9);
    assert!(line["upstream_response_time"].as_f64().unwrap() >= 0.0);
    assert!(line["request_time"].as_f64().unwrap() >= 0.0);
    let time = line["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert!(
        time.ends_with('Z') && time.len() == "2024-01-01T00:00:00.000Z".len(),
        "{time}"
    );
    assert_eq!(log.dropped(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn unrouted_answer_has_nulls_and_client_addr_wins() {
    let buf = SharedBuf::default();
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            buf.clone(),
        ))))
        .service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(res)
        });
    let mut req = Request::builder().uri("/nowhere").body(()).unwrap();
    req.extensions_mut().insert(peer());
    req.extensions_mut().insert(ClientAddr {
        ip: "203.0.113.9".parse::<IpAddr>().unwrap(),
        https: false,
    });
    let res = svc.oneshot(req).await.unwrap();
    // Dropping the body unread still writes the line.
    drop(res);
    let line = &buf.lines(1).await[0];
    assert_eq!(line["status"], 404);
    assert_eq!(line["bytes"], 0);
    assert_eq!(line["client"], "203.0.113.9");
    for k in [
        "route",
        "service",
        "upstream",
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_response_time",
        "user_id",
        "request_id",
    ] {
        assert!(line[k].is_null(), "{k}: {line}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trailers_pass_through_and_bytes_count_every_frame() {
    let buf = SharedBuf::default();
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            buf.clone(),
        ))))
        .service_fn(|_req: Request<()>| async {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let body = Frames(
                [
                    http_body::Frame::data(Bytes::from_static(b"abc")),
                    http_body::Frame::data(Bytes::from_static(b"defgh")),
                    http_body::Frame::trailers(trailers),
                ]
                .into(),
            );
            Ok::<_, Infallible>(Response::new(body))
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[..], b"abcdefgh");
    let line = &buf.lines(1).await[0];
    assert_eq!(line["bytes"], 8);
}

#[tokio::test(flavor = "current_thread")]
async fn request_dropped_before_answer_is_logged_as_499() {
    let buf = SharedBuf::default();
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            buf.clone(),
        ))))
        .service_fn(|_req: Request<()>| {
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
        });
    let fut = svc.oneshot(Request::builder().uri("/slow").body(()).unwrap());
    // Give up on it after a moment, as a client closing the connection would.
    assert!(tokio::time::timeout(Duration::from_millis(10), fut)
        .await
        .is_err());
    let line = &buf.lines(1).await[0];
    assert_eq!(line["status"], 499);
    assert_eq!(line["path"], "/slow");
}

#[tokio::test(flavor = "current_thread")]
async fn size_hint_and_end_stream_are_kept() {
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            std::io::sink(),
        ))))
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"12345"))))
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.body().size_hint().exact(), Some(5));
    assert!(!res.body().is_end_stream());
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            std::io::sink(),
        ))))
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert!(res.body().is_end_stream());
}

/// A body yielding prepared frames (data and trailers), like a gRPC answer.
struct Frames(std::collections::VecDeque<http_body::Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn route_and_service_come_from_route_metrics_without_a_route_tag() {
    // The gateway's router adds no RouteTag: each route's stack marks its answers with its
    // &'static RouteMetrics, and the log reads the names from there.
    let buf = SharedBuf::default();
    let log = AccessLog::writer(Box::new(buf.clone()));
    let route = gw_monitor::Metrics::global().route("orders", "order_service");
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(log))
        .service_fn(move |_req: Request<()>| async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            res.extensions_mut().insert(route);
            Ok::<_, Infallible>(res)
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    res.into_body().collect().await.unwrap();
    let line = &buf.lines(1).await[0];
    assert_eq!(line["route"], "orders");
    assert_eq!(line["service"], "order_service");
}

/// A writer that blocks until released, as a stalled pipe or disk would.
#[derive(Clone, Default)]
struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>, SharedBuf);

impl Stalled {
    fn release(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

impl Write for Stalled {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (open, cv) = &*self.0;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        drop(g);
        self.1.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 60 KiB paths against a stalled writer: fields are cut to 2 KiB, the queue stays under its
/// byte bound, and the lines that do not fit are dropped and counted, in the metric too.
#[tokio::test(flavor = "current_thread")]
async fn long_fields_are_cut_and_a_stalled_writer_drops_lines_within_the_byte_bound() {
    const BOUND: usize = 256 * 1024;
    let metrics = gw_monitor::Metrics::global();
    let w = Stalled::default();
    let log = AccessLog::writer_with_limit(Box::new(w.clone()), BOUND);
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(log.clone()))
        .service_fn(|_req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
    // Close to the longest URI `http` accepts (64 KiB).
    let long_path = format!("/{}", "p".repeat(60 * 1024));
    for _ in 0..4000 {
        let mut req = Request::get(long_path.as_str()).body(()).unwrap();
        req.extensions_mut().insert(peer());
        let res = svc.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
        assert!(
            log.queued_bytes() <= BOUND,
            "{} bytes queued",
            log.queued_bytes()
        );
    }
    let dropped = log.dropped();
    assert!(dropped > 3000, "dropped {dropped}");
    let text = metrics.render_prometheus();
    let counted = text
        .lines()
        .find_map(|l| l.strip_prefix("gateway_access_log_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped metric in:\n{text}"));
    assert!(counted.trim().parse::<f64>().unwrap() >= dropped as f64);

    w.release();
    let line = &w.1.lines(1).await[0];
    let path = line["path"].as_str().unwrap();
    assert_eq!(path.len(), gw_monitor::MAX_FIELD_BYTES);
    assert!(long_path.starts_with(path));
    assert_eq!(line["truncated"], true);
}

#[tokio::test(flavor = "current_thread")]
async fn short_fields_are_not_marked_truncated() {
    let buf = SharedBuf::default();
    let svc = ServiceBuilder::new()
        .layer(AccessLogLayer::new(AccessLog::writer(Box::new(
            buf.clone(),
        ))))
        .service_fn(|_req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
    let mut req = Request::get("/short").body(()).unwrap();
    req.extensions_mut().insert(peer());
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let line = &buf.lines(1).await[0];
    assert_eq!(line["path"], "/short");
    assert!(line.get("truncated").is_none(), "{line}");
}
