//! Crash points for the crash-safety tests. With the `test-hooks` feature (enabled for
//! `cargo test` through a dev-dependency, never in a release build) the process aborts right
//! before its Nth file-system change, N from RAVENCERT_FAULT_AT.

#[cfg(feature = "test-hooks")]
// The process aborts next, before any log could flush: the crash tests read this line.
#[allow(clippy::print_stderr)]
pub(super) fn step() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STEPS: AtomicU64 = AtomicU64::new(0);
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    let at = std::env::var("RAVENCERT_FAULT_AT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if at == Some(n) {
        eprintln!("fault injection: aborting before file-system step {n}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(super) fn step() {}
