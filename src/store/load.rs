//! Loading the store into [`Actual`] and verifying it: server certificates and keys, client
//! certificate files (drift), issued bundles.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::cache::{stamp, VerifyCache};
use super::checks::check_owner;
use super::files::read_file;
use super::{corrupt, Problem, Result, Store, StoreError};
use crate::model::{per_certificate, EntryThumbprint, Origin};
use crate::pki;
use crate::registry::{describe_drift, split_seal, Actual, CertEntry, Registry};

/// The state of a registered certificate's public file.
enum CertFileState {
    Ok,
    Missing,
    /// Holds another certificate (its thumbprint), or none that can be read.
    Altered(Option<String>),
}

/// Thumbprints of the certificates in an export file, if it can be read.
pub(crate) fn read_export(path: &Path) -> Option<Vec<EntryThumbprint>> {
    let bytes = crate::fsutil::read_regular(path, 16 << 20, false).ok()?;
    let thumbprints = pki::pfx_thumbprints(&bytes, "").ok()?;
    let mut t: Vec<EntryThumbprint> = thumbprints.into_iter().map(EntryThumbprint::from).collect();
    t.sort();
    Some(t)
}

/// What verifying the client certificates finds, for [`Actual`].
#[derive(Default)]
struct Found {
    /// Keys whose issued bundle holds their registered certificate.
    bundles_ok: BTreeSet<String>,
    /// What changed outside ravencert, in words.
    drift: Vec<String>,
    /// Thumbprints whose certificate file is gone.
    lost: BTreeSet<String>,
    /// Of those, the ones an issued bundle can restore.
    recoverable: BTreeSet<String>,
}

/// What checking one client certificate's files found.
#[derive(Default)]
struct Verdict {
    /// Its certificate file was removed outside ravencert: the drift line.
    drift: Option<String>,
    /// Its certificate file is gone.
    lost: bool,
    /// ... and its issued bundle can restore it.
    recoverable: bool,
    /// Its issued bundle holds it.
    bundle_ok: bool,
}

impl Found {
    /// Adds what checking `c` found.
    fn take(&mut self, c: &CertEntry, v: Verdict) {
        self.drift.extend(v.drift);
        if v.lost {
            self.lost.insert(c.thumbprint.to_string());
        }
        if v.recoverable {
            self.recoverable.insert(c.thumbprint.to_string());
        }
        if v.bundle_ok {
            self.bundles_ok.insert(c.key.clone());
        }
    }
}

impl Store {
    /// Reads and verifies the store. A missing store is an empty one.
    pub fn load(&self, export: Option<&Path>) -> Result<Actual> {
        self.check_not_foreign()?;
        self.check_private()?;
        let export_thumbprints = export.and_then(read_export);
        let reg_path = self.registry_path();
        // Fast path: the registry file is exactly the one the last apply wrote and verified
        // (same size, mtime, ctime, inode), so its parsed form in the cache is it.
        if let Some(mut cache) = self.unchanged_registry_cache(&reg_path) {
            // Taken, not cloned: at 10,000 certificates a copy costs as much as a check.
            if let Some(registry) = cache.registry.take() {
                return self.verify_loaded(registry, true, Vec::new(), &cache, export_thumbprints);
            }
        }
        let text = match read_file(&reg_path) {
            Ok(bytes) => bytes,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                if self.root.exists() && !self.root.is_dir() {
                    return Err(corrupt(&self.root, Problem::StoreNotAFolder));
                }
                return Ok(Actual {
                    registry: Registry::new(),
                    export_thumbprints,
                    exists: self.root.join(".gitignore").exists(),
                    ..Actual::default()
                });
            }
            Err(e) => return Err(e),
        };
        let text =
            String::from_utf8(text).map_err(|_| corrupt(&reg_path, Problem::RegistryNotUtf8))?;
        let (body, seal) = split_seal(&text);
        let sum = pki::sha256_hex(body.as_bytes());
        let sealed = seal == Some(sum.as_str());
        let mut cache = if sealed {
            self.read_cache(&sum)
        } else {
            VerifyCache::default()
        };
        let registry = match cache.registry.take() {
            Some(r) => r,
            None => Registry::parse(&reg_path, body)?,
        };
        let mut drift = Vec::new();
        if !sealed {
            drift.push(format!(
                "{} was edited outside ravencert (its seal does not match); apply rewrites it from certs.toml",
                reg_path.display()
            ));
            if let Some(written) = seal.and_then(|claimed| self.applied_copy(claimed)) {
                drift.extend(describe_drift(&written, &registry));
            }
        }
        self.verify_loaded(registry, sealed, drift, &cache, export_thumbprints)
    }

    /// Verifies what the registry names: server certificates and keys, client certificate
    /// files (drift), issued bundles.
    fn verify_loaded(
        &self,
        registry: Registry,
        sealed: bool,
        drift: Vec<String>,
        cache: &VerifyCache,
        export_thumbprints: Option<Vec<EntryThumbprint>>,
    ) -> Result<Actual> {
        for s in &registry.server {
            if s.has_key && self.read_keys {
                self.verify_server_key(s.thumbprint.as_str())?;
            } else {
                // Registry-only (no key file to check), or a review: the public certificate.
                self.verify_cert(s.thumbprint.as_str())?;
            }
        }
        let mut found = Found {
            drift,
            ..Found::default()
        };
        // Each certificate's files are independent: checked on every core (most of a no-op
        // plan's time at 10,000 is these stat calls), then taken in registry order, so the
        // first problem reported and the drift's order do not depend on the threads.
        let verdicts = per_certificate(&registry.certificates, |c| {
            self.verify_client_cert(c, sealed, cache)
        });
        for (c, v) in registry.certificates.iter().zip(verdicts) {
            found.take(c, v?);
        }
        Ok(Actual {
            registry,
            bundles_ok: found.bundles_ok,
            export_thumbprints,
            install: None,
            exists: true,
            drift: found.drift,
            sealed,
            lost: found.lost,
            recoverable: found.recoverable,
        })
    }

    /// A server certificate's file and its private key, which must belong to it.
    fn verify_server_key(&self, thumbprint: &str) -> Result<()> {
        let der = self.read_cert_der(thumbprint)?;
        let key_path = self.server_key_path(thumbprint);
        let key = pki::PrivateKey::from_pem(&read_file(&key_path)?)
            .map_err(|_| corrupt(&key_path, Problem::ServerKeyUnreadable { restore: true }))?;
        if !key.matches(&der)? {
            return Err(corrupt(
                &key_path,
                Problem::KeyNotOfCertificate {
                    thumbprint: thumbprint.to_string(),
                },
            ));
        }
        Ok(())
    }

    /// A client certificate's file (drift when removed, an error when altered) and its bundle.
    fn verify_client_cert(
        &self,
        c: &CertEntry,
        sealed: bool,
        cache: &VerifyCache,
    ) -> Result<Verdict> {
        let mut verdict = Verdict::default();
        // A removed file is drift that the bundle (or a re-issue) repairs; a file holding
        // another certificate means the store cannot be trusted (docs/contract.md §2): an error.
        let missing = match self.cert_file_state(c.thumbprint.as_str(), cache)? {
            CertFileState::Ok => false,
            CertFileState::Missing => true,
            CertFileState::Altered(holds) => {
                return Err(corrupt(
                    &self.cert_path(c.thumbprint.as_str()),
                    Problem::ClientCertAltered {
                        registered: c.thumbprint.to_string(),
                        holds,
                    },
                ));
            }
        };
        if missing && !sealed {
            // A hand-edited registry naming a certificate nobody has: cannot be trusted.
            return Err(corrupt(
                &self.cert_path(c.thumbprint.as_str()),
                Problem::CertGoneRegistryEdited {
                    registry: self.registry_path(),
                    key: c.key.clone(),
                    thumbprint: c.thumbprint.to_string(),
                },
            ));
        }
        if missing {
            let restorable = c.source == Origin::Generated
                && self.bundle_in(&self.issued_dir(&c.key), &c.key, c.thumbprint.as_str());
            verdict.drift = Some(format!(
                "the certificate file of client '{}' ({}) was removed outside ravencert{}",
                c.key,
                self.cert_path(c.thumbprint.as_str()).display(),
                if restorable {
                    "; the issued bundle can restore it"
                } else {
                    ""
                }
            ));
            verdict.lost = true;
            verdict.recoverable = restorable;
        }
        verdict.bundle_ok = c.source == Origin::Generated
            && c.retire_after.is_none()
            && self.bundle_holds(&c.key, c.thumbprint.as_str(), cache)?;
        Ok(verdict)
    }

    /// The copy of the registry ravencert last wrote, if it is the one the seal names.
    fn applied_copy(&self, claimed: &str) -> Option<Registry> {
        let path = self.root.join(".registry.applied");
        let text = String::from_utf8(read_file(&path).ok()?).ok()?;
        let (body, seal) = split_seal(&text);
        let sum = pki::sha256_hex(body.as_bytes());
        if seal != Some(sum.as_str()) || sum != claimed {
            return None;
        }
        Registry::parse(&path, body).ok()
    }

    fn cert_file_state(&self, thumbprint: &str, cache: &VerifyCache) -> Result<CertFileState> {
        let path = self.cert_path(thumbprint);
        if let Ok(m) = fs::symlink_metadata(&path) {
            check_owner(&path, &m)?;
            if m.is_file()
                && cache.files.get(&format!("certs/{thumbprint}.pem")) == Some(&stamp(&m))
            {
                return Ok(CertFileState::Ok);
            }
        }
        let pem = match read_file(&path) {
            Ok(p) => p,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CertFileState::Missing)
            }
            Err(e) => return Err(e),
        };
        Ok(match pki::pem_cert_body(&pem) {
            Some(der) if pki::thumbprint(&der) == thumbprint => CertFileState::Ok,
            Some(der) => CertFileState::Altered(Some(pki::thumbprint(&der).to_string())),
            None => CertFileState::Altered(None),
        })
    }

    /// Whether a registered thumbprint's public certificate file is present and right.
    /// One this process wrote for that thumbprint needs only be there, ours and a file.
    pub(crate) fn cert_file_ok(&self, thumbprint: &str) -> bool {
        if self.wrote(&format!("certs/{thumbprint}.pem"), thumbprint) {
            let path = self.cert_path(thumbprint);
            if fs::symlink_metadata(&path)
                .is_ok_and(|m| m.is_file() && check_owner(&path, &m).is_ok())
            {
                return true;
            }
        }
        matches!(
            self.cert_file_state(thumbprint, &VerifyCache::default()),
            Ok(CertFileState::Ok)
        )
    }

    /// The registry's certificate file exists and its SHA-1 matches the thumbprint.
    fn verify_cert(&self, thumbprint: &str) -> Result<()> {
        self.read_cert_der(thumbprint).map(drop)
    }

    /// The DER of registered certificate `thumbprint`, from its file: only that certificate
    /// (a file that holds another one is refused, SHA-1 being what a thumbprint is). Decoded by
    /// base64 alone, not by an X.509 parse: OpenSSL 3's costs about 0.2 ms a certificate, which
    /// was most of ravencert's own time in a registration of 300.
    pub(crate) fn read_cert_der(&self, thumbprint: &str) -> Result<Vec<u8>> {
        let path = self.cert_path(thumbprint);
        let pem = read_file(&path).map_err(|e| match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                let thumbprint = thumbprint.to_string();
                corrupt(&path, Problem::CertMissing { thumbprint })
            }
            other => other,
        })?;
        let der = pki::pem_cert_body(&pem).ok_or_else(|| corrupt(&path, Problem::NotPem))?;
        let actual = pki::thumbprint(&der);
        if actual != thumbprint {
            return Err(corrupt(
                &path,
                Problem::CertAltered {
                    registered: thumbprint.to_string(),
                    actual: actual.to_string(),
                },
            ));
        }
        Ok(der)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Problem, Store, StoreError};
    use crate::model::KeySpec;
    use crate::pki;

    fn certificate(name: &str) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let later = now + time::Duration::days(1);
        pki::generate_server(name, &[], KeySpec::EcP256, now, later)
            .unwrap()
            .cert_der
    }

    #[test]
    fn a_certificate_is_read_only_as_the_one_its_thumbprint_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (a, b) = (certificate("a.example.com"), certificate("b.example.com"));
        let (ta, tb) = (store.write_cert(&a).unwrap(), store.write_cert(&b).unwrap());
        assert_eq!(store.read_cert_der(ta.as_str()).unwrap(), a);

        // A's file swapped for B's certificate (outside ravencert, or between a load and a
        // registration): A's thumbprint never reads back another certificate.
        std::fs::copy(store.cert_path(tb.as_str()), store.cert_path(ta.as_str())).unwrap();
        match store.read_cert_der(ta.as_str()) {
            Err(StoreError::Corrupt { problem, .. }) => match *problem {
                Problem::CertAltered { registered, actual } => {
                    assert_eq!((registered, actual), (ta.to_string(), tb.to_string()));
                }
                other => panic!("another problem: {other}"),
            },
            other => panic!("not refused as altered: {:?}", other.map(|d| d.len())),
        }

        std::fs::write(store.cert_path(ta.as_str()), "not a certificate\n").unwrap();
        assert!(matches!(
            store.read_cert_der(ta.as_str()),
            Err(StoreError::Corrupt { problem, .. }) if matches!(*problem, Problem::NotPem)
        ));
    }
}
