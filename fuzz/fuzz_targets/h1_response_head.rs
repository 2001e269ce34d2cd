//! The HTTP/1.1 client's answer-head parser against httparse and the client's documented
//! rules, and its chunk-size line parser (the same checks as
//! `crates/gw-proxy/tests/prop_h1.rs`).
//!
//! Input: one byte (bit 0: the answer is to a `HEAD` request), then the bytes read from the
//! upstream; the same bytes are also given to the chunk-size parser as one line.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/gw-proxy/tests/h1_model/mod.rs"]
mod h1_model;

fuzz_target!(|data: &[u8]| {
    let [flags, bytes @ ..] = data else {
        return;
    };
    if let Err(why) = h1_model::check_head(bytes, flags & 1 != 0) {
        panic!("{:?}: {why}", String::from_utf8_lossy(bytes));
    }
    if let Err(why) = h1_model::check_chunk_size(bytes) {
        panic!("{why}");
    }
});
