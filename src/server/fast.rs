//! The HTTP/1.1 fast path for subscriptions and publishes. A connection whose request is a
//! plain `GET` of the hub, or a `POST` of it with a small `Content-Length` body, is parsed here
//! (httparse), answered by the same handler as every other request, and its response or SSE
//! stream written straight to the socket — without hyper's per-connection buffers (8 KiB read +
//! 8 KiB write, kept for the connection's life), which were most of an idle subscriber's memory,
//! and without hyper's per-request machinery, about a seventh of a keep-alive publish's CPU.
//! Anything else (other methods and paths, HTTP/1.0, h2 prefaces, chunked or `Expect` bodies,
//! pipelined bytes) is handed to hyper with the bytes already read.
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Uri, Version};
use http_body::Body;
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;

use crate::http::{AppState, ConnInfo, HubBody, HUB_PATH};
use crate::sse::SseBody;
use crate::subscriber::ConnectionKill;

/// A head larger than this is hyper's to judge (it answers 431).
const MAX_HEAD: usize = 16 * 1024;
/// A publish body larger than this is read by hyper (which applies the configured limit as it
/// streams); smaller ones are read here, with their head, when they arrived with it.
const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// How long a finished stream's close (TLS close_notify) may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// First read size; most subscription heads and small publishes fit.
const FIRST_READ: usize = 1024;

/// A request this path serves: a `GET` (no body) or `POST` (its whole body) of the hub.
type FastRequest = Request<Full<Bytes>>;

/// What the next request on a connection asked for.
pub(super) enum Sniffed {
    /// A `GET` or `POST` of the hub, parsed (with its body): handled here.
    Serve(Box<FastRequest>),
    /// Anything else: hyper serves the connection, reading these bytes first.
    Hyper(Bytes),
    /// The client closed, failed, sent no complete head in time, or sent an HTTP/2 preface
    /// after an HTTP/1.1 request (RFC 9113 §3.4: only at the start of a connection).
    Gone,
}

/// Reads the next request (its head within `timeout`) and decides who serves it. `opening`:
/// nothing was served on the connection yet (only then may it start HTTP/2). A body is read
/// here only when it came with its head (already in the socket once the head is complete); one
/// still on its way is hyper's, so hyper's body timeout applies, and the handler answers an
/// unauthorized publish before any of it is read — a client cannot park a large body here.
pub(super) async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    timeout: Duration,
    opening: bool,
) -> Sniffed {
    let mut buf = Vec::with_capacity(FIRST_READ);
    let read = async {
        loop {
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            loop {
                match decide(&buf, opening) {
                    Some(Decision::Body(missing)) => {
                        match read_ready(io, &mut buf, missing).await {
                            Some(0) => return None,
                            Some(_) => continue,
                            None => return Some(Decision::Hyper),
                        }
                    }
                    Some(decision) => return Some(decision),
                    None => break,
                }
            }
            buf.reserve(FIRST_READ);
        }
    };
    let outcome = tokio::time::timeout(timeout, read).await;
    match outcome {
        Ok(Some(Decision::Serve(req))) => Sniffed::Serve(req),
        Ok(Some(Decision::Hyper)) => Sniffed::Hyper(Bytes::from(buf)),
        Ok(Some(Decision::Body(_) | Decision::Refuse) | None) | Err(_) => Sniffed::Gone,
    }
}

/// Appends up to `want` bytes the socket already holds, without waiting: `Some(0)` at EOF or on
/// an error, `None` when nothing is there yet (the read stays registered with the task's
/// waker, which is harmless: the caller hands `io` on).
async fn read_ready<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut Vec<u8>,
    want: usize,
) -> Option<usize> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let read = poll_fn(|cx| {
        let mut window = ReadBuf::new(&mut buf[start..]);
        Poll::Ready(match Pin::new(&mut *io).poll_read(cx, &mut window) {
            Poll::Ready(Ok(())) => Some(window.filled().len()),
            Poll::Ready(Err(_)) => Some(0),
            Poll::Pending => None,
        })
    })
    .await;
    buf.truncate(start + read.unwrap_or(0));
    read
}

enum Decision {
    Serve(Box<FastRequest>),
    Hyper,
    /// The head of a publish is complete; this many bytes of its body are missing.
    Body(usize),
    /// An HTTP/2 preface on a connection that already served HTTP/1.1.
    Refuse,
}

/// `None`: need more bytes of the head (never past `MAX_HEAD`).
fn decide(buf: &[u8], opening: bool) -> Option<Decision> {
    /// RFC 9113 §3.4: hyper tells h2 from HTTP/1.1 by these bytes, and waits for them without a
    /// time limit; the sniffer waits instead, within its own.
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const METHODS: [&[u8]; 2] = [b"GET ", b"POST "];
    let is_prefix = |word: &[u8]| {
        let n = buf.len().min(word.len());
        buf[..n] == word[..n]
    };
    if is_prefix(H2_PREFACE) {
        // "PRI" is no HTTP/1.1 method the hub serves; "P" and "PR" may still be a POST.
        if !opening && buf.len() >= 3 {
            return Some(Decision::Refuse);
        }
        if buf.len() < H2_PREFACE.len() {
            return None;
        }
    }
    if !METHODS.into_iter().any(is_prefix) {
        return Some(Decision::Hyper);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Some(Decision::Hyper),
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(len)) => served(&parsed, &buf[len..]),
        // A malformed head: hyper's rules (and its 400) apply.
        Err(_) => Some(Decision::Hyper),
    }
}

/// The request if it is one this path serves: HTTP/1.1 `GET` of the hub path without a body,
/// or `POST` of it with a `Content-Length` body of at most `MAX_BODY` that `rest` holds
/// exactly (`Body` while it holds less). Anything else — other methods and paths, chunked or
/// `Expect` bodies, upgrades, bytes pipelined after the request — is hyper's.
fn served(parsed: &httparse::Request<'_, '_>, rest: &[u8]) -> Option<Decision> {
    let hyper = Some(Decision::Hyper);
    let method = match parsed.method {
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        _ => return hyper,
    };
    let Some(target) = parsed.path.filter(|_| parsed.version == Some(1)) else {
        return hyper;
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != HUB_PATH {
        return hyper;
    }
    let mut length = None;
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        // A chunked body, a protocol switch or a 100-continue handshake is not ours to frame.
        if [&b"transfer-encoding"[..], b"upgrade", b"expect"]
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing))
        {
            return hyper;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9112 §6.3: digits only; a repeated length is hyper's to refuse.
            let digits = !h.value.is_empty() && h.value.len() <= 9;
            if length.is_some() || !digits || !h.value.iter().all(u8::is_ascii_digit) {
                return hyper;
            }
            length = Some(
                h.value
                    .iter()
                    .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
            );
        }
    }
    let length = length.unwrap_or(0);
    if (method == Method::GET && length > 0) || length > MAX_BODY {
        return hyper;
    }
    match rest.len().cmp(&length) {
        std::cmp::Ordering::Less => return Some(Decision::Body(length - rest.len())),
        std::cmp::Ordering::Greater => return hyper,
        std::cmp::Ordering::Equal => {}
    }
    let mut req = Request::new(Full::new(Bytes::copy_from_slice(rest)));
    *req.method_mut() = method;
    *req.version_mut() = Version::HTTP_11;
    let Ok(uri) = Uri::try_from(target) else {
        return hyper;
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for h in parsed.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return hyper;
        };
        let Ok(value) = HeaderValue::from_bytes(h.value) else {
            return hyper;
        };
        headers.append(name, value);
    }
    Some(Decision::Serve(Box::new(req)))
}

/// What became of a connection after a request on the fast path.
pub(super) enum First {
    /// Hyper serves it from here, reading these bytes first.
    Hyper(Bytes),
    /// A whole response was written and the client keeps the connection: sniff its next
    /// request (within the head timeout, like the one before).
    KeepAlive,
    /// An SSE stream to write: the response head, then the body as chunks.
    Stream(Bytes, Box<SseBody>),
    /// Close it.
    Close,
}

/// One request of a connection's fast-path phase (its first, or the next after a kept-alive
/// response): sniffs it and, when it is a subscription or a publish, runs the handler and writes
/// a whole response (a publish's answer, errors) or returns the stream.
/// Callers box this future: the task keeps the size of its largest state for its whole life.
pub(super) async fn first<I>(
    io: &mut I,
    state: Arc<AppState>,
    info: ConnInfo,
    stop: &mut watch::Receiver<bool>,
    opening: bool,
) -> First
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let sniffed = tokio::select! {
        s = sniff(io, super::HEADER_READ_TIMEOUT, opening) => s,
        () = super::stopped(stop) => return First::Close,
    };
    let req = match sniffed {
        Sniffed::Gone => return First::Close,
        Sniffed::Hyper(prefix) => return First::Hyper(prefix),
        Sniffed::Serve(req) => *req,
    };
    let client_closes = client_closes(&req);
    let resp = match crate::http::handle(state, info, req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    match body {
        // The connection closes when the stream ends: say so (RFC 9112 §9.6).
        HubBody::Sse(body) => First::Stream(head(&parts, None, true), body),
        HubBody::Full(data) => {
            // Shutting down: this is the connection's last response, and it says so.
            let closes = client_closes || *stop.borrow();
            let data = data.unwrap_or_default();
            let mut out = Out::whole(head(&parts, Some(data.len()), closes), &data);
            let sent = poll_fn(|cx| out.poll_send(io, cx)).await;
            if sent.is_ok() && !closes {
                return First::KeepAlive;
            }
            if sent.is_ok() {
                // A clean end (TLS close_notify, then the FIN), like hyper's.
                let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
            }
            First::Close
        }
    }
}

/// Does the request ask for the connection to close after the response?
fn client_closes<B>(req: &Request<B>) -> bool {
    req.headers().get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    })
}

/// The response head: status line, headers, `date`, `connection: close` when the connection
/// ends after this response, and the framing header.
fn head(parts: &http::response::Parts, length: Option<usize>, closes: bool) -> Bytes {
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(b"HTTP/1.1 ");
    h.extend_from_slice(parts.status.as_str().as_bytes());
    h.push(b' ');
    h.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    h.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        h.extend_from_slice(name.as_str().as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"date: ");
    h.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    h.extend_from_slice(b"\r\n");
    if closes {
        h.extend_from_slice(b"connection: close\r\n");
    }
    match length {
        Some(len) => {
            h.extend_from_slice(b"content-length: ");
            h.extend_from_slice(len.to_string().as_bytes());
            h.extend_from_slice(b"\r\n\r\n");
        }
        None => h.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
    }
    Bytes::from(h)
}

/// A connection's SSE stream after its head: a task of its own, sized only for this (the first
/// phase's task, with the sniffer and the handler, has ended). It writes the body as chunks until
/// it ends (then the terminating chunk and a clean close), the client goes away, or `kill`
/// fires (the reaper: past its deadline, or lagging without reading) — then, like hyper's
/// graceful shutdown, what is on its way may still go out for `KILL_GRACE`.
pub(super) struct Streaming<I> {
    io: I,
    out: Out,
    body: Box<SseBody>,
    kill: Arc<ConnectionKill>,
    finished: bool,
    /// Still watching the client's side for its close (see `ClientSide::Sent`).
    reading: bool,
    phase: Phase,
    /// Shutdown waits for every connection; this one holds its sender until it is closed.
    _done: mpsc::Sender<()>,
}

enum Phase {
    Streaming,
    /// Killed: the stream may still end cleanly until the timer fires.
    Grace(Pin<Box<Sleep>>),
    /// Ended cleanly: TLS close_notify, then the FIN, within the timer.
    Closing(Pin<Box<Sleep>>),
}

impl<I> Streaming<I> {
    pub(super) fn new(
        io: I,
        head: Bytes,
        body: Box<SseBody>,
        kill: Arc<ConnectionKill>,
        done: mpsc::Sender<()>,
    ) -> Self {
        Self {
            io,
            out: Out::new(head),
            body,
            kill,
            finished: false,
            reading: true,
            phase: Phase::Streaming,
            _done: done,
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Streaming<I> {
    /// Ready(Ok) when the body ended and everything is written; Ready(Err) when the client is
    /// gone or the connection failed.
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reading {
            match client_side(&mut self.io, cx) {
                ClientSide::Gone => {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()))
                }
                ClientSide::Sent => self.reading = false,
                ClientSide::Quiet => {}
            }
        }
        loop {
            if self.out.is_empty() && !self.finished {
                match Pin::new(&mut *self.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            self.out.chunk(data);
                        }
                    }
                    Poll::Ready(Some(Err(never))) => match never {},
                    Poll::Ready(None) => {
                        self.out.end();
                        self.finished = true;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else if self.out.only_head() {
                // Only the head is waiting: send it with the first frame when one is ready.
                if let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut *self.body).poll_frame(cx) {
                    if let Ok(data) = frame.into_data() {
                        self.out.chunk(data);
                    }
                }
            }
            ready!(self.out.poll_send(&mut self.io, cx))?;
            if self.finished {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Future for Streaming<I> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Streaming => {
                    if this.kill.poll_killed(cx).is_ready() {
                        this.phase = Phase::Grace(Box::pin(tokio::time::sleep(super::KILL_GRACE)));
                        continue;
                    }
                    match this.poll_stream(cx) {
                        Poll::Ready(Ok(())) => {
                            this.phase = Phase::Closing(Box::pin(tokio::time::sleep(CLOSE_GRACE)))
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        // The socket may be full (bytes or a TLS flush waiting), so the body
                        // would not see its deadline: watch it here and drop the connection
                        // when it passes (spec: closed no later than the token's `exp`).
                        Poll::Pending => {
                            if this.body.poll_expired(cx) {
                                tracing::debug!("stream past its deadline with a full socket: connection closed");
                                return Poll::Ready(());
                            }
                            return Poll::Pending;
                        }
                    }
                }
                Phase::Grace(timer) => {
                    let timer_done = timer.as_mut().poll(cx).is_ready();
                    match this.poll_stream(cx) {
                        Poll::Ready(Ok(())) => {
                            this.phase = Phase::Closing(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending if timer_done => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Phase::Closing(timer) => {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    return Pin::new(&mut this.io).poll_shutdown(cx).map(|_| ());
                }
            }
        }
    }
}

/// What reading the client's side while streaming found.
enum ClientSide {
    /// It closed (or broke) the connection.
    Gone,
    /// Nothing to read; registered for readability.
    Quiet,
    /// It sent bytes (a pipelined request, or garbage). They are not read any further: like
    /// hyper, the stream stops reading so a client cannot make the hub spin discarding its data,
    /// and a gone client is then noticed by the next write (data or heartbeat).
    Sent,
}

fn client_side<I: AsyncRead + Unpin>(io: &mut I, cx: &mut Context<'_>) -> ClientSide {
    let mut scratch = [0u8; 64];
    let mut buf = ReadBuf::new(&mut scratch);
    match Pin::new(&mut *io).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => ClientSide::Gone,
        Poll::Ready(Ok(())) => ClientSide::Sent,
        Poll::Ready(Err(_)) => ClientSide::Gone,
        Poll::Pending => ClientSide::Quiet,
    }
}

const CRLF: &[u8] = b"\r\n";
const END_CHUNK: &[u8] = b"0\r\n\r\n";

/// What follows the data in a write: nothing, the chunk's CRLF, the last chunk, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    None,
    Crlf,
    End,
}

/// Bytes waiting to be written, as up to three slices sent with one vectored write: a
/// chunk-size line, the data, and a tail. The response head goes out with the first chunk, in
/// one buffer (one copy per connection). Kept small: it lives in every stream's task, and
/// tokio rounds a task up to 256 or 384 bytes (a future of at most 152 bytes fits 256).
struct Out {
    /// The chunk's data; before the first chunk, the response head alone (`head_only`).
    data: Bytes,
    size: [u8; 18],
    /// Where the unsent part of the chunk-size line starts (`size.len()`: nothing to send).
    size_at: u8,
    tail: Tail,
    /// How much of the tail is sent.
    tail_at: u8,
    head_only: bool,
}

impl Out {
    /// A response head, held until the first chunk (`chunk`) or sent alone (`poll_send`).
    fn new(head: Bytes) -> Self {
        Self {
            head_only: !head.is_empty(),
            data: head,
            size: [0; 18],
            size_at: 18,
            tail: Tail::None,
            tail_at: 0,
        }
    }

    /// A whole response: head and body, one buffer.
    fn whole(head: Bytes, body: &[u8]) -> Self {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(&head);
        all.extend_from_slice(body);
        let mut out = Self::new(Bytes::new());
        out.data = Bytes::from(all);
        out
    }

    fn size_line(&self) -> &[u8] {
        &self.size[usize::from(self.size_at)..]
    }

    fn tail(&self) -> &'static [u8] {
        let all = match self.tail {
            Tail::None => &[][..],
            Tail::Crlf => CRLF,
            Tail::End => END_CHUNK,
        };
        &all[usize::from(self.tail_at).min(all.len())..]
    }

    /// Only the response head is waiting (no chunk queued behind it).
    fn only_head(&self) -> bool {
        self.head_only
    }

    fn is_empty(&self) -> bool {
        self.size_line().is_empty() && self.data.is_empty() && self.tail().is_empty()
    }

    /// After the last chunk: the terminating chunk. Only when no chunk is pending (a head
    /// still waiting goes out before it).
    fn end(&mut self) {
        debug_assert!(self.size_line().is_empty() && self.tail().is_empty());
        self.tail = Tail::End;
        self.tail_at = 0;
    }

    /// Frames `data` as one chunk (an empty frame is nothing to send). Behind a waiting head,
    /// head and chunk are joined into one buffer.
    fn chunk(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut line = [0u8; 18];
        let hex = format_hex(data.len(), &mut line[..16]);
        let len = hex + 2;
        line[hex..len].copy_from_slice(CRLF);
        if self.head_only {
            let mut all = Vec::with_capacity(self.data.len() + len + data.len() + CRLF.len());
            all.extend_from_slice(&self.data);
            all.extend_from_slice(&line[..len]);
            all.extend_from_slice(&data);
            all.extend_from_slice(CRLF);
            self.data = Bytes::from(all);
            self.head_only = false;
            return;
        }
        let start = self.size.len() - len;
        self.size[start..].copy_from_slice(&line[..len]);
        self.size_at = start as u8;
        self.data = data;
        self.tail = Tail::Crlf;
        self.tail_at = 0;
    }

    /// Writes everything pending (vectored), then flushes (TLS buffers records).
    fn poll_send<I: AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let slices = [
                IoSlice::new(self.size_line()),
                IoSlice::new(&self.data),
                IoSlice::new(self.tail()),
            ];
            let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Pin::new(&mut *io).poll_flush(cx)
    }

    fn advance(&mut self, mut n: usize) {
        let take = n.min(self.size_line().len());
        self.size_at += take as u8;
        n -= take;
        let take = n.min(self.data.len());
        let _ = self.data.split_to(take);
        if self.data.is_empty() {
            // Let go of the allocation (an empty slice of it would keep it alive).
            self.data = Bytes::new();
            self.head_only = false;
        }
        n -= take;
        self.tail_at = self
            .tail_at
            .saturating_add(n.min(usize::from(u8::MAX)) as u8);
        if self.tail().is_empty() {
            self.tail = Tail::None;
            self.tail_at = 0;
        }
    }
}

/// Writes `n` in lowercase hex at the start of `out`; returns the digit count.
fn format_hex(n: usize, out: &mut [u8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = 1;
    while digits < out.len() && n >> (4 * digits) != 0 {
        digits += 1;
    }
    for i in 0..digits {
        out[digits - 1 - i] = DIGITS[(n >> (4 * i)) & 0xf];
    }
    digits
}

/// An IO that yields `prefix` before reading from `inner`: how hyper gets the bytes the sniffer
/// already read.
pub(super) struct Prefixed<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Prefixed<I> {
    pub(super) fn new(prefix: Bytes, inner: I) -> Self {
        Self { prefix, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: fixed test inputs
mod tests {
    use super::*;

    /// The decision on a connection's first request.
    fn decide_first(buf: &[u8]) -> Option<Decision> {
        decide(buf, true)
    }

    /// RFC 9113 §3.4: the preface starts a connection; after an HTTP/1.1 request it is refused
    /// (hyper would switch protocols), while "P" and "PR" may still begin a POST.
    #[test]
    fn h2_preface_only_opens_a_connection() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert!(matches!(decide(preface, true), Some(Decision::Hyper)));
        assert!(matches!(decide(preface, false), Some(Decision::Refuse)));
        assert!(matches!(decide(b"PRI", false), Some(Decision::Refuse)));
        assert!(decide(b"PR", false).is_none());
        assert!(decide(b"P", false).is_none());
        let publish = b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(decide(publish, false), Some(Decision::Serve(_))));
    }

    #[test]
    fn hex_lines() {
        let mut b = [0u8; 16];
        for (n, s) in [
            (0usize, "0"),
            (1, "1"),
            (15, "f"),
            (16, "10"),
            (0x3a7f, "3a7f"),
        ] {
            let d = format_hex(n, &mut b);
            assert_eq!(&b[..d], s.as_bytes(), "{n}");
        }
        let d = format_hex(usize::MAX, &mut b);
        assert_eq!(&b[..d], b"ffffffffffffffff");
    }

    #[test]
    fn decides() {
        let ok = b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(decide_first(ok), Some(Decision::Serve(_))));
        assert!(decide_first(&ok[..20]).is_none(), "partial head waits");
        assert!(decide_first(b"GE").is_none());
        // A prefix of the h2 preface waits (hyper would wait for the rest without a limit).
        assert!(decide_first(b"P").is_none());
        assert!(decide_first(b"PRI * HTTP/2.0\r\n").is_none());
        assert!(decide_first(b"PO").is_none(), "a prefix of POST waits");
        assert!(matches!(decide_first(b"PUT"), Some(Decision::Hyper)));
        for other in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.0\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /.well-known/mercure HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.1\r\nBad Header\r\n\r\n",
            b"POST / HTTP/1.1\r\n\r\n",
        ] {
            assert_hyper(other);
        }
    }

    fn assert_hyper(buf: &[u8]) {
        assert!(
            matches!(decide_first(buf), Some(Decision::Hyper)),
            "{}",
            String::from_utf8_lossy(buf)
        );
    }

    fn served_request(buf: &[u8]) -> FastRequest {
        match decide_first(buf) {
            Some(Decision::Serve(req)) => *req,
            Some(Decision::Hyper) => panic!("handed to hyper: {}", String::from_utf8_lossy(buf)),
            None | Some(Decision::Body(_) | Decision::Refuse) => {
                panic!("not served: {}", String::from_utf8_lossy(buf))
            }
        }
    }

    #[test]
    fn publishes_are_read_whole_with_their_body() {
        use http_body::Body;
        let head = b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Type: \
            application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\n";
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"topic=a&data=hi");
        let req = served_request(&whole);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()[header::CONTENT_LENGTH], "15");
        assert_eq!(req.body().size_hint().exact(), Some(15));
        // The head alone, or part of the body: the rest is read if it is already there.
        assert!(matches!(decide_first(head), Some(Decision::Body(15))));
        assert!(matches!(
            decide_first(&whole[..whole.len() - 1]),
            Some(Decision::Body(1))
        ));
        assert!(
            decide_first(&head[..head.len() - 1]).is_none(),
            "partial head waits"
        );
        // No body at all is an empty one (the handler answers it).
        let empty = served_request(b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(empty.body().size_hint().exact(), Some(0));
        // Every split point: the head waits, then the body is asked for, byte by byte.
        for cut in 0..whole.len() {
            match decide_first(&whole[..cut]) {
                None => assert!(cut < head.len(), "waits past the head at {cut}"),
                Some(Decision::Body(n)) => assert_eq!(n, whole.len() - cut, "at {cut}"),
                _ => panic!("decided early at {cut}"),
            }
        }
        let zeros = b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 002\r\n\r\nab";
        assert_eq!(served_request(zeros).body().size_hint().exact(), Some(2));
        let mut largest =
            format!("POST /.well-known/mercure HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n")
                .into_bytes();
        largest.resize(largest.len() + MAX_BODY, b'x');
        assert_eq!(
            served_request(&largest).body().size_hint().exact(),
            Some(MAX_BODY as u64)
        );
        let many_headers = format!(
            "POST /.well-known/mercure HTTP/1.1\r\n{}\r\n",
            "X-A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        let mut pipelined = whole.clone();
        pipelined.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let big = format!(
            "POST /.well-known/mercure HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        for hyper in [
            &pipelined[..],
            big.as_bytes(),
            b"POST /.well-known/mercure HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /.well-known/mercure HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n",
            b"POST /.well-known/mercure HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            b"POST http://hub.test/.well-known/mercure HTTP/1.1\r\n\r\n",
            b"\r\nPOST /.well-known/mercure HTTP/1.1\r\n\r\n",
            many_headers.as_bytes(),
            b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 2\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
            b"POST /.well-known/mercure HTTP/1.1\r\nExpect: 100-continue\r\n\
              Content-Length: 2\r\n\r\n",
            b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 2\r\n\
              Content-Length: 2\r\n\r\nab",
            b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: +2\r\n\r\nab",
            b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 1234567890\r\n\r\n",
            b"POST /.well-known/mercure HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
            b"POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
        ] {
            assert_hyper(hyper);
        }
    }

    #[test]
    fn out_advances_across_slices() {
        let mut out = Out::new(Bytes::from_static(b"HEAD"));
        assert!(out.only_head());
        out.chunk(Bytes::from_static(b"hello"));
        assert!(!out.only_head());
        assert_eq!(
            &out.data[..],
            b"HEAD5\r\nhello\r\n",
            "head and first chunk joined"
        );
        out.advance(14);
        assert!(out.is_empty());
        out.chunk(Bytes::from_static(b"hi"));
        assert_eq!(out.size_line(), b"2\r\n");
        out.advance(2);
        assert_eq!(out.size_line(), b"\n");
        out.advance(2);
        assert_eq!(&out.data[..], b"i");
        out.advance(2);
        assert_eq!(out.tail(), b"\n");
        out.advance(1);
        assert!(out.is_empty());
        out.end();
        assert_eq!(out.tail(), END_CHUNK);
        out.advance(END_CHUNK.len());
        assert!(out.is_empty());
    }

    #[test]
    fn stream_task_fits_tokios_smaller_task_size() {
        // A spawned future of at most 152 bytes makes a 256-byte task; one byte more, 384.
        assert!(std::mem::size_of::<Streaming<tokio::net::TcpStream>>() <= 152);
    }
}
