//! The in-memory id → sequence index of the history log, keyed by a keyed 64-bit hash of the
//! id. It only proposes candidates in sequence order; the log verifies each id on disk.
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Memory per retained event, for 1,000,000 events: `first` holds one (hash, seq) pair per
/// distinct id, ~16 B / 0.875 load + 1 control byte ≈ 20 B; the segment keeps the hash (8 B)
/// and the record offset (4 B) per event: ≈ 32 MB in all. A `Box<str>` key map like the memory
/// ring's would cost ~100 MB with 45-byte `urn:uuid:` ids. Repeated ids (and the astronomically
/// rare hash collision) pay for a `VecDeque` entry in `later`.
#[derive(Debug)]
pub struct IdIndex {
    hasher: RandomState,
    /// hash → earliest retained sequence with that hash.
    first: HashMap<u64, u64, BuildHasherDefault<PreHashed>>,
    /// hash → later retained sequences with that hash, ascending; absent when there are none.
    later: HashMap<u64, VecDeque<u64>, BuildHasherDefault<PreHashed>>,
}

impl IdIndex {
    pub fn new() -> Self {
        // Random keys per process: ids come from publishers, and the index is rebuilt at every
        // start, so hashes need not be stable; unpredictable ones cannot be made to collide.
        Self {
            hasher: RandomState::new(),
            first: HashMap::default(),
            later: HashMap::default(),
        }
    }

    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Records `seq` for `hash`; sequences must be inserted in increasing order.
    pub fn insert(&mut self, hash: u64, seq: u64) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.later.entry(hash).or_default().push_back(seq);
            }
        }
    }

    /// Forgets `seq` for `hash`; must be called in increasing sequence order (oldest first), so
    /// the removed sequence is always the earliest retained one for its hash.
    pub fn remove(&mut self, hash: u64, seq: u64) {
        if self.first.get(&hash) != Some(&seq) {
            return;
        }
        let next = match self.later.get_mut(&hash) {
            Some(q) => {
                let next = q.pop_front();
                if q.is_empty() {
                    self.later.remove(&hash);
                }
                next
            }
            None => None,
        };
        match next {
            Some(n) => {
                self.first.insert(hash, n);
            }
            None => {
                self.first.remove(&hash);
            }
        }
    }

    /// Candidate sequences for `hash`, ascending.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        self.first
            .get(&hash)
            .copied()
            .into_iter()
            .chain(self.later.get(&hash).into_iter().flatten().copied())
    }
}

/// Keys are already keyed SipHash outputs: hashing them again would only cost time.
#[derive(Debug, Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else so the hasher stays total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
