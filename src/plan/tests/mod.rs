//! The planner's unit tests: fixtures (a declared store, the store as applied) and the general
//! cases here; the themes in their own files.

use super::lifetime::validity_change;
use super::*;
use crate::config::{ClientSpec, Declared, GenerateSpec, ServerDesired, ServerSpec, StoreSettings};
pub(super) use crate::model::{KeySpec, Origin, Period, PfxProfile, RenewBefore, BACKDATING};
use crate::registry::{Registry, ServerEntry};
use std::path::PathBuf;
use time::macros::datetime;

mod disabled;
mod escalation;
mod policy;
mod protect;
mod until;

pub(super) const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn server() -> ServerDesired {
    ServerDesired {
        source: ServerSpec::Generate {
            name: "cluster.example.com".into(),
            dns: vec!["cluster.example.com".into()],
            key: KeySpec::EcP256,
            validity: Period::days(365),
            renew_before: RenewBefore::Period(Period::days(30)),
        },
        export: Some(PathBuf::from("/cfg/export.pfx")),
        install: None,
    }
}

fn gen() -> GenerateSpec {
    GenerateSpec {
        key: KeySpec::EcP256,
        validity: Period::days(365),
        renew_before: RenewBefore::Period(Period::days(30)),
        pfx: PfxProfile::Modern,
        password: None,
    }
}

pub(super) fn client(key: &str, clearance: Clearance, dbs: &[(&str, Access)]) -> ClientDesired {
    ClientDesired {
        key: key.into(),
        name: key.into(),
        clearance,
        permissions: dbs.iter().map(|(d, a)| (d.to_string(), *a)).collect(),
        protect: false,
        overlap: None,
        source: ClientSpec::Generate(gen()),
        until: None,
        disabled: false,
    }
}

/// `client(key, ..)` uploaded from `/cfg/trust/KEY.pem` instead of generated.
pub(super) fn upload(key: &str, clearance: Clearance, dbs: &[(&str, Access)]) -> ClientDesired {
    ClientDesired {
        source: ClientSpec::Upload(crate::config::FileRef {
            path: format!("/cfg/trust/{key}.pem").into(),
            password: None,
        }),
        ..client(key, clearance, dbs)
    }
}

/// What an uploaded file holds: the certificate `thumb(n)` of `holder` (`CN=HOLDER n`, issued
/// by `CN=HOLDER`), valid from a day before `NOW` to 300 days after.
pub(super) fn uploaded(holder: &str, n: u8) -> crate::model::Uploaded {
    crate::model::Uploaded {
        der: vec![n],
        info: crate::model::CertInfo {
            thumbprint: thumb(n),
            public_key_pinning_hash: "p".into(),
            subject: format!("CN={holder} {n}"),
            issuer: format!("CN={holder}"),
            common_name: None,
            not_before: NOW - time::Duration::days(1),
            not_after: NOW + time::Duration::days(300),
            key_spec: None,
        },
    }
}

pub(super) fn desired(clients: Vec<ClientDesired>, prune: bool) -> Desired {
    Desired {
        declared: Declared {
            config_path: "/cfg/certs.toml".into(),
            store: StoreSettings {
                path: "/cfg/store".into(),
                declared_path: "store".into(),
                prune,
                max_deletions: 5,
            },
            server: Some(server()),
            clients: clients.into_iter().map(|c| (c.key.clone(), c)).collect(),
            cluster: None,
            warnings: vec![],
            positions: Default::default(),
            renew_before: RenewBefore::Period(Period::days(30)),
            policy: None,
            policy_file: None,
        },
        files: Default::default(),
        policy_in_force: None,
    }
}

fn thumb(n: u8) -> Thumbprint {
    Thumbprint::parse(&format!("{:040X}", n)).unwrap()
}

/// The store as it would be after applying `d` at `NOW - 10 days`.
pub(super) fn applied(d: &Desired) -> Actual {
    let mut reg = Registry::new();
    reg.server.push(ServerEntry {
        name: "cluster.example.com".into(),
        thumbprint: thumb(200).into(),
        public_key_pinning_hash: "p".into(),
        dns: vec!["cluster.example.com".into()],
        not_before: NOW - time::Duration::days(17),
        not_after: NOW + time::Duration::days(355),
        source: Origin::Generated,
        key_type: Some(KeySpec::EcP256),
        revision: None,
        has_key: true,
    });
    for (i, c) in d.declared.clients.values().enumerate() {
        reg.certificates.push(CertEntry {
            name: c.name.clone(),
            clearance: c.clearance,
            protect: c.protect,
            until: c.until,
            disabled: c.disabled,
            not_before: NOW - time::Duration::days(17),
            not_after: NOW + time::Duration::days(355),
            key_type: Some(KeySpec::EcP256),
            permissions: c.permissions.clone(),
            ..CertEntry::fixture(&c.key, thumb(i as u8 + 1))
        });
    }
    Actual {
        bundles_ok: d.declared.clients.keys().cloned().collect(),
        export_thumbprints: Some(vec![thumb(200).into()]),
        registry: reg,
        exists: true,
        sealed: true,
        ..Actual::default()
    }
}

fn run(d: &Desired, a: &Actual) -> Plan {
    plan(d, a, NOW, &PlanOptions::default()).unwrap()
}

#[test]
fn empty_store_creates_server_clients_and_export() {
    let d = desired(
        vec![
            client("admin", Clearance::ClusterAdmin, &[]),
            client("app", Clearance::ValidUser, &[("Orders", Access::Read)]),
            client("nobody", Clearance::ValidUser, &[]),
        ],
        false,
    );
    let p = run(&d, &Actual::default());
    let actions: Vec<(Action, &str, bool)> = p
        .changes
        .iter()
        .map(|c| (c.action, c.key.as_str(), c.escalation))
        .collect();
    assert_eq!(
        actions,
        vec![
            (Action::Create, "cluster.example.com", false),
            (Action::Create, "admin", true),
            (Action::Create, "app", true),
            (Action::Create, "nobody", false),
            (Action::Export, "/cfg/export.pfx", false),
        ]
    );
}

#[test]
fn applied_state_plans_nothing() {
    let d = desired(
        vec![client(
            "app",
            Clearance::ValidUser,
            &[("Orders", Access::Read)],
        )],
        true,
    );
    assert!(run(&d, &applied(&d)).is_empty());
}

#[test]
fn undeclared_is_kept_access_without_prune_and_a_delete_with_it() {
    let d = desired(
        vec![
            client("a", Clearance::Operator, &[]),
            client("b", Clearance::Operator, &[]),
        ],
        false,
    );
    let a = applied(&d);
    let only_a = desired(vec![client("a", Clearance::Operator, &[])], false);
    let p = run(&only_a, &a);
    // Nothing to do, but not "No changes": b keeps its certificate and its access.
    assert!(p.is_empty() && !p.is_settled());
    assert_eq!(p.kept.len(), 1);
    assert_eq!(
        (p.kept[0].key.as_str(), p.kept[0].clearance),
        ("b", Clearance::Operator)
    );

    let only_a = desired(vec![client("a", Clearance::Operator, &[])], true);
    let p = run(&only_a, &a);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(
        (p.changes[0].action, p.changes[0].key.as_str()),
        (Action::Delete, "b")
    );
    assert_eq!(p.changes[0].thumbprints, vec![thumb(2)]);
}

#[test]
fn guards_refuse_mass_deletion() {
    let many: Vec<ClientDesired> = (0..7)
        .map(|i| client(&format!("c{i}"), Clearance::Operator, &[]))
        .collect();
    let a = applied(&desired(many, true));
    let mut keep_one = desired(vec![client("c0", Clearance::Operator, &[])], true);
    assert!(matches!(
        plan(&keep_one, &a, NOW, &PlanOptions::default()),
        Err(PlanError::TooManyDeletions {
            count: 6,
            max: 5,
            ..
        })
    ));
    keep_one.declared.store.max_deletions = 0;
    assert!(plan(&keep_one, &a, NOW, &PlanOptions::default()).is_ok());

    let mut none = desired(vec![], true);
    none.declared.store.max_deletions = 0;
    assert!(matches!(
        plan(&none, &a, NOW, &PlanOptions::default()),
        Err(PlanError::DeletesAll { .. })
    ));
    let opts = PlanOptions {
        allow_delete_all: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        plan(&none, &a, NOW, &opts).unwrap().count(Action::Delete),
        7
    );
}

#[test]
fn replace_flag_key_change_and_renewal() {
    let d = desired(vec![client("a", Clearance::Operator, &[])], false);
    let a = applied(&d);
    let opts = PlanOptions {
        replace: ["a".to_string()].into(),
        ..PlanOptions::default()
    };
    let p = plan(&d, &a, NOW, &opts).unwrap();
    assert_eq!(
        (p.changes[0].action, p.changes[0].reason.as_str()),
        (Action::Replace, "--replace a")
    );

    let mut d2 = d.clone();
    if let ClientSpec::Generate(g) = &mut d2.declared.clients.get_mut("a").unwrap().source {
        g.key = KeySpec::EcP384;
    }
    let p = run(&d2, &a);
    assert_eq!(
        p.changes[0].reason,
        "key ec-p256 -> ec-p384 forces replacement"
    );

    let later = NOW + time::Duration::days(340);
    let p = plan(&d, &a, later, &PlanOptions::default()).unwrap();
    let reasons: Vec<&str> = p.changes.iter().map(|c| c.reason.as_str()).collect();
    assert!(
        reasons.contains(&"expires in 15 days (renew_before 30d)"),
        "{reasons:?}"
    );

    let expired = NOW + time::Duration::days(400);
    let p = plan(&d, &a, expired, &PlanOptions::default()).unwrap();
    assert!(p
        .changes
        .iter()
        .any(|c| c.reason.starts_with("expired on ")));
}

#[test]
fn lost_bundle_is_a_replace() {
    let d = desired(vec![client("a", Clearance::Operator, &[])], false);
    let mut a = applied(&d);
    a.bundles_ok.clear();
    let p = run(&d, &a);
    assert_eq!(p.changes[0].reason, "issued bundle lost");
}

#[test]
fn stale_export_is_rewritten() {
    let d = desired(vec![], false);
    let mut a = applied(&d);
    a.export_thumbprints = Some(vec![thumb(9).into()]);
    let p = run(&d, &a);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Export);
    a.export_thumbprints = None;
    assert_eq!(run(&d, &a).changes[0].action, Action::Export);
}

#[test]
fn install_is_kept_current() {
    use crate::config::InstallSpec;
    use crate::model::InstalledFile;
    let mut d = desired(vec![], false);
    if let Some(s) = d.declared.server.as_mut() {
        s.install = Some(InstallSpec {
            path: PathBuf::from("/etc/ravendb/cluster.pfx"),
            root: PathBuf::from("/"),
            pfx: PfxProfile::Legacy,
            password: None,
        });
    }
    let mut a = applied(&d);
    let current = a.registry.server[0].thumbprint.clone();
    let holds = |t: &EntryThumbprint, p| InstalledFile::Holds {
        thumbprint: Some(t.clone()),
        profile: Some(p),
    };
    let reason = |a: &Actual| {
        let p = run(&d, a);
        p.changes
            .iter()
            .find(|c| c.target == Target::Install)
            .map(|c| (c.action, c.reason.clone()))
    };
    // Not looked at (no secrets at hand), or current: nothing to do.
    assert_eq!(reason(&a), None);
    a.install = Some(holds(&current, PfxProfile::Legacy));
    assert_eq!(reason(&a), None);
    for (state, why) in [
        (InstalledFile::Missing, "/etc/ravendb/cluster.pfx is missing"),
        (
            InstalledFile::Unreadable,
            "/etc/ravendb/cluster.pfx does not open with the declared password (the password changed, or the file was altered)",
        ),
        (
            holds(&thumb(9).into(), PfxProfile::Legacy),
            &format!("/etc/ravendb/cluster.pfx does not hold the current server certificate {current} with its key"),
        ),
        (holds(&current, PfxProfile::Modern), "pfx modern -> legacy"),
    ] {
        a.install = Some(state);
        assert_eq!(reason(&a), Some((Action::Export, why.to_string())));
    }
    // A re-issued server certificate re-writes it, whatever the file holds.
    a.install = Some(holds(&current, PfxProfile::Legacy));
    let p = plan(
        &d,
        &a,
        NOW,
        &PlanOptions {
            replace: [SERVER_KEY.to_string()].into(),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let last = p.changes.last().unwrap();
    assert_eq!(
        (last.target, last.reason.as_str()),
        (Target::Install, "the server certificate changes")
    );
}

#[test]
fn unknown_replace_key_is_an_error() {
    let d = desired(vec![], false);
    let opts = PlanOptions {
        replace: ["ghost".to_string()].into(),
        ..PlanOptions::default()
    };
    assert!(plan(&d, &Actual::default(), NOW, &opts).is_err());
}

#[test]
fn plans_are_deterministic() {
    let d = desired(
        vec![
            client("z", Clearance::Operator, &[]),
            client("a", Clearance::ValidUser, &[("X", Access::Read)]),
        ],
        false,
    );
    assert_eq!(run(&d, &Actual::default()), run(&d, &Actual::default()));
}

#[test]
fn bundle_password_and_profile_are_compared_without_the_password() {
    let d = desired(vec![client("a", Clearance::Operator, &[])], false);
    let mut a = applied(&d);
    a.registry.certificates[0].bundle_password = Some(NO_PASSWORD.into());
    let with = |map: &[(&str, &str)]| PlanOptions {
        bundle_passwords: Some(
            map.iter()
                .map(|(k, v)| (k.to_string(), BundlePassword::Fingerprint(v.to_string())))
                .collect(),
        ),
        ..PlanOptions::default()
    };
    // Same: nothing to do. Unknown (a review plan): not compared.
    assert!(plan(&d, &a, NOW, &with(&[])).unwrap().is_empty());
    assert!(plan(&d, &a, NOW, &PlanOptions::default())
        .unwrap()
        .is_empty());
    let p = plan(&d, &a, NOW, &with(&[("a", "hmac-sha256:11")])).unwrap();
    assert_eq!(p.changes[0].action, Action::Update);
    assert_eq!(p.changes[0].reason, "bundle: password added");
    assert!(!p.changes[0].escalation);
    a.registry.certificates[0].bundle_password = Some("hmac-sha256:11".into());
    let p = plan(&d, &a, NOW, &with(&[("a", "hmac-sha256:22")])).unwrap();
    assert_eq!(p.changes[0].reason, "bundle: password changed");
    let p = plan(&d, &a, NOW, &with(&[])).unwrap();
    assert_eq!(p.changes[0].reason, "bundle: password removed");
    // The profile, together with an edit.
    let mut legacy = d.clone();
    if let Some(ClientSpec::Generate(g)) =
        legacy.declared.clients.get_mut("a").map(|c| &mut c.source)
    {
        g.pfx = PfxProfile::Legacy;
    }
    legacy.declared.clients.get_mut("a").unwrap().name = "A".into();
    let p = plan(&legacy, &a, NOW, &with(&[("a", "hmac-sha256:11")])).unwrap();
    assert_eq!(
        p.changes[0].reason,
        "name changed in certs.toml; bundle: pfx modern -> legacy"
    );
}

#[test]
fn a_bundle_password_not_read_is_named_and_only_an_added_one_is_planned() {
    let mut d = desired(vec![client("a", Clearance::Operator, &[])], false);
    if let Some(ClientSpec::Generate(g)) = d.declared.clients.get_mut("a").map(|c| &mut c.source) {
        g.password = Some(crate::config::SecretRef::Env("A_PFX".into()));
    }
    let mut a = applied(&d);
    a.registry.certificates[0].bundle_password = Some("hmac-sha256:11".into());
    let unset = PlanOptions {
        bundle_passwords: Some(
            [(
                "a".to_string(),
                BundlePassword::NotRead("environment variable A_PFX is not set".into()),
            )]
            .into(),
        ),
        ..PlanOptions::default()
    };
    // A bundle with a password: whether it changed is not known, and the plan says so.
    let p = plan(&d, &a, NOW, &unset).unwrap();
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.not_read.len(), 1, "{p:?}");
    assert_eq!(p.not_read[0].key, "clients.a.password_env");
    assert_eq!(p.not_read[0].why, "environment variable A_PFX is not set");
    // A bundle without one: the declared password is added, whatever its value.
    a.registry.certificates[0].bundle_password = Some(NO_PASSWORD.into());
    let p = plan(&d, &a, NOW, &unset).unwrap();
    assert_eq!(p.changes[0].reason, "bundle: password added");
    assert!(p.not_read.is_empty(), "{p:?}");
}

#[test]
fn validity_change_is_a_replace_naming_both() {
    let mut d = desired(vec![client("a", Clearance::Operator, &[])], false);
    let a = applied(&d);
    if let Some(ClientSpec::Generate(g)) = d.declared.clients.get_mut("a").map(|c| &mut c.source) {
        g.validity = Period::days(90);
    }
    let p = run(&d, &a);
    assert_eq!(p.changes[0].action, Action::Replace);
    assert_eq!(p.changes[0].reason, "validity 1y -> 90d");
    // A second off is rounding, not a change.
    assert_eq!(
        validity_change(
            NOW - time::Duration::days(7),
            NOW + time::Duration::seconds(365 * 86_400 + 1),
            Period::days(365)
        ),
        None
    );
}

#[test]
fn every_delete_counts_against_max_deletions() {
    let mut d = desired(vec![client("a", Clearance::Operator, &[])], false);
    d.declared.store.max_deletions = 1;
    let mut a = applied(&d);
    for n in [50u8, 51] {
        let mut old = a.registry.certificates[0].clone();
        old.thumbprint = thumb(n).into();
        old.retire_after = Some(NOW - time::Duration::days(1));
        a.registry.certificates.push(old);
    }
    match plan(&d, &a, NOW, &PlanOptions::default()) {
        Err(PlanError::TooManyDeletions {
            count: 2,
            max: 1,
            keys,
        }) => {
            assert!(keys.contains("rotation overlap ended"), "{keys}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_database_named_like_a_field_is_reported_as_a_database() {
    let dbs = [("name", Access::Read), ("clearance", Access::Read)];
    let d = desired(vec![client("app", Clearance::ValidUser, &dbs)], false);
    let a = applied(&d);
    let raised = [("name", Access::ReadWrite), ("clearance", Access::Admin)];
    let d2 = desired(vec![client("app", Clearance::ValidUser, &raised)], false);
    let p = run(&d2, &a);
    assert_eq!(p.changes.len(), 1);
    let c = &p.changes[0];
    assert_eq!((c.action, c.escalation), (Action::Update, true));
    assert_eq!(c.reason, "permissions changed in certs.toml");
    let fields: Vec<(&Field, Option<&str>, Option<&str>)> = c
        .fields
        .iter()
        .map(|f| (&f.field, f.old.as_deref(), f.new.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                &Field::Database("clearance".into()),
                Some("Read"),
                Some("Admin")
            ),
            (
                &Field::Database("name".into()),
                Some("Read"),
                Some("ReadWrite")
            ),
        ]
    );
    assert_eq!(c.fields[1].field.to_string(), "name");
}

/// `d` with `key` an upload whose file a review did not read, compared with BASE as `since`.
fn unread_upload(mut d: Desired, key: &str, since: SinceBase) -> Desired {
    let path = PathBuf::from(format!("/cfg/trust/{key}.pfx"));
    if let Some(c) = d.declared.clients.get_mut(key) {
        c.source = ClientSpec::Upload(crate::config::FileRef {
            path: path.clone(),
            password: Some(crate::config::SecretRef::Env("P".into())),
        });
    }
    d.files
        .unread
        .retain(|u| u.key != format!("clients.{key}.upload"));
    d.files.unread.push(UnreadFile {
        key: format!("clients.{key}.upload"),
        path,
        why: "its password is not read".into(),
        digest: Some("d".into()),
        since_base: since,
    });
    d
}

#[test]
fn an_upload_a_review_did_not_read_is_compared_as_far_as_its_bytes_tell() {
    let review = PlanOptions {
        review: true,
        ..PlanOptions::default()
    };
    let base = unread_upload(
        desired(
            vec![client(
                "p",
                Clearance::ValidUser,
                &[("Orders", Access::Read)],
            )],
            false,
        ),
        "p",
        SinceBase::Unknown,
    );
    let assumed = assumed_store(&base, NOW);
    let same = unread_upload(base.clone(), "p", SinceBase::Same);
    let p = plan(&same, &assumed, NOW, &review).unwrap();
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.not_read[0].key, "clients.p.upload");
    assert!(
        p.review && p.not_read[0].effect.contains("unchanged"),
        "{p:?}"
    );

    // Declared fields are still compared: a raised access is an escalation.
    let mut raised = same.clone();
    raised.declared.clients.get_mut("p").unwrap().permissions =
        [("Orders".to_string(), Access::ReadWrite)].into();
    let p = plan(&raised, &assumed, NOW, &review).unwrap();
    assert_eq!(
        (p.changes[0].action, p.changes[0].escalation),
        (Action::Update, true)
    );

    // Other bytes: a replace whose new holder is not known, flagged since it grants access.
    let changed = unread_upload(base.clone(), "p", SinceBase::Changed);
    let p = plan(&changed, &assumed, NOW, &review).unwrap();
    assert_eq!(
        (p.changes[0].action, p.changes[0].escalation),
        (Action::Replace, true)
    );
    assert!(p.changes[0].reason.contains("not read in review"), "{p:?}");

    // A new client whose file was not read: created, without a thumbprint.
    let p = plan(&same, &Actual::default(), NOW, &review).unwrap();
    let create = p.changes.iter().find(|c| c.key == "p").unwrap();
    assert_eq!(create.action, Action::Create);
    assert!(create.after.as_ref().unwrap().thumbprint.is_none());
}
