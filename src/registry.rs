//! The registry as plain data: what the store records for every certificate (the same fields
//! RavenDB's own registry keeps, plus ravencert's client key), its stable text form with a seal,
//! and [`Actual`], the store's state as the planner sees it. Nothing here touches the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Access, Clearance, KeySpec, Origin, PfxProfile};

/// The registry format this ravencert reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const REGISTRY_HEADER: &str = "# ravencert certificate registry: written by ravencert, do not edit.\n# Declare certificates in certs.toml and run `ravencert apply`.\n\n";

/// A registry text that cannot be read: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RegistryError {
    /// The registry file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

fn corrupt(path: &Path, message: impl Into<String>) -> RegistryError {
    RegistryError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Registry: plain data, serialized as stable TOML.

/// The whole registry file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub format_version: u32,
    /// The certs.toml revision of the last apply (git commit, with a dirty flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerEntry>,
    #[serde(default, rename = "certificate", skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertEntry>,
}

/// A server (ClusterNode) certificate with its private key in `server/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub name: String,
    pub thumbprint: String,
    pub public_key_pinning_hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub source: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A registered client certificate, as RavenDB's registry keeps it, plus ravencert's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertEntry {
    /// The certs.toml client key this certificate belongs to.
    pub key: String,
    pub name: String,
    pub thumbprint: String,
    pub public_key_pinning_hash: String,
    pub clearance: Clearance,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub source: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeySpec>,
    /// For a collection's secondary: the primary's thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collection_secondaries: Vec<String>,
    /// Set on a certificate that was re-issued: it stays registered until then (overlap).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub retire_after: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, Access>,
    /// Generated clients: the profile of the issued .pfx (absent = modern).
    #[serde(default, skip_serializing_if = "is_modern")]
    pub pfx: PfxProfile,
    /// Generated clients: what protects the issued bundle, as `none` or a keyed digest of the
    /// password (HMAC-SHA256 under the store's own key; never the password or anything it can
    /// be read back from). Absent in entries written before ravencert recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_password: Option<String>,
    /// Uploaded certificates: the subject, so that a reviewer sees who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

fn is_modern(p: &PfxProfile) -> bool {
    *p == PfxProfile::Modern
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            format_version: FORMAT_VERSION,
            ..Registry::default()
        }
    }

    /// Sorted so that the same content always gives the same text. Server entries keep the
    /// order of `[server].certificates` (the first node signs generated clients).
    pub fn normalize(&mut self) {
        self.certificates.sort_by(|a, b| {
            (
                a.key.as_str(),
                a.retire_after.is_none(),
                &a.not_before,
                &a.thumbprint,
            )
                .cmp(&(
                    b.key.as_str(),
                    b.retire_after.is_none(),
                    &b.not_before,
                    &b.thumbprint,
                ))
        });
    }

    pub fn to_text(&self) -> String {
        let mut r = self.clone();
        r.normalize();
        let body = toml::to_string(&r).unwrap_or_default();
        format!("{REGISTRY_HEADER}{body}")
    }

    pub fn parse(path: &Path, text: &str) -> Result<Registry, RegistryError> {
        // The version line is checked before the whole text is parsed (once: at 10,000
        // certificates the parse is the largest part of a no-op plan), so that a newer format
        // is reported as such rather than as a parse error.
        let version = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("format_version"))
            .and_then(|l| l.split_once('='))
            .map(|(_, v)| v.trim().parse::<i64>().ok());
        match version.map(|v| v.unwrap_or(-1)) {
            Some(1) => {}
            Some(other) => {
                return Err(corrupt(
                    path,
                    format!("store format version {other} is unknown to this ravencert (it reads version {FORMAT_VERSION}); use the ravencert release that wrote it"),
                ))
            }
            None => return Err(corrupt(path, "the registry has no format_version")),
        }
        let reg: Registry = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            corrupt(
                path,
                format!(
                    "the registry is corrupt{}: {}",
                    line.map(|l| format!(" at line {l}")).unwrap_or_default(),
                    e.message()
                ),
            )
        })?;
        let mut seen = BTreeSet::new();
        for t in reg
            .server
            .iter()
            .map(|s| &s.thumbprint)
            .chain(reg.certificates.iter().map(|c| &c.thumbprint))
        {
            if !is_thumbprint(t) {
                return Err(corrupt(
                    path,
                    format!("'{t}' is not a thumbprint (40 upper-case hex digits)"),
                ));
            }
            if !seen.insert(t) {
                return Err(corrupt(path, format!("thumbprint {t} is registered twice")));
            }
        }
        for c in &reg.certificates {
            if crate::model::check_client_key(&c.key).is_err() {
                return Err(corrupt(
                    path,
                    format!("entry {} has an invalid key '{}'", c.thumbprint, c.key),
                ));
            }
        }
        Ok(reg)
    }

    /// The certificate currently in use for a client key (not one waiting out its overlap).
    pub fn active(&self, key: &str) -> Option<&CertEntry> {
        self.certificates
            .iter()
            .find(|c| c.key == key && c.retire_after.is_none() && c.collection_primary.is_none())
    }
}

pub fn is_thumbprint(t: &str) -> bool {
    t.len() == 40
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// What the store holds, as the planner sees it.

/// The store's state: the registry plus the facts about files the planner needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    pub registry: Registry,
    /// Client keys whose issued bundle is present and holds the active certificate.
    pub bundles_ok: BTreeSet<String>,
    /// Thumbprints in the export file; None when it is missing or unreadable.
    pub export_thumbprints: Option<Vec<String>>,
    /// Whether the store exists yet.
    pub exists: bool,
    /// Changes made to the store outside ravencert, in words (Terraform's drift note).
    pub drift: Vec<String>,
    /// Whether the registry text is exactly what ravencert last wrote (its seal verifies).
    pub sealed: bool,
    /// Registered thumbprints whose public certificate file is missing or altered.
    pub lost: BTreeSet<String>,
    /// Lost thumbprints that the issued bundle can restore.
    pub recoverable: BTreeSet<String>,
}

const SEAL_PREFIX: &str = "# sha256: ";

/// Splits the seal line ravencert appends to the registry: (body, claimed sha256).
pub(crate) fn split_seal(text: &str) -> (&str, Option<&str>) {
    let trimmed = text.trim_end_matches('\n');
    match trimmed.rfind('\n') {
        Some(i) if trimmed[i + 1..].starts_with(SEAL_PREFIX) => (
            &text[..i + 1],
            Some(trimmed[i + 1 + SEAL_PREFIX.len()..].trim()),
        ),
        _ => (text, None),
    }
}

pub(crate) fn sealed_text(registry: &Registry) -> String {
    let body = registry.to_text();
    let sum = crate::pki::sha256_hex(body.as_bytes());
    format!("{body}{SEAL_PREFIX}{sum}\n")
}

/// What changed between the registry ravencert wrote and the one on disk, entry by entry.
pub(crate) fn describe_drift(written: &Registry, now: &Registry) -> Vec<String> {
    let mut out = Vec::new();
    let before: BTreeMap<&str, &CertEntry> = written
        .certificates
        .iter()
        .map(|c| (c.thumbprint.as_str(), c))
        .collect();
    let after: BTreeMap<&str, &CertEntry> = now
        .certificates
        .iter()
        .map(|c| (c.thumbprint.as_str(), c))
        .collect();
    for (t, b) in &before {
        match after.get(t) {
            None => out.push(format!(
                "client '{}' ({t}) was removed from the registry",
                b.key
            )),
            Some(a) => {
                let mut fields = Vec::new();
                if a.name != b.name {
                    fields.push(format!("name {} -> {}", b.name, a.name));
                }
                if a.clearance != b.clearance {
                    fields.push(format!("clearance {} -> {}", b.clearance, a.clearance));
                }
                if a.permissions != b.permissions {
                    let show = |p: &BTreeMap<String, Access>| {
                        p.iter()
                            .map(|(d, x)| format!("{d}: {x}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    fields.push(format!(
                        "permissions {{{}}} -> {{{}}}",
                        show(&b.permissions),
                        show(&a.permissions)
                    ));
                }
                if a.key != b.key || a.not_after != b.not_after || a.source != b.source {
                    fields.push("other fields".into());
                }
                if !fields.is_empty() {
                    out.push(format!(
                        "client '{}' ({t}) was edited in the registry: {}",
                        b.key,
                        fields.join("; ")
                    ));
                }
            }
        }
    }
    for (t, a) in &after {
        if !before.contains_key(t) {
            out.push(format!(
                "client '{}' ({t}) was added to the registry by hand",
                a.key
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Clearance, KeySpec, Origin};

    fn entry(key: &str, thumb: &str) -> CertEntry {
        CertEntry {
            key: key.into(),
            name: key.into(),
            thumbprint: thumb.into(),
            public_key_pinning_hash: "x".into(),
            clearance: Clearance::ValidUser,
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            source: Origin::Generated,
            key_type: Some(KeySpec::EcP256),
            collection_primary: None,
            collection_secondaries: vec![],
            retire_after: None,
            revision: None,
            permissions: [("Orders".to_string(), Access::Read)].into(),
            pfx: Default::default(),
            bundle_password: None,
            subject: None,
        }
    }

    #[test]
    fn registry_text_is_sorted_and_round_trips() {
        let mut r = Registry::new();
        r.certificates.push(entry("b", &"B".repeat(40)));
        r.certificates.push(entry("a", &"A".repeat(40)));
        let text = r.to_text();
        assert!(text.find("key = \"a\"").unwrap() < text.find("key = \"b\"").unwrap());
        let back = Registry::parse(Path::new("r"), &text).unwrap();
        let mut sorted = r.clone();
        sorted.normalize();
        assert_eq!(back, sorted);
        assert_eq!(back.to_text(), text);
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let e = Registry::parse(Path::new("r"), "format_version = 7\n").unwrap_err();
        assert!(e.to_string().contains("version 7"), "{e}");
    }

    #[test]
    fn duplicate_thumbprint_is_corrupt() {
        let mut r = Registry::new();
        r.certificates.push(entry("a", &"A".repeat(40)));
        r.certificates.push(entry("b", &"A".repeat(40)));
        assert!(Registry::parse(Path::new("r"), &r.to_text()).is_err());
    }
}
