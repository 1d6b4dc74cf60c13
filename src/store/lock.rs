//! The apply lock: one apply at a time, and the error names the holder.

use std::fs;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{corrupt, io_err, Problem, Result, Store, StoreError, StoreLock};

impl Store {
    /// Takes the apply lock, waiting up to `timeout`. The error names the holder.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<StoreLock> {
        self.check_not_foreign()?;
        // A new store is created here; an existing one is left as it is (its modes are
        // checked, never silently repaired, when it is loaded).
        if fs::symlink_metadata(&self.root).is_err() {
            self.ensure_root()?;
        } else if !self.root.is_dir() {
            return Err(corrupt(&self.root, Problem::StoreNotAFolder));
        }
        let path = self.root.join(".lock");
        let mut file = crate::fsutil::private_file()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(StoreError::Locked {
                            root: self.root.clone(),
                            holder: (!holder.is_empty()).then(|| holder.to_string()),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        }
        // Opened once the lock is held, before anything is written under it (see `sync_root`).
        if self.sync_root.get().is_none() {
            let root = fs::File::open(&self.root).map_err(io_err(&self.root))?;
            let _ = self.sync_root.set(std::sync::Arc::new(root));
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let since = crate::model::rfc3339(OffsetDateTime::now_utc());
        file.set_len(0).map_err(io_err(&path))?;
        let _ = writeln!(
            file,
            "pid {} on {} since {}",
            std::process::id(),
            if host.is_empty() { "this host" } else { &host },
            since
        );
        Ok(StoreLock { _file: file })
    }
}
