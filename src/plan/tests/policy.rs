//! policy.toml's rules against plans (docs/contract.md §10, issue 25): each violation names its
//! rule, the rule's line and the client, and refuses the plan; rules the plan cannot decide are
//! "not evaluated", never a pass or a fail.

use super::*;
use crate::config::policy::Policy;

fn policy(rules: &str) -> Policy {
    let text = format!("version = 1\n{rules}");
    let path = std::path::Path::new("/cfg/policy.toml");
    crate::config::parse_policy(path, "policy.toml", path, &text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn under(mut d: Desired, rules: &str) -> Desired {
    d.policy_in_force = Some(policy(rules));
    d
}

fn planned(d: &Desired, a: &Actual, opts: &PlanOptions) -> Plan {
    plan(d, a, NOW, opts).unwrap_or_else(|e| panic!("{e}"))
}

/// The plan's violations as (rule, line, client), and its refusal's text.
fn violations(p: &Plan) -> (Vec<(String, usize, String)>, String) {
    let report = p.policy.as_ref().expect("a policy report");
    let v = report
        .violations()
        .map(|v| (v.rule.clone(), v.line, v.client.clone()))
        .collect();
    let refusal = p
        .policy_refusal()
        .map(|e| e.to_string())
        .unwrap_or_default();
    (v, refusal)
}

fn state<'p>(p: &'p Plan, rule: &str) -> &'p RuleState {
    let report = p.policy.as_ref().expect("a policy report");
    &report.rules.iter().find(|r| r.name == rule).unwrap().state
}

const ADMINS: &str = "[[rule]]\nname = \"standing-cluster-admins\"\nclearance = \"ClusterAdmin\"\nallow = [\"admin\", \"breakglass-*\"]\n";

#[test]
fn clearance_allow_refuses_an_unlisted_holder() {
    let d = desired(
        vec![
            client("admin", Clearance::ClusterAdmin, &[]),
            client("breakglass-jane", Clearance::ClusterAdmin, &[]),
            client("ops", Clearance::ClusterAdmin, &[]),
            client("op", Clearance::Operator, &[]),
        ],
        false,
    );
    let p = planned(
        &under(d.clone(), ADMINS),
        &Actual::default(),
        &PlanOptions::default(),
    );
    let (v, refusal) = violations(&p);
    assert_eq!(v, [("standing-cluster-admins".into(), 2, "ops".into())]);
    assert!(
        refusal.contains("rule 'standing-cluster-admins' (policy.toml:2): clients.ops holds ClusterAdmin, which rule 'standing-cluster-admins' allows only for admin, breakglass-*"),
        "{refusal}"
    );
    let rule = &p.policy.as_ref().unwrap().rules[0];
    assert_eq!(rule.selected, ["admin", "breakglass-jane", "ops"]);
    // Without the stray holder it holds, and the plan is not refused.
    let ok = desired(vec![client("admin", Clearance::ClusterAdmin, &[])], false);
    let p = planned(
        &under(ok, ADMINS),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert_eq!(state(&p, "standing-cluster-admins"), &RuleState::Holds);
    assert!(p.policy_refusal().is_none());
    // "or above": an Operator rule catches a ClusterAdmin too; allow = [] allows nobody.
    let none = "[[rule]]\nname = \"no-operators\"\nclearance = \"Operator\"\nallow = []\n";
    let p = planned(&under(d, none), &Actual::default(), &PlanOptions::default());
    let (v, refusal) = violations(&p);
    assert_eq!(v.len(), 4, "{v:?}");
    assert!(
        refusal.contains("clients.ops holds ClusterAdmin (Operator or above), which rule 'no-operators' allows for no client"),
        "{refusal}"
    );
}

#[test]
fn require_until_refuses_a_client_without() {
    let rules = "[[rule]]\nname = \"break-glass-is-short\"\nclients = [\"breakglass-*\"]\nrequire_until = true\n";
    let ending = ClientDesired {
        until: Some(NOW + time::Duration::hours(4)),
        ..client("breakglass-ann", Clearance::ClusterAdmin, &[])
    };
    let d = desired(
        vec![
            ending,
            client("breakglass-bob", Clearance::ClusterAdmin, &[]),
            client("app", Clearance::Operator, &[]),
        ],
        false,
    );
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    let (v, refusal) = violations(&p);
    assert_eq!(
        v,
        [("break-glass-is-short".into(), 2, "breakglass-bob".into())]
    );
    assert!(
        refusal.contains(
            "clients.breakglass-bob has no until, which rule 'break-glass-is-short' requires"
        ),
        "{refusal}"
    );
}

#[test]
fn max_validity_counts_until() {
    let rules = "[[rule]]\nname = \"short\"\nmax_validity = \"8h\"\n";
    // Validity 365d, but until 4 hours away: the certificate ends then.
    let cut = ClientDesired {
        until: Some(NOW + time::Duration::hours(4)),
        ..client("cut", Clearance::ClusterAdmin, &[])
    };
    let d = desired(vec![cut, client("long", Clearance::Operator, &[])], false);
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    let (v, refusal) = violations(&p);
    assert_eq!(v, [("short".into(), 2, "long".into())]);
    assert!(
        refusal.contains(
            "clients.long would hold access for 1y, more than rule 'short''s max_validity 8h"
        ),
        "{refusal}"
    );
    // An upload counts its file's lifetime (301 days here).
    let mut d = desired(vec![upload("partner", Clearance::Operator, &[])], false);
    d.files
        .uploads
        .insert("partner".into(), vec![uploaded("Partner", 1)]);
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert!(
        violations(&p)
            .1
            .contains("clients.partner would hold access for 301d"),
        "{:?}",
        violations(&p)
    );
    // One a review did not read is not evaluated.
    let d = desired(vec![upload("partner", Clearance::Operator, &[])], false);
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert!(
        matches!(state(&p, "short"), RuleState::NotEvaluated(why) if why.contains("clients.partner")),
        "{:?}",
        p.policy
    );
}

#[test]
fn max_access_counts_operators_as_admin() {
    let rules = "[[rule]]\nname = \"payments-read-only\"\ndatabase = \"Payments\"\nmax_access = \"Read\"\nallow = [\"payments-api\"]\n";
    let d = desired(
        vec![
            client(
                "reader",
                Clearance::ValidUser,
                &[("payments", Access::Read)],
            ),
            client(
                "writer",
                Clearance::ValidUser,
                &[("PAYMENTS", Access::ReadWrite)],
            ),
            client(
                "payments-api",
                Clearance::ValidUser,
                &[("Payments", Access::Admin)],
            ),
            client("ops", Clearance::Operator, &[]),
            client("orders", Clearance::ValidUser, &[("Orders", Access::Admin)]),
        ],
        false,
    );
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    let (v, refusal) = violations(&p);
    let clients: Vec<&str> = v.iter().map(|(_, _, c)| c.as_str()).collect();
    assert_eq!(clients, ["ops", "writer"]);
    assert!(
        refusal.contains("clients.ops has Admin on Payments (as Operator), above rule 'payments-read-only''s max_access Read"),
        "{refusal}"
    );
    assert!(
        refusal.contains("clients.writer has ReadWrite on Payments, above"),
        "{refusal}"
    );
    let rule = &p.policy.as_ref().unwrap().rules[0];
    assert_eq!(rule.selected, ["ops", "payments-api", "reader", "writer"]);
}

#[test]
fn keys_refuses_another_type() {
    let rules = "[[rule]]\nname = \"modern-keys\"\nkeys = [\"ec-p384\", \"rsa-4096\"]\n";
    let d = desired(vec![client("app", Clearance::Operator, &[])], false);
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert!(
        violations(&p).1.contains(
            "clients.app uses ec-p256, not one of rule 'modern-keys''s keys (rsa-4096, ec-p384)"
        ),
        "{:?}",
        violations(&p)
    );
    // An upload whose file's key type is not known: not evaluated.
    let mut d = desired(vec![upload("partner", Clearance::Operator, &[])], false);
    d.files
        .uploads
        .insert("partner".into(), vec![uploaded("Partner", 1)]);
    let p = planned(
        &under(d.clone(), rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert!(
        matches!(state(&p, "modern-keys"), RuleState::NotEvaluated(_)),
        "{:?}",
        p.policy
    );
    // Known and allowed: holds.
    d.files.uploads.get_mut("partner").unwrap()[0].info.key_spec = Some(KeySpec::Rsa4096);
    let p = planned(
        &under(d, rules),
        &Actual::default(),
        &PlanOptions::default(),
    );
    assert_eq!(state(&p, "modern-keys"), &RuleState::Holds);
}

const IDLE: &str = "[[rule]]\nname = \"no-idle-access\"\nmax_unused = \"90d\"\n";

#[test]
fn max_unused_refuses_idle_exempts_disabled() {
    let d = desired(
        vec![
            client("idle", Clearance::Operator, &[]),
            client("busy", Clearance::Operator, &[]),
            client("never", Clearance::Operator, &[]),
            ClientDesired {
                disabled: true,
                ..client("parked", Clearance::Operator, &[])
            },
        ],
        false,
    );
    let mut a = applied(&d);
    // `never` was issued 200 days ago and never used; the others 17 days ago (applied()).
    let never = a
        .registry
        .certificates
        .iter_mut()
        .find(|e| e.key == "never")
        .unwrap();
    never.not_before = NOW - time::Duration::days(200);
    never.not_after = never.not_before + time::Duration::days(7 + 365);
    let thumb_of = |a: &Actual, k: &str| {
        let e = a.registry.certificates.iter().find(|e| e.key == k).unwrap();
        e.thumbprint.known().unwrap().clone()
    };
    let usage: Usage = [
        (thumb_of(&a, "idle"), Some(NOW - time::Duration::days(120))),
        (thumb_of(&a, "busy"), Some(NOW - time::Duration::days(1))),
        (thumb_of(&a, "never"), None),
        (
            thumb_of(&a, "parked"),
            Some(NOW - time::Duration::days(400)),
        ),
    ]
    .into();
    let opts = PlanOptions {
        cluster_usage: Some(usage),
        ..PlanOptions::default()
    };
    let p = planned(&under(d, IDLE), &a, &opts);
    let (v, refusal) = violations(&p);
    let clients: Vec<&str> = v.iter().map(|(_, _, c)| c.as_str()).collect();
    assert_eq!(clients, ["idle", "never"], "{refusal}");
    assert!(
        refusal.contains("clients.idle was last used 2026-02-01, longer ago than rule 'no-idle-access''s max_unused 90d — remove it or set disabled = true"),
        "{refusal}"
    );
    assert!(
        refusal.contains("clients.never has not been used since it was issued on 2025-11-20"),
        "{refusal}"
    );
    assert!(p.changes.is_empty(), "{:?}", p.changes);
}

#[test]
fn max_unused_takes_no_record_for_unknown_not_never_used() {
    // The node restarted: it has a record of `busy` only. `quiet` is not taken for never used
    // (that would refuse every apply after a restart).
    let d = desired(
        vec![
            client("busy", Clearance::Operator, &[]),
            client("quiet", Clearance::Operator, &[]),
        ],
        false,
    );
    let a = applied(&d);
    let busy = a.registry.certificates[0]
        .thumbprint
        .known()
        .unwrap()
        .clone();
    let opts = PlanOptions {
        cluster_usage: Some([(busy, Some(NOW - time::Duration::days(1)))].into()),
        ..PlanOptions::default()
    };
    // Both issued 17 days ago (applied()): a 10-day rule would refuse `quiet` if no record
    // meant never used.
    let rule = "[[rule]]\nname = \"no-idle-access\"\nmax_unused = \"10d\"\n";
    let p = planned(&under(d, rule), &a, &opts);
    assert!(p.policy_refusal().is_none(), "{:?}", p.policy);
    assert!(
        matches!(state(&p, "no-idle-access"), RuleState::NotEvaluated(why) if why.contains("no record of clients.quiet's last use")),
        "{:?}",
        state(&p, "no-idle-access")
    );
}

#[test]
fn max_unused_not_evaluated_without_usage() {
    let d = desired(vec![client("idle", Clearance::Operator, &[])], false);
    let mut a = applied(&d);
    a.registry.certificates[0].not_before = NOW - time::Duration::days(400);
    let p = planned(&under(d, IDLE), &a, &PlanOptions::default());
    assert_eq!(
        state(&p, "no-idle-access"),
        &RuleState::NotEvaluated("the cluster does not report last use".into())
    );
    assert!(p.policy_refusal().is_none());
}

#[test]
fn kept_undeclared_violation_refuses() {
    let both = desired(
        vec![
            client("admin", Clearance::ClusterAdmin, &[]),
            client("old-admin", Clearance::ClusterAdmin, &[]),
        ],
        false,
    );
    let a = applied(&both);
    let now = desired(vec![client("admin", Clearance::ClusterAdmin, &[])], false);
    let p = planned(&under(now.clone(), ADMINS), &a, &PlanOptions::default());
    assert_eq!(p.kept.len(), 1);
    let (v, refusal) = violations(&p);
    assert_eq!(
        v,
        [("standing-cluster-admins".into(), 2, "old-admin".into())]
    );
    assert!(
        refusal.contains("clients.old-admin holds ClusterAdmin, which rule 'standing-cluster-admins' allows only for admin, breakglass-* (it is no longer declared but stays registered: prune = false; set prune = true to remove it)"),
        "{refusal}"
    );
    // With prune it is deleted: the rule holds.
    let mut pruned = under(now, ADMINS);
    pruned.declared.store.prune = true;
    let p = planned(&pruned, &a, &PlanOptions::default());
    assert!(p.policy_refusal().is_none(), "{:?}", p.policy);
}

#[test]
fn no_policy_no_report() {
    let d = desired(vec![client("ops", Clearance::ClusterAdmin, &[])], false);
    let p = planned(&d, &Actual::default(), &PlanOptions::default());
    assert_eq!(p.policy, None);
    assert!(p.policy_refusal().is_none());
}

#[test]
fn a_kept_certificate_keeps_the_until_it_was_applied_with() {
    // breakglass-ann applied with an until, then its table removed (prune off): the store's
    // recorded end still satisfies require_until; one applied without an until does not.
    let rules = "[[rule]]\nname = \"break-glass-is-short\"\nclients = [\"breakglass-*\"]\nrequire_until = true\n";
    let ending = ClientDesired {
        until: Some(NOW + time::Duration::hours(4)),
        ..client("breakglass-ann", Clearance::ClusterAdmin, &[])
    };
    let a = applied(&desired(
        vec![
            ending,
            client("breakglass-bob", Clearance::ClusterAdmin, &[]),
        ],
        false,
    ));
    let none = desired(vec![], false);
    let p = planned(
        &under(none, rules),
        &a,
        &PlanOptions {
            allow_delete_all: true,
            ..PlanOptions::default()
        },
    );
    let (v, _) = violations(&p);
    assert_eq!(
        v,
        [("break-glass-is-short".into(), 2, "breakglass-bob".into())]
    );
}
