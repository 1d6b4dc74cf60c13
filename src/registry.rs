//! The registry as plain data: what the store records for every certificate (the same fields
//! RavenDB's own registry keeps, plus ravencert's client key), its stable text form with a seal,
//! and [`Actual`], the store's state as the planner sees it. Nothing here touches the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Access, Clearance, EntryThumbprint, KeySpec, Origin, PfxProfile, Thumbprint};

mod text;
pub(crate) use text::RegistryText;

/// The registry format this ravencert reads and writes.
const FORMAT_VERSION: u32 = 1;
const REGISTRY_HEADER: &str = "# ravencert certificate registry: written by ravencert, do not edit.\n# Declare certificates in certs.toml and run `ravencert apply`.\n\n";

/// A registry text that cannot be read: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RegistryError {
    /// The registry file.
    pub(crate) path: PathBuf,
    /// What is wrong with it.
    pub(crate) message: String,
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
    /// The registry format ([`FORMAT_VERSION`]).
    format_version: u32,
    /// The certs.toml revision of the last apply (git commit, with a dirty flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) applied_revision: Option<String>,
    /// The `[store]` and `[cluster]` settings of the last apply, so that the next plan shows a
    /// change of them (absent in registries written before ravencert recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<AppliedSettings>,
    /// The server certificate(s): one generated, or one per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerEntry>,
    /// The registered client certificates.
    #[serde(default, rename = "certificate", skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertEntry>,
}

/// The settings of certs.toml that decide where the admin identity is presented and what may be
/// deleted or unregistered, as the last apply ran with them (paths relative to certs.toml's
/// folder where they lie inside it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedSettings {
    /// `[store]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreRecord>,
    /// `[cluster]`, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRecord>,
    /// policy.toml, when there was one (absent: none, as in every registry written before
    /// ravencert read policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRecord>,
}

/// policy.toml as applied: its rules, one canonical line each, so that a change to a rule is
/// seen (and a comment edit is not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// The file, relative to certs.toml's folder when inside it.
    pub file: String,
    /// `NAME: SETTINGS` per rule, in the file's order.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// `[store]` as applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreRecord {
    /// The store folder.
    pub path: String,
    /// `prune`.
    pub prune: bool,
    /// `max_deletions` (0: no limit).
    pub max_deletions: u32,
}

/// `[cluster]` as applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    /// `urls`, in order.
    pub urls: Vec<String>,
    /// `ca`: `store`, `system` or the PEM file.
    pub ca: String,
    /// The admin identity: `clients.KEY` or `certificate PATH`.
    pub admin: String,
    /// `prune`.
    pub prune: bool,
    /// `timeout`.
    pub timeout: String,
    /// `keep`: the known strangers, in the order declared (absent in registries written
    /// before ravencert had it, and when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<KeepRecord>,
}

/// One `[cluster] keep` entry as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepRecord {
    /// The registration's thumbprint.
    pub thumbprint: Thumbprint,
    /// Its note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A server (ClusterNode) certificate, with its private key in `server/` unless `has_key` is
/// false (a node certificate imported without its key: registered and exported only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The certificate's CN.
    pub name: String,
    /// SHA-1 of the certificate, 40 upper-case hex digits (a placeholder only in a registry a
    /// plan projects or assumes; the registry's reader refuses anything else).
    #[serde(deserialize_with = "EntryThumbprint::deserialize_registered")]
    pub thumbprint: EntryThumbprint,
    /// Base64 SHA-256 of the public key (what RavenDB pins).
    pub public_key_pinning_hash: String,
    /// The DNS names of a generated certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Generated by ravencert, or the nodes' own (uploaded).
    pub source: Origin,
    /// The key type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeySpec>,
    /// The certs.toml revision that last changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Whether the store holds its private key (`server/<THUMBPRINT>.key`). Written only as
    /// `has_key = false`, for a node certificate imported without its key (a .crt, or a .pfx
    /// holding none); registries written before it read as true.
    #[serde(default = "always", skip_serializing_if = "is_true")]
    pub has_key: bool,
}

fn always() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A registered client certificate, as RavenDB's registry keeps it, plus ravencert's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertEntry {
    /// The certs.toml client key this certificate belongs to.
    pub key: String,
    /// The display name (CN) RavenDB shows.
    pub name: String,
    /// SHA-1 of the certificate, 40 upper-case hex digits (a placeholder only in a registry a
    /// plan projects or assumes; the registry's reader refuses anything else).
    #[serde(deserialize_with = "EntryThumbprint::deserialize_registered")]
    pub thumbprint: EntryThumbprint,
    /// Base64 SHA-256 of the public key (what RavenDB pins).
    pub public_key_pinning_hash: String,
    /// The security clearance.
    pub clearance: Clearance,
    /// Whether certs.toml declared `protect = true` when this entry was last applied: the
    /// planner then refuses to delete or re-issue the client in one step, even once certs.toml
    /// no longer says so. Written only as `protect = true`; entries written before ravencert
    /// recorded it read as not protected.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// The `until` certs.toml declared when this entry was last applied: access ends then. A
    /// client whose table is removed keeps its end; entries written before ravencert recorded
    /// it read as none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub until: Option<OffsetDateTime>,
    /// Whether certs.toml declared `disabled = true` when this entry was last applied: access
    /// suspended, the certificate kept (not renewed; with `[cluster]`, its registration disabled
    /// or removed). Written only as `disabled = true`; older entries read as enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Generated by ravencert, or uploaded.
    pub source: Origin,
    /// The key type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeySpec>,
    /// For a collection's secondary: the primary's thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_primary: Option<String>,
    /// For a collection's primary: the secondaries' thumbprints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collection_secondaries: Vec<String>,
    /// Set on a certificate that was re-issued: it stays registered until then (overlap).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub retire_after: Option<OffsetDateTime>,
    /// The certs.toml revision that last changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Database access (ValidUser).
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
    /// An empty registry of this format.
    pub fn new() -> Registry {
        Registry {
            format_version: FORMAT_VERSION,
            ..Registry::default()
        }
    }

    /// Sorted so that the same content always gives the same text. Server entries keep the
    /// order of `[server].certificates` (the first node signs generated clients).
    pub fn normalize(&mut self) {
        self.certificates.sort_by(Registry::normal_order);
    }

    /// The order of [`Registry::normalize`].
    fn normal_order(a: &CertEntry, b: &CertEntry) -> std::cmp::Ordering {
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
    }

    /// Everything but the certificates.
    fn head(&self) -> Registry {
        Registry {
            format_version: self.format_version,
            applied_revision: self.applied_revision.clone(),
            settings: self.settings.clone(),
            server: self.server.clone(),
            certificates: Vec::new(),
        }
    }

    /// The stable text form (without the seal).
    pub(crate) fn to_text(&self) -> String {
        self.render().into_body()
    }

    /// Reads the text form of the registry file at `path`, refusing an unknown format, a
    /// malformed thumbprint, a thumbprint registered twice or an invalid key.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Registry, RegistryError> {
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
            // An entry's thumbprint is checked as it is read ([`EntryThumbprint`]'s strict
            // reading): its refusal names the text, as the check after the parse once did.
            if e.message().ends_with(NOT_A_THUMBPRINT) {
                return corrupt(path, e.message());
            }
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
        reg.check_entries(path)?;
        Ok(reg)
    }

    /// What a registry must hold beyond its format: no thumbprint twice, every key valid.
    fn check_entries(&self, path: &Path) -> Result<(), RegistryError> {
        let mut seen = BTreeSet::new();
        for t in self
            .server
            .iter()
            .map(|s| &s.thumbprint)
            .chain(self.certificates.iter().map(|c| &c.thumbprint))
        {
            if !seen.insert(t) {
                return Err(corrupt(path, format!("thumbprint {t} is registered twice")));
            }
        }
        for c in &self.certificates {
            if crate::model::check_client_key(&c.key).is_err() {
                return Err(corrupt(
                    path,
                    format!("entry {} has an invalid key '{}'", c.thumbprint, c.key),
                ));
            }
        }
        Ok(())
    }

    /// The certificate currently in use for a client key (not one waiting out its overlap).
    pub(crate) fn active(&self, key: &str) -> Option<&CertEntry> {
        self.active_certificates().find(|c| c.key == key)
    }

    /// Every client's certificate in use: one per registered client key (a collection by its
    /// primary), none of those waiting out a rotation overlap.
    pub(crate) fn active_certificates(&self) -> impl Iterator<Item = &CertEntry> {
        self.certificates.iter().filter(|c| c.is_active())
    }
}

impl CertEntry {
    /// Whether this is the certificate in use for its key: not a collection's secondary, not
    /// one waiting out a rotation overlap.
    fn is_active(&self) -> bool {
        self.retire_after.is_none() && self.collection_primary.is_none()
    }
}

#[cfg(test)]
impl CertEntry {
    /// A test's registry entry: a generated certificate for `key`, named `key`, ValidUser with
    /// no database access, valid from and to the Unix epoch, nothing optional set. A test
    /// states what it is about over it (`CertEntry { clearance, ..CertEntry::fixture(k, t) }`),
    /// so that a field added to the registry is added here once.
    pub(crate) fn fixture(key: &str, thumbprint: impl Into<EntryThumbprint>) -> CertEntry {
        CertEntry {
            key: key.into(),
            name: key.into(),
            thumbprint: thumbprint.into(),
            public_key_pinning_hash: "p".into(),
            clearance: Clearance::ValidUser,
            protect: false,
            until: None,
            disabled: false,
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            source: Origin::Generated,
            key_type: None,
            collection_primary: None,
            collection_secondaries: Vec::new(),
            retire_after: None,
            revision: None,
            permissions: BTreeMap::new(),
            pfx: PfxProfile::Modern,
            bundle_password: None,
            subject: None,
        }
    }
}

/// How [`EntryThumbprint`]'s strict reading ends its refusal.
const NOT_A_THUMBPRINT: &str = " is not a thumbprint (40 upper-case hex digits)";

// ---------------------------------------------------------------------------------------------
// What the store holds, as the planner sees it.

/// The store's state: the registry plus the facts about files the planner needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// The registry as loaded (empty when the store has none yet).
    pub registry: Registry,
    /// Client keys whose issued bundle is present and holds the active certificate.
    pub bundles_ok: BTreeSet<String>,
    /// Thumbprints in the export file; None when it is missing or unreadable.
    pub export_thumbprints: Option<Vec<EntryThumbprint>>,
    /// What the `[server] install` file holds; None when it was not looked at (no install
    /// declared, or a plan without the secrets to open it).
    pub install: Option<crate::model::InstalledFile>,
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
                if a.protect != b.protect {
                    fields.push(format!("protect {} -> {}", b.protect, a.protect));
                }
                if a.until != b.until {
                    let show = |u: Option<OffsetDateTime>| {
                        u.map_or_else(|| "none".into(), crate::model::rfc3339)
                    };
                    fields.push(format!("until {} -> {}", show(b.until), show(a.until)));
                }
                if a.disabled != b.disabled {
                    fields.push(format!("disabled {} -> {}", b.disabled, a.disabled));
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
    use crate::model::{KeySpec, Origin};

    fn entry(key: &str, thumb: &str) -> CertEntry {
        CertEntry {
            public_key_pinning_hash: "x".into(),
            key_type: Some(KeySpec::EcP256),
            permissions: [("Orders".to_string(), Access::Read)].into(),
            ..CertEntry::fixture(key, thumb)
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

    /// An entry's thumbprint is checked as it is read (a [`EntryThumbprint`]): the refusal
    /// names the text as it did when the check ran after the parse, lower case included, and
    /// a thumbprint registered twice is still found after it.
    #[test]
    fn a_thumbprint_not_as_ravencert_writes_it_is_refused_with_the_same_words() {
        let mut r = Registry::new();
        r.certificates.push(entry("a", &"A".repeat(40)));
        r.certificates.push(entry("b", &"B".repeat(40)));
        let text = r.to_text();
        for bad in ["a".repeat(40), "Z".repeat(40), "19E7C1".to_string()] {
            let edited = text.replacen(&"A".repeat(40), &bad, 1);
            let e = Registry::parse(Path::new("r"), &edited).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("r: '{bad}' is not a thumbprint (40 upper-case hex digits)")
            );
        }
        let twice = text.replacen(&"A".repeat(40), &"B".repeat(40), 1);
        let e = Registry::parse(Path::new("r"), &twice).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("r: thumbprint {} is registered twice", "B".repeat(40))
        );
    }

    fn server(thumb: &str, has_key: bool) -> ServerEntry {
        ServerEntry {
            name: "node".into(),
            thumbprint: thumb.into(),
            public_key_pinning_hash: "x".into(),
            dns: vec![],
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            source: Origin::Uploaded,
            key_type: None,
            revision: None,
            has_key,
        }
    }

    #[test]
    fn only_a_keyless_server_entry_says_so_and_older_registries_read_as_keyed() {
        let mut r = Registry::new();
        r.server.push(server(&"A".repeat(40), true));
        let keyed = r.to_text();
        assert!(!keyed.contains("has_key"), "{keyed}");
        // A registry written before `has_key` existed reads as keyed.
        let back = Registry::parse(Path::new("r"), &keyed).unwrap();
        assert!(back.server[0].has_key);
        r.server.push(server(&"B".repeat(40), false));
        let text = r.to_text();
        assert_eq!(text.matches("has_key = false").count(), 1, "{text}");
        let back = Registry::parse(Path::new("r"), &text).unwrap();
        let keys: Vec<bool> = back.server.iter().map(|s| s.has_key).collect();
        assert_eq!(keys, vec![true, false]);
        assert_eq!(back.to_text(), text);
    }

    #[test]
    fn only_a_protected_entry_says_so_and_older_registries_read_as_unprotected() {
        let mut r = Registry::new();
        r.certificates.push(entry("a", &"A".repeat(40)));
        let plain = r.to_text();
        assert!(!plain.contains("protect"), "{plain}");
        // A registry written before `protect` existed reads as not protected.
        let back = Registry::parse(Path::new("r"), &plain).unwrap();
        assert!(!back.certificates[0].protect);
        let mut b = entry("b", &"B".repeat(40));
        b.protect = true;
        r.certificates.push(b);
        let text = r.to_text();
        assert_eq!(text.matches("protect = true").count(), 1, "{text}");
        let back = Registry::parse(Path::new("r"), &text).unwrap();
        let protected: Vec<bool> = back.certificates.iter().map(|c| c.protect).collect();
        assert_eq!(protected, vec![false, true]);
        assert_eq!(back.to_text(), text);
        // A hand edit of it is drift, named.
        let drift = describe_drift(&r, &Registry::parse(Path::new("r"), &plain).unwrap());
        assert!(
            drift
                .iter()
                .any(|d| d.contains("client 'b'") && d.contains("removed")),
            "{drift:?}"
        );
        let mut edited = r.clone();
        edited.certificates[1].protect = false;
        let drift = describe_drift(&r, &edited);
        assert_eq!(
            drift,
            vec![format!(
                "client 'b' ({}) was edited in the registry: protect true -> false",
                "B".repeat(40)
            )]
        );
    }

    /// A registry written before `disabled` existed reads as enabled and writes the same text
    /// again; only a disabled entry says so, and a hand edit of it is drift, named.
    #[test]
    fn entries_without_disabled_read_and_write_the_same_text() {
        let mut r = Registry::new();
        r.certificates.push(entry("a", &"A".repeat(40)));
        let old = r.to_text();
        assert!(!old.contains("disabled"), "{old}");
        let back = Registry::parse(Path::new("r"), &old).unwrap();
        assert!(!back.certificates[0].disabled);
        assert_eq!(back.to_text(), old);
        let mut b = entry("b", &"B".repeat(40));
        b.disabled = true;
        r.certificates.push(b);
        let text = r.to_text();
        assert_eq!(text.matches("disabled = true").count(), 1, "{text}");
        let back = Registry::parse(Path::new("r"), &text).unwrap();
        let disabled: Vec<bool> = back.certificates.iter().map(|c| c.disabled).collect();
        assert_eq!(disabled, vec![false, true]);
        assert_eq!(back.to_text(), text);
        let mut edited = r.clone();
        edited.certificates[1].disabled = false;
        assert_eq!(
            describe_drift(&r, &edited),
            vec![format!(
                "client 'b' ({}) was edited in the registry: disabled true -> false",
                "B".repeat(40)
            )]
        );
    }

    #[test]
    fn until_is_written_only_when_set_and_a_hand_edit_of_it_is_drift() {
        let mut r = Registry::new();
        r.certificates.push(entry("a", &"A".repeat(40)));
        let plain = r.to_text();
        assert!(!plain.contains("until"), "{plain}");
        // A registry written before `until` existed reads as having none.
        let back = Registry::parse(Path::new("r"), &plain).unwrap();
        assert_eq!(back.certificates[0].until, None);
        assert_eq!(back.to_text(), plain);
        let mut ends = r.clone();
        ends.certificates[0].until = Some(time::macros::datetime!(2026-05-01 16:00 UTC));
        let text = ends.to_text();
        assert!(text.contains("until = \"2026-05-01T16:00:00Z\""), "{text}");
        let back = Registry::parse(Path::new("r"), &text).unwrap();
        assert_eq!(back.certificates[0].until, ends.certificates[0].until);
        assert_eq!(back.to_text(), text);
        // Moving it by hand (access for longer) is drift, named.
        let drift = describe_drift(&ends, &r);
        assert_eq!(
            drift,
            vec![format!(
                "client 'a' ({}) was edited in the registry: until 2026-05-01T16:00:00Z -> none",
                "A".repeat(40)
            )]
        );
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
