//! Issued bundles (`issued/<key>/`): staged before the registry commits, moved into place after,
//! read back for verification and hand-out.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use super::cache::{stamp, VerifyCache};
use super::fault;
use super::files::{ensure_dir, read_file, remove_tree};
use super::{io_err, Result, Store, StoreError};
use crate::model::Origin;
use crate::pki;
use crate::registry::Registry;

/// The files of a client's issued bundle, as the store holds them.
pub(crate) struct IssuedFiles {
    /// `<key>.pfx`: client certificate, key and server certificate (protected by the password).
    pub(crate) pfx: Vec<u8>,
    /// `<key>.crt`: the client certificate (PEM).
    pub(crate) crt: Vec<u8>,
    /// `<key>.key`: the private key (PEM, encrypted when the client has a password).
    pub(crate) key: Vec<u8>,
}

impl Store {
    /// The DER of a client's issued bundle certificate, if it is `thumbprint`.
    pub(crate) fn bundle_cert(&self, key: &str, thumbprint: &str) -> Option<Vec<u8>> {
        let crt = self.issued_dir(key).join(format!("{key}.crt"));
        read_file(&crt)
            .ok()
            .and_then(|pem| pki::pem_cert_named(&pem, thumbprint))
    }

    /// The three files of a client's issued bundle (`issued/<key>/`), read as they are, never
    /// through a link; None when one is missing or its certificate is not `thumbprint`.
    pub(crate) fn read_issued(&self, key: &str, thumbprint: &str) -> Result<Option<IssuedFiles>> {
        let dir = self.issued_dir(key);
        if !self.private_meta(&dir, false)?.is_some_and(|m| m.is_dir()) {
            return Ok(None);
        }
        let read = |ext: &str| -> Result<Option<Vec<u8>>> {
            match read_file(&dir.join(format!("{key}.{ext}"))) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        let (Some(pfx), Some(crt), Some(key_pem)) = (read("pfx")?, read("crt")?, read("key")?)
        else {
            return Ok(None);
        };
        let holds = pki::pem_cert_named(&crt, thumbprint).is_some();
        Ok(holds.then_some(IssuedFiles {
            pfx,
            crt,
            key: key_pem,
        }))
    }

    /// The bundle in issued/<key>/ (or, after an interrupted apply, its staged copy) holds it.
    pub(super) fn bundle_holds(
        &self,
        key: &str,
        thumbprint: &str,
        cache: &VerifyCache,
    ) -> Result<bool> {
        for (dir, staged) in [(self.issued_dir(key), false), (self.staging_dir(key), true)] {
            if !self.private_meta(&dir, false)?.is_some_and(|m| m.is_dir()) {
                continue;
            }
            let mut crt_stamp = None;
            let mut complete = true;
            for ext in ["crt", "pfx", "key"] {
                match self.private_meta(&dir.join(format!("{key}.{ext}")), false)? {
                    Some(m) if m.is_file() => {
                        if ext == "crt" {
                            crt_stamp = Some(stamp(&m));
                        }
                    }
                    _ => complete = false,
                }
            }
            if !complete {
                continue;
            }
            let cached = !staged
                && crt_stamp.is_some()
                && cache.files.get(&format!("issued/{key}/{key}.crt")) == crt_stamp.as_ref();
            if cached || self.bundle_in(&dir, key, thumbprint) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The issued bundle's `.key` of a client, as written (encrypted when it has a password).
    pub(crate) fn read_bundle_key_pem(&self, key: &str) -> Option<Vec<u8>> {
        read_file(&self.issued_dir(key).join(format!("{key}.key"))).ok()
    }

    /// Writes a client's bundle to its staging folder; [`Store::finish_bundles`] moves it in
    /// place after the registry is committed.
    pub(crate) fn stage_bundle(&self, key: &str, bundle: &pki::Bundle) -> Result<()> {
        self.intend([format!("issued/{key}"), format!("issued/.{key}.new")])?;
        ensure_dir(&self.root.join("issued"))?;
        self.stage_bundle_files(key, bundle, None)
    }

    /// issued/: staged bundles of registered certificates move into place; bundles of clients
    /// no longer active go. Only what ravencert made (`made`, the manifest) is touched.
    pub(super) fn finish_issued(&self, registry: &Registry, made: &BTreeSet<String>) -> Result<()> {
        let issued = self.root.join("issued");
        if !issued.is_dir() {
            return Ok(());
        }
        let active: HashMap<&str, &str> = registry
            .certificates
            .iter()
            .filter(|c| c.retire_after.is_none() && c.source == Origin::Generated)
            .map(|c| (c.key.as_str(), c.thumbprint.as_str()))
            .collect();
        for entry in fs::read_dir(&issued).map_err(io_err(&issued))? {
            let entry = entry.map_err(io_err(&issued))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            let staged = name.strip_prefix('.').and_then(|n| n.strip_suffix(".new"));
            // An active client's folder stays as it is (no look into the manifest for each of
            // 10,000); only what ravencert made is ever removed or replaced.
            if (staged.is_none() && active.contains_key(name.as_str()))
                || !made.contains(&format!("issued/{name}"))
            {
                continue;
            }
            if let Some(key) = staged {
                match active.get(key) {
                    // Staged by an apply (a new certificate, or the same one packaged again
                    // with another password or profile): it is newer than issued/<key>.
                    Some(thumb) if self.bundle_complete(&path, key, thumb) => {
                        let target = self.issued_dir(key);
                        fault::step();
                        // Straight into place when nothing is there (a new client); what
                        // is there goes first.
                        if let Err(e) = fs::rename(&path, &target) {
                            if fs::symlink_metadata(&target).is_err() {
                                return Err(io_err(&path)(e));
                            }
                            remove_tree(&target)?;
                            fault::step();
                            fs::rename(&path, &target).map_err(io_err(&path))?;
                        }
                        // No fsync: the registry already names this certificate, and a
                        // staged bundle counts as present until the next apply moves it.
                    }
                    _ => remove_tree(&path)?,
                }
            } else {
                remove_tree(&path)?;
            }
        }
        Ok(())
    }

    /// A staged bundle holds its three files and the certificate `thumbprint`; one this
    /// process staged whole for that thumbprint is not looked at again. Any other (one an
    /// interrupted apply left) has its certificate read: that this process wrote the client's
    /// certificate says nothing of it, since a new client's bundle is written straight into
    /// issued/<key>.
    fn bundle_complete(&self, dir: &Path, key: &str, thumbprint: &str) -> bool {
        if self.wrote(&format!("issued/.{key}.new"), thumbprint) {
            return true;
        }
        let file = |ext: &str| {
            fs::symlink_metadata(dir.join(format!("{key}.{ext}"))).is_ok_and(|m| m.is_file())
        };
        file("pfx") && file("key") && self.bundle_in(dir, key, thumbprint)
    }

    pub(super) fn bundle_in(&self, dir: &Path, key: &str, thumbprint: &str) -> bool {
        let crt = dir.join(format!("{key}.crt"));
        let Ok(pem) = read_file(&crt) else {
            return false;
        };
        // ravencert writes the same PEM text to certs/ and to the bundle: equal bytes settle it
        // without decoding (the cert file itself is verified separately); otherwise decode.
        if read_file(&self.cert_path(thumbprint)).is_ok_and(|c| c == pem) {
            return true;
        }
        pki::pem_cert_named(&pem, thumbprint).is_some()
    }
}
