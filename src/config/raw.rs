//! The serde schema types: exactly what certs.toml may contain, with spans for errors that name
//! the line. Unknown keys are refused by serde.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::schema::{
    client_rules, cluster_rules, config_rules, database_names, dns_items, name_pattern,
    one_password_source, period_pattern, positive_period_pattern, renew_before_pattern,
    server_rules, url_items, CLIENT_KEY_PATTERN, CLUSTER_TIMEOUT_PATTERN,
};
use crate::model::{Access, Clearance, KeySpec, Permissions, PfxProfile, MAX_NAME_CHARS};

/// certs.toml: the certificates a RavenDB cluster should have.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ravencert certs.toml", transform = config_rules)]
pub(super) struct RawConfig {
    /// Format version of this file; must be 1.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub(super) version: Spanned<i64>,
    /// Where the certificate store lives and how it may change.
    #[serde(default)]
    pub(super) store: Option<RawStore>,
    /// Values every client inherits unless it sets its own.
    #[serde(default)]
    #[schemars(with = "Option<RawDefaults>")]
    pub(super) defaults: Option<Spanned<RawDefaults>>,
    /// The cluster's own certificate(s); required to generate client certificates.
    #[serde(default)]
    #[schemars(with = "Option<RawServer>")]
    pub(super) server: Option<Spanned<RawServer>>,
    /// Client certificates, by stable id (1-64 of a-z 0-9 - _ .; it becomes a file name).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, RawClient>",
        extend("propertyNames" = { "pattern": CLIENT_KEY_PATTERN, "not": { "const": "server" } })
    )]
    pub(super) clients: BTreeMap<Spanned<String>, Spanned<RawClient>>,
    /// The live RavenDB cluster whose registered certificates ravencert reconciles.
    #[serde(default)]
    #[schemars(with = "Option<RawCluster>")]
    pub(super) cluster: Option<Spanned<RawCluster>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cluster", transform = cluster_rules)]
pub(super) struct RawCluster {
    /// The nodes' URLs (https://HOST[:PORT]), tried in order; any node will do.
    #[schemars(with = "Vec<String>", length(min = 1), transform = url_items)]
    pub(super) urls: Spanned<Vec<Spanned<String>>>,
    /// The key of a declared generated client whose issued certificate authenticates (a ClusterAdmin, or an Operator when no client is a ClusterAdmin).
    #[schemars(with = "Option<String>", regex(pattern = CLIENT_KEY_PATTERN))]
    pub(super) admin: Option<Spanned<String>>,
    /// Instead of `admin`: an existing admin certificate (.pfx with its key) to authenticate with.
    #[schemars(with = "Option<RawAdminCertificate>")]
    pub(super) admin_certificate: Option<Spanned<RawAdminCertificate>>,
    /// Verifying the server's TLS certificate: "store" (default; pinned to the store's server certificate), "system" (the system's CAs), or a PEM file (relative to this file's folder).
    #[schemars(with = "Option<String>", length(min = 1))]
    pub(super) ca: Option<Spanned<String>>,
    /// Unregister cluster certificates that the store does not hold (default false).
    #[serde(default)]
    pub(super) prune: bool,
    /// Time limit of each request to the cluster, from "1s" to "10min" (default "30s").
    #[schemars(with = "Option<String>", regex(pattern = CLUSTER_TIMEOUT_PATTERN))]
    pub(super) timeout: Option<Spanned<String>>,
    /// Registrations someone else made that ravencert leaves alone (known strangers): never unregistered, even with `prune`, and not counted as drift.
    #[serde(default)]
    #[schemars(with = "Vec<RawKeep>", extend("uniqueItems" = true))]
    pub(super) keep: Vec<Spanned<RawKeep>>,
}

/// One known stranger of `[cluster] keep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KeptRegistration")]
pub(super) struct RawKeep {
    /// The registration's thumbprint (the certificate's SHA-1, as the Studio lists it): 40 hex digits, in either case.
    #[schemars(with = "String", regex(pattern = "^[0-9A-Fa-f]{40}$"))]
    pub(super) thumbprint: Spanned<String>,
    /// Whose it is, or why it stays, for the reader (1 to 200 characters).
    #[schemars(
        with = "Option<String>",
        length(min = 1, max = 200),
        regex(pattern = r"\S")
    )]
    pub(super) note: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AdminCertificate", transform = one_password_source)]
pub(super) struct RawAdminCertificate {
    /// The admin .pfx (certificate and private key), relative to this file's folder.
    #[schemars(with = "String", length(min = 1))]
    pub(super) path: Spanned<String>,
    /// Environment variable holding the .pfx password.
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    pub(super) password_env: Option<Spanned<String>>,
    /// File holding the .pfx password (relative to this file's folder).
    #[schemars(with = "Option<String>")]
    pub(super) password_file: Option<Spanned<String>>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    pub(super) password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Store")]
pub(super) struct RawStore {
    /// Store directory, relative to this file's folder (default "store"). Never this file's own
    /// folder or one above it.
    #[schemars(
        with = "Option<String>",
        length(min = 1),
        extend("not" = { "pattern": "^(\\.{1,2}/?)+$" })
    )]
    pub(super) path: Option<Spanned<String>>,
    /// Delete registered certificates that are no longer declared (default false).
    #[serde(default)]
    pub(super) prune: bool,
    /// A plan that would delete more certificates is refused; 0 = no limit (default 5).
    #[schemars(with = "Option<u32>")]
    pub(super) max_deletions: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Defaults")]
pub(super) struct RawDefaults {
    /// Key type of generated certificates (default rsa-4096, as RavenDB generates).
    pub(super) key: Option<KeySpec>,
    /// Lifetime of generated client certificates, e.g. "5y" (default), "1y", "90d", "6mo"; units s, min, h, d, w, mo (30 days), y (365 days).
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    pub(super) validity: Option<Spanned<String>>,
    /// Re-issue when less than this is left ("30d", the default), or a share of the lifetime ("33%").
    #[schemars(with = "Option<String>", regex(pattern = renew_before_pattern()))]
    pub(super) renew_before: Option<Spanned<String>>,
    /// Encryption of issued .pfx files: modern (default) or legacy.
    pub(super) pfx: Option<PfxProfile>,
    /// After a re-issue, keep the old certificate registered this long (default "0d").
    #[schemars(with = "Option<String>", regex(pattern = period_pattern()))]
    pub(super) overlap: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server", transform = server_rules)]
pub(super) struct RawServer {
    /// Generate a self-signed server certificate (development, tests).
    #[serde(default)]
    pub(super) generate: bool,
    /// Common name of a generated server certificate (at most 64 characters); also its DNS name unless `dns` is set.
    #[schemars(
        with = "Option<String>",
        length(max = MAX_NAME_CHARS),
        regex(pattern = name_pattern())
    )]
    pub(super) name: Option<Spanned<String>>,
    /// DNS names (subject alternative names) of a generated server certificate.
    #[schemars(with = "Option<Vec<String>>", length(min = 1), transform = dns_items)]
    pub(super) dns: Option<Spanned<Vec<String>>>,
    /// Key type of a generated server certificate (default rsa-4096).
    pub(super) key: Option<KeySpec>,
    /// Lifetime of a generated server certificate (default "1y"; more than zero).
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    pub(super) validity: Option<Spanned<String>>,
    /// Instead of `generate`: the cluster's existing certificate(s), one file per node: the .pfx with its private key, or a public certificate (.crt/.cer, or a .pfx holding no key) that is registered and exported only (no generated clients then).
    #[schemars(with = "Option<Vec<RawCertFile>>", length(min = 1))]
    pub(super) certificates: Option<Spanned<Vec<RawCertFile>>>,
    /// Where `apply` keeps the exported server certificate(s), relative to this file's folder.
    #[schemars(with = "Option<String>")]
    pub(super) export: Option<Spanned<String>>,
    /// Where `apply` keeps the server certificate WITH its private key for a node to load (`Security.Certificate.Path`); for imported `certificates`, the first one (the active node's).
    #[schemars(with = "Option<RawInstall>")]
    pub(super) install: Option<Spanned<RawInstall>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Install", transform = one_password_source)]
pub(super) struct RawInstall {
    /// The .pfx a node loads, relative to this file's folder; written mode 0600, never inside the store.
    #[schemars(with = "String", length(min = 1))]
    pub(super) path: Spanned<String>,
    /// Encryption of the file: modern (default; RavenDB 5.0 and later) | legacy (3DES with a SHA-1 MAC; required by RavenDB before 5.0, which cannot read modern files).
    #[schemars(with = "Option<PfxProfile>")]
    pub(super) pfx: Option<Spanned<PfxProfile>>,
    /// Environment variable holding the file's password (none: an empty password).
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    pub(super) password_env: Option<Spanned<String>>,
    /// File holding the file's password (relative to this file's folder).
    #[schemars(with = "Option<String>")]
    pub(super) password_file: Option<Spanned<String>>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    pub(super) password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NodeCertificate", transform = one_password_source)]
pub(super) struct RawCertFile {
    /// One node's certificate: its .pfx with the private key (signs generated clients), or a PEM/DER .crt/.cer or key-less .pfx (registered and exported only).
    pub(super) path: String,
    /// Environment variable holding the .pfx password.
    pub(super) password_env: Option<String>,
    /// File holding the .pfx password (relative to this file's folder).
    pub(super) password_file: Option<String>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    pub(super) password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Client", transform = client_rules)]
pub(super) struct RawClient {
    /// Display name and certificate CN (at most 64 characters); defaults to the table key. Unique among clients.
    #[schemars(
        with = "Option<String>",
        length(max = MAX_NAME_CHARS),
        regex(pattern = name_pattern())
    )]
    pub(super) name: Option<Spanned<String>>,
    /// ClusterAdmin | Operator | ValidUser.
    pub(super) clearance: Clearance,
    /// Database -> Admin | ReadWrite | Read; only with ValidUser. Database names follow RavenDB's rule.
    #[schemars(with = "Option<BTreeMap<String, Access>>", transform = database_names)]
    pub(super) databases: Option<Spanned<Permissions>>,
    /// Key type (generated clients only).
    #[schemars(with = "Option<KeySpec>")]
    pub(super) key: Option<Spanned<KeySpec>>,
    /// Lifetime (generated clients only), e.g. "1y", "90d", "6mo".
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    pub(super) validity: Option<Spanned<String>>,
    /// Re-issue when less than this is left ("30d"), or a share of the lifetime ("33%").
    #[schemars(with = "Option<String>", regex(pattern = renew_before_pattern()))]
    pub(super) renew_before: Option<Spanned<String>>,
    /// Encryption of the issued .pfx: modern | legacy.
    #[schemars(with = "Option<PfxProfile>")]
    pub(super) pfx: Option<Spanned<PfxProfile>>,
    /// After a re-issue or a changed upload, keep the old certificate registered this long.
    #[schemars(with = "Option<String>", regex(pattern = period_pattern()))]
    pub(super) overlap: Option<Spanned<String>>,
    /// Environment variable holding the password (of the issued .pfx, or of the uploaded file).
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    pub(super) password_env: Option<Spanned<String>>,
    /// File holding that password, relative to this file's folder.
    #[schemars(with = "Option<String>")]
    pub(super) password_file: Option<Spanned<String>>,
    /// Leaves only in two reviewed steps: a plan deleting it (table removed or renamed) or re-issuing it for a change here (key, validity) is refused until a change dropping `protect` is applied. `--replace KEY` re-issues it in one step.
    #[serde(default)]
    pub(super) protect: bool,
    /// Register an existing certificate file (.pfx/.p12, PEM or DER) instead of generating.
    #[schemars(with = "Option<String>")]
    pub(super) upload: Option<Spanned<String>>,
    /// Access ends then: a date (00:00 UTC that day) or an RFC 3339 time with an offset, e.g. 2026-05-01 or 2026-05-01T18:00:00Z. The issued certificate ends by then, and the client is removed once it has passed. Not with `protect`, nor on the `[cluster] admin` client.
    // A toml::Value: toml's own Datetime does not survive serde's buffering of a value.
    #[schemars(
        with = "Option<String>",
        regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$"),
        extend("anyOf" = [{"format": "date"}, {"format": "date-time"}])
    )]
    pub(super) until: Option<Spanned<toml::Value>>,
    /// Access suspended, the certificate kept: with `[cluster]`, its registration is disabled (RavenDB 7.2.2 and later) or removed until it is enabled again; it is not renewed while disabled. Not on the `[cluster] admin` client.
    #[serde(default)]
    pub(super) disabled: bool,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    pub(super) password: Option<Spanned<toml::Value>>,
}
