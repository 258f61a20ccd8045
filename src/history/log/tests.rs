//! Tests of the history log: a model-based property test, recovery from torn and corrupt tails,
//! retention, segment rollover and failure atomicity (with injected write/sync faults).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Faults injected into the next commit.
#[derive(Debug, Default)]
pub(super) struct Fault {
    /// Write this many bytes of the group, then fail with ENOSPC.
    pub write_prefix: Option<usize>,
    /// Write the whole group, then fail the fdatasync with EIO.
    pub fail_sync: bool,
    /// Pretend the truncation after a failed commit failed too.
    pub fail_truncate: bool,
}

impl Fault {
    pub fn before_write(&mut self, file: &File, at: u64, buf: &[u8]) -> Option<io::Error> {
        let n = self.write_prefix.take()?;
        file.write_all_at(&buf[..n.min(buf.len())], at).ok()?;
        Some(io::Error::from_raw_os_error(28))
    }
    pub fn before_sync(&mut self) -> Option<io::Error> {
        std::mem::take(&mut self.fail_sync).then(|| io::Error::from_raw_os_error(5))
    }
    pub fn skip_truncate(&mut self) -> bool {
        std::mem::take(&mut self.fail_truncate)
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "qs-log-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn cfg(&self, segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            max_events: u64::MAX,
            max_bytes: u64::MAX,
            max_age: None,
            ..LogConfig::new(&self.0)
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ev(seq: u64, id: &str, frame_len: usize, unix_ms: u64) -> StoredEvent {
    StoredEvent {
        seq,
        id: id.into(),
        topics: vec![format!("https://example.com/t/{seq}").into(), "x".into()].into_boxed_slice(),
        private: seq % 3 == 0,
        frame: Bytes::from(vec![b'a' + (seq % 26) as u8; frame_len]),
        unix_ms,
    }
}

fn open(cfg: &LogConfig) -> (EventLog, RecoveryReport) {
    EventLog::open(cfg.clone()).unwrap()
}

fn read_all(log: &EventLog) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    log.read_after(0, u64::MAX, usize::MAX, &mut out).unwrap();
    out
}

fn seqs(evs: &[StoredEvent]) -> Vec<u64> {
    evs.iter().map(|e| e.seq).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_sync_read_lookup_reopen() {
    let d = TempDir::new("basic");
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, rep) = open(&cfg);
    assert_eq!(rep.last_seq, None);
    assert_eq!(log.last_seq(), 0);
    let events: Vec<_> = (1..=10).map(|s| ev(s, &format!("e{s}"), 40, s)).collect();
    for e in &events {
        log.append(e).unwrap();
    }
    assert_eq!(log.last_seq(), 10);
    assert_eq!(log.committed_seq(), 0);
    assert!(read_all(&log).is_empty(), "pending appends are invisible");
    assert_eq!(log.lookup("e3"), None);
    log.sync().unwrap();
    assert_eq!(read_all(&log), events);
    assert_eq!(log.lookup("e3"), Some(3));
    assert_eq!(log.lookup("nope"), None);
    let mut out = Vec::new();
    log.read_after(3, 7, 2, &mut out).unwrap();
    assert_eq!(seqs(&out), vec![4, 5]);
    // Wrong sequences are rejected without disturbing the log.
    assert_eq!(
        log.append(&ev(12, "x", 1, 1)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    drop(log);
    let (mut log, rep) = open(&cfg);
    assert_eq!(rep.events, 10);
    assert_eq!((rep.first_seq, rep.last_seq), (Some(1), Some(10)));
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(read_all(&log), events);
    assert_eq!(log.lookup("e10"), Some(10));
    log.append(&ev(11, "e11", 1, 11)).unwrap();
    log.sync().unwrap();
    assert_eq!(log.stats().last_seq, 11);
}

#[test]
fn reused_ids_resolve_to_earliest_retained_and_trimming_moves_it() {
    let d = TempDir::new("dup");
    let mut cfg = d.cfg(200);
    cfg.max_events = 0;
    let (mut log, _) = open(&cfg);
    // ~110-byte records: one record per segment after the first group rolls.
    for s in 1..=4 {
        let id = if s % 2 == 1 { "dup" } else { "other" };
        log.append(&ev(s, id, 30, s)).unwrap();
        log.sync().unwrap();
    }
    assert_eq!(log.stats().segments, 4);
    assert_eq!(log.lookup("dup"), Some(1));
    assert_eq!(log.lookup("other"), Some(2));
    log.set_retention(3, u64::MAX, None);
    assert_eq!(log.trim(0).unwrap(), 1);
    assert_eq!(log.lookup("dup"), Some(3));
    log.set_retention(0, u64::MAX, None);
    assert_eq!(log.trim(0).unwrap(), 2);
    assert_eq!(log.lookup("dup"), None);
    assert_eq!(log.lookup("other"), Some(4));
    drop(log);
    let (log, _) = open(&cfg);
    assert_eq!(log.lookup("dup"), None);
    assert_eq!(log.lookup("other"), Some(4));
}

#[test]
fn a_hash_collision_is_resolved_by_reading_the_id() {
    let d = TempDir::new("collide");
    let (mut log, _) = open(&d.cfg(DEFAULT_SEGMENT_BYTES));
    log.append(&ev(1, "y", 5, 1)).unwrap();
    log.sync().unwrap();
    // Forge a collision: "x" hashes to a candidate list that starts with seq 1 (id "y").
    let hx = log.ids.hash("x");
    log.ids.insert(hx, 1);
    log.append(&ev(2, "x", 5, 2)).unwrap();
    log.sync().unwrap();
    assert_eq!(log.ids.candidates(hx).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(log.lookup("x"), Some(2));
    assert_eq!(log.lookup("y"), Some(1));
}

#[test]
fn rollover_with_small_segments() {
    let d = TempDir::new("roll");
    let cfg = d.cfg(1024);
    let (mut log, _) = open(&cfg);
    let mut all = Vec::new();
    for g in 0..20u64 {
        for i in 0..(g % 4 + 1) {
            let e = ev(log.last_seq() + 1, &format!("g{g}i{i}"), 100, g);
            log.append(&e).unwrap();
            all.push(e);
        }
        log.sync().unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() > 5, "{segs:?}");
    // Each segment holds a contiguous run; a segment exceeds the size by at most one group.
    for w in segs.windows(2) {
        assert_eq!(w[0].first_seq + w[0].events, w[1].first_seq);
        assert!(w[0].bytes <= 1024 + 4 * 200);
    }
    assert_eq!(read_all(&log), all);
    for after in 0..all.len() as u64 {
        let mut out = Vec::new();
        log.read_after(after, u64::MAX, 7, &mut out).unwrap();
        let want: Vec<u64> = (after + 1..=all.len() as u64).take(7).collect();
        assert_eq!(seqs(&out), want);
    }
    assert_eq!(segment_files(&d.0).len(), segs.len());
    drop(log);
    let (log, rep) = open(&cfg);
    assert_eq!(rep.segments, segs.len());
    assert_eq!(read_all(&log), all);
    assert_eq!(log.lookup("g19i3"), Some(all.len() as u64));
}

/// Builds a one-segment log with `n` synced events; returns the segment's bytes and the offset
/// where the last record starts.
fn one_segment(d: &TempDir, n: u64) -> (Vec<u8>, u64, PathBuf) {
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, _) = open(&cfg);
    for s in 1..n {
        log.append(&ev(s, &format!("e{s}"), 50, s)).unwrap();
    }
    log.sync().unwrap();
    let before_last = log.stats().bytes;
    log.append(&ev(n, &format!("e{n}"), 50, n)).unwrap();
    log.sync().unwrap();
    drop(log);
    let path = segment_files(&d.0).remove(0);
    (fs::read(&path).unwrap(), before_last, path)
}

fn check_recovered(d: &TempDir, survivors: u64, truncated: u64) {
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, rep) = open(&cfg);
    assert_eq!(rep.truncated_bytes, truncated);
    assert_eq!(rep.last_seq, Some(survivors));
    assert_eq!(log.last_seq(), survivors);
    assert_eq!(seqs(&read_all(&log)), (1..=survivors).collect::<Vec<_>>());
    assert_eq!(log.lookup(&format!("e{}", survivors + 1)), None);
    // Appending continues right after the survivors, and survives a reopen.
    let next = ev(survivors + 1, "again", 5, 0);
    log.append(&next).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, rep) = open(&cfg);
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(read_all(&log).last(), Some(&next));
    assert_eq!(log.lookup("again"), Some(survivors + 1));
}

#[test]
fn recovery_truncated_at_every_offset_of_the_last_record() {
    let d = TempDir::new("cut");
    let (bytes, last_at, path) = one_segment(&d, 5);
    for cut in last_at..bytes.len() as u64 {
        fs::write(&path, &bytes[..cut as usize]).unwrap();
        check_recovered(&d, 4, cut - last_at);
    }
    fs::write(&path, &bytes).unwrap();
    check_recovered(&d, 5, 0);
}

#[test]
fn recovery_flipped_byte_in_the_last_record_is_cut() {
    let d = TempDir::new("flip");
    let (bytes, last_at, path) = one_segment(&d, 5);
    let len = bytes.len() as u64 - last_at;
    // Length, CRC, sequence, id and frame bytes.
    for pos in [0, 2, 4, 7, 8, 20, 30, len / 2, len - 1] {
        let mut b = bytes.clone();
        b[(last_at + pos) as usize] ^= 0x5a;
        fs::write(&path, &b).unwrap();
        check_recovered(&d, 4, len);
    }
}

#[test]
fn recovery_garbage_after_the_last_record_is_cut() {
    let d = TempDir::new("garbage");
    let (bytes, _, path) = one_segment(&d, 5);
    for garbage in [
        &[0u8; 1][..],
        &[0; 8],
        &[0; 100],
        &[0xff; 13],
        b"not a record at all",
    ] {
        let mut b = bytes.clone();
        b.extend_from_slice(garbage);
        fs::write(&path, &b).unwrap();
        check_recovered(&d, 5, garbage.len() as u64);
    }
    // A record that is valid but not the next sequence (a stale copy) is cut too.
    let mut b = bytes.clone();
    let first_rec = &bytes[record::SEGMENT_HEADER_LEN as usize..];
    let (len, _) = record::split_header(first_rec[..8].try_into().unwrap());
    b.extend_from_slice(&first_rec[..8 + len]);
    fs::write(&path, &b).unwrap();
    check_recovered(&d, 5, 8 + len as u64);
}

#[test]
fn recovery_of_a_torn_new_segment_keeps_the_sequence() {
    let d = TempDir::new("torn-new");
    let (_, _, _) = one_segment(&d, 5);
    // A crash right after creating segment 6, before its header reached the disk.
    for torn in [&b""[..], b"QSLOG", b"QSLOG\0\0\x01\x06\0\0"] {
        fs::write(d.0.join(segment::file_name(6)), torn).unwrap();
        let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
        let (mut log, rep) = open(&cfg);
        assert_eq!(rep.last_seq, Some(5));
        assert_eq!(rep.truncated_bytes, torn.len() as u64);
        assert_eq!(seqs(&read_all(&log)), vec![1, 2, 3, 4, 5]);
        log.append(&ev(6, "e6", 1, 0)).unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, _) = open(&cfg);
        assert_eq!(log.lookup("e6"), Some(6));
        drop(log);
        // Back to five events in one segment for the next round.
        fs::remove_file(d.0.join(segment::file_name(6))).unwrap();
    }
}

#[test]
fn damaged_sealed_segment_is_read_up_to_the_damage_without_panicking() {
    let d = TempDir::new("sealed");
    let cfg = d.cfg(400);
    let (mut log, _) = open(&cfg);
    for s in 1..=12 {
        log.append(&ev(s, &format!("e{s}"), 60, s)).unwrap();
        log.sync().unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 3 && segs[0].events >= 2, "{segs:?}");
    drop(log);
    // Corrupt the second record of the first segment.
    let files = segment_files(&d.0);
    let mut b = fs::read(&files[0]).unwrap();
    let (len, _) = record::split_header(b[16..24].try_into().unwrap());
    let second = 16 + 8 + len;
    b[second + 12] ^= 1;
    fs::write(&files[0], &b).unwrap();
    let (log, rep) = open(&cfg);
    assert_eq!(rep.damaged_segments, 1);
    assert_eq!(rep.truncated_bytes, 0);
    assert!(rep.unreadable_bytes > 0);
    let got = seqs(&read_all(&log));
    let lost: Vec<u64> = (2..segs[1].first_seq).collect();
    let want: Vec<u64> = (1..=12).filter(|s| !lost.contains(s)).collect();
    assert_eq!(got, want);
    assert_eq!(log.lookup("e2"), None);
    assert_eq!(log.lookup("e12"), Some(12));
    let mut out = Vec::new();
    log.read_after(1, 12, 1, &mut out).unwrap();
    assert_eq!(seqs(&out), vec![segs[1].first_seq], "a gap is skipped");
    assert_eq!(
        fs::read(&files[0]).unwrap(),
        b,
        "sealed segments are left as they are"
    );
    // A sealed segment whose header is garbage is skipped, then deleted by the next trim.
    drop(log);
    fs::write(&files[0], b"junk").unwrap();
    let (mut log, rep) = open(&cfg);
    assert_eq!(rep.damaged_segments, 1);
    assert_eq!(rep.first_seq, Some(segs[1].first_seq));
    assert_eq!(log.trim(0).unwrap(), 0);
    assert!(!files[0].exists());
    assert_eq!(log.last_seq(), 12);
}

fn filled(d: &TempDir, n: u64, segment_bytes: u64) -> (LogConfig, EventLog) {
    let cfg = d.cfg(segment_bytes);
    let (mut log, _) = open(&cfg);
    for s in 1..=n {
        log.append(&ev(s, &format!("e{s}"), 60, s * 1000)).unwrap();
        if s % 2 == 0 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    (cfg, log)
}

#[test]
fn retention_by_count_keeps_at_least_max_events() {
    let d = TempDir::new("count");
    let (_, mut log) = filled(&d, 30, 500);
    let segs = log.segments();
    assert!(segs.len() > 4);
    log.set_retention(10, u64::MAX, None);
    let dropped = log.trim(0).unwrap();
    let st = log.stats();
    assert_eq!(st.events, 30 - dropped);
    assert!(st.events >= 10);
    let first = log.segments()[0];
    assert!(
        st.events - first.events < 10,
        "one more segment could have gone"
    );
    assert_eq!(st.first_seq, Some(dropped + 1));
    assert_eq!(read_all(&log)[0].seq, dropped + 1);
    assert_eq!(log.lookup("e1"), None);
    assert_eq!(log.lookup(&format!("e{}", dropped + 1)), Some(dropped + 1));
    // Limit 0 drops every sealed segment but never the active one.
    log.set_retention(0, u64::MAX, None);
    log.trim(0).unwrap();
    assert_eq!(log.stats().segments, 1);
    assert!(log.stats().events > 0);
    assert_eq!(log.last_seq(), 30);
    assert_eq!(segment_files(&d.0).len(), 1);
}

#[test]
fn retention_by_bytes_is_a_ceiling_except_for_the_active_segment() {
    let d = TempDir::new("bytes");
    let (_, mut log) = filled(&d, 30, 500);
    log.set_retention(u64::MAX, 1200, None);
    log.trim(0).unwrap();
    let st = log.stats();
    assert!(st.bytes <= 1200 || st.segments == 1, "{st:?}");
    let on_disk: u64 = segment_files(&d.0)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, st.bytes);
    assert_eq!(read_all(&log)[0].seq, st.first_seq.unwrap());
}

#[test]
fn retention_by_age_drops_segments_whose_events_all_expired() {
    let d = TempDir::new("age");
    let (_, mut log) = filled(&d, 30, 500);
    let segs = log.segments();
    log.set_retention(u64::MAX, u64::MAX, Some(Duration::from_secs(10)));
    // Event s was published at s seconds; at 10 s + the first segment's newest event, that
    // segment (and no other) has fully expired.
    let now = segs[0].max_unix_ms + 10_000;
    assert_eq!(log.trim(now).unwrap(), segs[0].events);
    assert_eq!(log.trim(now).unwrap(), 0);
    // Far in the future everything expired, but the active segment stays.
    log.trim(u64::MAX).unwrap();
    assert_eq!(log.stats().segments, 1);
    assert_eq!(log.segments()[0].first_seq, segs[segs.len() - 1].first_seq);
}

#[test]
fn failed_write_discards_the_group_and_leaves_no_partial_record() {
    let d = TempDir::new("enospc");
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, _) = open(&cfg);
    log.append(&ev(1, "e1", 50, 1)).unwrap();
    log.sync().unwrap();
    let good_len = log.stats().bytes;
    for s in 2..=4 {
        log.append(&ev(s, &format!("e{s}"), 50, s)).unwrap();
    }
    log.fault.write_prefix = Some(150);
    let err = log.sync().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28));
    assert_eq!(log.last_seq(), 1, "the group is discarded");
    assert_eq!(log.committed_seq(), 1);
    let path = segment_files(&d.0).remove(0);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        good_len,
        "partial write cut"
    );
    assert_eq!(seqs(&read_all(&log)), vec![1]);
    assert_eq!(log.lookup("e2"), None);
    // The writer retries with the same sequences.
    log.append(&ev(2, "retry", 5, 2)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, rep) = open(&cfg);
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(seqs(&read_all(&log)), vec![1, 2]);
    assert_eq!(log.lookup("retry"), Some(2));
}

#[test]
fn failed_sync_and_failed_truncate_never_resurrect_the_failed_group() {
    let d = TempDir::new("eio");
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, _) = open(&cfg);
    log.append(&ev(1, "e1", 50, 1)).unwrap();
    log.sync().unwrap();
    // The whole group reaches the file, the sync fails and so does the truncation: whole,
    // valid records 2..=4 now sit past the committed end.
    for s in 2..=4 {
        log.append(&ev(s, &format!("e{s}"), 50, s)).unwrap();
    }
    log.fault.fail_sync = true;
    log.fault.fail_truncate = true;
    assert_eq!(log.sync().unwrap_err().raw_os_error(), Some(5));
    assert_eq!(log.last_seq(), 1);
    // A new group with record 2 of the same size as the failed one: without the repair, the
    // stale records 3 and 4 would follow it and come back at recovery.
    log.append(&ev(2, "e2", 50, 2)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, rep) = open(&cfg);
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(seqs(&read_all(&log)), vec![1, 2]);
    assert_eq!(log.lookup("e3"), None);
}

#[test]
fn failed_first_commit_in_a_new_segment_keeps_the_sequence_across_reopen() {
    let d = TempDir::new("roll-fail");
    let cfg = d.cfg(200);
    let (mut log, _) = open(&cfg);
    log.append(&ev(1, "e1", 100, 1)).unwrap();
    log.sync().unwrap();
    log.append(&ev(2, "e2", 100, 2)).unwrap(); // rolls to segment 2
    log.fault.write_prefix = Some(3);
    assert!(log.sync().is_err());
    assert_eq!(log.stats().segments, 2);
    drop(log);
    let (mut log, rep) = open(&cfg);
    assert_eq!(rep.last_seq, Some(1));
    assert_eq!(log.last_seq(), 1);
    log.append(&ev(2, "e2", 100, 2)).unwrap();
    log.sync().unwrap();
    assert_eq!(seqs(&read_all(&log)), vec![1, 2]);
}

#[test]
fn bad_config_and_foreign_files_are_handled() {
    let d = TempDir::new("cfg");
    assert!(EventLog::open(d.cfg(16)).is_err());
    assert!(EventLog::open(d.cfg(MAX_SEGMENT_BYTES + 1)).is_err());
    fs::create_dir_all(&d.0).unwrap();
    fs::write(d.0.join("README"), "not a segment").unwrap();
    fs::write(d.0.join("00000000000000000000.log"), "seq 0 is not ours").unwrap();
    let (log, rep) = open(&d.cfg(1000));
    assert_eq!(rep.segments, 1);
    assert_eq!(log.last_seq(), 0);
}

// ---- Model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    /// (id choice, frame length) per event.
    Append(Vec<(u8, u16)>),
    Sync,
    Flush,
    Reopen,
    Trim {
        max_events: u64,
        max_bytes: u64,
        max_age_ms: Option<u64>,
    },
    Lookup(u8),
    ReadAfter {
        after: u64,
        span: u64,
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..8, 0u16..120), 1..8).prop_map(Op::Append),
        3 => Just(Op::Sync),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => (0u64..40, 300u64..4000, prop::option::of(0u64..60_000))
            .prop_map(|(max_events, max_bytes, max_age_ms)| Op::Trim { max_events, max_bytes, max_age_ms }),
        3 => (0u8..10).prop_map(Op::Lookup),
        2 => (0u64..120, 0u64..60, 0usize..12).prop_map(|(after, span, max)| Op::ReadAfter { after, span, max }),
    ]
}

struct Model {
    committed: Vec<StoredEvent>,
    pending: Vec<StoredEvent>,
    committed_seq: u64,
    clock: u64,
}

impl Model {
    fn last_seq(&self) -> u64 {
        self.committed_seq + self.pending.len() as u64
    }
    fn commit(&mut self) {
        self.committed_seq += self.pending.len() as u64;
        self.committed.append(&mut self.pending);
    }
}

fn check_state(log: &EventLog, m: &Model) {
    assert_eq!(log.last_seq(), m.last_seq());
    let st = log.stats();
    assert_eq!(st.events, m.committed.len() as u64);
    assert_eq!(st.last_seq, m.committed_seq);
    assert_eq!(st.first_seq, m.committed.first().map(|e| e.seq));
    assert_eq!(
        log.segments().iter().map(|s| s.bytes).sum::<u64>(),
        st.bytes
    );
}

fn run_model(ops: Vec<Op>, segment_bytes: u64) {
    let d = TempDir::new("model");
    let cfg = d.cfg(segment_bytes);
    let (mut log, _) = open(&cfg);
    let mut m = Model {
        committed: Vec::new(),
        pending: Vec::new(),
        committed_seq: 0,
        clock: 0,
    };
    for op in ops {
        match op {
            Op::Append(evs) => {
                for (id, frame) in evs {
                    m.clock += 1000;
                    let e = ev(m.last_seq() + 1, &format!("id{id}"), frame.into(), m.clock);
                    log.append(&e).unwrap();
                    m.pending.push(e);
                }
            }
            Op::Sync => {
                log.sync().unwrap();
                m.commit();
            }
            Op::Flush => {
                log.flush().unwrap();
                m.commit();
            }
            Op::Reopen => {
                drop(log);
                let rep;
                (log, rep) = open(&cfg);
                m.pending.clear();
                assert_eq!(rep.truncated_bytes, 0);
                assert_eq!(rep.events, m.committed.len() as u64);
                assert_eq!(rep.last_seq, Some(m.committed_seq).filter(|&s| s > 0));
            }
            Op::Trim {
                max_events,
                max_bytes,
                max_age_ms,
            } => {
                let max_age = max_age_ms.map(Duration::from_millis);
                log.set_retention(max_events, max_bytes, max_age);
                // The retention rule, restated over the segment layout.
                let segs = log.segments();
                let (mut events, mut bytes) = (m.committed.len() as u64, log.stats().bytes);
                let mut expect = 0;
                for s in &segs[..segs.len() - 1] {
                    let go = s.events == 0
                        || events - s.events >= max_events
                        || bytes > max_bytes
                        || max_age_ms.is_some_and(|a| m.clock >= s.max_unix_ms + a);
                    if !go {
                        break;
                    }
                    events -= s.events;
                    bytes -= s.bytes;
                    expect += s.events;
                }
                let dropped = log.trim(m.clock).unwrap();
                assert_eq!(dropped, expect);
                m.committed.drain(..dropped as usize);
                assert!(!log.segments().is_empty());
            }
            Op::Lookup(id) => {
                let id = format!("id{id}");
                let want = m.committed.iter().find(|e| *e.id == *id).map(|e| e.seq);
                assert_eq!(log.lookup(&id), want, "lookup {id}");
            }
            Op::ReadAfter { after, span, max } => {
                let up_to = after + span;
                let want: Vec<_> = m
                    .committed
                    .iter()
                    .filter(|e| e.seq > after && e.seq <= up_to)
                    .take(max)
                    .cloned()
                    .collect();
                let mut out = Vec::new();
                log.read_after(after, up_to, max, &mut out).unwrap();
                assert_eq!(out, want, "read_after({after}, {up_to}, {max})");
            }
        }
        check_state(&log, &m);
    }
    drop(log);
    let (log, _) = open(&cfg);
    m.pending.clear();
    check_state(&log, &m);
    assert_eq!(read_all(&log), m.committed);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..80), segment_bytes in 200u64..1000) {
        run_model(ops, segment_bytes);
    }
}

// A group written outside the log's lock (`begin_commit` / `Group::write` / `end_commit`, what
// `LogHistory` does so replays go on during the fdatasync): readers see only committed records
// until the group ends, nothing else may change the log meanwhile, and a failed write is
// discarded as with `sync`.
#[test]
fn group_written_outside_the_log() {
    let d = TempDir::new("group");
    let cfg = d.cfg(DEFAULT_SEGMENT_BYTES);
    let (mut log, _) = open(&cfg);
    let first: Vec<_> = (1..=3).map(|s| ev(s, &format!("e{s}"), 40, s)).collect();
    for e in &first {
        log.append(e).unwrap();
    }
    log.sync().unwrap();
    let second: Vec<_> = (4..=6).map(|s| ev(s, &format!("e{s}"), 40, s)).collect();
    for e in &second {
        log.append(e).unwrap();
    }
    let mut group = log.begin_commit(true).unwrap().expect("a pending group");
    group.write().unwrap();
    // Written and synced, not yet applied: invisible, and the log refuses other changes.
    assert_eq!(read_all(&log), first);
    assert_eq!(log.lookup("e5"), None);
    assert_eq!((log.last_seq(), log.committed_seq()), (3, 3));
    assert!(log.append(&ev(4, "x", 1, 4)).is_err());
    assert!(log.begin_commit(true).is_err());
    assert!(log.trim(u64::MAX).is_err());
    log.end_commit(group, Ok(())).unwrap();
    assert_eq!(read_all(&log), [first.clone(), second.clone()].concat());
    assert_eq!(log.lookup("e5"), Some(5));
    assert!(log.begin_commit(true).unwrap().is_none(), "nothing pending");

    // A failed write: the group is discarded, the segment cut back, the log usable again.
    log.append(&ev(7, "e7", 40, 7)).unwrap();
    log.fault.fail_sync = true;
    let mut group = log.begin_commit(true).unwrap().expect("a pending group");
    let written = group.write();
    assert!(written.is_err());
    assert!(log.end_commit(group, written).is_err());
    assert_eq!((log.last_seq(), log.committed_seq()), (6, 6));
    log.append(&ev(7, "e7", 40, 7)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, rep) = open(&cfg);
    assert_eq!(
        rep.truncated_bytes, 0,
        "the failed group was cut before the retry"
    );
    assert_eq!(seqs(&read_all(&log)), (1..=7).collect::<Vec<_>>());
}
