//! A subscriber's handle: identity, routing matchers, grants, and its bounded lock-free queue
//! with a waker. Publishers push and move on; a full queue marks the subscriber lagging and its
//! stream ends after what it already holds (the client resumes with `Last-Event-ID`).
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use atomic_waker::AtomicWaker;
use crossbeam_queue::SegQueue;

use crate::auth::Grants;
use crate::hub::Update;
use crate::topic::{Matcher, MatcherEngine, MatcherType};

/// Why a subscriber's stream is ending (or `Open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    Open = 0,
    /// Its queue overflowed: it could not keep up.
    Lagging = 1,
    /// The hub is shutting down.
    Shutdown = 2,
}

/// One connected subscriber. Kept small: there is one per stream (144 bytes, pinned by a test).
pub struct Subscriber {
    /// Internal key (index, dedup).
    pub num: u64,
    /// Public id: a random `urn:uuid:` per connection, never client-controlled.
    pub id: SubscriberId,
    matchers: Box<[Matcher]>,
    /// `None`: anonymous (public updates only).
    grants: Option<Arc<Grants>>,
    /// Allocated on the first push: an idle subscriber does not pay for the queue's two
    /// cache-padded indices (256 bytes).
    queue: OnceLock<Box<SegQueue<Arc<Update>>>>,
    queued: AtomicU32,
    capacity: u32,
    waker: AtomicWaker,
    state: AtomicU8,
    /// When the stream must end (token `exp`, rotation).
    deadline: Option<Instant>,
    /// Ends the connection when the stream cannot end by itself.
    connection: Option<Arc<ConnectionKill>>,
    /// When the queue overflowed (a `millis_since_epoch` stamp, at least 1; 0: it has not).
    lagging_since_ms: AtomicU32,
    /// Other streams may share the connection (HTTP/2).
    shared_connection: bool,
    /// When the stream last handed a frame (data or heartbeat) to the connection (a
    /// `millis_since_epoch` stamp).
    last_progress_ms: AtomicU32,
    /// Updates up to this sequence were committed before the subscriber registered: `enqueue`
    /// refuses them (replay serves them when asked for). Set once, at registration.
    floor: AtomicU64,
    /// Its subscription events were published (active subscriptions on, not a `HEAD` probe):
    /// its removal publishes the `active: false` ones.
    announced: AtomicBool,
}

/// A subscriber's public id, `urn:uuid:<v4>`: kept as the 16 bytes and formatted when shown (an
/// idle subscriber does not carry the 45-byte string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberId(uuid::Uuid);

impl std::fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "urn:uuid:{}", self.0)
    }
}

/// A process-wide time base for the atomically stored progress timestamps.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since `epoch()`, wrapping every ~49 days (4 bytes per stamp instead of 8):
/// stamps are only compared by `millis_between`, over intervals far shorter than that.
fn millis_since_epoch(t: Instant) -> u32 {
    t.saturating_duration_since(epoch()).as_millis() as u32
}

/// Milliseconds from stamp `earlier` to stamp `later` (wrapping).
fn millis_between(earlier: u32, later: u32) -> u64 {
    u64::from(later.wrapping_sub(earlier))
}

/// A handle that ends the connection carrying a subscriber. Needed because hyper polls a
/// response body only when it can write: the stream of a client that stopped reading never
/// sees its own deadline, so the hub's reaper ends the connection instead.
#[derive(Debug, Default)]
pub struct ConnectionKill {
    /// The connection task (the only waiter).
    waker: AtomicWaker,
    fired: AtomicBool,
}

impl ConnectionKill {
    pub fn kill(&self) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Ready once `kill` was called; otherwise registers the task to be woken by it.
    pub fn poll_killed(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.fired.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A kill between the check and the registration woke nobody: check again.
        if self.fired.load(Ordering::Acquire) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }

    /// Resolves once `kill` was called.
    pub async fn killed(&self) {
        std::future::poll_fn(|cx| self.poll_killed(cx)).await;
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("matchers", &self.matchers.len())
            .finish()
    }
}

impl Subscriber {
    pub fn new(
        num: u64,
        matchers: Vec<Matcher>,
        grants: Option<Arc<Grants>>,
        capacity: usize,
        deadline: Option<Instant>,
        connection: Option<Arc<ConnectionKill>>,
        shared_connection: bool,
    ) -> Self {
        Self {
            num,
            id: SubscriberId(uuid::Uuid::new_v4()),
            matchers: matchers.into_boxed_slice(),
            grants,
            queue: OnceLock::new(),
            queued: AtomicU32::new(0),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX).max(1),
            waker: AtomicWaker::new(),
            state: AtomicU8::new(CloseReason::Open as u8),
            deadline,
            connection,
            lagging_since_ms: AtomicU32::new(0),
            shared_connection,
            last_progress_ms: AtomicU32::new(millis_since_epoch(Instant::now())),
            floor: AtomicU64::new(0),
            announced: AtomicBool::new(false),
        }
    }

    /// The token's grants (`None`: anonymous).
    pub fn grants(&self) -> Option<&Arc<Grants>> {
        self.grants.as_ref()
    }

    pub fn mark_announced(&self) {
        self.announced.store(true, Ordering::Release);
    }

    pub fn is_announced(&self) -> bool {
        self.announced.load(Ordering::Acquire)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Records that the stream handed a frame to its connection (it is being read).
    pub fn mark_progress(&self) {
        self.last_progress_ms
            .store(millis_since_epoch(Instant::now()), Ordering::Relaxed);
    }

    /// How long (ms) the stream has handed nothing to its connection, as of `now`.
    pub fn quiet_ms(&self, now: Instant) -> u64 {
        millis_between(
            self.last_progress_ms.load(Ordering::Relaxed),
            millis_since_epoch(now),
        )
    }

    /// Set by the hub at registration (see the field).
    pub fn set_floor(&self, seq: u64) {
        self.floor.store(seq, Ordering::Release);
    }

    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::Acquire)
    }

    /// Whether the stream should have ended by `now` but has not because it is not being
    /// polled: past its deadline by `grace`, or lagging with no progress for longer than `grace`
    /// — or, when other streams share its connection (HTTP/2), for longer than
    /// `shared_lag_grace`, because ending it means closing their connection too. A lagging
    /// stream that keeps draining (a long replay) is left alone.
    pub fn is_overdue(
        &self,
        now: Instant,
        grace: std::time::Duration,
        shared_lag_grace: std::time::Duration,
    ) -> bool {
        if self.deadline.is_some_and(|d| now >= d + grace) {
            return true;
        }
        let lagging_ms = self.lagging_since_ms.load(Ordering::Acquire);
        if lagging_ms == 0 {
            return false;
        }
        let lag_grace = if self.shared_connection {
            shared_lag_grace
        } else {
            grace
        };
        // Since the later of the overflow and the last progress.
        let now_ms = millis_since_epoch(now);
        let stalled_ms = millis_between(lagging_ms, now_ms).min(millis_between(
            self.last_progress_ms.load(Ordering::Relaxed),
            now_ms,
        ));
        u128::from(stalled_ms) >= lag_grace.as_millis()
    }

    /// Ends the connection carrying this subscriber, if known.
    pub fn kill_connection(&self) {
        if let Some(c) = &self.connection {
            c.kill();
        }
    }

    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Exact (non-wildcard) matcher patterns: these live in the index's hashed map.
    pub fn exact_topics(&self) -> impl Iterator<Item = &str> {
        self.matchers
            .iter()
            .filter(|m| is_hashed(m))
            .map(Matcher::pattern)
    }

    /// Whether this subscriber has matchers that must be evaluated (URL patterns, `*`).
    pub fn has_evaluated_matchers(&self) -> bool {
        self.matchers.iter().any(|m| !is_hashed(m))
    }

    /// Whether one of the evaluated (non-hashed) matchers selects one of `topics`.
    pub fn evaluated_match(&self, engine: &MatcherEngine, topics: &[Box<str>]) -> bool {
        self.matchers
            .iter()
            .filter(|m| !is_hashed(m))
            .any(|m| engine.matches_any(m, topics))
    }

    /// Full routing check (all matchers), used for replay.
    pub fn routes(&self, engine: &MatcherEngine, topics: &[Box<str>]) -> bool {
        self.matchers.iter().any(|m| engine.matches_any(m, topics))
    }

    /// Whether the subscriber may read `update`: public, or private with a `subscribe` grant on
    /// at least one of its topics. Routing matchers never widen this.
    pub fn may_read(&self, engine: &MatcherEngine, update: &Update) -> bool {
        if !update.private {
            return true;
        }
        match &self.grants {
            Some(g) => g.can_subscribe_any(engine, &update.topics),
            None => false,
        }
    }

    /// Enqueues without blocking. On overflow the subscriber is marked lagging (its stream ends
    /// after draining what it holds); the update stays in history for its resume.
    pub fn push(&self, update: Arc<Update>) {
        if self.enqueue(update) {
            self.wake();
        }
    }

    /// `push` without the wake: true when the update was queued and the stream must be woken
    /// (`wake`) — the writer enqueues a whole update before waking its streams. An update at or
    /// below the floor is not queued: it was committed before the subscriber registered.
    pub fn enqueue(&self, update: Arc<Update>) -> bool {
        if update.seq <= self.floor()
            || self.state.load(Ordering::Acquire) != CloseReason::Open as u8
        {
            return false;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.close(CloseReason::Lagging);
            return false;
        }
        self.queue
            .get_or_init(|| Box::new(SegQueue::new()))
            .push(update);
        true
    }

    /// Wakes the stream to drain its queue.
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Takes the next queued update.
    pub fn pop(&self) -> Option<Arc<Update>> {
        let u = self.queue.get()?.pop()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Some(u)
    }

    pub fn register_waker(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Ends the stream for `reason` (the first reason wins) and wakes it.
    pub fn close(&self, reason: CloseReason) {
        if reason == CloseReason::Lagging {
            // The first overflow counts; 0 means "not lagging", so a stamp is at least 1.
            let at = millis_since_epoch(Instant::now()).max(1);
            let _ =
                self.lagging_since_ms
                    .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire);
        }
        let _ = self.state.compare_exchange(
            CloseReason::Open as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.waker.wake();
    }

    pub fn close_reason(&self) -> CloseReason {
        match self.state.load(Ordering::Acquire) {
            1 => CloseReason::Lagging,
            2 => CloseReason::Shutdown,
            _ => CloseReason::Open,
        }
    }
}

/// Exact matchers are looked up by hash; everything else (URL patterns, `*`) is evaluated.
fn is_hashed(m: &Matcher) -> bool {
    m.kind() == MatcherType::Exact && !m.is_wildcard()
}

impl Subscriber {
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        // The queue itself, not the counter: the counter is bumped before the push lands, and
        // a poller re-checking on it could spin while a preempted publisher finishes.
        self.queue.get().is_none_or(|q| q.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sub(deadline: Option<Instant>, shared: bool) -> Subscriber {
        Subscriber::new(1, Vec::new(), None, 1, deadline, None, shared)
    }

    const GRACE: Duration = Duration::from_millis(500);
    const SHARED: Duration = Duration::from_secs(30);

    #[test]
    fn subscriber_stays_small() {
        // 144 bytes + the Arc's counts: mimalloc's 160-byte class. 8 more bytes cost 16.
        assert!(std::mem::size_of::<Subscriber>() <= 144);
    }

    #[test]
    fn overdue_after_deadline_plus_grace() {
        let now = Instant::now();
        let s = sub(Some(now + Duration::from_secs(1)), false);
        assert!(!s.is_overdue(now + Duration::from_millis(1400), GRACE, SHARED));
        assert!(s.is_overdue(now + Duration::from_millis(1500), GRACE, SHARED));
    }

    #[test]
    fn lagging_is_overdue_only_without_progress() {
        let s = sub(None, false);
        let now = Instant::now();
        assert!(
            !s.is_overdue(now + Duration::from_secs(60), GRACE, SHARED),
            "not lagging"
        );
        s.close(CloseReason::Lagging);
        let t = Instant::now();
        assert!(s.is_overdue(t + Duration::from_secs(1), GRACE, SHARED));
        // Still draining: progress moves the stall clock.
        s.mark_progress();
        let t = Instant::now();
        assert!(!s.is_overdue(t + Duration::from_millis(100), GRACE, SHARED));
        assert!(s.is_overdue(t + Duration::from_secs(1), GRACE, SHARED));
    }

    #[test]
    fn shared_connections_get_the_longer_lag_grace() {
        let s = sub(None, true);
        s.close(CloseReason::Lagging);
        let t = Instant::now();
        assert!(!s.is_overdue(t + Duration::from_secs(5), GRACE, SHARED));
        assert!(s.is_overdue(t + Duration::from_secs(31), GRACE, SHARED));
    }

    #[test]
    fn overflow_marks_lagging_and_keeps_what_was_queued() {
        let s = sub(None, false);
        let u = Arc::new(Update {
            seq: 1,
            id: "a".into(),
            topics: Box::new([]),
            private: false,
            frame: bytes::Bytes::new(),
        });
        s.push(Arc::clone(&u));
        assert_eq!(s.close_reason(), CloseReason::Open);
        s.push(Arc::clone(&u));
        assert_eq!(s.close_reason(), CloseReason::Lagging);
        assert!(s.pop().is_some());
        assert!(s.pop().is_none(), "the overflowing update was not queued");
    }
}
