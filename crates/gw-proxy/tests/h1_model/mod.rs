//! The model of the HTTP/1.1 client's answer-head and chunk-size parsers, shared by the
//! property tests (`tests/prop_h1.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/h1_response_head.rs`): one copy, so that a campaign checks exactly
//! what CI checks.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use gw_proxy::h1_probe::{parse_chunk_size, parse_response_head, ParsedHead};
use http::{HeaderName, HeaderValue};

/// The client's field limit (`MAX_HEADERS` in `h1.rs`).
pub const MAX_HEADERS: usize = 128;

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

/// What httparse says of the bytes, with the fields copied out.
pub enum Verdict {
    /// httparse refuses it.
    Error,
    /// More bytes needed.
    Partial,
    /// A complete head.
    Complete {
        len: usize,
        code: u16,
        http10: bool,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

pub fn httparse_verdict(bytes: &[u8]) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(bytes) {
        Err(_) => Verdict::Error,
        Ok(httparse::Status::Partial) => Verdict::Partial,
        Ok(httparse::Status::Complete(len)) => Verdict::Complete {
            len,
            code: res.code.expect("complete"),
            http10: res.version == Some(0),
            fields: res
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
        },
    }
}

pub fn tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
}

/// `Content-Length`: digits (surrounding whitespace allowed) that fit a `u64`.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(value.trim_ascii()).ok()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
];

/// What the client should make of a complete head: the fields it passes on (by name, in
/// order), the framing (RFC 9112 §6.3), keep-alive (RFC 9112 §9.3, §9.6) — or every reason
/// it may refuse the head for.
pub struct Expected {
    pub fields: BTreeMap<String, Vec<Vec<u8>>>,
    pub framing: String,
    pub keep_alive: bool,
    pub hop_clean: bool,
}

pub fn expected(
    code: u16,
    http10: bool,
    fields: &[(Vec<u8>, Vec<u8>)],
    head_request: bool,
) -> Result<Expected, Vec<&'static str>> {
    let mut errors = Vec::new();
    if !(100..=999).contains(&code) {
        errors.push("invalid status code");
    }
    let switching = code == 101;
    let mut kept: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut length: Option<u64> = None;
    let mut te_final: Option<String> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut upgrade = false;
    for (name, value) in fields {
        let Ok(name) = HeaderName::from_bytes(name) else {
            errors.push("invalid header name");
            continue;
        };
        let drop = match name.as_str() {
            "content-length" => {
                match content_length(value) {
                    None => errors.push("invalid content-length"),
                    Some(n) if length.is_some_and(|l| l != n) => {
                        errors.push("conflicting content-length")
                    }
                    Some(n) => length = Some(n),
                }
                false
            }
            "transfer-encoding" => {
                // The final coding of the last field (the fields form one list).
                te_final = tokens(value).last();
                true
            }
            "connection" => {
                let t: Vec<String> = tokens(value).collect();
                let has = |x: &str| t.iter().any(|y| y == x);
                if has("close") {
                    close = true;
                } else if has("keep-alive") {
                    keep_alive_token = true;
                }
                upgrade |= has("upgrade");
                let names_other = t
                    .iter()
                    .any(|x| !["", "close", "keep-alive", "upgrade"].contains(&x.as_str()));
                !switching && !names_other
            }
            "keep-alive" | "proxy-connection" | "proxy-authenticate" | "proxy-authorization" => {
                !switching
            }
            _ => false,
        };
        if drop {
            continue;
        }
        if HeaderValue::from_bytes(value).is_err() {
            errors.push("invalid header value");
        }
        kept.entry(name.as_str().to_owned())
            .or_default()
            .push(value.clone());
    }
    if switching && !upgrade {
        errors.push("101 without Connection: upgrade");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let framing = if switching {
        "Upgrade".to_owned()
    } else if head_request || code < 200 || code == 204 || code == 304 {
        "Empty".to_owned()
    } else if let Some(last) = &te_final {
        if last == "chunked" {
            "Chunked".to_owned()
        } else {
            // A transfer coding other than chunked last: read until the upstream closes.
            "Eof".to_owned()
        }
    } else if let Some(n) = length {
        format!("Length({n})")
    } else {
        "Eof".to_owned()
    };
    let hop_clean = !kept.keys().any(|k| HOP_BY_HOP.contains(&k.as_str()));
    if te_final.is_some() && length.is_some() {
        // An intermediary removes `Content-Length` before forwarding such a message.
        kept.remove("content-length");
    }
    Ok(Expected {
        fields: kept,
        framing,
        // `close` in any field closes; HTTP/1.0 closes unless `keep-alive` was asked.
        keep_alive: !close && (!http10 || keep_alive_token),
        hop_clean,
    })
}

pub fn fields_of(head: &ParsedHead) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, value) in head.response.headers() {
        out.entry(name.as_str().to_owned())
            .or_default()
            .push(value.as_bytes().to_vec());
    }
    out
}

/// The differential on one input; `Err` says what differs.
pub fn check_head(bytes: &[u8], head_request: bool) -> Result<(), String> {
    let got = parse_response_head(bytes, head_request);
    match (httparse_verdict(bytes), &got) {
        (Verdict::Error, Err(_)) | (Verdict::Partial, Ok(None)) => Ok(()),
        (
            Verdict::Complete {
                len,
                code,
                http10,
                fields,
            },
            _,
        ) => match (expected(code, http10, &fields, head_request), got) {
            (Err(reasons), Err(why)) if reasons.contains(&why) => Ok(()),
            (Ok(want), Ok(Some(head))) => {
                let same = head.len == len
                    && head.response.status().as_u16() == code
                    && (head.response.version() == http::Version::HTTP_10) == http10
                    && head.hop_clean == want.hop_clean;
                let rules = fields_of(&head) == want.fields
                    && head.framing == want.framing
                    && head.keep_alive == want.keep_alive;
                if same && rules {
                    Ok(())
                } else {
                    Err(format!(
                        "got {head:?}; want len {len}, {code}, fields {:?}, {}, keep-alive {}, hop_clean {}",
                        want.fields, want.framing, want.keep_alive, want.hop_clean
                    ))
                }
            }
            (want, got) => Err(format!("got {got:?}, want {:?}", want.map(|w| w.framing))),
        },
        (Verdict::Error, got) => Err(format!("httparse refused it, the client: {got:?}")),
        (Verdict::Partial, got) => Err(format!("httparse wants more, the client: {got:?}")),
    }
}

/// RFC 9112 §7.1 `chunk-size [ chunk-ext ]` as the client reads it: hex digits before any
/// `;`, surrounding whitespace allowed; at most 15 digits (so no sum can overflow).
pub fn reference_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The chunk-size parser against [`reference_chunk_size`]; an overflowing size is an
/// error, never a wrapped number.
pub fn check_chunk_size(line: &[u8]) -> Result<(), String> {
    let got = parse_chunk_size(line);
    let want = reference_chunk_size(line);
    if got != want {
        return Err(format!(
            "{:?}: got {got:?}, want {want:?}",
            String::from_utf8_lossy(line)
        ));
    }
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let significant = digits.iter().skip_while(|&&b| b == b'0').count();
    if digits.iter().all(u8::is_ascii_hexdigit) && significant > 16 && got.is_some() {
        return Err(format!(
            "{:?}: overflow gave {got:?}",
            String::from_utf8_lossy(line)
        ));
    }
    Ok(())
}
