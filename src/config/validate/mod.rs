//! Validation of the raw certs.toml into a [`Declared`], section by section; each error names
//! the key and its line.

mod clients;
mod cluster;
mod fields;
mod server;
mod until;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::diagnostics::Checker;
use super::raw::{RawConfig, RawDefaults, RawStore};
use super::{Declared, StoreSettings};
use crate::model::{KeySpec, Period, PfxProfile, RenewBefore};
use clients::{validate_client, ClientContext, Names};
use cluster::{validate_cluster, ClusterContext};
pub(super) use fields::{always_due, check_store_path};
use fields::{period_field, renew_field};
use server::validate_server;

pub(super) fn validate(ck: &mut Checker<'_>, raw: RawConfig, file: &Path, base: &Path) -> Declared {
    if *raw.version.get_ref() != 1 {
        ck.error_at(
            Some(&raw.version.span()),
            "version",
            format!(
                "format version {} is not supported; this ravencert reads version = 1",
                raw.version.get_ref()
            ),
        );
    }
    let store = validate_store(ck, raw.store.as_ref(), base);
    let defaults = validate_defaults(ck, raw.defaults.as_ref().map(|d| d.get_ref()));
    let server = raw.server.as_ref().and_then(|s| {
        validate_server(
            ck,
            s,
            base,
            defaults.renew_before,
            defaults.renew_span.clone(),
        )
    });
    let mut warnings = Vec::new();
    let mut clients = BTreeMap::new();
    let mut names = Names::default();
    let ctx = ClientContext {
        defaults: &defaults,
        base,
        has_server: raw.server.is_some(),
    };
    for (key, client) in &raw.clients {
        if let Some(c) = validate_client(ck, key, client, &ctx, &mut names, &mut warnings) {
            clients.insert(c.key.clone(), c);
        }
    }
    let cluster = raw.cluster.as_ref().and_then(|c| {
        let ctx = ClusterContext {
            clients: &clients,
            base,
            has_server: raw.server.is_some(),
        };
        validate_cluster(ck, c, &ctx)
    });
    if raw.cluster.is_none() {
        for c in clients.values().filter(|c| c.disabled) {
            warnings.push(format!(
                "clients.{}: disabled only records the suspension here: without [cluster], ravencert changes no registration and the certificate stays valid",
                c.key
            ));
        }
    }
    Declared {
        config_path: file.to_path_buf(),
        store,
        server,
        clients,
        cluster,
        warnings,
        positions: Default::default(),
        renew_before: defaults.renew_before,
        policy: None,
        policy_file: None,
    }
}

fn validate_store(ck: &mut Checker<'_>, s: Option<&RawStore>, base: &Path) -> StoreSettings {
    let max_deletions = match s.and_then(|s| s.max_deletions.as_ref()) {
        None => 5,
        Some(m) => {
            ck.mark("store.max_deletions".into(), &m.span());
            u32::try_from(*m.get_ref()).unwrap_or_else(|_| {
                ck.error_at(
                    Some(&m.span()),
                    "store.max_deletions",
                    "must be a whole number from 0 (no limit) upwards".into(),
                );
                5
            })
        }
    };
    let path = s.and_then(|s| s.path.as_ref());
    if let Some(p) = path {
        ck.mark("store.path".into(), &p.span());
        if let Err(e) = check_store_path(p.get_ref()) {
            ck.error_at(Some(&p.span()), "store.path", e);
        }
    }
    let declared_path = path.map_or("store", |p| p.get_ref().as_str()).to_string();
    StoreSettings {
        path: base.join(&declared_path),
        declared_path,
        prune: s.is_some_and(|s| s.prune),
        max_deletions,
    }
}

/// `[defaults]`, with every value filled in, and where renew_before was written (the server
/// certificate's errors point there).
struct Defaults {
    key: KeySpec,
    validity: Period,
    renew_before: RenewBefore,
    renew_span: Option<Range<usize>>,
    pfx: PfxProfile,
    overlap: Period,
}

fn validate_defaults(ck: &mut Checker<'_>, d: Option<&RawDefaults>) -> Defaults {
    let validity_value = d.and_then(|d| d.validity.as_ref());
    let renew_value = d.and_then(|d| d.renew_before.as_ref());
    let validity =
        period_field(ck, validity_value, "defaults.validity").unwrap_or(Period::days(5 * 365));
    let renew_before = renew_field(ck, renew_value, "defaults.renew_before")
        .unwrap_or(RenewBefore::Period(Period::days(30)));
    let overlap = period_field(ck, d.and_then(|d| d.overlap.as_ref()), "defaults.overlap")
        .unwrap_or(Period::days(0));
    let renew_span = renew_value.map(|r| r.span());
    if let Some(e) = always_due(renew_before, validity) {
        let (span, key) = match (&renew_span, validity_value.map(|v| v.span())) {
            (Some(s), _) => (s.clone(), "defaults.renew_before"),
            (None, Some(s)) => (s, "defaults.validity"),
            (None, None) => (0..0, "defaults"),
        };
        ck.error_at(
            Some(&span),
            key,
            format!("{e} (for every client that sets neither)"),
        );
    }
    Defaults {
        key: d.and_then(|d| d.key).unwrap_or(KeySpec::Rsa4096),
        validity,
        renew_before,
        renew_span,
        pfx: d.and_then(|d| d.pfx).unwrap_or(PfxProfile::Modern),
        overlap,
    }
}
