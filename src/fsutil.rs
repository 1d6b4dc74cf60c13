//! Reading files people and attackers can point ravencert at: only regular files (a FIFO would
//! block forever, a device never ends), bounded in size, optionally never through a link.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

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

/// How a private file of ravencert's own is opened: created 0600 (the mode is given at creation,
/// so it is never readable by others, not even for a moment) and never through a link. The
/// caller adds how it reads or writes.
pub(crate) fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(O_NOFOLLOW);
    options
}

/// Opens `path` for appending, never through a link: a new file is created 0600 (the mode is
/// given at creation, so it is never readable by others, not even for a moment), an existing
/// one is appended to as it is. A link (ELOOP, see [`ReadError::is_link`]) or anything but a
/// regular file (a FIFO opens at once, non-blocking, and is refused) is an error.
pub(crate) fn open_append_private(path: &Path) -> Result<std::fs::File, ReadError> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(ReadError::NotRegular);
    }
    Ok(f)
}

/// A symbolic link on the way to a file ravencert writes (see [`refuse_links_below`]).
#[derive(Debug, thiserror::Error)]
#[error("{} is a symbolic link{}; ravencert does not write through a link — remove it, or name the real folder instead", .link.display(), .to.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default())]
pub struct LinkOnPath {
    /// The part of the path that is a link.
    pub link: PathBuf,
    /// Where it leads, when that can be read.
    pub to: Option<PathBuf>,
}

impl From<LinkOnPath> for io::Error {
    fn from(e: LinkOnPath) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// The store's rule for the files ravencert writes outside it: no part of `path` below `root`
/// (certs.toml's folder, say; `/` for an absolute path) may be a symbolic link, the file itself
/// included. `root` itself may be reached through links, as the store's folder may; a `path`
/// that does not start with `root` is checked from its own start. Parts that do not exist yet
/// end the walk: ravencert makes them as folders, never as links. A link someone can plant in a
/// folder on the way would otherwise send the file (a private key, a certificate ravencert will
/// trust) wherever it points.
pub(crate) fn refuse_links_below(root: &Path, path: &Path) -> Result<(), LinkOnPath> {
    let (mut cur, rest) = match path.strip_prefix(root) {
        Ok(rest) => (root.to_path_buf(), rest),
        Err(_) => (PathBuf::new(), path),
    };
    for c in rest.components() {
        cur.push(c);
        if !matches!(c, Component::Normal(_)) {
            continue;
        }
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(LinkOnPath {
                    to: std::fs::read_link(&cur).ok(),
                    link: cur,
                })
            }
            Ok(_) => {}
            // Missing (or not to be looked into): nothing below it can be a link yet.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
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

/// How [`write_atomic`] writes a file.
#[derive(Clone, Copy)]
pub(crate) struct AtomicWrite {
    /// The file's mode, set whatever the umask; `None`: 0666 less the umask, as a plain write.
    pub(crate) mode: Option<u32>,
    /// fsync the file before the rename and its folder after it. The store stages files
    /// without, and makes them durable at once before its registry commits.
    pub(crate) durable: bool,
    /// Rename over whatever is at the path (a link there is replaced, never followed); `false`:
    /// a file or link already there wins, untouched, and the error's kind is `AlreadyExists`.
    pub(crate) replace: bool,
    /// Called before the temp file is made and before a replacing rename: the store's crash
    /// points (`store::fault`); a no-op elsewhere.
    pub(crate) step: fn(),
}

impl AtomicWrite {
    /// A durable write that replaces the file, mode from the umask, no crash points.
    pub(crate) const REPLACE: AtomicWrite = AtomicWrite {
        mode: None,
        durable: true,
        replace: true,
        step: || {},
    };
    /// A durable write that never replaces anything, mode from the umask, no crash points.
    pub(crate) const NEW: AtomicWrite = AtomicWrite {
        replace: false,
        ..AtomicWrite::REPLACE
    };
}

/// Where [`write_atomic`] failed: the folder (making the temp file, syncing), the temp file
/// (writing it) or the target (the rename), and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub(crate) struct WriteError {
    /// The folder, temp file or target.
    pub(crate) path: PathBuf,
    /// The OS error.
    #[source]
    pub(crate) source: io::Error,
}

/// The one way ravencert writes a file: a temp file beside the target (`.tmp-<name>-…`, created
/// exclusively, never through a link, removed on any error), written (and fsynced when
/// `durable`), renamed over the target (or, without `replace`, linked to it only if nothing is
/// there), then the folder fsynced. Readers see the old file or the new one, never a part.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], how: &AtomicWrite) -> Result<(), WriteError> {
    write_atomic_stat(path, bytes, how).map(drop)
}

/// [`write_atomic`], returning the file's metadata as written (fstat of the file in place,
/// after its rename): what a later stat of it finds while nothing writes it again.
pub(crate) fn write_atomic_stat(
    path: &Path,
    bytes: &[u8],
    how: &AtomicWrite,
) -> Result<std::fs::Metadata, WriteError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    let dir = folder_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let prefix = format!(".tmp-{name}-");
    (how.step)();
    if let (Some(mode), true) = (how.mode, how.replace) {
        return write_replacing(path, dir, &prefix, bytes, mode, how);
    }
    let mut tmp = match how.mode {
        Some(mode) => tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir),
        // make_in hands back the opener's own error, without tempfile's path suffix.
        None => tempfile::Builder::new()
            .prefix(&prefix)
            .make_in(dir, |p| create_exclusive(p, 0o666)),
    }
    .map_err(at(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    if let Some(mode) = how.mode {
        // The mode given at creation is masked by the umask; set it as it must be.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(at(&tmp_path))?;
    }
    tmp.write_all(bytes).map_err(at(&tmp_path))?;
    if how.durable {
        tmp.as_file().sync_all().map_err(at(&tmp_path))?;
    }
    let file = if how.replace {
        (how.step)();
        tmp.persist(path).map_err(|e| at(path)(e.error))?
    } else {
        // No clobber: a file (or a link, not followed) that appeared meanwhile wins, untouched.
        tmp.persist_noclobber(path).map_err(|e| at(path)(e.error))?
    };
    if how.durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir))?;
    }
    file.metadata().map_err(at(path))
}

/// Writes a file that does not exist yet in place, without a temp file and rename: created
/// exclusively (never through a link) with `mode`, written, its metadata taken. Only for a file
/// nothing reads until a later commit names it, made durable before that: a crash can leave it
/// partly written but never named. None when something is already at `path` (left untouched);
/// a failed write removes what it created.
pub(crate) fn write_new_stat(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<Option<std::fs::Metadata>, WriteError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let at = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match create_exclusive(path, mode) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(at(e)),
    };
    let written = (|| {
        if umask_masks(mode) {
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        file.metadata()
    })();
    match written {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(at(e))
        }
    }
}

/// [`write_atomic`] replacing the target with a file of `mode` (the store's writes): the temp
/// file made here rather than through `tempfile`, which makes a relative folder absolute
/// (a getcwd per file), and the mode given at creation set again only when the umask masks
/// part of it.
fn write_replacing(
    path: &Path,
    dir: &Path,
    prefix: &str,
    bytes: &[u8],
    mode: u32,
    how: &AtomicWrite,
) -> Result<std::fs::Metadata, WriteError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    let mut tmp = Temp::create(dir, prefix, mode).map_err(at(dir))?;
    if umask_masks(mode) {
        tmp.file
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(at(&tmp.path))?;
    }
    tmp.file.write_all(bytes).map_err(at(&tmp.path))?;
    if how.durable {
        tmp.file.sync_all().map_err(at(&tmp.path))?;
    }
    (how.step)();
    std::fs::rename(&tmp.path, path).map_err(at(path))?;
    tmp.renamed = true;
    // The rename changed its ctime: taken now, from the open file.
    let written = tmp.file.metadata().map_err(at(path))?;
    drop(tmp);
    if how.durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir))?;
    }
    Ok(written)
}

/// A temp file beside a target: created exclusively (never through a link), removed when
/// dropped unless it was renamed into place.
struct Temp {
    path: PathBuf,
    file: std::fs::File,
    renamed: bool,
}

impl Temp {
    fn create(dir: &Path, prefix: &str, mode: u32) -> io::Result<Temp> {
        use std::hash::{BuildHasher, Hasher};
        let mut taken = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..64 {
            // A fresh RandomState hashes to a new unpredictable number (std seeds it from the
            // OS once per thread), without a system call.
            let n = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let path = dir.join(format!("{prefix}{:08x}", n as u32));
            match create_exclusive(&path, mode) {
                Ok(file) => {
                    return Ok(Temp {
                        path,
                        file,
                        renamed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => taken = e,
                Err(e) => return Err(e),
            }
        }
        Err(taken)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the file `path` for writing with `mode` (as the umask leaves it), never through a
/// link: AlreadyExists when anything, a link included, is there.
fn create_exclusive(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(O_NOFOLLOW)
        .open(path)
}

/// Whether the process's umask clears a bit of `mode` (or cannot be read): a file created with
/// `mode` must then have it set again. Read once: ravencert never changes its umask.
pub(crate) fn umask_masks(mode: u32) -> bool {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let umask = UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
    });
    umask.is_none_or(|u| u & mode != 0)
}

/// The folder a file path names the file in: its parent, or `.` for a bare file name (whose
/// parent is `Some("")`, the current folder).
pub(crate) fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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
    fn links_below_the_root_are_refused_the_root_itself_may_be_one() {
        use super::refuse_links_below;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("root")).unwrap();
        std::os::unix::fs::symlink(d.join("real/sub"), d.join("real/linked")).unwrap();
        // Below the root: real folders and parts still missing are fine, a link is not.
        assert!(refuse_links_below(&d.join("root"), &d.join("root/sub/new/file")).is_ok());
        let e = refuse_links_below(&d.join("real"), &d.join("real/linked/file")).unwrap_err();
        assert_eq!(e.link, d.join("real/linked"));
        assert!(e.to_string().contains("symbolic link (to "), "{e}");
        // The file itself, too.
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("real/sub/file")).unwrap();
        assert!(refuse_links_below(&d.join("real"), &d.join("real/sub/file")).is_err());
        // An absolute path checked from `/` meets the root's own link.
        let e = refuse_links_below(Path::new("/"), &d.join("root/sub/x")).unwrap_err();
        assert_eq!(e.link, d.join("root"));
    }

    #[test]
    fn atomic_writes_set_the_mode_never_clobber_and_never_follow_links() {
        use super::{write_atomic, AtomicWrite};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = d.join("key");
        let private = AtomicWrite {
            mode: Some(0o600),
            ..AtomicWrite::REPLACE
        };
        write_atomic(&key, b"one", &private).unwrap();
        write_atomic(&key, b"two", &private).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // NEW leaves a file or a link that is there as it is.
        let e = write_atomic(&key, b"three", &AtomicWrite::NEW).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        let link = d.join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(write_atomic(&link, b"x", &AtomicWrite::NEW).is_err());
        // REPLACE replaces the link itself; what it pointed to is untouched.
        write_atomic(&link, b"new", &AtomicWrite::REPLACE).unwrap();
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        // No temp file is left behind, whatever happened.
        let names: Vec<_> = std::fs::read_dir(d).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

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
