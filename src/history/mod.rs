//! Event history behind the `History` trait: append (in sequence order), id → sequence lookup
//! (earliest occurrence wins), and batched reads after a sequence so replays stream with
//! backpressure instead of being materialised.
mod durable;
pub mod log;
mod memory;

pub use durable::LogHistory;
pub use log::{EventLog, LogConfig, RecoveryReport, StoredEvent};
pub use memory::{MemoryHistory, NoHistory};

use std::sync::Arc;

use crate::hub::Update;

#[derive(Debug, Clone, thiserror::Error)]
pub enum HistoryError {
    #[error("history unavailable: {0}")]
    Unavailable(String),
}

/// Storage of published updates, in sequence order. Sequences start at 1 and increase by one
/// per update; the hub's writer assigns them, continuing from `last_seq` at start.
pub trait History: Send + Sync + std::fmt::Debug {
    /// Stores `batch` (consecutive sequences right after `last_seq`) in one commit. When this
    /// returns `Ok`, the whole batch is as durable as the backend promises; on `Err`, none of it
    /// is stored.
    fn append_batch(&self, batch: &[Arc<Update>]) -> Result<(), HistoryError>;
    /// The last stored sequence (0 when nothing was ever stored).
    fn last_seq(&self) -> u64;
    /// Sequence of the earliest retained update whose id is `id`.
    fn lookup(&self, id: &str) -> Option<u64>;
    /// Appends to `out` at most `max` retained updates with `after < seq <= up_to`, in order.
    fn read_after(
        &self,
        after: u64,
        up_to: u64,
        max: usize,
        out: &mut Vec<Arc<Update>>,
    ) -> Result<(), HistoryError>;
    /// Applies retention; called by the writer between batches.
    fn maintain(&self) {}
    /// Whether `append_batch` may wait on I/O (a disk sync, the network). A history that never
    /// does is appended to by the request threads themselves (`Hub::publish`), not only by the
    /// writer thread.
    fn append_may_wait(&self) -> bool {
        true
    }
}
