//! `LogHistory`: the `History` backed by the embedded durable `EventLog`. A batch is appended
//! and made durable with one `fdatasync`; retention runs at most once a second between batches.
//! The engine sits behind a read-write lock: appends hold it to buffer a batch and to apply
//! its commit, not during the write and `fdatasync` (see `EventLog::begin_commit`); lookups
//! and replay reads share it.
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::log::{EventLog, LogConfig, RecoveryReport, StoredEvent};
use super::{History, HistoryError};
use crate::config::LogRetention;
use crate::hub::Update;

/// Retention is checked at most this often.
const TRIM_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LogHistory {
    log: RwLock<EventLog>,
    last_trim: Mutex<Instant>,
}

impl LogHistory {
    /// Opens (creating or recovering) the log in `dir`.
    pub fn open(dir: PathBuf, retention: LogRetention) -> std::io::Result<(Self, RecoveryReport)> {
        let defaults = LogConfig::new(dir);
        let config = LogConfig {
            max_events: retention.max_events,
            max_bytes: retention.max_bytes,
            max_age: retention.max_age,
            ..defaults
        };
        let (log, report) = EventLog::open(config)?;
        Ok((
            Self {
                log: RwLock::new(log),
                last_trim: Mutex::new(Instant::now()),
            },
            report,
        ))
    }

    fn read(&self) -> RwLockReadGuard<'_, EventLog> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, EventLog> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unavailable(e: std::io::Error) -> HistoryError {
    HistoryError::Unavailable(format!("history log: {e}"))
}

impl History for LogHistory {
    fn append_batch(&self, batch: &[Arc<Update>]) -> Result<(), HistoryError> {
        let now = unix_ms();
        let group = {
            let mut log = self.write();
            // `append` does I/O only when it opens a segment, which happens only with nothing
            // pending, so an error here cannot leave part of this batch pending; a failed write
            // discards the whole batch (the engine truncates back to its last commit).
            for update in batch {
                log.append(&StoredEvent::from_update(update, now))
                    .map_err(unavailable)?;
            }
            log.begin_commit(true).map_err(unavailable)?
        };
        let Some(mut group) = group else {
            return Ok(());
        };
        // Written and fdatasync'd without the lock: lookups and replay reads (on the request
        // threads) only see committed records, so they go on during the sync.
        let written = group.write();
        self.write().end_commit(group, written).map_err(unavailable)
    }

    fn last_seq(&self) -> u64 {
        self.read().committed_seq()
    }

    fn lookup(&self, id: &str) -> Option<u64> {
        self.read().lookup(id)
    }

    fn read_after(
        &self,
        after: u64,
        up_to: u64,
        max: usize,
        out: &mut Vec<Arc<Update>>,
    ) -> Result<(), HistoryError> {
        let mut events = Vec::with_capacity(max.min(1024));
        self.read()
            .read_after(after, up_to, max, &mut events)
            .map_err(unavailable)?;
        out.extend(events.into_iter().map(|e| Arc::new(e.into_update())));
        Ok(())
    }

    fn maintain(&self) {
        {
            let mut last = self.last_trim.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < TRIM_EVERY {
                return;
            }
            *last = Instant::now();
        }
        match self.write().trim(unix_ms()) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(dropped = n, "history retention trimmed old segments"),
            Err(e) => tracing::warn!(error = %e, "history retention failed"),
        }
    }
}
