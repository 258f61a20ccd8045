//! Pure HTTP/1.1 client-side framing for subscriber streams: the response head and the chunked
//! body decoder. Sync functions over bytes, no I/O; every malformed input is an `Err`, never a
//! panic.

/// What the subscriber needs from a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    /// Length of the head including the final blank line.
    pub head_len: usize,
}

/// Heads larger than this are refused (both servers send a few hundred bytes).
pub const MAX_HEAD: usize = 16 * 1024;

/// Parses a response head if `buf` holds a complete one: `Ok(None)` means "read more".
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, &'static str> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("response head too large")
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") {
        return Err("not an HTTP/1.x response");
    }
    let code = parts.next().ok_or("no status code")?;
    let status = std::str::from_utf8(code)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("bad status code")?;
    let mut chunked = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"transfer-encoding")
            && value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            chunked = true;
        }
    }
    Ok(Some(ResponseHead {
        status,
        chunked,
        head_len: end + 4,
    }))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; `ext` once a `;` extension started.
    Size {
        ext: bool,
        digits: u8,
    },
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last (zero) chunk: trailers until an empty line. `empty` = line so far is empty.
    Trailer {
        empty: bool,
    },
    Done,
}

/// Incremental `Transfer-Encoding: chunked` decoder holding a few bytes of state.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    remaining: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: ChunkState::Size {
                ext: false,
                digits: 0,
            },
            remaining: 0,
        }
    }
}

impl ChunkedDecoder {
    /// True once the terminating chunk and trailers were read: the stream ended cleanly.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Feeds raw body bytes, handing each run of payload bytes to `out`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(), &'static str> {
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                ChunkState::Size { ext, digits } => {
                    input = rest;
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.end_size(digits)?,
                        _ if ext => {}
                        b';' | b' ' | b'\t' => self.state = ChunkState::Size { ext: true, digits },
                        _ => {
                            let d = (b as char).to_digit(16).ok_or("bad chunk size")?;
                            if digits >= 15 {
                                return Err("chunk size too large");
                            }
                            self.remaining = self.remaining * 16 + u64::from(d);
                            self.state = ChunkState::Size {
                                ext,
                                digits: digits + 1,
                            };
                        }
                    }
                }
                ChunkState::SizeLf => {
                    input = rest;
                    if b != b'\n' {
                        return Err("bad chunk size line");
                    }
                    self.end_size(1)?;
                }
                ChunkState::Data => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    input = rest;
                    self.state = match b {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => Self::size_start(),
                        _ => return Err("missing CRLF after chunk"),
                    };
                }
                ChunkState::DataLf => {
                    input = rest;
                    if b != b'\n' {
                        return Err("missing LF after chunk");
                    }
                    self.state = Self::size_start();
                }
                ChunkState::Trailer { empty } => {
                    input = rest;
                    self.state = match b {
                        b'\n' if empty => ChunkState::Done,
                        b'\n' => ChunkState::Trailer { empty: true },
                        b'\r' => ChunkState::Trailer { empty },
                        _ => ChunkState::Trailer { empty: false },
                    };
                }
                ChunkState::Done => return Err("bytes after the last chunk"),
            }
        }
        Ok(())
    }

    fn size_start() -> ChunkState {
        ChunkState::Size {
            ext: false,
            digits: 0,
        }
    }

    fn end_size(&mut self, digits: u8) -> Result<(), &'static str> {
        if digits == 0 {
            return Err("empty chunk size");
        }
        self.state = if self.remaining == 0 {
            ChunkState::Trailer { empty: true }
        } else {
            ChunkState::Data
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_status_and_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n:";
        let head = parse_head(raw).ok().flatten();
        assert_eq!(
            head,
            Some(ResponseHead {
                status: 200,
                chunked: true,
                head_len: raw.len() - 4
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        let head = parse_head(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(
            head.ok().flatten().map(|h| (h.status, h.chunked)),
            Some((401, false))
        );
    }

    fn decode_split(raw: &[u8], split: usize) -> (Vec<u8>, bool) {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for part in [&raw[..split], &raw[split..]] {
            assert!(d.feed(part, |b| out.extend_from_slice(b)).is_ok());
        }
        (out, d.is_done())
    }

    #[test]
    fn chunked_any_split() {
        let raw =
            b"1\r\n:\r\n1b;ext=1\r\ndata: {\"t\":1,\"s\":2,\"e\":3}\n\n\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..=raw.len() {
            let (out, done) = decode_split(raw, split);
            assert_eq!(
                out, b":data: {\"t\":1,\"s\":2,\"e\":3}\n\n",
                "split {split}"
            );
            assert!(done);
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        let mut d = ChunkedDecoder::default();
        assert!(d.feed(b"zz\r\n", |_| {}).is_err());
        let mut d = ChunkedDecoder::default();
        assert!(d.feed(b"ffffffffffffffffff\r\n", |_| {}).is_err());
        let mut d = ChunkedDecoder::default();
        assert!(d.feed(b"2\r\nabX", |_| {}).is_err());
    }
}
