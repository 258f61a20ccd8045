//! On-disk framing of the history log: segment header and `[len u32][crc32c u32][payload]`
//! records. Pure encode/decode over bytes; no I/O here. Decoding never panics on any input.
use std::io;

use bytes::Bytes;

use super::StoredEvent;

/// Every segment file starts with this magic (format version in the last byte) followed by
/// the segment's first sequence (u64 LE), which must match the file name.
pub const SEGMENT_MAGIC: [u8; 8] = *b"QSLOG\0\0\x01";
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// `len` (u32 LE, payload bytes) then `crc` (u32 LE, CRC32C of the four `len` bytes followed by
/// the payload, so a corrupt length is caught as well as a corrupt payload).
pub const RECORD_HEADER_LEN: usize = 8;
/// Largest payload the log writes or accepts when reading: a guard against a corrupt length
/// making a reader allocate gigabytes. Far above any publish body limit.
pub const MAX_PAYLOAD: usize = 256 << 20;

const FLAG_PRIVATE: u8 = 1;

pub fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// Whether `h` is a valid header for the segment whose name says `first_seq`.
pub fn is_segment_header(h: &[u8], first_seq: u64) -> bool {
    h.len() == SEGMENT_HEADER_LEN as usize
        && h[..8] == SEGMENT_MAGIC
        && h[8..] == first_seq.to_le_bytes()
}

fn payload_len(ev: &StoredEvent) -> usize {
    8 + 8
        + 1
        + 4
        + ev.id.len()
        + 4
        + ev.topics.iter().map(|t| 4 + t.len()).sum::<usize>()
        + 4
        + ev.frame.len()
}

fn put_len(out: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| too_large())?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "history record too large")
}

/// Appends the framed record for `ev` to `out`; returns the bytes added. On error `out` is
/// left as it was.
pub fn encode(ev: &StoredEvent, out: &mut Vec<u8>) -> io::Result<usize> {
    let len = payload_len(ev);
    if len > MAX_PAYLOAD {
        return Err(too_large());
    }
    let start = out.len();
    out.reserve(RECORD_HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ev.seq.to_le_bytes());
    out.extend_from_slice(&ev.unix_ms.to_le_bytes());
    out.push(if ev.private { FLAG_PRIVATE } else { 0 });
    // Every length below is bounded by `len <= MAX_PAYLOAD < u32::MAX`, so these cannot fail;
    // the `?` keeps that argument local anyway.
    let body = (|| {
        put_len(out, ev.id.len())?;
        out.extend_from_slice(ev.id.as_bytes());
        put_len(out, ev.topics.len())?;
        for t in ev.topics.iter() {
            put_len(out, t.len())?;
            out.extend_from_slice(t.as_bytes());
        }
        put_len(out, ev.frame.len())?;
        out.extend_from_slice(&ev.frame);
        Ok(())
    })();
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    let crc = record_crc(&out[start..start + 4], &out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

pub fn record_crc(len_bytes: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_bytes), payload)
}

/// Splits a record header into (payload length, stored CRC).
pub fn split_header(h: [u8; RECORD_HEADER_LEN]) -> (usize, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// A payload whose structure has been validated; borrowed from the read buffer.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub seq: u64,
    pub unix_ms: u64,
    pub private: bool,
    pub id: &'a str,
    topic_count: usize,
    topics: &'a [u8],
    pub frame: &'a [u8],
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// Validates the whole payload structure (lengths, UTF-8 of id and topics, no trailing bytes).
pub fn parse(payload: &[u8]) -> Option<Parsed<'_>> {
    let mut c = Cursor(payload);
    let seq = c.u64()?;
    let unix_ms = c.u64()?;
    let flags = c.take(1)?[0];
    if flags & !FLAG_PRIVATE != 0 {
        return None;
    }
    let id = c.str()?;
    let topic_count = c.u32()?;
    let topics_start = c.0;
    for _ in 0..topic_count {
        c.str()?;
    }
    let topics = &topics_start[..topics_start.len() - c.0.len()];
    let frame_len = c.u32()?;
    let frame = c.take(frame_len)?;
    if !c.0.is_empty() {
        return None;
    }
    Some(Parsed {
        seq,
        unix_ms,
        private: flags & FLAG_PRIVATE != 0,
        id,
        topic_count,
        topics,
        frame,
    })
}

impl Parsed<'_> {
    pub fn to_event(&self) -> StoredEvent {
        let mut c = Cursor(self.topics);
        let topics: Box<[Box<str>]> = (0..self.topic_count)
            .map_while(|_| c.str().map(Box::from))
            .collect();
        StoredEvent {
            seq: self.seq,
            id: self.id.into(),
            topics,
            private: self.private,
            frame: Bytes::copy_from_slice(self.frame),
            unix_ms: self.unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> StoredEvent {
        StoredEvent {
            seq: 7,
            id: "urn:x".into(),
            topics: vec!["a".into(), "ü".into()].into_boxed_slice(),
            private: true,
            frame: Bytes::from_static(b"id: urn:x\ndata: hi\n\n"),
            unix_ms: 42,
        }
    }

    #[test]
    fn round_trip_and_every_corruption_is_rejected_without_panic() {
        let mut buf = vec![9u8; 3];
        let n = encode(&ev(), &mut buf).unwrap_or_default();
        assert_eq!(n, buf.len() - 3);
        let rec = &buf[3..];
        let (len, crc) = split_header([
            rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7],
        ]);
        assert_eq!(len, rec.len() - RECORD_HEADER_LEN);
        assert_eq!(crc, record_crc(&rec[..4], &rec[8..]));
        let got = parse(&rec[8..]).map(|p| p.to_event());
        assert_eq!(got.as_ref(), Some(&ev()));
        // Any single flipped bit in the record fails the CRC; truncated payloads fail parsing.
        for i in 0..rec.len() {
            let mut bad = rec.to_vec();
            bad[i] ^= 0x10;
            assert_ne!(
                u32::from_le_bytes([bad[4], bad[5], bad[6], bad[7]]),
                record_crc(&bad[..4], &bad[8..]),
                "flip at {i}"
            );
        }
        for cut in 0..rec.len() - 8 {
            assert!(parse(&rec[8..8 + cut]).is_none(), "cut at {cut}");
        }
    }
}
