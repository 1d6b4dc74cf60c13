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

#[test]
fn a_client_created_disabled_grants_nothing_yet() {
    let d = desired(vec![k(true)], false);
    let mut a = applied(&d);
    a.registry.certificates.clear();
    let p = run(&d, &a);
    let c = p.changes.iter().find(|c| c.key == "k").unwrap();
    assert_eq!((c.action, c.escalation), (Action::Create, false));
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
