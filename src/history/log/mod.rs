//! `history/log`: the embedded durable history, a segmented append-only log in a data directory.
//! A synchronous engine driven by one writer (append, group `sync`, `trim`); it spawns nothing
//! and knows nothing of async: the hub's writer task owns it and decides when to commit. A
//! commit can also be split (`begin_commit`, `Group::write`, `end_commit`) so the write and
//! `fdatasync` run while readers use the log.
//!
//! # On disk
//! The directory holds segment files named by their first sequence, `{first_seq:020}.log`. A
//! segment is a 16-byte header (`QSLOG\0\0\x01`, then `first_seq` u64 LE) followed by records
//! `[len u32 LE][crc u32 LE][payload]`, where `crc` is the CRC32C of the four length bytes and
//! the payload, and the payload is `seq u64, unix_ms u64, flags u8 (bit 0: private),
//! id (u32 len + UTF-8), topic count u32, topics (u32 len + UTF-8 each), frame (u32 len + bytes)`,
//! all little-endian. Sequences are contiguous inside a segment, starting at `first_seq`. The
//! last segment is the active one; the others are sealed and only ever deleted whole.
//!
//! # Guarantees
//! - **Crash.** Every record appended before a successful [`EventLog::sync`] survives a crash
//!   (process or machine): `sync` is one `fdatasync` of the active segment, new segments are
//!   fsync'd with their directory when created, and a segment is fsync'd before it is sealed.
//!   Records appended after the last successful `sync` may survive whole or be lost; recovery
//!   never exposes a partial record: the last segment is cut after its last valid record (CRC,
//!   structure and sequence continuity checked). A damaged *sealed* segment (which only bit rot
//!   or outside interference can cause) is read up to its first bad record, reported in
//!   [`RecoveryReport::damaged_segments`], and left on disk untouched; its lost tail shows up
//!   as a sequence gap, which readers skip.
//! - **I/O error.** `append` only buffers in memory, except when it starts a new segment, which
//!   it does only at the start of a group (no pending appends), so an `append` error never
//!   discards other appends; an `InvalidInput` error (wrong sequence, oversized record) rejects
//!   just that event. When `sync`/`flush` fails (ENOSPC, EIO, …), *every* append since the last
//!   successful commit is discarded: the active segment is truncated back to its committed
//!   length, [`EventLog::last_seq`] falls back to [`EventLog::committed_seq`], and the error is
//!   returned, so the writer answers 503 to the whole group and may retry with the same
//!   sequences. If the truncation itself fails, the log refuses to write until a later attempt
//!   to truncate succeeds, so no new record can follow a partial one. The one residual case:
//!   if the disk refused the sync *and* the truncation and then the machine crashes, records of
//!   the failed group may reappear whole after recovery (never partially).
//! - **Sequences** are never reused: the active segment's name records the next sequence even
//!   when retention has dropped every event.
mod index;
mod record;
mod segment;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::hub::Update;
use index::IdIndex;
use segment::{Scanner, Segment, Step};

pub const DEFAULT_DATA_DIR: &str = "./quicksilver-data";
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Segments are capped at 1 GiB so record offsets fit in u32 even when a commit group
/// overshoots the segment size.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Where the log lives and how much it retains.
///
/// Retention is applied by [`EventLog::trim`], whole sealed segments at a time, oldest first;
/// the active segment is never deleted, so it may hold more than the limits allow:
/// - `max_events` is a replay promise: a segment is dropped only if at least `max_events`
///   events remain after dropping it (so between `max_events` and `max_events` + one segment
///   are retained, once that many were appended).
/// - `max_bytes` is a disk budget: segments are dropped while the total exceeds it.
/// - `max_age`: a segment is dropped once all of its events are at least `max_age` old.
///
/// A segment is closed when the next group's first record would take it past `segment_bytes`;
/// a group is never split, so a segment may exceed `segment_bytes` by at most one group.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub max_events: u64,
    pub max_bytes: u64,
    pub max_age: Option<Duration>,
}

impl LogConfig {
    /// The documented defaults in `dir`: 64 MiB segments, 1,000,000 events, 1 GiB, 7 days.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_events: DEFAULT_MAX_EVENTS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_age: Some(DEFAULT_MAX_AGE),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self::new(DEFAULT_DATA_DIR)
    }
}

/// An update as the log stores it: the `Update` fields plus its publication time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub id: Box<str>,
    pub topics: Box<[Box<str>]>,
    pub private: bool,
    pub frame: Bytes,
    /// Publication time (ms since the Unix epoch), for retention by age.
    pub unix_ms: u64,
}

impl StoredEvent {
    pub fn from_update(u: &Update, unix_ms: u64) -> Self {
        Self {
            seq: u.seq,
            id: u.id.clone(),
            topics: u.topics.clone(),
            private: u.private,
            frame: u.frame.clone(),
            unix_ms,
        }
    }

    pub fn into_update(self) -> Update {
        Update {
            seq: self.seq,
            id: self.id,
            topics: self.topics,
            private: self.private,
            frame: self.frame,
        }
    }
}

/// What `open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Retained events.
    pub events: u64,
    /// Bytes cut from the tail of the last segment (torn or corrupt records, garbage).
    pub truncated_bytes: u64,
    /// First retained sequence.
    pub first_seq: Option<u64>,
    /// Last sequence ever assigned (survives trimming); `None` for a brand-new log.
    pub last_seq: Option<u64>,
    /// Sealed segments with unreadable bytes (left on disk as they are).
    pub damaged_segments: usize,
    /// Bytes of sealed segments past their first bad record.
    pub unreadable_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Committed, retained events.
    pub events: u64,
    /// Committed bytes of all segments (headers included).
    pub bytes: u64,
    pub segments: usize,
    pub first_seq: Option<u64>,
    /// Last committed sequence (0 for a brand-new log).
    pub last_seq: u64,
}

/// Committed state of one segment, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub first_seq: u64,
    pub events: u64,
    pub bytes: u64,
    pub max_unix_ms: u64,
}

/// The log. One owner appends, commits and trims (`&mut self`); reads take `&self` and use
/// positioned reads, so they never disturb the writer's file position.
#[derive(Debug)]
pub struct EventLog {
    cfg: LogConfig,
    /// Never empty; the last one is active. Ordered by sequence.
    segments: Vec<Segment>,
    ids: IdIndex,
    events: u64,
    bytes: u64,
    /// Encoded records of the current group, not yet written.
    pending: Vec<u8>,
    /// (id hash, offset in the active segment, unix_ms) of each pending record.
    pending_recs: Vec<(u64, u64, u64)>,
    /// Committed with `flush` but not yet fdatasync'd.
    unsynced: bool,
    /// A failed commit could not truncate the active segment: bytes past `len` may be garbage.
    needs_repair: bool,
    /// A group taken by `begin_commit` and not yet ended: no append, roll or trim meanwhile.
    in_flight: bool,
    #[cfg(test)]
    fault: tests::Fault,
}

/// A commit group taken out of the log by [`EventLog::begin_commit`], written by
/// [`Group::write`] (no access to the log needed) and applied by [`EventLog::end_commit`].
#[derive(Debug)]
pub struct Group {
    file: Arc<File>,
    /// Where the group starts in the active segment (its committed length).
    at: u64,
    bytes: Vec<u8>,
    /// (id hash, offset in the active segment, unix_ms) of each record.
    recs: Vec<(u64, u64, u64)>,
    durable: bool,
    #[cfg(test)]
    fault: tests::Fault,
}

impl Group {
    /// Writes the group after the committed end of the active segment, then `fdatasync`s it
    /// for a durable commit. Readers never look past the committed end, so this may run while
    /// they read.
    pub fn write(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(e) = self.fault.before_write(&self.file, self.at, &self.bytes) {
            return Err(e);
        }
        self.file.write_all_at(&self.bytes, self.at)?;
        #[cfg(test)]
        if let Some(e) = self.fault.before_sync() {
            return Err(e);
        }
        if self.durable {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl EventLog {
    /// Opens (or creates) the log in `cfg.dir`: validates every segment, truncates a torn or
    /// corrupt tail of the last one, and rebuilds the id index.
    pub fn open(cfg: LogConfig) -> io::Result<(EventLog, RecoveryReport)> {
        if cfg.segment_bytes <= record::SEGMENT_HEADER_LEN || cfg.segment_bytes > MAX_SEGMENT_BYTES
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("segment size must be between 17 bytes and {MAX_SEGMENT_BYTES}"),
            ));
        }
        fs::create_dir_all(&cfg.dir)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&cfg.dir)? {
            let path = entry?.path();
            if let Some(first) = segment::parse_file_name(&path) {
                found.push((first, path));
            }
        }
        found.sort();
        let mut report = RecoveryReport::default();
        let mut ids = IdIndex::new();
        let mut segments = Vec::with_capacity(found.len() + 1);
        for (i, (first, path)) in found.iter().enumerate() {
            let is_last = i + 1 == found.len();
            let limit = found.get(i + 1).map_or(u64::MAX, |(f, _)| *f);
            let file = OpenOptions::new().read(true).write(is_last).open(path)?;
            let file_len = file.metadata()?.len();
            let mut seg = Segment::new(path.clone(), file, *first);
            let header_ok = recover_segment(&mut seg, file_len, limit, &mut ids)?;
            let bad = file_len.saturating_sub(seg.len);
            if is_last {
                if !header_ok {
                    seg.file.set_len(0)?;
                    seg.file
                        .write_all_at(&record::segment_header(seg.first_seq), 0)?;
                    seg.file.sync_data()?;
                    report.truncated_bytes += file_len;
                } else if bad > 0 {
                    seg.file.set_len(seg.len)?;
                    seg.file.sync_data()?;
                    report.truncated_bytes += bad;
                }
                if report.truncated_bytes > 0 {
                    tracing::warn!(
                        segment = %seg.path.display(),
                        bytes = report.truncated_bytes,
                        "history log: truncated a torn tail"
                    );
                }
            } else if !header_ok || bad > 0 {
                report.damaged_segments += 1;
                report.unreadable_bytes += if header_ok { bad } else { file_len };
                tracing::error!(
                    segment = %seg.path.display(),
                    valid_bytes = seg.len,
                    file_bytes = file_len,
                    "history log: sealed segment is damaged; reading it up to the first bad record"
                );
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(create_segment(&cfg.dir, 1)?);
        }
        let events = segments.iter().map(Segment::count).sum();
        let bytes = segments.iter().map(|s| s.len).sum();
        let log = EventLog {
            cfg,
            segments,
            ids,
            events,
            bytes,
            pending: Vec::new(),
            pending_recs: Vec::new(),
            unsynced: false,
            needs_repair: false,
            in_flight: false,
            #[cfg(test)]
            fault: tests::Fault::default(),
        };
        report.segments = log.segments.len();
        report.events = events;
        report.first_seq = log.first_seq();
        report.last_seq = Some(log.committed_seq()).filter(|&s| s > 0);
        Ok((log, report))
    }

    /// Last sequence appended, pending appends included; 0 for a brand-new log.
    pub fn last_seq(&self) -> u64 {
        self.committed_seq() + self.pending_recs.len() as u64
    }

    /// Last committed sequence: what readers see and, after `sync`, what survives a crash.
    pub fn committed_seq(&self) -> u64 {
        self.active().last_seq()
    }

    fn first_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.count() > 0)
            .map(|s| s.first_seq)
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty (see `open`, `roll`, `trim`).
        &self.segments[self.segments.len() - 1]
    }

    /// Buffers `ev` in the current group; nothing is written until `sync` or `flush`.
    /// `ev.seq` must be `last_seq() + 1`. See the module docs for what an error means.
    pub fn append(&mut self, ev: &StoredEvent) -> io::Result<()> {
        self.not_in_flight()?;
        let expected = self.last_seq() + 1;
        if ev.seq != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "history append out of order: got {}, expected {expected}",
                    ev.seq
                ),
            ));
        }
        let group_start = self.pending.is_empty();
        if group_start {
            self.repair()?;
        }
        let start = self.pending.len();
        let n = record::encode(ev, &mut self.pending)? as u64;
        if group_start
            && self.active().count() > 0
            && self.active().len + n > self.cfg.segment_bytes
        {
            if let Err(e) = self.roll() {
                self.pending.clear();
                return Err(e);
            }
        }
        let offset = self.active().len + start as u64;
        if offset > u64::from(u32::MAX) {
            self.pending.truncate(start);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "history commit group too large for one segment",
            ));
        }
        let hash = self.ids.hash(&ev.id);
        self.pending_recs.push((hash, offset, ev.unix_ms));
        Ok(())
    }

    /// Writes the group and `fdatasync`s it: when this returns `Ok`, every append so far is
    /// durable. On error the whole group is discarded (see the module docs).
    pub fn sync(&mut self) -> io::Result<()> {
        self.commit(true)
    }

    /// Writes the group without `fdatasync` (the non-durable mode): readers see it, a process
    /// crash keeps it, a machine crash may lose it. Errors as for `sync`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.commit(false)
    }

    fn commit(&mut self, durable: bool) -> io::Result<()> {
        let Some(mut group) = self.begin_commit(durable)? else {
            return Ok(());
        };
        let written = group.write();
        self.end_commit(group, written)
    }

    /// `sync`/`flush` in three steps, so a caller can write and `fdatasync` the group without
    /// holding the log (readers keep reading committed records meanwhile): this takes the
    /// pending group (`None`: nothing to write; a durable commit then syncs an earlier flush
    /// here), [`Group::write`] writes it, [`EventLog::end_commit`] applies the outcome. Until
    /// then `append`, `trim` and another `begin_commit` fail.
    pub fn begin_commit(&mut self, durable: bool) -> io::Result<Option<Group>> {
        self.not_in_flight()?;
        if self.pending.is_empty() {
            if durable && self.unsynced {
                self.active().file.sync_data()?;
                self.unsynced = false;
            }
            return Ok(None);
        }
        self.in_flight = true;
        Ok(Some(Group {
            file: Arc::clone(&self.active().file),
            at: self.active().len,
            bytes: std::mem::take(&mut self.pending),
            recs: std::mem::take(&mut self.pending_recs),
            durable,
            #[cfg(test)]
            fault: std::mem::take(&mut self.fault),
        }))
    }

    /// Applies a group's write outcome: on success its records become committed (visible to
    /// readers, durable if it was a durable commit); on error the whole group is discarded
    /// and the active segment truncated back (see the module docs). Returns `written`.
    pub fn end_commit(&mut self, group: Group, written: io::Result<()>) -> io::Result<()> {
        let Group {
            at,
            mut bytes,
            mut recs,
            durable,
            ..
        } = group;
        #[cfg(test)]
        {
            self.fault = group.fault;
        }
        self.in_flight = false;
        if let Err(e) = written {
            bytes.clear();
            recs.clear();
            (self.pending, self.pending_recs) = (bytes, recs);
            #[cfg(test)]
            if self.fault.skip_truncate() {
                self.needs_repair = true;
                return Err(e);
            }
            if self.active().file.set_len(at).is_err() {
                self.needs_repair = true;
            }
            return Err(e);
        }
        let last = self.segments.len() - 1;
        let active = &mut self.segments[last];
        for &(hash, offset, unix_ms) in &recs {
            let seq = active.last_seq() + 1;
            active.push(offset, hash, unix_ms);
            self.ids.insert(hash, seq);
        }
        active.len += bytes.len() as u64;
        self.events += recs.len() as u64;
        self.bytes += bytes.len() as u64;
        bytes.clear();
        recs.clear();
        // The buffers go back for the next group (no allocation per commit).
        (self.pending, self.pending_recs) = (bytes, recs);
        self.unsynced = !durable;
        Ok(())
    }

    fn not_in_flight(&self) -> io::Result<()> {
        if self.in_flight {
            return Err(io::Error::other(
                "history log: a commit group is still being written",
            ));
        }
        Ok(())
    }

    /// Cuts garbage left by a commit whose truncation failed, before anything new is written.
    fn repair(&mut self) -> io::Result<()> {
        if self.needs_repair {
            let len = self.active().len;
            self.active().file.set_len(len)?;
            self.needs_repair = false;
        }
        Ok(())
    }

    /// Seals the active segment (fsync'd, so sealed segments are always whole on disk) and
    /// starts the next one. Called only with no pending appends.
    fn roll(&mut self) -> io::Result<()> {
        self.active().file.sync_data()?;
        self.unsynced = false;
        let next = self.active().last_seq() + 1;
        let seg = create_segment(&self.cfg.dir, next)?;
        self.bytes += seg.len;
        self.segments.push(seg);
        Ok(())
    }

    /// Sequence of the earliest retained committed event whose id is `id`. A read error is
    /// logged and answered as "unknown".
    pub fn lookup(&self, id: &str) -> Option<u64> {
        self.try_lookup(id).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "history log: id lookup failed");
            None
        })
    }

    /// `lookup` with read errors reported. Candidates come from the hash index in sequence
    /// order; each is confirmed by reading its id from disk, so a hash collision cannot
    /// resolve to the wrong event.
    pub fn try_lookup(&self, id: &str) -> io::Result<Option<u64>> {
        let hash = self.ids.hash(id);
        for seq in self.ids.candidates(hash) {
            let Some(seg) = self.segment_of(seq) else {
                continue;
            };
            let Some(offset) = seg.offset_of(seq) else {
                continue;
            };
            if segment::read_one(&seg.file, offset, seg.len, |p| p.id == id)? {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    fn segment_of(&self, seq: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.last_seq() < seq);
        self.segments
            .get(i)
            .filter(|s| s.first_seq <= seq && seq <= s.last_seq())
    }

    /// Appends to `out` at most `max` retained committed events with `after < seq <= up_to`,
    /// in order, read from disk with positioned reads of just the needed byte range.
    pub fn read_after(
        &self,
        after: u64,
        up_to: u64,
        max: usize,
        out: &mut Vec<StoredEvent>,
    ) -> io::Result<()> {
        let hi = up_to.min(self.committed_seq());
        let mut next = after.saturating_add(1);
        let mut left = max as u64;
        let first = self.segments.partition_point(|s| s.last_seq() < next);
        for seg in &self.segments[first..] {
            if left == 0 || next > hi {
                break;
            }
            if seg.count() == 0 {
                continue;
            }
            let start = next.max(seg.first_seq);
            if start > hi {
                break;
            }
            let want = (hi.min(seg.last_seq()) - start + 1).min(left);
            let (Some(from), end) = (
                seg.offset_of(start),
                seg.offset_of(start + want).unwrap_or(seg.len),
            ) else {
                continue;
            };
            let mut sc = Scanner::new(&seg.file, from, end, (end - from) as usize);
            for expected in start..start + want {
                let at = sc.pos();
                let Step::Record { payload, .. } = sc.next_record()? else {
                    return Err(segment::corrupt(at));
                };
                match record::parse(payload) {
                    Some(p) if p.seq == expected => out.push(p.to_event()),
                    _ => return Err(segment::corrupt(at)),
                }
            }
            left -= want;
            next = start + want;
        }
        Ok(())
    }

    /// Applies retention at `now_unix_ms` by deleting whole sealed segments, oldest first
    /// (see [`LogConfig`]); returns the number of events dropped. Empty sealed segments (left by
    /// damage) are always deleted.
    pub fn trim(&mut self, now_unix_ms: u64) -> io::Result<u64> {
        self.not_in_flight()?;
        let max_age_ms = self
            .cfg
            .max_age
            .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
        let mut dropped = 0;
        let mut removed_any = false;
        while self.segments.len() > 1 {
            let s = &self.segments[0];
            let by_count = self.events - s.count() >= self.cfg.max_events;
            let by_bytes = self.bytes > self.cfg.max_bytes;
            let by_age =
                max_age_ms.is_some_and(|age| now_unix_ms >= s.max_unix_ms.saturating_add(age));
            if !(s.count() == 0 || by_count || by_bytes || by_age) {
                break;
            }
            fs::remove_file(&s.path)?;
            removed_any = true;
            let s = self.segments.remove(0);
            for (i, &hash) in s.hashes.iter().enumerate() {
                self.ids.remove(hash, s.first_seq + i as u64);
            }
            self.events -= s.count();
            self.bytes -= s.len;
            dropped += s.count();
        }
        if removed_any {
            // Not needed for correctness (a resurrected old segment is a valid prefix), but it
            // makes the freed space stick.
            File::open(&self.cfg.dir)?.sync_all()?;
        }
        Ok(dropped)
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            events: self.events,
            bytes: self.bytes,
            segments: self.segments.len(),
            first_seq: self.first_seq(),
            last_seq: self.committed_seq(),
        }
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                first_seq: s.first_seq,
                events: s.count(),
                bytes: s.len,
                max_unix_ms: s.max_unix_ms,
            })
            .collect()
    }

    /// Changes the retention limits (applied at the next `trim`).
    pub fn set_retention(&mut self, max_events: u64, max_bytes: u64, max_age: Option<Duration>) {
        self.cfg.max_events = max_events;
        self.cfg.max_bytes = max_bytes;
        self.cfg.max_age = max_age;
    }

    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }
}

/// Scans a segment at open: header, then records while they are whole, valid and contiguous
/// (and below `limit`, the next segment's first sequence). Sets `seg.len` to the end of the
/// last good record and indexes the records. Returns whether the header was valid.
fn recover_segment(
    seg: &mut Segment,
    file_len: u64,
    limit: u64,
    ids: &mut IdIndex,
) -> io::Result<bool> {
    let hl = record::SEGMENT_HEADER_LEN;
    if file_len < hl {
        return Ok(false);
    }
    let mut h = [0u8; record::SEGMENT_HEADER_LEN as usize];
    seg.file.read_exact_at(&mut h, 0)?;
    if !record::is_segment_header(&h, seg.first_seq) {
        return Ok(false);
    }
    let mut sc = Scanner::new(&seg.file, hl, file_len, usize::MAX);
    let mut good = hl;
    let mut found = Vec::new();
    while let Step::Record { offset, payload } = sc.next_record()? {
        let Some(p) = record::parse(payload) else {
            break;
        };
        let seq = seg.first_seq + found.len() as u64;
        if p.seq != seq || seq >= limit || offset > u64::from(u32::MAX) {
            break;
        }
        let hash = ids.hash(p.id);
        ids.insert(hash, seq);
        found.push((offset, hash, p.unix_ms));
        good = sc.pos();
    }
    for (offset, hash, unix_ms) in found {
        seg.push(offset, hash, unix_ms);
    }
    seg.len = good;
    Ok(true)
}

/// Creates a segment file with its header, fsyncs it and the directory.
fn create_segment(dir: &Path, first_seq: u64) -> io::Result<Segment> {
    let path = dir.join(segment::file_name(first_seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        // A file of this name can only be the leftover of a failed creation.
        .create(true)
        .truncate(true)
        .open(&path)?;
    let res = (|| {
        file.write_all_at(&record::segment_header(first_seq), 0)?;
        file.sync_data()?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = res {
        drop(file);
        // Best effort: a leftover empty file would only be rewritten at the next open.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(Segment::new(path, file, first_seq))
}
