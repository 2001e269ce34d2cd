//! `Host` syntax (RFC 9110 §7.2: `uri-host [ ":" port ]`).

/// Whether `value` is a valid `Host` field value: a non-empty reg-name, IPv4 address or
/// bracketed IPv6 address, and an optional port of 1-5 digits up to 65535. No user info,
/// no spaces, no second value (`a, b`).
///
/// ```
/// use gw_edge::host::is_valid;
/// assert!(is_valid(b"api.example.com:8080"));
/// assert!(is_valid(b"[::1]:443"));
/// assert!(!is_valid(b"a, b"));
/// assert!(!is_valid(b"user@host"));
/// assert!(!is_valid(b"host:99999"));
/// ```
pub fn is_valid(value: &[u8]) -> bool {
    let (host, port) = split(value);
    let host_ok = match host {
        [b'[', inner @ .., b']'] => std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some(),
        [] => false,
        name => reg_name(name),
    };
    host_ok && port.is_none_or(valid_port)
}

/// The host and the port (without its `:`), when there is one.
fn split(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if value.first() == Some(&b'[') {
        // After the closing bracket only.
        value
            .iter()
            .position(|&b| b == b']')
            .and_then(|end| (value.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        value.iter().position(|&b| b == b':')
    };
    match colon {
        Some(at) => (&value[..at], Some(&value[at + 1..])),
        None => (value, None),
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (an IPv4 address is one too).
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let c = name[i];
        if !REG_NAME[usize::from(c)] {
            return false;
        }
        if c == b'%' {
            let hex = |j: usize| name.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    true
}

/// The bytes of a reg-name: unreserved, sub-delims and `%` (of an escape).
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        c += 1;
    }
    t
};

fn valid_port(port: &[u8]) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}

/// Whether two host values name the same host and port (host compared without regard to
/// case).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_hosts() {
        for h in [
            "a",
            "example.com",
            "EXAMPLE.com:80",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[2001:db8::1]:443",
            "xn--bcher-kva.example",
            "under_score.local",
            "a:0",
            "a:65535",
        ] {
            assert!(is_valid(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn invalid_hosts() {
        for h in [
            "",
            ":80",
            "a b",
            "a, b",
            "a,b c",
            "user@host",
            "a:",
            "a:65536",
            "a:99999",
            "a:123456",
            "a:8x",
            "a:80:80",
            "[::1",
            "[zz]",
            "::1",
            "[::1]x",
            "a/b",
            "a?b",
            "a#b",
            "%zz",
            "a\tb",
        ] {
            assert!(!is_valid(h.as_bytes()), "{h}");
        }
    }
}
