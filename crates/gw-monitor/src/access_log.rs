//! `AccessLog`: JSON lines handed to a dedicated writer thread through a bounded channel.

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

/// Lines that may wait for the writer before new ones are dropped.
const CHANNEL_CAPACITY: usize = 65_536;

/// A handle to the access-log writer thread. Cheap to clone.
///
/// Lines are passed with `try_send`, so the request path never blocks on I/O: when the writer
/// falls behind and the channel is full, the line is dropped and counted
/// ([`dropped`](AccessLog::dropped)). The writer flushes whenever the channel is momentarily
/// empty, and ends (flushing) once every handle is dropped.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Shared>,
}

struct Shared {
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
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

    /// Lines to any writer (tests use a shared in-memory buffer).
    pub fn writer(w: Box<dyn Write + Send>) -> AccessLog {
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        if let Err(e) = std::thread::Builder::new()
            .name("gw-access-log".into())
            .spawn(move || run_writer(rx, w))
        {
            // The receiver is gone with the closure: every line will count as dropped.
            tracing::error!(error = %e, "could not start the access log writer thread");
        }
        AccessLog {
            inner: Arc::new(Shared {
                tx,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Lines dropped because the channel was full (or the writer is gone).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// Hands one finished line (ending in `\n`) to the writer without blocking.
    pub(crate) fn send(&self, line: Vec<u8>) {
        match self.inner.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.inner.dropped.fetch_add(1, Relaxed);
            }
        }
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

fn run_writer(rx: Receiver<Vec<u8>>, w: Box<dyn Write + Send>) {
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
