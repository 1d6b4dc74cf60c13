//! Issuing generated clients, streamed: key, certificate and PKCS#12 bundle are made on a pool of
//! threads, and each batch is written to the store (by the calling thread, the store's only
//! writer) as soon as it is made, so that file creation overlaps the crypto and only a bounded
//! number of bundles is ever held in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use time::OffsetDateTime;

use super::{password_error, ApplyError, Signer};
use crate::config::{ClientDesired, GenerateSpec, Secret};
use crate::model::{CertInfo, EntryThumbprint, Thumbprint, BACKDATING};
use crate::pki::{self, Issued};
use crate::store::{NewClient, Store};

/// How many clients one manifest record (one append and flush) covers; as many again wait made
/// in the channel while a batch is recorded.
const BATCH: usize = 128;

/// How many recorded batches may wait for the writer: the writer keeps writing while the next
/// record's flush waits for the disk.
const RECORDED_AHEAD: usize = 4;

/// Every this many batches written, the disk is flushed in the background (see [`write_all`]).
const FLUSH_EVERY: usize = 16;

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

/// How many certificates are made at once: every core this process may use
/// (`taskset`/cgroup limits included), or RAVENCERT_JOBS.
fn jobs() -> usize {
    std::env::var("RAVENCERT_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Issues every client of `work` and writes its files: key generation, signing and PKCS#12
/// encryption on a pool of [`jobs`] threads (RSA-4096 costs about a second per key per core),
/// the writes on this thread as the results come, a batch at a time (see
/// [`Store::begin_new_clients`]). On an error nothing more is made or written; what was
/// written is staged and unregistered, and the next apply sweeps it.
pub(super) fn issue_all(
    store: &Store,
    work: &[Work<'_>],
    signer: &Signer,
    now: OffsetDateTime,
    password_key: &[u8],
) -> Result<BTreeMap<String, Made>, ApplyError> {
    let mut made = BTreeMap::new();
    if work.is_empty() {
        return Ok(made);
    }
    let issuer = Issuer {
        signer: pki::ClientSigner::new(&signer.0, &signer.1)?,
        now,
        password_key,
    };
    let progress = crate::progress::bar(work.len() as u64, "issuing certificates");
    let stop = AtomicBool::new(false);
    // The next client to make: each thread takes one at a time, so that all of them stay
    // busy until the last client (rayon's halving left one thread idle for the last 150 ms).
    let next = AtomicUsize::new(0);
    let (tx, rx) = sync_channel::<(usize, Result<Prepared, ApplyError>)>(BATCH);
    let (recorded_tx, recorded) = sync_channel::<Result<Batch, ApplyError>>(RECORDED_AHEAD);
    let flush = store.early_flusher();
    let written = std::thread::scope(|s| {
        let (issuer, stop, next) = (&issuer, &stop, &next);
        for _ in 0..jobs().min(work.len()).max(1) {
            let tx = tx.clone();
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(w) = work.get(i) else { return };
                    if tx.send((i, issuer.prepare(w))).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        drop(tx);
        s.spawn(move || record_all(store, work, rx, recorded_tx, stop));
        let written = write_all(store, work, recorded, &mut made, &progress, flush);
        // The receivers are gone: the recorder and the threads stop at their next client.
        stop.store(true, Ordering::Relaxed);
        written
    });
    progress.finish_and_clear();
    written.map(|()| made)
}

/// A batch of made clients, recorded in the manifest: (index in the work, what was made).
type Batch = Vec<(usize, Prepared)>;

/// Takes what the pool makes, [`BATCH`] clients at a time, and records each batch's paths in the
/// manifest (one append and flush) before it passes it on to the writer: the flush, which waits
/// for the disk, holds up neither the pool nor the writer. At the first error it stops the pool
/// and passes the error on, recording nothing more (what the pool made since is dropped, as
/// the writer did before this thread); it stops too when the writer is gone.
fn record_all(
    store: &Store,
    work: &[Work<'_>],
    made: Receiver<(usize, Result<Prepared, ApplyError>)>,
    recorded: SyncSender<Result<Batch, ApplyError>>,
    stop: &AtomicBool,
) {
    let fail = |e: ApplyError| {
        stop.store(true, Ordering::Relaxed);
        let _ = recorded.send(Err(e));
    };
    let mut all_made = false;
    while !all_made {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            match made.recv() {
                Ok((i, Ok(p))) => batch.push((i, p)),
                Ok((_, Err(e))) => return fail(e),
                Err(_) => {
                    all_made = true;
                    break;
                }
            }
        }
        if batch.is_empty() || stop.load(Ordering::Relaxed) {
            continue;
        }
        let keys = batch
            .iter()
            .map(|(i, p)| (work[*i].client.key.as_str(), &p.thumbprint));
        if let Err(e) = store.begin_new_clients(keys) {
            return fail(e.into());
        }
        if recorded.send(Ok(batch)).is_err() {
            // The writer stopped (its error is the apply's): so does the pool.
            stop.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Writes each recorded batch as it comes, until all is written or an error. Every
/// [`FLUSH_EVERY`] batches it asks for a flush of the disk in the background, so that the
/// commit's flush, which the registry waits for, finds little left to write (at 10,000 clients
/// it waited 300 ms for the 50,000 files, with both cores idle).
fn write_all(
    store: &Store,
    work: &[Work<'_>],
    recorded: Receiver<Result<Batch, ApplyError>>,
    made: &mut BTreeMap<String, Made>,
    progress: &indicatif::ProgressBar,
    flush: SyncSender<()>,
) -> Result<(), ApplyError> {
    for (n, batch) in recorded.iter().enumerate() {
        if (n + 1).is_multiple_of(FLUSH_EVERY) {
            // Refused when a flush runs and another waits, which covers this batch too.
            let _ = flush.try_send(());
        }
        for (i, p) in batch? {
            let key = work[i].client.key.as_str();
            store.write_new_client(&NewClient {
                key,
                thumbprint: &p.thumbprint,
                cert_pem: &p.cert_pem,
                key_pem: &p.key_pem,
                bundle: &p.bundle,
            })?;
            made.insert(
                key.to_string(),
                Made {
                    thumbprint: EntryThumbprint::from(p.thumbprint),
                    info: p.info,
                    bundle_password: p.bundle_password,
                },
            );
            progress.inc(1);
        }
    }
    Ok(())
}
