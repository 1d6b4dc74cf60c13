//! `ravencert watch`: keeps the store converged. Follows certs.toml (a file watch on its folder,
//! since editors save by rename) or a git branch, re-checks every interval so that certificates
//! are renewed when nobody edits anything, backs off on failure, and stops cleanly on
//! SIGINT/SIGTERM once the running apply has finished.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;
use tracing::{error, info, warn};

use crate::config::Desired;
use crate::git::Follower;
use crate::ops::{self, Context, Failure, Revision};
use crate::plan::{Action, Plan, PlanOptions};

/// Follow a git branch instead of a local file.
#[derive(Debug, Clone)]
pub struct GitFollow {
    pub url: String,
    pub branch: String,
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub interval: Duration,
    pub plan_only: bool,
    pub git: Option<GitFollow>,
    pub lock_timeout: Duration,
}

/// How a context is made for each run (a fresh clock every time).
pub type MakeContext<'a> = &'a dyn Fn(PathBuf) -> Context;

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

fn stop_flag() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Failure(format!("cannot handle signals: {e}")))?;
    }
    Ok(stop)
}

/// The outcome of one converge attempt.
enum Attempt {
    Done,
    /// The config is invalid: wait for the next change, nothing to retry.
    Invalid,
    /// The apply failed (lock busy, I/O): retry with backoff.
    Failed,
}

fn summary(plan: &Plan) -> String {
    format!(
        "{} created, {} updated, {} replaced, {} deleted, {} exported",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Replace),
        plan.count(Action::Delete),
        plan.count(Action::Export)
    )
}

fn log_changes(plan: &Plan) {
    for d in &plan.drift {
        warn!("changed outside ravencert: {d}");
    }
    for c in &plan.changes {
        info!(
            "  {} {} {}{}: {}",
            c.action.symbol(),
            c.target.as_str(),
            c.key,
            if c.escalation { " [ESCALATION]" } else { "" },
            c.reason
        );
    }
    for w in &plan.warnings {
        warn!("{w}");
    }
}

/// Loads certs.toml (from the disk, or from a commit's git objects), plans and (unless
/// plan-only) applies. Logs one line per event.
fn attempt(
    ctx: &Context,
    opts: &WatchOptions,
    source: &Revision,
    revision: Option<String>,
    why: &str,
) -> (Attempt, Option<Desired>) {
    let desired = match ctx.load(source, true) {
        Ok(d) => d,
        Err(e) => {
            warn!(
                "{why}: certs.toml is invalid, nothing applied, the last good state stays: {}",
                e.0.replace('\n', " | ")
            );
            return (Attempt::Invalid, None);
        }
    };
    // Following a local file: its git provenance, if it has one.
    let revision = revision.or_else(|| ops::revision_of(&ctx.config, &desired));
    if opts.plan_only {
        match ops::plan_for(ctx, &desired, &PlanOptions::default()) {
            Ok(plan) if plan.is_empty() && plan.drift.is_empty() => {
                info!("{why}: no changes, the store matches certs.toml")
            }
            Ok(plan) => {
                info!("{why}: plan only, would apply: {}", summary(&plan));
                log_changes(&plan);
            }
            Err(e) => {
                error!("{why}: plan failed: {}", e.0.replace('\n', " | "));
                return (Attempt::Failed, Some(desired));
            }
        }
        return (Attempt::Done, Some(desired));
    }
    match ops::converge(
        ctx,
        &desired,
        &PlanOptions::default(),
        opts.lock_timeout,
        revision.clone(),
        &|_, _| Ok(()),
    ) {
        Ok((plan, _)) if plan.is_empty() => {
            info!("{why}: no changes, the store matches certs.toml");
            (Attempt::Done, Some(desired))
        }
        Ok((plan, outcome)) => {
            info!(
                "{why}: applied {}{}",
                summary(&plan),
                revision
                    .map(|r| format!(" (revision {r})"))
                    .unwrap_or_default()
            );
            log_changes(&plan);
            for (key, thumb, _) in &outcome.issued {
                info!("  registered {key}: {thumb}");
            }
            (Attempt::Done, Some(desired))
        }
        Err(e) => {
            error!(
                "{why}: apply failed, the store is unchanged: {}",
                e.0.replace('\n', " | ")
            );
            (Attempt::Failed, Some(desired))
        }
    }
}

/// The files a change of which means "plan again": certs.toml and every file it references.
fn targets(config: &Path, desired: Option<&Desired>) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    out.insert(absolute(config));
    if let Some(d) = desired {
        for f in d.referenced_files() {
            out.insert(absolute(&f));
        }
    }
    out
}

/// An absolute path with a canonical folder (the file itself may be mid-rename).
fn absolute(path: &Path) -> PathBuf {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    dir.join(path.file_name().unwrap_or_default())
}

/// Runs until SIGINT/SIGTERM.
pub fn run(config: &Path, make: MakeContext<'_>, opts: &WatchOptions) -> Result<(), Failure> {
    let stop = stop_flag()?;
    match &opts.git {
        Some(g) => run_git(config, make, opts, g, &stop),
        None => run_local(config, make, opts, &stop),
    }
}

fn run_local(
    config: &Path,
    make: MakeContext<'_>,
    opts: &WatchOptions,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    let (tx, rx) = mpsc::channel();
    let mut debouncer = new_debouncer(Duration::from_millis(100), None, tx)
        .map_err(|e| Failure(format!("cannot watch files: {e}")))?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut watch_dirs = |targets: &BTreeSet<PathBuf>,
                          debouncer: &mut notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >| {
        // Returns whether a folder was added: a file in it may have changed before the watch
        // existed, so the caller plans once more.
        let mut added = false;
        for t in targets {
            let Some(dir) = t.parent() else { continue };
            if watched.insert(dir.to_path_buf()) {
                // The folder, not the file: after an editor's rename-save a watch on the file
                // goes silent.
                if let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
                    warn!("cannot watch {}: {e}", dir.display());
                    watched.remove(dir);
                } else {
                    added = true;
                }
            }
        }
        added
    };

    info!(
        "watching {} (re-check every {:?}{})",
        config.display(),
        opts.interval,
        if opts.plan_only { ", plan only" } else { "" }
    );
    // Watch first, then converge: a save made during the first apply is not missed.
    let _ = watch_dirs(&targets(config, None), &mut debouncer);
    let (mut last, desired) = attempt(
        &make(config.to_path_buf()),
        opts,
        &Revision::WorkTree,
        None,
        "start",
    );
    let mut files = targets(config, desired.as_ref());
    let mut pending = watch_dirs(&files, &mut debouncer);
    let mut next_check = Instant::now() + jittered(opts.interval);
    let mut backoff = BACKOFF_START;
    let mut retry_at: Option<Instant> =
        matches!(last, Attempt::Failed).then(|| Instant::now() + backoff);

    while !stop.load(Ordering::SeqCst) {
        let mut changed = false;
        match rx.recv_timeout(TICK) {
            Ok(Ok(events)) => {
                // Reading certs.toml raises access events; only writes, creates, renames and
                // removals mean it changed.
                changed = events.iter().any(|ev| {
                    !matches!(ev.kind, notify::EventKind::Access(_))
                        && ev.paths.iter().any(|p| files.contains(p))
                });
            }
            Ok(Err(errors)) => {
                for e in errors {
                    warn!("file watch error: {e}");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Failure("the file watcher stopped".into()));
            }
        }
        let now = Instant::now();
        let why = if changed {
            "change"
        } else if pending {
            "newly watched file"
        } else if retry_at.is_some_and(|t| now >= t) {
            "retry"
        } else if now >= next_check {
            "periodic re-check"
        } else {
            continue;
        };
        let (result, desired) = attempt(
            &make(config.to_path_buf()),
            opts,
            &Revision::WorkTree,
            None,
            why,
        );
        pending = false;
        if desired.is_some() {
            files = targets(config, desired.as_ref());
            pending = watch_dirs(&files, &mut debouncer);
        }
        next_check = Instant::now() + jittered(opts.interval);
        match result {
            Attempt::Failed => {
                retry_at = Some(Instant::now() + backoff);
                info!("retrying in {:?}", backoff);
                backoff = (backoff * 2).min(BACKOFF_CAP);
            }
            Attempt::Done | Attempt::Invalid => {
                retry_at = None;
                backoff = BACKOFF_START;
            }
        }
        last = result;
    }
    let _ = last;
    info!("stopping: signal received");
    Ok(())
}

fn run_git(
    config: &Path,
    make: MakeContext<'_>,
    opts: &WatchOptions,
    g: &GitFollow,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    if config.is_absolute()
        || config
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Failure(format!(
            "with --git, -c names certs.toml inside the repository (e.g. clusters/prod/certs.toml), not {}",
            config.display()
        )));
    }
    let store = make(config.to_path_buf()).store_override.clone().ok_or_else(|| {
        Failure("watch --git needs --store DIR: each machine keeps its own store while following one repository".into())
    })?;
    let cache = cache_dir(&store);
    let follower = Follower::open(&g.url, &g.branch, &cache).map_err(|e| Failure(e.to_string()))?;
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
    let mut backoff = BACKOFF_START;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() < next_poll {
            std::thread::sleep(TICK);
            continue;
        }
        next_poll = Instant::now() + g.poll;
        let commit = match follower.fetch() {
            Ok(c) => {
                backoff = BACKOFF_START;
                c
            }
            Err(e) => {
                warn!("fetch failed, retrying in {:?}: {e}", backoff);
                next_poll = Instant::now() + backoff.min(g.poll.max(BACKOFF_START));
                backoff = (backoff * 2).min(BACKOFF_CAP);
                continue;
            }
        };
        let new_commit = last_attempted.as_deref() != Some(commit.as_str());
        if !new_commit && last_attempt.elapsed() < opts.interval {
            continue;
        }
        let why = if new_commit {
            format!("commit {}", &commit[..12.min(commit.len())])
        } else {
            "periodic re-check".to_string()
        };
        let revision = format!("{}@sha1:{commit}", g.branch);
        // Each commit is applied once: a failure waits for a new commit or the interval.
        // certs.toml and the certificate files it names are read from the commit's git
        // objects, never from a checkout another process could change under us.
        let _ = attempt(
            &make(follower.worktree.join(config)),
            opts,
            &Revision::Rev(commit.clone()),
            Some(revision),
            &why,
        );
        last_attempted = Some(commit);
        last_attempt = Instant::now();
    }
    info!("stopping: signal received");
    Ok(())
}

/// The clone lives beside the store, `.<store name>.git-cache` (never inside it).
fn cache_dir(store: &Path) -> PathBuf {
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "store".into());
    store.with_file_name(format!(".{name}.git-cache"))
}
