//! The files of newly issued clients, written as the apply streams them: a batch is recorded in
//! the manifest (one append) and its folders checked once, then each client's certificate, kept
//! key and staged bundle are written.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

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

    /// Writes a new client's certificate, kept key and bundle. The batch was begun with
    /// [`Store::begin_new_clients`]. Nothing names them until the registry commits: the
    /// certificate's thumbprint is new, and so is the client's folder in issued/ (made here, so
    /// that 10,000 new clients need no 10,000 moves after the commit) unless the client had
    /// one, in which case the bundle is staged and moved into place after the commit.
    pub(crate) fn write_new_client(&self, c: &NewClient<'_>) -> Result<()> {
        let (key, thumb) = (c.key, c.thumbprint.as_str());
        let written = write_fresh(&self.cert_path(thumb), c.cert_pem, 0o600)?;
        self.record_written(format!("certs/{thumb}.pem"), thumb, Some(written));
        write_fresh(&self.client_key_path(thumb), c.key_pem, 0o600)?;
        let dir = self.issued_dir(key);
        match make_private_dir(&dir) {
            Ok(()) => self.write_bundle_files(&dir, key, c.bundle, Some(thumb)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A folder (or a link, never followed) that appeared since the batch began.
                self.intend([format!("issued/.{key}.new")])?;
                self.stage_bundle_files(key, c.bundle, Some(thumb))
            }
            Err(e) => Err(io_err(&dir)(e)),
        }
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
        let thumbprint = thumbprint.map(str::to_string).or_else(|| {
            pki::pem_cert_body(&bundle.cert_pem).map(|der| pki::thumbprint(&der).into())
        });
        self.write_bundle_files(&dir, key, bundle, thumbprint.as_deref())?;
        // All three files are there: moving the folder into place needs no look at them.
        if let Some(t) = thumbprint {
            self.record_written(format!("issued/.{key}.new"), &t, None);
        }
        Ok(())
    }

    /// Writes a bundle's three files into `dir`, a folder just made (empty), and records the
    /// certificate's stamp for `issued/<key>/<key>.crt`, which a move of the folder into place
    /// leaves as it is (none when its `thumbprint` is not known).
    fn write_bundle_files(
        &self,
        dir: &Path,
        key: &str,
        bundle: &pki::Bundle,
        thumbprint: Option<&str>,
    ) -> Result<()> {
        write_fresh(&dir.join(format!("{key}.pfx")), &bundle.pfx, 0o600)?;
        let crt = write_fresh(&dir.join(format!("{key}.crt")), &bundle.cert_pem, 0o600)?;
        if let Some(t) = thumbprint {
            self.record_written(format!("issued/{key}/{key}.crt"), t, Some(crt));
        }
        write_fresh(&dir.join(format!("{key}.key")), &bundle.key_pem, 0o600).map(drop)
    }
}

/// Makes `dir` (0700, whatever the umask), empty: whatever is there (a folder an interrupted
/// apply left, a link: removed, never followed) goes first. One mkdir when nothing is there.
fn fresh_private_dir(dir: &Path) -> Result<()> {
    match make_private_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_tree(dir)?;
            make_private_dir(dir).map_err(io_err(dir))
        }
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Makes the folder `dir`, mode 0700 whatever the umask (set again when the umask masked part
/// of it); AlreadyExists when something, a link included, is there.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    fault::step();
    fs::DirBuilder::new().mode(0o700).create(dir)?;
    if crate::fsutil::umask_masks(0o700) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
