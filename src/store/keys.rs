//! Private keys and the store's random keys (bundle-password fingerprints, the cluster state's
//! seal), and the cluster state file itself.

use std::fs;

use super::files::{ensure_dir, read_file, write_atomic, write_staged};
use super::CLUSTER_STATE_FILE;
use super::{corrupt, KeyFile, Problem, Result, Store, StoreError};
use crate::pki;

impl Store {
    /// The cluster state file's bytes; None when no cluster was ever reconciled.
    pub(crate) fn read_cluster_state(&self) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(CLUSTER_STATE_FILE);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_file(&path).map(Some),
        }
    }

    /// Replaces the cluster state file (atomically, 0600). The store must exist.
    pub(crate) fn write_cluster_state(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.root.join(CLUSTER_STATE_FILE), bytes, 0o600)
    }

    pub(crate) fn read_server_key(&self, thumbprint: &str) -> Result<pki::PrivateKey> {
        let path = self.server_key_path(thumbprint);
        pki::PrivateKey::from_pem(&read_file(&path)?)
            .map_err(|_| corrupt(&path, Problem::ServerKeyUnreadable { restore: false }))
    }

    pub(crate) fn write_client_key(&self, thumbprint: &str, key: &pki::PrivateKey) -> Result<()> {
        self.intend([format!("keys/{thumbprint}.key")])?;
        ensure_dir(&self.root.join("keys"))?;
        write_staged(&self.client_key_path(thumbprint), &key.to_pem()?, 0o600).map(drop)
    }

    /// The kept private key of a generated client's certificate, if the store has it.
    pub(crate) fn read_client_key(&self, thumbprint: &str) -> Option<pki::PrivateKey> {
        pki::PrivateKey::from_pem(&read_file(&self.client_key_path(thumbprint)).ok()?).ok()
    }

    /// The store's own random key for password fingerprints; None before the first apply
    /// that issued a bundle with a password.
    pub(crate) fn password_key(&self) -> Result<Option<Vec<u8>>> {
        self.random_key(KeyFile::BundlePassword)
    }

    /// The password-fingerprint key, made on first use (under the apply lock).
    pub(crate) fn password_key_or_create(&self) -> Result<Vec<u8>> {
        self.random_key_or_create(KeyFile::BundlePassword)
    }

    /// The key of the cluster state's seal; None before the first cluster apply.
    pub(crate) fn cluster_state_key(&self) -> Result<Option<Vec<u8>>> {
        self.random_key(KeyFile::ClusterState)
    }

    /// The cluster state's key, made on first use (under the apply lock).
    pub(crate) fn cluster_state_key_or_create(&self) -> Result<Vec<u8>> {
        self.random_key_or_create(KeyFile::ClusterState)
    }

    /// A 32-byte key file of the store; None when it does not exist.
    fn random_key(&self, file: KeyFile) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(file.file_name());
        match read_file(&path) {
            Ok(k) if k.len() == 32 => Ok(Some(k)),
            Ok(_) => Err(corrupt(&path, Problem::NotAKey(file))),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A 32-byte key file of the store, made random (0600, atomically) when it does not exist.
    fn random_key_or_create(&self, file: KeyFile) -> Result<Vec<u8>> {
        if let Some(k) = self.random_key(file)? {
            return Ok(k);
        }
        let mut k = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut k).map_err(|e| corrupt(&self.root, Problem::Random(e)))?;
        write_atomic(&self.root.join(file.file_name()), &k, 0o600)?;
        Ok(k)
    }

    /// Writes the private key of the server certificate `thumbprint` (`server/THUMBPRINT.key`,
    /// staged until the registry commits).
    pub fn write_server_key(&self, thumbprint: &str, key: &pki::PrivateKey) -> Result<()> {
        self.intend([format!("server/{thumbprint}.key")])?;
        ensure_dir(&self.root.join("server"))?;
        write_staged(&self.server_key_path(thumbprint), &key.to_pem()?, 0o600).map(drop)
    }
}
