//! The registry's text, made once per apply: the head (format, settings, server certificates)
//! and each `[[certificate]]` table rendered on their own, on every core from
//! [`PARALLEL_FROM`] certificates, and joined as TOML renders the whole registry (a test holds
//! the two equal). The commit checks each piece by reading it back, so that a registry the next
//! load would refuse is never written, without parsing 10,000 certificates as one document (at
//! that size the whole text's parse held 40 MiB and was the largest part of the commit).

use serde::{Deserialize, Serialize};

use super::{corrupt, CertEntry, Registry, RegistryError, REGISTRY_HEADER, SEAL_PREFIX};

use crate::model::per_certificate;

/// One certificate table, as the whole registry renders it.
#[derive(Serialize)]
struct PieceOut<'a> {
    certificate: [&'a CertEntry; 1],
}

/// One certificate table read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PieceIn {
    certificate: Vec<CertEntry>,
}

/// The registry's text: the body, then the seal line (SHA-256 of the body).
pub(crate) struct RegistryText {
    sealed: String,
    body_len: usize,
    seal: String,
}

impl RegistryText {
    /// The text without its seal line (what [`Registry::to_text`] returns).
    pub(crate) fn body(&self) -> &str {
        &self.sealed[..self.body_len]
    }

    /// The registry file's whole text.
    pub(crate) fn sealed(&self) -> &str {
        &self.sealed
    }

    /// SHA-256 of the body, lower-case hex.
    pub(crate) fn seal(&self) -> &str {
        &self.seal
    }

    /// The body alone, owned.
    pub(crate) fn into_body(mut self) -> String {
        self.sealed.truncate(self.body_len);
        self.sealed
    }
}

/// The head and the certificates, each rendered; the certificates in the order
/// [`Registry::normalize`] gives, read from a sorted list of references (no copy of the
/// registry).
struct Pieces<'a> {
    head: Registry,
    head_text: String,
    certificates: Vec<(&'a CertEntry, String)>,
}

// Rendering cannot fail for these types: every map has string keys, every optional field is
// skipped when empty, and every date came from X.509 or RFC 3339 text (years 0-9999, which
// RFC 3339 holds). An empty body would be written as an empty registry, so a failure must stop
// rather than be swallowed.
const RENDERS: &str = "a registry always serializes to TOML";

fn pieces(reg: &Registry) -> Pieces<'_> {
    let head = reg.head();
    let head_text = toml::to_string(&head).expect(RENDERS);
    let mut sorted: Vec<&CertEntry> = reg.certificates.iter().collect();
    sorted.sort_by(|a, b| Registry::normal_order(a, b));
    fn render<'e>(e: &&'e CertEntry) -> (&'e CertEntry, String) {
        let text = toml::to_string(&PieceOut { certificate: [*e] }).expect(RENDERS);
        (*e, text)
    }
    let certificates = per_certificate(&sorted, render);
    Pieces {
        head,
        head_text,
        certificates,
    }
}

impl Pieces<'_> {
    fn join(self) -> RegistryText {
        let len = REGISTRY_HEADER.len()
            + self.head_text.len()
            + self
                .certificates
                .iter()
                .map(|(_, t)| t.len() + 1)
                .sum::<usize>()
            + SEAL_PREFIX.len()
            + 65;
        let mut sealed = String::with_capacity(len);
        sealed.push_str(REGISTRY_HEADER);
        sealed.push_str(&self.head_text);
        for (_, text) in &self.certificates {
            // TOML puts a blank line before each table.
            sealed.push('\n');
            sealed.push_str(text);
        }
        let body_len = sealed.len();
        let seal = crate::pki::sha256_hex(sealed.as_bytes());
        sealed.push_str(SEAL_PREFIX);
        sealed.push_str(&seal);
        sealed.push('\n');
        RegistryText {
            sealed,
            body_len,
            seal,
        }
    }

    /// Each piece read back gives what was rendered.
    fn check(&self, path: &std::path::Path) -> Result<(), RegistryError> {
        let head: Registry = toml::from_str(&self.head_text).map_err(|e| {
            corrupt(
                path,
                format!("the registry's head would not read back: {e}"),
            )
        })?;
        if head != self.head {
            return Err(corrupt(path, "the registry's head reads back differently"));
        }
        let check = |(entry, text): &(&CertEntry, String)| -> Result<(), RegistryError> {
            let back: PieceIn = toml::from_str(text).map_err(|e| {
                corrupt(
                    path,
                    format!("entry {} would not read back: {e}", entry.thumbprint),
                )
            })?;
            if !matches!(back.certificate.as_slice(), [one] if one == *entry) {
                return Err(corrupt(
                    path,
                    format!("entry {} reads back differently", entry.thumbprint),
                ));
            }
            Ok(())
        };
        // The first refusal in registry order, whichever thread found it.
        per_certificate(&self.certificates, check)
            .into_iter()
            .collect()
    }
}

impl Registry {
    /// The text form with its seal, rendered once.
    pub(crate) fn render(&self) -> RegistryText {
        pieces(self).join()
    }

    /// The text form with its seal, refused when the next load would not read it back as this
    /// registry: each piece read back equal, and the checks of [`Registry::parse`] (no
    /// thumbprint twice, every key valid). `path` names the registry file in a refusal.
    pub(crate) fn render_checked(
        &self,
        path: &std::path::Path,
    ) -> Result<RegistryText, RegistryError> {
        self.check_entries(path)?;
        let pieces = pieces(self);
        pieces.check(path)?;
        Ok(pieces.join())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::super::{AppliedSettings, ServerEntry, StoreRecord};
    use super::*;
    use crate::model::{Access, Clearance, KeySpec, Origin, PfxProfile};

    /// The registry as one TOML document: what the pieces must join to.
    fn whole(reg: &Registry) -> String {
        let mut r = reg.clone();
        r.normalize();
        format!("{REGISTRY_HEADER}{}", toml::to_string(&r).unwrap())
    }

    fn thumb(n: u64) -> String {
        format!("{n:040X}")
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn server() -> ServerEntry {
        ServerEntry {
            name: "cluster.example.com".into(),
            thumbprint: thumb(1).into(),
            public_key_pinning_hash: "p=".into(),
            dns: vec!["a.example.com".into(), "b.example.com".into()],
            not_before: at(0),
            not_after: at(86_400),
            source: Origin::Generated,
            key_type: Some(KeySpec::EcP256),
            revision: Some("abc".into()),
            has_key: false,
        }
    }

    prop_compose! {
        fn arb_entry()(
            key in "[a-z][a-z0-9_-]{0,6}",
            name in any::<String>(),
            n in 2u64..1_000_000,
            dbs in proptest::collection::btree_map(any::<String>(), 0u8..3, 0..3),
            flags in any::<(bool, bool, bool, bool, bool)>(),
            times in (0i64..4_000_000_000, 0i64..4_000_000_000, 0u32..1_000_000_000),
            words in (any::<String>(), any::<String>(), any::<String>()),
        ) -> CertEntry {
            let (protect, disabled, retiring, uploaded, legacy) = flags;
            let (a, b, nanos) = times;
            let access = |v: u8| match v { 0 => Access::Read, 1 => Access::ReadWrite, _ => Access::Admin };
            CertEntry {
                name,
                public_key_pinning_hash: words.0.clone(),
                clearance: if uploaded { Clearance::Operator } else { Clearance::ValidUser },
                protect,
                disabled,
                until: retiring.then(|| at(b).replace_nanosecond(nanos).unwrap()),
                not_before: at(a),
                not_after: at(b),
                source: if uploaded { Origin::Uploaded } else { Origin::Generated },
                key_type: (!uploaded).then_some(KeySpec::Rsa4096),
                collection_secondaries: if uploaded { vec![thumb(n + 1)] } else { Vec::new() },
                retire_after: retiring.then(|| at(a)),
                revision: Some(words.1.clone()).filter(|r| !r.is_empty()),
                permissions: dbs.into_iter().map(|(d, v)| (d, access(v))).collect(),
                pfx: if legacy { PfxProfile::Legacy } else { PfxProfile::Modern },
                bundle_password: Some(words.2.clone()),
                subject: uploaded.then(|| "CN=x, O=\"y\"\n".to_string()),
                ..CertEntry::fixture(&key, thumb(n))
            }
        }
    }

    proptest! {
        #[test]
        fn the_pieces_join_to_the_whole_document_and_read_back(
            entries in proptest::collection::vec(arb_entry(), 0..12),
            with_server in any::<bool>(),
            with_settings in any::<bool>(),
        ) {
            let mut reg = Registry::new();
            reg.certificates = entries;
            if with_server {
                reg.server.push(server());
                reg.applied_revision = Some("main@1 \"dirty\"".into());
            }
            if with_settings {
                reg.settings = Some(AppliedSettings {
                    store: Some(StoreRecord { path: "store".into(), prune: true, max_deletions: 5 }),
                    ..AppliedSettings::default()
                });
            }
            let text = reg.render();
            prop_assert_eq!(text.body(), whole(&reg));
            prop_assert_eq!(text.seal(), crate::pki::sha256_hex(text.body().as_bytes()));
            prop_assert_eq!(
                text.sealed(),
                format!("{}{SEAL_PREFIX}{}\n", text.body(), text.seal())
            );
            let mut sorted = reg.clone();
            sorted.normalize();
            let unique = {
                let mut t: Vec<_> = reg.certificates.iter().map(|c| &c.thumbprint).collect();
                t.sort();
                t.dedup();
                t.len() == reg.certificates.len()
            };
            // What the check lets through, the next load reads back as this registry.
            match reg.render_checked(Path::new("registry.toml")) {
                Ok(checked) => {
                    prop_assert!(unique);
                    prop_assert_eq!(checked.body(), text.body());
                    let back = Registry::parse(Path::new("registry.toml"), text.sealed()).unwrap();
                    prop_assert_eq!(back, sorted);
                }
                Err(e) => prop_assert!(!unique, "refused: {}", e.message),
            }
        }
    }

    #[test]
    fn a_piece_that_reads_back_differently_is_refused() {
        let mut reg = Registry::new();
        // A placeholder, as a projected registry holds: never a registered thumbprint.
        reg.certificates
            .push(CertEntry::fixture("a", "(known after apply)"));
        let e = reg.render_checked(Path::new("r")).err().unwrap();
        assert!(e.message.contains("(known after apply)"), "{}", e.message);
        // A key the loader refuses.
        let mut reg = Registry::new();
        reg.certificates.push(CertEntry::fixture("../a", thumb(7)));
        let e = reg.render_checked(Path::new("r")).err().unwrap();
        assert!(e.message.contains("invalid key"), "{}", e.message);
    }
}
