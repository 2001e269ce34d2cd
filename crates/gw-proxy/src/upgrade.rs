//! WebSocket upgrades: the tunnel that relays an upgraded connection both ways once the
//! upstream's `101` was passed on.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;

use crate::body::InFlight;
use crate::h1::Conn;

/// Copies bytes both ways between the upgraded client connection and the upstream's socket.
/// Relays an upgraded connection both ways until either side closes, or until no byte went
/// either way for a whole `idle` period (the route's `timeout.read`, as nginx's
/// `proxy_read_timeout` bounds its WebSocket tunnels): it is checked once per period, so a
/// silent tunnel is closed between one and two periods after its last byte.
pub(crate) async fn tunnel(
    client: OnUpgrade,
    upstream: Box<Conn>,
    guard: Option<InFlight>,
    idle: Duration,
) {
    use tokio::io::AsyncWriteExt;
    // The client's side resolves once the 101 has been written to it.
    let (upstream, early) = (*upstream).into_upgraded();
    match client.await {
        Ok(client) => {
            let mut client = hyper_util::rt::TokioIo::new(client);
            // What the upstream sent right after its 101 goes first.
            if !early.is_empty() {
                if let Err(e) = client.write_all(&early).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                    return;
                }
            }
            let progress = AtomicU64::new(0);
            let mut client = Ticking {
                io: client,
                progress: &progress,
            };
            let mut upstream = Ticking {
                io: upstream,
                progress: &progress,
            };
            let mut relay =
                std::pin::pin!(tokio::io::copy_bidirectional(&mut client, &mut upstream));
            let mut sleep = std::pin::pin!(tokio::time::sleep(idle));
            let mut seen = 0;
            let ended = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = relay.as_mut().poll(cx) {
                    return Poll::Ready(r.map(|_| ()));
                }
                while sleep.as_mut().poll(cx).is_ready() {
                    let now = progress.load(Ordering::Relaxed);
                    if now == seen {
                        return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
                    }
                    seen = now;
                    sleep.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                Poll::Pending
            })
            .await;
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
    }
    drop(guard);
}

/// One side of a tunnel, counting the reads that brought bytes in `progress`.
struct Ticking<'a, T> {
    io: T,
    progress: &'a AtomicU64,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Ticking<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.progress.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Ticking<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
