//! What makes a store trustworthy before anything is read from it: private modes, one owner, no
//! links inside, no foreign folder.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{corrupt, io_err, Problem, Result, Store};
use super::{CLUSTER_STATE_KEY_FILE, MARKER_FILE, PASSWORD_KEY_FILE, REGISTRY_FILE};

/// Like ssh's StrictModes: whatever ravencert trusts in the store must belong to the user running
/// it. A folder or file of another user's could be swapped (a server key, a re-sealed registry)
/// by someone who should not decide who gets ClusterAdmin.
pub(super) fn check_owner(p: &Path, m: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // Asked once: it is a system call, and a no-op plan checks tens of thousands of files.
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let me = *EUID.get_or_init(crate::fsutil::effective_uid);
    if m.uid() != me {
        return Err(corrupt(p, Problem::ForeignOwner { uid: m.uid(), me }));
    }
    Ok(())
}

impl Store {
    /// The store, its private folders and key files must not be readable by anyone else: a
    /// store that is refuses to be used (the keys may already be exposed; fix and rotate).
    pub(super) fn check_private(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(corrupt(&self.root, Problem::StoreNotAFolder));
        }
        // The store folder itself may be reached through a link; nothing inside it may.
        let _ = self.private_meta(&self.root, true)?;
        for p in [
            self.root.join("server"),
            self.root.join("keys"),
            self.root.join(PASSWORD_KEY_FILE),
            self.root.join(CLUSTER_STATE_KEY_FILE),
            self.root.join("issued"),
            self.root.join("certs"),
            self.root.join(REGISTRY_FILE),
        ] {
            let _ = self.private_meta(&p, false)?;
        }
        // Private keys: each one private and ours.
        for sub in ["server", "keys"] {
            let dir = self.root.join(sub);
            if dir.is_dir() {
                for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let _ = self.private_meta(&e.map_err(io_err(&dir))?.path(), false)?;
                }
            }
        }
        // A link among the certificates, kept keys or bundles is refused, not swept away: one
        // readdir per folder (the entry types come with it, no stat per file).
        for sub in ["certs", "issued"] {
            let dir = self.root.join(sub);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let e = e.map_err(io_err(&dir))?;
                if e.file_type().map_err(io_err(&dir))?.is_symlink() {
                    return Err(corrupt(&e.path(), Problem::Link));
                }
            }
        }
        // Issued bundles are checked as they are read (bundle_holds): one stat per file.
        Ok(())
    }

    /// The metadata of a store path that must be private: no link inside the store, nothing
    /// readable by group or others. None when it does not exist.
    pub(super) fn private_meta(&self, p: &Path, follow: bool) -> Result<Option<fs::Metadata>> {
        let meta = if follow {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        };
        let Ok(m) = meta else { return Ok(None) };
        if m.file_type().is_symlink() {
            return Err(corrupt(p, Problem::Link));
        }
        check_owner(p, &m)?;
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(corrupt(
                p,
                Problem::ReadableByOthers {
                    mode,
                    root: self.root.clone(),
                },
            ));
        }
        Ok(Some(m))
    }

    /// A folder that holds files but is no ravencert store (no registry, no marker) is refused:
    /// ravencert would manage, and sweep, files that are not its own.
    pub(super) fn check_not_foreign(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(());
        };
        if self.root.join(MARKER_FILE).exists() || self.registry_path().exists() {
            return Ok(());
        }
        let others: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != ".gitignore" && n != ".lock")
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        Err(corrupt(&self.root, Problem::Foreign { files: others }))
    }
}
