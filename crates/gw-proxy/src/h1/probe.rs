//! The answer-head and chunk-size parsers of [`super`] with public types, for the property
//! tests and fuzz targets, and the client itself on one connection, for the benchmark
//! `benches/h1_client.rs` (not part of the crate's API).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gw_core::{Body, BoxError};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::response::parse_head;
use super::{send, Conn, H1Error, H1Head, Phases, PoolSlot};
use crate::forwarded::AddedFields;
use crate::pool::HostPool;
use crate::upload::{later, Progress, ReqBody};

/// An answer head as the HTTP/1.1 client parsed it.
#[derive(Debug)]
pub struct ParsedHead {
    /// Bytes the head took at the start of the input.
    pub len: usize,
    /// Status, version and the fields passed on (those that concern only the upstream
    /// connection are left out).
    pub response: Response<()>,
    /// How the body is framed: `Empty`, `Length(n)`, `Chunked`, `Eof` or `Upgrade`.
    pub framing: String,
    /// The connection can take another request after the body.
    pub keep_alive: bool,
    /// No hop-by-hop field is left in the fields.
    pub hop_clean: bool,
}

/// Parses the answer head at the start of `bytes` (to a `HEAD` request when
/// `head_request`): `Ok(None)` when more bytes are needed, `Err` with the reason when the
/// client refuses it.
pub fn parse_response_head(
    bytes: &[u8],
    head_request: bool,
) -> Result<Option<ParsedHead>, &'static str> {
    let mut buf = BytesMut::from(bytes);
    let method = if head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    let head = match parse_head(&mut buf, &method) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(H1Error::Parse(why)) => return Err(why),
        Err(_) => return Err("not a parse error"),
    };
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    Ok(Some(ParsedHead {
        len: bytes.len() - buf.len(),
        response,
        framing: format!("{:?}", head.framing),
        keep_alive: head.keep_alive,
        hop_clean: head.hop_clean,
    }))
}

/// The size a chunk-size line (without its CRLF) announces; `None` when it is invalid.
pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    gw_core::h1::parse_chunk_size(line)
}

/// How long the benchmark client waits for anything (never reached in a benchmark).
const BENCH_TIMEOUT: Duration = Duration::from_secs(600);

/// The HTTP/1.1 client on one connection, driven as the proxy drives it: per request, the
/// connection is taken from its pool, the head (and a small body) written by [`send`], the
/// answer's body read to its end, which puts the connection back. The phases' timer lives
/// with the connection, as in the proxy. For the benchmark `benches/h1_client.rs`.
#[derive(Debug)]
pub struct BenchClient {
    pool: Arc<HostPool<Conn>>,
    added: AddedFields,
}

impl BenchClient {
    /// A client on `io`, a connection to the upstream.
    pub fn new(io: TcpStream) -> BenchClient {
        let pool = Arc::new(HostPool::default());
        pool.put(Conn::new(io), 1, BENCH_TIMEOUT);
        BenchClient {
            pool,
            added: AddedFields::default(),
        }
    }

    /// Sends a request and reads the whole answer: its status and how many body bytes it
    /// had. A body that says it is empty is sent as a (replayable) empty one; any other is
    /// streamed, as the proxy streams a client's body (chunked when its length is unknown).
    pub async fn request(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(StatusCode, usize), BoxError> {
        let body = if body.is_end_stream() {
            ReqBody::full(Bytes::new())
        } else {
            ReqBody::stream(body, u64::MAX, Progress::new())
        };
        let ready = Instant::now();
        let mut conn = self
            .pool
            .checkout(ready.into_std(), BENCH_TIMEOUT)
            .ok_or("the connection was not given back")?;
        let due = later(ready, BENCH_TIMEOUT);
        let mut timer = match conn.take_timer() {
            Some(mut t) => {
                if t.deadline() > due {
                    t.as_mut().reset(due);
                }
                t
            }
            None => Box::pin(tokio::time::sleep_until(due)),
        };
        let head = H1Head {
            method,
            target,
            headers,
            added: &self.added,
        };
        let slot = PoolSlot {
            pool: self.pool.clone(),
            max_idle: 1,
            idle_timeout: BENCH_TIMEOUT,
        };
        let phases = Phases {
            ready,
            send: BENCH_TIMEOUT,
            read: BENCH_TIMEOUT,
        };
        let sent = send(conn, head, body, true, slot, timer.as_mut(), phases).await;
        let mut res = sent.map_err(|(e, _)| Box::new(e) as BoxError)?;
        res.body_mut().keep_timer(timer);
        let status = res.status();
        let mut body = res.into_body();
        let mut len = 0;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Some(data) = frame?.data_ref() {
                len += data.len();
            }
        }
        Ok((status, len))
    }
}
