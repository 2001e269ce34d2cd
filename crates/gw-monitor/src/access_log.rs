//! `AccessLog`: JSON lines handed to a dedicated writer thread through a bounded channel.

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

/// Lines that may wait for the writer before new ones are dropped.
const CHANNEL_CAPACITY: usize = 65_536;

/// Bytes of lines that may wait for the writer (the line being written included) before new
/// ones are dropped: 8 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// A handle to the access-log writer thread. Cheap to clone.
///
/// Lines are passed with `try_send`, so the request path never blocks on I/O: when the writer
/// falls behind and the lines waiting for it would exceed the byte bound
/// ([`DEFAULT_MAX_QUEUED_BYTES`], or the one given to
/// [`writer_with_limit`](AccessLog::writer_with_limit)) or 65,536 lines, the line is dropped
/// and counted ([`dropped`](AccessLog::dropped) and the metric
/// `gateway_access_log_dropped_total`). The writer flushes whenever the channel is momentarily
/// empty, and ends (flushing) once every handle is dropped.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Shared>,
}

struct Shared {
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
    /// Bytes handed over and not yet written (shared with the writer thread, which must not
    /// hold `tx`).
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
            .field("queued_bytes", &self.queued_bytes())
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Lines to standard output.
    pub fn stdout() -> AccessLog {
        Self::writer(Box::new(std::io::stdout()))
    }

    /// Lines appended to `path` (created when missing).
    pub fn file(path: &Path) -> std::io::Result<AccessLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::writer(Box::new(f)))
    }

    /// Lines to any writer (tests use a shared in-memory buffer), with the default byte bound.
    pub fn writer(w: Box<dyn Write + Send>) -> AccessLog {
        Self::writer_with_limit(w, DEFAULT_MAX_QUEUED_BYTES)
    }

    /// Lines to any writer; at most `max_queued_bytes` of lines wait for it.
    pub fn writer_with_limit(w: Box<dyn Write + Send>, max_queued_bytes: usize) -> AccessLog {
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = queued.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("gw-access-log".into())
            .spawn(move || run_writer(rx, w, &writer_queued))
        {
            // The receiver is gone with the closure: every line will count as dropped.
            tracing::error!(error = %e, "could not start the access log writer thread");
        }
        AccessLog {
            inner: Arc::new(Shared {
                tx,
                dropped: AtomicU64::new(0),
                queued,
                max_queued: max_queued_bytes,
            }),
        }
    }

    /// Lines dropped because the writer fell behind (byte or line bound) or is gone.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// Bytes of lines handed over and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued.load(Relaxed)
    }

    /// Hands one finished line (ending in `\n`) to the writer without blocking.
    pub(crate) fn send(&self, line: Vec<u8>) {
        let len = line.len();
        let before = self.inner.queued.fetch_add(len, Relaxed);
        if before.saturating_add(len) > self.inner.max_queued {
            self.inner.queued.fetch_sub(len, Relaxed);
            self.drop_line();
            return;
        }
        match self.inner.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.inner.queued.fetch_sub(len, Relaxed);
                self.drop_line();
            }
        }
    }

    #[cold]
    fn drop_line(&self) {
        self.inner.dropped.fetch_add(1, Relaxed);
        metrics::counter!(crate::registry::ACCESS_LOG_DROPPED).increment(1);
    }
}

/// Logs the first of a run of write errors, not every one.
fn report(r: std::io::Result<()>, failing: &mut bool) {
    match r {
        Ok(()) => *failing = false,
        Err(e) => {
            if !*failing {
                tracing::warn!(error = %e, "access log write failed");
            }
            *failing = true;
        }
    }
}

fn run_writer(rx: Receiver<Vec<u8>>, w: Box<dyn Write + Send>, queued: &AtomicUsize) {
    let mut out = BufWriter::with_capacity(64 * 1024, w);
    let mut failing = false;
    loop {
        let line = match rx.try_recv() {
            Ok(line) => line,
            Err(TryRecvError::Empty) => {
                report(out.flush(), &mut failing);
                match rx.recv() {
                    Ok(line) => line,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        report(out.write_all(&line), &mut failing);
        queued.fetch_sub(line.len(), Relaxed);
    }
    report(out.flush(), &mut failing);
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer that blocks until released, as a stalled pipe or disk would.
    #[derive(Clone, Default)]
    struct Stalled(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>, Buf);
    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_keeps_the_queue_under_its_byte_bound() {
        const BOUND: usize = 1024 * 1024;
        let w = Stalled::default();
        let log = AccessLog::writer_with_limit(Box::new(w.clone()), BOUND);
        let line = |i: usize| {
            let mut l = vec![b'a'; 64 * 1024];
            l.extend_from_slice(format!("{i}\n").as_bytes());
            l
        };
        // 4,000 lines of 64 KiB: 256 MiB if all were kept.
        for i in 0..4000 {
            log.send(line(i));
            assert!(log.queued_bytes() <= BOUND, "{} queued", log.queued_bytes());
        }
        let dropped = log.dropped();
        assert!(
            dropped >= 4000 - (BOUND / (64 * 1024)) as u64,
            "dropped {dropped}"
        );
        // Released, the writer drains what it kept, and the queue takes lines again.
        {
            let (open, cv) = &*w.0;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.queued_bytes() != 0 {
            assert!(std::time::Instant::now() < deadline, "never drained");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        log.send(b"after\n".to_vec());
        assert_eq!(log.dropped(), dropped);
        drop(log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !w.1 .0.lock().ends_with(b"after\n") {
            assert!(
                std::time::Instant::now() < deadline,
                "last line never written"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn writer_flushes_on_last_drop() {
        let buf = Buf::default();
        let log = AccessLog::writer(Box::new(buf.clone()));
        let log2 = log.clone();
        log.send(b"a\n".to_vec());
        log2.send(b"b\n".to_vec());
        drop(log);
        drop(log2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while buf.0.lock().as_slice() != b"a\nb\n" {
            assert!(std::time::Instant::now() < deadline, "lines never written");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
