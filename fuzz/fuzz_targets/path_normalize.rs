//! `gw_edge::path::normalize`: agreement with the RFC 3986 §5.2.4 reference, the output
//! invariants, idempotence, and indifference to percent-encoding of unreserved characters
//! (the same checks as `crates/gw-edge/tests/prop.rs`).
//!
//! Input: one byte of options (bit 0 `merge_slashes`, bit 1 `EscapedSlashes::Keep`), one
//! byte choosing which unreserved character to encode, then the path (UTF-8, lossily).

#![no_main]

use gw_edge::path::PathOptions;
use gw_edge::EscapedSlashes;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/gw-edge/tests/reference/mod.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let [flags, at, rest @ ..] = data else {
        return;
    };
    let opts = PathOptions {
        merge_slashes: flags & 1 != 0,
        escaped_slashes: if flags & 2 != 0 {
            EscapedSlashes::Keep
        } else {
            EscapedSlashes::Reject
        },
    };
    let path = String::from_utf8_lossy(rest);
    if let Err(why) = reference::check_path(&path, &opts) {
        panic!("{why}");
    }
    if let Err(why) = reference::check_encoded_unreserved(&path, usize::from(*at), &opts) {
        panic!("{why}");
    }
});
