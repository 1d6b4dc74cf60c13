//! `ravencert watch`: keeps the store converged. Follows certs.toml (a file watch on its folder,
//! since editors save by rename) or a git branch, re-checks every interval so that certificates
//! are renewed when nobody edits anything, backs off on failure, and stops cleanly on
//! SIGINT/SIGTERM once the running apply has finished.
//!
//! This is the loop only: each attempt (load, plan, apply, log) is a `Reconciler` that
//! `ops::watch` supplies, so that nothing here depends on the commands above it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::git::{Follower, GitError};

/// Follow a git branch instead of a local file.
#[derive(Debug, Clone)]
pub struct GitFollow {
    /// The repository (URL or local path).
    pub url: String,
    /// The branch followed.
    pub branch: String,
    /// How often to fetch.
    pub poll: Duration,
}

/// How `watch` runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Re-check this often (with jitter) even when nothing changes.
    pub interval: Duration,
    /// Only log what would change.
    pub plan_only: bool,
    /// Follow a git branch instead of certs.toml on disk.
    pub git: Option<GitFollow>,
    /// How long an apply waits for another one holding the store's lock.
    pub lock_timeout: Duration,
}

/// Why the watch cannot start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// SIGINT/SIGTERM handlers cannot be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    /// The file watch cannot be set up.
    #[error("cannot watch files: {0}")]
    Notify(notify::Error),
    /// The file watch ended on its own.
    #[error("the file watcher stopped")]
    WatcherStopped,
    /// With `--git`, `--policy` must name a path inside the repository.
    #[error("with --git, --policy names policy.toml inside the repository (e.g. clusters/prod/policy.toml), not {}", .0.display())]
    PolicyOutsideRepository(PathBuf),
    /// With `--git`, `-c` must name a path inside the repository.
    #[error("with --git, -c names certs.toml inside the repository (e.g. clusters/prod/certs.toml), not {}", .0.display())]
    ConfigOutsideRepository(PathBuf),
    /// `--git` without `--store`.
    #[error("watch --git needs --store DIR: each machine keeps its own store while following one repository")]
    NoStore,
    /// The repository cannot be cloned or opened.
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Where one attempt reads certs.toml from.
pub(crate) enum Source<'a> {
    /// certs.toml on disk, as `-c` names it.
    Local,
    /// certs.toml in a commit of the followed branch.
    Commit {
        /// certs.toml's path in the cache checkout.
        config: PathBuf,
        /// The commit id.
        commit: &'a str,
        /// What the registry records as applied: `<branch>@sha1:<commit>`.
        revision: String,
    },
}

/// The outcome of one converge attempt.
pub(crate) enum Attempt {
    /// Planned (and applied, unless plan-only).
    Done,
    /// The config is invalid: wait for the next change, nothing to retry.
    Invalid,
    /// The plan or apply failed (lock busy, I/O): retry with backoff.
    Failed,
}

/// One attempt of the loop: read certs.toml, plan, apply unless plan-only, log what happened.
pub(crate) trait Reconciler {
    /// Runs one attempt, `why` naming its cause in the log. Returns its outcome and, when
    /// certs.toml could be read, the files it references (a change to them means plan again).
    fn attempt(&self, source: &Source<'_>, why: &str) -> (Attempt, Option<Vec<PathBuf>>);
    /// `--git`: after every fetch, None when it worked, else why it failed (one line).
    fn source_fetched(&self, _failure: Option<String>) {}
    /// When access next ends by itself (a client's `until`, an overlap's end), as the last
    /// attempt saw it: the loop attempts again then, not an interval later.
    fn wake_at(&self) -> Option<OffsetDateTime> {
        None
    }
    /// The clock [`Reconciler::wake_at`] is compared with: wall-clock time, so that a suspend
    /// or a clock step cannot delay the end of access.
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    /// Whether the end of access [`Reconciler::wake_at`] names has come.
    fn access_ends(&self) -> bool {
        self.wake_at().is_some_and(|w| self.now() >= w)
    }
}

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(300);
const TICK: Duration = Duration::from_millis(100);

/// `interval` ± 10%, so that a fleet does not re-check in lockstep.
fn jittered(interval: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = openssl::rand::rand_bytes(&mut b);
    let r = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX); // 0..1
    interval.mul_f64(0.9 + 0.2 * r)
}

fn stop_flag() -> Result<Arc<AtomicBool>, WatchError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(WatchError::Signals)?;
    }
    Ok(stop)
}

/// The files a change of which means "plan again": certs.toml and every file it references.
fn targets(config: &Path, referenced: Option<&[PathBuf]>) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    out.insert(absolute(config));
    for f in referenced.unwrap_or_default() {
        out.insert(absolute(f));
    }
    out
}

/// An absolute path with a canonical folder (the file itself may be mid-rename).
fn absolute(path: &Path) -> PathBuf {
    let parent = crate::fsutil::folder_of(path);
    let dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    dir.join(path.file_name().unwrap_or_default())
}

/// Runs until SIGINT/SIGTERM. `store` is `--store`, which `--git` needs.
pub(crate) fn run(
    config: &Path,
    store: Option<&Path>,
    opts: &WatchOptions,
    reconciler: &dyn Reconciler,
) -> Result<(), WatchError> {
    let stop = stop_flag()?;
    match &opts.git {
        Some(g) => run_git(config, store, opts, g, reconciler, &stop),
        None => run_local(config, opts, reconciler, &stop),
    }
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// The file watch of a local certs.toml: the folders watched and the files that matter.
struct Watched {
    config: PathBuf,
    debouncer: Debouncer,
    folders: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
}

impl Watched {
    /// Follows certs.toml and the files it references from now on. Returns whether a folder
    /// was added: a file in it may have changed before the watch existed, so the caller plans
    /// once more.
    fn follow(&mut self, referenced: Option<&[PathBuf]>) -> bool {
        self.files = targets(&self.config, referenced);
        let mut added = false;
        for t in &self.files {
            let Some(dir) = t.parent() else { continue };
            if self.folders.insert(dir.to_path_buf()) {
                // The folder, not the file: after an editor's rename-save a watch on the file
                // goes silent.
                if let Err(e) = self.debouncer.watch(dir, RecursiveMode::NonRecursive) {
                    warn!("cannot watch {}: {e}", dir.display());
                    self.folders.remove(dir);
                } else {
                    added = true;
                }
            }
        }
        added
    }

    /// Whether what the watch reported (or did not, within a tick) changed a file that matters.
    fn changed(
        &self,
        received: Result<DebounceEventResult, mpsc::RecvTimeoutError>,
    ) -> Result<bool, WatchError> {
        match received {
            // Reading certs.toml raises access events; only writes, creates, renames and
            // removals mean it changed.
            Ok(Ok(events)) => Ok(events.iter().any(|ev| {
                !matches!(ev.kind, notify::EventKind::Access(_))
                    && ev.paths.iter().any(|p| self.files.contains(p))
            })),
            Ok(Err(errors)) => {
                for e in errors {
                    warn!("file watch error: {e}");
                }
                Ok(false)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(WatchError::WatcherStopped),
        }
    }
}

/// When a failed attempt is retried: after a backoff that doubles up to a cap.
struct Retry {
    backoff: Duration,
    at: Option<Instant>,
}

impl Retry {
    /// After the first attempt: a failure is retried after the first backoff.
    fn first(result: &Attempt) -> Retry {
        Retry {
            backoff: BACKOFF_START,
            at: matches!(result, Attempt::Failed).then(|| Instant::now() + BACKOFF_START),
        }
    }

    /// Nothing failed yet.
    fn idle() -> Retry {
        Retry {
            backoff: BACKOFF_START,
            at: None,
        }
    }

    fn after(&mut self, result: &Attempt) {
        match result {
            Attempt::Failed => {
                let wait = self.failed();
                info!("retrying in {:?}", wait);
            }
            Attempt::Done | Attempt::Invalid => self.succeeded(),
        }
    }

    /// A failure: the wait before the retry, the next one doubled up to the cap.
    fn failed(&mut self) -> Duration {
        let wait = self.backoff;
        self.at = Some(Instant::now() + wait);
        self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
        wait
    }

    /// A success: the next failure starts from the first backoff again.
    fn succeeded(&mut self) {
        self.at = None;
        self.backoff = BACKOFF_START;
    }

    fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|t| now >= t)
    }
}

fn run_local(
    config: &Path,
    opts: &WatchOptions,
    reconciler: &dyn Reconciler,
    stop: &AtomicBool,
) -> Result<(), WatchError> {
    let (tx, rx) = mpsc::channel();
    let mut watched = Watched {
        config: config.to_path_buf(),
        debouncer: new_debouncer(Duration::from_millis(100), None, tx)
            .map_err(WatchError::Notify)?,
        folders: BTreeSet::new(),
        files: BTreeSet::new(),
    };
    info!(
        "watching {} (re-check every {:?}{})",
        config.display(),
        opts.interval,
        if opts.plan_only { ", plan only" } else { "" }
    );
    // Watch first, then converge: a save made during the first apply is not missed.
    let _ = watched.follow(None);
    let (first, referenced) = reconciler.attempt(&Source::Local, "start");
    let mut pending = watched.follow(referenced.as_deref());
    let mut next_check = Instant::now() + jittered(opts.interval);
    let mut retry = Retry::first(&first);

    while !stop.load(Ordering::SeqCst) {
        let changed = watched.changed(rx.recv_timeout(TICK))?;
        let now = Instant::now();
        let why = if changed {
            "change"
        } else if pending {
            "newly watched file"
        } else if retry.due(now) {
            "retry"
        } else if reconciler.access_ends() {
            "access ends"
        } else if now >= next_check {
            "periodic re-check"
        } else {
            continue;
        };
        let (result, referenced) = reconciler.attempt(&Source::Local, why);
        pending = referenced.is_some() && watched.follow(referenced.as_deref());
        next_check = Instant::now() + jittered(opts.interval);
        retry.after(&result);
    }
    info!("stopping: signal received");
    Ok(())
}

fn run_git(
    config: &Path,
    store: Option<&Path>,
    opts: &WatchOptions,
    g: &GitFollow,
    reconciler: &dyn Reconciler,
    stop: &AtomicBool,
) -> Result<(), WatchError> {
    if config.is_absolute()
        || config
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(WatchError::ConfigOutsideRepository(config.to_path_buf()));
    }
    let store = store.ok_or(WatchError::NoStore)?;
    let cache = cache_dir(store);
    let follower = Follower::open(&g.url, &g.branch, &cache)?;
    info!(
        "following {} branch {} (poll every {:?}, re-check every {:?}), cache {}",
        g.url,
        g.branch,
        g.poll,
        opts.interval,
        cache.display()
    );

    let mut last_attempted: Option<String> = None;
    let mut last_attempt = Instant::now();
    let mut next_poll = Instant::now();
    let mut retry = Retry::idle();
    while !stop.load(Ordering::SeqCst) {
        if let Some(commit) = last_attempted
            .as_deref()
            .filter(|_| reconciler.access_ends())
        {
            // Access ends: the commit applied last is planned again now, without a fetch.
            let _ = reconciler.attempt(&commit_source(&follower, config, g, commit), "access ends");
            last_attempt = Instant::now();
            continue;
        }
        if Instant::now() < next_poll {
            std::thread::sleep(TICK);
            continue;
        }
        next_poll = Instant::now() + g.poll;
        let commit = match follower.fetch() {
            Ok(c) => {
                retry.succeeded();
                reconciler.source_fetched(None);
                c
            }
            Err(e) => {
                let wait = retry.failed();
                warn!("fetch failed, retrying in {:?}: {e}", wait);
                reconciler.source_fetched(Some(format!("git fetch failed: {e}")));
                // Never later than the next poll would be.
                next_poll = Instant::now() + wait.min(g.poll.max(BACKOFF_START));
                continue;
            }
        };
        let new_commit = last_attempted.as_deref() != Some(commit.as_str());
        if !new_commit && last_attempt.elapsed() < opts.interval {
            continue;
        }
        let why = if new_commit {
            format!("commit {}", commit.get(..12).unwrap_or(&commit))
        } else {
            "periodic re-check".to_string()
        };
        // Each commit is applied once: a failure waits for a new commit or the interval.
        // certs.toml and the certificate files it names are read from the commit's git
        // objects, never from a checkout another process could change under us.
        let _ = reconciler.attempt(&commit_source(&follower, config, g, &commit), &why);
        last_attempted = Some(commit);
        last_attempt = Instant::now();
    }
    info!("stopping: signal received");
    Ok(())
}

/// Where an attempt on `commit` of the followed branch reads certs.toml from.
fn commit_source<'c>(
    follower: &Follower,
    config: &Path,
    g: &GitFollow,
    commit: &'c str,
) -> Source<'c> {
    Source::Commit {
        config: follower.worktree.join(config),
        commit,
        revision: format!("{}@sha1:{commit}", g.branch),
    }
}

/// The clone lives beside the store, `.<store name>.git-cache` (never inside it).
fn cache_dir(store: &Path) -> PathBuf {
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "store".into());
    store.with_file_name(format!(".{name}.git-cache"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records each attempt's cause and time; access ends 300 ms after the start, and the
    /// second attempt stops the loop.
    struct Ending {
        attempts: Mutex<Vec<(String, Instant)>>,
        ends: OffsetDateTime,
        stop: Arc<AtomicBool>,
    }

    impl Reconciler for Ending {
        fn attempt(&self, _: &Source<'_>, why: &str) -> (Attempt, Option<Vec<PathBuf>>) {
            let mut a = self.attempts.lock().unwrap();
            a.push((why.to_string(), Instant::now()));
            if a.len() == 2 {
                self.stop.store(true, Ordering::SeqCst);
            }
            (Attempt::Done, Some(Vec::new()))
        }

        fn wake_at(&self) -> Option<OffsetDateTime> {
            (self.attempts.lock().unwrap().len() < 2).then_some(self.ends)
        }
    }

    #[test]
    fn loop_attempts_at_the_access_end_not_an_interval_later() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("certs.toml");
        std::fs::write(&config, "").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let r = Ending {
            attempts: Mutex::new(Vec::new()),
            ends: OffsetDateTime::now_utc() + Duration::from_millis(300),
            stop: Arc::clone(&stop),
        };
        let opts = WatchOptions {
            interval: Duration::from_secs(3600),
            plan_only: false,
            git: None,
            lock_timeout: Duration::from_secs(1),
        };
        let started = Instant::now();
        run_local(&config, &opts, &r, &stop).unwrap();
        let a = r.attempts.into_inner().unwrap();
        let whys: Vec<&str> = a.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(whys, vec!["start", "access ends"]);
        // After the end, and not an hour later (a bound that tells a wake-up from none, not a
        // benchmark).
        assert!(
            a[1].1 - started < Duration::from_secs(30),
            "{:?}",
            a[1].1 - started
        );
        assert!(a[1].1 - started >= Duration::from_millis(250));
    }
}
