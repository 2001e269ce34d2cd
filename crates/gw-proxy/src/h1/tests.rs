//! Unit tests of the HTTP/1.1 client: field names, chunk sizes, parsing answer heads and
//! encoding request heads.

use super::request::ReqFraming;
use super::response::parse_head;
use super::*;
use crate::forwarded::hop_by_hop_bit;
use gw_core::h1::{field_name, ChunkSize};
use http::header::{HeaderName, CONNECTION, TRANSFER_ENCODING};
use http::Request;

#[test]
fn field_names_match_from_bytes() {
    for raw in [
        "Date",
        "date",
        "Server",
        "Content-Type",
        "content-length",
        "Connection",
        "Transfer-Encoding",
        "Cache-Control",
        "content-encoding",
        "ETag",
        "Last-Modified",
        "vary",
        "DATE",
        "X-Custom",
        "x-custom",
        "Set-Cookie",
    ] {
        let (name, common) = field_name(raw.as_bytes()).unwrap();
        assert_eq!(
            name,
            HeaderName::from_bytes(raw.as_bytes()).unwrap(),
            "{raw}"
        );
        if common && name != CONNECTION && name != TRANSFER_ENCODING {
            assert_eq!(hop_by_hop_bit(&name), 0, "{raw}");
        }
    }
    assert_eq!(field_name(b"bad name"), None);
    assert_eq!(field_name(b""), None);
}

#[test]
fn hex_sizes() {
    let hex = |n| ChunkSize::new(n).as_bytes().to_vec();
    assert_eq!(&hex(0x1a2b)[..], b"1a2b\r\n");
    assert_eq!(&hex(0)[..], b"0\r\n");
}

#[test]
fn chunk_sizes() {
    use gw_core::h1::parse_chunk_size as chunk_size;
    assert_eq!(chunk_size(b"ff"), Some(255));
    assert_eq!(chunk_size(b"10;ext=1"), Some(16));
    assert_eq!(chunk_size(b""), None);
    assert_eq!(chunk_size(b"zz"), None);
}

#[test]
fn parses_heads() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..],
    );
    let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.framing, RespFraming::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
    assert_eq!(&buf[..], b"hello");

    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"[..]);
    assert!(parse_head(&mut buf, &Method::GET).unwrap().is_none());

    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"[..],
    );
    let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(head.framing, RespFraming::Chunked);
    assert!(!head.keep_alive);

    let mut buf = BytesMut::from(&b"HTTP/1.0 200 OK\r\n\r\n"[..]);
    let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(head.framing, RespFraming::Eof);
    assert!(!head.keep_alive);

    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..]);
    let head = parse_head(&mut buf, &Method::HEAD).unwrap().unwrap();
    assert_eq!(head.framing, RespFraming::Empty);

    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, &Method::GET).is_err());
    let mut buf = BytesMut::from(&b"HTTP/1.1 2x0 OK\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, &Method::GET).is_err());
}

#[test]
fn encodes_heads() {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/a?b=1")
        .header("host", "example")
        .header("transfer-encoding", "chunked")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let mut out = Vec::new();
    let f = encode_head(
        &mut out,
        &parts.method,
        "/a?b=1",
        &parts.headers,
        &AddedFields::default(),
        &ReqBody::full(Bytes::from_static(b"abc")),
    );
    assert_eq!(f, ReqFraming::Length);
    assert_eq!(
        out,
        b"POST /a?b=1 HTTP/1.1\r\nhost: example\r\ncontent-length: 3\r\n\r\n"
    );

    let req = Request::builder().uri("/").body(()).unwrap();
    let (parts, ()) = req.into_parts();
    let mut out = Vec::new();
    encode_head(
        &mut out,
        &parts.method,
        "/",
        &parts.headers,
        &AddedFields::default(),
        &ReqBody::full(Bytes::new()),
    );
    assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
}
