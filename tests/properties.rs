//! Properties of the planner over random configs and stores (proptest):
//! - applying a plan and planning again gives no change;
//! - nothing is deleted unless prune = true or a rotation overlap ended;
//! - every change that widens access is flagged as an escalation;
//! - plans are deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use ravencert::config::{
    ClientDesired, ClientSource, Desired, GenerateSpec, ServerDesired, ServerSource, StoreSettings,
};
use ravencert::model::{Access, Clearance, KeySpec, PfxProfile, RenewBefore, Span};
use ravencert::plan::{self, Action, PlanOptions};
use ravencert::store::{Actual, Registry};
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
            overlap: overlap.map(Span::days),
            source: ClientSource::Generate(GenerateSpec {
                key: key_spec,
                validity: Span::days(365),
                renew_before: RenewBefore::Span(Span::days(30)),
                pfx: PfxProfile::Modern,
                password: None,
            }),
        }
    }
}

fn desired() -> impl Strategy<Value = Desired> {
    let keys = prop::sample::subsequence(vec!["a", "b", "c", "d", "e", "f"], 0..=6);
    (keys, any::<bool>(), 0..4u32)
        .prop_flat_map(|(keys, prune, max)| {
            let clients: Vec<_> = keys.iter().map(|k| client(k.to_string())).collect();
            (clients, Just(prune), Just(max))
        })
        .prop_map(|(clients, prune, max)| Desired {
            config_path: PathBuf::from("/cfg/certs.toml"),
            store: StoreSettings {
                path: PathBuf::from("/cfg/store"),
                prune,
                max_deletions: max,
            },
            server: Some(ServerDesired {
                source: ServerSource::Generate {
                    name: "cluster.example.com".into(),
                    dns: vec!["cluster.example.com".into()],
                    key: KeySpec::EcP256,
                    validity: Span::days(365),
                    renew_before: RenewBefore::Span(Span::days(30)),
                },
                export: None,
            }),
            clients: clients.into_iter().map(|c| (c.key.clone(), c)).collect(),
            warnings: vec![],
            positions: BTreeMap::new(),
            files: Default::default(),
            renew_before: RenewBefore::Span(Span::days(30)),
        })
}

/// The store after applying `plan` to `actual`: the planner's own projection, with the
/// placeholders a real apply fills in (fresh thumbprints, bundles present).
fn applied(desired: &Desired, actual: &Actual, plan: &plan::Plan, counter: &mut u32) -> Actual {
    let mut reg: Registry = ravencert::apply::project(&actual.registry, plan, desired, NOW);
    for t in reg
        .server
        .iter_mut()
        .map(|s| &mut s.thumbprint)
        .chain(reg.certificates.iter_mut().map(|c| &mut c.thumbprint))
    {
        if !ravencert::store::is_thumbprint(t) {
            *counter += 1;
            *t = format!("{:040X}", *counter);
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
    d.store.max_deletions = 0;
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn apply_then_plan_is_empty(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let p = plan::plan(&second, &start, NOW, &everything_allowed()).unwrap();
        let after = applied(&second, &start, &p, &mut n);
        let again = plan::plan(&second, &after, NOW, &everything_allowed()).unwrap();
        prop_assert!(again.changes.is_empty(), "not converged: {:?}", again.changes);
    }

    #[test]
    fn nothing_is_deleted_without_prune_or_overlap_end(first in desired(), second in desired()) {
        let first = unlimited(first);
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        if let Ok(p) = plan::plan(&second, &start, NOW, &everything_allowed()) {
            for c in p.changes.iter().filter(|c| c.action == Action::Delete) {
                prop_assert!(
                    second.store.prune || c.reason == "rotation overlap ended",
                    "deleted {} without prune: {}", c.key, c.reason
                );
                prop_assert!(!second.clients.contains_key(&c.key) || c.reason == "rotation overlap ended");
            }
            let deletes = p.count(Action::Delete);
            prop_assert!(second.store.max_deletions == 0 || deletes <= second.store.max_deletions as usize);
        }
    }

    #[test]
    fn every_widening_is_flagged(first in desired(), second in desired()) {
        let (first, second) = (unlimited(first), unlimited(second));
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let p = plan::plan(&second, &start, NOW, &everything_allowed()).unwrap();
        for c in &p.changes {
            let Some(after) = &c.after else { continue };
            let (Some(new_clearance), Some(new_perms)) = (after.clearance, after.permissions.as_ref()) else { continue };
            // Independent of the planner's own rule: compare access level by level.
            let old = c.before.as_ref().and_then(|b| Some((b.clearance?, b.permissions.clone()?)));
            let widened = match old {
                None => new_clearance != Clearance::ValidUser || !new_perms.is_empty(),
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
            prop_assert_eq!(c.escalation, widened, "{:?} {} escalation flag", c.action, c.key);
        }
    }

    #[test]
    fn plans_are_deterministic(first in desired(), second in desired()) {
        let first = unlimited(first);
        let mut n = 0;
        let start = applied(&first, &Actual::default(), &plan::plan(&first, &Actual::default(), NOW, &everything_allowed()).unwrap(), &mut n);
        let a = plan::plan(&second, &start, NOW, &everything_allowed());
        let b = plan::plan(&second, &start, NOW, &everything_allowed());
        prop_assert_eq!(a, b);
    }
}
