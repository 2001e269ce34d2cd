//! `RequestIdLayer`: keep a valid client `X-Request-ID` or make one, and send it both ways.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use gw_core::headers::{X_GATEWAY, X_REQUEST_ID};
use gw_core::{RequestId, GATEWAY_NAME};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// Gives every request a [`RequestId`] (see the crate docs).
///
/// The client's `X-Request-ID` is kept when [`RequestId::is_valid`] accepts it, else a new id of
/// 32 lowercase hex characters is generated. The id goes into the request extensions and the
/// request's `x-request-id` header (for the upstream), and onto the response together with
/// `x-gateway`.
///
/// Why not tower-http's `SetRequestIdLayer`: it keeps any client value unchecked and stores its
/// own extension type; the gateway needs the id rules of docs/http-answers.md and [`gw_core::RequestId`].
#[derive(Clone, Debug, Default)]
pub struct RequestIdLayer;

impl RequestIdLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> SetRequestId<S> {
        SetRequestId { inner }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S> SetRequestId<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// A fresh id: 32 lowercase hex characters from the thread-local `fastrand` generator
/// (no syscall, no lock).
pub(crate) fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    // Byte by byte: shifting a u128 per digit costs several instructions each.
    for (pair, byte) in buf
        .chunks_exact_mut(2)
        .zip(fastrand::u128(..).to_be_bytes())
    {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    // Owned bytes: each clone (request header, extension, answer header) is a reference
    // count, where copied bytes are moved to a shared allocation at the first clone.
    // Hex digits are always a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn pick(req_header: Option<&HeaderValue>) -> HeaderValue {
    match req_header {
        Some(v) if RequestId::is_valid(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

impl<S, B, ResBody> Service<Request<B>> for SetRequestId<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = pick(req.headers().get(X_REQUEST_ID));
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        req.extensions_mut().insert(RequestId::new(id.clone()));
        RequestIdFuture {
            inner: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project! {
    /// Response future of [`SetRequestId`].
    #[derive(Debug)]
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let headers = res.headers_mut();
        if let Some(id) = this.id.take() {
            headers.insert(X_REQUEST_ID, id);
        }
        headers.insert(X_GATEWAY, HeaderValue::from_static(GATEWAY_NAME));
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_and_valid() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 32);
        assert!(a
            .as_bytes()
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)));
        assert!(RequestId::is_valid(a.as_bytes()));
        assert_ne!(a, b);
    }

    #[test]
    fn pick_keeps_valid_and_replaces_invalid() {
        let ok = HeaderValue::from_static("abc-123");
        assert_eq!(pick(Some(&ok)), ok);
        let bad = HeaderValue::from_static("has space");
        assert_ne!(pick(Some(&bad)), bad);
        assert_eq!(pick(None).len(), 32);
    }
}
