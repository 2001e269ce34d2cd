//! gw-core's error model in a plain axum app: a handler's error enum implements
//! [`HttpError`], and [`error_into_response`] turns it into the gateway's JSON answer
//! `{"error": …, "request_id": …}` with a message from [`messages`].
//!
//! `cargo run -p gw-core --example json_errors`

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gw_core::{error_into_response, messages, Body, HttpError, RequestId};
use http::{HeaderValue, Request, StatusCode};
use tower::ServiceExt;

/// Why a lookup failed; each variant is exactly one answer.
#[derive(Debug)]
enum LookupError {
    Missing,
    Busy,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LookupError {}

impl HttpError for LookupError {
    fn status(&self) -> StatusCode {
        match self {
            LookupError::Missing => StatusCode::NOT_FOUND,
            LookupError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn message(&self) -> &str {
        match self {
            LookupError::Missing => messages::ROUTE_NOT_FOUND,
            LookupError::Busy => messages::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        let id = RequestId::new(HeaderValue::from_static("example-1"));
        error_into_response(&self, Some(&id))
    }
}

async fn item(Path(id): Path<u32>) -> Result<String, LookupError> {
    match id {
        1 => Ok("item 1".to_owned()),
        2 => Err(LookupError::Busy),
        _ => Err(LookupError::Missing),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Router::new().route("/items/{id}", get(item));
    for target in ["/items/1", "/items/2", "/items/3"] {
        let req = Request::get(target).body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        println!(
            "{target:<10} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}
