//! Volatile histories: `MemoryHistory`, a bounded ring of the last N updates with an id index,
//! and `NoHistory`, which keeps nothing.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{History, HistoryError};
use crate::hub::Update;

/// Ids are hub-generated or publisher-chosen; foldhash is seeded per map, so chosen ids cannot
/// aim at one bucket.
type IdMap = HashMap<Box<str>, (u64, u32), foldhash::fast::RandomState>;

/// A bounded in-memory ring. Sequences in the ring are contiguous, so a sequence maps to a
/// position by subtraction.
#[derive(Debug)]
pub struct MemoryHistory {
    inner: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    capacity: usize,
    events: VecDeque<Arc<Update>>,
    /// id → (sequence of its earliest retained occurrence, retained occurrences).
    ids: IdMap,
    last_seq: u64,
}

impl MemoryHistory {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Ring {
                capacity: capacity.max(1),
                events: VecDeque::new(),
                ids: IdMap::default(),
                last_seq: 0,
            }),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent in a way that
        // matters more than refusing service would, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl History for MemoryHistory {
    fn append_batch(&self, batch: &[Arc<Update>]) -> Result<(), HistoryError> {
        let mut ring = self.ring();
        for update in batch {
            if ring.events.len() >= ring.capacity {
                if let Some(old) = ring.events.pop_front() {
                    ring.forget(&old);
                }
            }
            ring.ids
                .entry(update.id.clone())
                .and_modify(|(_, n)| *n += 1)
                .or_insert((update.seq, 1));
            ring.last_seq = update.seq;
            ring.events.push_back(Arc::clone(update));
        }
        Ok(())
    }

    fn append_may_wait(&self) -> bool {
        false
    }

    fn last_seq(&self) -> u64 {
        self.ring().last_seq
    }

    fn lookup(&self, id: &str) -> Option<u64> {
        self.ring().ids.get(id).map(|(seq, _)| *seq)
    }

    fn read_after(
        &self,
        after: u64,
        up_to: u64,
        max: usize,
        out: &mut Vec<Arc<Update>>,
    ) -> Result<(), HistoryError> {
        let ring = self.ring();
        let Some(front) = ring.events.front().map(|u| u.seq) else {
            return Ok(());
        };
        let start = usize::try_from((after + 1).saturating_sub(front)).unwrap_or(usize::MAX);
        out.extend(
            ring.events
                .iter()
                .skip(start)
                .take_while(|u| u.seq <= up_to)
                .take(max)
                .cloned(),
        );
        Ok(())
    }
}

impl Ring {
    fn forget(&mut self, old: &Update) {
        let Some((first, count)) = self.ids.get_mut(&old.id) else {
            return;
        };
        if *count <= 1 {
            self.ids.remove(&old.id);
            return;
        }
        *count -= 1;
        if *first == old.seq {
            // A reused id: the earliest retained occurrence moves to the next one. Only ids
            // published more than once pay for this scan.
            if let Some(next) = self.events.iter().find(|u| u.id == old.id) {
                *first = next.seq;
            }
        }
    }
}

/// No history: every cursor is unknown and nothing is replayed.
#[derive(Debug, Default)]
pub struct NoHistory {
    last: std::sync::atomic::AtomicU64,
}

/// Without history, sequences still have to be unique for replay/live deduplication.
impl History for NoHistory {
    fn append_batch(&self, batch: &[Arc<Update>]) -> Result<(), HistoryError> {
        if let Some(last) = batch.last() {
            self.last
                .store(last.seq, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }
    fn append_may_wait(&self) -> bool {
        false
    }
    fn last_seq(&self) -> u64 {
        self.last.load(std::sync::atomic::Ordering::Acquire)
    }
    fn lookup(&self, _id: &str) -> Option<u64> {
        None
    }
    fn read_after(
        &self,
        _: u64,
        _: u64,
        _: usize,
        _: &mut Vec<Arc<Update>>,
    ) -> Result<(), HistoryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn upd(seq: u64, id: &str) -> Arc<Update> {
        Arc::new(Update {
            seq,
            id: id.into(),
            topics: vec!["t".into()].into_boxed_slice(),
            private: false,
            frame: Bytes::new(),
        })
    }

    fn ids(h: &MemoryHistory, after: u64, up_to: u64, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        h.read_after(after, up_to, max, &mut out)
            .unwrap_or_default();
        out.iter().map(|u| u.seq).collect()
    }

    #[test]
    fn ring_bounds_and_reads() {
        let h = MemoryHistory::new(3);
        for s in 1..=5 {
            h.append_batch(&[upd(s, &format!("e{s}"))])
                .unwrap_or_default();
        }
        assert_eq!(ids(&h, 0, 5, 10), vec![3, 4, 5]);
        assert_eq!(ids(&h, 3, 5, 10), vec![4, 5]);
        assert_eq!(ids(&h, 3, 4, 10), vec![4]);
        assert_eq!(ids(&h, 0, 5, 2), vec![3, 4]);
        assert_eq!(ids(&h, 5, 5, 10), Vec::<u64>::new());
        assert_eq!(h.lookup("e2"), None, "trimmed");
        assert_eq!(h.lookup("e4"), Some(4));
    }

    #[test]
    fn reused_id_resolves_to_earliest_retained() {
        // Spec "Reconnection": a reused id resolves to the earliest such update in history.
        let h = MemoryHistory::new(3);
        h.append_batch(&[upd(1, "dup")]).unwrap_or_default();
        h.append_batch(&[upd(2, "x")]).unwrap_or_default();
        h.append_batch(&[upd(3, "dup")]).unwrap_or_default();
        assert_eq!(h.lookup("dup"), Some(1));
        h.append_batch(&[upd(4, "y")]).unwrap_or_default(); // evicts seq 1
        assert_eq!(h.lookup("dup"), Some(3));
        h.append_batch(&[upd(5, "z")]).unwrap_or_default();
        h.append_batch(&[upd(6, "w")]).unwrap_or_default(); // evicts seq 3
        assert_eq!(h.lookup("dup"), None);
    }
}
