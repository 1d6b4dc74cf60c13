//! The files of newly issued clients, written as the apply streams them: a batch is recorded in
//! the manifest (one append) and its folders checked once, then each client's certificate, kept
//! key and staged bundle are written.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::cache::{stamp, Stamp};
use super::fault;
use super::files::{ensure_dir, remove_tree, write_fresh};
use super::{io_err, Result, Store};
use crate::model::Thumbprint;
use crate::pki;

/// A generated client's files, made (encoded) on the issuing threads.
pub(crate) struct NewClient<'a> {
    /// The client's key in certs.toml.
    pub(crate) key: &'a str,
    /// Its certificate's thumbprint.
    pub(crate) thumbprint: &'a Thumbprint,
    /// The certificate (PEM), for `certs/THUMBPRINT.pem`.
    pub(crate) cert_pem: &'a [u8],
    /// The private key (PEM, unencrypted), kept as `keys/THUMBPRINT.key`.
    pub(crate) key_pem: &'a [u8],
    /// The bundle, staged in `issued/.<key>.new/`.
    pub(crate) bundle: &'a pki::Bundle,
}

impl Store {
    /// Before a batch of [`Store::write_new_client`]: every path the batch will write recorded
    /// in the manifest (one durable append), and the folders it writes in made or checked (no
    /// link, mode 0700) once for the batch rather than once per file. A client with a bundle in
    /// issued/ already (a certificate issued again) has its new one staged beside it.
    pub(crate) fn begin_new_clients<'a>(
        &self,
        clients: impl IntoIterator<Item = (&'a str, &'a Thumbprint)>,
    ) -> Result<()> {
        let mut paths = Vec::new();
        for (key, thumbprint) in clients {
            let thumb = thumbprint.as_str();
            paths.extend([
                format!("certs/{thumb}.pem"),
                format!("keys/{thumb}.key"),
                format!("issued/{key}"),
            ]);
            if fs::symlink_metadata(self.issued_dir(key)).is_ok() {
                paths.push(format!("issued/.{key}.new"));
            }
        }
        self.intend(paths)?;
        for sub in ["certs", "keys", "issued"] {
            ensure_dir(&self.root.join(sub))?;
        }
        Ok(())
    }

    /// Writes a new client's bundle, certificate and kept key. The batch was begun with
    /// [`Store::begin_new_clients`]. Nothing names them until the registry commits: the
    /// certificate's thumbprint is new, and so is the client's folder in issued/ (made here, so
    /// that 10,000 new clients need no 10,000 moves after the commit) unless the client had
    /// one, in which case the bundle is staged and moved into place after the commit.
    ///
    /// `certs/THUMBPRINT.pem` holds the bundle's `.crt` byte for byte, and `keys/THUMBPRINT.key`
    /// its `.key` when that is not encrypted: each is a second name (a hard link) of the
    /// bundle's file rather than a copy, which halves the files an apply writes and the disk
    /// flushes. ravencert never writes a file in place, so the names part when either is
    /// replaced or removed; a file system without hard links gets copies.
    pub(crate) fn write_new_client(&self, c: &NewClient<'_>) -> Result<()> {
        let (key, thumb, bundle) = (c.key, c.thumbprint.as_str(), c.bundle);
        let issued = self.issued_dir(key);
        fault::step();
        let (dir, staged) = match fs::DirBuilder::new().mode(0o700).create(&issued) {
            Ok(()) => {
                private_mode(&issued)?;
                (issued, false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A folder (or a link, never followed) that appeared since the batch began.
                self.intend([format!("issued/.{key}.new")])?;
                let dir = self.staging_dir(key);
                fresh_private_dir(&dir)?;
                (dir, true)
            }
            Err(e) => return Err(io_err(&issued)(e)),
        };
        let crt_stamp = self.write_bundle_files(&dir, key, bundle)?;
        let crt = dir.join(format!("{key}.crt"));
        let cert = write_or_link(&self.cert_path(thumb), c.cert_pem, &crt, &bundle.cert_pem)?;
        // A second name changed the file's ctime: the stamp of both is the one taken after.
        let crt_stamp = if cert.linked { cert.stamp } else { crt_stamp };
        self.record_written(format!("certs/{thumb}.pem"), thumb, Some(cert.stamp));
        self.record_written(format!("issued/{key}/{key}.crt"), thumb, Some(crt_stamp));
        let bundle_key = dir.join(format!("{key}.key"));
        write_or_link(
            &self.client_key_path(thumb),
            c.key_pem,
            &bundle_key,
            &bundle.key_pem,
        )?;
        if staged {
            // All three files are there: moving the folder into place needs no look at them.
            self.record_written(format!("issued/.{key}.new"), thumb, None);
        }
        Ok(())
    }

    /// Writes a bundle's three files into a fresh `issued/.<key>.new/` (what an earlier
    /// interrupted apply left there goes first). `thumbprint`: its certificate's, when known.
    pub(super) fn stage_bundle_files(
        &self,
        key: &str,
        bundle: &pki::Bundle,
        thumbprint: Option<&str>,
    ) -> Result<()> {
        let dir = self.staging_dir(key);
        fresh_private_dir(&dir)?;
        let crt = self.write_bundle_files(&dir, key, bundle)?;
        let thumbprint = match thumbprint {
            Some(t) => t.to_string(),
            None => match pki::pem_cert_body(&bundle.cert_pem) {
                Some(der) => pki::thumbprint(&der).into(),
                None => return Ok(()),
            },
        };
        // A move of the folder into place leaves the file's stamp as it is.
        self.record_written(format!("issued/{key}/{key}.crt"), &thumbprint, Some(crt));
        // All three files are there: moving the folder into place needs no look at them.
        self.record_written(format!("issued/.{key}.new"), &thumbprint, None);
        Ok(())
    }

    /// Writes a bundle's three files into `dir`, a folder just made (empty); the stamp of its
    /// `.crt` as written.
    fn write_bundle_files(&self, dir: &Path, key: &str, bundle: &pki::Bundle) -> Result<Stamp> {
        write_fresh(&dir.join(format!("{key}.pfx")), &bundle.pfx, 0o600)?;
        let crt = write_fresh(&dir.join(format!("{key}.crt")), &bundle.cert_pem, 0o600)?;
        write_fresh(&dir.join(format!("{key}.key")), &bundle.key_pem, 0o600)?;
        Ok(crt)
    }
}

/// A file [`write_or_link`] made: its stamp, and whether it is a second name of another.
struct Made {
    stamp: Stamp,
    linked: bool,
}

/// Makes `path`, a new file holding `bytes`: a second name of `same` (just written, holding
/// `same_bytes`) when the two hold the same bytes and the file system allows it, otherwise a
/// file of its own ([`write_fresh`]).
fn write_or_link(path: &Path, bytes: &[u8], same: &Path, same_bytes: &[u8]) -> Result<Made> {
    if bytes == same_bytes {
        fault::step();
        // linkat(2) without AT_SYMLINK_FOLLOW: `same` itself, never what a link points to; a
        // name already taken (a leftover of an interrupted apply) is replaced by a copy below.
        if fs::hard_link(same, path).is_ok() {
            let m = fs::symlink_metadata(path).map_err(io_err(path))?;
            return Ok(Made {
                stamp: stamp(&m),
                linked: true,
            });
        }
    }
    Ok(Made {
        stamp: write_fresh(path, bytes, 0o600)?,
        linked: false,
    })
}

/// Makes `dir` (0700, whatever the umask), empty: whatever is there (a folder an interrupted
/// apply left, a link: removed, never followed) goes first. One mkdir when nothing is there.
fn fresh_private_dir(dir: &Path) -> Result<()> {
    let mkdir = || {
        fault::step();
        fs::DirBuilder::new().mode(0o700).create(dir)
    };
    match mkdir() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_tree(dir)?;
            mkdir().map_err(io_err(dir))?;
        }
        Err(e) => return Err(io_err(dir)(e)),
    }
    private_mode(dir)
}

/// A folder just made with mode 0700: set again when the umask masked part of it.
fn private_mode(dir: &Path) -> Result<()> {
    if crate::fsutil::umask_masks(0o700) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}
