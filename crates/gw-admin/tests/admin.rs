//! The admin API through its Router: each endpoint, the errors of docs/admin-api.md and access control.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::Router;
use gw_admin::model::{Health, Metrics, User};
use gw_admin::{
    admin_router, AccessControl, AdminError, ControlPlane, RouteChange, RouteDocument, UserDocument,
};
use gw_core::ConnInfo;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A route table and user records in mutexes; validation as the gateway's, reduced to the
/// required fields.
#[derive(Debug, Default)]
struct TestControl {
    routes: Mutex<Vec<Value>>,
    users: Mutex<BTreeMap<String, User>>,
}

impl TestControl {
    fn with(routes: Vec<Value>) -> Arc<Self> {
        Arc::new(Self {
            routes: Mutex::new(routes),
            ..Self::default()
        })
    }

    fn users(&self) -> BTreeMap<String, User> {
        self.users.lock().unwrap().clone()
    }

    fn snapshot(&self) -> Vec<Value> {
        self.routes.lock().unwrap().clone()
    }
}

/// A route of the table as the admin API passes it.
fn doc(route: Value) -> RouteDocument {
    serde_json::from_value(route).expect("a route object")
}

fn validate(route: &Value) -> Result<String, String> {
    let id = route["id"].as_str().ok_or("id: must be a string")?;
    route["service"]
        .as_str()
        .ok_or("service: must be a string")?;
    if !route["pattern"].is_string() && !route["path"].is_string() {
        return Err("one of pattern or path is required".into());
    }
    Ok(id.to_owned())
}

impl ControlPlane for TestControl {
    async fn list_routes(&self) -> Vec<RouteDocument> {
        self.snapshot().into_iter().map(doc).collect()
    }

    async fn get_route(&self, id: &str) -> Option<RouteDocument> {
        self.snapshot().into_iter().find(|r| r["id"] == id).map(doc)
    }

    async fn put_route(&self, route: RouteDocument) -> Result<RouteChange, AdminError> {
        let route = route.into_value();
        let id = validate(&route).map_err(AdminError::bad_request)?;
        let mut routes = self.routes.lock().unwrap();
        let created = match routes.iter_mut().find(|r| r["id"] == id.as_str()) {
            Some(slot) => {
                *slot = route.clone();
                false
            }
            None => {
                routes.push(route.clone());
                true
            }
        };
        Ok(RouteChange {
            route: doc(route),
            created,
        })
    }

    async fn delete_route(&self, id: &str) -> Result<bool, AdminError> {
        let mut routes = self.routes.lock().unwrap();
        let before = routes.len();
        routes.retain(|r| r["id"] != id);
        Ok(routes.len() != before)
    }

    fn metrics_json(&self) -> Metrics {
        let metrics = json!({"timestamp": 1, "total_requests": 7, "status_codes": {"200": 7}, "services": {}});
        serde_json::from_value(metrics).unwrap()
    }

    fn metrics_prometheus(&self) -> String {
        "# TYPE gateway_requests_in_flight gauge\ngateway_requests_in_flight 0\n".into()
    }

    async fn health(&self) -> Health {
        let health = json!({"status": "healthy", "timestamp": 1, "version": "0.1.0", "services": {}, "circuit_breakers": {}});
        serde_json::from_value(health).unwrap()
    }

    /// Like the gateway's: every key but these is unknown (`user_id` included).
    async fn put_user(&self, id: &str, user: UserDocument) -> Result<User, AdminError> {
        const KEYS: [&str; 5] = ["username", "email", "role", "status", "permissions"];
        if let Some(key) = user.0.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(AdminError::bad_request(format!(
                "Invalid user: unknown field `{key}`"
            )));
        }
        let input = user.parse()?;
        let record = User {
            user_id: id.to_owned(),
            username: input.username,
            email: input.email,
            role: input.role,
            status: input.status.unwrap_or_else(|| "active".into()),
            permissions: input.permissions,
        };
        self.users
            .lock()
            .unwrap()
            .insert(id.to_owned(), record.clone());
        Ok(record)
    }

    async fn get_user(&self, id: &str) -> Result<User, AdminError> {
        self.users
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| AdminError::not_found("User not found"))
    }
}

const TOKEN: &str = "change-me";

fn users_route() -> Value {
    json!({"id": "users", "service": "user-service", "pattern": "^/api/users"})
}

fn open_access() -> AccessControl {
    AccessControl {
        allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        token: None,
        hosts: None,
    }
}

fn token_access() -> AccessControl {
    AccessControl {
        token: Some(TOKEN.into()),
        ..open_access()
    }
}

fn setup(access: AccessControl) -> (Arc<TestControl>, Router) {
    let control = TestControl::with(vec![users_route()]);
    let router = admin_router(control.clone(), access);
    (control, router)
}

/// A request from `peer` (`None`: no ConnInfo at all).
fn request(method: Method, uri: &str, body: &str, peer: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnInfo {
            peer,
            local: "127.0.0.1:9901".parse().unwrap(),
            tls: false,
        });
    }
    req
}

fn local(method: Method, uri: &str, body: &str) -> Request<Body> {
    request(method, uri, body, Some("127.0.0.1:50000"))
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn error(&self) -> String {
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        self.json()["error"].as_str().expect("an error").to_owned()
    }
}

async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn list_and_get_routes() {
    let (_, router) = setup(open_access());

    let res = send(&router, local(Method::GET, "/admin/routes", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.json(), json!({"routes": [users_route()]}));

    let res = send(&router, local(Method::GET, "/admin/routes/users", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.json(), json!({"route": users_route()}));

    let res = send(&router, local(Method::GET, "/admin/routes/nope", "")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.error(), "Route not found");
}

#[tokio::test]
async fn post_adds_then_updates() {
    let (control, router) = setup(open_access());

    let orders = json!({"id": "orders", "service": "order-service", "path": "/api/orders"});
    let res = send(
        &router,
        local(Method::POST, "/admin/routes", &orders.to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        res.json(),
        json!({"message": "Route added", "route": orders})
    );
    assert_eq!(control.snapshot().len(), 2);

    let changed = json!({"id": "users", "service": "user-service-v2", "pattern": "^/api/users"});
    let res = send(
        &router,
        local(Method::POST, "/admin/routes", &changed.to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(
        res.json(),
        json!({"message": "Route updated", "route": changed})
    );
    assert_eq!(control.snapshot(), vec![changed, orders]);
}

#[tokio::test]
async fn post_invalid_json() {
    let (control, router) = setup(open_access());
    for body in ["{not json", "", "{\"id\": \"x\""] {
        let res = send(&router, local(Method::POST, "/admin/routes", body)).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(res.error(), "Invalid JSON", "{body:?}");
    }
    assert_eq!(control.snapshot(), vec![users_route()]);
}

#[tokio::test]
async fn post_invalid_route_leaves_table_unchanged() {
    let (control, router) = setup(open_access());

    let cases = [
        (
            json!({"service": "s", "path": "/x"}),
            "Invalid route configuration: id: must be a string",
        ),
        (
            json!({"id": "x", "path": "/x"}),
            "Invalid route configuration: service: must be a string",
        ),
        (
            json!({"id": "users", "service": "s"}),
            "Invalid route configuration: one of pattern or path is required",
        ),
        (
            json!(["not", "an", "object"]),
            "Invalid route configuration: a route must be a JSON object",
        ),
        (
            json!("users"),
            "Invalid route configuration: a route must be a JSON object",
        ),
    ];
    for (body, message) in cases {
        let res = send(
            &router,
            local(Method::POST, "/admin/routes", &body.to_string()),
        )
        .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.error(), message);
    }
    assert_eq!(control.snapshot(), vec![users_route()]);
}

#[tokio::test]
async fn delete_then_not_found() {
    let (control, router) = setup(open_access());

    let res = send(&router, local(Method::DELETE, "/admin/routes/users", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.json(), json!({"message": "Route removed"}));
    assert!(control.snapshot().is_empty());

    let res = send(&router, local(Method::DELETE, "/admin/routes/users", "")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.error(), "Route not found");

    let res = send(&router, local(Method::GET, "/admin/routes/users", "")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.error(), "Route not found");
}

#[tokio::test]
async fn metrics_and_health() {
    let (control, router) = setup(open_access());

    let res = send(&router, local(Method::GET, "/admin/metrics", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.json(), json!({"metrics": control.metrics_json()}));

    for path in ["/admin/metrics/prometheus", "/metrics"] {
        let res = send(&router, local(Method::GET, path, "")).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(
            res.headers[header::CONTENT_TYPE],
            "text/plain; version=0.0.4",
            "{path}"
        );
        assert_eq!(res.text, control.metrics_prometheus(), "{path}");
    }

    let res = send(&router, local(Method::GET, "/admin/health", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.json(), json!(control.health().await));
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let (control, router) = setup(open_access());

    for path in ["/", "/admin", "/admin/nothing", "/admin/routes/users/extra"] {
        let res = send(&router, local(Method::GET, path, "")).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.error(), "Endpoint not found", "{path}");
    }

    let res = send(&router, local(Method::DELETE, "/admin/routes", "")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.error(), "Method not allowed");
    let allow = res.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(control.snapshot(), vec![users_route()]);

    let res = send(&router, local(Method::PUT, "/admin/routes/users", "{}")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.error(), "Method not allowed");
    let allow = res.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");

    let res = send(&router, local(Method::POST, "/metrics", "")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.error(), "Method not allowed");
}

#[tokio::test]
async fn outside_allow_is_forbidden_and_changes_nothing() {
    let (control, router) = setup(token_access());
    let outsider = Some("10.1.2.3:40000");
    let bearer = format!("Bearer {TOKEN}");

    let cases = [
        (Method::GET, "/admin/routes", String::new()),
        (Method::GET, "/metrics", String::new()),
        (Method::GET, "/admin/unknown", String::new()),
        (Method::PATCH, "/admin/routes", String::new()),
        (
            Method::POST,
            "/admin/routes",
            json!({"id": "evil", "service": "s", "path": "/"}).to_string(),
        ),
        (Method::DELETE, "/admin/routes/users", String::new()),
    ];
    for (method, path, body) in cases {
        // Even with the right token: the address is checked first.
        let mut req = request(method.clone(), path, &body, outsider);
        req.headers_mut()
            .insert(header::AUTHORIZATION, bearer.parse().unwrap());
        let res = send(&router, req).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(res.error(), "Access denied");
    }
    assert_eq!(control.snapshot(), vec![users_route()]);

    // No ConnInfo: outside.
    let res = send(&router, request(Method::GET, "/admin/routes", "", None)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.error(), "Access denied");

    // An empty allow list allows nobody.
    let nobody = admin_router(control.clone(), AccessControl::default());
    let res = send(&nobody, local(Method::GET, "/admin/routes", "")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn token_is_required_when_set() {
    let (control, router) = setup(token_access());

    let with = |method: Method, path: &str, body: &str, auth: Option<&str>| {
        let mut req = local(method, path, body);
        if let Some(auth) = auth {
            req.headers_mut()
                .insert(header::AUTHORIZATION, auth.parse().unwrap());
        }
        req
    };
    let post = json!({"id": "evil", "service": "s", "path": "/"}).to_string();

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer change-m"),
        Some("Basic change-me"),
        Some("change-me"),
    ] {
        for (method, path, body) in [
            (Method::GET, "/admin/routes", ""),
            (Method::GET, "/nowhere", ""),
            (Method::POST, "/admin/routes", post.as_str()),
            (Method::DELETE, "/admin/routes/users", ""),
        ] {
            let res = send(&router, with(method.clone(), path, body, auth)).await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(res.error(), "Unauthorized");
            assert_eq!(res.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
    assert_eq!(control.snapshot(), vec![users_route()]);

    let right = Some("Bearer change-me");
    let res = send(&router, with(Method::GET, "/admin/routes", "", right)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"routes": [users_route()]}));

    let res = send(&router, with(Method::POST, "/admin/routes", &post, right)).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(control.snapshot().len(), 2);
}

#[tokio::test]
async fn ipv4_mapped_and_ipv6_peers() {
    let (_, router) = setup(open_access());

    let res = send(
        &router,
        request(
            Method::GET,
            "/admin/health",
            "",
            Some("[::ffff:127.0.0.1]:40000"),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);

    let res = send(
        &router,
        request(Method::GET, "/admin/health", "", Some("[::1]:40000")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);

    let res = send(
        &router,
        request(
            Method::GET,
            "/admin/health",
            "",
            Some("[::ffff:10.0.0.1]:40000"),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.error(), "Access denied");
}

#[tokio::test]
async fn errors_carry_the_request_id_when_set() {
    let (_, router) = setup(open_access());
    let mut req = local(Method::GET, "/admin/routes/nope", "");
    req.extensions_mut()
        .insert(gw_core::RequestId::new(http::HeaderValue::from_static(
            "r-42",
        )));
    let res = send(&router, req).await;
    assert_eq!(
        res.json(),
        json!({"error": "Route not found", "request_id": "r-42"})
    );
}

#[tokio::test]
async fn a_user_record_as_read_can_be_written_back() {
    let (control, router) = setup(open_access());
    let record = json!({"username": "ann", "email": "a@example.com", "role": "editor", "status": "active", "permissions": ["read"]});
    let res = send(
        &router,
        local(Method::PUT, "/admin/users/300", &record.to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    let got = send(&router, local(Method::GET, "/admin/users/300", "")).await;
    assert_eq!(got.status, StatusCode::OK);
    let user = got.json()["user"].clone();
    assert_eq!(user["user_id"], "300");

    let res = send(
        &router,
        local(Method::PUT, "/admin/users/300", &user.to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json(), json!({ "user": user }));
    let again = send(&router, local(Method::GET, "/admin/users/300", "")).await;
    assert_eq!(again.json(), got.json());
    assert_eq!(control.users().len(), 1);
}

#[tokio::test]
async fn a_user_id_other_than_the_paths_is_refused_and_changes_nothing() {
    let (control, router) = setup(open_access());
    let record = json!({"user_id": "300", "role": "editor", "status": "active", "permissions": []});
    let res = send(
        &router,
        local(Method::PUT, "/admin/users/300", &record.to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let before = control.users();

    let cases = [
        (
            "/admin/users/300",
            json!({"user_id": "301", "role": "admin"}),
            r#"Invalid user: user_id "301" does not match the path's id "300""#,
        ),
        (
            "/admin/users/301",
            record.clone(),
            r#"Invalid user: user_id "300" does not match the path's id "301""#,
        ),
        (
            "/admin/users/300",
            json!({"user_id": 300}),
            r#"Invalid user: user_id 300 does not match the path's id "300""#,
        ),
        (
            "/admin/users/300",
            json!({"user_id": null}),
            r#"Invalid user: user_id null does not match the path's id "300""#,
        ),
    ];
    for (path, body, want) in cases {
        let res = send(&router, local(Method::PUT, path, &body.to_string())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(res.error(), want);
        assert_eq!(control.users(), before, "{path} {body} changed the users");
    }

    // Every other unknown key is still the control plane's to refuse.
    let res = send(
        &router,
        local(
            Method::PUT,
            "/admin/users/300",
            r#"{"user_id": "300", "nick": "a"}"#,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.error(), "Invalid user: unknown field `nick`");
    assert_eq!(control.users(), before);
}
