//! What is wrong with a store file, as typed values: [`super::StoreError::Corrupt`] prints the
//! file, then one of these. The texts say what is wrong and what to do.

use std::path::PathBuf;

/// Why a store file (or the store folder) cannot be trusted or used.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The store path exists and is not a folder.
    #[error("the store path is not a folder")]
    StoreNotAFolder,
    /// A folder of the store is something else.
    #[error("should be a folder")]
    NotAFolder,
    /// A symbolic link inside the store (never followed).
    #[error("is a symbolic link; ravencert does not follow links inside the store — remove it")]
    Link,
    /// The registry file is not UTF-8.
    #[error("the registry is not UTF-8 text")]
    RegistryNotUtf8,
    /// The manifest file is not UTF-8.
    #[error("the manifest is not UTF-8 text")]
    ManifestNotUtf8,
    /// A store file ravencert would never write: a folder, device or pipe, or too large.
    #[error("{0}; the store was changed outside ravencert — restore it from a backup")]
    NotAStoreFile(crate::fsutil::ReadError),
    /// The server private key does not parse; `restore` adds the way out (when loading).
    #[error("the server private key is unreadable{}", if *.restore { "; restore the store from a backup" } else { "" })]
    ServerKeyUnreadable {
        /// Whether the text names the remedy.
        restore: bool,
    },
    /// The server private key is not the key of its certificate.
    #[error("this key does not belong to server certificate {thumbprint}")]
    KeyNotOfCertificate {
        /// The server certificate's thumbprint.
        thumbprint: String,
    },
    /// A client's certificate file holds another certificate (`holds`), or none readable.
    #[error("{}, not the registered {registered}; the store was changed outside ravencert — restore it from a backup", match .holds { Some(t) => format!("holds certificate {t}"), None => "holds no readable certificate".to_string() })]
    ClientCertAltered {
        /// The thumbprint the registry names.
        registered: String,
        /// The thumbprint of the certificate the file holds, if one can be read.
        holds: Option<String>,
    },
    /// A certificate's file holds another certificate.
    #[error("holds certificate {actual}, not the registered {registered}; the store was changed outside ravencert")]
    CertAltered {
        /// The thumbprint the registry names.
        registered: String,
        /// The thumbprint of the certificate the file holds.
        actual: String,
    },
    /// A client's certificate file is gone and the registry was edited by hand.
    #[error("does not exist, and {} was edited outside ravencert (client '{key}', thumbprint {thumbprint}); restore the store from a backup", .registry.display())]
    CertGoneRegistryEdited {
        /// The registry file.
        registry: PathBuf,
        /// The client key.
        key: String,
        /// The registered thumbprint.
        thumbprint: String,
    },
    /// A registered certificate's file is missing.
    #[error("the certificate of registered thumbprint {thumbprint} is missing; restore it from a backup")]
    CertMissing {
        /// The registered thumbprint.
        thumbprint: String,
    },
    /// A certificate file is not PEM.
    #[error("not a PEM certificate")]
    NotPem,
    /// Group or others may read a private part of the store.
    #[error("is readable by other users (mode {mode:03o}); the store holds private keys — run `chmod -R go-rwx {}`, and consider the keys exposed", .root.display())]
    ReadableByOthers {
        /// The permission bits found.
        mode: u32,
        /// The store folder.
        root: PathBuf,
    },
    /// Owned by another user than the one running ravencert.
    #[error("is owned by uid {uid}, not by the user running ravencert (uid {me}); another user could change what the store holds — remove it (or `chown -R` the store to this user after checking it), and consider its keys exposed")]
    ForeignOwner {
        /// The owner.
        uid: u32,
        /// The effective user running ravencert.
        me: u32,
    },
    /// A folder with files and no sign of being a ravencert store.
    #[error("already holds files ({}{}) and is not a ravencert store; ravencert will not manage a folder with files it did not make — name a new or empty folder as [store] path (or --store)", .files.iter().take(3).cloned().collect::<Vec<_>>().join(", "), if .files.len() > 3 { ", ..." } else { "" })]
    Foreign {
        /// The names found in it.
        files: Vec<String>,
    },
    /// One of the store's random key files is not 32 bytes.
    #[error("is not a 32-byte key; {0}")]
    NotAKey(KeyFile),
    /// No random bytes for a new key.
    #[error("{0}")]
    Random(openssl::error::ErrorStack),
    /// A folder of the store could not be listed.
    #[error("{0}")]
    Walk(walkdir::Error),
}

/// The store's random key files, each with its own remedy when it is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFile {
    /// `.bundle-password-key`: bundle-password fingerprints.
    BundlePassword,
    /// `.cluster-state-key`: the seal of the cluster state.
    ClusterState,
}

impl KeyFile {
    /// The file's name in the store.
    pub(super) fn file_name(self) -> &'static str {
        match self {
            KeyFile::BundlePassword => super::PASSWORD_KEY_FILE,
            KeyFile::ClusterState => super::CLUSTER_STATE_KEY_FILE,
        }
    }
}

impl std::fmt::Display for KeyFile {
    /// What to do about a damaged key file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFile::BundlePassword => f.write_str(
                "remove it (apply makes a new one and packages the password-protected bundles again)",
            ),
            KeyFile::ClusterState => write!(
                f,
                "remove it and {} (ravencert then treats the registrations it made before as foreign)",
                super::CLUSTER_STATE_FILE
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_ones_users_know() {
        let link = Problem::Link.to_string();
        assert_eq!(
            link,
            "is a symbolic link; ravencert does not follow links inside the store — remove it"
        );
        assert_eq!(
            Problem::ServerKeyUnreadable { restore: true }.to_string(),
            "the server private key is unreadable; restore the store from a backup"
        );
        assert_eq!(
            Problem::ServerKeyUnreadable { restore: false }.to_string(),
            "the server private key is unreadable"
        );
        let altered = |holds: Option<&str>| {
            Problem::ClientCertAltered {
                registered: "AB".into(),
                holds: holds.map(str::to_string),
            }
            .to_string()
        };
        assert_eq!(altered(Some("CD")), "holds certificate CD, not the registered AB; the store was changed outside ravencert — restore it from a backup");
        assert!(altered(None).starts_with("holds no readable certificate, not the registered AB;"));
        let foreign = |n: usize| {
            let files = (1..=n).map(|i| format!("f{i}")).collect();
            Problem::Foreign { files }.to_string()
        };
        assert!(foreign(3).starts_with("already holds files (f1, f2, f3) and is not"));
        assert!(foreign(4).starts_with("already holds files (f1, f2, f3, ...) and is not"));
        assert_eq!(
            Problem::ReadableByOthers { mode: 0o755, root: "/s".into() }.to_string(),
            "is readable by other users (mode 755); the store holds private keys — run `chmod -R go-rwx /s`, and consider the keys exposed"
        );
        assert_eq!(
            Problem::NotAKey(KeyFile::ClusterState).to_string(),
            "is not a 32-byte key; remove it and .cluster-state.json (ravencert then treats the registrations it made before as foreign)"
        );
        let locked = |holder: Option<&str>| {
            crate::store::StoreError::Locked {
                root: "/s".into(),
                holder: holder.map(str::to_string),
            }
            .to_string()
        };
        assert_eq!(locked(None), "the store /s is locked by another apply (holder unknown); wait for it to finish, or pass --lock-timeout 60s to wait");
        assert!(locked(Some("pid 1 on h since t")).contains("apply (pid 1 on h since t);"));
    }
}
