//! Reading files people and attackers can point ravencert at: only regular files (a FIFO would
//! block forever, a device never ends), bounded in size, optionally never through a link.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// O_NOFOLLOW and O_NONBLOCK on Linux (no libc dependency for two constants).
const O_NOFOLLOW: i32 = 0o400000;
const O_NONBLOCK: i32 = 0o4000;
/// ELOOP: what opening a symbolic link with O_NOFOLLOW fails with.
pub const ELOOP: i32 = 40;

/// Reads a regular file of at most `max` bytes. `follow_links = false` refuses a link (ELOOP).
pub fn read_regular(path: &Path, max: u64, follow_links: bool) -> io::Result<Vec<u8>> {
    let flags = O_NONBLOCK | if follow_links { 0 } else { O_NOFOLLOW };
    // Non-blocking open: a FIFO opens at once instead of waiting for a writer.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a regular file (a folder, device or pipe)",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {} bytes, more than the {} bytes allowed",
                meta.len(),
                max
            ),
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "grew while being read",
        ));
    }
    Ok(buf)
}
