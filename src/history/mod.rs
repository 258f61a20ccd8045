//! Event history behind the `History` trait: append (in sequence order), id → sequence lookup
//! (earliest occurrence wins), and batched reads after a sequence so replays stream with
//! backpressure instead of being materialised.
pub mod log;
mod memory;

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
/// per update; the hub assigns them.
pub trait History: Send + Sync + std::fmt::Debug {
    /// Stores `update`. When this returns `Ok`, the update is as durable as the backend promises.
    fn append(&self, update: &Arc<Update>) -> Result<(), HistoryError>;
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
}
