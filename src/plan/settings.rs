//! Settings are changes: a change to `[store]` or `[cluster]` decides where ravencert presents
//! its admin identity and what it may delete or unregister, so a plan shows it as a change
//! (target `settings`, key `store` or `cluster`) with before -> after, and flags what widens
//! who can reach the cluster or what may be removed.
//!
//! What the store last applied is recorded in its registry ([`AppliedSettings`]); a review
//! (`plan --base`) compares with the base revision's settings. Pure: no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{Action, Change, Field, FieldChange, Fields, Target};
use crate::config::{CaPin, ClusterAdmin, Declared};
use crate::registry::{AppliedSettings, ClusterRecord, KeepRecord, PolicyRecord, StoreRecord};

/// The settings certs.toml declares, as the registry records them.
pub(crate) fn settings_of(declared: &Declared) -> AppliedSettings {
    let folder = declared.config_path.parent().unwrap_or(Path::new(""));
    let shown = |p: &Path| -> String {
        let rel = p.strip_prefix(folder).unwrap_or(p);
        let rel = rel.strip_prefix(".").unwrap_or(rel);
        rel.display().to_string()
    };
    AppliedSettings {
        store: Some(StoreRecord {
            path: declared.store.declared_path.clone(),
            prune: declared.store.prune,
            max_deletions: declared.store.max_deletions,
        }),
        cluster: declared.cluster.as_ref().map(|c| ClusterRecord {
            urls: c.urls.clone(),
            ca: match &c.ca {
                CaPin::Store => "store".into(),
                CaPin::System => "system".into(),
                CaPin::Pem(p) => shown(p),
            },
            admin: match &c.admin {
                ClusterAdmin::Client(key) => format!("clients.{key}"),
                ClusterAdmin::Certificate(f) => format!("certificate {}", shown(&f.path)),
            },
            prune: c.prune,
            timeout: c.timeout.to_string(),
            keep: c
                .keep
                .iter()
                .map(|k| KeepRecord {
                    thumbprint: k.thumbprint.clone(),
                    note: k.note.clone(),
                })
                .collect(),
        }),
        policy: declared
            .policy
            .as_ref()
            .map(|p| policy_record(&declared.config_path, p)),
    }
}

/// policy.toml as the registry records it: its file (relative to certs.toml's folder when
/// inside it) and one canonical line per rule.
pub(crate) fn policy_record(config_path: &Path, p: &crate::config::Policy) -> PolicyRecord {
    let folder = config_path.parent().unwrap_or(Path::new(""));
    let rel = p.path.strip_prefix(folder).unwrap_or(&p.path);
    let rel = rel.strip_prefix(".").unwrap_or(rel);
    PolicyRecord {
        file: rel.display().to_string(),
        rules: p
            .rules
            .iter()
            .map(|r| format!("{}: {}", r.name, r.canonical()))
            .collect(),
    }
}

/// The changes from `before` to `after`: one per section that differs.
pub(crate) fn settings_changes(before: &AppliedSettings, after: &AppliedSettings) -> Vec<Change> {
    let mut out = Vec::new();
    // A store comes with every certs.toml: only a change of it is news (a first certs.toml
    // shows its clients, not the store's defaults). A cluster added is news: its urls are new.
    if before.store.is_some() && before.store != after.store {
        out.push(section_change(
            "store",
            store_values(before.store.as_ref()),
            store_values(after.store.as_ref()),
            store_escalations(before.store.as_ref(), after.store.as_ref()),
        ));
    }
    if before.cluster != after.cluster {
        out.push(section_change(
            "cluster",
            cluster_values(before.cluster.as_ref()),
            cluster_values(after.cluster.as_ref()),
            cluster_escalations(before.cluster.as_ref(), after.cluster.as_ref()),
        ));
    }
    if before.policy != after.policy {
        out.push(policy_change(before.policy.as_ref(), after.policy.as_ref()));
    }
    out
}

/// A change to policy.toml: flagged whichever way it goes, since it decides what every later
/// plan may do. One line per rule added, removed or changed (`rule NAME`), and the file.
fn policy_change(before: Option<&PolicyRecord>, after: Option<&PolicyRecord>) -> Change {
    let values = |p: Option<&PolicyRecord>| -> Values {
        let Some(p) = p else {
            return Values::new();
        };
        let mut values = Values::from([("file".to_string(), Value::from(p.file.clone()))]);
        for line in &p.rules {
            let (name, rule) = line.split_once(": ").unwrap_or((line.as_str(), ""));
            values.insert(format!("rule {name}"), Value::from(rule));
        }
        values
    };
    let mut change = section_change("policy", values(before), values(after), Vec::new());
    let what = match (before, after) {
        (None, _) => "policy.toml added",
        (_, None) => "policy.toml removed",
        _ => "policy.toml changed",
    };
    change.reason =
        format!("{what}: it decides what every plan may do; review it like a change of access");
    change.escalation = true;
    change
}

type Values = BTreeMap<String, Value>;

fn store_values(s: Option<&StoreRecord>) -> Values {
    let Some(s) = s else {
        return Values::new();
    };
    BTreeMap::from([
        ("path".to_string(), Value::from(s.path.clone())),
        ("prune".to_string(), Value::from(s.prune)),
        ("max_deletions".to_string(), Value::from(s.max_deletions)),
    ])
}

fn cluster_values(c: Option<&ClusterRecord>) -> Values {
    let Some(c) = c else {
        return Values::new();
    };
    let mut values = BTreeMap::from([
        ("urls".to_string(), Value::from(c.urls.clone())),
        ("ca".to_string(), Value::from(c.ca.clone())),
        ("admin".to_string(), Value::from(c.admin.clone())),
        ("prune".to_string(), Value::from(c.prune)),
        ("timeout".to_string(), Value::from(c.timeout.clone())),
    ]);
    // Shown only once declared: a section without it reads as it did before keep existed.
    if !c.keep.is_empty() {
        let kept: Vec<Value> = c.keep.iter().map(|k| Value::from(kept_value(k))).collect();
        values.insert("keep".to_string(), Value::Array(kept));
    }
    values
}

/// A kept registration as a settings line shows it: `THUMBPRINT (note)`.
fn kept_value(k: &KeepRecord) -> String {
    match &k.note {
        Some(note) => format!("{} ({note})", k.thumbprint),
        None => k.thumbprint.to_string(),
    }
}

/// What in a `[store]` change loosens a guard: prune turned on, `max_deletions` raised or
/// lifted (0 is no limit).
fn store_escalations(before: Option<&StoreRecord>, after: Option<&StoreRecord>) -> Vec<String> {
    let (Some(b), Some(a)) = (before, after) else {
        return Vec::new();
    };
    let mut why = Vec::new();
    if a.prune && !b.prune {
        why.push("prune turned on: undeclared certificates are deleted".to_string());
    }
    let limit = |n: u32| if n == 0 { u64::MAX } else { u64::from(n) };
    if limit(a.max_deletions) > limit(b.max_deletions) {
        why.push("max_deletions loosened: more may be deleted at once".to_string());
    }
    why
}

/// What in a `[cluster]` change widens where the admin identity goes or what may be
/// unregistered: a new url, another CA or admin identity, prune turned on.
fn cluster_escalations(
    before: Option<&ClusterRecord>,
    after: Option<&ClusterRecord>,
) -> Vec<String> {
    let Some(a) = after else {
        return Vec::new();
    };
    let mut why = Vec::new();
    let known = |u: &String| before.is_some_and(|b| b.urls.contains(u));
    if a.urls.iter().any(|u| !known(u)) {
        why.push("new urls: the admin identity is presented there".to_string());
    }
    if let Some(b) = before {
        if a.ca != b.ca {
            why.push("ca changed: another server may be trusted".to_string());
        }
        if a.admin != b.admin {
            why.push("admin identity changed".to_string());
        }
        if a.prune && !b.prune {
            why.push(
                "prune turned on: registrations the store does not hold are unregistered"
                    .to_string(),
            );
        }
    } else if a.prune {
        why.push("prune on: registrations the store does not hold are unregistered".to_string());
    }
    // A kept thumbprint widens nothing ravencert sends, but prune can no longer take that
    // registration's access away: a reviewer must see it.
    let kept_before = |t: &str| before.is_some_and(|b| b.keep.iter().any(|k| k.thumbprint == t));
    let added: Vec<&str> = a
        .keep
        .iter()
        .map(|k| k.thumbprint.as_str())
        .filter(|t| !kept_before(t))
        .collect();
    if !added.is_empty() {
        why.push(format!("kept: never unregistered: {}", added.join(", ")));
    }
    why
}

fn section_change(key: &str, before: Values, after: Values, escalations: Vec<String>) -> Change {
    let fields: Vec<FieldChange> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            FieldChange::new(
                Field::Setting(k.clone()),
                before.get(k).map(shown),
                after.get(k).map(shown),
            )
        })
        .collect();
    let what = match (before.is_empty(), after.is_empty()) {
        (true, _) => format!("[{key}] added to certs.toml"),
        (_, true) => format!("[{key}] removed from certs.toml"),
        _ => format!("[{key}] changed in certs.toml"),
    };
    let reason = if escalations.is_empty() {
        what
    } else {
        format!("{what}: {}", escalations.join("; "))
    };
    let mut change = Change::new(Action::Update, Target::Settings, key, reason);
    change.escalation = !escalations.is_empty();
    change.fields = fields;
    change.before = (!before.is_empty()).then(|| Fields::settings(before));
    change.after = (!after.is_empty()).then(|| Fields::settings(after));
    change
}

/// A setting's value as a line shows it: lists comma-separated, strings unquoted.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(urls: &[&str], prune: bool) -> ClusterRecord {
        ClusterRecord {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            ca: "store".into(),
            admin: "clients.admin".into(),
            prune,
            timeout: "30s".into(),
            keep: Vec::new(),
        }
    }

    fn settings(c: Option<ClusterRecord>, prune: bool, max: u32) -> AppliedSettings {
        AppliedSettings {
            store: Some(StoreRecord {
                path: "store".into(),
                prune,
                max_deletions: max,
            }),
            cluster: c,
            policy: None,
        }
    }

    /// policy.toml (issue 25): added, a rule changed, removed: each a flagged change with a line
    /// per rule; the same rules are no change.
    #[test]
    fn a_policy_change_is_flagged_rule_by_rule() {
        let with = |rules: &[&str]| AppliedSettings {
            policy: Some(PolicyRecord {
                file: "policy.toml".into(),
                rules: rules.iter().map(|r| r.to_string()).collect(),
            }),
            ..settings(None, false, 5)
        };
        let none = settings(None, false, 5);
        let strict = with(&["admins: clearance>=ClusterAdmin allow=[admin]"]);
        let loose = with(&["admins: clearance>=ClusterAdmin allow=[admin, ops]"]);
        let added = settings_changes(&none, &strict);
        assert_eq!(added.len(), 1);
        assert_eq!(
            (added[0].target, added[0].key.as_str()),
            (Target::Settings, "policy")
        );
        assert!(added[0].escalation && added[0].reason.starts_with("policy.toml added"));
        let changed = settings_changes(&strict, &loose);
        assert!(changed[0].escalation && changed[0].reason.starts_with("policy.toml changed"));
        let fields: Vec<(&str, Option<&str>, Option<&str>)> = changed[0]
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.old.as_deref(), f.new.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [(
                "rule admins",
                Some("clearance>=ClusterAdmin allow=[admin]"),
                Some("clearance>=ClusterAdmin allow=[admin, ops]")
            )]
        );
        // Tightening is flagged too: the policy decides what every later plan may do.
        assert!(settings_changes(&loose, &strict)[0].escalation);
        let removed = settings_changes(&strict, &none);
        assert!(removed[0].escalation && removed[0].reason.starts_with("policy.toml removed"));
        assert!(settings_changes(&strict, &strict.clone()).is_empty());
    }

    #[test]
    fn unchanged_settings_are_no_change() {
        let s = settings(Some(cluster(&["https://a"], false)), false, 5);
        assert!(settings_changes(&s, &s.clone()).is_empty());
    }

    #[test]
    fn a_new_url_and_prune_on_are_escalations_with_before_and_after() {
        let before = settings(Some(cluster(&["https://a"], false)), false, 5);
        let after = settings(Some(cluster(&["https://evil"], true)), false, 5);
        let changes = settings_changes(&before, &after);
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert_eq!((c.target, c.key.as_str()), (Target::Settings, "cluster"));
        assert!(c.escalation);
        assert!(c.reason.contains("new urls") && c.reason.contains("prune turned on"));
        let urls = c
            .fields
            .iter()
            .find(|f| f.field.as_str() == "urls")
            .unwrap();
        assert_eq!(urls.old.as_deref(), Some("https://a"));
        assert_eq!(urls.new.as_deref(), Some("https://evil"));
    }

    #[test]
    fn a_guard_loosened_is_flagged_and_tightened_is_not() {
        let s = |prune, max| settings(None, prune, max);
        for (before, after, flagged) in [
            (s(false, 5), s(false, 50), true),
            (s(false, 5), s(false, 0), true),
            (s(false, 0), s(false, 5), false),
            (s(false, 5), s(true, 5), true),
            (s(true, 5), s(false, 5), false),
        ] {
            let c = settings_changes(&before, &after);
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].escalation, flagged, "{:?}", c[0]);
        }
    }

    #[test]
    fn ca_admin_and_timeout() {
        let before = settings(Some(cluster(&["https://a"], false)), false, 5);
        let mut c = cluster(&["https://a"], false);
        c.timeout = "1min".into();
        let timeout_only = settings_changes(&before, &settings(Some(c.clone()), false, 5));
        assert!(!timeout_only[0].escalation, "{:?}", timeout_only[0]);
        c.ca = "trust/other-ca.pem".into();
        assert!(settings_changes(&before, &settings(Some(c.clone()), false, 5))[0].escalation);
        let mut c = cluster(&["https://a"], false);
        c.admin = "certificate secrets/admin.pfx".into();
        assert!(settings_changes(&before, &settings(Some(c), false, 5))[0].escalation);
        // A cluster section removed: shown, not an escalation.
        let removed = settings_changes(&before, &settings(None, false, 5));
        assert!(!removed[0].escalation && removed[0].reason.contains("removed"));
        // Added: its urls are new.
        let added = settings_changes(&settings(None, false, 5), &before);
        assert!(added[0].escalation && added[0].reason.contains("added"));
    }

    /// `[cluster] keep` (issue 23): a kept thumbprint added is flagged (prune can no longer
    /// remove that registration); one removed, or a note changed, is shown unflagged.
    #[test]
    fn a_kept_thumbprint_added_is_an_escalation() {
        let keep = |entries: &[(&str, Option<&str>)]| {
            let mut c = cluster(&["https://a"], true);
            c.keep = entries
                .iter()
                .map(|(t, n)| KeepRecord {
                    thumbprint: crate::model::Thumbprint::parse(&t.repeat(40)).unwrap(),
                    note: n.map(str::to_string),
                })
                .collect();
            settings(Some(c), false, 5)
        };
        let none = keep(&[]);
        let one = keep(&[("A", Some("backup"))]);
        let c = settings_changes(&none, &one);
        assert_eq!(c.len(), 1);
        assert!(c[0].escalation, "{:?}", c[0]);
        let kept = format!("kept: never unregistered: {}", "A".repeat(40));
        assert!(c[0].reason.contains(&kept), "{}", c[0].reason);
        let field = c[0].fields.iter().find(|f| f.field.as_str() == "keep");
        let field = field.expect("a keep field change");
        assert_eq!(field.old, None);
        assert_eq!(field.new, Some(format!("{} (backup)", "A".repeat(40))));
        // A note changed, or an entry removed: shown, not flagged.
        for after in [keep(&[("A", Some("the backup team"))]), none.clone()] {
            let c = settings_changes(&one, &after);
            assert_eq!(c.len(), 1);
            assert!(!c[0].escalation, "{:?}", c[0]);
        }
        // Unchanged: no change; a registry written before keep reads as an empty one.
        assert!(settings_changes(&one, &one.clone()).is_empty());
        let old: ClusterRecord = toml::from_str(
            "urls = [\"https://a\"]\nca = \"store\"\nadmin = \"clients.admin\"\nprune = true\ntimeout = \"30s\"\n",
        )
        .expect("an older registry's [cluster] reads");
        assert!(settings_changes(&settings(Some(old), false, 5), &none).is_empty());
    }
}
