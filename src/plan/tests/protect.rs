//! `protect = true`: a protected client leaves or is re-issued only in two reviewed steps
//! (docs/contract.md §4).

use super::*;

#[test]
fn protect_blocks_replacement_unless_named() {
    let mut c = client("a", Clearance::Operator, &[]);
    c.protect = true;
    let d = desired(vec![c], false);
    let mut a = applied(&d);
    a.bundles_ok.clear();
    let p = run(&d, &a);
    assert!(p.is_empty());
    assert!(p.warnings.iter().any(|w| w.contains("protected")));
}

#[test]
fn protect_is_recorded_by_an_update_of_its_own() {
    let d = desired(vec![client("a", Clearance::Operator, &[])], false);
    let a = applied(&d);
    let mut p2 = d.clone();
    p2.declared.clients.get_mut("a").unwrap().protect = true;
    let p = run(&p2, &a);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!((c.action, c.escalation), (Action::Update, false));
    assert_eq!(c.reason, "protect changed in certs.toml");
    assert_eq!(
        c.fields,
        vec![FieldChange::new(
            Field::Protect,
            Some("false".into()),
            Some("true".into())
        )]
    );
    assert!(c.after.as_ref().is_some_and(|f| f.protect));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // What the apply records: the projection protects it, and then nothing is left to do.
    let mut after = a.clone();
    after.registry = project(&a.registry, &p, &p2, NOW);
    assert!(after.registry.certificates[0].protect);
    assert!(run(&p2, &after).is_empty());
    // Dropped: an update again, with a note that it may now go.
    let p = run(&d, &after);
    assert_eq!(p.changes[0].action, Action::Update);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("client 'a' is no longer protected")),
        "{:?}",
        p.warnings
    );
}

/// The refusal's message for `key`, or a panic naming what the plan did instead.
fn refusal(r: Result<Plan, PlanError>, key: &str) -> String {
    match r {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("client '{key}' is protected")),
                "{text}"
            );
            assert!(text.contains("drop `protect` first, apply, then"), "{text}");
            text
        }
        other => panic!("not refused for protecting {key}: {other:?}"),
    }
}

fn protected(key: &str) -> ClientDesired {
    ClientDesired {
        protect: true,
        ..client(key, Clearance::ClusterAdmin, &[])
    }
}

#[test]
fn a_protected_client_is_never_deleted_in_one_step() {
    let app = client("app", Clearance::ValidUser, &[]);
    let d = desired(vec![protected("root"), app.clone()], true);
    let a = applied(&d);
    // Its table removed, with prune on.
    let removed = desired(vec![app.clone()], true);
    let text = refusal(plan(&removed, &a, NOW, &PlanOptions::default()), "root");
    assert!(
        text.ends_with("drop `protect` first, apply, then remove it"),
        "{text}"
    );
    assert_eq!(
        plan(&removed, &a, NOW, &PlanOptions::default())
            .unwrap_err()
            .at_key(),
        None,
        "no line of certs.toml declares it any more"
    );
    // Renamed: the old key is what goes.
    let renamed = desired(vec![protected("break-glass"), app.clone()], true);
    refusal(plan(&renamed, &a, NOW, &PlanOptions::default()), "root");
    // Neither --replace nor --allow-delete-all lets it through.
    let opts = PlanOptions {
        allow_delete_all: true,
        replace: ["app".to_string()].into(),
        ..PlanOptions::default()
    };
    refusal(plan(&removed, &a, NOW, &opts), "root");
    // Prune off: kept, with the usual warning.
    let kept = run(&desired(vec![app.clone()], false), &a);
    assert!(kept.is_empty(), "{:?}", kept.changes);

    // Two reviewed steps: protect dropped and applied, then the removal is a plain delete.
    let dropped = desired(
        vec![client("root", Clearance::ClusterAdmin, &[]), app],
        true,
    );
    let step_one = run(&dropped, &a);
    assert_eq!(step_one.count(Action::Update), step_one.changes.len());
    let mut after = a.clone();
    after.registry = project(&a.registry, &step_one, &dropped, NOW);
    let step_two = run(&removed, &after);
    assert_eq!(
        step_two
            .changes
            .iter()
            .map(|c| (c.action, c.key.as_str()))
            .collect::<Vec<_>>(),
        vec![(Action::Delete, "root")]
    );
}

#[test]
fn the_end_of_a_protected_clients_overlap_is_not_a_deletion_of_it() {
    let mut root = protected("root");
    root.overlap = Some(Period::days(14));
    let d = desired(vec![root], false);
    let a = applied(&d);
    let replaced = plan(
        &d,
        &a,
        NOW,
        &PlanOptions {
            replace: ["root".to_string()].into(),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let mut after = a.clone();
    after.registry = project(&a.registry, &replaced, &d, NOW);
    for e in &mut after.registry.certificates {
        if e.thumbprint.known().is_none() {
            e.thumbprint = thumb(99).into();
        }
    }
    let later = plan(
        &d,
        &after,
        NOW + time::Duration::days(15),
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(
        later
            .changes
            .iter()
            .any(|c| c.action == Action::Delete && c.reason == "rotation overlap ended"),
        "{:?}",
        later.changes
    );
}

#[test]
fn a_protected_client_is_not_reissued_by_a_change_of_certs_toml() {
    let d = desired(vec![protected("root")], false);
    let a = applied(&d);
    let with = |f: &dyn Fn(&mut ClientDesired)| {
        let mut d2 = d.clone();
        f(d2.declared.clients.get_mut("root").unwrap());
        d2
    };
    let rekeyed = with(&|c| {
        if let ClientSpec::Generate(g) = &mut c.source {
            g.key = KeySpec::EcP384;
        }
    });
    let text = refusal(plan(&rekeyed, &a, NOW, &PlanOptions::default()), "root");
    assert!(text.contains("key ec-p256 -> ec-p384"), "{text}");
    assert!(text.contains("--replace root"), "{text}");
    // At its line of certs.toml.
    let at = plan(&rekeyed, &a, NOW, &PlanOptions::default())
        .unwrap_err()
        .at_key();
    assert_eq!(at.map(|(k, _)| k), Some("clients.root".to_string()));
    let longer = with(&|c| {
        if let ClientSpec::Generate(g) = &mut c.source {
            g.validity = Period::days(730);
        }
    });
    refusal(plan(&longer, &a, NOW, &PlanOptions::default()), "root");
    // Dropping protect in the same step: the store remembers it.
    let mut dropped = rekeyed.clone();
    dropped.declared.clients.get_mut("root").unwrap().protect = false;
    refusal(plan(&dropped, &a, NOW, &PlanOptions::default()), "root");
    // A store written before protect was recorded: certs.toml's protect counts too.
    let mut legacy = a.clone();
    legacy.registry.certificates[0].protect = false;
    refusal(
        plan(&rekeyed, &legacy, NOW, &PlanOptions::default()),
        "root",
    );
    // --replace root: the one-step re-issue.
    let named = PlanOptions {
        replace: ["root".to_string()].into(),
        ..PlanOptions::default()
    };
    let p = plan(&rekeyed, &a, NOW, &named).unwrap();
    assert_eq!(p.changes[0].action, Action::Replace);
    assert!(
        p.changes[0].reason.starts_with("--replace root; key"),
        "{}",
        p.changes[0].reason
    );
}

#[test]
fn a_protected_clients_renewal_is_a_warning_never_a_refusal() {
    let d = desired(vec![protected("root")], false);
    let a = applied(&d);
    // 15 days left, inside renew_before: not re-issued, a warning; the same once expired.
    for days in [340, 400] {
        let p = plan(
            &d,
            &a,
            NOW + time::Duration::days(days),
            &PlanOptions::default(),
        )
        .unwrap();
        assert!(
            !p.changes.iter().any(|c| c.key == "root"),
            "{:?}",
            p.changes
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("client 'root' is protected: not re-issued")
                    && w.contains("--replace root")),
            "{:?}",
            p.warnings
        );
    }
}

#[test]
fn a_protected_uploads_new_certificate_is_refused() {
    let partner = ClientDesired {
        protect: true,
        ..upload("partner", Clearance::ValidUser, &[("Orders", Access::Read)])
    };
    let mut d = desired(vec![partner], false);
    d.files
        .uploads
        .insert("partner".into(), vec![uploaded("partner", 50)]);
    let mut a = applied(&d);
    a.registry.certificates[0].thumbprint = thumb(50).into();
    a.registry.certificates[0].source = Origin::Uploaded;
    assert!(run(&d, &a).is_empty());
    d.files
        .uploads
        .insert("partner".into(), vec![uploaded("partner", 51)]);
    let text = refusal(plan(&d, &a, NOW, &PlanOptions::default()), "partner");
    assert!(text.contains("partner.pem now holds"), "{text}");
}

#[test]
fn a_review_plan_refuses_a_pull_request_that_removes_a_protected_client() {
    let app = client("app", Clearance::ValidUser, &[]);
    let base = desired(vec![protected("root"), app.clone()], true);
    let assumed = assumed_store(&base, NOW);
    let head = desired(vec![app], true);
    refusal(plan(&head, &assumed, NOW, &PlanOptions::default()), "root");
}
