//! The upstream request's body across attempts: buffered when a retry may send it again,
//! else the client's body streamed once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use gw_core::Body;
use http_body::Body as _;
use http_body_util::combinators::Collect;
use http_body_util::BodyExt;

use crate::retry::MAX_REPLAY_BYTES;
use crate::upload::{BodyLimitExceeded, Progress, ReqBody};
use crate::ProxyError;

/// The body every attempt sends.
pub(crate) enum Payload {
    /// Buffered (empty for most requests): each attempt sends it whole.
    Replay(Bytes),
    /// The client's body, streamed by the first attempt (which takes it), and what became of
    /// it.
    Stream(Option<ReqBody>, Arc<Progress>),
}

/// The body as [`Payload::read`] found it.
pub(crate) enum Reading {
    /// Ready to send.
    Done(Payload),
    /// To be buffered first (a small body of a request that may be retried).
    Buffer(Buffering),
}

impl Payload {
    /// The body of a request: nothing to stream (most GETs), to be buffered when `replay`
    /// (a retry may follow) and it is at most [`MAX_REPLAY_BYTES`], else streamed, counted
    /// against `max` bytes.
    #[inline]
    pub(crate) fn read(body: Body, replay: bool, max: u64) -> Reading {
        if body.is_end_stream() {
            // Nothing to stream: no limit counting, no progress tracking.
            Reading::Done(Payload::Replay(Bytes::new()))
        } else if replay
            && body
                .size_hint()
                .upper()
                .is_some_and(|n| n <= MAX_REPLAY_BYTES)
        {
            // Boxed (cold path): keeps the per-request future small.
            Reading::Buffer(Buffering(Box::pin(
                ReqBody::stream(body, max, Progress::new()).collect(),
            )))
        } else {
            let p = Progress::new();
            Reading::Done(Payload::Stream(
                Some(ReqBody::stream(body, max, p.clone())),
                p,
            ))
        }
    }

    /// Whether every attempt can send the body.
    #[inline]
    pub(crate) fn replayable(&self) -> bool {
        matches!(self, Payload::Replay(_))
    }

    /// The body of the next attempt: a copy of the buffered one, or the stream (only the
    /// first attempt has it; a later one, which the retry policy never makes, sends none).
    #[inline]
    pub(crate) fn next(&mut self) -> ReqBody {
        match self {
            Payload::Replay(bytes) => ReqBody::full(bytes.clone()),
            Payload::Stream(stream, _) => {
                stream.take().unwrap_or_else(|| ReqBody::full(Bytes::new()))
            }
        }
    }

    /// What became of a streamed body.
    #[inline]
    pub(crate) fn progress(&self) -> Option<&Progress> {
        match self {
            Payload::Replay(_) => None,
            Payload::Stream(_, p) => Some(p),
        }
    }
}

/// Buffers a client's body: a [`Payload::Replay`], or the body is over the limit (413) or
/// could not be read (400).
pub(crate) struct Buffering(Pin<Box<Collect<ReqBody>>>);

impl Future for Buffering {
    type Output = Result<Payload, ProxyError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.0.as_mut().poll(cx)) {
            Ok(c) => Ok(Payload::Replay(c.to_bytes())),
            Err(e) if e.is::<BodyLimitExceeded>() => Err(ProxyError::BodyTooLarge),
            // Every error of the client's body is one (`ReqBody`).
            Err(e) => Err(ProxyError::ClientBody(e)),
        })
    }
}
