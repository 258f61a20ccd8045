//! The writer and the dispatch core. One writer thread takes publishes in batches, assigns their
//! sequences, appends each batch to history in one commit (one `fdatasync` for the durable log),
//! then fans the batch out in sequence order and acknowledges every publisher. Registration of a
//! subscriber and fan-out exclude each other, so a subscriber's replay floor is exact.
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::{Counters, Update, ValidUpdate};
use crate::error::HubError;
use crate::history::History;
use crate::index::Index;
use crate::subscriber::Subscriber;
use crate::topic::MatcherEngine;

/// Most publishes committed together.
const MAX_BATCH: usize = 1024;

/// A publish waiting for the writer.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) update: ValidUpdate,
    pub(super) reply: oneshot::Sender<Result<Arc<Update>, HubError>>,
}

/// What the writer and the request handlers share.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) engine: Arc<MatcherEngine>,
    pub(super) index: Index,
    pub(super) history: Box<dyn History>,
    pub(super) counters: Counters,
    /// The last sequence fanned out. Held during a batch's fan-out and during a subscriber's
    /// registration, so a registering subscriber either gets an update live or has it below its
    /// floor (in its replay range), never neither.
    dispatched: Mutex<u64>,
    history_error: Mutex<Option<String>>,
}

impl Core {
    pub(super) fn new(engine: Arc<MatcherEngine>, history: Box<dyn History>) -> Self {
        let last = history.last_seq();
        Self {
            engine,
            index: Index::new(),
            history,
            counters: Counters::default(),
            dispatched: Mutex::new(last),
            history_error: Mutex::new(None),
        }
    }

    /// Inserts `subscriber` into the index and returns its floor: every update with a sequence
    /// up to it was fanned out before the subscriber could receive it.
    pub(super) fn register(&self, subscriber: &Arc<Subscriber>) -> u64 {
        let dispatched = self.dispatched.lock().unwrap_or_else(|e| e.into_inner());
        self.index.insert(subscriber);
        *dispatched
    }

    pub(super) fn history_error(&self) -> Option<String> {
        self.history_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn set_history_error(&self, error: Option<String>) {
        *self.history_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// The writer loop: runs until every `Hub` handle (job sender) is gone.
    pub(super) fn run_writer(&self, mut jobs: mpsc::Receiver<Job>) {
        let mut next_seq = self.history.last_seq() + 1;
        let mut batch_jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut replies = Vec::with_capacity(MAX_BATCH);
        let mut updates: Vec<Arc<Update>> = Vec::with_capacity(MAX_BATCH);
        let mut targets = Vec::new();
        while let Some(first) = jobs.blocking_recv() {
            batch_jobs.push(first);
            while batch_jobs.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch_jobs.push(job),
                    Err(_) => break,
                }
            }
            for (i, job) in batch_jobs.drain(..).enumerate() {
                updates.push(Arc::new(job.update.into_update(next_seq + i as u64)));
                replies.push(job.reply);
            }
            match self.history.append_batch(&updates) {
                Ok(()) => {
                    next_seq += updates.len() as u64;
                    if self.history_error().is_some() {
                        tracing::info!("history appends succeed again");
                        self.set_history_error(None);
                    }
                    self.fan_out(&updates, &mut targets);
                    for (reply, update) in replies.drain(..).zip(updates.drain(..)) {
                        let _ = reply.send(Ok(update));
                    }
                    self.history.maintain();
                }
                Err(e) => {
                    tracing::error!(error = %e, batch = updates.len(), "history append failed: publishes answered 503");
                    self.set_history_error(Some(e.to_string()));
                    updates.clear();
                    for reply in replies.drain(..) {
                        let _ = reply.send(Err(HubError::Unavailable(e.to_string())));
                    }
                }
            }
        }
    }

    /// Enqueues each update, in order, for every matching subscriber allowed to read it.
    fn fan_out(&self, updates: &[Arc<Update>], targets: &mut Vec<Arc<Subscriber>>) {
        let mut dispatched = self.dispatched.lock().unwrap_or_else(|e| e.into_inner());
        let mut delivered = 0;
        for update in updates {
            self.index.matching(&self.engine, update, targets);
            for sub in targets.iter() {
                if sub.may_read(&self.engine, update) {
                    sub.push(Arc::clone(update));
                    delivered += 1;
                }
            }
            *dispatched = update.seq;
        }
        drop(dispatched);
        targets.clear();
        self.counters
            .published
            .fetch_add(updates.len() as u64, Ordering::Relaxed);
        self.counters
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }
}
