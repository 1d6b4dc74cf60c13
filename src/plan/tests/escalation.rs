//! Escalations: what widens access, and what the cluster already grants (issue 23).

use super::super::clients::widens;
use super::*;

#[test]
fn clearance_raise_is_an_escalating_update() {
    let d = desired(
        vec![client(
            "app",
            Clearance::ValidUser,
            &[("Orders", Access::Read)],
        )],
        false,
    );
    let a = applied(&d);
    let d2 = desired(vec![client("app", Clearance::Operator, &[])], false);
    let p = run(&d2, &a);
    assert_eq!(p.changes.len(), 1);
    let c = &p.changes[0];
    assert_eq!((c.action, c.escalation), (Action::Update, true));
    assert!(c.fields.iter().any(|f| f.field == Field::Clearance
        && f.old.as_deref() == Some("ValidUser")
        && f.new.as_deref() == Some("Operator")));
    assert_eq!(c.after.as_ref().unwrap().thumbprint, Some(thumb(1)));
}

#[test]
fn lowering_access_is_not_an_escalation() {
    let d = desired(
        vec![client(
            "app",
            Clearance::ValidUser,
            &[("Orders", Access::Admin)],
        )],
        false,
    );
    let a = applied(&d);
    let d2 = desired(
        vec![client(
            "app",
            Clearance::ValidUser,
            &[("Orders", Access::Read)],
        )],
        false,
    );
    let p = run(&d2, &a);
    assert_eq!(
        (p.changes[0].action, p.changes[0].escalation),
        (Action::Update, false)
    );
}

#[test]
fn widening_rules() {
    let read: BTreeMap<String, Access> = [("Orders".into(), Access::Read)].into();
    let rw: BTreeMap<String, Access> = [("orders".into(), Access::ReadWrite)].into();
    let other: BTreeMap<String, Access> = [("Other".into(), Access::Read)].into();
    let none = BTreeMap::new();
    use Clearance::*;
    assert!(widens(Some((ValidUser, &read)), (ValidUser, &rw)));
    assert!(!widens(Some((ValidUser, &rw)), (ValidUser, &read)));
    assert!(widens(Some((ValidUser, &read)), (ValidUser, &other)));
    assert!(!widens(Some((ValidUser, &read)), (ValidUser, &none)));
    assert!(widens(Some((Operator, &none)), (ClusterAdmin, &none)));
    assert!(!widens(Some((Operator, &none)), (ValidUser, &read)));
    assert!(widens(None, (Operator, &none)));
    assert!(!widens(None, (ValidUser, &none)));
}

/// An escalation is measured against what the cluster holds when the plan read it (issue 23):
/// an upload the cluster already registers with the same access or more is taken into the
/// store unflagged; one it grants less, one it does not list, and any plan that did not read
/// the cluster stay flagged. A generated client's new certificate is never on the cluster.
#[test]
fn access_the_cluster_already_grants_is_no_escalation() {
    let mut d = desired(
        vec![
            upload("ops", Clearance::Operator, &[]),
            upload("app", Clearance::ValidUser, &[("Orders", Access::Admin)]),
            upload(
                "more",
                Clearance::ValidUser,
                &[("Orders", Access::ReadWrite)],
            ),
            upload("stranger", Clearance::Operator, &[]),
            client("fresh", Clearance::ClusterAdmin, &[]),
        ],
        false,
    );
    for (key, n) in [("ops", 60), ("app", 61), ("more", 62), ("stranger", 63)] {
        d.files
            .uploads
            .insert(key.into(), vec![uploaded("holder", n)]);
    }
    let a = applied(&desired(vec![], false));
    let held = |clearance, dbs: &[(&str, Access)]| HeldAccess {
        clearance,
        permissions: dbs.iter().map(|(d, a)| (d.to_string(), *a)).collect(),
    };
    let on_cluster: BTreeMap<Thumbprint, HeldAccess> = [
        (thumb(60), held(Clearance::ClusterAdmin, &[])),
        (
            thumb(61),
            held(Clearance::ValidUser, &[("orders", Access::Admin)]),
        ),
        (
            thumb(62),
            held(Clearance::ValidUser, &[("Orders", Access::Read)]),
        ),
    ]
    .into();
    let flagged = |opts: &PlanOptions| -> Vec<String> {
        let p = plan(&d, &a, NOW, opts).unwrap();
        p.changes
            .into_iter()
            .filter(|c| c.escalation)
            .map(|c| c.key)
            .collect()
    };
    let measured = PlanOptions {
        cluster_access: Some(on_cluster),
        ..PlanOptions::default()
    };
    assert_eq!(flagged(&measured), ["fresh", "more", "stranger"]);
    assert_eq!(
        flagged(&PlanOptions::default()),
        ["app", "fresh", "more", "ops", "stranger"]
    );
}

/// The cluster's grants by thumbprint: clients only, and a disabled registration grants
/// nothing.
#[test]
fn a_listing_grants_what_its_enabled_client_registrations_hold() {
    let reg = |t: &str, clearance, disabled| Registration {
        // Listed in lower case: upper-cased once, where the thumbprint is made.
        thumbprint: Thumbprint::parse(&t.repeat(20)).unwrap(),
        name: t.into(),
        clearance,
        permissions: BTreeMap::new(),
        collection_primary: None,
        disabled,
        collection_secondaries: Vec::new(),
        not_after: None,
        certificate: None,
        usage: None,
    };
    let listing = ClusterListing {
        registrations: vec![
            reg("aa", ClusterClearance::Operator, None),
            reg("bb", ClusterClearance::ClusterAdmin, Some(true)),
            reg("cc", ClusterClearance::ClusterNode, None),
            reg("dd", ClusterClearance::ValidUser, Some(false)),
        ],
        server_thumbprints: vec![],
        well_known_admins: vec![],
        version: ServerVersion {
            major: 7,
            minor: 2,
            full: "7.2.0".into(),
        },
        can_disable: true,
        last_used: BTreeMap::new(),
    };
    let held = held_access(&listing);
    let (aa, dd) = ("AA".repeat(20), "DD".repeat(20));
    assert_eq!(held.keys().collect::<Vec<_>>(), [&aa, &dd]);
    assert_eq!(held[aa.as_str()].clearance, Clearance::Operator);
}
