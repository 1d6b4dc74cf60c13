//! `disabled = true` in the store plan (docs/contract.md §1, issue 25): a change of it is an
//! Update (enabling flagged), a disabled client is not renewed, and `until` still ends it.

use super::*;

/// Client `k`, Operator, disabled or not.
fn k(disabled: bool) -> ClientDesired {
    ClientDesired {
        disabled,
        ..client("k", Clearance::Operator, &[])
    }
}

#[test]
fn disabling_is_an_update_and_enabling_one_flagged() {
    let enabled = desired(vec![k(false)], false);
    let disabled = desired(vec![k(true)], false);
    let p = run(&disabled, &applied(&enabled));
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(
        (c.action, c.reason.as_str(), c.escalation),
        (Action::Update, "disabled in certs.toml", false)
    );
    assert_eq!(
        c.fields,
        vec![FieldChange::new(
            Field::Disabled,
            Some("false".into()),
            Some("true".into())
        )]
    );
    assert!(c.after.as_ref().unwrap().disabled);
    // The store records it: the projected entry is disabled, same certificate.
    let after = project(&applied(&enabled).registry, &p, &disabled, NOW);
    assert!(after.certificates[0].disabled);
    assert_eq!(after.certificates[0].thumbprint, thumb(1));
    // Applied, nothing more to do.
    let mut a = applied(&disabled);
    assert!(a.registry.certificates[0].disabled);
    assert!(run(&disabled, &a).is_empty());
    // Enabling gives the access back: flagged.
    let p = run(&enabled, &a);
    let c = &p.changes[0];
    assert_eq!(
        (c.action, c.reason.as_str(), c.escalation),
        (Action::Update, "enabled in certs.toml", true)
    );
    // Unless the cluster grants that certificate the access already.
    a.registry.certificates[0].disabled = true;
    let held = PlanOptions {
        cluster_access: Some(
            [(
                thumb(1),
                HeldAccess {
                    clearance: Clearance::Operator,
                    permissions: BTreeMap::new(),
                },
            )]
            .into(),
        ),
        ..PlanOptions::default()
    };
    let p = plan(&enabled, &a, NOW, &held).unwrap();
    assert!(!p.changes[0].escalation, "{:?}", p.changes);
}

#[test]
fn enabling_an_upload_is_flagged() {
    let mut on = desired(vec![upload("p", Clearance::ValidUser, &[])], false);
    on.files.uploads.insert("p".into(), vec![uploaded("p", 1)]);
    let mut a = applied(&on);
    a.registry.certificates[0].disabled = true;
    let p = run(&on, &a);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    assert_eq!(
        (
            p.changes[0].action,
            p.changes[0].reason.as_str(),
            p.changes[0].escalation
        ),
        (Action::Update, "enabled in certs.toml", true)
    );
}

/// `d` with a `[cluster]`: where `disabled` suspends the registration.
fn on_cluster(mut d: Desired) -> Desired {
    d.declared.cluster = Some(crate::config::ClusterSettings {
        urls: vec!["https://a.example.com".into()],
        admin: crate::config::ClusterAdmin::Client("admin".into()),
        ca: crate::config::CaPin::Store,
        prune: false,
        timeout: Period::seconds(30),
        keep: Vec::new(),
    });
    d
}

#[test]
fn a_client_created_disabled_grants_nothing_yet() {
    let d = on_cluster(desired(vec![k(true)], false));
    let mut a = applied(&d);
    a.registry.certificates.clear();
    let p = run(&d, &a);
    let c = p.changes.iter().find(|c| c.key == "k").unwrap();
    assert_eq!((c.action, c.escalation), (Action::Create, false));
    // Without [cluster] only the store records `disabled`: its bundle grants what it says,
    // so creating it is flagged like any other.
    let alone = desired(vec![k(true)], false);
    let p = run(&alone, &a);
    let c = p.changes.iter().find(|c| c.key == "k").unwrap();
    assert_eq!((c.action, c.escalation), (Action::Create, true));
    assert!(c.fields.contains(&FieldChange::new(
        Field::Disabled,
        None,
        Some("true".into())
    )));
    let after = project(&a.registry, &p, &d, NOW);
    assert!(after.certificates.iter().all(|e| e.disabled));
}

#[test]
fn disabled_is_not_renewed() {
    let d = desired(vec![k(true)], false);
    let a = applied(&d);
    // 15 days left (inside renew_before 30d), then expired: no re-issue, a warning each time.
    for (days, why) in [
        (340, "expires in 15 days (renew_before 30d)"),
        (400, "expired on 2027-05-22"),
    ] {
        let p = plan(
            &d,
            &a,
            NOW + time::Duration::days(days),
            &PlanOptions::default(),
        )
        .unwrap();
        // (The server certificate, due too, is renewed as ever.)
        assert!(
            p.changes.iter().all(|c| c.key != "k"),
            "{days}: {:?}",
            p.changes
        );
        let warning = format!(
            "client 'k' is disabled: not renewed although {why}; it is re-issued when enabled"
        );
        assert!(p.warnings.contains(&warning), "{:?}", p.warnings);
    }
    // Enabled inside the window: re-issued, and flagged, saying both.
    let on = desired(vec![k(false)], false);
    let p = plan(
        &on,
        &a,
        NOW + time::Duration::days(340),
        &PlanOptions::default(),
    )
    .unwrap();
    let c = p.changes.iter().find(|c| c.key == "k").unwrap();
    assert_eq!(c.action, Action::Replace);
    assert_eq!(
        c.reason,
        "enabled in certs.toml; expires in 15 days (renew_before 30d)"
    );
    assert!(c.escalation);
    // `--replace` still re-issues a disabled client, and it stays disabled.
    let replace = PlanOptions {
        replace: ["k".to_string()].into(),
        ..PlanOptions::default()
    };
    let p = plan(&d, &a, NOW, &replace).unwrap();
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    assert_eq!(p.changes[0].action, Action::Replace);
    let after = project(&a.registry, &p, &d, NOW);
    assert!(after.certificates.iter().all(|e| e.disabled), "{after:?}");
}

#[test]
fn until_still_ends_a_disabled_client() {
    let d = desired(
        vec![ClientDesired {
            until: Some(NOW - time::Duration::hours(1)),
            ..k(true)
        }],
        false,
    );
    let mut a = applied(&d);
    a.registry.certificates[0].disabled = true;
    let p = run(&d, &a);
    let deletes: Vec<(&str, &str)> = p
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(deletes, vec![("k", "access ended 2026-06-01T11:00:00Z")]);
    assert_eq!(p.changes[0].action, Action::Delete);
}

// ---------------------------------------------------------------------------------------------
// On the cluster (docs/contract.md §7): the table of plan/cluster/disable.rs.

const APP: &str = "CFDBD6120652B8AD91A08F18BBB971A159271F52";
const BATCH: &str = "812383772D393B153B85CF1C470FF72CCEA387AD";
const PARTNER: &str = "FF507825EE802E6BAF9A60F785DDA74AA38EE019";
const PARTNER_2: &str = "22D396A402980E47CB0AD8B42413CF293F3D5B9D";

/// A recorded listing (`tests/fixtures/ravendb-listings/ravendb-V.json`) as the planner reads
/// it, from a server running `full`.
fn listing(v: &str, full: &str) -> ClusterListing {
    let path = format!(
        "{}/tests/fixtures/ravendb-listings/ravendb-{v}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let l = crate::ravendb::decode_listing_bytes(&std::fs::read(path).unwrap()).unwrap();
    let n: Vec<u32> = full.split('.').map(|p| p.parse().unwrap()).collect();
    let version = ServerVersion {
        major: n[0],
        minor: n[1],
        full: full.into(),
    };
    ClusterListing {
        server_thumbprints: l.server_thumbprints(),
        well_known_admins: l.well_known_admin_thumbprints(),
        can_disable: can_disable(&l.registrations, &version),
        registrations: l.registrations,
        version,
        last_used: BTreeMap::new(),
    }
}

/// The store entry of a listed registration, as ravencert registered it.
fn entry_of(listing: &ClusterListing, key: &str, thumbprint: &str, disabled: bool) -> CertEntry {
    let r = listing
        .registrations
        .iter()
        .find(|r| r.thumbprint == thumbprint)
        .unwrap();
    CertEntry {
        name: r.name.clone(),
        clearance: r.clearance.client().unwrap(),
        permissions: r.permissions.clone(),
        collection_primary: r.collection_primary.clone(),
        collection_secondaries: r.collection_secondaries.clone(),
        disabled,
        ..CertEntry::fixture(key, Thumbprint::parse(thumbprint).unwrap())
    }
}

fn store(entries: &[&CertEntry]) -> Registry {
    let mut reg = Registry::new();
    reg.certificates = entries.iter().map(|e| (*e).clone()).collect();
    reg
}

/// Options recording `set` as what ravencert last set (each entry's `disabled` included).
fn options(set: &[&CertEntry], max_deletions: u32, prune: bool) -> ClusterOptions {
    ClusterOptions {
        url: "https://a.example.com".into(),
        prune,
        max_deletions,
        last_set: set
            .iter()
            .map(|e| {
                let t = e.thumbprint.known().unwrap().clone();
                (t, RegistrationFields::from(*e))
            })
            .collect(),
        ..ClusterOptions::default()
    }
}

fn changes(p: &ClusterPlan) -> Vec<(ClusterAction, &str, &str, bool, Option<bool>)> {
    p.changes
        .iter()
        .map(|c| {
            (
                c.action,
                c.thumbprint.as_ref().map_or("", Thumbprint::as_str),
                c.reason.as_str(),
                c.escalation,
                c.disabled,
            )
        })
        .collect()
}

#[test]
fn can_disable_by_the_listed_field_or_from_7_2_2() {
    assert!(listing("7.2", "7.2.5").can_disable);
    assert!(!listing("4.1", "4.1.0").can_disable);
    assert!(!listing("5.4", "5.4.0").can_disable);
    // No entry says, and the version decides.
    assert!(can_disable(
        &[],
        &ServerVersion {
            major: 7,
            minor: 2,
            full: "7.2.2".into()
        }
    ));
    assert!(!can_disable(
        &[],
        &ServerVersion {
            major: 7,
            minor: 2,
            full: "7.2.1".into()
        }
    ));
    assert!(can_disable(
        &[],
        &ServerVersion {
            major: 8,
            minor: 0,
            full: "8.0".into()
        }
    ));
}

#[test]
fn disable_edits_where_the_listing_has_the_field() {
    let mut l = listing("7.2", "7.2.5");
    let app = entry_of(&l, "orders-app", APP, true);
    // Batch is disabled in the Studio: ravencert leaves it so, and warns.
    let batch = entry_of(&l, "batch", BATCH, false);
    let reg = store(&[&app, &batch]);
    let p = plan_cluster(&reg, &l, &options(&[], 5, false)).unwrap();
    assert_eq!(
        changes(&p),
        vec![(
            ClusterAction::Edit,
            APP,
            "disabled in certs.toml: the registration is disabled (RavenDB 7.2.5 keeps it)",
            false,
            Some(true)
        )]
    );
    let edit = &p.changes[0];
    assert_eq!(
        edit.fields,
        vec![FieldChange::new(
            Field::Disabled,
            Some("false".into()),
            Some("true".into())
        )]
    );
    assert!(edit.after.as_ref().unwrap().disabled);
    assert!(!edit.before.as_ref().unwrap().disabled);
    let studio: Vec<&String> = p
        .warnings
        .iter()
        .filter(|w| w.contains("is disabled on the cluster"))
        .collect();
    assert_eq!(studio.len(), 1, "{:?}", p.warnings);
    assert!(studio[0].contains(BATCH), "{studio:?}");
    // Applied: the listing says Disabled, the state records ravencert did it. Nothing to do,
    // and status shows it disabled, not drift.
    for r in &mut l.registrations {
        if r.thumbprint == APP {
            r.disabled = Some(true);
        }
    }
    let p = plan_cluster(&reg, &l, &options(&[&app, &batch], 5, false)).unwrap();
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert!(
        !p.warnings.iter().any(|w| w.contains(APP)),
        "{:?}",
        p.warnings
    );
    let states = registration_states(&reg, &l);
    assert_eq!(
        states[0],
        (app.thumbprint.clone(), RegistrationState::Disabled)
    );
    assert!(!RegistrationState::Disabled.is_drift());
    // Enabled in the Studio behind ravencert's back: disabled again, said so.
    for r in &mut l.registrations {
        if r.thumbprint == APP {
            r.disabled = Some(false);
        }
    }
    let p = plan_cluster(&reg, &l, &options(&[&app, &batch], 5, false)).unwrap();
    assert_eq!(
        changes(&p),
        vec![(
            ClusterAction::Edit,
            APP,
            "enabled on the cluster outside ravencert: disabled again (disabled in certs.toml)",
            false,
            Some(true)
        )]
    );
    assert_eq!(
        registration_states(&reg, &l)[0].1,
        RegistrationState::Differs,
        "a disabled client the cluster still grants access to is drift"
    );
}

#[test]
fn enable_sends_false_only_for_what_ravencert_disabled() {
    let l = listing("7.2", "7.2.5");
    let disabled = entry_of(&l, "batch", BATCH, true);
    let enabled = entry_of(&l, "batch", BATCH, false);
    let reg = store(&[&enabled]);
    // ravencert disabled it (its state says so): enabling sends Disabled: false, flagged.
    let p = plan_cluster(&reg, &l, &options(&[&disabled], 5, false)).unwrap();
    assert_eq!(
        changes(&p),
        vec![(
            ClusterAction::Edit,
            BATCH,
            "enabled in certs.toml",
            true,
            Some(false)
        )]
    );
    assert!(!p.changes[0].after.as_ref().unwrap().disabled);
    assert!(
        !p.warnings.iter().any(|w| w.contains(BATCH)),
        "{:?}",
        p.warnings
    );
}

#[test]
fn studio_disabled_stays_disabled() {
    let l = listing("7.2", "7.2.5");
    let enabled = entry_of(&l, "batch", BATCH, false);
    let reg = store(&[&enabled]);
    // Recorded as set enabled, or not at all: the Studio disabled it, and it stays so.
    for set in [vec![&enabled], vec![]] {
        let p = plan_cluster(&reg, &l, &options(&set, 5, false)).unwrap();
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains(BATCH) && w.contains("ravencert never enables it")),
            "{:?}",
            p.warnings
        );
    }
    // An edit for another reason keeps it disabled (the listed value goes back).
    let renamed = CertEntry {
        name: "Batch Jobs".into(),
        ..enabled.clone()
    };
    let p = plan_cluster(&store(&[&renamed]), &l, &options(&[], 5, false)).unwrap();
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    assert_eq!(p.changes[0].disabled, None);
    assert!(p.changes[0].after.as_ref().unwrap().disabled);
}

#[test]
fn disable_unregisters_where_the_server_cannot_and_is_not_counted() {
    let l = listing("4.1", "4.1.0");
    let app = entry_of(&l, "orders-app", APP, true);
    let batch = entry_of(&l, "batch", BATCH, true);
    let partner = entry_of(&l, "partner", PARTNER, true);
    let partner_2 = entry_of(&l, "partner", PARTNER_2, true);
    let reg = store(&[&app, &batch, &partner, &partner_2]);
    // Three unregisters (the collection's secondary goes with its primary) with max_deletions
    // 1, and prune on: none counted, none also taken for a stray.
    let p = plan_cluster(&reg, &l, &options(&[&app], 1, true)).unwrap();
    let why = "disabled in certs.toml: RavenDB 4.1.0 cannot disable a registration, so it is unregistered while disabled and registered again when enabled";
    let mut got = changes(&p);
    got.sort();
    assert_eq!(
        got,
        vec![
            (ClusterAction::Unregister, BATCH, why, false, Some(true)),
            (ClusterAction::Unregister, APP, why, false, Some(true)),
            (ClusterAction::Unregister, PARTNER, why, false, Some(true)),
        ]
    );
    assert!(p.extra.is_empty(), "{:?}", p.extra);
    assert!(p.kept().is_empty());
    // A stray beside them is still counted: over max_deletions 1 with 2.
    let mut more = l.clone();
    let mut stray = more.registrations[1].clone();
    stray.thumbprint = Thumbprint::parse(&"AB".repeat(20)).unwrap();
    more.registrations.push(stray.clone());
    stray.thumbprint = Thumbprint::parse(&"CD".repeat(20)).unwrap();
    more.registrations.push(stray);
    match plan_cluster(&reg, &more, &options(&[], 1, true)) {
        Err(PlanError::TooManyDeletions {
            count: 2, max: 1, ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn disabled_and_unregistered_stays_so() {
    for (v, full) in [("4.1", "4.1.0"), ("7.2", "7.2.5")] {
        let l = listing(v, full);
        let app = CertEntry {
            thumbprint: thumb(77).into(),
            ..entry_of(&l, "orders-app", APP, true)
        };
        let p = plan_cluster(&store(&[&app]), &l, &options(&[&app], 5, false)).unwrap();
        assert!(
            p.changes
                .iter()
                .all(|c| c.key.as_deref() != Some("orders-app")),
            "{v}: {:?}",
            p.changes
        );
        assert_eq!(
            registration_states(&store(&[&app]), &l)[0].1,
            RegistrationState::Disabled,
            "{v}"
        );
    }
}

#[test]
fn enabling_registers_again_on_41_flagged() {
    let l = listing("4.1", "4.1.0");
    // No access at all: a register of it widens nothing, but enabling is flagged anyway.
    let nobody = CertEntry {
        permissions: BTreeMap::new(),
        thumbprint: thumb(77).into(),
        ..entry_of(&l, "nobody", APP, false)
    };
    let was = CertEntry {
        disabled: true,
        ..nobody.clone()
    };
    let p = plan_cluster(&store(&[&nobody]), &l, &options(&[&was], 5, false)).unwrap();
    let t = thumb(77);
    assert_eq!(
        changes(&p),
        vec![(
            ClusterAction::Register,
            t.as_str(),
            "enabled in certs.toml: registered again",
            true,
            None
        )]
    );
    // Never disabled: an ordinary register, not flagged.
    let p = plan_cluster(&store(&[&nobody]), &l, &options(&[], 5, false)).unwrap();
    assert_eq!(
        changes(&p),
        vec![(
            ClusterAction::Register,
            t.as_str(),
            "not registered on the cluster",
            false,
            None
        )]
    );
}

/// The listing's last uses reach the plan as read (for the page and /metrics), and change
/// nothing in it.
#[test]
fn last_use_is_carried_and_decides_nothing() {
    let mut l = listing("7.2", "7.2.5");
    let app = entry_of(&l, "orders-app", APP, false);
    let before = plan_cluster(&store(&[&app]), &l, &options(&[&app], 5, false)).unwrap();
    l.last_used = [(Thumbprint::parse(APP).unwrap(), NOW)].into();
    let p = plan_cluster(&store(&[&app]), &l, &options(&[&app], 5, false)).unwrap();
    assert_eq!(p.last_used, l.last_used);
    assert_eq!(p.changes, before.changes);
}
