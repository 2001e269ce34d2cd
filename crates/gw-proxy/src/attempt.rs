//! One attempt: a request's exchange with one instance. It picks a connection (the client's
//! pool), sends the request and waits for the answer's head, each phase within its timeout,
//! and tells what came of it: an answer, or an error classified for the retry policy and
//! the answer (whether another attempt may do better, whose fault it was).

use std::future::Future;

use gw_core::UpstreamInfo;
use http::header::HeaderMap;
use http::uri::{self, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};

use crate::body::{InFlight, UpstreamBody};
use crate::client::{Deadlines, HttpClient, Outgoing, SendError};
use crate::fields::AddedFields;
use crate::h1::{H1Error, H1Head};
use crate::payload::Payload;
use crate::retry::Ending;
use crate::upload::{BodyLimitExceeded, ClientBodyError, ReqBody};
use crate::upstream::Endpoint;
use crate::{ProxyError, Timeouts};

/// A request's exchanges with its service's instances: what every attempt sends, and how.
/// Only borrows (the request's parts stay where they are, and nothing here needs dropping).
pub(crate) struct Exchange<'a> {
    pub(crate) client: &'a HttpClient,
    pub(crate) timeouts: &'a Timeouts,
    /// Count the requests in flight per instance (`least_conn`).
    pub(crate) count_in_flight: bool,
    pub(crate) method: &'a Method,
    /// The request target, origin-form.
    pub(crate) target: &'a PathAndQuery,
    /// The request's fields; over HTTP/1.1 followed by `fields`.
    pub(crate) headers: &'a mut HeaderMap,
    pub(crate) fields: &'a AddedFields,
    pub(crate) payload: &'a mut Payload,
}

/// How an attempt that got no answer failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// In a way another instance may not (refused or reset connection, connect timeout,
    /// malformed answer): another attempt may do better.
    Retryable(ProxyError),
    /// For good (a send or read timeout, the body over the limit); the answer names the
    /// instance.
    Final(ProxyError),
    /// The client's fault (its body could not be read): never retried, and the answer does
    /// not name the instance, so the outlier detector hears nothing of it.
    Client(ProxyError),
}

impl Failure {
    /// How the attempt ended, for the retry policy.
    #[inline]
    pub(crate) fn ending(&self) -> Ending {
        match self {
            Failure::Retryable(_) => Ending::Failed,
            Failure::Final(_) | Failure::Client(_) => Ending::Final,
        }
    }

    /// The error.
    #[inline]
    pub(crate) fn into_error(self) -> ProxyError {
        match self {
            Failure::Retryable(e) | Failure::Final(e) | Failure::Client(e) => e,
        }
    }

    /// The request's result when no retry follows: the error, and the instance named unless
    /// the client was at fault.
    #[cold]
    pub(crate) fn settle<T>(
        self,
        info: UpstreamInfo,
    ) -> (Result<T, ProxyError>, Option<UpstreamInfo>) {
        match self {
            Failure::Retryable(e) | Failure::Final(e) => (Err(e), Some(info)),
            Failure::Client(e) => (Err(e), None),
        }
    }
}

impl<'a> Exchange<'a> {
    /// Sends attempt to `ep`, its deadlines counted from `start`, and waits for the answer's
    /// head. `last`: no retry follows, so what is sent once may be moved instead of copied.
    /// Returns the client's own future (no wrapper around it: its state would be moved once
    /// more).
    #[inline]
    pub(crate) fn send<'b>(
        &'b mut self,
        ep: &'b Endpoint,
        start: tokio::time::Instant,
        last: bool,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, SendError>> + 'b {
        let body = self.payload.next();
        let h2 = matches!(self.client, HttpClient::Http2(_)).then(|| {
            if last {
                std::mem::take(self.headers)
            } else {
                self.headers.clone()
            }
        });
        let this = &*self;
        let req = match h2 {
            Some(headers) => h2_request(ep, this.method, this.target, headers, body),
            // HTTP/1.1 connections are made by the pool: the request line is origin-form,
            // and the parts are borrowed (a retry sends them again).
            None => Outgoing::H1(
                H1Head {
                    method: this.method,
                    target: this.target.as_str(),
                    headers: this.headers,
                    added: this.fields,
                },
                body,
            ),
        };
        // `send` bounds the upload, `read` the wait for the answer's head after it.
        let wait = Deadlines {
            start,
            send: this.timeouts.send,
            read: this.timeouts.read,
            progress: this.payload.progress(),
        };
        this.client.send(ep, req, wait)
    }

    /// Counts the attempt in `ep`'s requests in flight (`least_conn`) while the guard lives
    /// (with an answer, until its body ends).
    #[inline]
    pub(crate) fn in_flight(&self, ep: &Endpoint) -> Option<InFlight> {
        self.count_in_flight.then(|| InFlight::new(&ep.in_flight))
    }

    /// How an attempt that got no answer failed.
    #[inline]
    pub(crate) fn failure(&self, err: SendError) -> Failure {
        let progress = self.payload.progress();
        if matches!(err, SendError::TimedOut) {
            // A phase's timeout is the answer whatever became of the body.
            Failure::Final(ProxyError::Timeout)
        } else if progress.is_some_and(|p| p.exceeded()) {
            Failure::Final(ProxyError::BodyTooLarge)
        } else if progress.is_some_and(|p| p.client_failed()) {
            // The client's fault, whatever the exchange's error says (HTTP/2 reports the
            // stream it reset).
            Failure::Client(match classify(err) {
                Failure::Client(e) => e,
                Failure::Final(e) | Failure::Retryable(e) => ProxyError::ClientBody(Box::new(e)),
            })
        } else {
            classify(err)
        }
    }
}

/// The instance's part in the attempt number `number` to `ep` that started at `start`, for
/// the answer.
#[inline]
pub(crate) fn info(ep: &Endpoint, start: tokio::time::Instant, number: u32) -> UpstreamInfo {
    UpstreamInfo {
        addr: ep.addr.clone(),
        instance: ep.id.clone(),
        connect: None,
        header: start.elapsed(),
        attempts: number,
    }
}

fn classify(err: SendError) -> Failure {
    let err = match err {
        SendError::ConnectTimeout => return Failure::Retryable(ProxyError::Timeout),
        SendError::TimedOut => return Failure::Final(ProxyError::Timeout),
        SendError::Connect(e) => return Failure::Retryable(ProxyError::BadGateway(Box::new(e))),
        SendError::Http1(H1Error::Body(b)) => return body_failure(b),
        SendError::Http1(H1Error::TimedOut) => return Failure::Final(ProxyError::Timeout),
        SendError::Http1(e) => return Failure::Retryable(ProxyError::BadGateway(Box::new(e))),
        SendError::Http2(e) => e,
    };
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    let mut timed_out = false;
    while let Some(e) = src {
        if e.is::<BodyLimitExceeded>() {
            return Failure::Final(ProxyError::BodyTooLarge);
        }
        if e.is::<ClientBodyError>() {
            return Failure::Client(ProxyError::ClientBody(Box::new(err)));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = e.source();
    }
    if err.is_connect() && timed_out {
        Failure::Retryable(ProxyError::Timeout)
    } else {
        Failure::Retryable(ProxyError::BadGateway(Box::new(err)))
    }
}

/// The request body failed while it was being sent: over the limit (413), or the client's
/// body could not be read (400). Neither is worth another attempt.
fn body_failure(err: gw_core::BoxError) -> Failure {
    if caused_by::<BodyLimitExceeded>(&*err) {
        Failure::Final(ProxyError::BodyTooLarge)
    } else if caused_by::<ClientBodyError>(&*err) {
        Failure::Client(ProxyError::ClientBody(err))
    } else {
        Failure::Retryable(ProxyError::BadGateway(Box::new(H1Error::Body(err))))
    }
}

/// Whether `err` or an error in its source chain is a `T`.
fn caused_by<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(err);
    while let Some(e) = src {
        if e.is::<T>() {
            return true;
        }
        src = e.source();
    }
    false
}

// Out of line and cold: HTTP/1.1 is the common case, and kept inline this would spread its
// code over more instruction-cache lines.
#[cold]
#[inline(never)]
fn h2_request(
    ep: &Endpoint,
    method: &Method,
    pq: &PathAndQuery,
    headers: HeaderMap,
    body: ReqBody,
) -> Outgoing<'static> {
    let mut uri_parts = uri::Parts::default();
    uri_parts.scheme = Some(Scheme::HTTP);
    uri_parts.authority = Some(ep.authority.clone());
    uri_parts.path_and_query = Some(pq.clone());
    let uri = Uri::from_parts(uri_parts).expect("scheme, authority and path are valid");
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers;
    Outgoing::H2(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn io(kind: ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    #[test]
    fn connection_failures_may_be_retried() {
        let refused = SendError::Connect(io(ErrorKind::ConnectionRefused));
        assert!(matches!(
            classify(refused),
            Failure::Retryable(ProxyError::BadGateway(_))
        ));
        assert!(matches!(
            classify(SendError::ConnectTimeout),
            Failure::Retryable(ProxyError::Timeout)
        ));
        let reset = classify(SendError::Http1(H1Error::Closed));
        assert_eq!(reset.ending(), Ending::Failed);
        let info = UpstreamInfo {
            addr: "a:1".into(),
            instance: "a".into(),
            connect: None,
            header: std::time::Duration::ZERO,
            attempts: 3,
        };
        let (res, info) = reset.settle::<()>(info);
        assert!(matches!(res, Err(ProxyError::BadGateway(_))));
        assert!(info.is_some(), "the instance is named");
    }

    #[test]
    fn timeouts_are_final() {
        for err in [SendError::TimedOut, SendError::Http1(H1Error::TimedOut)] {
            let f = classify(err);
            assert!(matches!(f, Failure::Final(ProxyError::Timeout)));
            assert_eq!(f.ending(), Ending::Final);
        }
    }

    #[test]
    fn request_body_failures_are_final_and_the_clients_fault_is_told_apart() {
        let over: gw_core::BoxError = Box::new(BodyLimitExceeded(10));
        let f = classify(SendError::Http1(H1Error::Body(over)));
        assert!(matches!(f, Failure::Final(ProxyError::BodyTooLarge)));
        let client: gw_core::BoxError = Box::new(ClientBodyError("cut short".into()));
        let f = classify(SendError::Http1(H1Error::Body(client)));
        assert!(matches!(f, Failure::Client(ProxyError::ClientBody(_))));
        assert_eq!(f.ending(), Ending::Final);
        let info = UpstreamInfo {
            addr: "a:1".into(),
            instance: "a".into(),
            connect: None,
            header: std::time::Duration::ZERO,
            attempts: 1,
        };
        let (res, info) = f.settle::<()>(info);
        assert!(matches!(res, Err(ProxyError::ClientBody(_))));
        assert!(info.is_none(), "the instance is not named");
    }
}
