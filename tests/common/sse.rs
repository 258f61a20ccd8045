//! Server-Sent Events on the test side: `SseParser`, a pure incremental parser following the HTML
//! "event stream interpretation" rules, and `SseStream`, which reads a response body only while the
//! caller awaits one of its methods (never in the background), so an unpolled stream is a stalled reader.
use std::collections::VecDeque;
use std::time::Duration;

use http::{HeaderMap, StatusCode, Version};
use tokio::time::Instant;

use super::client::{error_chain, BodyReader};

/// One dispatched event. Fields hold what *this* event's block said (`None` when the block had
/// no such field); the inherited last-event-ID of the HTML spec is `SseStream::last_event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    /// The `event:` value verbatim (`None`: the browser would report type `message`).
    pub event: Option<String>,
    /// `data:` lines joined with LF, the final LF removed.
    pub data: String,
    /// A valid `retry:` (ASCII digits only) seen in this block.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event with only `data`, to build expected values: `SseEvent::data("x").with_id("1")`.
    pub fn data(data: &str) -> Self {
        Self {
            data: data.to_owned(),
            ..Self::default()
        }
    }
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }
    pub fn with_event(mut self, event: &str) -> Self {
        self.event = Some(event.to_owned());
        self
    }
    pub fn with_retry(mut self, retry: u64) -> Self {
        self.retry = Some(retry);
        self
    }
}

/// What the parser produces, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    /// A comment line: everything after the leading `:`, verbatim (`":\n"` → `""`,
    /// `": hi\n"` → `" hi"`).
    Comment(String),
}

/// The result of a deadline-bounded read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Got(T),
    /// The body ended cleanly (HTTP/1.1 last chunk or content-length reached, h2 END_STREAM).
    Ended,
    /// The deadline passed first; the stream is still usable.
    TimedOut,
    /// The body failed (reset, connection closed mid-body, protocol error).
    Failed(String),
}

impl<T> Outcome<T> {
    pub fn got(self) -> Option<T> {
        match self {
            Outcome::Got(t) => Some(t),
            _ => None,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental SSE parser: feed arbitrary byte chunks, get complete items. Lines end at CRLF, LF
/// or CR (a CRLF split across chunks counts once); a leading UTF-8 BOM is skipped; an incomplete
/// line or block at end of stream is discarded, as the spec requires.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended a line with CR: a LF opening the next chunk belongs to it.
    after_cr: bool,
    seen_first_line: bool,
    data: String,
    has_data: bool,
    block_event: Option<String>,
    block_id: Option<String>,
    block_retry: Option<u64>,
    id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `chunk`, returning every item it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            self.end_line(&mut out);
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => rest = &rest[pos + 2..],
                    Some(_) => rest = &rest[pos + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[pos + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        out
    }

    /// The spec's last event ID string: the most recent `id:` value, applied at each blank line
    /// (also by blocks without data, which dispatch nothing).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The most recent valid `retry:` value, from any block.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    fn end_line(&mut self, out: &mut Vec<SseItem>) {
        let raw = std::mem::take(&mut self.line);
        let mut line: &[u8] = &raw;
        if !self.seen_first_line {
            self.seen_first_line = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.block_event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.id_buffer = value.to_owned();
                self.block_id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.block_retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        self.last_event_id.clone_from(&self.id_buffer);
        let event = self.block_event.take();
        let id = self.block_id.take();
        let retry = self.block_retry.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the LF appended after the last data line
        out.push(SseItem::Event(SseEvent {
            id,
            event,
            data,
            retry,
        }));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    Ended,
    Failed(String),
}

/// A response whose body is read as an event stream, only while a method here is awaited.
/// Dropping it closes the stream (HTTP/1.1: the connection; h2: RST_STREAM).
pub struct SseStream {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    reader: BodyReader,
    parser: SseParser,
    raw: Vec<u8>,
    /// Parsed, not yet consumed, in wire order. `next_event` takes the first event and leaves
    /// comments in place for `next_comment` (and vice versa).
    items: VecDeque<SseItem>,
    state: State,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("raw_len", &self.raw.len())
            .field("queued", &self.items.len())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SseStream {
    pub(crate) fn new(parts: http::response::Parts, reader: BodyReader) -> Self {
        Self {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            reader,
            parser: SseParser::new(),
            raw: Vec::new(),
            items: VecDeque::new(),
            state: State::Open,
        }
    }

    /// A response header as text (first value), for assertions.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next event, or `None` if the stream ended, failed or `within` passed first.
    pub async fn next_event(&mut self, within: Duration) -> Option<SseEvent> {
        self.next_event_outcome(within).await.got()
    }

    pub async fn next_event_outcome(&mut self, within: Duration) -> Outcome<SseEvent> {
        match self
            .next_where(within, |i| matches!(i, SseItem::Event(_)))
            .await
        {
            Outcome::Got(SseItem::Event(e)) => Outcome::Got(e),
            Outcome::Got(SseItem::Comment(_)) => unreachable!("filtered to events"),
            Outcome::Ended => Outcome::Ended,
            Outcome::TimedOut => Outcome::TimedOut,
            Outcome::Failed(e) => Outcome::Failed(e),
        }
    }

    /// The next comment line's text after `:` (`""` for a bare `:` heartbeat).
    pub async fn next_comment(&mut self, within: Duration) -> Option<String> {
        self.next_comment_outcome(within).await.got()
    }

    pub async fn next_comment_outcome(&mut self, within: Duration) -> Outcome<String> {
        match self
            .next_where(within, |i| matches!(i, SseItem::Comment(_)))
            .await
        {
            Outcome::Got(SseItem::Comment(c)) => Outcome::Got(c),
            Outcome::Got(SseItem::Event(_)) => unreachable!("filtered to comments"),
            Outcome::Ended => Outcome::Ended,
            Outcome::TimedOut => Outcome::TimedOut,
            Outcome::Failed(e) => Outcome::Failed(e),
        }
    }

    /// The next item of either kind, in wire order.
    pub async fn next_item_outcome(&mut self, within: Duration) -> Outcome<SseItem> {
        self.next_where(within, |_| true).await
    }

    /// Waits all of `within` for an event, for "nothing is delivered" assertions; returns the
    /// event if one arrived (`assert_eq!(s.expect_no_event(d).await, None)`). An ended stream
    /// returns `None` at once.
    pub async fn expect_no_event(&mut self, within: Duration) -> Option<SseEvent> {
        self.next_event(within).await
    }

    /// Reads (and queues) until the body ends; `true` only for a clean end within `within`.
    pub async fn wait_end(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.state == State::Open {
            if !self.read_once(deadline).await {
                return false;
            }
        }
        self.state == State::Ended
    }

    /// Every body byte received so far, exactly as sent.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// `raw()` as text (lossy), for readable assertion messages.
    pub fn raw_str(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The spec's last event ID seen so far (what a browser would resend as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// The last valid `retry:` value seen so far.
    pub fn retry(&self) -> Option<u64> {
        self.parser.reconnection_time()
    }

    /// `Some(reason)` once the body failed.
    pub fn failure(&self) -> Option<&str> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    async fn next_where(
        &mut self,
        within: Duration,
        pick: fn(&SseItem) -> bool,
    ) -> Outcome<SseItem> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.items.iter().position(pick) {
                if let Some(item) = self.items.remove(pos) {
                    return Outcome::Got(item);
                }
            }
            match &self.state {
                State::Ended => return Outcome::Ended,
                State::Failed(e) => return Outcome::Failed(e.clone()),
                State::Open => {}
            }
            if !self.read_once(deadline).await {
                return Outcome::TimedOut;
            }
        }
    }

    /// Reads one chunk (or the end) into the parser; `false` if the deadline passed first.
    async fn read_once(&mut self, deadline: Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.reader.next_chunk()).await {
            Err(_elapsed) => false,
            Ok(Ok(Some(chunk))) => {
                self.raw.extend_from_slice(&chunk);
                self.items.extend(self.parser.feed(&chunk));
                true
            }
            Ok(Ok(None)) => {
                self.state = State::Ended;
                true
            }
            Ok(Err(e)) => {
                self.state = State::Failed(error_chain(&*e));
                true
            }
        }
    }
}
