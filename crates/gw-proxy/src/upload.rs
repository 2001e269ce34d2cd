//! The request body sent upstream (streamed with a byte limit, or replayable), what became
//! of it ([`Progress`]), the errors of the client's body, and saturating deadlines. Used by
//! [`h1`](crate::h1) and above it; imports nothing of the answer side.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{Body, BoxError};
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

/// The request body grew past `max_body_bytes` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit of {0} bytes")]
pub(crate) struct BodyLimitExceeded(pub(crate) u64);

/// Reading the client's request body failed (a malformed chunk, a body that ended before its
/// announced length, a reset stream): the client's fault, not the upstream's. Every error of
/// the client's body stream is wrapped in it where it is read, in [`ReqBody`], so that it
/// is told apart from the errors of the upstream connection it travels through.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub(crate) struct ClientBodyError(#[source] pub(crate) BoxError);

/// The body of the upstream request.
pub(crate) enum ReqBody {
    /// The client's body, streamed, counted against the limit; its errors become
    /// [`ClientBodyError`]s.
    Stream {
        inner: Body,
        remaining: u64,
        limit: u64,
        progress: Arc<Progress>,
    },
    /// A buffered body that can be sent again on retry (`None` once sent).
    Full(Option<Bytes>),
}

impl fmt::Debug for ReqBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqBody::Stream { remaining, .. } => f
                .debug_struct("Stream")
                .field("remaining", remaining)
                .finish(),
            ReqBody::Full(b) => f
                .debug_tuple("Full")
                .field(&b.as_ref().map(Bytes::len))
                .finish(),
        }
    }
}

impl ReqBody {
    pub(crate) fn stream(inner: Body, limit: u64, progress: Arc<Progress>) -> Self {
        ReqBody::Stream {
            inner,
            remaining: limit,
            limit,
            progress,
        }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        ReqBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl http_body::Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream {
                inner,
                remaining,
                limit,
                progress,
            } => {
                let mut inner = Pin::new(inner);
                let frame = match ready!(inner.as_mut().poll_frame(cx)) {
                    None => {
                        progress.finish();
                        return Poll::Ready(None);
                    }
                    Some(Err(e)) => {
                        progress.client_failed.store(true, Ordering::Relaxed);
                        let e = ClientBodyError(e.into_inner());
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                    Some(Ok(frame)) => frame,
                };
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *remaining {
                        *remaining = 0;
                        progress.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyLimitExceeded(*limit)))));
                    }
                    *remaining -= len;
                }
                // HTTP/2 does not ask again after a frame that ends the body.
                if inner.is_end_stream() {
                    progress.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// What became of a streamed request body: when it was sent whole (HTTP/2 measures the wait
/// for the answer from then), or how it failed (HTTP/2 does not hand the body's error back
/// in the cause chain, so it is flagged here too).
#[derive(Debug)]
pub(crate) struct Progress {
    base: Instant,
    /// Nanoseconds from `base` to the end of the body, plus one; 0 while it goes on.
    done: AtomicU64,
    /// The body went over the limit.
    exceeded: AtomicBool,
    /// Reading the client's body failed.
    client_failed: AtomicBool,
}

impl Progress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Progress {
            base: Instant::now(),
            done: AtomicU64::new(0),
            exceeded: AtomicBool::new(false),
            client_failed: AtomicBool::new(false),
        })
    }

    /// Notes the end of the body (the first time only).
    pub(crate) fn finish(&self) {
        if self.done.load(Ordering::Relaxed) == 0 {
            let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.done.store(ns + 1, Ordering::Relaxed);
        }
    }

    /// When the last frame of the body was handed on; `None` while it goes on.
    pub(crate) fn sent(&self) -> Option<Instant> {
        match self.done.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.base + Duration::from_nanos(ns - 1)),
        }
    }

    /// Whether the body went over the limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// Whether reading the client's body failed.
    pub(crate) fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::Relaxed)
    }
}

/// `now + d`, saturating at a far future instead of panicking on overflow.
pub(crate) fn deadline(d: Duration) -> Instant {
    later(Instant::now(), d)
}

/// `at + d`, saturating at a far future instead of panicking on overflow.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30))
}
