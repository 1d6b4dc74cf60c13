//! Threads the system may refuse (a limit on processes or on memory; `RAVENCERT_JOBS` can ask
//! for thousands): `std::thread::spawn` and `Scope::spawn` panic then. Each caller of these does
//! without the thread, or does its work itself.

use std::thread::{Builder, JoinHandle, Scope, ScopedJoinHandle};

/// A thread, or None when the system refused it.
pub(crate) fn spawn<T, F>(f: F) -> Option<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if refused() {
        return None;
    }
    Builder::new().spawn(f).ok()
}

/// A scoped thread, or None when the system refused it.
pub(crate) fn spawn_scoped<'s, 'e, T, F>(
    s: &'s Scope<'s, 'e>,
    f: F,
) -> Option<ScopedJoinHandle<'s, T>>
where
    F: FnOnce() -> T + Send + 's,
    T: Send + 's,
{
    if refused() {
        return None;
    }
    Builder::new().spawn_scoped(s, f).ok()
}

/// `test-hooks` builds (the tests'): with RAVENCERT_TEST_THREADS=N, the system is taken to give
/// the first N threads asked for here and refuse every one after.
#[cfg(feature = "test-hooks")]
fn refused() -> bool {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static ASKED: AtomicUsize = AtomicUsize::new(0);
    crate::env_number("RAVENCERT_TEST_THREADS")
        .is_some_and(|given| ASKED.fetch_add(1, Ordering::SeqCst) >= given)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
fn refused() -> bool {
    false
}
