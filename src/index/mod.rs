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
    /// `evaluated.len()` without visiting every shard (read on every inline publish).
    evaluated_len: AtomicUsize,
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
        if sub.has_evaluated_matchers() && self.evaluated.insert(sub.num, Arc::clone(sub)).is_none()
        {
            self.evaluated_len.fetch_add(1, Ordering::Relaxed);
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
        if self.evaluated.remove(&sub.num).is_some() {
            self.evaluated_len.fetch_sub(1, Ordering::Relaxed);
        }
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
        exact + self.evaluated_len.load(Ordering::Relaxed)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: fixed test inputs
mod tests {
    use super::*;
    use crate::topic::{HubUrl, MatcherType};

    fn engine() -> MatcherEngine {
        let url = url::Url::parse("https://localhost/.well-known/mercure").unwrap();
        MatcherEngine::new(HubUrl::new(&url), 1000)
    }

    fn subscriber(engine: &MatcherEngine, num: u64, kind: MatcherType, m: &str) -> Arc<Subscriber> {
        let matcher = engine.compile(kind, m).unwrap();
        Arc::new(Subscriber::new(
            num,
            vec![matcher],
            None,
            16,
            None,
            None,
            false,
        ))
    }

    fn update(topic: &str) -> Update {
        Update {
            seq: 1,
            id: "urn:uuid:1".into(),
            topics: vec![topic.into()].into_boxed_slice(),
            private: false,
            frame: crate::sse::encode_event("urn:uuid:1", None, None, "x"),
        }
    }

    /// The inline-commit bound: the topic's exact subscribers plus every evaluated one, counted
    /// once per subscriber whatever the insert and removal order.
    #[test]
    fn fan_out_bound_counts_exact_and_evaluated_subscribers() {
        let engine = engine();
        let index = Index::new();
        let topic = "https://example.com/a";
        let exact = subscriber(&engine, 1, MatcherType::Exact, topic);
        let any = subscriber(&engine, 2, MatcherType::Exact, "*");
        let pattern = subscriber(
            &engine,
            3,
            MatcherType::UrlPattern,
            "https://example.com/:x",
        );
        for s in [&exact, &any, &pattern] {
            index.insert(s);
        }
        index.insert(&pattern);
        assert_eq!(index.fan_out_bound(&update(topic)), 3);
        assert_eq!(index.fan_out_bound(&update("https://example.com/b")), 2);
        assert!(index.remove(&any).is_some());
        assert!(index.remove(&any).is_none());
        assert_eq!(index.fan_out_bound(&update(topic)), 2);
        index.remove(&pattern);
        index.remove(&exact);
        assert_eq!(index.fan_out_bound(&update(topic)), 0);
    }
}
