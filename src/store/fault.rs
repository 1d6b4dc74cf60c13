//! Crash points for the crash-safety tests. With the `test-hooks` feature (enabled for
//! `cargo test` through a dev-dependency, never in a release build) the process aborts right
//! before its Nth file-system change, N from RAVENCERT_FAULT_AT.

#[cfg(feature = "test-hooks")]
// The process aborts next, before any log could flush: the crash tests read this line.
#[allow(clippy::print_stderr)]
pub(super) fn step() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STEPS: AtomicUsize = AtomicUsize::new(0);
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if crate::env_number("RAVENCERT_FAULT_AT") == Some(n) {
        eprintln!("fault injection: aborting before file-system step {n}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(super) fn step() {}

/// An early flush's outcome ([`super::Store::early_flusher`]). With the `test-hooks` feature
/// and RAVENCERT_FAULT_EARLY_FLUSH set, it fails as a flush that met a write-back error does
/// (the disk refused a write), while the commit's own flush succeeds: as when the commit's
/// flush goes through a folder opened after the error was told (the kept error is the
/// backstop for that).
#[cfg(feature = "test-hooks")]
pub(super) fn early_flush(root: &std::path::Path, outcome: super::Result<()>) -> super::Result<()> {
    if std::env::var_os("RAVENCERT_FAULT_EARLY_FLUSH").is_some() {
        return Err(super::StoreError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::from_raw_os_error(5),
        });
    }
    outcome
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(super) fn early_flush(
    _root: &std::path::Path,
    outcome: super::Result<()>,
) -> super::Result<()> {
    outcome
}
