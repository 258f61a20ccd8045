//! One segment file of the history log and a chunked positioned-read scanner over its records.
//! The scanner verifies every CRC it reads; it never reads past the bound it is given.
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Parsed, MAX_PAYLOAD, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// Reads are issued in chunks of this size so a replay costs a few syscalls per batch.
const CHUNK: usize = 64 << 10;

/// In-memory state of one segment. Only committed records (written, and synced when the log
/// is durable) are described here; pending appends live in the log's group buffer.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    /// Shared with a commit group being written outside the log's lock (`EventLog::begin_commit`).
    pub file: Arc<File>,
    /// From the file name; records in the segment are exactly `first_seq ..= last_seq()`.
    pub first_seq: u64,
    /// Committed length in bytes (header included); everything past it is garbage.
    pub len: u64,
    /// Byte offset of each record (offsets fit in u32: segments are capped below 4 GiB).
    pub offsets: Vec<u32>,
    /// Id hash of each record, so trimming can update the id index without reading the file.
    pub hashes: Vec<u64>,
    /// Largest `unix_ms` of the records, for retention by age.
    pub max_unix_ms: u64,
}

impl Segment {
    pub fn new(path: PathBuf, file: File, first_seq: u64) -> Self {
        Self {
            path,
            file: Arc::new(file),
            first_seq,
            len: SEGMENT_HEADER_LEN,
            offsets: Vec::new(),
            hashes: Vec::new(),
            max_unix_ms: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// `first_seq - 1` when empty.
    pub fn last_seq(&self) -> u64 {
        self.first_seq - 1 + self.count()
    }

    pub fn push(&mut self, offset: u64, hash: u64, unix_ms: u64) {
        // Offsets are checked against u32 before a record is accepted (see `EventLog::append`).
        self.offsets.push(offset as u32);
        self.hashes.push(hash);
        self.max_unix_ms = self.max_unix_ms.max(unix_ms);
    }

    /// Offset of the record `seq`, if it is in this segment.
    pub fn offset_of(&self, seq: u64) -> Option<u64> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.offsets.get(i).map(|&o| u64::from(o))
    }
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// The first sequence encoded in a segment file name, if the name is one of ours.
pub fn parse_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&s| s > 0)
}

pub enum Step<'a> {
    Record {
        offset: u64,
        payload: &'a [u8],
    },
    /// End of the bounded range reached exactly on a record boundary.
    End,
    /// The bytes at `pos()` are not a whole valid record (short, bad length, bad CRC).
    Invalid,
}

/// Sequential reader of records in `[pos, end)` with positioned reads.
pub struct Scanner<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
    chunk: usize,
}

impl<'f> Scanner<'f> {
    pub fn new(file: &'f File, pos: u64, end: u64, chunk_hint: usize) -> Self {
        Self {
            file,
            pos,
            end,
            buf: Vec::new(),
            buf_at: 0,
            chunk: chunk_hint.clamp(256, CHUNK),
        }
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Makes `[off, off + n)` available in `buf`; the caller checked it lies below `end`.
    fn fill(&mut self, off: u64, n: usize) -> io::Result<&[u8]> {
        let have = off >= self.buf_at && off + n as u64 <= self.buf_at + self.buf.len() as u64;
        if !have {
            let room = usize::try_from(self.end - off).unwrap_or(usize::MAX);
            let want = n.max(self.chunk).min(room);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, off)?;
            self.buf_at = off;
        }
        let start = (off - self.buf_at) as usize;
        Ok(&self.buf[start..start + n])
    }

    pub fn next_record(&mut self) -> io::Result<Step<'_>> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Step::End);
        }
        if self.end - pos < RECORD_HEADER_LEN as u64 {
            return Ok(Step::Invalid);
        }
        let mut h = [0u8; RECORD_HEADER_LEN];
        h.copy_from_slice(self.fill(pos, RECORD_HEADER_LEN)?);
        let (len, crc) = record::split_header(h);
        let total = RECORD_HEADER_LEN as u64 + len as u64;
        if len > MAX_PAYLOAD || self.end - pos < total {
            return Ok(Step::Invalid);
        }
        let rec = self.fill(pos, RECORD_HEADER_LEN + len)?;
        if record::record_crc(&rec[..4], &rec[RECORD_HEADER_LEN..]) != crc {
            return Ok(Step::Invalid);
        }
        self.pos = pos + total;
        let start = (pos - self.buf_at) as usize + RECORD_HEADER_LEN;
        Ok(Step::Record {
            offset: pos,
            payload: &self.buf[start..start + len],
        })
    }
}

/// Reads and parses the single record at `offset` (bounded by `end`).
pub fn read_one<R>(
    file: &File,
    offset: u64,
    end: u64,
    f: impl FnOnce(&Parsed<'_>) -> R,
) -> io::Result<R> {
    let mut sc = Scanner::new(file, offset, end, 1024);
    match sc.next_record()? {
        Step::Record { payload, .. } => match record::parse(payload) {
            Some(p) => Ok(f(&p)),
            None => Err(corrupt(offset)),
        },
        _ => Err(corrupt(offset)),
    }
}

pub fn corrupt(offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("history log record at offset {offset} is corrupt"),
    )
}
