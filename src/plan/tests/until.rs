//! `until` (docs/contract.md §1, issue 25): the certificate ends by then, a certificate cut at it
//! is neither renewed nor re-issued for its shorter validity.

use super::*;

/// A client `k` whose access ends at `until`.
fn ending(until: OffsetDateTime) -> ClientDesired {
    ClientDesired {
        until: Some(until),
        ..client("k", Clearance::Operator, &[])
    }
}

#[test]
fn new_client_ends_by_until() {
    let until = NOW + time::Duration::hours(4);
    let d = desired(vec![ending(until)], false);
    let p = run(&d, &Actual::default());
    let reg = project(&Registry::new(), &p, &d, NOW);
    let k = reg.certificates.iter().find(|e| e.key == "k").unwrap();
    assert_eq!(k.not_after, until);
    // An until past the validity changes nothing.
    let far = desired(vec![ending(NOW + time::Duration::days(3650))], false);
    let p = run(&far, &Actual::default());
    let reg = project(&Registry::new(), &p, &far, NOW);
    let k = reg.certificates.iter().find(|e| e.key == "k").unwrap();
    assert_eq!(k.not_after, NOW + time::Duration::days(365));
}

#[test]
fn capped_certificate_is_neither_renewed_nor_reissued_for_validity() {
    let until = NOW + time::Duration::hours(4);
    let d = desired(vec![ending(until)], false);
    // Applied an hour ago: cut at until, well inside renew_before (30d).
    let mut a = applied(&d);
    let issued = NOW - time::Duration::hours(1);
    a.registry.certificates[0].not_before = issued - BACKDATING.as_duration();
    a.registry.certificates[0].not_after = until;
    assert!(run(&d, &a).is_empty(), "{:?}", run(&d, &a).changes);
    // Then or now, apply-then-plan is empty: the projection is what was applied.
    let mut before = applied(&d);
    before.registry.certificates.clear();
    let p = run(&d, &before);
    let mut after = applied(&d);
    after.registry = project(&before.registry, &p, &d, NOW);
    assert!(run(&d, &after).is_empty(), "{:?}", run(&d, &after).changes);
    // A validity shorter than what is left before until still re-issues.
    let mut short = ending(until + time::Duration::days(30));
    if let ClientSpec::Generate(g) = &mut short.source {
        g.validity = Period { seconds: 3600 };
    }
    let mut a = applied(&desired(vec![short.clone()], false));
    a.registry.certificates[0].not_after = until + time::Duration::days(30);
    let p = run(&desired(vec![short], false), &a);
    assert!(
        p.changes.iter().any(|c| c.action == Action::Replace),
        "{:?}",
        p.changes
    );
}

#[test]
fn past_until_on_a_new_client_issues_nothing_and_warns() {
    let d = desired(vec![ending(NOW - time::Duration::hours(1))], false);
    let mut a = applied(&d);
    a.registry.certificates.clear();
    let p = run(&d, &a);
    assert!(p.changes.iter().all(|c| c.key != "k"), "{:?}", p.changes);
    assert!(
        p.warnings.contains(&"client 'k': until 2026-06-01T11:00:00Z has passed; not issued (access ended before it began) — remove clients.k from certs.toml".to_string()),
        "{:?}",
        p.warnings
    );
}

#[test]
fn passed_until_deletes_without_prune() {
    let until = datetime!(2026-05-01 16:00 UTC);
    let d = desired(vec![ending(NOW + time::Duration::days(30))], false);
    let mut a = applied(&d);
    // An old certificate still in its overlap goes too.
    let old = CertEntry {
        retire_after: Some(NOW + time::Duration::days(3)),
        ..a.registry.certificates[0].clone()
    };
    a.registry.certificates.push(CertEntry {
        thumbprint: thumb(90).into(),
        ..old
    });
    let ended = desired(vec![ending(until)], false);
    let p = run(&ended, &a);
    let deletes: Vec<(&str, &str)> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| (c.key.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        deletes,
        vec![
            ("k", "access ended 2026-05-01T16:00:00Z"),
            ("k", "access ended 2026-05-01T16:00:00Z")
        ]
    );
    assert!(p.changes.iter().all(|c| c.action != Action::Create));
    assert!(p.kept.is_empty());
    let after = project(&a.registry, &p, &ended, NOW);
    assert!(after.certificates.is_empty(), "{:?}", after.certificates);
}

#[test]
fn passed_until_counts_against_max_deletions_not_delete_all() {
    let past = NOW - time::Duration::minutes(1);
    let two = vec![
        ClientDesired {
            until: Some(past),
            ..client("a", Clearance::Operator, &[])
        },
        ClientDesired {
            until: Some(past),
            ..client("b", Clearance::Operator, &[])
        },
    ];
    let mut d = desired(two, false);
    let a = applied(&d);
    d.declared.store.max_deletions = 1;
    match plan(&d, &a, NOW, &PlanOptions::default()) {
        Err(PlanError::TooManyDeletions {
            count: 2,
            max: 1,
            keys,
        }) => assert_eq!(
            keys,
            "a (access ended 2026-06-01T11:59:00Z), b (access ended 2026-06-01T11:59:00Z)"
        ),
        other => panic!("{other:?}"),
    }
    // The only clients ending is no DeletesAll: the end date was reviewed.
    d.declared.store.max_deletions = 0;
    let p = plan(&d, &a, NOW, &PlanOptions::default()).unwrap();
    assert_eq!(p.count(Action::Delete), 2);
}

/// `k` applied under `recorded` (its certificate cut at it when earlier than a year out), and
/// now declared with `declared`.
fn moved(recorded: Option<OffsetDateTime>, declared: Option<OffsetDateTime>) -> (Desired, Actual) {
    let was = ClientDesired {
        until: recorded,
        ..client("k", Clearance::Operator, &[])
    };
    let mut a = applied(&desired(vec![was], false));
    if let Some(r) = recorded.filter(|r| *r < a.registry.certificates[0].not_after) {
        a.registry.certificates[0].not_after = r;
    }
    let now = ClientDesired {
        until: declared,
        ..client("k", Clearance::Operator, &[])
    };
    (desired(vec![now], false), a)
}

#[test]
fn recorded_until_ends_an_undeclared_client() {
    let until = NOW - time::Duration::hours(1);
    let (mut d, a) = moved(Some(until), Some(until));
    d.declared.clients.clear();
    // prune is off: without the recorded end it would be kept.
    let p = run(&d, &a);
    assert_eq!(p.count(Action::Delete), 1, "{:?}", p.changes);
    assert_eq!(p.changes[0].reason, "access ended 2026-06-01T11:00:00Z");
    assert!(p.kept.is_empty(), "{:?}", p.kept);
    // Before its end it is kept, like any undeclared client.
    let (mut d, a) = moved(Some(NOW + time::Duration::hours(1)), None);
    d.declared.clients.clear();
    let p = run(&d, &a);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.kept.len(), 1);
}

#[test]
fn earlier_until_reissues_without_overlap() {
    let until = NOW + time::Duration::hours(4);
    let (mut d, a) = moved(None, Some(until));
    // Even with an overlap, the old certificate (valid for 355 more days) goes now.
    d.declared.clients.get_mut("k").unwrap().overlap = Some(Period::days(7));
    let p = run(&d, &a);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Replace);
    assert!(
        c.reason
            .starts_with("until 2026-06-01T16:00:00Z is before the certificate's end"),
        "{}",
        c.reason
    );
    assert!(!c.escalation, "a shorter access is no escalation");
    let after = project(&a.registry, &p, &d, NOW);
    let ends: Vec<OffsetDateTime> = after.certificates.iter().map(|e| e.not_after).collect();
    assert_eq!(
        ends,
        vec![until],
        "the old certificate is not kept for the overlap"
    );
    // A certificate that ends before the new until keeps its overlap, capped at until.
    let (mut d, mut a) = moved(None, Some(until));
    a.registry.certificates[0].not_after = NOW + time::Duration::hours(2);
    d.declared.clients.get_mut("k").unwrap().overlap = Some(Period::days(7));
    let p = plan(
        &d,
        &a,
        NOW,
        &PlanOptions {
            replace: ["k".to_string()].into(),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let after = project(&a.registry, &p, &d, NOW);
    let old = after
        .certificates
        .iter()
        .find(|e| e.retire_after.is_some())
        .unwrap();
    assert_eq!(
        old.retire_after,
        Some(until),
        "overlap never runs past until"
    );
}

#[test]
fn later_or_removed_until_reissues_flagged() {
    let a_end = NOW + time::Duration::hours(4);
    let b_end = NOW + time::Duration::days(2);
    for (declared, reason) in [
        (
            Some(b_end),
            "until 2026-06-01T16:00:00Z -> 2026-06-03T12:00:00Z: re-issued to extend access",
        ),
        (
            None,
            "until 2026-06-01T16:00:00Z removed: re-issued for the full validity",
        ),
    ] {
        let (d, a) = moved(Some(a_end), declared);
        let p = run(&d, &a);
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        let c = &p.changes[0];
        assert_eq!((c.action, c.reason.as_str()), (Action::Replace, reason));
        assert!(c.escalation, "longer access is flagged: {reason}");
        assert!(c.fields.iter().any(|f| f.field == Field::Until));
        let after = project(&a.registry, &p, &d, NOW);
        assert_eq!(after.certificates.len(), 1);
        assert_eq!(after.certificates[0].until, declared);
    }
}

#[test]
fn later_until_after_validity_only_updates() {
    // The certificate ends in 355 days, before either until: nothing to issue, the new end is
    // recorded, and moving it later is flagged.
    let far = NOW + time::Duration::days(400);
    let farther = NOW + time::Duration::days(500);
    let (d, a) = moved(Some(far), Some(farther));
    let p = run(&d, &a);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(
        (c.action, c.reason.as_str()),
        (Action::Update, "until changed in certs.toml")
    );
    assert!(c.escalation);
    let (d, a) = moved(Some(farther), Some(far));
    let c = &run(&d, &a).changes[0];
    assert_eq!(c.action, Action::Update);
    assert!(!c.escalation, "an earlier end is no escalation");
    let after = project(&a.registry, &run(&d, &a), &d, NOW);
    assert_eq!(after.certificates[0].until, Some(far));
}

#[test]
fn capped_certificate_inside_renew_before_warns_instead() {
    let until = NOW + time::Duration::hours(5);
    let (d, a) = moved(Some(until), Some(until));
    let p = run(&d, &a);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(
        p.warnings,
        vec!["client 'k': access ends 2026-06-01T17:00:00Z (in 5 hours; until in certs.toml); it is not renewed past it — move until to extend it"]
    );
}

#[test]
fn next_access_end_is_the_earliest_future_one() {
    let soon = NOW + time::Duration::hours(1);
    let (mut d, mut a) = moved(
        Some(NOW + time::Duration::hours(3)),
        Some(NOW + time::Duration::hours(3)),
    );
    d.declared.clients.insert(
        "j".into(),
        ClientDesired {
            until: Some(NOW + time::Duration::hours(2)),
            ..client("j", Clearance::ValidUser, &[])
        },
    );
    assert_eq!(
        run(&d, &a).next_access_end,
        Some(NOW + time::Duration::hours(2))
    );
    // An overlap's end counts; a past one does not.
    a.registry.certificates.push(CertEntry {
        retire_after: Some(soon),
        ..CertEntry::fixture("k", thumb(77))
    });
    a.registry.certificates.push(CertEntry {
        until: Some(NOW - time::Duration::hours(1)),
        ..CertEntry::fixture("gone", thumb(78))
    });
    let p = plan(&d, &a, NOW, &PlanOptions::default()).unwrap();
    assert_eq!(p.next_access_end, Some(soon));
    let none = desired(vec![client("x", Clearance::ValidUser, &[])], false);
    assert_eq!(run(&none, &applied(&none)).next_access_end, None);
}

#[test]
fn upload_ending_after_until_warns() {
    let mut c = upload("u", Clearance::ValidUser, &[]);
    c.until = Some(NOW + time::Duration::hours(1));
    let mut d = desired(vec![c], false);
    d.files
        .uploads
        .insert("u".into(), vec![uploaded("CN=u", 5)]);
    let p = run(&d, &Actual::default());
    assert!(
        p.warnings.iter().any(|w| w
            .contains("after until 2026-06-01T13:00:00Z: only ravencert ends its access at until")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn passed_until_on_a_protected_entry_is_refused_not_deleted() {
    // Applied with protect; protect dropped and a past until set in one change (the property
    // test found it deleted in one step).
    let (d, mut a) = moved(None, Some(NOW - time::Duration::hours(1)));
    a.registry.certificates[0].protect = true;
    match plan(&d, &a, NOW, &PlanOptions::default()) {
        Err(e @ PlanError::Protected { .. }) => assert_eq!(
            e.to_string(),
            "refused: client 'k' is protected (protect = true), and this plan deletes it (access ended 2026-06-01T11:00:00Z, its until in certs.toml); a protected client leaves in two reviewed steps: drop `protect` first, apply, then set until"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_review_assumes_base_applied_the_end_of_access() {
    // BASE declares k with an until that has passed: BASE's apply removed it, so a pull request
    // that removes the table changes nothing, and one that keeps it changes nothing either.
    let base = desired(vec![ending(NOW - time::Duration::hours(1))], false);
    let assumed = crate::plan::project::assumed_store(&base, NOW);
    assert!(
        assumed.registry.certificates.is_empty(),
        "{:?}",
        assumed.registry.certificates
    );
    let removed = desired(vec![], false);
    let review = PlanOptions {
        review: true,
        ..PlanOptions::default()
    };
    let p = plan(&removed, &assumed, NOW, &review).unwrap();
    assert!(p.is_settled(), "{:?} {:?}", p.changes, p.kept);
    let p = plan(&base, &assumed, NOW, &review).unwrap();
    assert!(p.is_settled(), "{:?} {:?}", p.changes, p.kept);
}

#[test]
fn longer_access_of_an_upload_is_flagged_whatever_the_cluster_holds() {
    // An upload registered with an until; the cluster holds its access already (the measured
    // re-plan): removing the until is still access for longer, flagged.
    let mut was = upload("u", Clearance::ValidUser, &[("Orders", Access::Read)]);
    was.until = Some(NOW + time::Duration::days(30));
    let mut d = desired(vec![was.clone()], false);
    let cert = uploaded("CN=u", 5);
    d.files.uploads.insert("u".into(), vec![cert.clone()]);
    let a = Actual {
        registry: project(&Registry::new(), &run(&d, &Actual::default()), &d, NOW),
        ..applied(&d)
    };
    d.declared.clients.get_mut("u").unwrap().until = None;
    let held = crate::plan::HeldAccess {
        clearance: Clearance::ValidUser,
        permissions: was.permissions.clone(),
    };
    let opts = PlanOptions {
        cluster_access: Some([(cert.info.thumbprint.clone(), held)].into()),
        ..PlanOptions::default()
    };
    let p = plan(&d, &a, NOW, &opts).unwrap();
    let c = p.changes.iter().find(|c| c.key == "u").unwrap();
    assert_eq!(c.action, Action::Update, "{:?}", p.changes);
    assert!(c.escalation, "access for longer: {c:?}");
}

/// `k` renewed yesterday with a 7-day overlap: its old certificate (thumb 90) still retiring.
fn with_retiring(d: &Desired) -> Actual {
    let mut a = applied(d);
    let old = CertEntry {
        thumbprint: thumb(90).into(),
        retire_after: Some(NOW + time::Duration::days(6)),
        not_after: NOW + time::Duration::days(300),
        ..a.registry.certificates[0].clone()
    };
    a.registry.certificates.push(old);
    a
}

#[test]
fn an_old_certificate_in_its_overlap_follows_until_and_disabled() {
    let base = ClientDesired {
        overlap: Some(Period::days(7)),
        ..client("k", Clearance::Operator, &[])
    };
    let a = with_retiring(&desired(vec![base.clone()], false));
    // until before the certificates' end: both go now, the re-issued one ends by then.
    let until = NOW + time::Duration::hours(4);
    let d = desired(
        vec![ClientDesired {
            until: Some(until),
            ..base.clone()
        }],
        false,
    );
    let after = project(&a.registry, &run(&d, &a), &d, NOW);
    let ends: Vec<OffsetDateTime> = after.certificates.iter().map(|e| e.not_after).collect();
    assert_eq!(ends, vec![until], "{:?}", after.certificates);
    // disabled: the old certificate is suspended too, not left enabled for its overlap.
    let d = desired(
        vec![ClientDesired {
            disabled: true,
            ..base.clone()
        }],
        false,
    );
    let after = project(&a.registry, &run(&d, &a), &d, NOW);
    assert_eq!(after.certificates.len(), 2);
    assert!(
        after.certificates.iter().all(|e| e.disabled),
        "{:?}",
        after.certificates
    );
    // A narrower clearance reaches it too.
    let d = desired(
        vec![ClientDesired {
            clearance: Clearance::ValidUser,
            ..base
        }],
        false,
    );
    let after = project(&a.registry, &run(&d, &a), &d, NOW);
    assert!(
        after
            .certificates
            .iter()
            .all(|e| e.clearance == Clearance::ValidUser),
        "{:?}",
        after.certificates
    );
}
