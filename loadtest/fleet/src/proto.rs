//! The coordinator ↔ worker protocol: one JSON object per line, commands on the worker's stdin,
//! events on its stdout. Types only.
use serde::{Deserialize, Serialize};

use crate::cli::Args;
use crate::stats::Sparse;

/// What a worker process is started with (its `--worker` argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub args: Args,
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Open this worker's share of connections `0..conns` (those with `c % count == index`).
    Grow {
        conns: u64,
    },
    /// Start a measurement epoch: forget earlier deliveries.
    Epoch {
        epoch: u32,
    },
    /// Report the epoch, `published` sequence numbers were sent, `unacked` of them failed.
    Report {
        epoch: u32,
        published: u64,
        unacked: Vec<u64>,
    },
    Exit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Progress {
        connected: u64,
        failed: u64,
        closed: u64,
        /// Distinct (subscriber, sequence) deliveries of the current epoch.
        unique: u64,
        rss: u64,
    },
    Grown {
        connected: u64,
        failed: u64,
        elapsed_s: f64,
        connect_us: Sparse,
        errors: Vec<String>,
    },
    EpochReady {
        epoch: u32,
        /// Live subscribers per topic when the epoch started.
        topic_subs: Vec<u64>,
    },
    Report(Box<DeliveryReport>),
    /// Synthesised by the coordinator when a worker's stdout closes.
    Gone,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub epoch: u32,
    pub deliveries: u64,
    pub unique: u64,
    pub duplicates: u64,
    /// Updates of another epoch (late, or replayed).
    pub stale: u64,
    /// Events whose data is not a fleet payload.
    pub foreign: u64,
    /// Deliveries of publishes the server did not acknowledge.
    pub unacked_delivered: u64,
    /// Deliveries with a sequence number beyond what was published (or beyond the tracked range).
    pub unexpected: u64,
    /// Acknowledged publishes × live subscribers of their topic, minus distinct deliveries.
    pub missing: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub latency_us: Sparse,
    pub closed: u64,
    pub rss: u64,
}
