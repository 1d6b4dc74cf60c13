//! Issuing generated clients, streamed: key, certificate and PKCS#12 bundle are made on a pool of
//! threads, and each batch is written to the store (by the calling thread, the store's only
//! writer) as soon as it is made, so that file creation overlaps the crypto and only a bounded
//! number of bundles is ever held in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use time::OffsetDateTime;

use super::{password_error, ApplyError, Signer};
use crate::config::{ClientDesired, GenerateSpec, Secret};
use crate::model::{CertInfo, EntryThumbprint, Thumbprint, BACKDATING};
use crate::pki::{self, Issued};
use crate::store::{NewClient, Store};

/// At most this many clients made by one thread are recorded in the manifest (one append and
/// flush) and written together; fewer when making them took [`BATCH_TIME`] (an RSA-4096 key
/// takes about a second), so that written files and the progress bar keep up.
const BATCH: usize = 128;

/// A thread records and writes what it made once making it took this long.
const BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(100);

/// Every this many clients written, the disk is flushed in the background (see [`issue_all`]).
const FLUSH_EVERY: usize = 2048;

/// [`FLUSH_EVERY`]; in `test-hooks` builds (the tests'), RAVENCERT_TEST_FLUSH_EVERY when set, so
/// that a test of a few clients sees early flushes.
fn flush_every() -> usize {
    #[cfg(feature = "test-hooks")]
    if let Some(n) = crate::env_number("RAVENCERT_TEST_FLUSH_EVERY").filter(|n| *n > 0) {
        return n;
    }
    FLUSH_EVERY
}

/// A generated client to issue, its password read (before anything is written: a bad password
/// changes nothing in the store).
pub(super) struct Work<'a> {
    pub(super) client: &'a ClientDesired,
    pub(super) spec: &'a GenerateSpec,
    pub(super) password: Option<Secret>,
}

impl<'a> Work<'a> {
    /// The client with its declared password read.
    pub(super) fn read(
        client: &'a ClientDesired,
        spec: &'a GenerateSpec,
    ) -> Result<Work<'a>, ApplyError> {
        let password = spec
            .password
            .as_ref()
            .map(|r| r.read().map_err(|e| password_error(client, e)))
            .transpose()?;
        Ok(Work {
            client,
            spec,
            password,
        })
    }
}

/// What the registry needs of an issued client, once its files are written.
pub(super) struct Made {
    pub(super) thumbprint: EntryThumbprint,
    pub(super) info: CertInfo,
    pub(super) bundle_password: String,
}

/// A generated client's key, certificate and bundle, encoded for writing.
struct Prepared {
    thumbprint: Thumbprint,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    bundle: pki::Bundle,
    info: CertInfo,
    bundle_password: String,
}

/// What the issuing threads share.
struct Issuer<'a> {
    signer: pki::ClientSigner,
    now: OffsetDateTime,
    password_key: &'a [u8],
}

impl Issuer<'_> {
    /// The crypto of one generated client: key, certificate signed by the server, bundle.
    fn prepare(&self, w: &Work<'_>) -> Result<Prepared, ApplyError> {
        let (client, spec) = (w.client, w.spec);
        let password = w.password.as_ref().map(|p| p.expose());
        let issued: Issued = self.signer.issue(
            &client.name,
            spec.key,
            self.now - BACKDATING.as_duration(),
            crate::plan::until::issue_end(self.now, spec.validity, client.until),
        )?;
        let bundle = self
            .signer
            .bundle(&issued, &client.name, password, spec.pfx)?;
        let info = match &issued.info {
            Some(i) => i.clone(),
            None => pki::inspect(&issued.cert_der)?,
        };
        // The kept key is the bundle's `.key` when that is not encrypted: encoded once.
        let key_pem = match password {
            None => bundle.key_pem.clone(),
            Some(_) => issued.key.to_pem()?,
        };
        Ok(Prepared {
            bundle_password: pki::password_fingerprint(self.password_key, &client.key, password)?,
            thumbprint: info.thumbprint.clone(),
            cert_pem: bundle.cert_pem.clone(),
            key_pem,
            bundle,
            info,
        })
    }
}

/// How many threads make certificates at once: RAVENCERT_JOBS, or one more than the cores this
/// process may use (`taskset`/cgroup limits included), so that the cores stay busy while a
/// thread waits for the disk.
fn threads() -> usize {
    crate::env_number("RAVENCERT_JOBS")
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) + 1)
}

/// Issues every client of `work` and writes its files on [`threads`] threads. Each thread
/// takes one client at a time (so that all of them stay busy until the last one: RSA-4096 costs
/// about a second per key per core), makes its key, certificate and PKCS#12 bundle, and every
/// [`BATCH`] clients (or [`BATCH_TIME`]) records their paths in the manifest and writes their
/// files itself: the writes, about a fifth of the CPU at 10,000 EC clients, run on every core.
/// Only a bounded number of bundles is ever held in memory. Every [`FLUSH_EVERY`] clients
/// written, the disk is flushed in the background, so that the commit's flush, which the
/// registry waits for, finds little left to write (at 10,000 clients it waited 300 ms for the
/// 50,000 files, with both cores idle). On an error nothing more is made or written; what was
/// written is unregistered, and the next apply sweeps it.
pub(super) fn issue_all(
    store: &Store,
    work: &[Work<'_>],
    signer: &Signer,
    now: OffsetDateTime,
    password_key: &[u8],
) -> Result<BTreeMap<String, Made>, ApplyError> {
    if work.is_empty() {
        return Ok(BTreeMap::new());
    }
    let progress = crate::progress::bar(work.len() as u64, "issuing certificates");
    let pool = Pool {
        store,
        work,
        issuer: Issuer {
            signer: pki::ClientSigner::new(&signer.0, &signer.1)?,
            now,
            password_key,
        },
        next: AtomicUsize::new(0),
        written: AtomicUsize::new(0),
        failed: Mutex::new(None),
        stop: AtomicBool::new(false),
        progress: &progress,
        flush: store.early_flusher(),
        flush_every: flush_every(),
    };
    let threads = threads().min(work.len());
    let made = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            // A thread the system refuses is done without: the others take its share, or this
            // thread does the work when none started.
            match crate::threads::spawn_scoped(s, || pool.run()) {
                Some(h) => handles.push(h),
                None => break,
            }
        }
        let mut shares = Vec::with_capacity(handles.len().max(1));
        if handles.is_empty() {
            shares.push(pool.run());
        }
        for h in handles {
            shares.push(
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        shares
            .into_iter()
            .flatten()
            .map(|(i, m)| (work[i].client.key.clone(), m))
            .collect::<BTreeMap<_, _>>()
    });
    progress.finish_and_clear();
    match pool
        .failed
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        None => Ok(made),
        Some(e) => Err(e),
    }
}

/// What the issuing threads share.
struct Pool<'p, 'w> {
    store: &'p Store,
    work: &'p [Work<'w>],
    issuer: Issuer<'p>,
    /// The next client to make.
    next: AtomicUsize,
    /// How many clients are written.
    written: AtomicUsize,
    /// The first error; once set, nothing more is made or written.
    failed: Mutex<Option<ApplyError>>,
    stop: AtomicBool,
    progress: &'p indicatif::ProgressBar,
    flush: SyncSender<()>,
    /// Every this many clients written, `flush` is sent a request.
    flush_every: usize,
}

impl Pool<'_, '_> {
    /// One thread's share: (index in the work, what the registry needs) of each client it wrote;
    /// nothing once a thread failed.
    fn run(&self) -> Vec<(usize, Made)> {
        // A panic (a bug) stops the other threads too before it surfaces: they would make
        // and write every client left for nothing.
        let _stop = StopOnPanic(&self.stop);
        let mut done = Vec::new();
        let mut batch: Vec<(usize, Prepared)> = Vec::with_capacity(BATCH);
        let mut started = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(w) = self.work.get(i) else { break };
            #[cfg(feature = "test-hooks")]
            panic_on_request(i);
            if batch.is_empty() {
                started = Instant::now();
            }
            let made = self.issuer.prepare(w).map(|p| batch.push((i, p)));
            let due = batch.len() >= BATCH || started.elapsed() >= BATCH_TIME;
            let written = match made {
                Ok(()) if due => self.write(std::mem::take(&mut batch), &mut done),
                other => other,
            };
            if let Err(e) = written {
                self.fail(e);
                return Vec::new();
            }
        }
        if !batch.is_empty() && !self.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.write(batch, &mut done) {
                self.fail(e);
                return Vec::new();
            }
        }
        done
    }

    /// Records a batch's paths in the manifest, then writes its files.
    fn write(
        &self,
        batch: Vec<(usize, Prepared)>,
        done: &mut Vec<(usize, Made)>,
    ) -> Result<(), ApplyError> {
        let keys = batch
            .iter()
            .map(|(i, p)| (self.work[*i].client.key.as_str(), &p.thumbprint));
        self.store.begin_new_clients(keys)?;
        for (i, p) in batch {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.store.write_new_client(&NewClient {
                key: &self.work[i].client.key,
                thumbprint: &p.thumbprint,
                cert_pem: &p.cert_pem,
                key_pem: &p.key_pem,
                bundle: &p.bundle,
            })?;
            done.push((
                i,
                Made {
                    thumbprint: EntryThumbprint::from(p.thumbprint),
                    info: p.info,
                    bundle_password: p.bundle_password,
                },
            ));
            self.progress.inc(1);
            let n = self.written.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(self.flush_every) {
                // Refused when a flush runs and another waits, which covers these files too.
                let _ = self.flush.try_send(());
            }
        }
        Ok(())
    }

    /// The first error stops every thread; later ones (often its consequence) are dropped.
    fn fail(&self, e: ApplyError) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        failed.get_or_insert(e);
    }
}

/// Sets `stop` when the thread holding it unwinds from a panic.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// `test-hooks` builds (the tests'): with RAVENCERT_TEST_PANIC_ISSUING=N, the thread that takes
/// the Nth client (from 0) panics, as a bug would.
#[cfg(feature = "test-hooks")]
fn panic_on_request(i: usize) {
    if crate::env_number("RAVENCERT_TEST_PANIC_ISSUING") == Some(i) {
        panic!("test panic while issuing client {i}");
    }
}
