//! File helpers of the store: never follow symbolic links, always atomic.

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::cache::{stamp, Stamp};
use super::fault;
use super::{corrupt, io_err, Problem, Result, StoreError};
use crate::fsutil::{AtomicWrite, WriteError};

/// Reads a store file; a symbolic link is refused, not followed.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular(path, MAX_STORE_FILE, false).map_err(|e| {
        if e.is_link() {
            corrupt(path, Problem::Link)
        } else if e.kind() == std::io::ErrorKind::InvalidInput {
            corrupt(path, Problem::NotAStoreFile(e))
        } else {
            io_err(path)(e.into())
        }
    })
}

/// The registry of 10,000 certificates is about 4 MiB; nothing in a store is near this.
const MAX_STORE_FILE: u64 = 256 << 20;

pub(super) fn ensure_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() && path.parent().is_some() => {
            return Err(corrupt(path, Problem::Link))
        }
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(corrupt(path, Problem::NotAFolder)),
        Err(_) => {
            fault::step();
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err(path))?;
        }
    }
    // Whatever the umask or an earlier hand: never readable by others.
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

/// Flushes the filesystem holding `dir` (syncfs): makes every staged write durable at once.
pub(super) fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(io_err(dir))?;
    sync_filesystem_of(&d, dir)
}

/// [`sync_filesystem`] through `d`, the folder `dir` opened: it reports every write-back error
/// since `d` was opened.
pub(super) fn sync_filesystem_of(d: &File, dir: &Path) -> Result<()> {
    rustix::fs::syncfs(d).map_err(|e| io_err(dir)(e.into()))
}

/// A file the registry does not name yet: temp file and rename (never a half-written file),
/// made durable together with the others by [`sync_filesystem`] before the registry commits.
/// Returns the file's stamp as written (the verification cache's, without a stat).
pub(super) fn write_staged(path: &Path, bytes: &[u8], mode: u32) -> Result<Stamp> {
    write_file(path, bytes, mode, false).map(|m| stamp(&m))
}

/// A new file nothing refers to yet (a fresh thumbprint's, or one in a folder this apply has
/// just made): written in place, without the temp file and rename of [`write_staged`], and made
/// durable with the others by [`sync_filesystem`] before the registry names it (a crash can
/// leave it partly written, never named; the manifest has it, and the next apply sweeps it).
/// Something already there, which an interrupted apply may have left, is replaced as
/// [`write_staged`] does.
pub(super) fn write_fresh(path: &Path, bytes: &[u8], mode: u32) -> Result<Stamp> {
    fault::step();
    match crate::fsutil::write_new_stat(path, bytes, mode).map_err(store_io)? {
        Some(m) => Ok(stamp(&m)),
        None => write_staged(path, bytes, mode),
    }
}

/// temp file (mode set at creation), write, fsync, rename, fsync the folder.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode, true).map(drop)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<fs::Metadata> {
    crate::fsutil::write_atomic_stat(
        path,
        bytes,
        &AtomicWrite {
            mode: Some(mode),
            durable,
            replace: true,
            step: fault::step,
        },
    )
    .map_err(store_io)
}

/// [`crate::fsutil::write_atomic`] with the store's crash points; an error names the folder,
/// temp file or file that failed. `.tmp-` names what an interrupted write leaves behind;
/// finish() sweeps it.
pub(super) fn write_with(path: &Path, bytes: &[u8], how: &AtomicWrite) -> Result<()> {
    crate::fsutil::write_atomic(path, bytes, how).map_err(store_io)
}

fn store_io(WriteError { path, source }: WriteError) -> StoreError {
    StoreError::Io { path, source }
}

pub(super) fn remove_path(path: &Path) -> Result<()> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    if m.is_dir() {
        remove_tree(path)
    } else {
        fault::step();
        fs::remove_file(path).map_err(io_err(path))
    }
}

/// Removes a folder; symbolic links inside are removed, never followed.
pub(super) fn remove_tree(path: &Path) -> Result<()> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    fault::step();
    if !m.is_dir() {
        return fs::remove_file(path).map_err(io_err(path));
    }
    fs::remove_dir_all(path).map_err(io_err(path))
}
