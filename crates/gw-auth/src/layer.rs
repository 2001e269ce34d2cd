//! [`AuthLayer`] / [`Auth`]: the tower middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gw_core::headers::{X_USER_ID, X_USER_ROLE};
use gw_core::{error_response, Body, ClientAddr, HttpError, Identity, RequestId};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::authenticator::{unix_now, Authenticator, Refusal};
use crate::config::{AuthMethod, RoutePolicy};
use crate::error::{AuthError, API_KEY_CHALLENGE};
use crate::store::BoxFuture;

/// Authentication and authorization for one route (see the crate docs).
///
/// Order: strip client `X-User-*` headers → `require_https` (403) → authentication (401) →
/// authorization (403). Without `auth_required` only the first two run: no token parsing, no
/// store access.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    policy: Arc<RoutePolicy>,
}

impl AuthLayer {
    /// A layer enforcing `policy` with the shared `auth`.
    pub fn new(auth: Arc<Authenticator>, policy: RoutePolicy) -> Self {
        Self {
            auth,
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
    policy: Arc<RoutePolicy>,
}

/// Removes every `X-User-*` header a client sent.
fn strip_user_headers(headers: &mut HeaderMap) {
    const P: &[u8] = b"x-user-";
    let is_user = |n: &http::HeaderName| {
        let b = n.as_str().as_bytes();
        b.len() >= P.len() && b[..P.len()].eq_ignore_ascii_case(P)
    };
    if headers.keys().any(is_user) {
        let names: Vec<_> = headers.keys().filter(|n| is_user(n)).cloned().collect();
        for n in names {
            headers.remove(n);
        }
    }
}

fn is_https<B>(req: &Request<B>) -> bool {
    ClientAddr::of(req.extensions()).is_some_and(|c| c.https)
}

fn refuse(ext: &http::Extensions, err: &AuthError, method: AuthMethod) -> Response<Body> {
    let mut res = error_response(err.status(), err.message(), ext.get::<RequestId>());
    if let Some(ch) = err.challenge() {
        let h = res.headers_mut();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(ch));
        if method == AuthMethod::JwtOrApiKey && *err == AuthError::MissingAuthorization {
            h.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(API_KEY_CHALLENGE),
            );
        }
    }
    res
}

fn set_identity_headers(h: &mut HeaderMap, id: &Identity) {
    match HeaderValue::from_str(&id.user_id) {
        Ok(v) => {
            h.insert(X_USER_ID, v);
        }
        Err(_) => tracing::warn!("user id is not a valid header value; X-User-ID not set"),
    }
    if let Some(v) = id
        .role
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        h.insert(X_USER_ROLE, v);
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        strip_user_headers(req.headers_mut());
        if self.policy.security.require_https && !is_https(&req) {
            let res = refuse(
                req.extensions(),
                &AuthError::HttpsRequired,
                self.policy.method,
            );
            return ResponseFuture::ready(res);
        }
        if !self.policy.auth_required {
            return ResponseFuture {
                kind: Kind::Inner {
                    fut: self.inner.call(req),
                },
            };
        }
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let policy = self.policy.clone();
        let (mut parts, body) = req.into_parts();
        // Written into its box in place: the check's state is large.
        let fut = gw_core::pin_boxed(|| async move {
            match auth.check(&parts, &policy, unix_now()).await {
                Ok(identity) => {
                    set_identity_headers(&mut parts.headers, &identity);
                    parts.extensions.insert(identity.clone());
                    let mut res = inner.call(Request::from_parts(parts, body)).await?;
                    res.extensions_mut().insert(identity);
                    Ok(res)
                }
                Err(Refusal { error, identity }) => {
                    let mut res = refuse(&parts.extensions, &error, policy.method);
                    if let Some(id) = identity {
                        res.extensions_mut().insert(id);
                    }
                    Ok(res)
                }
            }
        });
        ResponseFuture {
            kind: Kind::Auth { fut },
        }
    }
}

pin_project! {
    /// Response future of [`Auth`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Ready { res: Option<Response<Body>> },
        Inner { #[pin] fut: F },
        Auth { fut: BoxFuture<'static, Result<Response<Body>, E>> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn ready(res: Response<Body>) -> Self {
        Self {
            kind: Kind::Ready { res: Some(res) },
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match &self.kind {
            Kind::Ready { .. } => "Ready",
            Kind::Inner { .. } => "Inner",
            Kind::Auth { .. } => "Auth",
        };
        f.debug_struct("ResponseFuture").field("kind", &k).finish()
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { res } => match res.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Auth { fut } => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_any_case_user_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", "evil".parse().unwrap());
        h.insert("X-User-Role", "admin".parse().unwrap());
        h.insert("x-user", "keep".parse().unwrap());
        h.insert("x-other", "keep".parse().unwrap());
        strip_user_headers(&mut h);
        assert!(h.get("x-user-id").is_none());
        assert!(h.get("x-user-role").is_none());
        assert_eq!(h.len(), 2);
    }
}
