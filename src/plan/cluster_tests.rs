//! The cluster planner over plain values: what a cluster gets told to do, and why.

use std::collections::BTreeMap;

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::model::{Access, Clearance, KeySpec};
use crate::registry::{CertEntry, Registry};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const URL: &str = "https://a.cluster.example.com";
/// What `project` puts where only the apply knows the thumbprint.
const UNKNOWN: &str = "(known after apply)";

fn thumb(n: u8) -> String {
    format!("{n:040X}")
}

/// Test text as a thumbprint.
fn tp(t: &str) -> Thumbprint {
    Thumbprint::parse(t).unwrap()
}

fn server() -> String {
    thumb(200)
}

fn admin() -> String {
    thumb(201)
}

fn perms(dbs: &[(&str, Access)]) -> BTreeMap<String, Access> {
    dbs.iter().map(|(d, a)| (d.to_string(), *a)).collect()
}

fn entry(key: &str, thumbprint: &str, clearance: Clearance, dbs: &[(&str, Access)]) -> CertEntry {
    CertEntry {
        name: format!("{key} name"),
        clearance,
        not_before: NOW - time::Duration::days(10),
        not_after: NOW + time::Duration::days(355),
        key_type: Some(KeySpec::EcP256),
        permissions: perms(dbs),
        ..CertEntry::fixture(key, thumbprint)
    }
}

fn store(entries: Vec<CertEntry>) -> Registry {
    let mut reg = Registry::new();
    reg.certificates = entries;
    reg
}

fn registration(thumbprint: &str, name: &str, clearance: ClusterClearance) -> Registration {
    Registration {
        thumbprint: tp(thumbprint),
        name: name.into(),
        clearance,
        permissions: BTreeMap::new(),
        collection_primary: None,
        disabled: None,
        collection_secondaries: Vec::new(),
        not_after: None,
        certificate: None,
        usage: None,
    }
}

/// The registration the store's certificate `e` should have.
fn registered(e: &CertEntry) -> Registration {
    Registration {
        permissions: e.permissions.clone(),
        collection_primary: e.collection_primary.clone(),
        ..registration(e.thumbprint.as_str(), &e.name, e.clearance.into())
    }
}

fn version(major: u32, minor: u32) -> ServerVersion {
    ServerVersion {
        major,
        minor,
        full: format!("{major}.{minor}.0"),
    }
}

/// A 4.1 cluster holding `clients` besides its own server certificate and well-known admin.
fn cluster(clients: Vec<Registration>) -> ClusterListing {
    let mut registrations = vec![
        registration(
            &server(),
            "cluster.example.com",
            ClusterClearance::ClusterNode,
        ),
        registration(&admin(), "ops-admin", ClusterClearance::ClusterAdmin),
    ];
    registrations.extend(clients);
    ClusterListing {
        registrations,
        server_thumbprints: vec![tp(&server())],
        well_known_admins: vec![tp(&admin())],
        version: version(4, 1),
        can_disable: false,
        last_used: BTreeMap::new(),
    }
}

fn opts() -> ClusterOptions {
    ClusterOptions {
        url: URL.into(),
        admin_thumbprint: Some(tp(&admin())),
        max_deletions: 5,
        ..ClusterOptions::default()
    }
}

/// `opts()` with `last_set` recording the store's certificates as ravencert set them.
fn opts_set(entries: &[&CertEntry]) -> ClusterOptions {
    ClusterOptions {
        last_set: entries
            .iter()
            .map(|e| (tp(e.thumbprint.as_str()), RegistrationFields::from(*e)))
            .collect(),
        ..opts()
    }
}

/// `opts()` with `prune = true`.
fn pruning() -> ClusterOptions {
    ClusterOptions {
        prune: true,
        ..opts()
    }
}

fn run(reg: &Registry, listing: &ClusterListing, o: &ClusterOptions) -> ClusterPlan {
    plan_cluster(reg, listing, o).unwrap()
}

fn actions(p: &ClusterPlan) -> Vec<(ClusterAction, Option<String>)> {
    p.changes
        .iter()
        .map(|c| (c.action, c.thumbprint.as_ref().map(Thumbprint::to_string)))
        .collect()
}

/// A cluster listing a collection the store does not hold: the primary `thumb(60)` and its
/// secondary `thumb(61)`, both named "partner".
fn partner_collection() -> ClusterListing {
    let mut secondary = registration(&thumb(61), "partner", ClusterClearance::ValidUser);
    secondary.collection_primary = Some(thumb(60));
    cluster(vec![
        registration(&thumb(60), "partner", ClusterClearance::ValidUser),
        secondary,
    ])
}

/// Asserts that one of the plan's warnings says `says`.
#[track_caller]
fn assert_warns(p: &ClusterPlan, says: &str) {
    assert!(
        p.warnings.iter().any(|w| w.contains(says)),
        "{says:?} in {:?}",
        p.warnings
    );
}

fn app() -> CertEntry {
    entry(
        "app",
        &thumb(1),
        Clearance::ValidUser,
        &[("Orders", Access::ReadWrite)],
    )
}

#[test]
fn empty_cluster_registers_every_store_certificate_with_its_access() {
    let ops = entry("ops", &thumb(2), Clearance::Operator, &[]);
    let mut primary = entry("partner", &thumb(3), Clearance::ValidUser, &[]);
    let mut secondary = entry("partner", &thumb(4), Clearance::ValidUser, &[]);
    primary.collection_secondaries = vec![thumb(4)];
    secondary.collection_primary = Some(thumb(3));
    // The secondary first in the store: the register of the primary still comes first.
    let reg = store(vec![secondary, app(), ops, primary]);
    let p = run(&reg, &cluster(vec![]), &opts());
    assert_eq!(
        actions(&p),
        [1, 2, 3, 4].map(|n| (ClusterAction::Register, Some(thumb(n))))
    );
    assert!(p
        .changes
        .iter()
        .all(|c| c.reason.starts_with("not registered on the cluster")));
    let app = &p.changes[0];
    assert_eq!(app.key.as_deref(), Some("app"));
    assert_eq!(app.name, "app name");
    let after = app.after.as_ref().unwrap();
    assert_eq!(after.clearance, Some(Clearance::ValidUser));
    assert_eq!(
        after.permissions,
        Some(perms(&[("Orders", Access::ReadWrite)]))
    );
    // A database granted, an Operator: escalations; a ValidUser without databases is not one.
    assert!(app.escalation && p.changes[1].escalation);
    assert!(!p.changes[2].escalation);
    assert_eq!(p.changes[3].collection_primary, Some(thumb(3)));
    assert!(p.changes[3].reason.contains("collection secondary of"));
    assert_eq!(p.count(ClusterAction::Register), 4);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        (p.url.as_str(), p.server_version.full.as_str()),
        (URL, "4.1.0")
    );
}

#[test]
fn cluster_matching_the_store_needs_nothing_even_with_prune() {
    let app = app();
    let reg = store(vec![app.clone()]);
    let o = ClusterOptions {
        prune: true,
        ..opts_set(&[&app])
    };
    let p = run(&reg, &cluster(vec![registered(&app)]), &o);
    assert!(p.is_empty(), "{:?}", p.changes);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn edited_in_certs_toml_is_an_edit_of_the_same_thumbprint() {
    let was = app();
    let mut now = app();
    now.name = "Orders App".into();
    now.clearance = Clearance::Operator;
    now.permissions = BTreeMap::new();
    let p = run(
        &store(vec![now]),
        &cluster(vec![registered(&was)]),
        &opts_set(&[&was]),
    );
    assert_eq!(actions(&p), [(ClusterAction::Edit, Some(thumb(1)))]);
    let edit = &p.changes[0];
    assert_eq!(
        edit.reason,
        "name, clearance, permissions changed in certs.toml"
    );
    assert!(edit.escalation, "ValidUser -> Operator widens access");
    let shown: Vec<String> = edit
        .fields
        .iter()
        .map(|f| format!("{}: {:?} -> {:?}", f.field, f.old, f.new))
        .collect();
    assert_eq!(
        shown,
        [
            r#"name: Some("app name") -> Some("Orders App")"#,
            r#"clearance: Some("ValidUser") -> Some("Operator")"#,
            r#"Orders: Some("ReadWrite") -> None"#,
        ]
    );
    assert_eq!(
        edit.before.as_ref().unwrap().thumbprint,
        Some(tp(&thumb(1)))
    );
}

#[test]
fn narrowing_access_is_an_edit_but_no_escalation() {
    let was = entry(
        "app",
        &thumb(1),
        Clearance::ValidUser,
        &[("Orders", Access::Admin), ("Billing", Access::ReadWrite)],
    );
    let now = app();
    let p = run(
        &store(vec![now]),
        &cluster(vec![registered(&was)]),
        &opts_set(&[&was]),
    );
    assert_eq!(p.changes[0].reason, "permissions changed in certs.toml");
    assert!(!p.changes[0].escalation);
}

#[test]
fn changed_in_the_studio_is_reported_and_set_back() {
    let app = app();
    // Someone removed the database in the Studio: setting it back grants it again.
    let mut studio = registered(&app);
    studio.permissions.clear();
    let p = run(
        &store(vec![app.clone()]),
        &cluster(vec![studio]),
        &opts_set(&[&app]),
    );
    assert_eq!(actions(&p), [(ClusterAction::Edit, Some(thumb(1)))]);
    assert_eq!(
        p.changes[0].reason,
        "changed on the cluster outside ravencert"
    );
    assert!(p.changes[0].escalation);
    // Someone raised it to ClusterAdmin: setting it back narrows it.
    let mut raised = registered(&app);
    raised.clearance = ClusterClearance::ClusterAdmin;
    let p = run(
        &store(vec![app.clone()]),
        &cluster(vec![raised]),
        &opts_set(&[&app]),
    );
    assert_eq!(
        p.changes[0].reason,
        "changed on the cluster outside ravencert"
    );
    assert!(!p.changes[0].escalation);
    assert_eq!(
        p.changes[0].after.as_ref().unwrap().clearance,
        Some(Clearance::ValidUser)
    );
}

#[test]
fn without_a_record_of_what_was_set_the_difference_is_named() {
    let app = app();
    let mut other = registered(&app);
    other.name = "renamed".into();
    let p = run(&store(vec![app]), &cluster(vec![other]), &opts());
    assert_eq!(p.changes[0].reason, "name differs from the store");
}

#[test]
fn reissue_with_overlap_registers_the_new_and_keeps_the_old() {
    let mut old = app();
    old.retire_after = Some(NOW + time::Duration::days(7));
    let new = entry(
        "app",
        UNKNOWN,
        Clearance::ValidUser,
        &[("Orders", Access::ReadWrite)],
    );
    let p = run(
        &store(vec![old.clone(), new]),
        &cluster(vec![registered(&old)]),
        &opts_set(&[&old]),
    );
    assert_eq!(actions(&p), [(ClusterAction::Register, None)]);
    assert_eq!(p.changes[0].reason, "not registered on the cluster");
    // Same access as the certificate it replaces: not an escalation.
    assert!(!p.changes[0].escalation);
}

#[test]
fn reissue_registers_the_new_before_unregistering_the_old() {
    let old = app();
    let new = entry(
        "app",
        &thumb(9),
        Clearance::ValidUser,
        &[("Orders", Access::ReadWrite)],
    );
    // The store's delete budget is used up: the old certificate's unregister mirrors the
    // store's own re-issue in this run, so it is not counted again, and prune is off.
    let o = ClusterOptions {
        max_deletions: 1,
        store_deletions: 1,
        store_removed: [tp(&thumb(1))].into(),
        ..opts_set(&[&old])
    };
    let p = run(&store(vec![new]), &cluster(vec![registered(&old)]), &o);
    assert_eq!(
        actions(&p),
        [
            (ClusterAction::Register, Some(thumb(9))),
            (ClusterAction::Unregister, Some(thumb(1))),
        ]
    );
    assert!(!p.changes[0].escalation);
    assert_eq!(p.changes[1].key.as_deref(), Some("app"));
    assert_eq!(
        p.changes[1].reason,
        format!("no longer in the store: clients.app now uses {}", thumb(9))
    );
}

#[test]
fn foreign_certificate_under_a_declared_name_is_a_warning_naming_both() {
    let app = app();
    let foreign = Registration {
        thumbprint: tp(&thumb(77)),
        ..registered(&app)
    };
    let listing = cluster(vec![registered(&app), foreign]);
    let p = run(&store(vec![app.clone()]), &listing, &opts_set(&[&app]));
    assert!(p.is_empty(), "{:?}", p.changes);
    assert_eq!(p.warnings.len(), 1);
    let w = &p.warnings[0];
    assert!(w.contains(&thumb(77)) && w.contains(&thumb(1)), "{w}");
    assert!(
        w.contains("clients.app") && w.contains("prune = true"),
        "{w}"
    );
    // With prune it is unregistered, in the plan for a reviewer to see.
    let o = ClusterOptions {
        prune: true,
        ..opts_set(&[&app])
    };
    let p = run(&store(vec![app]), &listing, &o);
    assert_eq!(actions(&p), [(ClusterAction::Unregister, Some(thumb(77)))]);
    assert!(p.changes[0].reason.contains("name of clients.app"));
}

#[test]
fn prune_unregisters_strays_but_never_servers_admins_or_ravencerts_own() {
    let app = app();
    let mut listing = cluster(vec![
        registered(&app),
        registration(&thumb(50), "hand upload", ClusterClearance::ValidUser),
        // Another node's certificate, listed by the server as its own.
        registration(&thumb(202), "node b", ClusterClearance::ClusterAdmin),
        registration(&thumb(203), "node c", ClusterClearance::ClusterNode),
        registration(&thumb(204), "ravencert", ClusterClearance::ClusterAdmin),
    ]);
    listing.server_thumbprints.push(tp(&thumb(202)));
    let o = ClusterOptions {
        admin_thumbprint: Some(tp(&thumb(204))),
        ..pruning()
    };
    let p = run(&store(vec![app.clone()]), &listing, &o);
    assert_eq!(actions(&p), [(ClusterAction::Unregister, Some(thumb(50)))]);
    assert_eq!(
        p.changes[0].reason,
        "not in the store ([cluster] prune = true)"
    );
    assert_eq!(p.changes[0].key, None);
    // Without prune the stray stays: kept access, listed with its clearance.
    let p = run(
        &store(vec![app]),
        &listing,
        &ClusterOptions { prune: false, ..o },
    );
    assert!(p.is_empty() && !p.is_settled());
    let kept = p.kept();
    assert_eq!(kept.len(), 1, "{:?}", p.extra);
    assert_eq!(kept[0].thumbprint, tp(&thumb(50)));
    assert_eq!(kept[0].name, "hand upload");
}

#[test]
fn a_collection_is_unregistered_through_its_primary() {
    let listing = partner_collection();
    let o = pruning();
    let p = run(&store(vec![app()]), &listing, &o);
    assert_eq!(
        actions(&p),
        [
            (ClusterAction::Register, Some(thumb(1))),
            (ClusterAction::Unregister, Some(thumb(60))),
        ]
    );
}

#[test]
fn a_primary_goes_with_its_secondaries_counted_and_never_while_one_is_declared() {
    let listing = partner_collection();
    // The primary and its secondary are two deletions: over a limit of one.
    let o = ClusterOptions {
        max_deletions: 1,
        ..pruning()
    };
    let err = plan_cluster(&store(vec![app()]), &listing, &o).unwrap_err();
    assert!(err.to_string().contains("with 1 secondaries"), "{err}");
    // The store declares the secondary (an upload of it alone): the primary stays, warned.
    let held = entry("partner", &thumb(61), Clearance::ValidUser, &[]);
    let o = pruning();
    let p = run(&store(vec![held]), &listing, &o);
    assert_eq!(p.count(ClusterAction::Unregister), 0, "{:?}", p.changes);
    assert_warns(&p, "would remove its secondary");
}

#[test]
fn read_access_on_a_4_1_cluster_is_refused_before_any_change() {
    let reports = entry(
        "reports",
        &thumb(5),
        Clearance::ValidUser,
        &[("Orders", Access::Read)],
    );
    let reg = store(vec![app(), reports]);
    let err = plan_cluster(&reg, &cluster(vec![]), &opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("refused: clients.reports: database access Read (database 'Orders') needs RavenDB 5.2 or later; the cluster at {URL} runs 4.1.0 — declare another access, or upgrade the cluster")
    );
    let mut newer = cluster(vec![]);
    newer.version = version(5, 2);
    assert_eq!(run(&reg, &newer, &opts()).count(ClusterAction::Register), 2);
}

#[test]
fn unregisters_of_strays_count_against_max_deletions() {
    let listing = cluster(vec![
        registration(&thumb(50), "stray a", ClusterClearance::ValidUser),
        registration(&thumb(51), "stray b", ClusterClearance::ValidUser),
    ]);
    let o = ClusterOptions {
        max_deletions: 2,
        store_deletions: 1,
        ..pruning()
    };
    let err = plan_cluster(&store(vec![app()]), &listing, &o).unwrap_err();
    assert!(
        matches!(&err, PlanError::TooManyDeletions { count: 3, max: 2, keys } if keys.contains("stray b") && keys.contains("1 in the store")),
        "{err}"
    );
    let o = ClusterOptions {
        store_deletions: 0,
        ..o
    };
    assert_eq!(
        run(&store(vec![app()]), &listing, &o).count(ClusterAction::Unregister),
        2
    );
}

#[test]
fn ravencerts_own_unregisters_count_unless_this_runs_store_plan_removed_them() {
    // Two certificates the cluster state says ravencert registered, no longer in the store, and
    // not removed by this run's store plan (a hand-edited state, or a store changed by an
    // earlier run): they count against max_deletions like any other unregister, ClusterAdmin
    // included.
    let app = app();
    let gone_a = entry("gone-a", &thumb(30), Clearance::ClusterAdmin, &[]);
    let gone_b = entry("gone-b", &thumb(31), Clearance::ValidUser, &[]);
    let listing = cluster(vec![
        registered(&app),
        registered(&gone_a),
        registered(&gone_b),
    ]);
    let o = ClusterOptions {
        max_deletions: 1,
        ..opts_set(&[&app, &gone_a, &gone_b])
    };
    let err = plan_cluster(&store(vec![app.clone()]), &listing, &o).unwrap_err();
    assert!(
        matches!(&err, PlanError::TooManyDeletions { count: 2, max: 1, keys } if keys.contains(&thumb(30)) && keys.contains(&thumb(31))),
        "{err}"
    );
    // This run's store plan deleted gone-a (counted there): only gone-b counts here.
    let o = ClusterOptions {
        store_deletions: 1,
        store_removed: [tp(&thumb(30))].into(),
        ..o
    };
    let err = plan_cluster(&store(vec![app.clone()]), &listing, &o).unwrap_err();
    assert!(
        matches!(&err, PlanError::TooManyDeletions { count: 2, max: 1, keys } if !keys.contains(&thumb(30)) && keys.contains(&thumb(31)) && keys.contains("1 in the store")),
        "{err}"
    );
    // Both removed by this run's store plan (a re-issue removes none): nothing counted here.
    let o = ClusterOptions {
        store_deletions: 0,
        store_removed: [tp(&thumb(30)), tp(&thumb(31))].into(),
        ..o
    };
    let p = run(&store(vec![app]), &listing, &o);
    assert_eq!(p.count(ClusterAction::Unregister), 2);
    assert!(p
        .changes
        .iter()
        .all(|c| c.reason == "no longer in the store (registered by ravencert)"));
}

#[test]
fn unregistering_every_client_needs_allow_delete_all() {
    let listing = cluster(vec![registration(
        &thumb(50),
        "stray",
        ClusterClearance::ValidUser,
    )]);
    let o = pruning();
    // An empty store (a wrong store path?) would wipe the cluster's clients.
    let err = plan_cluster(&Registry::new(), &listing, &o).unwrap_err();
    assert!(matches!(err, PlanError::UnregistersAll { .. }), "{err}");
    assert!(err.to_string().contains("--allow-delete-all"));
    let o = ClusterOptions {
        allow_delete_all: true,
        ..o
    };
    assert_eq!(run(&Registry::new(), &listing, &o).changes.len(), 1);
}

#[test]
fn a_store_certificate_registered_as_a_server_is_never_edited() {
    let app = app();
    let node = Registration {
        clearance: ClusterClearance::ClusterNode,
        ..registered(&app)
    };
    let p = run(&store(vec![app]), &cluster(vec![node]), &opts());
    assert!(p.is_empty());
    assert!(p.warnings[0].contains("ClusterNode"), "{:?}", p.warnings);
}

#[test]
fn changes_come_registers_then_edits_then_unregisters() {
    let a = entry("a", &thumb(1), Clearance::ValidUser, &[]);
    let mut b_on_cluster = registered(&entry("b", &thumb(2), Clearance::ValidUser, &[]));
    b_on_cluster.name = "old".into();
    let c = entry("c", &thumb(3), Clearance::ValidUser, &[]);
    let listing = cluster(vec![
        registration(&thumb(0), "aaa stray", ClusterClearance::ValidUser),
        b_on_cluster,
    ]);
    let reg = store(vec![a, entry("b", &thumb(2), Clearance::ValidUser, &[]), c]);
    let o = pruning();
    let got: Vec<ClusterAction> = run(&reg, &listing, &o)
        .changes
        .iter()
        .map(|c| c.action)
        .collect();
    use ClusterAction::*;
    assert_eq!(got, [Register, Register, Edit, Unregister]);
    assert_eq!(
        [Register, Edit, Unregister].map(|a| (a.symbol(), a.as_str())),
        [("+", "register"), ("~", "edit"), ("-", "unregister")]
    );
}

/// The store planner's output, projected, as the caller passes it: a `--replace` re-issue.
fn reissued(overlap: Option<crate::model::Period>) -> (Registry, ClusterListing, ClusterOptions) {
    use super::tests as store_plan;
    let mut c = store_plan::client(
        "app",
        Clearance::ValidUser,
        &[("Orders", Access::ReadWrite)],
    );
    c.overlap = overlap;
    let d = store_plan::desired(vec![c], false);
    let actual = store_plan::applied(&d);
    let old = &actual.registry.certificates[0];
    let listing = cluster(vec![registered(old)]);
    let o = opts_set(&[old]);
    let replace = PlanOptions {
        replace: ["app".to_string()].into(),
        ..PlanOptions::default()
    };
    let p = plan(&d, &actual, store_plan::NOW, &replace).unwrap();
    (
        project(&actual.registry, &p, &d, store_plan::NOW),
        listing,
        o,
    )
}

#[test]
fn store_replace_through_project_registers_the_new_then_unregisters_the_old() {
    let (projected, listing, o) = reissued(None);
    let p = run(&projected, &listing, &o);
    assert_eq!(
        actions(&p),
        [
            (ClusterAction::Register, None),
            (ClusterAction::Unregister, Some(thumb(1))),
        ]
    );
    assert_eq!(p.changes[0].key.as_deref(), Some("app"));
    assert!(!p.changes[0].escalation, "same access as before");
    assert_eq!(
        p.changes[1].reason,
        "no longer in the store: clients.app now uses a new certificate (thumbprint known after apply)"
    );
    // With an overlap the old certificate stays registered until it ends.
    let (projected, listing, o) = reissued(Some(crate::model::Period::days(7)));
    let p = run(&projected, &listing, &o);
    assert_eq!(actions(&p), [(ClusterAction::Register, None)]);
}

#[test]
fn the_admins_new_certificate_is_registered_first_and_its_own_access_never_narrowed() {
    let first = entry(
        "aaa-first",
        &thumb(1),
        Clearance::ValidUser,
        &[("Orders", Access::ReadWrite)],
    );
    let new_admin = entry("zz-admin", "(new zz-admin)", Clearance::ClusterAdmin, &[]);
    let o = ClusterOptions {
        admin_key: Some("zz-admin".into()),
        ..opts()
    };
    let p = run(&store(vec![first, new_admin]), &cluster(vec![]), &o);
    let keys: Vec<Option<&str>> = p.changes.iter().map(|c| c.key.as_deref()).collect();
    assert_eq!(
        keys,
        vec![Some("zz-admin"), Some("aaa-first")],
        "{:?}",
        p.changes
    );

    // The certificate ravencert authenticates with, declared narrower than the cluster has it.
    let me = entry("me", &admin(), Clearance::ValidUser, &[]);
    let mut on_cluster = registered(&me);
    on_cluster.clearance = ClusterClearance::ClusterAdmin;
    let p = run(&store(vec![me]), &cluster(vec![on_cluster]), &opts());
    assert!(p.is_empty(), "{:?}", p.changes);
    assert_warns(&p, "never narrows");
}

/// `[cluster] keep` (issue 23): a known stranger is never unregistered (prune on, or once
/// ravencert's own), is not among the kept registrations that need attention, and leaves the
/// plan settled.
#[test]
fn a_known_stranger_is_never_unregistered_and_leaves_the_plan_settled() {
    let app = app();
    let listing = cluster(vec![
        registered(&app),
        registration(&thumb(50), "backup team", ClusterClearance::Operator),
        registration(&thumb(51), "hand upload", ClusterClearance::ValidUser),
        // Once ravencert's own: the store no longer holds it, kept all the same.
        registration(&thumb(52), "old app", ClusterClearance::ValidUser),
    ]);
    let old = entry("old", &thumb(52), Clearance::ValidUser, &[]);
    let keep: Keep = [
        (tp(&thumb(50)), Some("the backup team's".to_string())),
        (tp(&thumb(52)), None),
    ]
    .into();
    let o = ClusterOptions {
        prune: true,
        keep: keep.clone(),
        ..opts_set(&[&old])
    };
    let p = run(&store(vec![app.clone()]), &listing, &o);
    assert_eq!(actions(&p), [(ClusterAction::Unregister, Some(thumb(51)))]);
    let known: Vec<(&str, Option<&str>)> = p
        .known()
        .iter()
        .map(|e| (e.thumbprint.as_str(), e.note.as_deref()))
        .collect();
    assert_eq!(
        known,
        [
            (thumb(50).as_str(), Some("the backup team's")),
            (thumb(52).as_str(), None)
        ]
    );
    assert!(p.kept().is_empty(), "{:?}", p.kept());
    assert_eq!(p.known()[0].state(), RegistrationState::Kept);
    // Without the unknown stranger, nothing to do and nothing needing attention: settled.
    let mut only_known = listing.clone();
    only_known
        .registrations
        .retain(|r| r.thumbprint != tp(&thumb(51)));
    let p = run(&store(vec![app.clone()]), &only_known, &o);
    assert!(p.is_empty() && p.is_settled(), "{p:?}");
    // prune off: the same, with no "kept because prune = false" news about them.
    let p = run(
        &store(vec![app]),
        &only_known,
        &ClusterOptions { prune: false, ..o },
    );
    assert!(p.is_settled() && p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn a_kept_collection_stays_whole_and_keep_that_keeps_nothing_is_a_warning() {
    let listing = partner_collection();
    let app = app();
    let with_keep = |t: String| ClusterOptions {
        keep: [(tp(&t), None)].into(),
        ..pruning()
    };
    // The primary kept: its secondary is kept with it.
    let p = run(&store(vec![app.clone()]), &listing, &with_keep(thumb(60)));
    assert_eq!(p.count(ClusterAction::Unregister), 0, "{:?}", p.changes);
    assert_eq!(p.known().len(), 2, "{:?}", p.extra);
    // The secondary kept: RavenDB would remove it with the primary, so the primary stays.
    let p = run(&store(vec![app.clone()]), &listing, &with_keep(thumb(61)));
    assert_eq!(p.count(ClusterAction::Unregister), 0, "{:?}", p.changes);
    assert_warns(&p, "which [cluster] keep names");
    // keep naming the store's own certificate, or nothing the cluster lists: a warning each.
    for (t, says) in [
        (app.thumbprint.to_string(), "the store holds it"),
        (thumb(99), "not registered on the cluster"),
    ] {
        let p = run(&store(vec![app.clone()]), &listing, &with_keep(t));
        assert_warns(&p, says);
    }
}

#[test]
fn usage_is_known_only_where_the_server_reports_last_use() {
    // 4.1 says nothing: max_unused is then not evaluated, never a pass.
    let mut listing = cluster(vec![]);
    assert_eq!(listing.usage(), None);
    // A server that reports: those it has a record of. No record is unknown (a node keeps
    // last use only since it started), never "never used".
    let used = time::macros::datetime!(2026-05-01 0:00 UTC);
    listing.last_used.insert(tp(&admin()), used);
    let usage = listing.usage().unwrap();
    assert_eq!(usage.get(&tp(&admin())), Some(&Some(used)));
    assert_eq!(usage.get(&tp(&server())), None);
    assert_eq!(usage.len(), 1);
}
