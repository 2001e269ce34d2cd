//! The request path, normalised: percent-decoding of unreserved characters, RFC 3986
//! §5.2.4 dot-segment removal, optional merging of `//`.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::{EscapedSlashes, PathError};

/// How a path is normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathOptions {
    /// Merge runs of `/` into one (nginx's `merge_slashes on`).
    pub merge_slashes: bool,
    /// What to do with `%2F` and `%5C`.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Normalises an origin-form path (it starts with `/`; the query is not part of it).
///
/// 1. `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded; every other
///    `%XX` is kept, with upper-case hex digits (RFC 3986 §6.2.2). A `%` not followed by two
///    hex digits is an error.
/// 2. `%2F` / `%5C` are refused or kept as they are ([`EscapedSlashes`]); a raw `\` is
///    always refused (some servers read it as `/`).
/// 3. `.` and `..` segments are removed (RFC 3986 §5.2.4, after step 1, so `%2e%2e` is
///    `..`). A `..` that would climb above `/` is an error, not silently dropped. A segment
///    whose part before `;` is `.` or `..` (`..;x`, which Tomcat reads as `..`) is refused.
/// 4. With `merge_slashes`, empty segments (`//`) are removed; a trailing `/` is kept.
///
/// The path comes back borrowed when nothing changed: the common path costs one scan and
/// no allocation.
///
/// ```
/// use gw_edge::path::{normalize, PathOptions};
/// let opts = PathOptions::default();
/// assert_eq!(normalize("/api/v1/users/42", &opts).unwrap(), "/api/v1/users/42");
/// assert_eq!(normalize("/a/./b/../c", &opts).unwrap(), "/a/c");
/// assert_eq!(normalize("/a/%2e%2e/b", &opts).unwrap(), "/b");
/// assert_eq!(normalize("//a//b/", &opts).unwrap(), "/a/b/");
/// assert!(normalize("/a/../../etc/passwd", &opts).is_err());
/// ```
pub fn normalize<'a>(path: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if !needs_work(b, opts.merge_slashes) {
        return Ok(Cow::Borrowed(path));
    }
    let out = rebuild(path, opts)?;
    Ok(if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    })
}

/// Whether the path may change: a `%`, a `\`, a dot segment (or `.;`/`..;`), or `//`
/// when slashes are merged.
fn needs_work(b: &[u8], merge: bool) -> bool {
    // One pass, one comparison per byte in the common case: only a byte that may start
    // something to change (`%`, `\\`, or `/` followed by `/` or `.`) is looked at closer.
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if SPECIAL[usize::from(c)] {
            match c {
                b'%' | b'\\' => return true,
                b'/' if merge && prev == b'/' => return true,
                b'.' if prev == b'/' && is_dot_start(&b[i..]) => return true,
                _ => {}
            }
        }
        prev = c;
    }
    false
}

/// The bytes [`needs_work`] looks at closer.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'%' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t[b'.' as usize] = true;
    t
};

/// Whether `seg` (starting with `.`) begins a `.` or `..` segment, or one followed by `;`.
fn is_dot_start(seg: &[u8]) -> bool {
    let dots = if seg.get(1) == Some(&b'.') { 2 } else { 1 };
    matches!(seg.get(dots), None | Some(b'/') | Some(b';'))
}

fn rebuild(path: &str, opts: &PathOptions) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    // Where each segment kept so far starts in `out` (at its `/`).
    let mut starts: SmallVec<[usize; 16]> = SmallVec::new();
    let mut segments = path[1..].split('/').peekable();
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        let seg = decode(raw, opts.escaped_slashes)?;
        let base = seg.split(';').next().unwrap_or("");
        if (base == "." || base == "..") && base.len() != seg.len() {
            return Err(PathError::DotSegmentParameter);
        }
        match &*seg {
            "." => {}
            ".." => {
                let Some(start) = starts.pop() else {
                    return Err(PathError::AboveRoot);
                };
                out.truncate(start);
            }
            "" if opts.merge_slashes || last => {}
            _ => {
                starts.push(out.len());
                out.push('/');
                out.push_str(&seg);
            }
        }
        // A path ending in `/`, `/.` or `/..` ends in `/` (RFC 3986 §5.2.4).
        if last && matches!(&*seg, "" | "." | "..") {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// One segment with its unreserved `%XX` decoded and the others upper-cased.
fn decode(raw: &str, slashes: EscapedSlashes) -> Result<Cow<'_, str>, PathError> {
    let b = raw.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi << 4 | lo;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(v);
                } else {
                    if matches!(v, b'/' | b'\\') && slashes == EscapedSlashes::Reject {
                        return Err(PathError::EncodedSlash);
                    }
                    out.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII was added to what was UTF-8 already.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::BadEscape)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p, &PathOptions::default()).map(Cow::into_owned)
    }

    fn keep(p: &str) -> Result<String, PathError> {
        let opts = PathOptions {
            merge_slashes: false,
            escaped_slashes: EscapedSlashes::Keep,
        };
        normalize(p, &opts).map(Cow::into_owned)
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        for p in [
            "/",
            "/api/v1/users/42",
            "/a.b/c..d/.well-known/x",
            "/a/b/",
            "/..a/b",
        ] {
            assert!(
                matches!(normalize(p, &PathOptions::default()), Ok(Cow::Borrowed(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_segments() {
        assert_eq!(n("/a/b/c/./../../g").unwrap(), "/a/g");
        assert_eq!(n("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/.").unwrap(), "/");
        assert_eq!(n("/api/v1/users/../../admin").unwrap(), "/api/admin");
        assert_eq!(n("/public/../private/x").unwrap(), "/private/x");
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for p in [
            "/..",
            "/../a",
            "/a/../..",
            "/./../",
            "/%2e%2e/x",
            "/%2E%2E",
            "/a/.%2E/..",
        ] {
            assert_eq!(n(p), Err(PathError::AboveRoot), "{p}");
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(n("/%7euser/%41%62").unwrap(), "/~user/Ab");
        assert_eq!(n("/a%20b/%e2%82%ac").unwrap(), "/a%20b/%E2%82%AC");
        assert_eq!(n("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(n("/a%2").unwrap_err(), PathError::BadEscape);
        assert_eq!(n("/a%zz").unwrap_err(), PathError::BadEscape);
        assert_eq!(n("/a%2Fb").unwrap_err(), PathError::EncodedSlash);
        assert_eq!(n("/a%5cb").unwrap_err(), PathError::EncodedSlash);
        assert_eq!(keep("/a%2fb/..%2F").unwrap(), "/a%2Fb/..%2F");
        assert_eq!(n("/a\\..\\b").unwrap_err(), PathError::Backslash);
        assert_eq!(keep("/a\\b").unwrap_err(), PathError::Backslash);
    }

    #[test]
    fn slashes() {
        assert_eq!(n("//a//b").unwrap(), "/a/b");
        assert_eq!(n("/a//").unwrap(), "/a/");
        assert_eq!(n("//").unwrap(), "/");
        assert_eq!(keep("//a//b").unwrap(), "//a//b");
        assert_eq!(keep("/a//../b").unwrap(), "/a/b");
        assert_eq!(n("/a//../b").unwrap(), "/b");
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for p in ["/public/..;/private", "/a/.;x/b", "/..;"] {
            assert_eq!(n(p), Err(PathError::DotSegmentParameter), "{p}");
        }
        assert_eq!(n("/a;b/c").unwrap(), "/a;b/c");
    }

    #[test]
    fn not_origin_form() {
        assert_eq!(n("*"), Err(PathError::NotOriginForm));
        assert_eq!(n(""), Err(PathError::NotOriginForm));
    }
}
