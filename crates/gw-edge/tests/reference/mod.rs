//! The references and checks shared by the property tests (`tests/prop.rs`) and the fuzz
//! targets (`fuzz/fuzz_targets/path_normalize.rs`, `canonicalize.rs`): one copy, so that a
//! campaign checks exactly what CI checks.

#![allow(dead_code, unreachable_pub)]

use std::borrow::Cow;

use gw_edge::path::{normalize, PathOptions};
use gw_edge::{EscapedSlashes, PathError};

// ---------------------------------------------------------------------------------------
// The reference: RFC 3986 §5.2.4 as written, after a plain decoding step, with the
// documented differences of `normalize` made explicit.
// ---------------------------------------------------------------------------------------

pub fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

pub fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Step 1 on the whole path: `%XX` of an unreserved character decoded, other escapes
/// upper-cased; a raw `\`, a bad escape and (when refused) `%2F`/`%5C` are noted in
/// `errors`, and the text goes on unchanged at that point so that the later steps still
/// see every segment.
pub fn reference_decode(
    path: &str,
    slashes: EscapedSlashes,
    errors: &mut Vec<PathError>,
) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                errors.push(PathError::Backslash);
                out.push(b'\\');
                i += 1;
            }
            b'%' => {
                let digits = (
                    b.get(i + 1).copied().and_then(hex_value),
                    b.get(i + 2).copied().and_then(hex_value),
                );
                let (Some(hi), Some(lo)) = digits else {
                    errors.push(PathError::BadEscape);
                    out.push(b'%');
                    i += 1;
                    continue;
                };
                let v = hi * 16 + lo;
                if unreserved(v) {
                    out.push(v);
                } else {
                    if (v == b'/' || v == b'\\') && slashes == EscapedSlashes::Reject {
                        errors.push(PathError::EncodedSlash);
                    }
                    out.extend(format!("%{v:02X}").bytes());
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was added")
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, rule by rule. The one difference: a `..` that
/// finds the output buffer empty (it would climb above `/`) is noted as an error instead of
/// being dropped.
pub fn remove_dot_segments(path: &str, errors: &mut Vec<PathError>) -> String {
    // "removing the last segment and its preceding "/" (if any) from the output buffer"
    fn pop(output: &mut String, errors: &mut Vec<PathError>) {
        if output.is_empty() {
            errors.push(PathError::AboveRoot);
        }
        let cut = output.rfind('/').unwrap_or(0);
        output.truncate(cut);
    }

    let mut input: &str = path;
    let mut output = String::new();
    // 2. While the input buffer is not empty, loop as follows:
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            // A. a prefix of "../" or "./": remove that prefix.
            input = rest;
        } else if input.starts_with("/./") {
            // B. a prefix of "/./": replace it with "/".
            input = &input[2..];
        } else if input == "/." {
            // B. "/." as a complete segment: replace it with "/".
            input = "/";
        } else if input.starts_with("/../") {
            // C. a prefix of "/../": replace it with "/" and remove the last segment of the
            //    output buffer.
            input = &input[3..];
            pop(&mut output, errors);
        } else if input == "/.." {
            // C. "/.." as a complete segment: the same.
            pop(&mut output, errors);
            input = "/";
        } else if input == "." || input == ".." {
            // D. only "." or "..": remove it.
            input = "";
        } else {
            // E. move the first path segment (with its leading "/", if any, up to but not
            //    including the next "/") to the end of the output buffer.
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |n| from + n);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// What `normalize` should give: the normalised path, or every error that applies (the
/// implementation reports the first it meets, which must be one of them).
pub fn reference(path: &str, opts: &PathOptions) -> Result<String, Vec<PathError>> {
    if !path.starts_with('/') {
        return Err(vec![PathError::NotOriginForm]);
    }
    let mut errors = Vec::new();
    let decoded = reference_decode(path, opts.escaped_slashes, &mut errors);
    // `..;x` and `.;x` (what comes before a `;` is a dot segment) are refused.
    for seg in decoded.split('/') {
        let base = seg.split(';').next().unwrap_or("");
        if (base == "." || base == "..") && seg.len() != base.len() {
            errors.push(PathError::DotSegmentParameter);
        }
    }
    // merge_slashes: runs of `/` become one before dot segments are removed.
    let merged = if opts.merge_slashes {
        let mut m = String::with_capacity(decoded.len());
        for c in decoded.chars() {
            if !(c == '/' && m.ends_with('/')) {
                m.push(c);
            }
        }
        m
    } else {
        decoded
    };
    let mut out = remove_dot_segments(&merged, &mut errors);
    if out.is_empty() {
        out.push('/');
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------

/// Everything a normalised path must satisfy; `Err` says which rule it breaks.
pub fn check_normal(out: &str, opts: &PathOptions) -> Result<(), String> {
    if !out.starts_with('/') {
        return Err("does not start with /".into());
    }
    if out.contains('\\') {
        return Err("holds a backslash".into());
    }
    if opts.merge_slashes && out.contains("//") {
        return Err("holds // while merging".into());
    }
    if out[1..].split('/').any(|s| s == "." || s == "..") {
        return Err("holds a dot segment".into());
    }
    let b = out.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(&hi), Some(&lo)) = (b.get(i + 1), b.get(i + 2)) else {
                return Err(format!("truncated escape at {i}"));
            };
            let upper = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            if !upper(hi) || !upper(lo) {
                return Err(format!("escape at {i} is not upper-case hex"));
            }
            let v = hex_value(hi).unwrap() * 16 + hex_value(lo).unwrap();
            if unreserved(v) {
                return Err(format!("escape of unreserved {:?} at {i}", v as char));
            }
            if (v == b'/' || v == b'\\') && opts.escaped_slashes == EscapedSlashes::Reject {
                return Err(format!("escaped slash at {i} while refused"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// One unreserved character of `p` outside any escape (the `at`-th, wrapping)
/// percent-encoded.
pub fn encode_one_unreserved(p: &str, at: usize) -> Option<String> {
    let b = p.as_bytes();
    let spots: Vec<usize> = (0..b.len())
        .filter(|&i| unreserved(b[i]) && !b[i.saturating_sub(2)..i].contains(&b'%'))
        .collect();
    let i = *spots.get(at % spots.len().max(1))?;
    Some(format!(
        "{}%{:02x}{}",
        &p[..i],
        p.as_bytes()[i],
        &p[i + 1..]
    ))
}

/// `dec-octet`: `0`-`255` without leading zeros.
pub fn dec_octet(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|c| c.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u16>().is_ok_and(|n| n <= 255)
}

pub fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| dec_octet(p))
}

pub fn h16(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// RFC 3986 `IPv6address`, by counting 16-bit pieces: eight without `::`, at most seven
/// around one `::`; an IPv4 address counts two and may only come last.
pub fn ipv6(s: &str) -> bool {
    let pieces = |part: &str, last: bool| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let groups: Vec<&str> = part.split(':').collect();
        let mut n = 0;
        for (i, g) in groups.iter().enumerate() {
            if last && i == groups.len() - 1 && ipv4(g) {
                n += 2;
            } else if h16(g) {
                n += 1;
            } else {
                return None;
            }
        }
        Some(n)
    };
    match s.split_once("::") {
        None => pieces(s, true) == Some(8),
        Some((left, right)) => {
            if right.contains("::") {
                return false;
            }
            match (pieces(left, false), pieces(right, true)) {
                (Some(l), Some(r)) => l + r <= 7,
                _ => false,
            }
        }
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, non-empty.
pub fn reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            if !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(unreserved(c) || b"!$&'()*+,;=".contains(&c)) {
            return false;
        }
        i += 1;
    }
    !s.is_empty()
}

/// `uri-host [ ":" port ]` as `is_valid` documents it: the host is a non-empty reg-name or
/// a bracketed IPv6 address (no IPvFuture), the port 1-5 digits up to 65535.
pub fn reference_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        match v.iter().position(|&c| c == b']') {
            Some(end) => match &v[end + 1..] {
                [] => (&v[..=end], None),
                [b':', port @ ..] => (&v[..=end], Some(port)),
                _ => return false,
            },
            None => return false,
        }
    } else {
        match v.iter().position(|&c| c == b':') {
            Some(at) => (&v[..at], Some(&v[at + 1..])),
            None => (v, None),
        }
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => std::str::from_utf8(inner).is_ok_and(ipv6),
        _ => reg_name(host),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).unwrap().parse::<u32>().unwrap() <= 65535
    });
    host_ok && port_ok
}

/// The whole check of one path: agreement with [`reference`],
/// borrowed exactly when unchanged, the output invariants ([`check_normal`]) and
/// idempotence; `Err` says what failed.
pub fn check_path(p: &str, opts: &PathOptions) -> Result<(), String> {
    let got = normalize(p, opts);
    match (&got, reference(p, opts)) {
        (Ok(out), Ok(expected)) => {
            if **out != *expected {
                return Err(format!(
                    "{p:?} {opts:?}: got {out:?}, reference {expected:?}"
                ));
            }
            if matches!(out, Cow::Borrowed(_)) != (**out == *p) {
                return Err(format!("{p:?}: borrowed is not the same as unchanged"));
            }
        }
        (Err(e), Err(possible)) if possible.contains(e) => {}
        (_, want) => return Err(format!("{p:?} {opts:?}: got {got:?}, reference {want:?}")),
    }
    if let Ok(out) = got {
        check_normal(&out, opts).map_err(|why| format!("{p:?} -> {out:?}: {why}"))?;
        let again = normalize(&out, opts);
        let idempotent = match &again {
            Ok(Cow::Borrowed(_)) => true,
            Ok(Cow::Owned(twice)) => *twice == *out,
            Err(_) => false,
        };
        if !idempotent {
            return Err(format!("not idempotent: {p:?} -> {out:?} -> {again:?}"));
        }
    }
    Ok(())
}

/// Encoding one unreserved character changes nothing.
pub fn check_encoded_unreserved(p: &str, at: usize, opts: &PathOptions) -> Result<(), String> {
    let Some(q) = encode_one_unreserved(p, at) else {
        return Ok(());
    };
    match (normalize(p, opts), normalize(&q, opts)) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(a), Err(b)) if a == b => Ok(()),
        (a, b) => Err(format!("{p:?} -> {a:?}, {q:?} -> {b:?}")),
    }
}
