//! policy.toml's rules checked against a plan (docs/contract.md §10): pure, like the rest of the
//! planner. What is checked is the store as the plan leaves it ([`super::project`]): every
//! declared client (its declaration says what the registry cannot: `until`, `disabled`, an
//! upload's key type), and every undeclared certificate the store keeps (prune off), which still
//! has access. A plan whose report holds a violation is shown, then refused
//! ([`Plan::policy_refusal`]): nothing is applied.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use super::{Plan, PlanError};
use crate::config::policy::{patterns_text, Policy, Rule};
use crate::config::{ClientDesired, ClientSpec, Desired};
use crate::model::{Access, Clearance, KeySpec, Origin, Period, Thumbprint, BACKDATING};
use crate::registry::{CertEntry, Registry};

/// When each registration was last used, as the cluster reports it, by thumbprint: None for
/// one never used. Only a cluster that reports last use gives one (`max_unused`).
pub type Usage = BTreeMap<Thumbprint, Option<OffsetDateTime>>;

/// Every rule of the policy in force, and whether it holds for this plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    /// The policy file as outputs name it (`policy.toml`, `policy.toml@main`).
    pub shown: String,
    /// One result per rule, in the file's order.
    pub rules: Vec<RuleResult>,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleResult {
    /// The rule's name.
    pub name: String,
    /// The line of its `[[rule]]`.
    pub line: usize,
    /// The client keys it selects.
    pub selected: Vec<String>,
    /// Holds, is violated, or could not be evaluated.
    pub state: RuleState,
}

/// Whether a rule holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleState {
    /// For every client it selects.
    Holds,
    /// These clients break it.
    Violated(Vec<Violation>),
    /// What it needs is not known (last use on a cluster that does not report it, the key of
    /// a file a review did not read): neither a pass nor a fail.
    NotEvaluated(String),
}

/// One client breaking one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// The line of its `[[rule]]`.
    pub line: usize,
    /// The client's key.
    pub client: String,
    /// What breaks the rule, naming the client and the rule.
    pub message: String,
}

impl PolicyReport {
    /// Every violation, rule by rule.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.rules.iter().flat_map(|r| match &r.state {
            RuleState::Violated(v) => v.as_slice(),
            _ => &[],
        })
    }
}

impl PolicyReport {
    /// The refusal when a rule is violated.
    pub fn refusal(&self) -> Option<PlanError> {
        let violations: Vec<Violation> = self.violations().cloned().collect();
        (!violations.is_empty()).then(|| PlanError::Policy {
            shown: self.shown.clone(),
            violations,
        })
    }
}

impl Plan {
    /// The refusal of a plan that breaks the policy in force: shown, never applied.
    pub fn policy_refusal(&self) -> Option<PlanError> {
        self.policy.as_ref()?.refusal()
    }
}

/// The text of [`PlanError::Policy`]: one line per violation, each naming rule, line and client.
pub(super) fn refusal_text(shown: &str, violations: &[Violation]) -> String {
    let mut text = format!("refused by {shown}; nothing was changed:");
    for v in violations {
        let _ = write!(
            text,
            "\n  rule '{}' ({shown}:{}): {}",
            v.rule, v.line, v.message
        );
    }
    text
}

/// The static rules of the policy in force for what certs.toml declares, with no store:
/// `validate`'s check, so that validate and plan refuse the same configs. None without a policy.
pub(crate) fn check_declared_policy(
    desired: &Desired,
    now: OffsetDateTime,
) -> Option<PolicyReport> {
    let policy = desired.policy_in_force.as_ref()?;
    Some(evaluate(policy, desired, None, None, now))
}

/// `policy`'s rules for `desired` as `projected` (the registry after the plan; None: the
/// declaration alone) leaves it, with the cluster's `usage` when it reports last use.
pub fn evaluate(
    policy: &Policy,
    desired: &Desired,
    projected: Option<&Registry>,
    usage: Option<&Usage>,
    now: OffsetDateTime,
) -> PolicyReport {
    let holders = holders(desired, projected, now);
    let rules = policy
        .rules
        .iter()
        .map(|rule| {
            let ctx = Check { rule, usage, now };
            ctx.result(&holders)
        })
        .collect();
    PolicyReport {
        shown: policy.shown.clone(),
        rules,
    }
}

/// A client as the rules see it once the plan is applied.
struct Holder<'a> {
    key: &'a str,
    clearance: Clearance,
    permissions: &'a BTreeMap<String, Access>,
    until: Option<OffsetDateTime>,
    disabled: bool,
    /// Its certificates' key types; None when not known.
    key_types: Option<Vec<KeySpec>>,
    /// The longest access one of its certificates grants; None when not known.
    validity: Option<Duration>,
    /// Its registered certificate's thumbprint (None: known after apply) and issue date; None
    /// for a client this plan issues.
    registered: Option<(Option<&'a Thumbprint>, OffsetDateTime)>,
    /// Undeclared, kept registered because prune is off.
    kept: bool,
}

/// The declared clients whose access has not ended, then the kept undeclared certificates.
fn holders<'a>(
    desired: &'a Desired,
    projected: Option<&'a Registry>,
    now: OffsetDateTime,
) -> Vec<Holder<'a>> {
    let active: BTreeMap<&str, &CertEntry> = projected
        .map(|r| {
            r.active_certificates()
                .map(|e| (e.key.as_str(), e))
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<Holder<'a>> = desired
        .declared
        .clients
        .values()
        // Ended: the plan deletes it, it holds nothing.
        .filter(|c| c.until.is_none_or(|u| u > now))
        .map(|c| declared_holder(desired, c, active.get(c.key.as_str()).copied(), now))
        .collect();
    out.extend(
        active
            .values()
            .filter(|e| !desired.declared.clients.contains_key(&e.key))
            .map(|e| kept_holder(e)),
    );
    out
}

fn declared_holder<'a>(
    desired: &'a Desired,
    c: &'a ClientDesired,
    entry: Option<&'a CertEntry>,
    now: OffsetDateTime,
) -> Holder<'a> {
    let (key_types, validity) = match (&c.source, entry) {
        // Registered (or issued by this plan): the certificate as the store holds it, its
        // access ending at until if that comes first (the store removes it then).
        (ClientSpec::Generate(g), Some(e)) if e.source == Origin::Generated => {
            let (_, issued) = registered(e);
            let end = c.until.map_or(e.not_after, |u| e.not_after.min(u));
            (Some(vec![e.key_type.unwrap_or(g.key)]), Some(end - issued))
        }
        // The declaration alone (validate): what an apply would issue now.
        (ClientSpec::Generate(g), _) => {
            let end = super::until::issue_end(now, g.validity, c.until);
            (Some(vec![g.key]), Some(end - now))
        }
        (ClientSpec::Upload(_), _) => match desired.files.uploads.get(&c.key) {
            Some(certs) if !certs.is_empty() => (
                certs.iter().map(|u| u.info.key_spec).collect(),
                certs
                    .iter()
                    .map(|u| u.info.not_after - u.info.not_before)
                    .max(),
            ),
            _ => (None, None),
        },
    };
    Holder {
        key: &c.key,
        clearance: c.clearance,
        permissions: &c.permissions,
        until: c.until,
        disabled: c.disabled,
        key_types,
        validity,
        registered: entry.map(registered),
        kept: false,
    }
}

fn kept_holder(e: &CertEntry) -> Holder<'_> {
    let (_, issued) = registered(e);
    Holder {
        key: &e.key,
        clearance: e.clearance,
        permissions: &e.permissions,
        until: recorded_until(e),
        disabled: false,
        key_types: e.key_type.map(|k| vec![k]),
        validity: Some(e.not_after - issued),
        registered: Some(registered(e)),
        kept: true,
    }
}

/// The `until` the store recorded for an entry no longer declared: a kept certificate keeps
/// the end it was applied with.
fn recorded_until(e: &CertEntry) -> Option<OffsetDateTime> {
    e.until
}

/// A registered entry's thumbprint (when known) and issue date: a generated certificate's
/// not-before is back-dated.
fn registered(e: &CertEntry) -> (Option<&Thumbprint>, OffsetDateTime) {
    let issued = match e.source {
        Origin::Generated => e.not_before + BACKDATING.as_duration(),
        _ => e.not_before,
    };
    (e.thumbprint.known(), issued)
}

/// One rule checked against every client.
struct Check<'a> {
    rule: &'a Rule,
    usage: Option<&'a Usage>,
    now: OffsetDateTime,
}

/// One client's outcome for one rule: what breaks it, or why it could not be told.
enum Outcome {
    Broken(String),
    Unknown(String),
}

impl Check<'_> {
    fn result(&self, holders: &[Holder<'_>]) -> RuleResult {
        let mut selected = Vec::new();
        let mut violations = Vec::new();
        let mut unknown = None;
        for h in holders.iter().filter(|h| self.selects(h)) {
            selected.push(h.key.to_string());
            for outcome in self.outcomes(h) {
                match outcome {
                    Outcome::Broken(message) => violations.push(Violation {
                        rule: self.rule.name.clone(),
                        line: self.rule.line,
                        client: h.key.to_string(),
                        message: if h.kept {
                            format!("{message} (it is no longer declared but stays registered: prune = false; set prune = true to remove it)")
                        } else {
                            message
                        },
                    }),
                    Outcome::Unknown(why) => {
                        unknown.get_or_insert(why);
                    }
                }
            }
        }
        let state = match (violations.is_empty(), unknown) {
            (false, _) => RuleState::Violated(violations),
            (true, Some(why)) => RuleState::NotEvaluated(why),
            (true, None) => RuleState::Holds,
        };
        RuleResult {
            name: self.rule.name.clone(),
            line: self.rule.line,
            selected,
            state,
        }
    }

    /// Whether the rule is about this client: every selector given matches.
    fn selects(&self, h: &Holder<'_>) -> bool {
        let s = &self.rule.select;
        s.clearance.is_none_or(|c| h.clearance >= c)
            && s.database
                .as_ref()
                .is_none_or(|db| access_on(h, db).is_some())
            && (s.clients.is_empty() || s.clients.iter().any(|p| p.matches(h.key)))
    }

    fn outcomes(&self, h: &Holder<'_>) -> Vec<Outcome> {
        let r = self.rule;
        let who = format!("clients.{}", h.key);
        let mut out = Vec::new();
        let allowed = r.allow.as_ref().map(|a| a.iter().any(|p| p.matches(h.key)));
        if let (Some(false), None, Some(c)) = (allowed, r.max_access, r.select.clearance) {
            out.push(Outcome::Broken(self.holds_clearance(h, &who, c)));
        }
        if r.require_until && h.until.is_none() {
            out.push(Outcome::Broken(format!(
                "{who} has no until, which rule '{}' requires",
                r.name
            )));
        }
        out.extend(self.validity(h, &who));
        if let (Some(max), Some(db)) = (r.max_access, &r.select.database) {
            match access_on(h, db) {
                Some(a) if a > max && allowed != Some(true) => out.push(Outcome::Broken(format!(
                    "{who} has {a} on {db}{}, above rule '{}''s max_access {max}",
                    as_clearance(h),
                    r.name
                ))),
                _ => {}
            }
        }
        out.extend(self.keys(h, &who));
        out.extend(self.unused(h, &who));
        out
    }

    fn holds_clearance(&self, h: &Holder<'_>, who: &str, c: Clearance) -> String {
        let allow = self.rule.allow.as_deref().unwrap_or_default();
        let whom = if allow.is_empty() {
            "for no client".to_string()
        } else {
            format!("only for {}", patterns_text(allow))
        };
        let above = if h.clearance == c {
            String::new()
        } else {
            format!(" ({c} or above)")
        };
        format!(
            "{who} holds {}{above}, which rule '{}' allows {whom}",
            h.clearance, self.rule.name
        )
    }

    fn validity(&self, h: &Holder<'_>, who: &str) -> Option<Outcome> {
        let max = self.rule.max_validity?;
        let Some(v) = h.validity else {
            return Some(Outcome::Unknown(format!(
                "the certificate file of {who} was not read"
            )));
        };
        (v > max.as_duration()).then(|| {
            Outcome::Broken(format!(
                "{who} would hold access for {}, more than rule '{}''s max_validity {max}",
                Period::seconds(v.whole_seconds()),
                self.rule.name
            ))
        })
    }

    fn keys(&self, h: &Holder<'_>, who: &str) -> Option<Outcome> {
        let allowed = self.rule.keys.as_ref()?;
        let Some(types) = &h.key_types else {
            return Some(Outcome::Unknown(format!(
                "the key type of {who} is not known"
            )));
        };
        let other = types.iter().find(|k| !allowed.contains(k))?;
        let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        Some(Outcome::Broken(format!(
            "{who} uses {other}, not one of rule '{}''s keys ({})",
            self.rule.name,
            list.join(", ")
        )))
    }

    fn unused(&self, h: &Holder<'_>, who: &str) -> Option<Outcome> {
        let max = self.rule.max_unused?;
        if h.disabled {
            return None;
        }
        let Some(usage) = self.usage else {
            return Some(Outcome::Unknown(
                "the cluster does not report last use".into(),
            ));
        };
        // Issued by this plan: not yet usable, so not unused.
        let (thumbprint, issued) = h.registered?;
        // No record is no answer: a node keeps last use only since it started, and a client
        // may talk to another node. Unknown, never taken for "never used".
        let Some(thumbprint) = thumbprint else {
            return None; // a placeholder: issued by this plan, not yet usable
        };
        let Some(used) = usage.get(thumbprint).copied() else {
            return Some(Outcome::Unknown(format!(
                "the cluster has no record of {who}'s last use (a node keeps it only since it started)"
            )));
        };
        let since = used.unwrap_or(issued);
        if self.now - since <= max.as_duration() {
            return None;
        }
        let what = match used {
            Some(u) => format!("{who} was last used {}", u.date()),
            None => format!(
                "{who} has not been used since it was issued on {}",
                issued.date()
            ),
        };
        Some(Outcome::Broken(format!(
            "{what}, longer ago than rule '{}''s max_unused {max} — remove it or set disabled = true",
            self.rule.name
        )))
    }
}

/// A client's access to `db` (ignoring case): an Operator or a ClusterAdmin has Admin on every
/// database.
fn access_on(h: &Holder<'_>, db: &str) -> Option<Access> {
    if h.clearance >= Clearance::Operator {
        return Some(Access::Admin);
    }
    h.permissions
        .iter()
        .find(|(name, _)| name.to_lowercase() == db.to_lowercase())
        .map(|(_, a)| *a)
}

/// ` (as Operator)` when the access comes with the clearance, not a database entry.
fn as_clearance(h: &Holder<'_>) -> String {
    if h.clearance >= Clearance::Operator {
        format!(" (as {})", h.clearance)
    } else {
        String::new()
    }
}
