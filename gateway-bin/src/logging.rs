//! The process log (tracing to stderr); the access log is gw-monitor's.

use tracing_subscriber::EnvFilter;

/// Checks a `log.level` filter expression.
pub(crate) fn parse_filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("invalid log filter \"{level}\": {e}"))
}

/// Installs the process logger once; `RUST_LOG` wins over `log.level`.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| parse_filter(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
