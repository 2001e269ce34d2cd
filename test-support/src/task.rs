//! A background task a test starts with a stop signal and later shuts down, waiting
//! (bounded) for it to end: the shape of every `run(self, shutdown)` loop in the gateway.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The stop signal a [`Running`] task is given: ready once [`Running::shutdown`] is called
/// (or the [`Running`] is dropped).
#[derive(Debug)]
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A spawned task with its stop signal.
#[derive(Debug)]
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Spawns `run(stop)`: `run` builds the task's future from the [`StopSignal`].
    pub fn spawn<F, Fut>(run: F) -> Running
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(StopSignal(stopped)));
        Running {
            stop: Some(stop),
            task,
        }
    }

    /// Signals the task to stop and waits for it to end; panics when it does not within
    /// `limit`, or when it panicked.
    pub async fn shutdown(mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(limit, &mut self.task)
            .await
            .expect("run ends on shutdown")
            .expect("run does not panic");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_the_task() {
        let running = Running::spawn(|stop| stop);
        running.shutdown(Duration::from_secs(5)).await;
    }
}
