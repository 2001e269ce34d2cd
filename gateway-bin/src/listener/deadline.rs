//! How long a connection lives: [`graceful`] runs it until it ends, the gateway stops (then
//! it is asked to finish gracefully) or the idle watchdog finds it silent for a whole period.
//! [`Activity`] is what the watchdog reads; [`Counted`] (the socket's writes) and [`Waiting`]
//! (a request waiting for its answer) feed it on the plain HTTP/1.1 loop, `hyper_conn`'s
//! `Open` and `Tracked` on hyper's paths.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;

/// Runs a connection; when `stop` turns true it is asked to finish gracefully (HTTP/1.1:
/// close after the request in flight; HTTP/2: GOAWAY) and still awaited. With `watch`, the
/// connection is dropped (closed) once a whole period passed in which it started no request,
/// wrote nothing and had no request waiting for its answer: an idle connection, a slow head,
/// and a client that stopped reading its answer alike.
///
/// The stop signal and the watchdog timer are polled with a waker of their own, and only
/// again after that waker fired: a connection's ordinary wake-ups (every request) touch
/// neither the watch channel nor the timer.
pub(super) async fn graceful<C, E>(
    conn: C,
    stop: watch::Receiver<bool>,
    shutdown: fn(Pin<&mut C>),
    watch: Option<(Duration, Arc<Activity>)>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut stopped = std::pin::pin!(async move {
        let mut stop = stop;
        // Only `true` or a closed channel (the gateway is gone) ends this wait.
        let _ = stop.wait_for(|s| *s).await;
    });
    let mut watchdog = watch.map(|(period, activity)| Watchdog {
        sleep: Box::pin(tokio::time::sleep(period)),
        period,
        last: activity.snapshot(),
        activity,
    });
    let flag = Arc::new(SideWaker::default());
    let side_waker = std::task::Waker::from(flag.clone());
    let mut shutting_down = false;
    // The waker last given to `flag.task`. Only a side wake-up takes it out (after setting
    // `fired`), and that wake-up polls this task again: so the task registers again only
    // then, or when its waker changed, and an ordinary poll costs one plain load here
    // instead of three atomic read-modify-writes.
    let mut registered: Option<std::task::Waker> = None;
    let result = std::future::poll_fn(|cx| {
        let fired = flag.fired.load(Ordering::Acquire) && flag.fired.swap(false, Ordering::AcqRel);
        if fired || !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            flag.task.register(cx.waker());
            registered = Some(cx.waker().clone());
        }
        if fired {
            let mut side = Context::from_waker(&side_waker);
            if !shutting_down && stopped.as_mut().poll(&mut side).is_ready() {
                shutting_down = true;
                shutdown(conn.as_mut());
            }
            if let Some(w) = watchdog.as_mut() {
                while w.sleep.as_mut().poll(&mut side).is_ready() {
                    if w.silent() {
                        return Poll::Ready(None);
                    }
                    let next = tokio::time::Instant::now() + w.period;
                    w.sleep.as_mut().reset(next);
                }
            }
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await;
    match result {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        Some(Ok(())) => {}
        None => tracing::debug!("idle connection closed"),
    }
}

/// What a connection did, for the idle watchdog: writes to the client (write calls on the
/// plain HTTP/1.1 loop, body frames taken on hyper's paths), requests started, requests
/// waiting for their answer. On the plain HTTP/1.1 loop only the connection's own task
/// touches it (plain loads and stores); hyper's paths use atomic read-modify-writes (see
/// `hyper_conn::stream_service`).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    pub(super) writes: AtomicU64,
    pub(super) started: AtomicU64,
    pub(super) waiting: AtomicU64,
}

impl Activity {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.started.load(Ordering::Relaxed),
        )
    }
}

fn bump(counter: &AtomicU64, up: bool) {
    let v = counter.load(Ordering::Relaxed);
    counter.store(
        if up {
            v.wrapping_add(1)
        } else {
            v.saturating_sub(1)
        },
        Ordering::Relaxed,
    );
}

/// A request from its head until its answer's head: the watchdog leaves the connection alone.
pub(crate) struct Waiting(Arc<Activity>);

impl Waiting {
    pub(crate) fn start(activity: &Arc<Activity>) -> Waiting {
        bump(&activity.started, true);
        bump(&activity.waiting, true);
        Waiting(activity.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        bump(&self.0.waiting, false);
    }
}

struct Watchdog {
    sleep: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    last: (u64, u64),
    activity: Arc<Activity>,
}

impl Watchdog {
    /// Whether nothing happened since the last look (and remembers what it saw).
    fn silent(&mut self) -> bool {
        let now = self.activity.snapshot();
        let quiet = now == self.last && self.activity.waiting.load(Ordering::Relaxed) == 0;
        self.last = now;
        quiet
    }
}

/// The client socket, counting writes for the watchdog.
pub(crate) struct Counted<T> {
    pub(crate) io: T,
    pub(crate) activity: Arc<Activity>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> Counted<T> {
    fn counted(&self, r: &Poll<std::io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            bump(&self.activity.writes, true);
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.counted(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.counted(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The waker the stop signal and the idle watchdog are polled with: notes that it fired and
/// wakes the connection, which then polls them again.
struct SideWaker {
    fired: AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl Default for SideWaker {
    fn default() -> Self {
        // Fired at first, so that the first poll registers with the watch channel and the timer.
        SideWaker {
            fired: AtomicBool::new(true),
            task: futures_util::task::AtomicWaker::new(),
        }
    }
}

impl std::task::Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}
