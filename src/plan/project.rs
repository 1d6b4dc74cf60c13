//! The registry as it will be after a plan ([`project`], for `plan --diff`), the store assumed
//! by a review plan ([`assumed_store`], for `plan --base`), and the registry side of one change
//! ([`mutate`]), which the apply uses too, so that what the diff shows is what the apply writes.

use time::OffsetDateTime;

use super::{Action, Change, Plan, Target};
use crate::config::{ClientDesired, ClientSpec, Desired, GenerateSpec, ServerSpec};
use crate::model::{EntryThumbprint, InstalledFile, Origin, Uploaded, BACKDATING, NO_PASSWORD};
use crate::registry::{Actual, CertEntry, Registry, ServerEntry};

/// What a change turns into in the registry: the entries the apply made (or placeholders).
pub(crate) enum NewCert {
    /// The server certificate(s).
    Server(Vec<ServerEntry>),
    /// A client's certificate, or an uploaded collection.
    Client(Vec<CertEntry>),
}

/// A generated server certificate's entry as the plan declares it, issued at `now`.
/// `thumbprint` and `pinning` are the real ones in an apply, placeholders in a projection.
pub(crate) fn generated_server_entry(
    server: &ServerSpec,
    now: OffsetDateTime,
    thumbprint: EntryThumbprint,
    pinning: String,
) -> Option<ServerEntry> {
    let ServerSpec::Generate {
        name,
        dns,
        key,
        validity,
        ..
    } = server
    else {
        return None;
    };
    Some(ServerEntry {
        name: name.clone(),
        thumbprint,
        public_key_pinning_hash: pinning,
        dns: dns.clone(),
        not_before: now - BACKDATING.as_duration(),
        not_after: now + validity.as_duration(),
        source: Origin::Generated,
        key_type: Some(*key),
        revision: None,
        has_key: true,
    })
}

/// A generated client's entry as certs.toml declares it, issued at `now`, with no bundle
/// password recorded. `thumbprint` and `pinning` as for [`generated_server_entry`].
pub(crate) fn generated_client_entry(
    client: &ClientDesired,
    spec: &GenerateSpec,
    now: OffsetDateTime,
    thumbprint: EntryThumbprint,
    pinning: String,
) -> CertEntry {
    CertEntry {
        key: client.key.clone(),
        name: client.name.clone(),
        thumbprint,
        public_key_pinning_hash: pinning,
        clearance: client.clearance,
        protect: client.protect,
        until: client.until,
        disabled: client.disabled,
        not_before: now - BACKDATING.as_duration(),
        not_after: super::until::issue_end(now, spec.validity, client.until),
        source: Origin::Generated,
        key_type: Some(spec.key),
        collection_primary: None,
        collection_secondaries: vec![],
        retire_after: None,
        revision: None,
        permissions: client.permissions.clone(),
        pfx: spec.pfx,
        bundle_password: None,
        subject: None,
    }
}

/// Registry entries for an uploaded certificate or collection: the primary lists its
/// secondaries, each secondary points at the primary; all share name, clearance, permissions.
pub(crate) fn upload_entries(
    client: &ClientDesired,
    certs: &[Uploaded],
    revision: Option<String>,
) -> Vec<CertEntry> {
    let primary = certs.first().map(|c| c.info.thumbprint.to_string());
    let secondaries: Vec<String> = certs
        .iter()
        .skip(1)
        .map(|s| s.info.thumbprint.to_string())
        .collect();
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| CertEntry {
            key: client.key.clone(),
            name: client.name.clone(),
            thumbprint: c.info.thumbprint.clone().into(),
            public_key_pinning_hash: c.info.public_key_pinning_hash.clone(),
            clearance: client.clearance,
            protect: client.protect,
            until: client.until,
            disabled: client.disabled,
            not_before: c.info.not_before,
            not_after: c.info.not_after,
            source: Origin::Uploaded,
            key_type: c.info.key_spec,
            collection_primary: if i == 0 { None } else { primary.clone() },
            collection_secondaries: if i == 0 {
                secondaries.clone()
            } else {
                Vec::new()
            },
            retire_after: None,
            revision: revision.clone(),
            permissions: client.permissions.clone(),
            pfx: Default::default(),
            bundle_password: None,
            subject: Some(c.info.subject.clone()),
        })
        .collect()
}

/// Registry entries for the nodes' own certificates; `keyed` says, in the same order, which
/// came with their private keys.
pub(crate) fn node_entries(
    nodes: &[Uploaded],
    keyed: &[bool],
    revision: Option<String>,
) -> Vec<ServerEntry> {
    nodes
        .iter()
        .zip(keyed)
        .map(|(n, keyed)| ServerEntry {
            name: n
                .info
                .common_name
                .clone()
                .unwrap_or_else(|| n.info.subject.clone()),
            thumbprint: n.info.thumbprint.clone().into(),
            public_key_pinning_hash: n.info.public_key_pinning_hash.clone(),
            dns: Vec::new(),
            not_before: n.info.not_before,
            not_after: n.info.not_after,
            source: Origin::Uploaded,
            key_type: n.info.key_spec,
            revision: revision.clone(),
            has_key: *keyed,
        })
        .collect()
}

/// The uploads read for a client (none when its file was not read).
fn uploads<'d>(desired: &'d Desired, key: &str) -> &'d [Uploaded] {
    desired.files.uploads.get(key).map_or(&[][..], |v| v)
}

/// Applies the registry side of one change: `new` holds the entries it registers. Shared by
/// the apply and the projection, so that what the diff shows is what the apply writes.
pub(crate) fn mutate(
    reg: &mut Registry,
    change: &Change,
    new: Option<NewCert>,
    desired: &Desired,
    now: OffsetDateTime,
) {
    // Only this key's entries: a certificate moving between keys is deleted from the old one.
    let mine = |e: &CertEntry| change.thumbprints.contains(&e.thumbprint) && e.key == change.key;
    match (change.target, change.action) {
        (Target::Server, _) => {
            if change.action == Action::Replace || change.action == Action::Delete {
                reg.server
                    .retain(|s| !change.thumbprints.contains(&s.thumbprint));
            }
            if let Some(NewCert::Server(s)) = new {
                reg.server.extend(s);
            }
        }
        (Target::Client, Action::Update) => {
            if let Some(c) = desired.declared.clients.get(&change.key) {
                for e in reg.certificates.iter_mut().filter(|e| mine(e)) {
                    e.name = c.name.clone();
                    e.clearance = c.clearance;
                    e.protect = c.protect;
                    e.until = c.until;
                    e.disabled = c.disabled;
                    e.permissions = c.permissions.clone();
                    if let ClientSpec::Generate(g) = &c.source {
                        e.pfx = g.pfx;
                    }
                }
            }
        }
        (Target::Client, Action::Delete) => {
            reg.certificates.retain(|e| !mine(e));
        }
        (Target::Client, Action::Replace) => {
            let overlap = desired
                .declared
                .clients
                .get(&change.key)
                .and_then(|c| c.overlap);
            let client = desired.declared.clients.get(&change.key);
            let until = client.and_then(|c| c.until);
            // Gone now: the replaced certificate when there is no overlap, and any of the
            // client's certificates that outlives `until` (the TLS layer would still take it).
            reg.certificates.retain(|e| {
                !(mine(e)
                    && ((overlap.is_none() && e.retire_after.is_none())
                        || until.is_some_and(|u| e.not_after > u)))
            });
            // The rest retire after the overlap, never past `until`; one already retiring keeps
            // its earlier end. They follow the client: suspended with it, ending with it.
            let cap = |t: OffsetDateTime| until.map_or(t, |u| t.min(u));
            let retire = overlap.map(|o| cap(now + o.as_duration()));
            for e in reg.certificates.iter_mut().filter(|e| mine(e)) {
                e.retire_after = match (e.retire_after, retire) {
                    (Some(r), Some(n)) => Some(cap(r.min(n))),
                    (Some(r), None) => Some(cap(r)),
                    (None, n) => n,
                };
                if let Some(c) = client {
                    e.until = c.until;
                    e.disabled = c.disabled;
                }
            }
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.extend(e);
            }
        }
        (Target::Client, Action::Create) => {
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.extend(e);
            }
        }
        _ => {}
    }
}

/// The registry as it will be after the plan, with placeholders for what only the apply knows.
pub fn project(reg: &Registry, plan: &Plan, desired: &Desired, now: OffsetDateTime) -> Registry {
    let mut out = reg.clone();
    // Every apply records the settings it ran with.
    out.settings = Some(super::settings_of(&desired.declared));
    // What stands for the values only the apply knows; never a thumbprint, so the renderers
    // can tell it is not one.
    let unknown = "(known after apply)";
    for change in &plan.changes {
        let new = match (change.target, change.action) {
            (Target::Server, Action::Create | Action::Replace) => desired
                .declared
                .server
                .as_ref()
                .map(|s| NewCert::Server(server_entries(&s.source, desired, now, unknown))),
            (Target::Client, Action::Create | Action::Replace) => {
                desired.declared.clients.get(&change.key).map(|c| {
                    let placeholder = EntryThumbprint::pending(unknown);
                    NewCert::Client(client_entries(c, desired, now, placeholder, unknown))
                })
            }
            _ => None,
        };
        mutate(&mut out, change, new, desired, now);
    }
    out
}

/// The server entries certs.toml declares: the nodes' own, or a generated one with `unknown`
/// for its thumbprint and pinning hash. A node file a review did not read stands as an entry
/// with `unknown` values, in its place.
fn server_entries(
    server: &ServerSpec,
    desired: &Desired,
    now: OffsetDateTime,
    unknown: &str,
) -> Vec<ServerEntry> {
    match server {
        ServerSpec::Imported(refs) => {
            let mut read =
                node_entries(&desired.files.nodes, &desired.files.nodes_keyed, None).into_iter();
            (0..refs.len())
                .filter_map(|i| match super::unread(desired, &node_key(i)) {
                    Some(_) => Some(unread_node_entry(i, now, unknown)),
                    None => read.next(),
                })
                .collect()
        }
        ServerSpec::Generate { .. } => generated_server_entry(
            server,
            now,
            EntryThumbprint::pending(unknown),
            unknown.into(),
        )
        .into_iter()
        .collect(),
    }
}

/// The certs.toml key of the `i`th node file.
pub(super) fn node_key(i: usize) -> String {
    format!("server.certificates[{i}].path")
}

/// A node certificate a review did not read: `unknown` values (never a thumbprint, so never
/// shown as one), unique per node.
fn unread_node_entry(i: usize, now: OffsetDateTime, unknown: &str) -> ServerEntry {
    ServerEntry {
        name: format!("server.certificates[{i}]"),
        thumbprint: EntryThumbprint::pending(format!("{unknown} server.certificates[{i}]")),
        public_key_pinning_hash: unknown.into(),
        dns: Vec::new(),
        not_before: now - BACKDATING.as_duration(),
        not_after: now + BACKDATING.as_duration(),
        source: Origin::Uploaded,
        key_type: None,
        revision: None,
        has_key: true,
    }
}

/// An uploaded client whose file a review did not read: its declared fields, `thumbprint`
/// and `unknown` for what only the file says.
fn unread_upload_entry(
    client: &ClientDesired,
    now: OffsetDateTime,
    thumbprint: EntryThumbprint,
    unknown: &str,
) -> CertEntry {
    CertEntry {
        key: client.key.clone(),
        name: client.name.clone(),
        thumbprint,
        public_key_pinning_hash: unknown.into(),
        clearance: client.clearance,
        not_before: now - BACKDATING.as_duration(),
        not_after: now + BACKDATING.as_duration(),
        source: Origin::Uploaded,
        key_type: None,
        collection_primary: None,
        collection_secondaries: vec![],
        retire_after: None,
        revision: None,
        permissions: client.permissions.clone(),
        pfx: Default::default(),
        bundle_password: None,
        subject: None,
        protect: client.protect,
        until: client.until,
        disabled: client.disabled,
    }
}

/// A client's entries as certs.toml declares it: the uploaded ones, or a generated one with
/// `thumbprint` (unique per key where it must be) and the `unknown` pinning hash.
fn client_entries(
    client: &ClientDesired,
    desired: &Desired,
    now: OffsetDateTime,
    thumbprint: EntryThumbprint,
    unknown: &str,
) -> Vec<CertEntry> {
    match &client.source {
        ClientSpec::Generate(g) => vec![generated_client_entry(
            client,
            g,
            now,
            thumbprint,
            unknown.into(),
        )],
        ClientSpec::Upload(_) => {
            let key = format!("clients.{}.upload", client.key);
            match super::unread(desired, &key) {
                Some(_) => vec![unread_upload_entry(client, now, thumbprint, unknown)],
                None => upload_entries(client, uploads(desired, &client.key), None),
            }
        }
    }
}

/// The store as it would be had `base` been applied: for `plan --base`, which needs no store.
pub(crate) fn assumed_store(base: &Desired, now: OffsetDateTime) -> Actual {
    // Thumbprints and dates of a store nobody reads here are not known: placeholders that are
    // never shown (the plan gives null, the diff "(known after apply)"). The dates follow the
    // declared validity so that no re-issue is planned from them.
    let assumed = "(as registered)";
    let mut reg = Registry::new();
    reg.settings = Some(super::settings_of(&base.declared));
    if let Some(server) = &base.declared.server {
        reg.server = server_entries(&server.source, base, now, assumed);
    }
    // BASE's apply has removed a client whose until has passed (or never issued it).
    for c in base
        .declared
        .clients
        .values()
        .filter(|c| !super::until::ended(c.until, now))
    {
        // Unique per key: the planner and the registry tell entries apart by thumbprint.
        let thumbprint = EntryThumbprint::pending(format!("{assumed} {}", c.key));
        reg.certificates
            .extend(client_entries(c, base, now, thumbprint, assumed));
    }
    // The bundles as BASE declares their passwords: none, or one (whose value is not known).
    for e in &mut reg.certificates {
        if let Some(ClientSpec::Generate(g)) = base.declared.clients.get(&e.key).map(|c| &c.source)
        {
            let declared = g
                .password
                .as_ref()
                .map_or(NO_PASSWORD, |_| "(declared at BASE)");
            e.bundle_password = Some(declared.to_string());
        }
    }
    // The install file as BASE's apply left it: current, in BASE's profile.
    let install = Some(match (base.declared.install(), reg.server.first()) {
        (Some(i), Some(s)) => InstalledFile::Holds {
            thumbprint: Some(s.thumbprint.clone()),
            profile: Some(i.pfx),
        },
        _ => InstalledFile::Missing,
    });
    let mut export: Vec<EntryThumbprint> =
        reg.server.iter().map(|s| s.thumbprint.clone()).collect();
    export.sort();
    Actual {
        install,
        bundles_ok: base
            .declared
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.source, ClientSpec::Generate(_)))
            .map(|(k, _)| k.clone())
            .collect(),
        export_thumbprints: Some(export),
        registry: reg,
        exists: true,
        sealed: true,
        ..Actual::default()
    }
}
