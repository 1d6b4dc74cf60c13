//! Files ravencert writes outside the store: the export, the `[server] install` file, handed-out
//! bundles.

use std::fs;
use std::path::Path;

use super::fault;
use super::files::{write_atomic, write_with};
use super::{io_err, Result};
use crate::fsutil::AtomicWrite;

/// Writes a new file outside the store (a bundle handed out): atomically (temp file in the
/// same folder, fsync, then a rename that never replaces), with `mode` whatever the umask. A
/// file or link already at `path` is left as it is: the error's kind is `AlreadyExists`.
pub(crate) fn write_new_outside(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    // Before the temp file only: a crash point before the no-clobber link was never one.
    let how = AtomicWrite {
        mode: Some(mode),
        step: fault::step,
        ..AtomicWrite::NEW
    };
    write_with(path, bytes, &how)
}

/// Writes the export (outside the store, meant to be shared): public parts only.
pub(crate) fn write_export(path: &Path, pfx: &[u8]) -> Result<()> {
    write_outside(path, pfx, 0o644, None)
}

/// Writes the `[server] install` file (outside the store, for a node): the server's private
/// key, so mode 0600 whatever the umask, and never through a link below `root` (see
/// [`crate::fsutil::refuse_links_below`]): a linked folder on the way would put the key
/// wherever the link points.
pub(crate) fn write_install(path: &Path, root: &Path, pfx: &[u8]) -> Result<()> {
    write_outside(path, pfx, 0o600, Some(root))
}

/// A file outside the store, written atomically, its folder made when missing; with `root`, no
/// link may lie below it on the way (checked before the folders are made, and again after).
fn write_outside(path: &Path, bytes: &[u8], mode: u32, root: Option<&Path>) -> Result<()> {
    let no_links = || match root {
        Some(root) => {
            crate::fsutil::refuse_links_below(root, path).map_err(|e| io_err(path)(e.into()))
        }
        None => Ok(()),
    };
    no_links()?;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            // Shared, but only ravencert writes in the folders it makes: 0755 whatever the umask.
            crate::fsutil::create_dirs(parent, 0o755).map_err(io_err(parent))?;
            no_links()?;
            // Temp files an interrupted export left behind.
            let prefix = format!(
                ".tmp-{}-",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            for entry in fs::read_dir(parent).map_err(io_err(parent))?.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    write_atomic(path, bytes, mode)
}
