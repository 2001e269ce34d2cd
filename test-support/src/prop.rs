//! The proptest configuration every property test uses.

use proptest::test_runner::Config;

/// `cases` unless `PROPTEST_CASES` says otherwise; nothing is written to disk on failure
/// (the failing input is in the panic message).
pub fn proptest_config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
