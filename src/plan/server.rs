//! The server certificate(s) and the export that follows them.

use time::OffsetDateTime;

use super::{
    lifetime_reasons, list, server_fields, Action, Change, Fields, Issued, Lifetime, NotRead,
    PlanError, Planner, Target, SERVER_KEY,
};
use crate::config::ServerSpec;
use crate::model::{EntryThumbprint, InstalledFile, SinceBase, Thumbprint, UnreadFile};
use crate::model::{KeySpec, Period, RenewBefore};
use crate::registry::ServerEntry;

/// What `[server] generate = true` declares, as the planner compares it.
struct GeneratedServer<'s> {
    name: &'s str,
    dns: &'s [String],
    key: KeySpec,
    validity: Period,
    renew_before: RenewBefore,
}

impl Planner<'_> {
    /// The server certificate's change, if any: generated, or the nodes' own imported ones.
    pub(super) fn server(&self) -> Result<Option<Change>, PlanError> {
        match self.desired.declared.server.as_ref().map(|s| &s.source) {
            Some(ServerSpec::Generate {
                name,
                dns,
                key,
                validity,
                renew_before,
            }) => Ok(self.generated_server(&GeneratedServer {
                name,
                dns,
                key: *key,
                validity: *validity,
                renew_before: *renew_before,
            })),
            Some(ServerSpec::Imported(_)) => self.imported_server(),
            None => Ok(None),
        }
    }

    fn generated_server(&self, spec: &GeneratedServer) -> Option<Change> {
        let reg = &self.actual.registry;
        let after = Fields {
            name: Some(spec.name.to_string()),
            ..Fields::default()
        };
        let Some(current) = reg.server.first() else {
            return Some(
                Change::new(
                    Action::Create,
                    Target::Server,
                    spec.name,
                    "no server certificate registered".into(),
                )
                .with_fields(None, Some(after)),
            );
        };
        let reasons = server_reasons(
            current,
            spec,
            self.opts.replace.contains(SERVER_KEY),
            self.now,
        );
        if reasons.is_empty() {
            return None;
        }
        Some(
            Change::new(
                Action::Replace,
                Target::Server,
                spec.name,
                reasons.join("; "),
            )
            .with_fields(Some(server_fields(current)), Some(after))
            .with_thumbprints(reg.server.iter().map(|s| s.thumbprint.clone()).collect()),
        )
    }

    /// The nodes' own certificates: registered as they are; a changed file is a replace that
    /// names the old and new thumbprints.
    fn imported_server(&self) -> Result<Option<Change>, PlanError> {
        if self.opts.replace.contains(SERVER_KEY) {
            return Err(PlanError::ReplaceImportedServer);
        }
        let unread: Vec<&UnreadFile> = self
            .desired
            .files
            .unread
            .iter()
            .filter(|u| u.key.starts_with("server.certificates["))
            .collect();
        if !unread.is_empty() {
            return Ok(self.unread_server(&unread));
        }
        let nodes = &self.desired.files.nodes;
        let Some(first) = nodes.first() else {
            return Ok(None);
        };
        let registered = &self.actual.registry.server;
        let want: Vec<Thumbprint> = nodes.iter().map(|n| n.info.thumbprint.clone()).collect();
        let have: Vec<EntryThumbprint> = registered.iter().map(|s| s.thumbprint.clone()).collect();
        let keyed = &self.desired.files.nodes_keyed;
        let had_key: Vec<bool> = registered.iter().map(|s| s.has_key).collect();
        let key = first
            .info
            .common_name
            .clone()
            .unwrap_or_else(|| SERVER_KEY.to_string());
        let after = Fields {
            thumbprint: Some(first.info.thumbprint.clone()),
            name: Some(key.clone()),
            not_after: Some(first.info.not_after),
            ..Fields::default()
        };
        let Some(current) = registered.first() else {
            let reason = format!(
                "no server certificate registered ({} node certificate{})",
                want.len(),
                if want.len() == 1 { "" } else { "s" }
            );
            return Ok(Some(
                Change::new(Action::Create, Target::Server, key, reason)
                    .with_fields(None, Some(after)),
            ));
        };
        let reason = if want != have {
            format!(
                "node certificates changed: {} -> {}",
                list(&have),
                list(&want)
            )
        } else if *keyed != had_key {
            // The same certificates, a private key added or dropped: the store's key files follow.
            let with_key: Vec<Thumbprint> = want
                .iter()
                .zip(keyed)
                .filter(|(_, k)| **k)
                .map(|(t, _)| t.clone())
                .collect();
            format!(
                "private keys of the node certificates changed: now held for {}",
                if with_key.is_empty() {
                    "none".to_string()
                } else {
                    list(&with_key)
                }
            )
        } else {
            return Ok(None);
        };
        Ok(Some(
            Change::new(Action::Replace, Target::Server, key, reason)
                .with_fields(Some(server_fields(current)), Some(after))
                .with_thumbprints(have),
        ))
    }

    /// The nodes' certificates when a review did not read some of their files: unchanged when
    /// every unread file is the same as at BASE (or is not compared: `plan --rev`) and the
    /// read ones are registered; otherwise a create or a replace that says which files it could
    /// not read. Their thumbprints are not known, so none is shown.
    fn unread_server(&self, unread: &[&UnreadFile]) -> Option<Change> {
        let registered = &self.actual.registry.server;
        let declared = match self.desired.declared.server.as_ref().map(|s| &s.source) {
            Some(ServerSpec::Imported(refs)) => refs.len(),
            _ => 0,
        };
        let nodes = &self.desired.files.nodes;
        let key = registered
            .first()
            .filter(|s| s.thumbprint.known().is_some())
            .map_or(SERVER_KEY.to_string(), |s| s.name.clone());
        let after = Fields {
            name: Some(key.clone()),
            ..Fields::default()
        };
        let not_read = unread
            .iter()
            .map(|u| u.key.trim_end_matches(".path"))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(current) = registered.first() else {
            let reason = format!(
                "no server certificate registered ({declared} node certificate{}; not read in review: {not_read})",
                if declared == 1 { "" } else { "s" }
            );
            return Some(
                Change::new(Action::Create, Target::Server, key, reason)
                    .with_fields(None, Some(after)),
            );
        };
        let kept = unread
            .iter()
            .all(|u| matches!(u.since_base, SinceBase::Same | SinceBase::Unknown));
        let read_registered = nodes
            .iter()
            .all(|n| registered.iter().any(|s| s.thumbprint == n.info.thumbprint));
        if kept && read_registered && registered.len() == declared {
            return None;
        }
        let reason = format!(
            "node certificates changed; not read in review: {not_read}, so the new thumbprints are not shown"
        );
        Some(
            Change::new(Action::Replace, Target::Server, key, reason)
                .with_fields(Some(server_fields(current)), Some(after))
                .with_thumbprints(registered.iter().map(|s| s.thumbprint.clone()).collect()),
        )
    }

    /// Writing the export again when the server certificate changes, or the file is missing or
    /// holds other certificates.
    pub(super) fn export(&self, server_changes: bool) -> Option<Change> {
        let path = self.desired.declared.server.as_ref()?.export.as_ref()?;
        let mut current: Vec<EntryThumbprint> = self
            .actual
            .registry
            .server
            .iter()
            .map(|s| s.thumbprint.clone())
            .collect();
        current.sort();
        let reason = if server_changes {
            "the server certificate changes".to_string()
        } else {
            match &self.actual.export_thumbprints {
                None => format!("{} is missing or unreadable", path.display()),
                Some(t) if *t != current => format!(
                    "{} does not hold the current server certificate",
                    path.display()
                ),
                Some(_) => return None,
            }
        };
        Some(Change::export(path, reason))
    }
}

impl Planner<'_> {
    /// Writing the `[server] install` file again when the server certificate changes, or the
    /// file is missing, does not open with the declared password, holds another certificate
    /// or is in another profile. Not looked at (no secrets at hand): nothing planned.
    pub(super) fn install(&mut self, server_changes: bool) -> Option<Change> {
        let spec = self.desired.declared.install()?;
        let path = spec.path.display();
        let reason = if server_changes {
            "the server certificate changes".to_string()
        } else {
            let current = self.actual.registry.server.first()?;
            let Some(installed) = self.actual.install.as_ref() else {
                if self.opts.review {
                    self.not_read.push(NotRead {
                        key: "server.install.path".into(),
                        path: Some(spec.path.display().to_string()),
                        why: "it holds the server's private key, which a review plan does not read"
                            .into(),
                        effect: "whether it must be written again is not shown (apply checks it)"
                            .into(),
                    });
                }
                return None;
            };
            match installed {
                InstalledFile::Missing => format!("{path} is missing"),
                InstalledFile::Unreadable => format!(
                    "{path} does not open with the declared password (the password changed, or the file was altered)"
                ),
                InstalledFile::Holds { thumbprint, .. }
                    if thumbprint.as_ref() != Some(&current.thumbprint) =>
                {
                    format!(
                        "{path} does not hold the current server certificate {} with its key",
                        current.thumbprint
                    )
                }
                InstalledFile::Holds { profile, .. } if *profile != Some(spec.pfx) => {
                    let have = profile.map_or("unknown".to_string(), |p| p.to_string());
                    format!("pfx {have} -> {}", spec.pfx)
                }
                InstalledFile::Holds { .. } => return None,
            }
        };
        Some(Change::install(&spec.path, reason))
    }
}

/// Why the registered generated server certificate must be issued again (none: it stays).
fn server_reasons(
    current: &ServerEntry,
    spec: &GeneratedServer,
    replace: bool,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if replace {
        reasons.push("--replace server".to_string());
    }
    if current.name != spec.name {
        reasons.push(format!("name {} -> {}", current.name, spec.name));
    } else if current.dns != spec.dns {
        reasons.push(format!(
            "DNS names [{}] -> [{}]",
            current.dns.join(", "),
            spec.dns.join(", ")
        ));
    }
    reasons.extend(lifetime_reasons(
        Issued::from(current),
        Lifetime {
            key: spec.key,
            validity: spec.validity,
            renew_before: spec.renew_before,
            until: None,
        },
        now,
    ));
    reasons
}
