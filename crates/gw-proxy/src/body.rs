//! The upstream answer's body passed back (idle timeout, in-flight guard) over either
//! protocol's body. The request side is in [`upload`](crate::upload).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::BoxError;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::h1::H1Body;
use crate::upload::deadline;

/// The upstream sent nothing for longer than the read timeout while streaming the body.
#[derive(Debug, thiserror::Error)]
#[error("upstream response body idle for longer than {0:?}")]
pub(crate) struct ReadTimeout(pub(crate) Duration);

/// Decrements an endpoint's in-flight counter when dropped (least_conn).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upstream answer's body: read by [`h1`](crate::h1) from its connection, or hyper's
/// HTTP/2 stream.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    H1(H1Body),
    H2(Incoming),
    /// Given up (read timeout): the connection is closed.
    Gone,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::H2(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
            UpstreamBody::Gone => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
            UpstreamBody::Gone => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
            UpstreamBody::Gone => SizeHint::with_exact(0),
        }
    }
}

/// The upstream response body: streamed as is (trailers included); a gap longer than the
/// read timeout between frames ends it with [`ReadTimeout`]. An HTTP/1.1 connection goes back
/// to its pool when the body was read to the end, and is closed when it is dropped earlier.
pub(crate) struct RespBody {
    inner: UpstreamBody,
    // Made on the first wait (a body that is already buffered never needs a timer).
    idle: Option<Pin<Box<Sleep>>>,
    read: Duration,
    armed: bool,
    guard: Option<InFlight>,
}

impl fmt::Debug for RespBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RespBody")
            .field("read", &self.read)
            .finish()
    }
}

impl RespBody {
    pub(crate) fn new(inner: UpstreamBody, read: Duration, guard: Option<InFlight>) -> Self {
        RespBody {
            inner,
            idle: None,
            read,
            armed: false,
            guard,
        }
    }
}

impl http_body::Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // The timer is (re)armed only when the upstream makes us wait: a body that is
                // already buffered costs no timer operation.
                this.armed = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = match &mut this.idle {
                    Some(idle) => {
                        if !this.armed {
                            idle.as_mut().reset(deadline(this.read));
                        }
                        idle
                    }
                    None => this
                        .idle
                        .insert(Box::pin(tokio::time::sleep_until(deadline(this.read)))),
                };
                this.armed = true;
                ready!(idle.as_mut().poll(cx));
                this.guard = None;
                // Dropping the body closes its connection.
                this.inner = UpstreamBody::Gone;
                Poll::Ready(Some(Err(Box::new(ReadTimeout(this.read)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
