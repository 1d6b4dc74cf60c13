//! The JSON schema of certs.toml and the rules it states beside the types of raw.rs.

use super::raw::RawConfig;
use crate::model::{NAME_FORBIDDEN_CLASS, PERIOD_UNIT_PATTERN};

// The JSON schema says the rules that validation checks, as far as JSON Schema can: everything
// but what needs more than one value at a time (names unique among clients, database names
// unique ignoring case, renew_before shorter than validity) or the world outside the file
// (files, environment variables). tests/it/bad_configs.rs checks the schema against its matrix.

/// Client keys (model::check_client_key).
pub(super) const CLIENT_KEY_PATTERN: &str = "^[a-z0-9_-][a-z0-9_.-]{0,63}$";

/// A DNS name (check_dns_name): dot-separated labels of letters, digits and inner '-'.
pub(super) const DNS_NAME_PATTERN: &str = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

pub(super) fn period_pattern() -> String {
    format!("^[0-9]+{PERIOD_UNIT_PATTERN}$")
}

pub(super) fn positive_period_pattern() -> String {
    format!("^[0-9]*[1-9][0-9]*{PERIOD_UNIT_PATTERN}$")
}

pub(super) fn renew_before_pattern() -> String {
    format!("^([0-9]+{PERIOD_UNIT_PATTERN}|0*[1-9][0-9]?%)$")
}

/// A name (model::check_name) with something besides white space.
pub(super) fn name_pattern() -> String {
    let c = NAME_FORBIDDEN_CLASS;
    format!(r"^[^{c}]*[^\s{c}][^{c}]*$")
}

/// A cluster node's URL (check_cluster_url): https, a host and port, an optional path; no user
/// name, query or fragment.
pub(super) const CLUSTER_URL_PATTERN: &str =
    r"^[Hh][Tt][Tt][Pp][Ss]://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^?#\s]*)?$";

/// A request timeout from 1s to 10min (CLUSTER_TIMEOUT_MIN, CLUSTER_TIMEOUT_MAX).
pub(super) const CLUSTER_TIMEOUT_PATTERN: &str =
    "^(0*([1-9][0-9]?|[1-5][0-9][0-9]|600)s|0*([1-9]|10)min)$";

/// Top level: a generated client is signed by the server certificate, so it needs [server];
/// so does a cluster whose TLS certificate is pinned to the store's server certificate.
pub(super) fn config_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "allOf".into(),
        serde_json::json!([
            {
                "if": {
                    "required": ["clients"],
                    "properties": { "clients": { "not": { "additionalProperties": { "required": ["upload"] } } } }
                },
                "then": { "required": ["server"] }
            },
            {
                "if": {
                    "required": ["cluster"],
                    "properties": { "cluster": { "anyOf": [
                        { "not": { "required": ["ca"] } },
                        { "properties": { "ca": { "const": "store" } } }
                    ] } }
                },
                "then": { "required": ["server"] }
            }
        ]),
    );
}

/// [cluster]: `admin` or `admin_certificate`, exactly one.
pub(super) fn cluster_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{ "required": ["admin"] }, { "required": ["admin_certificate"] }]),
    );
}

pub(super) fn url_items(schema: &mut schemars::Schema) {
    schema.insert("uniqueItems".into(), serde_json::json!(true));
    schema.insert(
        "items".into(),
        serde_json::json!({ "type": "string", "pattern": CLUSTER_URL_PATTERN }),
    );
}

/// [server]: `generate = true` with a name, or `certificates`; without `dns` the name is the
/// DNS name.
pub(super) fn server_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "allOf".into(),
        serde_json::json!([
            {
                "if": { "required": ["generate"], "properties": { "generate": { "const": true } } },
                "then": { "required": ["name"], "properties": { "certificates": false } },
                "else": {
                    "required": ["certificates"],
                    "properties": { "name": false, "dns": false, "validity": false }
                }
            },
            {
                "if": { "not": { "required": ["dns"] } },
                "then": { "properties": { "name": { "pattern": DNS_NAME_PATTERN, "maxLength": 253 } } }
            }
        ]),
    );
}

pub(super) fn dns_items(schema: &mut schemars::Schema) {
    schema.insert(
        "items".into(),
        serde_json::json!({ "type": "string", "pattern": DNS_NAME_PATTERN, "maxLength": 253 }),
    );
}

/// A password comes from `password_env` or `password_file`, not both.
pub(super) fn one_password_source(schema: &mut schemars::Schema) {
    schema.insert(
        "dependentSchemas".into(),
        serde_json::json!({ "password_env": { "properties": { "password_file": false } } }),
    );
}

/// A client: `databases` only with ValidUser; an upload keeps what its file holds.
pub(super) fn client_rules(schema: &mut schemars::Schema) {
    one_password_source(schema);
    if let Some(deps) = schema
        .get_mut("dependentSchemas")
        .and_then(|d| d.as_object_mut())
    {
        deps.insert(
            "upload".into(),
            serde_json::json!({
                "properties": { "key": false, "validity": false, "renew_before": false, "pfx": false }
            }),
        );
        // `until` ends access on its own; `protect` wants two reviewed steps (validate/until.rs).
        deps.insert(
            "until".into(),
            serde_json::json!({ "properties": { "protect": { "const": false } } }),
        );
    }
    schema.insert(
        "if".into(),
        serde_json::json!({ "properties": { "clearance": { "const": "ValidUser" } } }),
    );
    schema.insert(
        "else".into(),
        serde_json::json!({ "properties": { "databases": false } }),
    );
}

/// RavenDB's rule for database names (model::check_database_name).
pub(super) fn database_names(schema: &mut schemars::Schema) {
    schema.insert("propertyNames".into(), database_name_rule());
}

/// One database name (policy.toml's `database`), by the same rule.
pub(super) fn database_name(schema: &mut schemars::Schema) {
    if let serde_json::Value::Object(rule) = database_name_rule() {
        for (k, v) in rule {
            schema.insert(k, v);
        }
    }
}

fn database_name_rule() -> serde_json::Value {
    serde_json::json!({
        "maxLength": 128,
        "pattern": r"^[\p{Alphabetic}\p{N}_-]+(\.[\p{Alphabetic}\p{N}_-]+)*$",
        "not": {
            "pattern": "^([Cc][Oo][Nn]|[Pp][Rr][Nn]|[Aa][Uu][Xx]|[Nn][Uu][Ll]|([Cc][Oo][Mm]|[Ll][Pp][Tt])[1-9])$"
        }
    })
}

/// The JSON schema of certs.toml, as checked in under schema/.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RawConfig);
    // Serializing a schemars Schema (a JSON value with string keys, built at compile time
    // from the types above, no input in it) cannot fail; if it ever did, that is a bug to
    // see at once, not an empty schema to print.
    let text = serde_json::to_string_pretty(&schema)
        .expect("the schema of certs.toml serializes: it is a JSON value");
    text + "\n"
}
