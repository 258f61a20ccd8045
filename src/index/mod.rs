//! The lock-sharded topic index: exact-topic subscriptions hashed to shards (`DashMap`), and
//! subscribers with evaluated matchers (URL patterns, `*`) kept apart. Publish looks up each
//! topic once and never takes a global lock.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use indexmap::IndexMap;

use crate::hub::Update;
use crate::subscriber::{CloseReason, Subscriber};
use crate::topic::MatcherEngine;

/// One topic's subscribers by number: O(1) insert and removal (swap-remove) whatever the
/// topic's fan-out, and contiguous for iteration. (A `Vec` scanned on every insert and removal
/// made connecting or disconnecting n subscribers of one topic O(n²).)
type TopicSubscribers = IndexMap<u64, Arc<Subscriber>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct Index {
    exact: DashMap<Box<str>, TopicSubscribers>,
    evaluated: DashMap<u64, Arc<Subscriber>>,
    all: DashMap<u64, Arc<Subscriber>>,
    connected: AtomicUsize,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, sub: &Arc<Subscriber>) {
        for topic in sub.exact_topics() {
            self.exact
                .entry(topic.into())
                .or_default()
                .entry(sub.num)
                .or_insert_with(|| Arc::clone(sub));
        }
        if sub.has_evaluated_matchers() {
            self.evaluated.insert(sub.num, Arc::clone(sub));
        }
        self.all.insert(sub.num, Arc::clone(sub));
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes `sub`; returns it on the first removal only.
    pub fn remove(&self, sub: &Subscriber) -> Option<Arc<Subscriber>> {
        let (_, removed) = self.all.remove(&sub.num)?;
        for topic in sub.exact_topics() {
            // Remove the entry when it becomes empty so the map does not keep dead topics.
            self.exact.remove_if_mut(topic, |_, subs| {
                subs.swap_remove(&sub.num);
                subs.is_empty()
            });
        }
        self.evaluated.remove(&sub.num);
        self.connected.fetch_sub(1, Ordering::Relaxed);
        Some(removed)
    }

    /// Subscribers whose routing matchers select `update` (each at most once).
    pub fn matching(
        &self,
        engine: &MatcherEngine,
        update: &Update,
        out: &mut Vec<Arc<Subscriber>>,
    ) {
        out.clear();
        // Each source (one topic's entry, the evaluated set) holds a subscriber at most once, so
        // duplicates exist only when several sources contributed: alternate topics, or exact
        // and evaluated matchers of one subscriber. Only then pay for the sort.
        let mut sources = 0;
        for topic in update.topics.iter() {
            if let Some(subs) = self.exact.get(&**topic) {
                out.extend(subs.values().cloned());
                sources += 1;
            }
        }
        let before = out.len();
        for entry in self.evaluated.iter() {
            if entry.value().evaluated_match(engine, &update.topics) {
                out.push(Arc::clone(entry.value()));
            }
        }
        if out.len() > before {
            sources += 1;
        }
        if sources > 1 {
            out.sort_unstable_by_key(|s| s.num);
            out.dedup_by_key(|s| s.num);
        }
    }

    /// An upper bound on how many subscribers `matching` could return for `update` (its
    /// topics' exact subscribers plus every evaluated one), without matching anything.
    pub fn fan_out_bound(&self, update: &Update) -> usize {
        let exact: usize = update
            .topics
            .iter()
            .map(|topic| self.exact.get(&**topic).map_or(0, |subs| subs.len()))
            .sum();
        exact + self.evaluated.len()
    }

    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Calls `f` on every registered subscriber (a shard's lock is held meanwhile: `f` must not
    /// touch the index).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Subscriber>)) {
        for entry in self.all.iter() {
            f(entry.value());
        }
    }

    /// Ends every stream (shutdown), and has the connection of each closed after a short grace
    /// (`ConnectionKill`): a stream whose client stopped reading is never polled, so it would
    /// not see its end by itself and shutdown would wait its whole grace period for it.
    pub fn close_all(&self, reason: CloseReason) {
        for entry in self.all.iter() {
            entry.value().close(reason);
            entry.value().kill_connection();
        }
    }
}
