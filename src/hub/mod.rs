//! The `Hub` facade: the publish pipeline (sequence, history, index lookup, per-subscriber
//! authorization, enqueue) and the subscribe pipeline (register first, then replay, then live).
mod dispatch;
mod presence;
mod update;

pub use presence::{
    collection_topic, expand_into, subscription_topic, SubscriptionDoc, SubscriptionQuery,
    SubscriptionSnapshot, SUBSCRIPTIONS_SEGMENT,
};
pub use update::{generate_id, validate, Publication, Update, ValidUpdate};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use dispatch::{Core, Job, Presence};
use presence::PresenceChange;

use crate::auth::Grants;
use crate::error::HubError;
use crate::history::History;
use crate::subscriber::{CloseReason, ConnectionKill, Subscriber};
use crate::topic::{Matcher, MatcherEngine};

/// Where a subscriber's replay starts, from its `Last-Event-ID` / `last_event_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorRequest {
    /// No cursor was sent: no replay, no `Mercure-Last-Event-ID` header.
    None,
    /// A cursor was sent but empty: no replay, header `earliest`.
    Empty,
    /// `earliest`: replay everything retained.
    Earliest,
    /// An event id.
    Id(String),
}

impl CursorRequest {
    /// A non-empty cursor value.
    pub fn from_value(value: String) -> Self {
        if value == "earliest" {
            Self::Earliest
        } else {
            Self::Id(value)
        }
    }
}

/// How a subscriber's stream is carried.
#[derive(Debug, Default)]
pub struct StreamOptions {
    /// When the stream must end (token `exp`, rotation).
    pub deadline: Option<tokio::time::Instant>,
    /// Ends the carrying connection when the stream cannot end by itself.
    pub connection: Option<Arc<ConnectionKill>>,
    /// Other streams may share that connection (HTTP/2).
    pub shared_connection: bool,
    /// Publish subscription events for it (when the feature is on); `false` for a `HEAD` probe.
    pub announce: bool,
}

impl StreamOptions {
    /// A stream that publishes subscription events (when the feature is on).
    pub fn announced() -> Self {
        Self {
            announce: true,
            ..Self::default()
        }
    }
}

/// Optional hub features.
#[derive(Debug, Default, Clone)]
pub struct HubOptions {
    /// Active subscriptions: `Some(hub path)` publishes subscription events under
    /// `<hub path>/subscriptions/…` and keeps the registry the Subscription API reads.
    pub subscription_events: Option<String>,
}

/// A registered subscription, ready to become a stream.
#[derive(Debug)]
pub struct Subscription {
    pub subscriber: Arc<Subscriber>,
    /// Replay the retained updates with `after < seq <= until`.
    pub replay: Option<(u64, u64)>,
    /// Value of the `Mercure-Last-Event-ID` response header, when a cursor was sent.
    pub last_event_id: Option<String>,
}

/// Counters read by metrics and health; atomics, never behind a lock.
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub subscribers_total: AtomicU64,
}

/// Publishes waiting for the writer; publishers wait (asynchronously) when it is full.
const JOB_QUEUE: usize = 16 * 1024;

#[derive(Debug)]
pub struct Hub {
    core: Arc<Core>,
    jobs: mpsc::Sender<Job>,
    next_subscriber: AtomicU64,
    queue_capacity: usize,
    shutting_down: AtomicBool,
}

impl Hub {
    /// Builds the hub and starts its writer thread (which ends when the hub is dropped).
    pub fn new(
        engine: Arc<MatcherEngine>,
        history: Box<dyn History>,
        queue_capacity: usize,
    ) -> Self {
        Self::with_options(engine, history, queue_capacity, HubOptions::default())
    }

    /// `new` with the optional features.
    pub fn with_options(
        engine: Arc<MatcherEngine>,
        history: Box<dyn History>,
        queue_capacity: usize,
        options: HubOptions,
    ) -> Self {
        let presence = options.subscription_events.as_deref().map(Presence::new);
        let (core, fanned) = Core::new(engine, history, presence);
        let core = Arc::new(core);
        let (jobs, rx) = mpsc::channel(JOB_QUEUE);
        let writer_core = Arc::clone(&core);
        let spawned = std::thread::Builder::new()
            .name("quicksilver-writer".into())
            .spawn(move || writer_core.run_writer(rx, fanned));
        if let Err(e) = spawned {
            // Publishes will then answer 503 (the job channel is closed), visibly in health.
            core.set_history_error(Some(format!("cannot start the writer thread: {e}")));
        }
        Self {
            core,
            jobs,
            next_subscriber: AtomicU64::new(1),
            queue_capacity,
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn engine(&self) -> &Arc<MatcherEngine> {
        &self.core.engine
    }

    pub fn history(&self) -> &dyn History {
        &*self.core.history
    }

    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    /// The last history failure, cleared by the next successful append.
    pub fn history_error(&self) -> Option<String> {
        self.core.history_error()
    }

    pub fn connected_subscribers(&self) -> usize {
        self.core.index.connected()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Publishes: the writer assigns the next sequence, stores the update (with others, in one
    /// commit) and answers; it then enqueues the update for every matching subscriber allowed to
    /// read it. Never waits on a subscriber, nor on the fan-out. With a history that never waits
    /// on I/O the commit (and a small fan-out) happens on this thread instead (`publish_inline`).
    pub async fn publish(&self, update: ValidUpdate) -> Result<Arc<Update>, HubError> {
        if self.is_shutting_down() {
            return Err(HubError::Unavailable("the hub is shutting down".into()));
        }
        if self.core.inline {
            return self.publish_inline(update).await;
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Publish { update, reply })
            .await
            .map_err(|_| HubError::Unavailable("the history writer is not running".into()))?;
        answer
            .await
            .map_err(|_| HubError::Unavailable("the history writer stopped".into()))?
    }

    /// `publish` when the history never waits on I/O: committed (and, for a small fan-out,
    /// fanned out) on this thread, with no hand-over to the writer thread and back (which
    /// cost two thread wake-ups per publish). Larger fan-outs go to the writer.
    async fn publish_inline(&self, update: ValidUpdate) -> Result<Arc<Update>, HubError> {
        if self.jobs.is_closed() {
            // Nobody would fan out what is handed over.
            return Err(HubError::Unavailable(
                "the history writer is not running".into(),
            ));
        }
        if self.core.unfanned() >= dispatch::MAX_UNFANNED {
            // Back-pressure, as the job queue gives in the other mode: wait for the writer to
            // work the hand-overs down to half.
            self.core.unfanned_below(dispatch::MAX_UNFANNED / 2).await;
        }
        let (update, wake_writer) = self.core.commit_inline(update)?;
        if wake_writer {
            // A full queue means the writer is busy and drains the hand-overs before its next
            // wait; a closed one was checked above.
            let _ = self.jobs.try_send(Job::Wake);
        }
        Ok(update)
    }

    /// Waits until everything queued before this call — publishes and subscription events
    /// (e.g. the disconnects of streams just ended) — is committed to history and fanned out.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Registers a subscriber (before any replay, so nothing published meanwhile is missed)
    /// and resolves its cursor.
    pub fn subscribe(
        &self,
        matchers: Vec<Matcher>,
        grants: Option<Arc<Grants>>,
        cursor: CursorRequest,
        stream: StreamOptions,
    ) -> Result<Subscription, HubError> {
        if self.is_shutting_down() {
            return Err(HubError::Unavailable("the hub is shutting down".into()));
        }
        let num = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let subscriber = Arc::new(Subscriber::new(
            num,
            matchers,
            grants,
            self.queue_capacity,
            stream.deadline,
            stream.connection,
            stream.shared_connection,
        ));
        let floor = self.core.register(&subscriber);
        // Shutdown may have closed every registered stream between the check above and the
        // registration: look again (the index's shard lock orders this read after that close).
        if self.is_shutting_down() {
            subscriber.close(CloseReason::Shutdown);
        }
        if self.core.presence.is_some() && stream.announce {
            subscriber.mark_announced();
            self.core.announce(
                PresenceChange::Connected(Arc::clone(&subscriber)),
                &self.jobs,
            );
        }
        self.core
            .counters
            .subscribers_total
            .fetch_add(1, Ordering::Relaxed);
        let (replay, last_event_id) = match cursor {
            CursorRequest::None => (None, None),
            CursorRequest::Empty => (None, Some("earliest".to_owned())),
            CursorRequest::Earliest => (Some((0, floor)), Some("earliest".to_owned())),
            CursorRequest::Id(id) => match self.core.history.lookup(&id) {
                Some(seq) => (Some((seq, floor)), Some(id)),
                None => (None, Some("earliest".to_owned())),
            },
        };
        Ok(Subscription {
            subscriber,
            replay,
            last_event_id,
        })
    }

    /// Removes a subscriber from the index (its stream ended). The first removal of an
    /// announced subscriber queues its subscription events (`active: false`).
    pub fn unsubscribe(&self, subscriber: &Subscriber) {
        if let Some(removed) = self.core.index.remove(subscriber) {
            if removed.is_announced() {
                self.core
                    .announce(PresenceChange::Disconnected(removed), &self.jobs);
            }
        }
    }

    /// Whether active subscriptions are on (subscription events and the Subscription API).
    pub fn subscription_events(&self) -> bool {
        self.core.presence.is_some()
    }

    /// The active subscriptions selected by `query`, taken atomically with the fan-out, with the
    /// id of the last update fanned out at that moment (`None` when the feature is off).
    /// Publishers are answered before their update is fanned out: this first waits for the
    /// fan-out of everything committed so far, so a snapshot reflects every publish answered
    /// before the call (read-your-writes for the cursor).
    pub async fn subscriptions(&self, query: &SubscriptionQuery) -> Option<SubscriptionSnapshot> {
        self.core.presence.as_ref()?;
        self.core.caught_up().await;
        Some(self.core.snapshot(query))
    }

    /// Ends the connections of streams that are past their deadline or lagging by more than
    /// `grace` yet still registered: their clients stopped reading, so their bodies are not
    /// polled and cannot end themselves. Returns how many were ended. Also wakes every stream
    /// that has been quiet for `heartbeat`, so it sends its heartbeat comment (streams keep no
    /// timer of their own for that).
    pub fn reap(
        &self,
        now: tokio::time::Instant,
        grace: std::time::Duration,
        shared_lag_grace: std::time::Duration,
        heartbeat: Option<std::time::Duration>,
    ) -> usize {
        let heartbeat_ms = heartbeat.map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX));
        let (mut overdue, mut due) = (Vec::new(), Vec::new());
        // Collected, then acted on outside the index's shard locks (connects wait on them).
        self.core.index.for_each(|sub| {
            if sub.is_overdue(now, grace, shared_lag_grace) {
                overdue.push(Arc::clone(sub));
            } else if heartbeat_ms.is_some_and(|h| sub.quiet_ms(now) >= h) {
                due.push(Arc::clone(sub));
            }
        });
        for sub in due {
            sub.wake();
        }
        for sub in &overdue {
            tracing::info!(subscriber = %sub.id, "ending the connection of a stream that stopped reading past its deadline or queue limit");
            self.unsubscribe(sub);
            sub.kill_connection();
        }
        overdue.len()
    }

    /// Refuses new work and ends every stream. Publishes already acknowledged are in history.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.core.index.close_all(CloseReason::Shutdown);
    }
}
