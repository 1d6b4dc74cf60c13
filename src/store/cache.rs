//! The verification cache (`.verified.json`): what the last apply verified, so that a no-op
//! plan re-reads only the files that changed since.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::{read_file, write_staged};
use super::{Result, Store};
use crate::model::{per_certificate, Origin};
use crate::pki;
use crate::registry::{split_seal, CertEntry, Registry, RegistryText};

/// What a file looked like when ravencert last verified it: size, mtime and ctime (ns), inode.
/// Any write, rename or replacement changes it (ctime cannot be set from user space).
pub(super) type Stamp = (u64, i64, i64, u64);

pub(super) fn stamp(m: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (
        m.len(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.ino(),
    )
}

/// A no-op plan at 10,000 certificates must not re-read and re-hash what it can trust: apply
/// leaves the parsed registry and the stamps of the files it verified here, tied to the
/// registry's seal. A plan uses it only when the seal still matches, and re-reads any file
/// whose stamp changed. Written by apply only (under the lock), never by plan.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct VerifyCache {
    seal: String,
    /// The registry file as written, verified against its seal: unchanged stamp, same text.
    #[serde(default)]
    registry_stamp: Option<Stamp>,
    pub(super) registry: Option<Registry>,
    pub(super) files: BTreeMap<String, Stamp>,
}

/// [`VerifyCache`] as written: the same fields, the registry borrowed.
#[derive(Serialize)]
struct VerifyCacheOut<'a> {
    seal: String,
    registry_stamp: Option<Stamp>,
    registry: Option<&'a Registry>,
    files: BTreeMap<String, Stamp>,
}

const CACHE_FILE: &str = ".verified.json";

impl Store {
    pub(super) fn unchanged_registry_cache(&self, reg_path: &Path) -> Option<VerifyCache> {
        let m = fs::symlink_metadata(reg_path)
            .ok()
            .filter(|m| m.is_file())?;
        let cache = read_file(&self.root.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(&b).ok())?;
        (cache.registry_stamp == Some(stamp(&m))).then_some(cache)
    }

    pub(super) fn read_cache(&self, seal: &str) -> VerifyCache {
        let cache = read_file(&self.root.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(&b).ok())
            .unwrap_or_default();
        if cache.seal == seal {
            cache
        } else {
            VerifyCache::default()
        }
    }

    /// Records what this apply verified (or wrote) for the next plan. A file whose stamp is
    /// unchanged since the previous cache keeps its entry; any other file is read and hashed
    /// now, and cached only if it is the certificate the registry names. A cache the file
    /// already holds is not written again.
    pub fn write_cache(&self, registry: &Registry) -> Result<()> {
        match self.cache_bytes(registry, &registry.render()) {
            Some(json) => self.write_cache_bytes(&json),
            None => Ok(()),
        }
    }

    /// Writes the verification cache [`Store::cache_bytes`] made: a temp file renamed into
    /// place, not flushed (two waits for the disk at the end of every apply). After a crash the
    /// file holds the new cache, the old one (whose registry stamp no longer matches) or bytes
    /// that do not parse: the last two are ignored, and the next load verifies every file.
    pub(crate) fn write_cache_bytes(&self, json: &[u8]) -> Result<()> {
        write_staged(&self.root.join(CACHE_FILE), json, 0o600).map(drop)
    }

    /// The verification cache of `registry` as it will be written; None when the file already
    /// holds it, or when it cannot be made (said as a warning: without it the next load
    /// verifies every file).
    pub(crate) fn cache_bytes(&self, registry: &Registry, text: &RegistryText) -> Option<Vec<u8>> {
        let old_bytes = read_file(&self.root.join(CACHE_FILE)).ok();
        let old = old_bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(b).ok())
            .unwrap_or_default();
        let consider = |rel: String, thumbprint: &str| -> Option<(String, Stamp)> {
            // A file this process wrote is not looked at: its stamp was taken as it was written
            // (issued/'s folders may be moving into place meanwhile, see Store::finish). Any
            // other file a move replaces meanwhile leaves a stamp the next load finds changed.
            if let Some(st) = self.written_stamp(&rel, thumbprint) {
                return Some((rel, st));
            }
            let path = self.root.join(&rel);
            let m = fs::symlink_metadata(&path).ok().filter(|m| m.is_file())?;
            let st = stamp(&m);
            let verified = old.files.get(&rel) == Some(&st)
                || self.wrote(&rel, thumbprint)
                || read_file(&path)
                    .ok()
                    .and_then(|pem| pki::pem_cert_named(&pem, thumbprint))
                    .is_some();
            verified.then_some((rel, st))
        };
        let of_entry = |c: &CertEntry| -> [Option<(String, Stamp)>; 2] {
            let thumbprint = c.thumbprint.as_str();
            let issued = (c.source == Origin::Generated && c.retire_after.is_none())
                .then(|| format!("issued/{k}/{k}.crt", k = c.key));
            [
                consider(format!("certs/{thumbprint}.pem"), thumbprint),
                issued.and_then(|rel| consider(rel, thumbprint)),
            ]
        };
        // A stat per file (two per certificate), on every core from PARALLEL_FROM.
        let files: BTreeMap<String, Stamp> = per_certificate(&registry.certificates, of_entry)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        // The registry file's stamp, once its text is checked against the seal.
        let reg_path = self.registry_path();
        let registry_stamp = fs::symlink_metadata(&reg_path).ok().and_then(|m| {
            let bytes = read_file(&reg_path).ok()?;
            let on_disk = String::from_utf8(bytes).ok()?;
            let (body, claimed) = split_seal(&on_disk);
            (body == text.body() && claimed == Some(text.seal())).then(|| stamp(&m))
        });
        // Serialized from borrows: no copy of a 10,000-certificate registry.
        let cache = VerifyCacheOut {
            seal: text.seal().to_string(),
            registry_stamp,
            registry: Some(registry),
            files,
        };
        match serde_json::to_vec(&cache) {
            // Already on disk (an apply that changed nothing): not written again.
            Ok(json) if old_bytes.as_ref() == Some(&json) => None,
            Ok(json) => Some(json),
            // The cache only saves work: without it the next load verifies every file.
            Err(e) => {
                tracing::warn!("verification cache not written: {e}");
                None
            }
        }
    }
}
