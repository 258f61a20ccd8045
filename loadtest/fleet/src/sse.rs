//! Pure SSE reading and the fleet's update payload: an incremental `text/event-stream` parser
//! that keeps a few hundred bytes per stream, the payload encoder (send time, sequence, epoch,
//! padding) and the extractor that reads them back. No I/O, no allocation per event.

/// Bytes of a line (and of an event's first `data` line) kept; the rest is skipped. Our payload
/// puts its fields first, so padding never needs to be kept.
const KEEP: usize = 120;

/// The fields the fleet puts at the front of every update's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, Unix nanoseconds.
    pub sent_ns: u64,
    /// Publish sequence number within the epoch.
    pub seq: u64,
    /// Measurement epoch (one per publish phase).
    pub epoch: u32,
}

/// Builds an update's data: `{"t":<ns>,"s":<seq>,"e":<epoch>,"p":"xxx…"}`, padded with `p` so the
/// whole is at least `size` bytes.
pub fn encode_payload(stamp: Stamp, size: usize) -> String {
    let mut s = format!(
        "{{\"t\":{},\"s\":{},\"e\":{}",
        stamp.sent_ns, stamp.seq, stamp.epoch
    );
    let bare = s.len() + 1;
    if size > bare + 7 {
        s.push_str(",\"p\":\"");
        s.extend(std::iter::repeat_n('x', size - bare - 7));
        s.push('"');
    }
    s.push('}');
    s
}

/// Reads a payload built by [`encode_payload`]; `None` for anything else.
pub fn decode_payload(data: &[u8]) -> Option<Stamp> {
    Some(Stamp {
        sent_ns: number_after(data, b"\"t\":")?,
        seq: number_after(data, b"\"s\":")?,
        epoch: u32::try_from(number_after(data, b"\"e\":")?).ok()?,
    })
}

fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = data.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    data[at..at + digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query strings and forms).
pub fn percent_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// What one dispatched event carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseItem {
    /// An event whose data decoded as a fleet payload.
    Update(Stamp),
    /// An event with data we could not read (another client's update, or truncated).
    Foreign,
    /// A `:` comment line (preamble or heartbeat).
    Comment,
}

/// Incremental SSE parser: feed bytes as they arrive, get items back.
#[derive(Debug, Clone)]
pub struct SseParser {
    line: [u8; KEEP],
    line_len: u16,
    line_truncated: bool,
    data: [u8; KEEP],
    data_len: u16,
    has_data: bool,
    after_cr: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self {
            line: [0; KEEP],
            line_len: 0,
            line_truncated: false,
            data: [0; KEEP],
            data_len: 0,
            has_data: false,
            after_cr: false,
        }
    }
}

impl SseParser {
    pub fn feed(&mut self, input: &[u8], mut on_item: impl FnMut(SseItem)) {
        for &b in input {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut on_item);
                }
                _ => {
                    self.after_cr = false;
                    let len = usize::from(self.line_len);
                    if len < KEEP {
                        self.line[len] = b;
                        self.line_len += 1;
                    } else {
                        self.line_truncated = true;
                    }
                }
            }
        }
    }

    fn end_line(&mut self, on_item: &mut impl FnMut(SseItem)) {
        let line = &self.line[..usize::from(self.line_len)];
        if line.is_empty() && !self.line_truncated {
            if self.has_data {
                let data = &self.data[..usize::from(self.data_len)];
                on_item(decode_payload(data).map_or(SseItem::Foreign, SseItem::Update));
            }
            self.has_data = false;
            self.data_len = 0;
        } else if line.first() == Some(&b':') {
            on_item(SseItem::Comment);
        } else {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            // Only the first data line is kept: our payloads are one line.
            if name == b"data" && !self.has_data {
                self.has_data = true;
                self.data[..value.len()].copy_from_slice(value);
                self.data_len = value.len() as u16;
            }
        }
        self.line_len = 0;
        self.line_truncated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |i| out.push(i));
        }
        out
    }

    #[test]
    fn payload_round_trip_and_padding() {
        let stamp = Stamp {
            sent_ns: 1_764_000_000_123_456_789,
            seq: 42,
            epoch: 3,
        };
        let small = encode_payload(stamp, 0);
        assert_eq!(small, r#"{"t":1764000000123456789,"s":42,"e":3}"#);
        let padded = encode_payload(stamp, 512);
        assert_eq!(padded.len(), 512);
        assert_eq!(decode_payload(padded.as_bytes()), Some(stamp));
        assert_eq!(decode_payload(b"{\"status\":\"updated\"}"), None);
        assert_eq!(
            decode_payload(b"{\"t\":99999999999999999999,\"s\":1,\"e\":1}"),
            None
        );
    }

    #[test]
    fn mercure_stream_byte_by_byte() {
        let payload = encode_payload(
            Stamp {
                sent_ns: 5,
                seq: 6,
                epoch: 7,
            },
            300,
        );
        let wire = format!(":\n\nid: urn:uuid:0190\ndata: {payload}\n\n:\n");
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for b in wire.as_bytes() {
            p.feed(std::slice::from_ref(b), |i| out.push(i));
        }
        let update = SseItem::Update(Stamp {
            sent_ns: 5,
            seq: 6,
            epoch: 7,
        });
        assert_eq!(out, vec![SseItem::Comment, update, SseItem::Comment]);
    }

    #[test]
    fn nchan_crlf_and_foreign_events() {
        let got = items(&[
            b": hi\r\n\r\nid: 1:0\r\ndata: {\"t\":1,\"s\":2",
            b",\"e\":0}\r\n\r\ndata: hello\r\ndata: two\r\n\r\n",
            b"event: x\r\n\r\n",
        ]);
        let stamp = Stamp {
            sent_ns: 1,
            seq: 2,
            epoch: 0,
        };
        assert_eq!(
            got,
            vec![SseItem::Comment, SseItem::Update(stamp), SseItem::Foreign]
        );
    }

    #[test]
    fn percent_encoding() {
        let mut s = String::new();
        percent_encode("https://example.com/a b", &mut s);
        assert_eq!(s, "https%3A%2F%2Fexample.com%2Fa%20b");
    }
}
