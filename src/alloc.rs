//! Allocator housekeeping: transparent huge pages off for the process, and mimalloc collection
//! on idle runtime threads — the only `unsafe` in the crate, fenced here (FFI to mimalloc, the
//! binary's global allocator). mimalloc returns emptied pages to the OS after a delay and only
//! when the same thread allocates again, so after a burst of connects (each with a few KB of
//! short-lived request/response state) a worker thread that then idles kept that memory resident
//! for good. Runtime threads call `on_thread_park` when they run out of work: at most every 50 ms
//! per thread, it makes mimalloc purge what that thread freed (a 1 s throttle often skipped the
//! last park after a burst: 2.2–3.4 KB per subscriber instead of 2.1–2.4; publish throughput
//! the same within noise, three alternating runs each). Measured with `qs-fleet
//! --subscribers 10000` (unpaced connects, then idle): ~4.8 → 2.1–2.4 KB of hub RSS per subscriber
//! (see the README benchmark table); purging on every free instead cost ~10 % of publish
//! throughput. Harmless when mimalloc is not the global allocator (tests): it only sees its own,
//! empty, heaps.
#![allow(unsafe_code)] // reason: FFI to mimalloc's collection API; see `on_thread_park`

use std::cell::Cell;
use std::time::{Duration, Instant};

/// At most one collection per thread per this period.
const COLLECT_EVERY: Duration = Duration::from_millis(50);

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Turns transparent huge pages off for the whole process (Linux `PR_SET_THP_DISABLE`, like
/// Redis). mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), and when it returns freed
/// 64 KiB pages to the OS, khugepaged (every 10 s here) collapses the range back into a resident
/// 2 MiB page — as long as one 4 KiB page of it is in use. Measured with `qs-fleet --subscribers
/// 10000 --settle 20` (hub RSS sampled every second): after a connect storm RSS fell to 39 MB,
/// then jumped to 52 MB about 10 s later (2.1 → 3.4 KB per idle subscriber, for good); with this,
/// it stays down. Returns the OS error when the kernel refuses (the hub runs on regardless).
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// For `tokio::runtime::Builder::on_thread_park`: purge this thread's freed pages, throttled.
pub fn on_thread_park() {
    let now = Instant::now();
    let due = LAST_COLLECT.with(|last| {
        let due = last
            .get()
            .is_none_or(|at| now.duration_since(at) >= COLLECT_EVERY);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: mi_collect takes a plain bool and may be called at any time from any thread;
        // it collects the calling thread's heap and purges what is due in the shared segments
        // and arenas, which mimalloc synchronizes itself. Non-forcing (`false`): the
        // forcing variant also walks full pages and purges process-wide (measured: no
        // difference in resident memory here, three runs each).
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
