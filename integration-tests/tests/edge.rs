//! The edge: the request the router judges is the request the upstream gets. Written from
//! the bytes a client sends (raw sockets), on the gateway's own HTTP/1.1 loop, on hyper's
//! HTTP/1.1 server (after a request with a body hands the connection over) and on h2c.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use integration_tests::raw::{read_response, RawResponse};
use integration_tests::{TestGateway, Upstream};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECRET: &str = "edge-test-secret-0123456789";

/// A public route and an authenticated one on the same service, and a catch-all-free table
/// so that a path outside both is 404.
async fn gateway(up: &Upstream, server: &str) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\nuser_lookup = false\n"
        ))
        .service("s", &[up])
        .route("id = \"users\"\npath = \"/api/v1/users\"\nservice = \"s\"")
        .route("id = \"public\"\npath = \"/public\"\nservice = \"s\"")
        .route("id = \"private\"\npath = \"/private\"\nservice = \"s\"\nauth_required = true")
        .start()
        .await
}

/// One answer read off a raw connection.
type Answer = RawResponse;

/// What these tests read off an answer beyond [`RawResponse`]'s own accessors.
trait AnswerExt {
    /// The echo upstream's view of the request.
    fn echo(&self) -> Value;
    /// The gateway's JSON error: status and message, with a request id.
    fn error(&self) -> (u16, String);
}

impl AnswerExt for Answer {
    fn echo(&self) -> Value {
        assert_eq!(
            self.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    fn error(&self) -> (u16, String) {
        let body = self.json();
        assert!(body["request_id"].is_string(), "{body}");
        (
            self.status,
            body["error"].as_str().unwrap_or("").to_string(),
        )
    }
}

/// Writes `raw` on a new connection, then reads the first answer.
async fn send(gw: &TestGateway, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    stream.write_all(raw).await.unwrap();
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    read_response(stream, Duration::from_secs(10)).await
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn dot_segments_are_resolved_before_routing() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;

    // Matched `/api/v1/users` before, and the upstream resolved it to `/admin`.
    let a = send(&gw, &get("/api/v1/users/../../admin")).await;
    assert_eq!(a.error(), (404, "Route not found".into()));

    // The public route must not lead into the authenticated one.
    for target in [
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "/public/%2E%2E/private/x",
        "/public/./../private/x",
        "/public//..//private/x",
    ] {
        let a = send(&gw, &get(target)).await;
        assert_eq!(a.status, 401, "{target}: {:?}", a.json());
    }

    // What the upstream gets is the canonical path.
    let a = send(&gw, &get("/api/v1/users/./1/../2/%7Ebob?x=/../y")).await;
    let echo = a.echo();
    assert_eq!(echo["path"], "/api/v1/users/2/~bob");
    assert_eq!(echo["query"], "x=/../y");
    assert_eq!(up.hits(), 1, "only that request reached the upstream");
}

#[tokio::test]
async fn paths_that_climb_or_hide_separators_are_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    for target in [
        "/api/v1/users/../../../../etc/passwd",
        "/%2e%2e/api/v1/users",
        "/./../public",
        "/public/..%2Fprivate/x",
        "/public/..%5Cprivate/x",
        "/public/..;/private/x",
        "/public/%zz",
    ] {
        let a = send(&gw, &get(target)).await;
        assert_eq!(a.error(), (400, "Invalid request path".into()), "{target}");
    }
    // A raw backslash is not a valid request-target byte for the parsers: refused too.
    let a = send(&gw, &get("/public/..\\..\\private/x")).await;
    assert_eq!(a.status, 400, "backslashes");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn escaped_slashes_can_be_kept_as_data() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "escaped_slashes = \"keep\"\nmerge_slashes = false").await;
    let a = send(&gw, &get("/public/a%2fb//c")).await;
    assert_eq!(a.echo()["path"], "/public/a%2Fb//c");
}

#[tokio::test]
async fn host_must_be_one_valid_field() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let cases: [(&[u8], &str); 5] = [
        (b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n", "Missing Host header"),
        (
            b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            "Multiple Host headers",
        ),
        (
            b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n",
            "Multiple Host headers",
        ),
        (
            b"GET /public/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            "Invalid Host header",
        ),
        (
            b"GET http://other.test/public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            "Host header does not match the request target",
        ),
    ];
    for (raw, message) in cases {
        let a = send(&gw, raw).await;
        assert_eq!(
            a.error(),
            (400, message.into()),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(up.hits(), 0);

    // Absolute-form that agrees with Host goes upstream as origin-form with that host.
    let a = send(
        &gw,
        b"GET http://gw.test/public/../public/x?q=1 HTTP/1.1\r\nHost: GW.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let echo = a.echo();
    assert_eq!(echo["path"], "/public/x");
    assert_eq!(echo["headers"]["x-forwarded-host"], "GW.test");

    // HTTP/1.0 may come without Host.
    let a = send(&gw, b"GET /public/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn connect_is_refused() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let a = send(
        &gw,
        b"CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n",
    )
    .await;
    assert_eq!(a.error(), (405, "Method not allowed".into()));
    assert!(a
        .header_str("allow")
        .is_some_and(|v| !v.contains("CONNECT")));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn underscore_twins_of_identity_headers_never_reach_the_upstream() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "42", "role": "user", "iss": "api-gateway", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let raw = format!(
        "GET /private/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\
         X_User_ID: 3\r\nX_User_Role: admin\r\nX-User_Id: 4\r\nX_Forwarded_For: 10.9.9.9\r\n\
         X_Request_ID: forged\r\nMy_Header: v\r\nConnection: close\r\n\r\n"
    );
    let echo = send(&gw, raw.as_bytes()).await.echo();
    let headers = echo["headers"].as_object().unwrap();
    let names: Vec<&String> = headers.keys().filter(|n| n.contains('_')).collect();
    assert!(
        names.is_empty(),
        "underscore names reached the upstream: {names:?}"
    );
    assert_eq!(headers["x-user-id"], "42");
    assert_eq!(headers["x-user-role"], "user");
}

#[tokio::test]
async fn underscore_names_can_be_kept_or_refused() {
    let up = Upstream::echo("a").await;
    let keep = gateway(&up, "underscores_in_headers = \"keep\"").await;
    let raw = b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nMy_Header: v\r\nX_User_ID: 3\r\nConnection: close\r\n\r\n";
    let echo = send(&keep, raw).await.echo();
    assert_eq!(echo["headers"]["my_header"], "v");
    assert!(
        echo["headers"].get("x_user_id").is_none(),
        "an owned twin goes anyway"
    );

    let reject = gateway(&up, "underscores_in_headers = \"reject\"").await;
    let a = send(&reject, raw).await;
    assert_eq!(a.error(), (400, "Invalid header name".into()));
}

#[tokio::test]
async fn head_limits_answer_414_and_431() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;

    let long = format!("/public/{}", "a".repeat(16 * 1024));
    let a = send(&gw, &get(&long)).await;
    assert_eq!(a.error(), (414, "Request URI too long".into()));

    let mut big = String::from("GET /public/x HTTP/1.1\r\nHost: gw.test\r\n");
    for i in 0..40 {
        big.push_str(&format!("x-filler-{i}: {}\r\n", "v".repeat(1000)));
    }
    big.push_str("\r\n");
    let a = send(&gw, big.as_bytes()).await;
    assert_eq!(a.error(), (431, "Request header fields too large".into()));

    let mut many = String::from("GET /public/x HTTP/1.1\r\nHost: gw.test\r\n");
    for i in 0..100 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let a = send(&gw, many.as_bytes()).await;
    assert_eq!(a.error(), (431, "Request header fields too large".into()));

    // Within the limits: served.
    let fine = format!("/public/{}", "a".repeat(7 * 1024));
    assert_eq!(send(&gw, &get(&fine)).await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn limits_are_configurable() {
    let up = Upstream::echo("a").await;
    let gw = gateway(
        &up,
        "max_request_line_bytes = 20000\nmax_header_bytes = 65536\nmax_headers = 50",
    )
    .await;
    let long = format!("/public/{}", "a".repeat(16 * 1024));
    assert_eq!(send(&gw, &get(&long)).await.status, 200);
    let fields = |n: usize| {
        let mut raw =
            String::from("GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n");
        for i in 0..n {
            raw.push_str(&format!("x-h{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        raw
    };
    assert_eq!(send(&gw, fields(45).as_bytes()).await.status, 200);
    let a = send(&gw, fields(60).as_bytes()).await;
    assert_eq!(a.error(), (431, "Request header fields too large".into()));
}

/// After a request with a body, the connection is hyper's: the same rules hold there.
#[tokio::test]
async fn the_same_rules_hold_after_the_hand_off_to_hyper() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let post = b"POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2\r\n\r\nhi";
    stream.write_all(post).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);

    let checks: [(&[u8], u16); 4] = [
        (
            b"GET /public/../private/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
            401,
        ),
        (b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (
            b"GET /public/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
            400,
        ),
        (
            b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nX_User_ID: 3\r\n\r\n",
            200,
        ),
    ];
    for (raw, status) in checks {
        stream.write_all(raw).await.unwrap();
        let a = read_answer(&mut stream).await;
        assert_eq!(a.status, status, "{}", String::from_utf8_lossy(raw));
        if status == 200 {
            assert!(a.echo()["headers"].get("x_user_id").is_none());
        }
    }
    let long = format!(
        "GET /public/{} HTTP/1.1\r\nHost: gw.test\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    stream.write_all(long.as_bytes()).await.unwrap();
    let a = read_answer(&mut stream).await;
    assert_eq!(a.error(), (414, "Request URI too long".into()));
}

#[tokio::test]
async fn http2_authority_and_host_must_agree() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let tcp = TcpStream::connect(gw.gateway.proxy_addr()).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut send = |target: &str, host: Option<&str>| {
        let mut req = http::Request::get(target);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        h2.send_request(req.body(Empty::<Bytes>::new()).unwrap())
    };

    let res = send("http://gw.test/public/x", Some("other.test"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["error"],
        "Host header does not match the request target"
    );

    let res = send("http://gw.test/public/../private/x", None)
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "dot segments are resolved on HTTP/2 too");

    let res = send("http://gw.test/public/./a/../x", Some("gw.test"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["path"], "/public/x");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn the_admin_listener_answers_over_long_heads_with_414() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.gateway.admin_addr()).await.unwrap();
    let raw = format!(
        "GET /admin/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "a".repeat(16 * 1024),
        gw.gateway.admin_addr()
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let a = read_answer(&mut stream).await;
    assert_eq!(a.status, 414);
    assert_eq!(a.json()["error"], "Request URI too long");
}
