//! policy.toml: rules that every plan of the certs.toml beside it must keep (docs/contract.md
//! §10), written by security reviewers and owned by them (CODEOWNERS). Read like certs.toml:
//! serde types with spans (`raw`), validation into a [`Policy`] (`validate`), errors at
//! `policy.toml:LINE: rule[i].key`. Evaluated by the planner (`plan::policy`).

mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::diagnostics::{syntax_errors, Checker};
use super::ConfigError;
use crate::model::{Access, Clearance, KeySpec, Period};
use raw::RawPolicy;

/// policy.toml, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The file as outputs name it: `policy.toml`, or `policy.toml@main` when read at a
    /// revision.
    pub shown: String,
    /// The file on disk (in a repository: where it stands in the work tree).
    pub path: PathBuf,
    /// `sha256:` and the hex SHA-256 of its bytes (saved plans tell a changed policy by it).
    pub digest: String,
    /// The rules, in the file's order.
    pub rules: Vec<Rule>,
}

/// One `[[rule]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name, unique in the file.
    pub name: String,
    /// The line of its `[[rule]]` header.
    pub line: usize,
    /// Which clients it is about.
    pub select: Selector,
    /// With `clearance` (no `max_access`): the only keys that may hold it. With `max_access`:
    /// the keys exempt from it.
    pub allow: Option<Vec<KeyPattern>>,
    /// Every selected client must have an `until`.
    pub require_until: bool,
    /// The longest a selected client may hold access from one certificate.
    pub max_validity: Option<Period>,
    /// The most access on `select.database`.
    pub max_access: Option<Access>,
    /// The key types a selected client may use.
    pub keys: Option<BTreeSet<KeySpec>>,
    /// Unused this long is a violation (disabled clients exempt).
    pub max_unused: Option<Period>,
}

/// Which clients a rule selects: all the given conditions at once; none given, every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// At this clearance or above.
    pub clearance: Option<Clearance>,
    /// Reaching this database (compared ignoring case).
    pub database: Option<String>,
    /// Whose key matches one of these (empty: any key).
    pub clients: Vec<KeyPattern>,
}

/// A client key, or the beginning of one followed by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// The key, or what the key starts with.
    prefix: String,
    /// Whether a `*` followed: any key starting with `prefix` matches.
    wildcard: bool,
}

impl KeyPattern {
    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        if self.wildcard {
            key.starts_with(&self.prefix)
        } else {
            key == self.prefix
        }
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.prefix, if self.wildcard { "*" } else { "" })
    }
}

/// The key patterns as a list reads: `admin, breakglass-*`.
pub fn patterns_text(patterns: &[KeyPattern]) -> String {
    patterns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rule {
    /// The rule on one line, every setting in a fixed order: what the store records at an apply
    /// and a settings change compares, e.g. `clearance>=ClusterAdmin allow=[admin, breakglass-*]`.
    pub fn canonical(&self) -> String {
        let mut parts = Vec::new();
        let s = &self.select;
        if !s.clients.is_empty() {
            parts.push(format!("clients=[{}]", patterns_text(&s.clients)));
        }
        if let Some(c) = s.clearance {
            parts.push(format!("clearance>={c}"));
        }
        if let Some(d) = &s.database {
            parts.push(format!("database={d}"));
        }
        if let Some(a) = &self.allow {
            parts.push(format!("allow=[{}]", patterns_text(a)));
        }
        if self.require_until {
            parts.push("require_until".into());
        }
        if let Some(p) = self.max_validity {
            parts.push(format!("max_validity={p}"));
        }
        if let Some(a) = self.max_access {
            parts.push(format!("max_access={a}"));
        }
        if let Some(k) = &self.keys {
            let keys: Vec<String> = k.iter().map(ToString::to_string).collect();
            parts.push(format!("keys=[{}]", keys.join(", ")));
        }
        if let Some(p) = self.max_unused {
            parts.push(format!("max_unused={p}"));
        }
        parts.join(" ")
    }
}

/// The most rules a policy may hold: a file that long is a mistake, not a policy, and every
/// rule is checked against every client of every plan.
pub const MAX_RULES: usize = 1_000;

/// Parses and validates policy.toml's text. `file` is the path errors name (with `@REV` when
/// read at a revision), `shown` how outputs name it, `path` the file on disk.
pub fn parse_policy(
    file: &Path,
    shown: &str,
    path: &Path,
    text: &str,
) -> Result<Policy, Vec<ConfigError>> {
    let mut ck = Checker::for_policy(file, text);
    let raw: RawPolicy = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(one_line(syntax_errors(ck, text, &e))),
    };
    let rules = validate::validate(&mut ck, &raw);
    if !ck.errors.is_empty() {
        return Err(one_line(ck.errors));
    }
    Ok(Policy {
        shown: shown.to_string(),
        path: path.to_path_buf(),
        digest: format!("sha256:{}", crate::pki::sha256_hex(text.as_bytes())),
        rules,
    })
}

/// Each message on one line: a value toml quotes in its message (an unknown variant) may hold a
/// newline, and policy.toml is attacker-written; a raw newline would forge a line of output.
fn one_line(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors
        .into_iter()
        .map(|mut e| {
            e.message = e.message.replace('\r', "\\r").replace('\n', "\\n");
            e
        })
        .collect()
}

/// The JSON schema of policy.toml, as checked in under schema/.
pub fn policy_json_schema() -> String {
    let schema = schemars::schema_for!(RawPolicy);
    // As for certs.toml's schema: a JSON value built from the types, no input in it.
    let text = serde_json::to_string_pretty(&schema)
        .expect("the schema of policy.toml serializes: it is a JSON value");
    text + "\n"
}
