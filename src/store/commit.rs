//! An apply's writes: the store folder, the manifest of what ravencert made, certificate files,
//! the registry (the commit point), then finishing and sweeping what it no longer names.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};

use super::fault;
use super::files::{
    ensure_dir, read_file, remove_path, sync_filesystem, sync_filesystem_of, write_atomic,
    write_staged,
};
use super::{corrupt, io_err, Problem, Result, Store, StoreError, MANIFEST_FILE, MARKER_FILE};
use crate::model::{EntryThumbprint, Thumbprint};
use crate::pki;
use crate::registry::{Registry, RegistryText};

/// A flush of the disk running on a thread of its own ([`Store::begin_flush`]), or done already
/// (the system refused the thread).
pub(crate) enum Flush {
    Running(std::thread::JoinHandle<Result<()>>),
    Done(Result<()>),
}

impl Flush {
    /// Waits for the flush: its outcome.
    pub(crate) fn wait(self) -> Result<()> {
        match self {
            Flush::Running(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Flush::Done(outcome) => outcome,
        }
    }
}

/// The manifest as this process knows it.
#[derive(Default)]
pub(super) struct Manifest {
    /// Every path it names.
    pub(super) paths: BTreeSet<String>,
    /// The file exists and ends with a whole line: new paths are appended to it.
    appendable: bool,
}

impl Manifest {
    /// The file's bytes. A last line without its newline is an append a crash cut short: the
    /// files it names were not written yet (they are written after the append is flushed), so
    /// it is dropped, and the next record writes the whole file afresh.
    fn parse(mut bytes: Vec<u8>) -> std::result::Result<Manifest, std::string::FromUtf8Error> {
        let appendable = bytes.last().is_none_or(|b| *b == b'\n');
        if !appendable {
            // Cut at the byte level: the torn line may end inside a character.
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            bytes.truncate(whole);
        }
        Ok(Manifest {
            paths: String::from_utf8(bytes)?
                .lines()
                .map(str::to_string)
                .collect(),
            appendable,
        })
    }

    fn text(&self) -> String {
        self.paths.iter().map(|r| format!("{r}\n")).collect()
    }
}

impl Store {
    /// Creates the store folder (0700) with its .gitignore.
    pub fn ensure_root(&self) -> Result<()> {
        self.check_not_foreign()?;
        ensure_dir(&self.root)?;
        let marker = self.root.join(MARKER_FILE);
        if fs::symlink_metadata(&marker).is_err() {
            // Written in place (its presence is what counts), so that a crash leaves no
            // temporary file that would make the folder look like someone else's.
            fault::step();
            let mut f = crate::fsutil::private_file()
                .write(true)
                .create_new(true)
                .open(&marker)
                .map_err(io_err(&marker))?;
            f.write_all(b"A ravencert certificate store: ravencert manages every file here.\n")
                .map_err(io_err(&marker))?;
        }
        let gi = self.root.join(".gitignore");
        if !gi.exists() {
            write_atomic(&gi, b"*\n", 0o600)?;
        }
        Ok(())
    }

    /// The manifest. A store written before ravencert kept one gets it from the names
    /// ravencert writes (thumbprint files, client-key folders), once.
    fn manifest(&self) -> Result<std::sync::MutexGuard<'_, Option<Manifest>>> {
        let mut m = super::locked(&self.manifest);
        if m.is_none() {
            let path = self.root.join(MANIFEST_FILE);
            *m = Some(match read_file(&path) {
                Ok(bytes) => {
                    Manifest::parse(bytes).map_err(|_| corrupt(&path, Problem::ManifestNotUtf8))?
                }
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Manifest {
                        paths: self.legacy_manifest(),
                        appendable: false,
                    }
                }
                Err(e) => return Err(e),
            });
        }
        Ok(m)
    }

    fn legacy_manifest(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if !self.registry_path().exists() {
            return out;
        }
        for (sub, ext) in [("certs", "pem"), ("server", "key"), ("keys", "key")] {
            for e in fs::read_dir(self.root.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().to_string();
                if name
                    .strip_suffix(&format!(".{ext}"))
                    .is_some_and(|t| EntryThumbprint::parse_registered(t).is_ok())
                {
                    out.insert(format!("{sub}/{name}"));
                }
            }
        }
        for e in fs::read_dir(self.root.join("issued"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            let key = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".new"))
                .unwrap_or(&name);
            if crate::model::check_client_key(key).is_ok() {
                out.insert(format!("issued/{name}"));
            }
        }
        out
    }

    /// Records, durably and before they are made, the store paths an apply is about to write,
    /// so that whatever a crash leaves is known to be ravencert's. One write for a batch: the
    /// new paths appended to the manifest and flushed (the whole file written afresh when it
    /// does not exist yet or ends in a line a crash cut short).
    pub(crate) fn intend(&self, rels: impl IntoIterator<Item = String>) -> Result<()> {
        let mut guard = self.manifest()?;
        let m = guard.get_or_insert_with(Manifest::default);
        let mut new: Vec<String> = rels.into_iter().filter(|r| !m.paths.contains(r)).collect();
        new.sort();
        new.dedup();
        if new.is_empty() && m.appendable {
            return Ok(());
        }
        m.paths.extend(new.iter().cloned());
        let path = self.root.join(MANIFEST_FILE);
        if !m.appendable {
            write_atomic(&path, m.text().as_bytes(), 0o600)?;
            m.appendable = true;
            return Ok(());
        }
        let text: String = new.iter().map(|r| format!("{r}\n")).collect();
        fault::step();
        let mut f = crate::fsutil::open_append_private(&path).map_err(|e| {
            if e.is_link() {
                corrupt(&path, Problem::Link)
            } else {
                io_err(&path)(e.into())
            }
        })?;
        // One write(2): a crash leaves the new lines whole or a last line without its newline,
        // which the next read drops (nothing it names was written yet).
        f.write_all(text.as_bytes()).map_err(io_err(&path))?;
        f.sync_data().map_err(io_err(&path))
    }

    /// Writes a certificate's public file (`certs/THUMBPRINT.pem`, staged until the registry
    /// commits); returns its thumbprint.
    pub fn write_cert(&self, der: &[u8]) -> Result<Thumbprint> {
        let thumb = pki::thumbprint(der);
        self.intend([format!("certs/{thumb}.pem")])?;
        let dir = self.root.join("certs");
        ensure_dir(&dir)?;
        let written = write_staged(
            &self.cert_path(thumb.as_str()),
            &pki::der_to_pem(der)?,
            0o600,
        )?;
        self.record_written(format!("certs/{thumb}.pem"), thumb.as_str(), Some(written));
        Ok(thumb)
    }

    /// A thread that flushes the disk each time it is sent `()`, ahead of the commit's flush,
    /// which then finds less to wait for. It ends once the sender is gone and its last flush is
    /// done; the commit waits for that (the sender must be dropped before it). Its first
    /// failure is kept, and the commit refuses with it: the commit's own flush is told of it
    /// too when it goes through the folder opened under the lock (`sync_root`), and this is the
    /// backstop when it does not. When the system refuses the thread, nothing is flushed early
    /// (the requests are refused, and the commit's flush does it all).
    pub(crate) fn early_flusher(&self) -> SyncSender<()> {
        // At most one request waits while a flush runs; one sent meanwhile is covered by it.
        let (flush, requests) = sync_channel::<()>(1);
        let root = self.root.clone();
        let failed = std::sync::Arc::clone(&self.early_flush_failed);
        let Some(thread) = crate::threads::spawn(move || {
            while requests.recv().is_ok() {
                if let Err(e) = fault::early_flush(&root, sync_filesystem(&root)) {
                    super::locked(&failed).get_or_insert(e);
                }
            }
        }) else {
            return flush;
        };
        let earlier = super::locked(&self.early_flusher).replace(thread);
        // One flusher per apply; another one's outcome is kept all the same.
        if let Some(earlier) = earlier {
            let _ = earlier.join();
        }
        flush
    }

    /// The commit point of an apply: the registry rendered and written.
    pub fn write_registry(&self, registry: &Registry) -> Result<()> {
        self.commit_registry(None, || Ok::<_, StoreError>(registry.render()))
            .map(|_| ())
    }

    /// Begins flushing the disk on a thread of its own, for [`Store::commit_registry`] to wait
    /// for: begun as soon as the last file the registry will name is written, while the apply
    /// does what precedes the commit.
    pub(crate) fn begin_flush(&self) -> Flush {
        let flush = || {
            let root = self.root.clone();
            // The folder opened under the lock, when there is one (see `sync_root`).
            let opened = self.sync_root.get().cloned();
            move || match opened {
                Some(d) => sync_filesystem_of(&d, &root),
                None => sync_filesystem(&root),
            }
        };
        match crate::threads::spawn(flush()) {
            Some(thread) => Flush::Running(thread),
            // Without a thread (the system refused one), the flush is done here and now.
            None => Flush::Done(flush()()),
        }
    }

    /// The commit point of an apply: `render` makes the registry's text (and may refuse it)
    /// while every file written so far is flushed (by `flush`, begun after the last of them was
    /// written, or by a flush begun here), then the text is written.
    pub(crate) fn commit_registry<E: From<StoreError>>(
        &self,
        flush: Option<Flush>,
        render: impl FnOnce() -> std::result::Result<RegistryText, E>,
    ) -> std::result::Result<RegistryText, E> {
        // Every file the new registry names must be durable before the registry is: one
        // flush of the whole filesystem instead of two fsyncs per file (300 clients wrote
        // 2,400 fsyncs, which cost more than all their keys). It waits on the disk, so the text
        // is rendered and checked meanwhile.
        let flush = flush.unwrap_or_else(|| self.begin_flush());
        let text = render();
        let synced = flush.wait();
        let text = text?;
        synced?;
        let early = super::locked(&self.early_flusher).take();
        if let Some(early) = early {
            early
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        if let Some(e) = super::locked(&self.early_flush_failed).take() {
            return Err(e.into());
        }
        // The copy first: if we crash between the two, the registry still holds the old,
        // self-consistent text and the copy is simply not the one its seal names.
        let sealed = text.sealed().as_bytes();
        write_atomic(&self.root.join(".registry.applied"), sealed, 0o600)?;
        write_atomic(&self.registry_path(), sealed, 0o600)?;
        Ok(text)
    }

    /// After the registry is committed: move staged bundles whose certificate is registered
    /// into place, and remove every file the registry no longer refers to. Also repairs what an
    /// interrupted apply left behind. `beside` (making the verification cache) runs on this
    /// thread while another thread moves the bundles, sweeps and lists what is left: each move
    /// waits on issued/'s lock in the kernel (10,000 of them took a quarter of a second on one
    /// core). The cache looks only at registered certificates' files, which the sweep leaves
    /// alone, and not at the files this process wrote (their stamps were taken as they were
    /// written).
    pub(crate) fn finish<T>(&self, registry: &Registry, beside: impl FnOnce() -> T) -> Result<T> {
        // Temp files of writes an interrupted apply never renamed into place.
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_path(&entry.path())?;
            }
        }
        let made = self
            .manifest()?
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        // Moves, sweep and the manifest's look at what is left take another thread, one after
        // the other; `beside` runs on this one meanwhile.
        let moves = || {
            self.finish_issued(registry, &made)?;
            self.sweep_unreferenced(registry, &made)?;
            Ok::<_, StoreError>(self.still_there(&made))
        };
        let (still, out) = std::thread::scope(|s| {
            // Without a thread (the system refused one), one after the other on this one.
            let Some(still) = crate::threads::spawn_scoped(s, moves) else {
                return (moves(), beside());
            };
            let out = beside();
            let still = still
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (still, out)
        });
        let still = still?;
        let appendable = self.manifest()?.as_ref().is_some_and(|m| m.appendable);
        if still != made || !appendable || !self.root.join(MANIFEST_FILE).exists() {
            let m = Manifest {
                paths: still,
                appendable: true,
            };
            write_atomic(&self.root.join(MANIFEST_FILE), m.text().as_bytes(), 0o600)?;
            *super::locked(&self.manifest) = Some(m);
        }
        Ok(out)
    }

    /// The paths of `made` still there: one listing per folder, not a stat per path.
    fn still_there(&self, made: &BTreeSet<String>) -> BTreeSet<String> {
        let mut listed: BTreeMap<&str, Option<HashSet<std::ffi::OsString>>> = BTreeMap::new();
        made.iter()
            .filter(|r| {
                let in_listing = match r.split_once('/') {
                    Some((dir, name)) if !name.contains('/') => listed
                        .entry(dir)
                        .or_insert_with(|| self.list(dir))
                        .as_ref()
                        .map(|names| names.contains(std::ffi::OsStr::new(name))),
                    _ => None,
                };
                in_listing.unwrap_or_else(|| fs::symlink_metadata(self.root.join(r)).is_ok())
            })
            .cloned()
            .collect()
    }

    /// The names in the store folder `dir`; None when it cannot be listed.
    fn list(&self, dir: &str) -> Option<HashSet<std::ffi::OsString>> {
        let entries = fs::read_dir(self.root.join(dir)).ok()?;
        entries.map(|e| e.ok().map(|e| e.file_name())).collect()
    }

    /// certs/, server/, keys/: files ravencert made for a thumbprint the registry no longer
    /// names, and temporary files of interrupted writes, are removed.
    fn sweep_unreferenced(&self, registry: &Registry, made: &BTreeSet<String>) -> Result<()> {
        let keep: HashSet<&str> = registry
            .server
            .iter()
            .map(|s| s.thumbprint.as_str())
            .chain(registry.certificates.iter().map(|c| c.thumbprint.as_str()))
            .collect();
        // A node certificate now imported without its key: the key it was imported with goes.
        let keyless: HashSet<&str> = registry
            .server
            .iter()
            .filter(|s| !s.has_key)
            .map(|s| s.thumbprint.as_str())
            .collect();
        for (sub, ext) in [("certs", "pem"), ("server", "key"), ("keys", "key")] {
            let dir = self.root.join(sub);
            if !dir.is_dir() {
                continue;
            }
            for entry in walkdir::WalkDir::new(&dir)
                .follow_links(false)
                .min_depth(1)
                .max_depth(1)
            {
                let entry = entry.map_err(|e| corrupt(&dir, Problem::Walk(e)))?;
                let name = entry.file_name().to_string_lossy().to_string();
                // Only what ravencert made there (the manifest), or the temporary file of one
                // of its interrupted writes.
                if name.starts_with(".tmp-") {
                    remove_path(entry.path())?;
                    continue;
                }
                let referenced = name
                    .strip_suffix(ext)
                    .and_then(|n| n.strip_suffix('.'))
                    .is_some_and(|t| keep.contains(t) && !(sub == "server" && keyless.contains(t)));
                // What the registry names stays; of the rest, only what ravencert made goes.
                if !referenced && made.contains(&format!("{sub}/{name}")) {
                    remove_path(entry.path())?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Manifest, Store, MANIFEST_FILE};

    #[test]
    fn a_manifest_line_a_crash_cut_short_is_dropped_and_the_file_rewritten() {
        let m = Manifest::parse(b"certs/A.pem\nkeys/A.key\nissued/c\xc3".to_vec()).unwrap();
        assert_eq!(
            m.paths.iter().collect::<Vec<_>>(),
            ["certs/A.pem", "keys/A.key"]
        );
        assert!(!m.appendable);
        let whole = Manifest::parse(b"certs/A.pem\n".to_vec()).unwrap();
        assert!(whole.appendable && whole.paths.len() == 1);

        // The next record writes the file afresh; later ones append whole lines.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let path = dir.path().join(MANIFEST_FILE);
        std::fs::write(&path, "certs/A.pem\nissued/tor").unwrap();
        store.intend(["keys/B.key".to_string()]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "certs/A.pem\nkeys/B.key\n"
        );
        store
            .intend(["certs/B.pem".to_string(), "keys/B.key".to_string()])
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "certs/A.pem\nkeys/B.key\ncerts/B.pem\n"
        );
    }
}
