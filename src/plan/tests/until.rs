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
