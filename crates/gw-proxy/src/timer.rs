//! Bounding a future by a deadline on a timer that is reused, not made anew per request.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{ready, Poll};

use tokio::time::Sleep;

/// A phase of the exchange did not end within its timeout.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// `fut`'s output, unless `sleep` fires at or after `due()` (asked each time it fires: an
/// earlier deadline is moved on to it). Both are borrowed, pinned where they live: moving a
/// request future into a wrapper would copy all of its state. `sleep` must not be set later
/// than `due()`.
pub(crate) fn bound<'a, F: Future>(
    mut sleep: Pin<&'a mut Sleep>,
    mut fut: Pin<&'a mut F>,
    due: impl Fn() -> tokio::time::Instant + 'a,
) -> impl Future<Output = Result<F::Output, Elapsed>> + 'a {
    poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        loop {
            ready!(sleep.as_mut().poll(cx));
            // Fired: at the deadline, or early (see `Deadlines::arm` in `client`).
            let due = due();
            if due > sleep.deadline() {
                sleep.as_mut().reset(due);
            } else {
                return Poll::Ready(Err(Elapsed));
            }
        }
    })
}

/// `fut`'s output, unless `due` passes first. `timer` is moved back to `due` when it is set
/// later; set earlier, it is moved on when it fires.
pub(crate) async fn within<F: Future>(
    mut timer: Pin<&mut Sleep>,
    due: tokio::time::Instant,
    fut: F,
) -> Result<F::Output, Elapsed> {
    if timer.deadline() > due {
        timer.as_mut().reset(due);
    }
    bound(timer, pin!(fut), move || due).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant as TInstant;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_set_early_is_moved_on_to_the_phase_deadline() {
        let t0 = TInstant::now();
        // A pooled connection's timer, still on an earlier request's deadline.
        let mut timer = Box::pin(tokio::time::sleep_until(t0 + ms(100)));
        let out = within(timer.as_mut(), t0 + ms(500), tokio::time::sleep(ms(300))).await;
        assert!(
            out.is_ok(),
            "the phase's own deadline holds, not the timer's"
        );
        assert_eq!(timer.deadline(), t0 + ms(500));

        let t1 = TInstant::now();
        let out = within(timer.as_mut(), t1 + ms(200), std::future::pending::<()>()).await;
        assert!(out.is_err());
        assert_eq!(
            TInstant::now() - t1,
            ms(200),
            "moved back to an earlier phase end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_ends_at_its_deadline() {
        let t0 = TInstant::now();
        let mut timer = Box::pin(tokio::time::sleep_until(t0 + ms(50)));
        let out = within(timer.as_mut(), t0 + ms(200), std::future::pending::<()>()).await;
        assert!(out.is_err());
        assert_eq!(TInstant::now() - t0, ms(200));
    }
}
