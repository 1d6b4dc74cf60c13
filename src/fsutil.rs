//! Reading files people and attackers can point ravencert at: only regular files (a FIFO would
//! block forever, a device never ends), bounded in size, optionally never through a link.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::OFlags;

/// O_NOFOLLOW, for `OpenOptionsExt::custom_flags`: its value differs between architectures,
/// so it comes from rustix rather than a constant written here.
pub(crate) const O_NOFOLLOW: i32 = OFlags::NOFOLLOW.bits() as i32;
const O_NONBLOCK: i32 = OFlags::NONBLOCK.bits() as i32;

/// Why `read_regular` refused or failed to read a file. The texts are what the user sees
/// after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed (missing, no permission, a link where none is followed: ELOOP).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A folder, device or pipe.
    #[error("is not a regular file (a folder, device or pipe)")]
    NotRegular,
    /// Larger than the caller allows.
    #[error("is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The most the caller reads.
        max: u64,
    },
    /// The file grew past the limit between the size check and the read.
    #[error("grew while being read")]
    Grew,
}

impl ReadError {
    /// The io kind, as an `io::Error` of this case would have it: `InvalidInput` for the
    /// refusals of this module.
    pub(crate) fn kind(&self) -> io::ErrorKind {
        match self {
            ReadError::Io(e) => e.kind(),
            ReadError::NotRegular | ReadError::TooLarge { .. } | ReadError::Grew => {
                io::ErrorKind::InvalidInput
            }
        }
    }

    /// Whether opening met a symbolic link that was not to be followed.
    pub(crate) fn is_link(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()))
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}

/// Reads a regular file of at most `max` bytes. `follow_links = false` refuses a link (ELOOP).
pub(crate) fn read_regular(
    path: &Path,
    max: u64,
    follow_links: bool,
) -> Result<Vec<u8>, ReadError> {
    let flags = O_NONBLOCK | if follow_links { 0 } else { O_NOFOLLOW };
    // Non-blocking open: a FIFO opens at once instead of waiting for a writer.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(ReadError::Grew);
    }
    Ok(buf)
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Creates `dir` and its missing parents with `mode`, set explicitly on each folder made here
/// (the umask masks the mode given at creation); folders that exist are left as they are.
pub(crate) fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(mode).create(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a folder",
        ));
    }
    Ok(())
}

/// Where a path really points, for comparing paths that may not exist yet: the longest existing
/// prefix is resolved by the file system (links, `..`), the rest is appended lexically (`.`
/// dropped, `..` removing the previous part). Relative paths start from the current folder.
pub(crate) fn resolve(path: &Path) -> std::path::PathBuf {
    use std::path::{Component, PathBuf};
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    // `cur` is canonical as far as it exists; `exists` says whether all of it does.
    let mut cur = PathBuf::from("/");
    let mut exists = true;
    for c in absolute.components() {
        match c {
            Component::Normal(n) => {
                let next = cur.join(n);
                if exists {
                    match std::fs::canonicalize(&next) {
                        Ok(real) => cur = real,
                        Err(_) => {
                            cur = next;
                            exists = false;
                        }
                    }
                } else {
                    cur = next;
                }
            }
            Component::ParentDir => {
                cur.pop();
                if !exists {
                    exists = std::fs::canonicalize(&cur).is_ok_and(|r| r == cur);
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use std::path::Path;

    #[test]
    fn resolve_handles_missing_parts_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(resolve(&dir.path().join("a/b/../c")), real.join("a/c"));
        assert_eq!(resolve(&dir.path().join("./x/.")), real.join("x"));
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).unwrap();
        assert_eq!(
            resolve(&dir.path().join("link/new")),
            real.join("target/new")
        );
        assert_eq!(
            resolve(Path::new("/no-such-dir-xyz/a/../b")),
            Path::new("/no-such-dir-xyz/b")
        );
    }
}
