//! The serde schema types of policy.toml: exactly what it may contain, with spans for errors
//! that name the line. Unknown keys are refused by serde.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::schema::{database_name, positive_period_pattern};
use crate::model::{Access, Clearance, KeySpec};

/// A rule's name: 1-64 of a-z 0-9 - _ . not starting with '.' (validate::check_rule_name).
pub(super) const RULE_NAME_PATTERN: &str = "^[a-z0-9_-][a-z0-9_.-]{0,63}$";

/// A client key pattern: a key, or a key's beginning followed by one `*`, or `*` alone
/// (validate::key_pattern).
pub(super) const KEY_PATTERN_PATTERN: &str = r"^(\*|[a-z0-9_-][a-z0-9_.-]{0,63}\*?)$";

/// policy.toml: the rules every plan of the certs.toml beside it must keep.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ravencert policy.toml")]
pub(super) struct RawPolicy {
    /// Format version of this file; must be 1.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub(super) version: Spanned<i64>,
    /// The rules, each a [[rule]] table; every one must hold for a plan to be applied.
    #[serde(default, rename = "rule")]
    #[schemars(with = "Vec<RawRule>")]
    pub(super) rules: Vec<Spanned<RawRule>>,
}

/// One rule: the clients it selects (`clearance`, `database`, `clients`; none: every client), and what it requires of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rule", transform = rule_rules)]
pub(super) struct RawRule {
    /// The rule's name, as violations cite it: 1-64 of a-z 0-9 - _ . (not starting with '.'), unique.
    #[schemars(with = "String", regex(pattern = RULE_NAME_PATTERN))]
    pub(super) name: Spanned<String>,
    /// Selects clients at this clearance or above (ValidUser < Operator < ClusterAdmin).
    #[schemars(with = "Option<Clearance>")]
    pub(super) clearance: Option<Spanned<Clearance>>,
    /// Selects clients that reach this database (ignoring case); an Operator or a ClusterAdmin reaches every database as Admin.
    #[schemars(with = "Option<String>", transform = database_name)]
    pub(super) database: Option<Spanned<String>>,
    /// Selects clients by key: a key, or a beginning followed by `*` ("breakglass-*"), or "*".
    #[schemars(with = "Option<Vec<String>>", length(min = 1), transform = key_pattern_items)]
    pub(super) clients: Option<Spanned<Vec<Spanned<String>>>>,
    /// With `clearance` (and no `max_access`): the only client keys that may hold it. With `database` and `max_access`: the keys exempt from `max_access`. Key patterns as in `clients`.
    #[schemars(with = "Option<Vec<String>>", transform = key_pattern_items)]
    pub(super) allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// Every selected client must declare `until` (its access ends).
    #[schemars(with = "Option<bool>")]
    pub(super) require_until: Option<Spanned<bool>>,
    /// The longest a selected client may hold access from one certificate: its validity (cut at `until`), or an upload's lifetime. Units s, min, h, d, w, mo (30 days), y (365 days).
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    pub(super) max_validity: Option<Spanned<String>>,
    /// The most access a selected client may have on `database` (Read < ReadWrite < Admin); clients in `allow` are exempt.
    #[schemars(with = "Option<Access>")]
    pub(super) max_access: Option<Spanned<Access>>,
    /// The key types a selected client may use.
    #[schemars(with = "Option<Vec<KeySpec>>", length(min = 1))]
    pub(super) keys: Option<Spanned<Vec<KeySpec>>>,
    /// A selected client unused this long (where the cluster reports last use) is a violation to review; disabled clients are exempt.
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    pub(super) max_unused: Option<Spanned<String>>,
}

/// Items of `clients` and `allow`: key patterns.
fn key_pattern_items(schema: &mut schemars::Schema) {
    schema.insert(
        "items".into(),
        serde_json::json!({ "type": "string", "pattern": KEY_PATTERN_PATTERN }),
    );
}

/// What one value cannot say: a rule constrains something; `allow` needs `clearance`, or
/// `database` with `max_access`; `max_access` needs `database`.
fn rule_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "anyOf".into(),
        serde_json::json!([
            { "required": ["allow"] },
            { "required": ["require_until"], "properties": { "require_until": { "const": true } } },
            { "required": ["max_validity"] },
            { "required": ["max_access"] },
            { "required": ["keys"] },
            { "required": ["max_unused"] }
        ]),
    );
    schema.insert(
        "dependentSchemas".into(),
        serde_json::json!({
            "allow": { "anyOf": [
                { "required": ["clearance"] },
                { "required": ["database", "max_access"] }
            ] },
            "max_access": { "required": ["database"] }
        }),
    );
}
