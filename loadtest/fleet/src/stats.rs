//! Measurement helpers: latency histograms (microseconds) with a sparse form that crosses the
//! worker pipe, percentile summaries, and server memory read from /proc. No network I/O.
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One hour in microseconds: the largest latency recorded exactly (larger values saturate).
const MAX_US: u64 = 3_600_000_000;

#[allow(
    clippy::expect_used,
    reason = "constant bounds within hdrhistogram's limits: this cannot fail"
)]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.clamp(1, MAX_US));
}

/// `(value, count)` pairs of the recorded buckets.
pub type Sparse = Vec<(u64, u64)>;

pub fn to_sparse(h: &Histogram<u64>) -> Sparse {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn merge_sparse(h: &mut Histogram<u64>, sparse: &Sparse) {
    for &(value, count) in sparse {
        let _ = h.record_n(value.clamp(1, MAX_US), count);
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn summarize(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

/// Memory of the server processes, summed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Mem {
    /// Sum of `VmRSS` (shared pages are counted once per process).
    pub rss: u64,
    /// Sum of `Pss` from smaps_rollup (shared pages split between the processes).
    pub pss: u64,
    pub processes: usize,
}

/// `pids` plus the pids printed by `pid_cmd` when given (sorted, deduplicated).
pub fn server_pids(pids: &[u32], pid_cmd: Option<&str>) -> Vec<u32> {
    let mut all: Vec<u32> = pids.to_vec();
    if let Some(out) = pid_cmd.and_then(|cmd| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .ok()
    }) {
        all.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// User + system CPU seconds used so far by `pids` (summed; `None` if one cannot be read).
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    pids.iter().try_fold(0.0, |sum, pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(sum + stat_cpu_ticks(&stat)? as f64 / ticks)
    })
}

/// This process's user + system CPU seconds so far.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(&[std::process::id()])
}

/// `utime + stime` of a `/proc/PID/stat` line (fields 14 and 15; the command name in
/// parentheses may hold spaces, so fields are counted after its closing parenthesis).
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads the memory of `pids`, plus the pids printed by `pid_cmd` when given.
pub fn server_memory(pids: &[u32], pid_cmd: Option<&str>) -> Option<Mem> {
    let all = server_pids(pids, pid_cmd);
    if all.is_empty() {
        return None;
    }
    let mut mem = Mem::default();
    for pid in all {
        if let Some(rss) = proc_kib(&format!("/proc/{pid}/status"), "VmRSS:") {
            mem.rss += rss * 1024;
            mem.processes += 1;
        }
        if let Some(pss) = proc_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:") {
            mem.pss += pss * 1024;
        }
    }
    Some(mem)
}

/// This process's own resident memory, bytes.
pub fn own_rss() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:").unwrap_or(0) * 1024
}

fn proc_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_kib(&text, key)
}

fn parse_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_a_stat_line() {
        // The command name may hold spaces and parentheses.
        let line = "4242 (qs (x) y) S 1 2 3 4 5 6 7 8 9 10 120 34 0 0 20 0 3 0 100 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(154));
        assert_eq!(stat_cpu_ticks("4242 (short"), None);
        assert!(own_cpu_seconds().is_some());
    }

    #[test]
    fn sparse_round_trip_keeps_percentiles() {
        let mut a = new_histogram();
        for us in [100, 200, 300, 40_000, 1_000_000] {
            record(&mut a, us);
        }
        let mut b = new_histogram();
        merge_sparse(&mut b, &to_sparse(&a));
        merge_sparse(&mut b, &to_sparse(&a));
        let s = summarize(&b);
        assert_eq!(s.count, 10);
        assert!((s.p50_ms - 0.3).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn proc_status_line() {
        let text = "Name:\tnginx\nVmRSS:\t   10240 kB\nThreads:\t1\n";
        assert_eq!(parse_kib(text, "VmRSS:"), Some(10240));
        assert_eq!(parse_kib(text, "Pss:"), None);
    }
}
