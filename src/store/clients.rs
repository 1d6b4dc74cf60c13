//! The files of newly issued clients, written as the apply streams them: a batch is recorded in
//! the manifest (one append) and its folders checked once, then each client's certificate, kept
//! key and staged bundle are written.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::fault;
use super::files::{ensure_dir, remove_tree, write_staged};
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
    /// link, mode 0700) once for the batch rather than once per file.
    pub(crate) fn begin_new_clients<'a>(
        &self,
        clients: impl IntoIterator<Item = (&'a str, &'a Thumbprint)>,
    ) -> Result<()> {
        self.intend(
            clients
                .into_iter()
                .flat_map(|(key, thumbprint)| Store::client_paths(key, thumbprint.as_str())),
        )?;
        for sub in ["certs", "keys", "issued"] {
            ensure_dir(&self.root.join(sub))?;
        }
        Ok(())
    }

    /// Writes a new client's certificate, kept key and staged bundle (staged until the
    /// registry commits). The batch was begun with [`Store::begin_new_clients`].
    pub(crate) fn write_new_client(&self, c: &NewClient<'_>) -> Result<()> {
        let thumb = c.thumbprint.as_str();
        let written = write_staged(&self.cert_path(thumb), c.cert_pem, 0o600)?;
        self.record_written(format!("certs/{thumb}.pem"), thumb, Some(written));
        write_staged(&self.client_key_path(thumb), c.key_pem, 0o600)?;
        self.stage_bundle_files(c.key, c.bundle, Some(thumb))
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
        write_staged(&dir.join(format!("{key}.pfx")), &bundle.pfx, 0o600)?;
        // The folder's move into place leaves the file's stamp as it is.
        let crt = write_staged(&dir.join(format!("{key}.crt")), &bundle.cert_pem, 0o600)?;
        let thumbprint = match thumbprint {
            Some(t) => Some(t.to_string()),
            None => pki::pem_cert_body(&bundle.cert_pem).map(|der| pki::thumbprint(&der).into()),
        };
        if let Some(t) = &thumbprint {
            self.record_written(format!("issued/{key}/{key}.crt"), t, Some(crt));
        }
        write_staged(&dir.join(format!("{key}.key")), &bundle.key_pem, 0o600)?;
        // All three files are there: moving the folder into place needs no look at them.
        if let Some(t) = thumbprint {
            self.record_written(format!("issued/.{key}.new"), &t, None);
        }
        Ok(())
    }
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
    // The umask masks the mode given at creation.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}
