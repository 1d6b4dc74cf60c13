//! Properties of the planner over random configs and stores (proptest):
//! - applying a plan and planning again gives no change;
//! - nothing is deleted unless prune = true or a rotation overlap ended;
//! - every change that widens access is flagged as an escalation;
//! - a protected client is never deleted or re-issued by certs.toml in one step, and leaves
//!   in two: protect dropped and applied, then the change;
//! - no certificate outlives its client's `until`, and extending access in time is flagged.
//!
//! That a plan does not depend on the process that makes it (hash order, threads) is checked
//! across two processes in tests/it/outputs.rs: within one process it could not fail.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use ravencert::config::{
    ClientDesired, ClientSpec, Declared, Desired, GenerateSpec, ServerDesired, ServerSpec,
    StoreSettings,
};
use ravencert::model::{Access, Clearance, KeySpec, Period, PfxProfile, RenewBefore};
use ravencert::plan::{self, Action, PlanError, PlanOptions};
use ravencert::registry::{Actual, Registry};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2027-03-01 00:00 UTC);

fn clearance() -> impl Strategy<Value = Clearance> {
    prop_oneof![
        Just(Clearance::ValidUser),
        Just(Clearance::Operator),
        Just(Clearance::ClusterAdmin)
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Read),
        Just(Access::ReadWrite),
        Just(Access::Admin)
    ]
}

fn key_spec() -> impl Strategy<Value = KeySpec> {
    prop_oneof![Just(KeySpec::EcP256), Just(KeySpec::EcP384)]
}

prop_compose! {
    fn client(key: String)(
        clearance in clearance(),
        dbs in prop::collection::btree_map(prop::sample::select(vec!["Orders", "Billing", "Reports"]), access(), 0..3),
        name_suffix in 0..3u8,
        key_spec in key_spec(),
        protect in prop::bool::weighted(0.2),
        overlap in prop::option::of(1..20i64),
        until in until(),
        disabled in prop::bool::weighted(0.1),
    ) -> ClientDesired {
        let permissions: BTreeMap<String, Access> = if clearance == Clearance::ValidUser {
            dbs.into_iter().map(|(d, a)| (d.to_string(), a)).collect()
        } else {
            BTreeMap::new()
        };
        ClientDesired {
            name: format!("{key} {name_suffix}"),
            key: key.clone(),
            clearance,
            permissions,
            protect,
            overlap: overlap.map(Period::days),
            source: ClientSpec::Generate(GenerateSpec {
                key: key_spec,
                validity: Period::days(365),
                renew_before: RenewBefore::Period(Period::days(30)),
                pfx: PfxProfile::Modern,
                password: None,
            }),
            // certs.toml refuses `until` beside `protect`.
            until: until.filter(|_| !protect),
            disabled,
        }
    }
}

/// A client's `until`: mostly none; else passed, hours away (inside renew_before: the
/// certificate is cut at it), or after the validity.
fn until() -> impl Strategy<Value = Option<OffsetDateTime>> {
    prop_oneof![
        6 => Just(None),
        1 => (1..48i64).prop_map(|h| Some(NOW - time::Duration::hours(h))),
        2 => (1..72i64).prop_map(|h| Some(NOW + time::Duration::hours(h))),
        1 => (400..500i64).prop_map(|d| Some(NOW + time::Duration::days(d))),
    ]
}

fn desired() -> impl Strategy<Value = Desired> {
    let keys = prop::sample::subsequence(vec!["a", "b", "c", "d", "e", "f"], 0..=6);
    (keys, any::<bool>(), 0..4u32)
        .prop_flat_map(|(keys, prune, max)| {
            let clients: Vec<_> = keys.iter().map(|k| client(k.to_string())).collect();
            (clients, Just(prune), Just(max))
        })
        .prop_map(|(clients, prune, max)| Desired {
            declared: Declared {
                config_path: PathBuf::from("/cfg/certs.toml"),
                store: StoreSettings {
                    path: PathBuf::from("/cfg/store"),
                    declared_path: "store".into(),
                    prune,
                    max_deletions: max,
                },
                server: Some(ServerDesired {
                    source: ServerSpec::Generate {
                        name: "cluster.example.com".into(),
                        dns: vec!["cluster.example.com".into()],
                        key: KeySpec::EcP256,
                        validity: Period::days(365),
                        renew_before: RenewBefore::Period(Period::days(30)),
                    },
                    export: None,
                    install: None,
                }),
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
        })
}

/// The store after applying `plan` to `actual`: the planner's own projection, with the
/// placeholders a real apply fills in (fresh thumbprints, bundles present).
fn applied(desired: &Desired, actual: &Actual, plan: &plan::Plan, counter: &mut u32) -> Actual {
    let mut reg: Registry = ravencert::plan::project(&actual.registry, plan, desired, NOW);
    for t in reg
        .server
        .iter_mut()
        .map(|s| &mut s.thumbprint)
        .chain(reg.certificates.iter_mut().map(|c| &mut c.thumbprint))
    {
        if t.known().is_none() {
            *counter += 1;
            *t = format!("{:040X}", *counter).into();
        }
    }
    reg.normalize();
    Actual {
        bundles_ok: reg
            .certificates
            .iter()
            .filter(|c| c.retire_after.is_none())
            .map(|c| c.key.clone())
            .collect(),
        registry: reg,
        exists: true,
        sealed: true,
        ..Actual::default()
    }
}

fn everything_allowed() -> PlanOptions {
    PlanOptions {
        allow_delete_all: true,
        ..PlanOptions::default()
    }
}

fn unlimited(mut d: Desired) -> Desired {
    d.declared.store.max_deletions = 0;
    d
}

/// `d` with no client protected.
fn unprotected(d: &Desired) -> Desired {
    let mut d = d.clone();
    for c in d.declared.clients.values_mut() {
        c.protect = false;
    }
    d
}

/// Going from `first` (applied as `start`) to `second`: in one step, or, when that deletes or
/// re-issues a protected client (refused), in the two reviewed steps: `first` without protect,
/// applied, then `second` without it. The config and store the last plan is for, and the plan.
fn in_steps(
    first: &Desired,
    second: &Desired,
    start: &Actual,
    n: &mut u32,
) -> (Desired, Actual, plan::Plan) {
    match plan::plan(second, start, NOW, &everything_allowed()) {
        Ok(p) => (second.clone(), start.clone(), p),
        Err(PlanError::Protected { .. }) => {
            let dropped = unprotected(first);
            let step = plan::plan(&dropped, start, NOW, &everything_allowed()).unwrap();
            assert!(
                step.changes.iter().all(|c| c.action == Action::Update),
                "dropping protect only updates: {:?}",
                step.changes
            );
            let start = applied(&dropped, start, &step, n);
            let second = unprotected(second);
            let p = plan::plan(&second, &start, NOW, &everything_allowed()).unwrap();
            (second, start, p)
        }
        Err(e) => panic!("{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn apply_then_plan_is_empty(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let (second, start, p) = in_steps(&first, &second, &start, &mut n);
        let after = applied(&second, &start, &p, &mut n);
        let again = plan::plan(&second, &after, NOW, &everything_allowed()).unwrap();
        prop_assert!(again.changes.is_empty(), "not converged: {:?}", again.changes);
    }

    #[test]
    fn a_protected_client_leaves_only_in_two_steps(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let recorded = |key: &str| start.registry.certificates.iter().any(|e| e.key == key && e.protect);
        let declared = |key: &str| second.declared.clients.get(key).is_some_and(|c| c.protect);
        match plan::plan(&second, &start, NOW, &everything_allowed()) {
            Ok(p) => {
                for c in &p.changes {
                    prop_assert!(
                        !(recorded(&c.key) && c.action == Action::Delete),
                        "deleted protected {}: {}", c.key, c.reason
                    );
                    prop_assert!(
                        !((recorded(&c.key) || declared(&c.key)) && c.action == Action::Replace),
                        "re-issued protected {}: {}", c.key, c.reason
                    );
                }
            }
            Err(PlanError::Protected { key, .. }) => {
                prop_assert!(recorded(&key) || declared(&key), "{key} is not protected");
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
        // The two steps always get there.
        let (second, start, p) = in_steps(&first, &second, &start, &mut n);
        let after = applied(&second, &start, &p, &mut n);
        prop_assert!(plan::plan(&second, &after, NOW, &everything_allowed()).unwrap().changes.is_empty());
    }

    #[test]
    fn nothing_is_deleted_without_prune_or_overlap_end(first in desired(), second in desired()) {
        let first = unlimited(first);
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        if let Ok(p) = plan::plan(&second, &start, NOW, &everything_allowed()) {
            for c in p.changes.iter().filter(|c| c.action == Action::Delete) {
                // An end of access is a reviewed decision: the client's until, declared or
                // recorded, has passed.
                let ended = c.reason.starts_with("access ended ")
                    && second.declared.clients.get(&c.key).map_or_else(
                        || start.registry.certificates.iter().any(|e| e.key == c.key && e.until.is_some_and(|u| u <= NOW)),
                        |d| d.until.is_some_and(|u| u <= NOW),
                    );
                prop_assert!(
                    second.declared.store.prune || c.reason == "rotation overlap ended" || ended,
                    "deleted {} without prune: {}", c.key, c.reason
                );
                prop_assert!(!second.declared.clients.contains_key(&c.key) || c.reason == "rotation overlap ended" || ended);
            }
            let deletes = p.count(Action::Delete);
            prop_assert!(second.declared.store.max_deletions == 0 || deletes <= second.declared.store.max_deletions as usize);
        }
    }

    #[test]
    fn every_widening_is_flagged(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let (_, _, p) = in_steps(&first, &second, &start, &mut n);
        for c in &p.changes {
            let Some(after) = &c.after else { continue };
            let (Some(new_clearance), Some(new_perms)) = (after.clearance, after.permissions.as_ref()) else { continue };
            // Independent of the planner's own rule: compare access level by level.
            let old = c.before.as_ref().and_then(|b| Some((b.clearance?, b.permissions.clone()?)));
            let widened = match old {
                // A client created disabled on a cluster grants nothing until it is enabled
                // (flagged then); without [cluster] its bundle grants what it says.
                None => !(after.disabled && second.declared.cluster.is_some())
                    && (new_clearance != Clearance::ValidUser || !new_perms.is_empty()),
                Some((old_clearance, old_perms)) => {
                    new_clearance > old_clearance
                        || (new_clearance == Clearance::ValidUser
                            && old_clearance == Clearance::ValidUser
                            && new_perms.iter().any(|(db, a)| {
                                old_perms
                                    .iter()
                                    .find(|(o, _)| o.eq_ignore_ascii_case(db))
                                    .is_none_or(|(_, oa)| a > oa)
                            }))
                }
            };
            // A disabled client enabled again gets its access back: a widening too.
            let enabled = c.before.as_ref().is_some_and(|b| b.disabled) && !after.disabled;
            // Access for longer is a widening too: a later until, or none where there was one.
            let longer = match (c.before.as_ref().and_then(|b| b.until), after.until) {
                (Some(_), None) => c.before.is_some(),
                (Some(a), Some(b)) => b > a,
                (None, _) => false,
            };
            prop_assert_eq!(c.escalation, widened || longer || enabled, "{:?} {} escalation flag", c.action, c.key);
        }
    }

    #[test]
    fn no_certificate_outlives_its_until(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let (second, start, p) = in_steps(&first, &second, &start, &mut n);
        let after = applied(&second, &start, &p, &mut n);
        for e in &after.registry.certificates {
            let Some(u) = second.declared.clients.get(&e.key).and_then(|c| c.until) else { continue };
            prop_assert!(u > NOW, "{} kept after its until {u}", e.key);
            prop_assert!(e.not_after <= u || e.retire_after.is_some_and(|r| r <= u),
                "{} ends {} after its until {u} (retire_after {:?})", e.key, e.not_after, e.retire_after);
            prop_assert!(e.retire_after.is_none_or(|r| r <= u), "{} retires after its until", e.key);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// policy.toml (issue 25): no plan under a policy ever leaves a store that breaks it. The rules
// are generated as text (parsed by ravencert) and checked here by the test's own code against
// the store as applied, not through the planner's evaluation.

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// One generated rule, as the test's checker reads it.
#[derive(Debug, Clone)]
enum RuleSpec {
    /// `clearance` + `allow`: only these keys may hold it (or above).
    Holders(Clearance, Vec<&'static str>),
    /// `clients` + `require_until`.
    Until(Vec<&'static str>),
    /// `max_validity`, in days.
    Validity(i64),
    /// `database` + `max_access` + `allow` (exempt).
    MaxAccess(&'static str, Access, Vec<&'static str>),
    /// `keys`.
    Keys(Vec<KeySpec>),
}

fn toml_list<T: std::fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

impl RuleSpec {
    fn toml(&self, i: usize) -> String {
        let body = match self {
            RuleSpec::Holders(c, allow) => {
                format!("clearance = \"{c}\"\nallow = {}\n", toml_list(allow))
            }
            RuleSpec::Until(clients) => {
                format!("clients = {}\nrequire_until = true\n", toml_list(clients))
            }
            RuleSpec::Validity(days) => format!("max_validity = \"{days}d\"\n"),
            RuleSpec::MaxAccess(db, max, allow) => format!(
                "database = \"{db}\"\nmax_access = \"{max}\"\nallow = {}\n",
                toml_list(allow)
            ),
            RuleSpec::Keys(keys) => format!("keys = {}\n", toml_list(keys)),
        };
        format!("[[rule]]\nname = \"r{i}\"\n{body}")
    }
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let keys = || prop::sample::subsequence(KEYS.to_vec(), 0..=3);
    prop_oneof![
        (
            prop_oneof![Just(Clearance::Operator), Just(Clearance::ClusterAdmin)],
            keys()
        )
            .prop_map(|(c, a)| RuleSpec::Holders(c, a)),
        prop::sample::subsequence(KEYS.to_vec(), 1..=3).prop_map(RuleSpec::Until),
        prop_oneof![Just(5i64), Just(30), Just(400)].prop_map(RuleSpec::Validity),
        (
            prop::sample::select(vec!["Orders", "billing"]),
            access(),
            keys()
        )
            .prop_map(|(db, max, allow)| RuleSpec::MaxAccess(db, max, allow)),
        prop::sample::subsequence(vec![KeySpec::EcP256, KeySpec::EcP384], 1..=2)
            .prop_map(RuleSpec::Keys),
    ]
}

fn policy_specs() -> impl Strategy<Value = Vec<RuleSpec>> {
    prop::collection::vec(rule_spec(), 1..=3)
}

/// `d` under the generated rules, its unprotected clients given an `until` (none, past, days
/// away, or years away).
fn policed(d: Desired, rules: &[RuleSpec], untils: &[u8]) -> Desired {
    let mut d = unlimited(d);
    for (c, pick) in d.declared.clients.values_mut().zip(untils.iter().cycle()) {
        if !c.protect {
            c.until = match pick % 4 {
                0 => None,
                1 => Some(NOW - time::Duration::days(1)),
                2 => Some(NOW + time::Duration::days(10)),
                _ => Some(NOW + time::Duration::days(5000)),
            };
        }
    }
    let text: String = std::iter::once("version = 1\n".to_string())
        .chain(rules.iter().enumerate().map(|(i, r)| r.toml(i)))
        .collect();
    let path = std::path::Path::new("/cfg/policy.toml");
    let policy = ravencert::config::parse_policy(path, "policy.toml", path, &text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    d.policy_in_force = Some(policy);
    d
}

/// The rules this store breaks, as `rule: key` lines: the test's own reading of each rule,
/// over every certificate in use (a collection by its primary, none waiting out an overlap).
fn broken(rules: &[RuleSpec], d: &Desired, store: &Registry) -> Vec<String> {
    let mut out = Vec::new();
    let active = store
        .certificates
        .iter()
        .filter(|e| e.retire_after.is_none() && e.collection_primary.is_none());
    for e in active {
        // Declared, or for a certificate kept undeclared, the end it was applied with.
        let until = d.declared.clients.get(&e.key).map_or(e.until, |c| c.until);
        let access = |db: &str| {
            if e.clearance >= Clearance::Operator {
                Some(Access::Admin)
            } else {
                e.permissions
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(db))
                    .map(|(_, a)| *a)
            }
        };
        let issued = e.not_before + time::Duration::days(7);
        let end = until.map_or(e.not_after, |u| e.not_after.min(u));
        for (i, rule) in rules.iter().enumerate() {
            let breaks = match rule {
                RuleSpec::Holders(c, allow) => {
                    e.clearance >= *c && !allow.contains(&e.key.as_str())
                }
                RuleSpec::Until(clients) => clients.contains(&e.key.as_str()) && until.is_none(),
                RuleSpec::Validity(days) => end - issued > time::Duration::days(*days),
                RuleSpec::MaxAccess(db, max, allow) => {
                    access(db).is_some_and(|a| a > *max) && !allow.contains(&e.key.as_str())
                }
                RuleSpec::Keys(keys) => e.key_type.is_some_and(|k| !keys.contains(&k)),
            };
            if breaks {
                out.push(format!("r{i}: {}", e.key));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whenever a plan under a policy is not refused, the store it leaves breaks no rule; and
    /// whenever it is refused, that store would break one (the refusal is never spurious).
    #[test]
    fn no_plan_under_a_policy_violates_it(
        first in desired(),
        second in desired(),
        rules in policy_specs(),
        untils in prop::collection::vec(any::<u8>(), 6),
    ) {
        let first = unlimited(first);
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let second = policed(unprotected(&second), &rules, &untils);
        let p = match plan::plan(&second, &start, NOW, &everything_allowed()) {
            Ok(p) => p,
            Err(PlanError::Protected { .. }) => return Ok(()),
            Err(e) => panic!("{e}"),
        };
        let after = applied(&second, &start, &p, &mut n);
        let broken = broken(&rules, &second, &after.registry);
        match p.policy_refusal() {
            None => prop_assert!(broken.is_empty(), "applied a store that breaks {broken:?}; rules {rules:?}"),
            Some(refusal) => {
                prop_assert!(!broken.is_empty(), "refused a store that breaks nothing: {refusal}; rules {rules:?}");
                // Each rule the refusal names is one the store breaks, for that client.
                for v in p.policy.as_ref().unwrap().violations() {
                    let line = format!("{}: {}", v.rule, v.client);
                    prop_assert!(broken.contains(&line), "{line} not broken: {broken:?}\n{refusal}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output escaping: random names full of control, bidi, format and Markdown characters never
// come out raw, in text (with or without color) or in Markdown as GitHub renders it.

/// A name mixing plain letters, look-alikes, controls, bidi and format characters, and every
/// piece of Markdown and HTML syntax.
fn hostile_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Zа-я0-9 ]{1,4}",
        prop::sample::select(vec![
            "\u{1b}[2J",
            "\u{1b}[8m",
            "\u{1b}]8;;http://x\u{7}",
            "\r",
            "\n",
            "\t",
            "\u{7f}",
            "\u{9b}",
            "\u{0}",
            "\u{202e}",
            "\u{202a}",
            "\u{2066}",
            "\u{2069}",
            "\u{200b}",
            "\u{200f}",
            "\u{feff}",
            "\u{2028}",
            "\u{2029}",
            "\u{ad}",
            "\u{e0041}",
            "`",
            "``",
            "```",
            "\\",
            "\\|",
            "|",
            "<img src=x>",
            "<a href=\"http://x\">",
            "</td>",
            "[l](http://x)",
            "![i](http://x)",
            "[^1]",
            "*",
            "**",
            "_",
            "~~",
            "&amp;",
            "&#124;",
            "#",
            "> ",
            "- ",
            "1. ",
            "www.x.com",
            "https://x.io",
            "a@b.co",
            "<!--",
            "]:",
            "\\`",
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 1..8).prop_map(|v| v.concat())
}

fn hostile_plan() -> impl Strategy<Value = plan::Plan> {
    (
        prop::collection::vec(
            (
                hostile_name(),
                hostile_name(),
                hostile_name(),
                any::<bool>(),
            ),
            1..4,
        ),
        prop::collection::vec(hostile_name(), 0..2),
        prop::collection::vec(hostile_name(), 0..2),
    )
        .prop_map(|(changes, warnings, drift)| plan::Plan {
            changes: changes
                .into_iter()
                .enumerate()
                .map(|(i, (key, old, new, created))| plan::Change {
                    action: if created {
                        Action::Create
                    } else {
                        Action::Update
                    },
                    target: plan::Target::Client,
                    key: format!("{key}{i}"),
                    reason: format!("reason {old}"),
                    escalation: true,
                    before: None,
                    after: None,
                    fields: vec![
                        plan::FieldChange {
                            field: plan::Field::Name,
                            old: (!created).then(|| old.clone()),
                            new: Some(new.clone()),
                        },
                        plan::FieldChange {
                            field: plan::Field::Clearance,
                            old: (!created).then(|| "Operator".into()),
                            new: Some("ClusterAdmin".into()),
                        },
                    ],
                    thumbprints: vec![],
                })
                .collect(),
            kept: warnings
                .iter()
                .map(|name| plan::Kept {
                    key: "kept".into(),
                    name: name.clone(),
                    thumbprint: "A".repeat(40).into(),
                    clearance: Clearance::ValidUser,
                    permissions: [(name.clone(), ravencert::model::Access::Read)].into(),
                })
                .collect(),
            warnings,
            // A path and a reason of what was not read are hostile text too.
            not_read: drift
                .iter()
                .map(|d| plan::NotRead {
                    key: "clients.partner.upload".into(),
                    path: Some(d.clone()),
                    why: format!("not read: {d}"),
                    effect: "not compared".into(),
                })
                .collect(),
            review: true,
            next_access_end: None,
            drift,
            policy: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_names_never_come_out_raw(p in hostile_plan()) {
        use ravencert::render::{plan_markdown, plan_text, Style};
        let text = plan_text(&p, Style { color: false });
        prop_assert!(common::raw_unsafe(&text).is_none(), "raw in plan text:\n{}", text.escape_debug());
        prop_assert!(text.contains("clearance: "));

        // With color, the only escape sequences are ravencert's own colors.
        let colored = plan_text(&p, Style { color: true });
        let plain_again = colored
            .split('\u{1b}')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    Ok(part.to_string())
                } else {
                    // "[<digits;>m" then text.
                    let end = part.find('m').ok_or(part.to_string())?;
                    let params = &part[..end];
                    if !params.starts_with('[')
                        || !["[0", "[1", "[31", "[32", "[33", "[35", "[36", "[1;31", "[1;33"].contains(&params)
                    {
                        return Err(part.to_string());
                    }
                    Ok(part[end + 1..].to_string())
                }
            })
            .collect::<Result<String, String>>();
        prop_assert!(plain_again.is_ok(), "foreign escape sequence {:?} in\n{}", plain_again, colored.escape_debug());
        let plain_again = plain_again.unwrap();
        prop_assert!(common::raw_unsafe(&plain_again).is_none(), "raw in colored plan text:\n{}", colored.escape_debug());

        let md = plan_markdown(&p);
        prop_assert!(common::raw_unsafe(&md).is_none(), "raw in plan markdown:\n{}", md.escape_debug());
        let html = common::gfm(&md);
        for tag in ["<img", "<a ", "<a>", "<!--", "<del", "<strong>", "<em>", "<sup", "<h1", "<h2", "<ol", "<pre", "<input"] {
            // The layout's own bold text and alert: none of these appear in it.
            let own = md.matches("**").count() / 2;
            if tag == "<strong>" {
                prop_assert_eq!(html.matches(tag).count(), own, "bold from a value\n{}\n{}", md, html);
                continue;
            }
            prop_assert!(!html.contains(tag), "{} from a value\n{}\n{}", tag, md, html);
        }
        for code in html.split("<code>").skip(1) {
            let inner = code.split("</code>").next().unwrap_or_default();
            prop_assert!(["+", "~"].contains(&inner), "a code span from a value: {:?}\n{}", inner, html);
        }
        // One table row per change plus the header, six cells each.
        let rows: Vec<&str> = html.split("<tr>").skip(1).collect();
        prop_assert_eq!(rows.len(), p.changes.len() + 1, "{}", html);
        for row in rows {
            prop_assert_eq!(row.matches("<td").count() + row.matches("<th").count(), 6, "{}\n{}", row, html);
        }
        prop_assert!(html.contains("clearance: "), "{}", html);
    }
}
