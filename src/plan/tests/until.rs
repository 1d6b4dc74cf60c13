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
