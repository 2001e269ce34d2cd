//! HTTP/1.1 as raw bytes, for tests about the wire: a [`RecordingUpstream`] that parses what
//! the gateway sends strictly and keeps every request, and [`raw_exchange`], a client that
//! writes bytes as given and splits what comes back into responses.
//!
//! ```no_run
//! # async fn t() {
//! use test_support::raw::{raw_exchange, RecordingUpstream};
//! let up = RecordingUpstream::start().await;
//! let answer = raw_exchange(
//!     up.addr,
//!     b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
//! )
//! .await;
//! assert_eq!(answer.statuses(), [200]);
//! assert_eq!(up.requests()[0].target, "/x");
//! # }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head the recording upstream reads.
const MAX_HEAD: usize = 1024 * 1024;
/// Largest request body the recording upstream reads.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Bytes asked of a socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// The answer the recording upstream gives every request.
pub const UPSTREAM_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// The pause between the pieces of a scripted [`Reply`].
const PIECE_GAP: Duration = Duration::from_millis(20);

/// What a [`RecordingUpstream`] writes back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Written in this order, 20 ms apart (so that they arrive as separate reads).
    pub pieces: Vec<Vec<u8>>,
    /// Close the connection after this answer.
    pub close: bool,
}

impl Reply {
    /// `bytes` in one piece, the connection kept open.
    pub fn bytes(bytes: &[u8]) -> Reply {
        Reply {
            pieces: vec![bytes.to_vec()],
            close: false,
        }
    }

    /// The default answer to `request`: [`UPSTREAM_ANSWER`] (without its body for `HEAD`),
    /// closing the connection when the request says `Connection: close`.
    pub fn standard(request: &Recorded) -> Reply {
        let answer = if request.method == "HEAD" {
            &UPSTREAM_ANSWER[..UPSTREAM_ANSWER.len() - 2]
        } else {
            UPSTREAM_ANSWER
        };
        Reply {
            pieces: vec![answer.to_vec()],
            close: list_items(values(&request.headers, "connection"))
                .iter()
                .any(|t| t.as_slice() == b"close"),
        }
    }
}

/// How a [`RecordingUpstream`] answers each request.
type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// One request as the [`RecordingUpstream`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent (origin-form `/a?b`, or whatever form came).
    pub target: String,
    /// Every header line in order, names lower-cased, values as sent (repeated names kept).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body after removing its framing (chunked bodies decoded, trailers left out).
    pub body: Vec<u8>,
    /// The request line and header lines exactly as received, up to and including the empty
    /// line.
    pub raw_head: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// Something the gateway sent the [`RecordingUpstream`] that breaks HTTP/1.1 (RFC 9112), or a
/// connection that ended in the middle of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What was wrong.
    pub reason: String,
    /// The offending request's head as received (or every byte read of it, when the head
    /// itself did not parse).
    pub raw: Vec<u8>,
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<Recorded>,
    violations: Vec<Violation>,
    connections: usize,
}

#[derive(Debug)]
struct Shared {
    log: Mutex<Log>,
    /// The number of recorded requests, for [`RecordingUpstream::wait_for_requests`].
    count: watch::Sender<usize>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, request: Recorded) {
        let n = {
            let mut log = self.log();
            log.requests.push(request);
            log.requests.len()
        };
        self.count.send_replace(n);
    }

    fn violation(&self, reason: impl Into<String>, raw: &[u8]) {
        self.log().violations.push(Violation {
            reason: reason.into(),
            raw: raw.to_vec(),
        });
    }
}

/// A raw HTTP/1.1 server on `127.0.0.1:0` that records every request the gateway sends it and
/// answers each with [`UPSTREAM_ANSWER`] (`200`, body `ok`; no body for `HEAD`), keeping the
/// connection open unless the request says `Connection: close` ([`Reply::standard`]); or, when
/// started with [`RecordingUpstream::scripted`], with whatever its script says. Stopped when
/// dropped.
///
/// It reads strictly: lines must end in CRLF; the framing must be exactly one
/// `Content-Length` of plain digits, or a `Transfer-Encoding` whose last coding is `chunked`
/// (chunk sizes of hex digits, CRLF after each size line and each chunk), or neither (no
/// body). A request whose framing is not clear in that sense is not recorded: it is noted as a
/// [`Violation`] and the connection is closed without an answer. A request whose framing is
/// clear but which breaks another rule (no `Host`, several `Host` lines, a version other than
/// HTTP/1.1) is recorded, answered, and noted as a violation as well.
#[derive(Debug)]
pub struct RecordingUpstream {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it ends them all.
        self.task.abort();
    }
}

impl RecordingUpstream {
    /// Starts one on `127.0.0.1:0` answering with [`Reply::standard`].
    pub async fn start() -> RecordingUpstream {
        Self::scripted(Reply::standard).await
    }

    /// Starts one on `127.0.0.1:0` answering each request with what `script` returns for it.
    pub async fn scripted(
        script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> RecordingUpstream {
        let script: Script = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recording upstream");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            count: watch::channel(0).0,
        });
        let task_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                task_shared.log().connections += 1;
                conns.spawn(serve_connection(
                    stream,
                    task_shared.clone(),
                    script.clone(),
                ));
            }
        });
        RecordingUpstream { addr, shared, task }
    }

    /// Every request recorded so far, in the order they were received (across connections:
    /// the order their heads and bodies were complete).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log().requests.clone()
    }

    /// Every protocol violation noted so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.log().violations.clone()
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.shared.log().connections
    }

    /// Waits until at least `n` requests were recorded, for at most `limit`; returns whether
    /// they were.
    pub async fn wait_for_requests(&self, n: usize, limit: Duration) -> bool {
        let mut count = self.shared.count.subscribe();
        tokio::time::timeout(limit, count.wait_for(|&c| c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Reads more of `stream` into `buf`; `Ok(0)` at its end.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let read = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// Reads `stream` into `buf` until `pat` appears in it; returns where it starts, or `None`
/// when the connection ends first.
pub async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, pat: &[u8]) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(pat.len()).position(|w| w == pat) {
            return Some(i);
        }
        if !matches!(fill(stream, buf).await, Ok(n) if n > 0) {
            return None;
        }
    }
}

/// A request head as parsed, owned.
struct ParsedHead {
    len: usize,
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

/// Parses the request head at the start of `buf`: `Ok(None)` while incomplete.
fn parse_request_head(buf: &[u8]) -> Result<Option<ParsedHead>, String> {
    let mut slots = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; slots];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                return Ok(Some(ParsedHead {
                    len,
                    method: req.method.unwrap_or_default().to_string(),
                    target: req.path.unwrap_or_default().to_string(),
                    version: req.version.unwrap_or_default(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                        .collect(),
                }))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) if slots < 64 * 1024 => slots *= 4,
            Err(e) => return Err(format!("request head does not parse: {e}")),
        }
    }
}

/// Every LF preceded by CR and every CR followed by LF.
fn crlf_only(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

/// A comma-separated token list's items, trimmed, across all lines.
fn list_items<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| item.trim_ascii().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The values of the (lower-cased) header `name` in `headers`.
fn values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// How a request's body is framed, as the recording upstream reads it.
enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

/// The framing `head` declares, or why it is not clear.
fn request_framing(head: &ParsedHead) -> Result<BodyFraming, String> {
    let named = |name: &'static str| values(&head.headers, name);
    let lengths: Vec<&[u8]> = named("content-length").collect();
    let codings = named("transfer-encoding").count();
    if codings > 0 && !lengths.is_empty() {
        return Err("both Content-Length and Transfer-Encoding".into());
    }
    if codings > 0 {
        let items = list_items(named("transfer-encoding"));
        let chunked = items.iter().filter(|c| c.as_slice() == b"chunked").count();
        if items.last().map(Vec::as_slice) != Some(b"chunked") || chunked != 1 {
            return Err(format!(
                "Transfer-Encoding {:?} does not end in a single chunked",
                named("transfer-encoding")
                    .map(String::from_utf8_lossy)
                    .collect::<Vec<_>>()
            ));
        }
        return Ok(BodyFraming::Chunked);
    }
    match lengths.as_slice() {
        [] => Ok(BodyFraming::None),
        [one] => {
            let text = std::str::from_utf8(one).unwrap_or("");
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {:?}", String::from_utf8_lossy(one)));
            }
            match text.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => Ok(BodyFraming::Length(n)),
                _ => Err(format!(
                    "Content-Length {text} is too large for this test server"
                )),
            }
        }
        _ => Err(format!("{} Content-Length lines", lengths.len())),
    }
}

/// Rules a request with a clear framing may still break.
fn other_rules(head: &ParsedHead) -> Vec<String> {
    let mut broken = Vec::new();
    if head.version != 1 {
        broken.push(format!("version HTTP/1.{}, not HTTP/1.1", head.version));
    }
    match head.headers.iter().filter(|(n, _)| n == "host").count() {
        1 => {}
        0 => broken.push("no Host".to_string()),
        n => broken.push(format!("{n} Host lines")),
    }
    broken
}

/// A chunked body decoded as its bytes arrive: [`ChunkedDecoder::advance`] is called with all
/// the bytes of the message so far and resumes after the last whole chunk.
#[derive(Debug, Default)]
struct ChunkedDecoder {
    /// Where the next chunk (or the last chunk's trailer section) starts.
    pos: usize,
    body: Vec<u8>,
    /// Past the last chunk: where its trailer section starts.
    trailers_at: Option<usize>,
}

impl ChunkedDecoder {
    /// Decodes what `data` holds from where it stopped: `Ok(Some(end))` when the body is
    /// complete (`end` bytes of `data` used), `Ok(None)` when more bytes are needed.
    fn advance(&mut self, data: &[u8]) -> Result<Option<usize>, String> {
        loop {
            if let Some(at) = self.trailers_at {
                return trailer_section(&data[at..]).map(|n| n.map(|n| at + n));
            }
            let rest = &data[self.pos..];
            let Some(line_end) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > 4096 {
                    return Err("chunk size line longer than 4 KiB".into());
                }
                return Ok(None);
            };
            if line_end == 0 || rest[line_end - 1] != b'\r' {
                return Err("chunk size line not ended by CRLF".into());
            }
            let size = chunk_size(&rest[..line_end - 1])?;
            let start = line_end + 1;
            if size == 0 {
                self.trailers_at = Some(self.pos + start);
                continue;
            }
            if self.body.len() + size > MAX_BODY {
                return Err("chunked body too large for this test server".into());
            }
            if rest.len() < start + size + 2 {
                return Ok(None);
            }
            if &rest[start + size..start + size + 2] != b"\r\n" {
                return Err(format!("chunk of {size} bytes not followed by CRLF"));
            }
            self.body.extend_from_slice(&rest[start..start + size]);
            self.pos += start + size + 2;
        }
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1), without its CRLF.
fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let ext = &line[digits..];
    let ext_ok = ext.is_empty()
        || (ext.trim_ascii_start().starts_with(b";")
            && ext
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)));
    if digits == 0 || !ext_ok {
        return Err(format!(
            "invalid chunk size line {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    let text = std::str::from_utf8(&line[..digits]).unwrap_or("");
    usize::from_str_radix(text, 16)
        .ok()
        .filter(|&n| n <= MAX_BODY)
        .ok_or_else(|| format!("chunk size {text} too large"))
}

/// The trailer section after the last chunk: `Ok(Some(len))` with its length including the
/// final CRLF, `Ok(None)` while incomplete.
fn trailer_section(data: &[u8]) -> Result<Option<usize>, String> {
    let mut slots = vec![httparse::EMPTY_HEADER; 256];
    match httparse::parse_headers(data, &mut slots) {
        Ok(httparse::Status::Complete((len, _))) => {
            if crlf_only(&data[..len]) {
                Ok(Some(len))
            } else {
                Err("trailer section with a bare CR or LF".into())
            }
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("trailer section does not parse: {e}")),
    }
}

/// Serves one connection from the gateway until it closes or breaks a framing rule.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, script: Script) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        // The head.
        let head = loop {
            match parse_request_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() > MAX_HEAD => {
                    shared.violation("request head larger than 1 MiB", &buf);
                    return;
                }
                Ok(None) => {}
                Err(reason) => {
                    shared.violation(reason, &buf);
                    return;
                }
            }
            match fill(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => {
                    if !buf.is_empty() {
                        shared.violation("connection closed in the middle of a request head", &buf);
                    }
                    return;
                }
                Ok(_) => {}
            }
        };
        let raw_head = buf[..head.len].to_vec();
        if !crlf_only(&raw_head) {
            shared.violation("request head with a bare CR or LF", &raw_head);
            return;
        }
        let framing = match request_framing(&head) {
            Ok(f) => f,
            Err(reason) => {
                shared.violation(reason, &raw_head);
                return;
            }
        };

        // The body.
        let (body, end) = match framing {
            BodyFraming::None => (Vec::new(), head.len),
            BodyFraming::Length(n) => {
                while buf.len() < head.len + n {
                    if !matches!(fill(&mut stream, &mut buf).await, Ok(k) if k > 0) {
                        shared.violation(
                            format!("connection closed in the middle of a {n}-byte body"),
                            &raw_head,
                        );
                        return;
                    }
                }
                (buf[head.len..head.len + n].to_vec(), head.len + n)
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder {
                    pos: head.len,
                    ..ChunkedDecoder::default()
                };
                loop {
                    match decoder.advance(&buf) {
                        Ok(Some(end)) => break (std::mem::take(&mut decoder.body), end),
                        Ok(None) => {}
                        Err(reason) => {
                            shared.violation(reason, &raw_head);
                            return;
                        }
                    }
                    if !matches!(fill(&mut stream, &mut buf).await, Ok(k) if k > 0) {
                        shared.violation(
                            "connection closed in the middle of a chunked body",
                            &raw_head,
                        );
                        return;
                    }
                }
            }
        };
        buf.drain(..end);

        for reason in other_rules(&head) {
            shared.violation(reason, &raw_head);
        }
        let request = Recorded {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
            raw_head,
        };
        let reply = script(&request);
        shared.record(request);
        for (i, piece) in reply.pieces.iter().enumerate() {
            if i > 0 {
                // The pieces arrive apart on purpose: what a scripted reply is for.
                tokio::time::sleep(PIECE_GAP).await;
            }
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
        if reply.close {
            return;
        }
    }
}

/// How [`raw_exchange_with`] talks to the server. `Exchange::default()`: one write, no
/// half-close, read for at most 5 s.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Offsets at which the bytes are cut into separate writes. Each piece is written and the
    /// task yields before the next; with `TCP_NODELAY` the pieces usually leave as separate
    /// segments, though the server may still read several at once.
    pub split_at: Vec<usize>,
    /// Shut the writing side down after the last byte (the server then reads end of stream).
    pub half_close: bool,
    /// How long to read at most; reading also ends when the server closes.
    pub deadline: Duration,
    /// Stop reading as soon as this many complete responses have arrived.
    pub stop_after: Option<usize>,
    /// Bind the client socket to this local address first (any of `127.0.0.0/8` works on
    /// Linux): the gateway then sees it as the peer, e.g. in `X-Forwarded-For`.
    pub local_ip: Option<IpAddr>,
    /// `head_answers[i]` is true when the `i`-th response answers a `HEAD` request (it has no
    /// body, whatever its headers say).
    pub head_answers: Vec<bool>,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            split_at: Vec::new(),
            half_close: false,
            deadline: Duration::from_secs(5),
            stop_after: None,
            local_ip: None,
            head_answers: Vec::new(),
        }
    }
}

/// One HTTP/1.x response as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The minor version: `1` for HTTP/1.1.
    pub version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Every header line in order, names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body without its framing (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name` (case-insensitive) as text (`None` when absent or
    /// not UTF-8).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The body as JSON; panics, showing the body, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("JSON body ({e}): {:?}", String::from_utf8_lossy(&self.body))
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a connection received, split into responses.
#[derive(Debug, Clone, Default)]
pub struct RawAnswer {
    /// Every byte received.
    pub bytes: Vec<u8>,
    /// The complete responses, in order.
    pub responses: Vec<RawResponse>,
    /// The bytes after the last complete response: an incomplete one, or garbage.
    pub rest: Vec<u8>,
    /// Why `rest` is not the start of a response, when it is not.
    pub malformed: Option<String>,
    /// The server closed the connection (end of stream or reset) before the deadline.
    pub closed: bool,
    /// Writing the request failed (the server may have closed early).
    pub write_error: Option<String>,
    /// Reading ended with this error (typically a reset).
    pub read_error: Option<String>,
}

impl RawAnswer {
    /// Splits `bytes` into responses. `closed` says whether the connection ended after them
    /// (a response without a length then runs to the end); `head_answers` as in
    /// [`Exchange::head_answers`].
    pub fn parse(bytes: &[u8], closed: bool, head_answers: &[bool]) -> RawAnswer {
        let mut answer = RawAnswer {
            bytes: bytes.to_vec(),
            closed,
            ..RawAnswer::default()
        };
        let mut at = 0;
        while at < bytes.len() {
            let head = head_answers
                .get(answer.responses.len())
                .copied()
                .unwrap_or(false);
            match parse_response(&bytes[at..], closed, head) {
                Ok(Some((response, used))) => {
                    answer.responses.push(response);
                    at += used;
                }
                Ok(None) => break,
                Err(reason) => {
                    answer.malformed = Some(reason);
                    break;
                }
            }
        }
        answer.rest = bytes[at..].to_vec();
        answer
    }

    /// The status codes of the complete responses, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }

    /// The response when exactly one came and nothing else followed it.
    pub fn single(&self) -> Option<&RawResponse> {
        match self.responses.as_slice() {
            [one] if self.rest.is_empty() => Some(one),
            _ => None,
        }
    }

    /// A one-line account for failure messages: statuses, whether the server closed, and
    /// any bytes that were not a complete response.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "statuses {:?}, {}",
            self.statuses(),
            if self.closed { "closed" } else { "left open" }
        );
        if !self.rest.is_empty() {
            let shown = &self.rest[..self.rest.len().min(200)];
            s.push_str(&format!(", then {:?}", String::from_utf8_lossy(shown)));
        }
        if let Some(m) = &self.malformed {
            s.push_str(&format!(" ({m})"));
        }
        if let Some(e) = &self.write_error {
            s.push_str(&format!(", write failed: {e}"));
        }
        if let Some(e) = &self.read_error {
            s.push_str(&format!(", read failed: {e}"));
        }
        s
    }
}

/// The response at the start of `data`: `Ok(None)` while incomplete.
fn parse_response(
    data: &[u8],
    closed: bool,
    head_request: bool,
) -> Result<Option<(RawResponse, usize)>, String> {
    let mut slots = vec![httparse::EMPTY_HEADER; 256];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("response head does not parse: {e}")),
    };
    let mut response = RawResponse {
        version: res.version.unwrap_or_default(),
        status: res.code.unwrap_or_default(),
        reason: res.reason.unwrap_or_default().to_string(),
        headers: res
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    let status = response.status;
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((response, len)));
    }
    let codings = list_items(values(&response.headers, "transfer-encoding"));
    if codings.last().map(Vec::as_slice) == Some(b"chunked") {
        let mut decoder = ChunkedDecoder {
            pos: len,
            ..ChunkedDecoder::default()
        };
        return match decoder.advance(data)? {
            Some(end) => {
                response.body = decoder.body;
                Ok(Some((response, end)))
            }
            None => Ok(None),
        };
    }
    if codings.is_empty() {
        if let Some(n) = response.header("content-length") {
            let n: usize = std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| {
                    format!("response Content-Length {:?}", String::from_utf8_lossy(n))
                })?;
            if data.len() < len + n {
                return Ok(None);
            }
            response.body = data[len..len + n].to_vec();
            return Ok(Some((response, len + n)));
        }
    }
    // Delimited by the end of the connection.
    if !closed {
        return Ok(None);
    }
    response.body = data[len..].to_vec();
    Ok(Some((response, data.len())))
}

/// Connects to `addr` (from `local_ip` when given).
async fn connect(addr: SocketAddr, local_ip: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = local_ip else {
        return TcpStream::connect(addr).await;
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// Writes `bytes` to a new connection to `addr` in one piece, keeps the writing side open,
/// and reads until the server closes or 5 s pass; see [`raw_exchange_with`].
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawAnswer {
    raw_exchange_with(addr, bytes, &Exchange::default()).await
}

/// Writes `bytes` to a new connection to `addr` as `how` says, reading at the same time
/// (so an early answer and close are seen), until the server closes, `how.deadline` passes
/// or `how.stop_after` responses arrived; returns what came back, split into responses.
/// Panics only when the connection cannot be opened.
pub async fn raw_exchange_with(addr: SocketAddr, bytes: &[u8], how: &Exchange) -> RawAnswer {
    let mut stream = connect(addr, how.local_ip)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + how.deadline;
    let (mut rd, mut wr) = stream.split();

    let write = async {
        let mut cuts: Vec<usize> = how
            .split_at
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < bytes.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        cuts.push(bytes.len());
        let mut from = 0;
        for to in cuts {
            wr.write_all(&bytes[from..to]).await?;
            wr.flush().await?;
            from = to;
            tokio::task::yield_now().await;
        }
        if how.half_close {
            wr.shutdown().await?;
        }
        Ok::<(), std::io::Error>(())
    };

    let read = async {
        let mut got = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut closed = false;
        let mut error = None;
        loop {
            match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => {
                    got.extend_from_slice(&chunk[..n]);
                    if let Some(k) = how.stop_after {
                        let so_far = RawAnswer::parse(&got, false, &how.head_answers);
                        if so_far.responses.len() >= k {
                            break;
                        }
                    }
                }
                Ok(Err(e)) => {
                    closed = true;
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        (got, closed, error)
    };

    let (written, (got, closed, read_error)) = tokio::join!(write, read);
    let mut answer = RawAnswer::parse(&got, closed, &how.head_answers);
    answer.write_error = written.err().map(|e| e.to_string());
    answer.read_error = read_error;
    answer
}

/// Writes `bytes` on a new connection to `addr` and returns the first response, read within
/// `limit`; panics, saying what came instead, when no whole response did.
pub async fn first_response(addr: SocketAddr, bytes: &[u8], limit: Duration) -> RawResponse {
    let how = Exchange {
        deadline: limit,
        stop_after: Some(1),
        ..Exchange::default()
    };
    let answer = raw_exchange_with(addr, bytes, &how).await;
    match answer.responses.first() {
        Some(response) => response.clone(),
        None => panic!("no whole response within {limit:?}: {}", answer.summary()),
    }
}

/// Reads one response off `stream` within `limit`; panics, saying what came instead, when the
/// connection ends or the time passes before a whole response arrived.
pub async fn read_response(stream: &mut TcpStream, limit: Duration) -> RawResponse {
    let deadline = tokio::time::Instant::now() + limit;
    let mut wire = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let answer = RawAnswer::parse(&wire, false, &[]);
        if let Some(response) = answer.responses.into_iter().next() {
            return response;
        }
        if let Some(m) = answer.malformed {
            panic!("not a response ({m}): {:?}", String::from_utf8_lossy(&wire));
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no whole response within {limit:?}"))
            .unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a whole response: {:?}",
            String::from_utf8_lossy(&wire)
        );
        wire.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `io` until the peer closes it (end of stream or an error) or `limit` passes; returns
/// every byte read and, when it closed, how long that took (`None`: still open).
pub async fn read_until_closed<T: AsyncRead + Unpin>(
    io: &mut T,
    limit: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let start = tokio::time::Instant::now();
    let mut all = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match tokio::time::timeout_at(start + limit, io.read(&mut buf)).await {
            Err(_) => return (all, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (all, Some(start.elapsed())),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_by_length_chunks_and_close() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok\
            HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nt: 1\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n\
            HTTP/1.0 500 Oops\r\n\r\nrest of it";
        let a = RawAnswer::parse(wire, true, &[false, false, false, true]);
        assert_eq!(a.statuses(), [200, 404, 204, 200, 500]);
        assert_eq!(a.responses[0].body, b"ok");
        assert_eq!(a.responses[1].body, b"abc");
        assert!(a.responses[3].body.is_empty());
        assert_eq!(a.responses[4].body, b"rest of it");
        assert_eq!(a.responses[4].version, 0);
        assert!(a.rest.is_empty());
        // Left open: the close-delimited one is not complete yet.
        let a = RawAnswer::parse(wire, false, &[false, false, false, true]);
        assert_eq!(a.statuses(), [200, 404, 204, 200]);
        assert!(a.rest.starts_with(b"HTTP/1.0 500"));
        assert!(a.single().is_none());
        let a = RawAnswer::parse(b"HTTP/1.1 400 Bad\r\ncontent-length: 0\r\n\r\n", true, &[]);
        assert_eq!(a.single().map(|r| r.status), Some(400));
        let a = RawAnswer::parse(b"garbage\r\n\r\n", true, &[]);
        assert!(a.responses.is_empty() && a.malformed.is_some());
    }

    #[test]
    fn chunked_bodies_are_read_strictly() {
        let decode = |b: &[u8]| ChunkedDecoder::default().advance(b);
        assert_eq!(decode(b"5\r\nhello\r\n0\r\n\r\n"), Ok(Some(15)));
        assert_eq!(decode(b"5\r\nhello\r\n0\r\nx: y\r\n\r\nNEXT"), Ok(Some(21)));
        assert_eq!(decode(b"5\r\nhel"), Ok(None));
        assert_eq!(decode(b"5\r\nhello\r\n0\r\n"), Ok(None));
        assert!(decode(b"5\nhello\r\n0\r\n\r\n").is_err());
        assert!(decode(b"5\r\nhelloXX0\r\n\r\n").is_err());
        assert!(decode(b"zz\r\n").is_err());
        assert!(decode(b"-5\r\n").is_err());
        assert!(decode(b"5 x\r\n").is_err());
        assert!(decode(b"ffffffffffffffffffff\r\n").is_err());
        assert!(decode(b"0\r\nbad trailer\r\n\r\n").is_err());
        // Resumes after the last whole chunk.
        let mut d = ChunkedDecoder::default();
        assert_eq!(d.advance(b"3\r\nabc\r\n2\r\nd"), Ok(None));
        assert_eq!(d.advance(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), Ok(Some(20)));
        assert_eq!(d.body, b"abcde");
    }

    /// One request that is answered: read until its answer.
    async fn send(up: &RecordingUpstream, wire: &[u8]) -> RawAnswer {
        let how = Exchange {
            stop_after: Some(1),
            ..Exchange::default()
        };
        raw_exchange_with(up.addr, wire, &how).await
    }

    #[tokio::test]
    async fn the_recording_upstream_records_and_flags() {
        let up = RecordingUpstream::start().await;
        let a = send(
            &up,
            b"POST /a?b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(a.statuses(), [200]);
        assert_eq!(a.responses[0].body, b"ok");
        assert!(up.wait_for_requests(1, Duration::from_secs(5)).await);
        let r = &up.requests()[0];
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/a?b"));
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("HOST"), Some(&b"h"[..]));
        assert!(r.raw_head.ends_with(b"chunked\r\n\r\n"));

        // Two requests on one connection; HEAD gets no body.
        let how = Exchange {
            stop_after: Some(2),
            head_answers: vec![true, false],
            ..Exchange::default()
        };
        let a = raw_exchange_with(
            up.addr,
            b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nPUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
            &how,
        )
        .await;
        assert_eq!(a.statuses(), [200, 200], "{}", a.summary());
        assert!(a.rest.is_empty());
        assert_eq!(up.requests()[2].body, b"abc");
        assert!(up.violations().is_empty(), "{:?}", up.violations());

        // Ambiguous framing: flagged, not recorded, not answered.
        for wire in [
            &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\nHost: h\n\n",
        ] {
            let before = up.violations().len();
            let a = raw_exchange(up.addr, wire).await;
            assert!(a.responses.is_empty() && a.closed, "{}", a.summary());
            assert_eq!(up.violations().len(), before + 1);
        }
        assert_eq!(up.requests().len(), 3);

        // No Host: recorded and answered, and flagged.
        let a = send(&up, b"GET /nohost HTTP/1.1\r\n\r\n").await;
        assert_eq!(a.statuses(), [200]);
        assert_eq!(up.requests().len(), 4);
        assert_eq!(up.violations().last().unwrap().reason, "no Host");
    }
}
