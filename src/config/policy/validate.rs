//! Validation of the raw policy.toml into its rules; each error names `rule[i].key` and its
//! line. A rule that could not mean what its writer wants is refused rather than guessed at.

use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

use super::raw::{RawPolicy, RawRule};
use super::{KeyPattern, Rule, Selector, MAX_RULES};
use crate::config::diagnostics::Checker;
use crate::model::{check_database_name, Period};

pub(super) fn validate(ck: &mut Checker<'_>, raw: &RawPolicy) -> Vec<Rule> {
    if *raw.version.get_ref() != 1 {
        ck.error_at(
            Some(&raw.version.span()),
            "version",
            format!(
                "format version {} is not supported; this ravencert reads policy.toml version = 1",
                raw.version.get_ref()
            ),
        );
    }
    if raw.rules.len() > MAX_RULES {
        ck.error_at(
            Some(&raw.rules[MAX_RULES].span()),
            format!("rule[{MAX_RULES}]"),
            format!(
                "{} rules: a policy holds at most {MAX_RULES}; merge rules that select the same clients",
                raw.rules.len()
            ),
        );
        return Vec::new();
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut rules = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        let at = format!("rule[{i}]");
        if let Some(rule) = validate_rule(ck, &at, r) {
            if let Some(first) = names.insert(rule.name.clone(), i) {
                ck.error_at(
                    Some(&r.get_ref().name.span()),
                    format!("{at}.name"),
                    format!(
                        "rule name '{}' is already used by rule[{first}]; violations name the rule, so each needs its own name",
                        rule.name
                    ),
                );
            }
            rules.push(rule);
        }
    }
    rules
}

fn validate_rule(ck: &mut Checker<'_>, at: &str, rule: &Spanned<RawRule>) -> Option<Rule> {
    let r = rule.get_ref();
    let name = r.name.get_ref();
    let named_ok = check_rule_name(name)
        .map_err(|e| ck.error_at(Some(&r.name.span()), format!("{at}.name"), e))
        .is_ok();
    let database = r.database.as_ref().and_then(|d| {
        let name = d.get_ref();
        check_database_name(name)
            .map(|()| name.clone())
            .map_err(|e| {
                let e = shown_in(&e, name);
                ck.error_at(Some(&d.span()), format!("{at}.database"), e)
            })
            .ok()
    });
    let clients = patterns(ck, at, "clients", r.clients.as_ref());
    if r.clients.as_ref().is_some_and(|c| c.get_ref().is_empty()) {
        let span = r.clients.as_ref().map(Spanned::span);
        ck.error_at(
            span.as_ref(),
            format!("{at}.clients"),
            "selects no client: name key patterns (e.g. [\"breakglass-*\"]), or remove `clients` to select every client".into(),
        );
    }
    let allow = r
        .allow
        .as_ref()
        .map(|_| patterns(ck, at, "allow", r.allow.as_ref()));
    let keys = r.keys.as_ref().map(|k| {
        if k.get_ref().is_empty() {
            ck.error_at(
                Some(&k.span()),
                format!("{at}.keys"),
                "allows no key type, so every selected client would break the rule: list the allowed types, e.g. [\"ec-p256\", \"rsa-4096\"]".into(),
            );
        }
        k.get_ref().iter().copied().collect::<BTreeSet<_>>()
    });
    let max_validity = period(ck, at, "max_validity", r.max_validity.as_ref());
    let max_unused = period(ck, at, "max_unused", r.max_unused.as_ref());
    check_combination(ck, at, rule);
    named_ok.then(|| Rule {
        name: name.clone(),
        line: ck.line(rule.span().start),
        select: Selector {
            clearance: r.clearance.as_ref().map(|c| *c.get_ref()),
            database,
            clients,
        },
        allow,
        require_until: r.require_until.as_ref().is_some_and(|b| *b.get_ref()),
        max_validity,
        max_access: r.max_access.as_ref().map(|a| *a.get_ref()),
        keys,
        max_unused,
    })
}

/// What the settings of one rule must say together: it constrains something; `allow` has a
/// meaning (with `clearance`, or with `database` and `max_access`); `max_access` names its
/// database.
fn check_combination(ck: &mut Checker<'_>, at: &str, rule: &Spanned<RawRule>) {
    let r = rule.get_ref();
    let constrains = r.allow.is_some()
        || r.require_until.as_ref().is_some_and(|b| *b.get_ref())
        || r.max_validity.is_some()
        || r.max_access.is_some()
        || r.keys.is_some()
        || r.max_unused.is_some();
    if !constrains {
        ck.error_at(
            Some(&rule.span()),
            at,
            format!(
                "rule '{}' constrains nothing: give allow, require_until = true, max_validity, max_access, keys or max_unused",
                r.name.get_ref().escape_debug()
            ),
        );
    }
    if let Some(a) = &r.max_access {
        if r.database.is_none() {
            ck.error_at(
                Some(&a.span()),
                format!("{at}.max_access"),
                "max_access limits the access to one database: add `database = \"Name\"`".into(),
            );
        }
    }
    if let Some(a) = &r.allow {
        let exempts = r.database.is_some() && r.max_access.is_some();
        if r.clearance.is_none() && !exempts {
            ck.error_at(
                Some(&a.span()),
                format!("{at}.allow"),
                "allow needs something to allow: with `clearance`, the only keys that may hold it; with `database` and `max_access`, the keys exempt from it".into(),
            );
        }
    }
}

/// The key patterns of `clients` or `allow`; each bad one an error at its value.
fn patterns(
    ck: &mut Checker<'_>,
    at: &str,
    field: &str,
    v: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Vec<KeyPattern> {
    let Some(v) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, p) in v.get_ref().iter().enumerate() {
        match key_pattern(p.get_ref()) {
            Ok(k) => out.push(k),
            Err(e) => ck.error_at(Some(&p.span()), format!("{at}.{field}[{i}]"), e),
        }
    }
    out
}

/// A client key, or its beginning followed by one `*`, or `*` alone.
pub(super) fn key_pattern(text: &str) -> Result<KeyPattern, String> {
    let (prefix, wildcard) = match text.strip_suffix('*') {
        Some(p) => (p, true),
        None => (text, false),
    };
    let chars_ok = prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    let ok = chars_ok
        && prefix.len() <= 64
        && !prefix.starts_with('.')
        && (wildcard || !prefix.is_empty());
    if !ok {
        return Err(format!(
            "'{}' is not a client key pattern: write a key (a-z 0-9 - _ . up to 64, not starting with '.'), a key's beginning followed by one `*` (\"breakglass-*\"), or \"*\"",
            text.escape_debug()
        ));
    }
    Ok(KeyPattern {
        prefix: prefix.to_string(),
        wildcard,
    })
}

/// A rule name: 1-64 of a-z 0-9 - _ . not starting with '.'.
fn check_rule_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "rule name '{}' is not allowed: use 1 to 64 characters of a-z 0-9 - _ . not starting with '.' (violations cite it)",
            name.escape_debug()
        ))
    }
}

/// A duration as certs.toml writes one, longer than zero.
fn period(
    ck: &mut Checker<'_>,
    at: &str,
    field: &str,
    v: Option<&Spanned<String>>,
) -> Option<Period> {
    let v = v?;
    let parsed = Period::parse(v.get_ref()).map_err(|e| shown_in(&e, v.get_ref()));
    let parsed = parsed.and_then(|p| {
        if p.seconds > 0 {
            Ok(p)
        } else {
            Err("must be longer than zero".into())
        }
    });
    parsed
        .map_err(|e| ck.error_at(Some(&v.span()), format!("{at}.{field}"), e))
        .ok()
}

/// A message quoting `value` with the value escaped (`\n`, `\u{202e}`): what policy.toml holds
/// is attacker-written, and a raw newline would forge a line of the output.
fn shown_in(message: &str, value: &str) -> String {
    let escaped = value.escape_debug().to_string();
    if escaped == value || value.is_empty() {
        message.to_string()
    } else {
        message.replace(value, &escaped)
    }
}
