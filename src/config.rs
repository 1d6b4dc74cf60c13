//! certs.toml: the serde schema types (with spans, for errors that name the line) and their
//! validation into [`Desired`], the value the planner works from.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::inputs::{self, Files, Reader, Withheld};
pub(crate) use crate::inputs::{FileRef, Secret, SecretRef};
use crate::model::{
    check_client_key, check_database_name, check_name, Access, Clearance, KeySpec, Period,
    Permissions, PfxProfile, RenewBefore, BACKDATING, MAX_NAME_CHARS, NAME_FORBIDDEN_CLASS,
    PERIOD_UNIT_PATTERN,
};
use crate::model::{SinceBase, UnreadFile};

// ---------------------------------------------------------------------------------------------
// Schema types: exactly what certs.toml may contain. Unknown keys are refused by serde.

/// certs.toml: the certificates a RavenDB cluster should have.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ravencert certs.toml", transform = config_rules)]
struct RawConfig {
    /// Format version of this file; must be 1.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    version: Spanned<i64>,
    /// Where the certificate store lives and how it may change.
    #[serde(default)]
    store: Option<RawStore>,
    /// Values every client inherits unless it sets its own.
    #[serde(default)]
    #[schemars(with = "Option<RawDefaults>")]
    defaults: Option<Spanned<RawDefaults>>,
    /// The cluster's own certificate(s); required to generate client certificates.
    #[serde(default)]
    #[schemars(with = "Option<RawServer>")]
    server: Option<Spanned<RawServer>>,
    /// Client certificates, by stable id (1-64 of a-z 0-9 - _ .; it becomes a file name).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, RawClient>",
        extend("propertyNames" = { "pattern": CLIENT_KEY_PATTERN, "not": { "const": "server" } })
    )]
    clients: BTreeMap<Spanned<String>, Spanned<RawClient>>,
    /// The live RavenDB cluster whose registered certificates ravencert reconciles.
    #[serde(default)]
    #[schemars(with = "Option<RawCluster>")]
    cluster: Option<Spanned<RawCluster>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cluster", transform = cluster_rules)]
struct RawCluster {
    /// The nodes' URLs (https://HOST[:PORT]), tried in order; any node will do.
    #[schemars(with = "Vec<String>", length(min = 1), transform = url_items)]
    urls: Spanned<Vec<Spanned<String>>>,
    /// The key of a declared generated client whose issued certificate authenticates (a ClusterAdmin, or an Operator when no client is a ClusterAdmin).
    #[schemars(with = "Option<String>", regex(pattern = CLIENT_KEY_PATTERN))]
    admin: Option<Spanned<String>>,
    /// Instead of `admin`: an existing admin certificate (.pfx with its key) to authenticate with.
    #[schemars(with = "Option<RawAdminCertificate>")]
    admin_certificate: Option<Spanned<RawAdminCertificate>>,
    /// Verifying the server's TLS certificate: "store" (default; pinned to the store's server certificate), "system" (the system's CAs), or a PEM file (relative to this file's folder).
    #[schemars(with = "Option<String>", length(min = 1))]
    ca: Option<Spanned<String>>,
    /// Unregister cluster certificates that the store does not hold (default false).
    #[serde(default)]
    prune: bool,
    /// Time limit of each request to the cluster, from "1s" to "10min" (default "30s").
    #[schemars(with = "Option<String>", regex(pattern = CLUSTER_TIMEOUT_PATTERN))]
    timeout: Option<Spanned<String>>,
    /// Registrations someone else made that ravencert leaves alone (known strangers): never unregistered, even with `prune`, and not counted as drift.
    #[serde(default)]
    #[schemars(with = "Vec<RawKeep>", extend("uniqueItems" = true))]
    keep: Vec<Spanned<RawKeep>>,
}

/// One known stranger of `[cluster] keep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KeptRegistration")]
struct RawKeep {
    /// The registration's thumbprint (the certificate's SHA-1, as the Studio lists it): 40 hex digits, in either case.
    #[schemars(with = "String", regex(pattern = "^[0-9A-Fa-f]{40}$"))]
    thumbprint: Spanned<String>,
    /// Whose it is, or why it stays, for the reader (1 to 200 characters).
    #[schemars(
        with = "Option<String>",
        length(min = 1, max = 200),
        regex(pattern = r"\S")
    )]
    note: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AdminCertificate", transform = one_password_source)]
struct RawAdminCertificate {
    /// The admin .pfx (certificate and private key), relative to this file's folder.
    #[schemars(with = "String", length(min = 1))]
    path: Spanned<String>,
    /// Environment variable holding the .pfx password.
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    password_env: Option<Spanned<String>>,
    /// File holding the .pfx password (relative to this file's folder).
    #[schemars(with = "Option<String>")]
    password_file: Option<Spanned<String>>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Store")]
struct RawStore {
    /// Store directory, relative to this file's folder (default "store"). Never this file's own
    /// folder or one above it.
    #[schemars(
        with = "Option<String>",
        length(min = 1),
        extend("not" = { "pattern": "^(\\.{1,2}/?)+$" })
    )]
    path: Option<Spanned<String>>,
    /// Delete registered certificates that are no longer declared (default false).
    #[serde(default)]
    prune: bool,
    /// A plan that would delete more certificates is refused; 0 = no limit (default 5).
    #[schemars(with = "Option<u32>")]
    max_deletions: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Defaults")]
struct RawDefaults {
    /// Key type of generated certificates (default rsa-4096, as RavenDB generates).
    key: Option<KeySpec>,
    /// Lifetime of generated client certificates, e.g. "5y" (default), "1y", "90d", "6mo"; units s, min, h, d, w, mo (30 days), y (365 days).
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    validity: Option<Spanned<String>>,
    /// Re-issue when less than this is left ("30d", the default), or a share of the lifetime ("33%").
    #[schemars(with = "Option<String>", regex(pattern = renew_before_pattern()))]
    renew_before: Option<Spanned<String>>,
    /// Encryption of issued .pfx files: modern (default) or legacy.
    pfx: Option<PfxProfile>,
    /// After a re-issue, keep the old certificate registered this long (default "0d").
    #[schemars(with = "Option<String>", regex(pattern = period_pattern()))]
    overlap: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server", transform = server_rules)]
struct RawServer {
    /// Generate a self-signed server certificate (development, tests).
    #[serde(default)]
    generate: bool,
    /// Common name of a generated server certificate (at most 64 characters); also its DNS name unless `dns` is set.
    #[schemars(
        with = "Option<String>",
        length(max = MAX_NAME_CHARS),
        regex(pattern = name_pattern())
    )]
    name: Option<Spanned<String>>,
    /// DNS names (subject alternative names) of a generated server certificate.
    #[schemars(with = "Option<Vec<String>>", length(min = 1), transform = dns_items)]
    dns: Option<Spanned<Vec<String>>>,
    /// Key type of a generated server certificate (default rsa-4096).
    key: Option<KeySpec>,
    /// Lifetime of a generated server certificate (default "1y"; more than zero).
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    validity: Option<Spanned<String>>,
    /// Instead of `generate`: the cluster's existing certificate(s), one file per node: the .pfx with its private key, or a public certificate (.crt/.cer, or a .pfx holding no key) that is registered and exported only (no generated clients then).
    #[schemars(with = "Option<Vec<RawCertFile>>", length(min = 1))]
    certificates: Option<Spanned<Vec<RawCertFile>>>,
    /// Where `apply` keeps the exported server certificate(s), relative to this file's folder.
    #[schemars(with = "Option<String>")]
    export: Option<Spanned<String>>,
    /// Where `apply` keeps the server certificate WITH its private key for a node to load (`Security.Certificate.Path`); for imported `certificates`, the first one (the active node's).
    #[schemars(with = "Option<RawInstall>")]
    install: Option<Spanned<RawInstall>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Install", transform = one_password_source)]
struct RawInstall {
    /// The .pfx a node loads, relative to this file's folder; written mode 0600, never inside the store.
    #[schemars(with = "String", length(min = 1))]
    path: Spanned<String>,
    /// Encryption of the file: modern (default; RavenDB 5.0 and later) | legacy (3DES with a SHA-1 MAC; required by RavenDB before 5.0, which cannot read modern files).
    #[schemars(with = "Option<PfxProfile>")]
    pfx: Option<Spanned<PfxProfile>>,
    /// Environment variable holding the file's password (none: an empty password).
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    password_env: Option<Spanned<String>>,
    /// File holding the file's password (relative to this file's folder).
    #[schemars(with = "Option<String>")]
    password_file: Option<Spanned<String>>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NodeCertificate", transform = one_password_source)]
struct RawCertFile {
    /// One node's certificate: its .pfx with the private key (signs generated clients), or a PEM/DER .crt/.cer or key-less .pfx (registered and exported only).
    path: String,
    /// Environment variable holding the .pfx password.
    password_env: Option<String>,
    /// File holding the .pfx password (relative to this file's folder).
    password_file: Option<String>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    password: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Client", transform = client_rules)]
struct RawClient {
    /// Display name and certificate CN (at most 64 characters); defaults to the table key. Unique among clients.
    #[schemars(
        with = "Option<String>",
        length(max = MAX_NAME_CHARS),
        regex(pattern = name_pattern())
    )]
    name: Option<Spanned<String>>,
    /// ClusterAdmin | Operator | ValidUser.
    clearance: Clearance,
    /// Database -> Admin | ReadWrite | Read; only with ValidUser. Database names follow RavenDB's rule.
    #[schemars(with = "Option<BTreeMap<String, Access>>", transform = database_names)]
    databases: Option<Spanned<Permissions>>,
    /// Key type (generated clients only).
    #[schemars(with = "Option<KeySpec>")]
    key: Option<Spanned<KeySpec>>,
    /// Lifetime (generated clients only), e.g. "1y", "90d", "6mo".
    #[schemars(with = "Option<String>", regex(pattern = positive_period_pattern()))]
    validity: Option<Spanned<String>>,
    /// Re-issue when less than this is left ("30d"), or a share of the lifetime ("33%").
    #[schemars(with = "Option<String>", regex(pattern = renew_before_pattern()))]
    renew_before: Option<Spanned<String>>,
    /// Encryption of the issued .pfx: modern | legacy.
    #[schemars(with = "Option<PfxProfile>")]
    pfx: Option<Spanned<PfxProfile>>,
    /// After a re-issue or a changed upload, keep the old certificate registered this long.
    #[schemars(with = "Option<String>", regex(pattern = period_pattern()))]
    overlap: Option<Spanned<String>>,
    /// Environment variable holding the password (of the issued .pfx, or of the uploaded file).
    #[schemars(with = "Option<String>", regex(pattern = r"^[^=\u0000]+$"))]
    password_env: Option<Spanned<String>>,
    /// File holding that password, relative to this file's folder.
    #[schemars(with = "Option<String>")]
    password_file: Option<Spanned<String>>,
    /// Leaves only in two reviewed steps: a plan deleting it (table removed or renamed) or re-issuing it for a change here (key, validity) is refused until a change dropping `protect` is applied. `--replace KEY` re-issues it in one step.
    #[serde(default)]
    protect: bool,
    /// Register an existing certificate file (.pfx/.p12, PEM or DER) instead of generating.
    #[schemars(with = "Option<String>")]
    upload: Option<Spanned<String>>,
    /// Refused: secrets never stand in certs.toml.
    #[serde(default)]
    #[schemars(skip)]
    password: Option<Spanned<toml::Value>>,
}

// ---------------------------------------------------------------------------------------------
// The JSON schema says the rules that validation checks, as far as JSON Schema can: everything
// but what needs more than one value at a time (names unique among clients, database names
// unique ignoring case, renew_before shorter than validity) or the world outside the file
// (files, environment variables). tests/it/bad_configs.rs checks the schema against its matrix.

/// Client keys (model::check_client_key).
const CLIENT_KEY_PATTERN: &str = "^[a-z0-9_-][a-z0-9_.-]{0,63}$";

/// A DNS name (check_dns_name): dot-separated labels of letters, digits and inner '-'.
const DNS_NAME_PATTERN: &str = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

fn period_pattern() -> String {
    format!("^[0-9]+{PERIOD_UNIT_PATTERN}$")
}

fn positive_period_pattern() -> String {
    format!("^[0-9]*[1-9][0-9]*{PERIOD_UNIT_PATTERN}$")
}

fn renew_before_pattern() -> String {
    format!("^([0-9]+{PERIOD_UNIT_PATTERN}|0*[1-9][0-9]?%)$")
}

/// A name (model::check_name) with something besides white space.
fn name_pattern() -> String {
    let c = NAME_FORBIDDEN_CLASS;
    format!(r"^[^{c}]*[^\s{c}][^{c}]*$")
}

/// A cluster node's URL (check_cluster_url): https, a host and port, an optional path; no user
/// name, query or fragment.
const CLUSTER_URL_PATTERN: &str =
    r"^[Hh][Tt][Tt][Pp][Ss]://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^?#\s]*)?$";

/// A request timeout from 1s to 10min (CLUSTER_TIMEOUT_MIN, CLUSTER_TIMEOUT_MAX).
const CLUSTER_TIMEOUT_PATTERN: &str = "^(0*([1-9][0-9]?|[1-5][0-9][0-9]|600)s|0*([1-9]|10)min)$";

/// Top level: a generated client is signed by the server certificate, so it needs [server];
/// so does a cluster whose TLS certificate is pinned to the store's server certificate.
fn config_rules(schema: &mut schemars::Schema) {
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
fn cluster_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{ "required": ["admin"] }, { "required": ["admin_certificate"] }]),
    );
}

fn url_items(schema: &mut schemars::Schema) {
    schema.insert("uniqueItems".into(), serde_json::json!(true));
    schema.insert(
        "items".into(),
        serde_json::json!({ "type": "string", "pattern": CLUSTER_URL_PATTERN }),
    );
}

/// [server]: `generate = true` with a name, or `certificates`; without `dns` the name is the
/// DNS name.
fn server_rules(schema: &mut schemars::Schema) {
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

fn dns_items(schema: &mut schemars::Schema) {
    schema.insert(
        "items".into(),
        serde_json::json!({ "type": "string", "pattern": DNS_NAME_PATTERN, "maxLength": 253 }),
    );
}

/// A password comes from `password_env` or `password_file`, not both.
fn one_password_source(schema: &mut schemars::Schema) {
    schema.insert(
        "dependentSchemas".into(),
        serde_json::json!({ "password_env": { "properties": { "password_file": false } } }),
    );
}

/// A client: `databases` only with ValidUser; an upload keeps what its file holds.
fn client_rules(schema: &mut schemars::Schema) {
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
fn database_names(schema: &mut schemars::Schema) {
    schema.insert(
        "propertyNames".into(),
        serde_json::json!({
            "maxLength": 128,
            "pattern": r"^[\p{Alphabetic}\p{N}_-]+(\.[\p{Alphabetic}\p{N}_-]+)*$",
            "not": {
                "pattern": "^([Cc][Oo][Nn]|[Pp][Rr][Nn]|[Aa][Uu][Xx]|[Nn][Uu][Ll]|([Cc][Oo][Mm]|[Ll][Pp][Tt])[1-9])$"
            }
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// Validated values.

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The store folder (joined to certs.toml's folder, or `--store`).
    pub path: PathBuf,
    /// `[store] path` as certs.toml writes it (`store` when absent): what the registry records
    /// and a plan compares, the same on every machine whatever `--store` says.
    pub declared_path: String,
    /// Delete registered certificates that are no longer declared.
    pub prune: bool,
    /// 0 = no limit.
    pub max_deletions: u32,
}

/// How a generated client certificate is made (its own settings, else `[defaults]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSpec {
    /// Key type.
    pub key: KeySpec,
    /// Lifetime.
    pub validity: Period,
    /// When it is re-issued.
    pub renew_before: RenewBefore,
    /// Encryption of the issued .pfx.
    pub pfx: PfxProfile,
    /// The password of the issued .pfx and key, if any.
    pub password: Option<SecretRef>,
}

/// Where the server certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    /// `generate = true`: self-signed, made and renewed by ravencert.
    Generate {
        /// Its CN.
        name: String,
        /// Its DNS names (the name, unless `dns` is set).
        dns: Vec<String>,
        /// Key type.
        key: KeySpec,
        /// Lifetime.
        validity: Period,
        /// When it is re-issued (`[defaults].renew_before`).
        renew_before: RenewBefore,
    },
    /// `certificates = [...]`: the nodes' own certificate files (with or without their keys),
    /// in order.
    Imported(Vec<FileRef>),
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDesired {
    /// Generated or imported.
    pub source: ServerSpec,
    /// Where apply writes the exported server certificate(s), if anywhere.
    pub export: Option<PathBuf>,
    /// Where apply keeps the server certificate with its key for a node, if anywhere.
    pub install: Option<InstallSpec>,
}

/// `[server] install`, validated: the server certificate with its private key, as a node
/// loads it (`Security.Certificate.Path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    /// The file (joined to certs.toml's folder).
    pub path: PathBuf,
    /// The folder below which no symbolic link may lie on the way to `path`: certs.toml's
    /// folder (with `watch --git`, the daemon's, where a relative path is written), or `/` for
    /// an absolute (or `..`) path, whose every part is checked.
    pub root: PathBuf,
    /// Its PKCS#12 profile (`modern` unless declared; RavenDB before 5.0 needs `legacy`).
    pub pfx: PfxProfile,
    /// Its password, if any (none: the empty password).
    pub password: Option<SecretRef>,
}

/// Where a client certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSpec {
    /// Issued by ravencert, signed by the server certificate.
    Generate(GenerateSpec),
    /// An existing certificate file (`upload`).
    Upload(FileRef),
}

/// One `[clients.KEY]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDesired {
    /// The table key: the client's stable id and file name.
    pub key: String,
    /// Display name and CN (the key unless `name` is set), unique among clients.
    pub name: String,
    /// Its clearance.
    pub clearance: Clearance,
    /// Database -> access (ValidUser only).
    pub permissions: Permissions,
    /// Not deleted nor re-issued by a change of certs.toml in one step: see [`plan`](crate::plan)
    /// (`PlanError::Protected`); `--replace KEY` re-issues it.
    pub protect: bool,
    /// After a re-issue or a changed upload, keep the old certificate registered this long.
    pub overlap: Option<Period>,
    /// Generated or uploaded.
    pub source: ClientSpec,
}

/// `[cluster]`, validated: the live RavenDB cluster whose registrations ravencert reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The nodes' URLs, in the order they are tried: `https://HOST[:PORT][/PATH]`, without a
    /// trailing slash.
    pub urls: Vec<String>,
    /// The certificate ravencert authenticates with.
    pub admin: ClusterAdmin,
    /// How the server's TLS certificate is verified.
    pub ca: CaPin,
    /// Unregister cluster certificates that the store does not hold.
    pub prune: bool,
    /// The time limit of each request (1s to 10min).
    pub timeout: Period,
    /// `keep`: registrations someone else made, left alone even with `prune` and not counted
    /// as drift (known strangers), in the order declared.
    pub keep: Vec<KeptRegistration>,
}

/// One entry of `[cluster] keep`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRegistration {
    /// The registration's thumbprint: 40 upper-case hex digits.
    pub thumbprint: String,
    /// Whose it is or why it stays (at most [`MAX_KEEP_NOTE_CHARS`] characters), if given.
    pub note: Option<String>,
}

/// The longest note of a `[cluster] keep` entry, in characters.
pub const MAX_KEEP_NOTE_CHARS: usize = 200;

/// The certificate ravencert authenticates to the cluster with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAdmin {
    /// `admin = "KEY"`: the issued bundle of this declared generated client (a ClusterAdmin,
    /// or an Operator when no declared client is a ClusterAdmin).
    Client(String),
    /// `admin_certificate = { path, password_env | password_file }`: an existing .pfx with its
    /// key, read from the disk when the cluster is contacted (it is a secret, never hashed or
    /// read from git); its password, if any, is the [`FileRef`]'s.
    Certificate(FileRef),
}

/// How the cluster's TLS server certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaPin {
    /// `ca = "store"` (the default): pinned to the store's server certificate(s).
    Store,
    /// `ca = "system"`: the system's certificate authorities.
    System,
    /// `ca = "PATH"`: the certificates of this PEM file (joined to certs.toml's folder).
    Pem(PathBuf),
}

/// `[cluster].timeout` when not set.
pub const CLUSTER_TIMEOUT_DEFAULT: Period = Period::seconds(30);
/// The shortest `[cluster].timeout`.
pub const CLUSTER_TIMEOUT_MIN: Period = Period::seconds(1);
/// The longest `[cluster].timeout`.
pub const CLUSTER_TIMEOUT_MAX: Period = Period::seconds(600);

/// certs.toml after validation, before the files it names are read. [`Declared::resolve`]
/// reads them and makes the [`Desired`] the planner works from; nothing else does, so a plan
/// never sees a declaration without its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The certs.toml the declaration was read from (errors name it).
    pub config_path: PathBuf,
    /// `[store]`, with the path joined to certs.toml's folder.
    pub store: StoreSettings,
    /// `[server]`, when declared.
    pub server: Option<ServerDesired>,
    /// The clients, by key.
    pub clients: BTreeMap<String, ClientDesired>,
    /// `[cluster]`, when declared: the live cluster whose registrations are reconciled.
    pub cluster: Option<ClusterSettings>,
    /// What validation warns about (shown, never fatal).
    pub warnings: Vec<String>,
    /// Line and column of the keys that name secrets and files, for later error messages.
    pub positions: BTreeMap<String, (usize, usize)>,
    /// `[defaults].renew_before`: when an uploaded certificate's coming expiry is warned about.
    pub renew_before: RenewBefore,
}

/// certs.toml with what its certificate files hold: what the store should hold. It reads as
/// its [`Declared`] part (through `Deref`), plus `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// What certs.toml declares.
    pub declared: Declared,
    /// What the referenced certificate files hold.
    pub files: Files,
}

/// A Desired is its declaration plus files: the planner and the apply read the declaration's
/// fields directly (`desired.clients`), as they did when both were one struct.
impl std::ops::Deref for Desired {
    type Target = Declared;
    fn deref(&self) -> &Declared {
        &self.declared
    }
}

impl std::ops::DerefMut for Desired {
    fn deref_mut(&mut self) -> &mut Declared {
        &mut self.declared
    }
}

impl Desired {
    /// The nodes' certificates with their private keys (where the files hold them), for the
    /// apply, from the very bytes [`Declared::resolve`] read.
    pub(crate) fn node_keys(&self) -> Result<Vec<inputs::NodeCert>, String> {
        inputs::node_keys(self.declared.node_refs(), &self.files.node_files)
    }
}

/// How much of what certs.toml names a load may read.
#[derive(Clone, Copy)]
pub enum Reading<'a> {
    /// Everything it names, with the passwords (plan, apply, watch, validate).
    Full,
    /// A review (`plan --base`, `plan --rev`): no password and no admin .pfx is read, nor a
    /// file `withheld` names (outside the repository, not committed); a certificate file with
    /// a password is not opened. What was not read is listed in the [`Desired`]'s files.
    Review(Withheld<'a>),
}

impl Declared {
    /// Checks that every secret and file it names is there ([`check_references`]), then reads
    /// the certificate files through `reader`: the one way to a [`Desired`]. Each problem
    /// names the key that refers to it, with its line.
    pub fn resolve(
        self,
        reader: Reader<'_>,
        on_disk: bool,
        reading: Reading<'_>,
    ) -> Result<Desired, Vec<ConfigError>> {
        let withheld = match reading {
            Reading::Full => None,
            Reading::Review(w) => Some(w),
        };
        // A review checks the files it reads as it reads them (a missing one is an error
        // there); those it withholds are not its to look at.
        let full = withheld.is_none();
        let problems = check_references(&self, on_disk && full, full);
        if !problems.is_empty() {
            return Err(problems);
        }
        let uploads: Vec<(&str, &FileRef)> = self
            .clients
            .values()
            .filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => Some((c.key.as_str(), r)),
                ClientSpec::Generate(_) => None,
            })
            .collect();
        let file_error = |key: String, message: String| self.file_error_at(key, message);
        let mut problems: Vec<ConfigError> = Vec::new();
        let mut ca_unread = None;
        if let Some(path) = self.cluster_ca_file() {
            match withheld.and_then(|w| w(path)) {
                Some(why) => {
                    ca_unread = Some(UnreadFile {
                        key: "cluster.ca".into(),
                        path: path.to_path_buf(),
                        why,
                        digest: None,
                        since_base: SinceBase::Unknown,
                    })
                }
                None => {
                    if let Err(message) = check_ca_file(path, reader) {
                        problems.push(file_error("cluster.ca".into(), message));
                    }
                }
            }
        }
        let resolved = inputs::resolve(self.node_refs(), &uploads, reader, withheld);
        let mut files = resolved.map_err(|errors| {
            let read = errors
                .into_iter()
                .map(|e| file_error(e.site.key(), e.message));
            read.chain(problems.drain(..)).collect::<Vec<_>>()
        })?;
        if !problems.is_empty() {
            return Err(problems);
        }
        files.unread.extend(ca_unread);
        Ok(Desired {
            declared: self,
            files,
        })
    }

    /// The node certificate files of `[server].certificates` (none for a generated server).
    fn node_refs(&self) -> &[FileRef] {
        match self.server.as_ref().map(|s| &s.source) {
            Some(ServerSpec::Imported(refs)) => refs,
            _ => &[],
        }
    }

    /// An error found after parsing (a missing secret, an unreadable file), placed at the line
    /// of the key that names it.
    pub(crate) fn error_at(&self, key: String, message: String) -> ConfigError {
        let (line, column) = self
            .positions
            .get(&key)
            .map_or((None, None), |(l, c)| (Some(*l), Some(*c)));
        ConfigError {
            kind: ConfigErrorKind::Reference,
            file: self.config_path.clone(),
            line,
            column,
            key,
            message,
            snippet: None,
        }
    }

    /// [`Declared::error_at`] for a secret that is not there or cannot be used.
    pub(crate) fn secret_error_at(&self, key: String, message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Secret,
            ..self.error_at(key, message)
        }
    }

    /// [`Declared::error_at`] for a file it names that is not there or cannot be used.
    fn file_error_at(&self, key: String, message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::CertificateFile,
            ..self.error_at(key, message)
        }
    }

    /// Every file the config refers to (for watch and saved-plan fingerprints).
    pub(crate) fn referenced_files(&self) -> Vec<PathBuf> {
        let mut files = self.certificate_files();
        if let Some(ClusterAdmin::Certificate(r)) = self.cluster.as_ref().map(|c| &c.admin) {
            files.push(r.path.clone());
        }
        files.extend(self.secret_refs().filter_map(|s| match s {
            SecretRef::File(p) => Some(p.clone()),
            SecretRef::Env(_) => None,
        }));
        files
    }

    /// The certificate files the config names (uploads, node certificates, the cluster's CA
    /// PEM): part of what is reviewed, unlike password files and the admin .pfx.
    pub(crate) fn certificate_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .clients
            .values()
            .filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => Some(r.path.clone()),
                ClientSpec::Generate(_) => None,
            })
            .collect();
        if let Some(ServerDesired {
            source: ServerSpec::Imported(refs),
            ..
        }) = &self.server
        {
            files.extend(refs.iter().map(|r| r.path.clone()));
        }
        files.extend(self.cluster_ca_file().map(Path::to_path_buf));
        files
    }

    /// The PEM file `[cluster].ca` names, if it names one.
    fn cluster_ca_file(&self) -> Option<&Path> {
        match self.cluster.as_ref().map(|c| &c.ca) {
            Some(CaPin::Pem(p)) => Some(p),
            _ => None,
        }
    }

    /// The admin .pfx of `[cluster].admin_certificate`, if that is how ravencert authenticates.
    fn admin_certificate(&self) -> Option<&FileRef> {
        match self.cluster.as_ref().map(|c| &c.admin) {
            Some(ClusterAdmin::Certificate(r)) => Some(r),
            _ => None,
        }
    }

    fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.node_refs()
            .iter()
            .filter_map(|r| r.password.as_ref())
            .chain(self.clients.values().filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => r.password.as_ref(),
                ClientSpec::Generate(g) => g.password.as_ref(),
            }))
            .chain(self.admin_certificate().and_then(|r| r.password.as_ref()))
            .chain(self.install().and_then(|i| i.password.as_ref()))
    }

    /// `[server] install`, when certs.toml declares one.
    pub fn install(&self) -> Option<&InstallSpec> {
        self.server.as_ref().and_then(|s| s.install.as_ref())
    }

    /// `validate`'s look at the generated clients' bundle passwords, which no other command
    /// reads before it writes the bundle: a password that is there but unusable (empty, a
    /// control character) is an error; one whose source is not there (a variable not set, a
    /// file missing) a warning, since only the apply that writes that bundle needs it.
    pub(crate) fn bundle_password_problems(&self) -> (Vec<ConfigError>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for c in self.clients.values() {
            let ClientSpec::Generate(GenerateSpec {
                password: Some(r), ..
            }) = &c.source
            else {
                continue;
            };
            let key = match r {
                SecretRef::Env(_) => format!("clients.{}.password_env", c.key),
                SecretRef::File(_) => format!("clients.{}.password_file", c.key),
            };
            if let Err(e) = r.read() {
                match e.absence() {
                    Some(why) => warnings.push(format!(
                        "{key}: {why}; the apply that writes {}'s bundle needs it",
                        c.key
                    )),
                    None => errors.push(self.error_at(key, e.to_string())),
                }
            }
        }
        (errors, warnings)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A problem in certs.toml, written for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What kind of problem it is, for a caller that treats them differently.
    kind: ConfigErrorKind,
    /// The certs.toml (with `@REV` when read from git).
    file: PathBuf,
    /// 1-based line of the key at fault, when known.
    line: Option<usize>,
    /// 1-based column (in characters) of the key at fault, when known.
    column: Option<usize>,
    /// The key path, e.g. `clients.orders-app.databases`.
    key: String,
    /// What is wrong and what to do.
    message: String,
    /// The source line, shown under the message.
    snippet: Option<String>,
}

/// The kinds of [`ConfigError`]. The message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigErrorKind {
    /// Not TOML, or a key or value of the wrong shape (unknown key, wrong type, missing field).
    Syntax,
    /// A value that breaks a rule of certs.toml (validation).
    Invalid,
    /// A value that cannot be used where it points (a path into the store, an export path
    /// not allowed) or that the plan refuses (found after parsing, placed at the key).
    Reference,
    /// A file certs.toml names (an upload, a node certificate, the admin .pfx, the CA file)
    /// that is missing or cannot be used (unreadable, wrong password, no certificate or no key
    /// where one is needed).
    CertificateFile,
    /// A secret certs.toml names (`password_env`, `password_file`) that is not there or cannot
    /// be used.
    Secret,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": {}: {}", self.key, self.message)?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n    | {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A problem with a secret or a file certs.toml names, rather than with certs.toml's text.
    pub(crate) fn names_input(&self) -> bool {
        matches!(
            self.kind,
            ConfigErrorKind::CertificateFile | ConfigErrorKind::Secret
        )
    }

    /// A problem with a secret (a password's variable or file) certs.toml names.
    pub(crate) fn is_secret(&self) -> bool {
        self.kind == ConfigErrorKind::Secret
    }

    /// On one line, what is wrong first, then where certs.toml names it:
    /// `environment variable X is not set: ... (clients.app.password_env, certs.toml:12)`.
    pub(crate) fn brief(&self) -> String {
        let mut at = self.file.display().to_string();
        if let Some(line) = self.line {
            at.push_str(&format!(":{line}"));
        }
        if self.key.is_empty() {
            format!("{} ({at})", self.message)
        } else {
            format!("{} ({}, {at})", self.message, self.key)
        }
    }
}

/// Collects errors with positions computed from the source text.
struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    errors: Vec<ConfigError>,
    /// Line and column of keys that later checks (secrets, files) report on.
    positions: BTreeMap<String, (usize, usize)>,
    /// The byte offset where each line starts, found once: a position is a binary search, not
    /// a scan from the top (a config of 1,000 clients marks thousands of keys).
    line_starts: Vec<usize>,
}

/// A source line with the value of any `password = ...` masked: an error about a password
/// must not print it. Capped and escaped: it goes to terminals, logs and PR comments.
fn redact(line: &str) -> String {
    // The first `password =` on the line, wherever `password_env`/`password_file` stand
    // before it (an inline table names them all on one line).
    let at = line.match_indices("password").map(|(i, _)| i).find(|i| {
        // A quoted key (`"password" = ...`) is the same key to TOML.
        let rest = &line[i + "password".len()..];
        let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
        rest.trim_start().starts_with('=')
    });
    let line = match at {
        Some(i) => format!("{}password = ***", &line[..i]),
        None => line.to_string(),
    };
    shown_line(&crate::model::mask_url_userinfo(&line))
}

/// The longest source line an error shows, in characters.
const MAX_SNIPPET_CHARS: usize = 120;

/// A line of certs.toml as an error shows it: at most MAX_SNIPPET_CHARS characters (then `…`),
/// control and format characters (ESC, CR, bidi overrides) written as escapes (`\x1b`,
/// `\u{202e}`), so that a line can neither drive the terminal nor fill a log.
fn shown_line(line: &str) -> String {
    let mut out = String::new();
    for (i, c) in line.chars().enumerate() {
        if i == MAX_SNIPPET_CHARS {
            out.push('…');
            break;
        }
        let invisible = matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}');
        if (c as u32) < 0x20 && c != '\t' || ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if invisible {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, source: &'a str) -> Checker<'a> {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Checker {
            file,
            source,
            errors: Vec::new(),
            positions: BTreeMap::new(),
            line_starts,
        }
    }

    /// Line and column (both from 1) of a byte offset, and where that line starts.
    fn line_column(&self, offset: usize) -> (usize, usize, usize) {
        let mut start = offset.min(self.source.len());
        while !self.source.is_char_boundary(start) {
            start -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= start);
        let line_start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self.source[line_start..start].chars().count() + 1;
        (line.max(1), column, line_start)
    }

    fn position(&self, span: &Range<usize>) -> (usize, usize, String) {
        let (line, column, line_start) = self.line_column(span.start);
        let text = self.source[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end();
        (line, column, redact(text))
    }

    /// Remembers where a key stands, for errors found after parsing.
    fn mark(&mut self, key: String, span: &Range<usize>) {
        let (line, column, _) = self.line_column(span.start);
        self.positions.insert(key, (line, column));
    }

    fn error_at(&mut self, span: Option<&Range<usize>>, key: impl Into<String>, message: String) {
        let (line, column, snippet) = match span {
            Some(s) => {
                let (l, c, t) = self.position(s);
                (Some(l), Some(c), Some(t))
            }
            None => (None, None, None),
        };
        self.errors.push(ConfigError {
            kind: ConfigErrorKind::Invalid,
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message,
            snippet,
        });
    }
}

/// Parses and validates certs.toml text. `base` is the folder relative paths start from.
pub fn parse(file: &Path, source: &str, base: &Path) -> Result<Declared, Vec<ConfigError>> {
    let mut ck = Checker::new(file, source);
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => return Err(syntax_errors(ck, source, &e)),
    };
    let mut desired = validate(&mut ck, raw, file, base);
    desired.positions = std::mem::take(&mut ck.positions);
    if ck.errors.is_empty() {
        Ok(desired)
    } else {
        Err(ck.errors)
    }
}

/// The error of a certs.toml serde refused (not TOML, unknown key, wrong type), at its line.
fn syntax_errors(mut ck: Checker<'_>, source: &str, e: &toml::de::Error) -> Vec<ConfigError> {
    let span = e.span();
    let message = e.message().trim().to_string();
    let key = span
        .as_ref()
        .map(|s| key_path_at(source, s.start))
        .unwrap_or_default();
    let message = if message.starts_with("unknown field") {
        format!("{message}; unknown keys are refused so that a typo is never ignored")
    } else if message == "missing field `version`" {
        // serde reports it at the end of the document: no line to point at.
        ck.error_at(
            Some(&(0..0)),
            "version",
            "missing field `version`: certs.toml must start with `version = 1`".into(),
        );
        return mark_syntax(ck.errors);
    } else {
        message
    };
    ck.error_at(span.as_ref(), key, message);
    // Not TOML at all (a link to /etc/shadow, an environment dump): its lines are
    // nobody's config, so none is echoed, and the key only when it looks like one.
    if toml::from_str::<toml::Table>(source).is_err() {
        for e in &mut ck.errors {
            e.snippet = None;
            if e.key.len() > 64
                || !e
                    .key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                e.key = String::new();
            }
        }
    }
    mark_syntax(ck.errors)
}

fn mark_syntax(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors
        .into_iter()
        .map(|e| ConfigError {
            kind: ConfigErrorKind::Syntax,
            ..e
        })
        .collect()
}

/// The full key path at a byte offset: the nearest `[table]` header above it plus the key on
/// its line (`[clients.admin]` + `validity = 5` -> `clients.admin.validity`), for messages.
fn key_path_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let mut key = match line.split_once('=') {
        Some((k, _)) if !line.trim_start().starts_with('[') => k.trim().to_string(),
        _ => String::new(),
    };
    // A key inside an inline table (`keep = [{ thumbprint = "...", owner = "x" }]`): the key
    // at the offset, after the line's own when that is one.
    if key.contains(['{', '[', ',']) {
        // The line continues an array or inline table: the key that opened it, above.
        key = source[..line_start]
            .lines()
            .rev()
            .take_while(|l| !l.trim_start().starts_with('['))
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .find(|k| !k.contains(['{', '[', ',', '}', ']']))
            .unwrap_or_default()
            .to_string();
    }
    let here = source.get(offset..).unwrap_or_default();
    let word: String = here
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .collect();
    if !word.is_empty() && here[word.len()..].trim_start().starts_with('=') && word != key {
        key = if key.is_empty() {
            word
        } else {
            format!("{key}.{word}")
        };
    }
    let header = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.trim_start().starts_with('[') {
        return line
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    match (header, key.is_empty()) {
        (Some(h), false) => format!("{h}.{key}"),
        (Some(h), true) => h,
        (None, _) => key,
    }
}

fn validate(ck: &mut Checker<'_>, raw: RawConfig, file: &Path, base: &Path) -> Declared {
    if *raw.version.get_ref() != 1 {
        ck.error_at(
            Some(&raw.version.span()),
            "version",
            format!(
                "format version {} is not supported; this ravencert reads version = 1",
                raw.version.get_ref()
            ),
        );
    }
    let store = validate_store(ck, raw.store.as_ref(), base);
    let defaults = validate_defaults(ck, raw.defaults.as_ref().map(|d| d.get_ref()));
    let server = raw.server.as_ref().and_then(|s| {
        validate_server(
            ck,
            s,
            base,
            defaults.renew_before,
            defaults.renew_span.clone(),
        )
    });
    let mut warnings = Vec::new();
    let mut clients = BTreeMap::new();
    let mut names = Names::default();
    let ctx = ClientContext {
        defaults: &defaults,
        base,
        has_server: raw.server.is_some(),
    };
    for (key, client) in &raw.clients {
        if let Some(c) = validate_client(ck, key, client, &ctx, &mut names, &mut warnings) {
            clients.insert(c.key.clone(), c);
        }
    }
    let cluster = raw.cluster.as_ref().and_then(|c| {
        let ctx = ClusterContext {
            clients: &clients,
            base,
            has_server: raw.server.is_some(),
        };
        validate_cluster(ck, c, &ctx)
    });
    Declared {
        config_path: file.to_path_buf(),
        store,
        server,
        clients,
        cluster,
        warnings,
        positions: BTreeMap::new(),
        renew_before: defaults.renew_before,
    }
}

fn validate_store(ck: &mut Checker<'_>, s: Option<&RawStore>, base: &Path) -> StoreSettings {
    let max_deletions = match s.and_then(|s| s.max_deletions.as_ref()) {
        None => 5,
        Some(m) => {
            ck.mark("store.max_deletions".into(), &m.span());
            u32::try_from(*m.get_ref()).unwrap_or_else(|_| {
                ck.error_at(
                    Some(&m.span()),
                    "store.max_deletions",
                    "must be a whole number from 0 (no limit) upwards".into(),
                );
                5
            })
        }
    };
    let path = s.and_then(|s| s.path.as_ref());
    if let Some(p) = path {
        ck.mark("store.path".into(), &p.span());
        if let Err(e) = check_store_path(p.get_ref()) {
            ck.error_at(Some(&p.span()), "store.path", e);
        }
    }
    let declared_path = path.map_or("store", |p| p.get_ref().as_str()).to_string();
    StoreSettings {
        path: base.join(&declared_path),
        declared_path,
        prune: s.is_some_and(|s| s.prune),
        max_deletions,
    }
}

/// `[defaults]`, with every value filled in, and where renew_before was written (the server
/// certificate's errors point there).
struct Defaults {
    key: KeySpec,
    validity: Period,
    renew_before: RenewBefore,
    renew_span: Option<Range<usize>>,
    pfx: PfxProfile,
    overlap: Period,
}

fn validate_defaults(ck: &mut Checker<'_>, d: Option<&RawDefaults>) -> Defaults {
    let validity_value = d.and_then(|d| d.validity.as_ref());
    let renew_value = d.and_then(|d| d.renew_before.as_ref());
    let validity =
        period_field(ck, validity_value, "defaults.validity").unwrap_or(Period::days(5 * 365));
    let renew_before = renew_field(ck, renew_value, "defaults.renew_before")
        .unwrap_or(RenewBefore::Period(Period::days(30)));
    let overlap = period_field(ck, d.and_then(|d| d.overlap.as_ref()), "defaults.overlap")
        .unwrap_or(Period::days(0));
    let renew_span = renew_value.map(|r| r.span());
    if let Some(e) = always_due(renew_before, validity) {
        let (span, key) = match (&renew_span, validity_value.map(|v| v.span())) {
            (Some(s), _) => (s.clone(), "defaults.renew_before"),
            (None, Some(s)) => (s, "defaults.validity"),
            (None, None) => (0..0, "defaults"),
        };
        ck.error_at(
            Some(&span),
            key,
            format!("{e} (for every client that sets neither)"),
        );
    }
    Defaults {
        key: d.and_then(|d| d.key).unwrap_or(KeySpec::Rsa4096),
        validity,
        renew_before,
        renew_span,
        pfx: d.and_then(|d| d.pfx).unwrap_or(PfxProfile::Modern),
        overlap,
    }
}

/// What every client is validated against.
struct ClientContext<'a> {
    defaults: &'a Defaults,
    base: &'a Path,
    /// Whether certs.toml has a `[server]` (valid or not).
    has_server: bool,
}

fn validate_client(
    ck: &mut Checker<'_>,
    key: &Spanned<String>,
    client: &Spanned<RawClient>,
    ctx: &ClientContext<'_>,
    names: &mut Names,
    warnings: &mut Vec<String>,
) -> Option<ClientDesired> {
    let id = key.get_ref().clone();
    let at = format!("clients.{id}");
    if let Err(e) = check_client_key(&id) {
        ck.error_at(Some(&key.span()), at, e);
        return None;
    }
    let c = client.get_ref();
    if let Some(p) = &c.password {
        refuse_password(ck, &at, p);
    }
    let name = client_name(ck, &at, &id, c);
    if !name.is_empty() {
        let span = c.name.as_ref().map_or(client.span(), |n| n.span());
        names.claim(ck, &id, &name, &span);
    }
    let permissions = client_permissions(ck, &at, c);
    if c.databases.is_none() && c.clearance == Clearance::ValidUser {
        warnings.push(format!(
            "clients.{id}: a ValidUser with no databases can reach no database; add `databases = {{ Name = \"Read\" }}`"
        ));
    }
    let password = secret_ref(
        ck,
        c.password_env.as_ref(),
        c.password_file.as_ref(),
        &at,
        ctx.base,
    );
    let source = client_source(ck, &at, c, ctx, password);
    if matches!(source, ClientSpec::Generate(_)) {
        // Where a later error about its signing key points (plan::check_declared).
        ck.mark(at.clone(), &client.span());
    }
    // An invalid [server] has its own errors; this one is for a config without it.
    if matches!(source, ClientSpec::Generate(_)) && !ctx.has_server {
        ck.error_at(
            Some(&client.span()),
            at.clone(),
            "generating a client certificate needs the server certificate that signs it: add a [server] section (generate = true, or certificates = [...])".into(),
        );
    }
    let overlap = period_field(ck, c.overlap.as_ref(), &format!("{at}.overlap"))
        .unwrap_or(ctx.defaults.overlap);
    Some(ClientDesired {
        key: id,
        name,
        clearance: c.clearance,
        permissions,
        protect: c.protect,
        overlap: Some(overlap).filter(|o| o.seconds > 0),
        source,
    })
}

/// The client's name: `name` trimmed, or its key. Empty when `name` is blank (an error).
fn client_name(ck: &mut Checker<'_>, at: &str, id: &str, c: &RawClient) -> String {
    let Some(n) = &c.name else {
        return id.to_string();
    };
    let trimmed = n.get_ref().trim();
    if trimmed.is_empty() {
        ck.error_at(
            Some(&n.span()),
            format!("{at}.name"),
            "Name is a required field: give a non-empty name, or remove `name` to use the key"
                .into(),
        );
    } else if let Err(e) = check_name(trimmed) {
        ck.error_at(Some(&n.span()), format!("{at}.name"), e);
    }
    trimmed.to_string()
}

/// The names seen so far, to refuse a second client with the same name or one that looks
/// the same.
#[derive(Default)]
struct Names {
    /// Lower-cased name -> client key.
    folded: BTreeMap<String, String>,
    /// Look-alike form -> (client key, name).
    lookalikes: std::collections::HashMap<String, (String, String)>,
}

impl Names {
    /// Records client `id`'s name, or reports the client whose name it repeats or mimics.
    fn claim(&mut self, ck: &mut Checker<'_>, id: &str, name: &str, span: &Range<usize>) {
        let key = format!("clients.{id}.name");
        let folded = name.to_lowercase();
        let forms = crate::model::name_lookalikes(name);
        if let Some(other) = self.folded.get(&folded) {
            ck.error_at(
                Some(span),
                key,
                format!("name '{name}' is already used by clients.{other}; RavenDB identifies people by name, so each client needs its own"),
            );
        } else if let Some((other, other_name)) =
            forms.iter().find_map(|form| self.lookalikes.get(form))
        {
            ck.error_at(
                Some(span),
                key,
                format!(
                    "name '{}' of clients.{id} looks the same as '{}' of clients.{other} (Unicode confusables, TR39: look-alike letters from another script, invisible characters); a reviewer cannot tell them apart, so give each client a name that differs in how it looks",
                    name.escape_debug(),
                    other_name.escape_debug()
                ),
            );
        } else {
            self.folded.insert(folded, id.to_string());
            for form in forms {
                self.lookalikes
                    .entry(form)
                    .or_insert_with(|| (id.to_string(), name.to_string()));
            }
        }
    }
}

/// `databases`: only for a ValidUser, names by RavenDB's rule, unique ignoring case.
fn client_permissions(ck: &mut Checker<'_>, at: &str, c: &RawClient) -> Permissions {
    let mut permissions = Permissions::new();
    let Some(dbs) = &c.databases else {
        return permissions;
    };
    if c.clearance != Clearance::ValidUser {
        ck.error_at(
            Some(&dbs.span()),
            format!("{at}.databases"),
            format!(
                "{} {} reaches every database, so a database list on it means nothing; remove `databases` or set clearance = \"ValidUser\"",
                if c.clearance == Clearance::Operator { "an" } else { "a" },
                c.clearance
            ),
        );
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (db, access) in dbs.get_ref() {
        if let Err(e) = check_database_name(db) {
            ck.error_at(Some(&dbs.span()), format!("{at}.databases.{db}"), e);
            continue;
        }
        let folded = db.to_lowercase();
        if let Some(first) = seen.get(&folded) {
            ck.error_at(
                Some(&dbs.span()),
                format!("{at}.databases.{db}"),
                format!("database '{db}' is the same as '{first}' (RavenDB matches database names case-insensitively); keep one"),
            );
            continue;
        }
        seen.insert(folded, db);
        permissions.insert(db.clone(), *access);
    }
    permissions
}

/// An upload (whose file decides key, validity and the rest) or a generated certificate
/// (whose settings fall back to `[defaults]`).
fn client_source(
    ck: &mut Checker<'_>,
    at: &str,
    c: &RawClient,
    ctx: &ClientContext<'_>,
    password: Option<SecretRef>,
) -> ClientSpec {
    if let Some(upload) = &c.upload {
        ck.mark(format!("{at}.upload"), &upload.span());
        for (field, span) in [
            ("key", c.key.as_ref().map(|k| k.span())),
            ("validity", c.validity.as_ref().map(|k| k.span())),
            ("renew_before", c.renew_before.as_ref().map(|k| k.span())),
            ("pfx", c.pfx.as_ref().map(|k| k.span())),
        ] {
            if let Some(span) = span {
                ck.error_at(
                    Some(&span),
                    format!("{at}.{field}"),
                    format!("`{field}` is for generated certificates; an uploaded certificate keeps what its file holds — remove `{field}` or `upload`"),
                );
            }
        }
        return ClientSpec::Upload(FileRef {
            path: ctx.base.join(upload.get_ref()),
            password,
        });
    }
    let defaults = ctx.defaults;
    let validity = period_field(ck, c.validity.as_ref(), &format!("{at}.validity"))
        .unwrap_or(defaults.validity);
    let renew_before = renew_field(ck, c.renew_before.as_ref(), &format!("{at}.renew_before"))
        .unwrap_or(defaults.renew_before);
    // The defaults are checked once, in validate_defaults; a client that overrides either
    // is checked here, at the key it sets.
    let place = match (&c.renew_before, &c.validity) {
        (Some(r), _) => Some((r.span(), format!("{at}.renew_before"))),
        (None, Some(v)) => Some((v.span(), format!("{at}.validity"))),
        (None, None) => None,
    };
    if let Some((span, key)) = place {
        if let Some(e) = always_due(renew_before, validity) {
            ck.error_at(Some(&span), key, e);
        }
    }
    ClientSpec::Generate(GenerateSpec {
        key: c.key.as_ref().map_or(defaults.key, |k| *k.get_ref()),
        validity,
        renew_before,
        pfx: c.pfx.as_ref().map_or(defaults.pfx, |p| *p.get_ref()),
        password,
    })
}

fn validate_server(
    ck: &mut Checker<'_>,
    s: &Spanned<RawServer>,
    base: &Path,
    renew_before: RenewBefore,
    renew_span: Option<Range<usize>>,
) -> Option<ServerDesired> {
    let span = s.span();
    let s = s.get_ref();
    if let Some(e) = &s.export {
        ck.mark("server.export".into(), &e.span());
    }
    let source = match (s.generate, &s.certificates) {
        (true, Some(c)) => {
            ck.error_at(
                Some(&c.span()),
                "server.certificates",
                "choose one: `generate = true` makes a self-signed server certificate, `certificates` uses existing ones".into(),
            );
            None
        }
        (false, None) => {
            ck.error_at(
                Some(&span),
                "server",
                "declare the server certificate: `generate = true` with a `name`, or `certificates = [{ path = \"node.pfx\", password_env = \"...\" }]`".into(),
            );
            None
        }
        (false, Some(certs)) => Some(imported_server(ck, s, certs, base)),
        (true, None) => {
            let renew = (renew_before, renew_span);
            generated_server(ck, s, &span, renew)
        }
    }?;
    Some(ServerDesired {
        source,
        export: s.export.as_ref().map(|e| base.join(e.get_ref())),
        install: s.install.as_ref().map(|i| install_spec(ck, i, base)),
    })
}

/// A literal `password = ...` at `at`: refused where it stands.
fn refuse_password(ck: &mut Checker<'_>, at: &str, password: &Spanned<toml::Value>) {
    ck.error_at(
        Some(&password.span()),
        format!("{at}.password"),
        "passwords never stand in certs.toml (it is reviewed and kept in git): name an environment variable with `password_env` or a file with `password_file`".into(),
    );
}

/// `install = { path, pfx, password_env | password_file }`.
fn install_spec(ck: &mut Checker<'_>, install: &Spanned<RawInstall>, base: &Path) -> InstallSpec {
    let at = "server.install";
    let i = install.get_ref();
    ck.mark(at.into(), &install.span());
    if let Some(p) = &i.password {
        refuse_password(ck, at, p);
    }
    ck.mark(format!("{at}.path"), &i.path.span());
    if i.path.get_ref().trim().is_empty() {
        ck.error_at(
            Some(&i.path.span()),
            format!("{at}.path"),
            "must name the .pfx a node loads, e.g. \"/etc/ravendb/cluster.pfx\"".into(),
        );
    }
    if let Some(p) = &i.pfx {
        ck.mark(format!("{at}.pfx"), &p.span());
    }
    let password = secret_ref(
        ck,
        i.password_env.as_ref(),
        i.password_file.as_ref(),
        at,
        base,
    );
    let declared = Path::new(i.path.get_ref());
    let leaves = declared.components().any(|c| {
        use std::path::Component::{ParentDir, Prefix, RootDir};
        matches!(c, ParentDir | RootDir | Prefix(_))
    });
    InstallSpec {
        path: base.join(declared),
        root: if leaves {
            PathBuf::from("/")
        } else {
            base.to_path_buf()
        },
        pfx: i.pfx.as_ref().map_or(PfxProfile::Modern, |p| *p.get_ref()),
        password,
    }
}

/// `[server].certificates`: the nodes' own certificate files (a .pfx with its key, or a public
/// certificate); name, dns and validity are theirs.
fn imported_server(
    ck: &mut Checker<'_>,
    s: &RawServer,
    certs: &Spanned<Vec<RawCertFile>>,
    base: &Path,
) -> ServerSpec {
    for (field, sp) in [
        ("name", s.name.as_ref().map(|x| x.span())),
        ("dns", s.dns.as_ref().map(|x| x.span())),
        ("validity", s.validity.as_ref().map(|x| x.span())),
    ] {
        if let Some(sp) = sp {
            ck.error_at(
                Some(&sp),
                format!("server.{field}"),
                format!("`{field}` is for a generated server certificate; existing certificates keep what their files hold"),
            );
        }
    }
    let refs: Vec<FileRef> = certs
        .get_ref()
        .iter()
        .enumerate()
        .map(|(i, c)| node_file(ck, i, c, &certs.span(), base))
        .collect();
    if refs.is_empty() {
        ck.error_at(
            Some(&certs.span()),
            "server.certificates",
            "list at least one node certificate".into(),
        );
    }
    ServerSpec::Imported(refs)
}

/// One entry of `[server].certificates` (an inline table: its errors point at the list).
fn node_file(
    ck: &mut Checker<'_>,
    i: usize,
    c: &RawCertFile,
    span: &Range<usize>,
    base: &Path,
) -> FileRef {
    let at = format!("server.certificates[{i}]");
    for k in ["path", "password_env", "password_file"] {
        ck.mark(format!("{at}.{k}"), span);
    }
    if c.password.is_some() {
        ck.error_at(
            Some(span),
            format!("{at}.password"),
            "passwords never stand in certs.toml: use `password_env` or `password_file`".into(),
        );
    }
    let password = match (&c.password_env, &c.password_file) {
        (Some(_), Some(_)) => {
            ck.error_at(
                Some(span),
                at,
                "give `password_env` or `password_file`, not both".into(),
            );
            None
        }
        (Some(v), None) => Some(SecretRef::Env(v.clone())),
        (None, Some(f)) => Some(SecretRef::File(base.join(f))),
        (None, None) => None,
    };
    FileRef {
        path: base.join(&c.path),
        password,
    }
}

/// `generate = true`: a self-signed server certificate with a name (and DNS names).
/// `renew`: `[defaults].renew_before` and where it was written.
fn generated_server(
    ck: &mut Checker<'_>,
    s: &RawServer,
    span: &Range<usize>,
    renew: (RenewBefore, Option<Range<usize>>),
) -> Option<ServerSpec> {
    let Some(name) = &s.name else {
        ck.error_at(
            Some(span),
            "server.name",
            "a generated server certificate needs `name` (its CN, e.g. \"cluster.example.com\")"
                .into(),
        );
        return None;
    };
    let name_text = name.get_ref().trim().to_string();
    let name_ok = if name_text.is_empty() {
        ck.error_at(
            Some(&name.span()),
            "server.name",
            "must not be empty".into(),
        );
        false
    } else if let Err(e) = check_name(&name_text) {
        ck.error_at(Some(&name.span()), "server.name", e);
        false
    } else {
        true
    };
    let dns = server_dns(ck, s.dns.as_ref(), name, &name_text, name_ok);
    let validity =
        period_field(ck, s.validity.as_ref(), "server.validity").unwrap_or(Period::days(365));
    let (renew_before, renew_span) = renew;
    if let Some(e) = always_due(renew_before, validity) {
        let (span, key) = match (&s.validity, &renew_span) {
            (Some(v), _) => (v.span(), "server.validity"),
            (None, Some(r)) => (r.clone(), "defaults.renew_before"),
            (None, None) => (span.clone(), "server"),
        };
        ck.error_at(
            Some(&span),
            key,
            format!("{e} (the server certificate follows [defaults].renew_before)"),
        );
    }
    Some(ServerSpec::Generate {
        name: name_text,
        dns,
        key: s.key.unwrap_or(KeySpec::Rsa4096),
        validity,
        renew_before,
    })
}

/// The DNS names of a generated server: `dns`, or else its name (which must then be one).
fn server_dns(
    ck: &mut Checker<'_>,
    dns: Option<&Spanned<Vec<String>>>,
    name: &Spanned<String>,
    name_text: &str,
    name_ok: bool,
) -> Vec<String> {
    let Some(d) = dns else {
        if let (true, Err(e)) = (name_ok, check_dns_name(name_text)) {
            ck.error_at(
                Some(&name.span()),
                "server.name",
                format!("{e}; without `dns` the name is also the DNS name, so set `dns = [...]`"),
            );
        }
        return vec![name_text.to_string()];
    };
    if d.get_ref().is_empty() {
        ck.error_at(
            Some(&d.span()),
            "server.dns",
            "list at least one DNS name, or remove `dns` to use the name".into(),
        );
    }
    for n in d.get_ref() {
        if let Err(e) = check_dns_name(n) {
            ck.error_at(Some(&d.span()), "server.dns", e);
        }
    }
    d.get_ref().clone()
}

/// What `[cluster]` is validated against.
struct ClusterContext<'a> {
    /// The valid clients, by key (`admin` names one).
    clients: &'a BTreeMap<String, ClientDesired>,
    base: &'a Path,
    /// Whether certs.toml has a `[server]` (valid or not): `ca = "store"` pins to it.
    has_server: bool,
}

fn validate_cluster(
    ck: &mut Checker<'_>,
    c: &Spanned<RawCluster>,
    ctx: &ClusterContext<'_>,
) -> Option<ClusterSettings> {
    let span = c.span();
    let c = c.get_ref();
    let urls = cluster_urls(ck, &c.urls);
    let admin = cluster_admin(ck, c, &span, ctx);
    let ca = cluster_ca(ck, c.ca.as_ref(), &span, ctx);
    let timeout = match &c.timeout {
        None => Some(CLUSTER_TIMEOUT_DEFAULT),
        Some(t) => {
            match Period::parse_within(t.get_ref(), CLUSTER_TIMEOUT_MIN, CLUSTER_TIMEOUT_MAX) {
                Ok(p) => Some(p),
                Err(e) => {
                    ck.error_at(
                        Some(&t.span()),
                        "cluster.timeout",
                        format!("{e} (each request to the cluster waits this long at most, from {CLUSTER_TIMEOUT_MIN} to {CLUSTER_TIMEOUT_MAX}; the default is {CLUSTER_TIMEOUT_DEFAULT})"),
                    );
                    None
                }
            }
        }
    };
    let keep = cluster_keep(ck, &c.keep);
    Some(ClusterSettings {
        urls,
        admin: admin?,
        ca: ca?,
        prune: c.prune,
        timeout: timeout?,
        keep,
    })
}

/// `keep`: each a thumbprint (40 hex digits, upper-cased here once for every later comparison)
/// listed once, with an optional note of 1 to [`MAX_KEEP_NOTE_CHARS`] characters.
fn cluster_keep(ck: &mut Checker<'_>, keep: &[Spanned<RawKeep>]) -> Vec<KeptRegistration> {
    let mut out: Vec<KeptRegistration> = Vec::new();
    for (i, k) in keep.iter().enumerate() {
        let k = k.get_ref();
        let at = |field: &str| format!("cluster.keep[{i}].{field}");
        let raw = k.thumbprint.get_ref();
        let thumbprint = raw.to_ascii_uppercase();
        if raw.len() != 40 || !raw.chars().all(|c| c.is_ascii_hexdigit()) {
            ck.error_at(
                Some(&k.thumbprint.span()),
                at("thumbprint"),
                "must be a certificate's thumbprint: 40 hex digits (its SHA-1, as the Studio lists it)".into(),
            );
        } else if out.iter().any(|o| o.thumbprint == thumbprint) {
            ck.error_at(
                Some(&k.thumbprint.span()),
                at("thumbprint"),
                format!("{thumbprint} is listed twice; list each registration once"),
            );
        }
        let note = k.note.as_ref().and_then(|n| {
            let chars = n.get_ref().chars().count();
            let problem = if n.get_ref().trim().is_empty() {
                Some("is empty: leave `note` out, or say whose the registration is".to_string())
            } else if chars > MAX_KEEP_NOTE_CHARS {
                Some(format!(
                    "must be at most {MAX_KEEP_NOTE_CHARS} characters (it has {chars})"
                ))
            } else {
                None
            };
            match problem {
                Some(message) => {
                    ck.error_at(Some(&n.span()), at("note"), message);
                    None
                }
                None => Some(n.get_ref().clone()),
            }
        });
        out.push(KeptRegistration { thumbprint, note });
    }
    out
}

/// `urls`: at least one, each an https URL (normalized), none twice.
fn cluster_urls(ck: &mut Checker<'_>, urls: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    if urls.get_ref().is_empty() {
        ck.error_at(
            Some(&urls.span()),
            "cluster.urls",
            "list at least one node, e.g. urls = [\"https://a.cluster.example.com\"]".into(),
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (i, u) in urls.get_ref().iter().enumerate() {
        let key = format!("cluster.urls[{i}]");
        match check_cluster_url(u.get_ref()) {
            Ok(url) if out.contains(&url) => ck.error_at(
                Some(&u.span()),
                key,
                format!("{url} is listed twice; list each node once"),
            ),
            Ok(url) => out.push(url),
            Err(e) => {
                ck.error_at(Some(&u.span()), key, e.message);
                if let (Some(secret), Some(last)) = (e.userinfo, ck.errors.last_mut()) {
                    // A password in a URL is still a password: the line shown masks it.
                    last.snippet = last.snippet.as_ref().map(|s| s.replace(&secret, "***"));
                }
            }
        }
    }
    out
}

/// Why a cluster URL is refused; `userinfo` is the `user:password` part to mask, if any.
struct UrlProblem {
    message: String,
    userinfo: Option<String>,
}

impl From<String> for UrlProblem {
    fn from(message: String) -> UrlProblem {
        UrlProblem {
            message,
            userinfo: None,
        }
    }
}

/// A node URL as ravencert uses it: `https://HOST[:PORT][/PATH]`, the scheme in lower case,
/// without trailing slashes. Plain http, a user name or password, a query or a fragment are
/// refused.
fn check_cluster_url(url: &str) -> Result<String, UrlProblem> {
    const FORM: &str = "write https://HOST[:PORT], e.g. \"https://a.cluster.example.com\"";
    let shown = url.escape_debug().to_string();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("'{shown}' is not a URL; {FORM}").into());
    };
    // First: a password in the URL must never be echoed, whatever else is wrong with it.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        return Err(UrlProblem {
            message: "holds a user name or password (USER@HOST); ravencert authenticates with its admin certificate, never with a password in certs.toml: remove it".into(),
            userinfo: Some(userinfo.to_string()),
        });
    }
    if scheme.eq_ignore_ascii_case("http") {
        return Err(format!("'{shown}' is plain http; ravencert authenticates with a client certificate and sends certificates, which needs TLS: write https://").into());
    }
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("'{shown}' is not an https URL; {FORM}").into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{shown}' holds white space or control characters; {FORM}").into());
    }
    if rest.contains('?') {
        return Err(format!("'{shown}' has a query (?...); give the node's address only").into());
    }
    if rest.contains('#') {
        return Err(
            format!("'{shown}' has a fragment (#...); give the node's address only").into(),
        );
    }
    check_host_port(authority).map_err(|e| format!("'{shown}': {e}; {FORM}"))?;
    let path = rest[authority.len()..].trim_end_matches('/');
    Ok(format!("https://{authority}{path}"))
}

/// `HOST[:PORT]`: a DNS name or IPv4 address, or an IPv6 address in brackets; a port 1-65535.
fn check_host_port(authority: &str) -> Result<(), String> {
    let port = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("an IPv6 address lacks its ']'")?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{addr}' is not an IPv6 address"));
        }
        match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("'{a}' after the IPv6 address is not a port"))?,
            ),
        }
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!("'{host}' is not a host name or address"));
        }
        port
    };
    match port {
        Some(p) if !matches!(p.parse::<u16>(), Ok(1..)) => {
            Err(format!("the port '{p}' is not a number from 1 to 65535"))
        }
        _ => Ok(()),
    }
}

/// `admin` or `admin_certificate`, exactly one; `admin` names a generated client that may
/// manage every declared certificate.
fn cluster_admin(
    ck: &mut Checker<'_>,
    c: &RawCluster,
    span: &Range<usize>,
    ctx: &ClusterContext<'_>,
) -> Option<ClusterAdmin> {
    match (&c.admin, &c.admin_certificate) {
        (Some(_), Some(cert)) => {
            ck.error_at(
                Some(&cert.span()),
                "cluster.admin_certificate",
                "choose one: `admin` authenticates with a declared client's issued certificate, `admin_certificate` with an existing .pfx".into(),
            );
            None
        }
        (None, None) => {
            ck.error_at(
                Some(span),
                "cluster",
                "say which certificate authenticates to the cluster: `admin = \"KEY\"` (a declared generated ClusterAdmin client) or `admin_certificate = { path = \"secrets/admin.pfx\", password_env = \"...\" }`".into(),
            );
            None
        }
        (Some(key), None) => admin_client(ck, key, ctx).map(ClusterAdmin::Client),
        (None, Some(cert)) => Some(ClusterAdmin::Certificate(admin_certificate(
            ck, cert, ctx.base,
        ))),
    }
}

/// `admin = "KEY"`: a declared generated client with the clearance to manage every declared
/// certificate (docs/ravendb.md: an Operator cannot manage ClusterAdmin certificates, a ValidUser
/// none).
fn admin_client(
    ck: &mut Checker<'_>,
    key: &Spanned<String>,
    ctx: &ClusterContext<'_>,
) -> Option<String> {
    let id = key.get_ref();
    let span = key.span();
    let Some(client) = ctx.clients.get(id) else {
        let keys: Vec<&str> = ctx.clients.keys().map(String::as_str).collect();
        ck.error_at(
            Some(&span),
            "cluster.admin",
            format!(
                "no client '{}' is declared (declared: {}); name a [clients.KEY] that ravencert generates, or use `admin_certificate`",
                id.escape_debug(),
                if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
            ),
        );
        return None;
    };
    let problem = match (&client.source, client.clearance) {
        (ClientSpec::Upload(_), _) => Some(format!("clients.{id} is an upload: ravencert does not keep its private key, so it cannot authenticate with it; name a generated client, or use `admin_certificate` with the .pfx")),
        (_, Clearance::ValidUser) => Some(format!("clients.{id} is a ValidUser, which cannot manage certificates at all; name a ClusterAdmin client")),
        (_, Clearance::Operator) => {
            let admins: Vec<String> = ctx
                .clients
                .values()
                .filter(|c| c.clearance == Clearance::ClusterAdmin)
                .map(|c| format!("clients.{}", c.key))
                .collect();
            (!admins.is_empty()).then(|| format!(
                "clients.{id} is an Operator, and an Operator cannot manage ClusterAdmin certificates ({}); name a ClusterAdmin client, or make clients.{id} one",
                admins.join(", ")
            ))
        }
        _ => None,
    };
    if let Some(message) = problem {
        ck.error_at(Some(&span), "cluster.admin", message);
        return None;
    }
    Some(id.clone())
}

/// `admin_certificate = { path, password_env | password_file }`.
fn admin_certificate(
    ck: &mut Checker<'_>,
    cert: &Spanned<RawAdminCertificate>,
    base: &Path,
) -> FileRef {
    let at = "cluster.admin_certificate";
    let c = cert.get_ref();
    if let Some(p) = &c.password {
        refuse_password(ck, at, p);
    }
    ck.mark(format!("{at}.path"), &c.path.span());
    if c.path.get_ref().trim().is_empty() {
        ck.error_at(
            Some(&c.path.span()),
            format!("{at}.path"),
            "must name the admin .pfx, e.g. \"secrets/admin.pfx\"".into(),
        );
    }
    let password = secret_ref(
        ck,
        c.password_env.as_ref(),
        c.password_file.as_ref(),
        at,
        base,
    );
    FileRef {
        path: base.join(c.path.get_ref()),
        password,
    }
}

/// `ca`: "store" (the default; needs [server]), "system", or a PEM file.
fn cluster_ca(
    ck: &mut Checker<'_>,
    ca: Option<&Spanned<String>>,
    span: &Range<usize>,
    ctx: &ClusterContext<'_>,
) -> Option<CaPin> {
    let pin = match ca.map(|c| c.get_ref().as_str()) {
        None | Some("store") => CaPin::Store,
        Some("system") => CaPin::System,
        Some(path) if path.trim().is_empty() => {
            ck.error_at(
                ca.map(|c| c.span()).as_ref(),
                "cluster.ca",
                "must be \"store\", \"system\" or the path of a PEM file".into(),
            );
            return None;
        }
        Some(path) => CaPin::Pem(ctx.base.join(path)),
    };
    if let Some(c) = ca {
        ck.mark("cluster.ca".into(), &c.span());
    }
    if pin == CaPin::Store && !ctx.has_server {
        let (at, key) = match ca {
            Some(c) => (c.span(), "cluster.ca"),
            None => (span.clone(), "cluster"),
        };
        ck.error_at(
            Some(&at),
            key,
            "ca = \"store\" (the default) pins the cluster's TLS certificate to the store's server certificate, and certs.toml declares no [server]: add [server], or set ca = \"system\" or the path of a PEM file".into(),
        );
        return None;
    }
    Some(pin)
}

/// The store must be a folder of its own: never certs.toml's folder or one above it (its
/// `.gitignore` of `*` would hide certs.toml itself from git, and apply would sweep its files).
/// Absolute paths and `--store` are checked against the file system in ops.
fn check_store_path(path: &str) -> Result<(), String> {
    use std::path::Component;
    if path.trim().is_empty() {
        return Err("must name a folder, e.g. \"store\"".into());
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Ok(());
    }
    let mut depth: i64 = 0;
    let mut min_depth: i64 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
        min_depth = min_depth.min(depth);
    }
    if depth <= 0 && depth <= min_depth {
        return Err(format!(
            "'{}' is the folder of certs.toml or one above it; the store must be a folder of its own (it holds private keys and a .gitignore of `*` that would hide certs.toml from git), e.g. \"store\"",
            path.escape_debug()
        ));
    }
    Ok(())
}

fn check_dns_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = name.strip_prefix("*.").unwrap_or(name).split('.').collect();
    if name.len() > 253 || !labels.iter().all(|l| label_ok(l)) {
        return Err(format!(
            "'{name}' is not a valid DNS name (letters, digits and '-' in dot-separated labels)"
        ));
    }
    Ok(())
}

/// Whether a certificate with this validity would be due for renewal the moment it is issued
/// (and so re-issued on every run): the window is measured against the real lifetime, which
/// includes the back-dating of not-before. Returns the message when it would.
fn always_due(renew: RenewBefore, validity: Period) -> Option<String> {
    let lifetime = validity.seconds + BACKDATING.seconds;
    match renew {
        RenewBefore::Period(r) if r >= validity => Some(format!(
            "renew_before {r} is not shorter than the validity {validity}: the certificate would be re-issued on every run; shorten renew_before or lengthen validity"
        )),
        RenewBefore::Percent(p) if i128::from(p) * i128::from(lifetime) >= 100 * i128::from(validity.seconds) => {
            let window = Period { seconds: (i128::from(p) * i128::from(lifetime) / 100) as i64 };
            Some(format!(
                "renew_before {p}% of a certificate valid for {validity} is {window} (its lifetime counts the {} back-dating of not-before), not shorter than the validity itself: the certificate would be re-issued on every run; lower the share or lengthen validity",
                BACKDATING
            ))
        }
        _ => None,
    }
}

fn period_field(ck: &mut Checker<'_>, v: Option<&Spanned<String>>, at: &str) -> Option<Period> {
    let v = v?;
    match Period::parse(v.get_ref()) {
        Ok(s) if s.seconds > 0 || at.ends_with("overlap") => Some(s),
        Ok(_) => {
            ck.error_at(Some(&v.span()), at, "must be longer than zero".into());
            None
        }
        Err(e) => {
            ck.error_at(Some(&v.span()), at, e);
            None
        }
    }
}

fn renew_field(ck: &mut Checker<'_>, v: Option<&Spanned<String>>, at: &str) -> Option<RenewBefore> {
    let v = v?;
    match RenewBefore::parse(v.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            ck.error_at(Some(&v.span()), at, e);
            None
        }
    }
}

fn secret_ref(
    ck: &mut Checker<'_>,
    env: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
    at: &str,
    base: &Path,
) -> Option<SecretRef> {
    match (env, file) {
        (Some(_), Some(f)) => {
            ck.error_at(
                Some(&f.span()),
                format!("{at}.password_file"),
                "give `password_env` or `password_file`, not both".into(),
            );
            None
        }
        (Some(e), None) => {
            ck.mark(format!("{at}.password_env"), &e.span());
            let name = e.get_ref();
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                ck.error_at(
                    Some(&e.span()),
                    format!("{at}.password_env"),
                    "must name an environment variable".into(),
                );
                None
            } else {
                Some(SecretRef::Env(name.clone()))
            }
        }
        (None, Some(f)) => {
            ck.mark(format!("{at}.password_file"), &f.span());
            Some(SecretRef::File(base.join(f.get_ref())))
        }
        (None, None) => None,
    }
}

/// Checks that every secret and referenced file the config names is there, before anything is
/// written. Each problem names the key that refers to it, with its line.
///
/// `on_disk`: the certificate files are read from the disk (not from a git revision), so they
/// must exist there. `secrets`: the passwords it names are read (those of uploads, node files,
/// the admin .pfx and the install file) and the admin .pfx must exist; a review plan reads
/// none. The bundle passwords of generated clients are never read here: a password is read
/// when its bundle is written, or compared (and by `validate`, see
/// [`Declared::bundle_password_problems`]).
pub fn check_references(desired: &Declared, on_disk: bool, secrets: bool) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (at, path, secret) in references(desired) {
        // The admin .pfx is a secret, read from the disk even for a plan of a git revision.
        let admin = at == "cluster.admin_certificate";
        let from_disk = (on_disk && !admin) || (admin && secrets);
        if let Some((key, p)) = path.filter(|_| from_disk) {
            if !p.is_file() {
                problems.push(missing_file(desired, key, p));
            }
        }
        if let Some(s) = secret.filter(|_| secrets) {
            if let Err(e) = s.read() {
                problems.push(desired.secret_error_at(secret_key(&at, s), e.to_string()));
            }
        }
    }
    problems.extend(files_inside_store(desired));
    problems
}

/// What `status --html` checks of the secrets and files certs.toml names: that each is there,
/// without reading a secret (a variable that is set, a password file that exists).
pub(crate) fn missing_references(desired: &Declared) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (at, path, secret) in references(desired) {
        if let Some((key, p)) = path.filter(|(_, p)| !p.is_file()) {
            problems.push(missing_file(desired, key, p));
        }
        if let Some((s, why)) = secret.and_then(|s| Some((s, s.missing()?))) {
            problems.push(desired.secret_error_at(secret_key(&at, s), why));
        }
    }
    problems
}

/// A file certs.toml names that is not there.
fn missing_file(desired: &Declared, key: String, path: &Path) -> ConfigError {
    desired.file_error_at(
        key,
        format!("{} does not exist or is not a file", path.display()),
    )
}

/// The certs.toml key of a secret named at `at`: `AT.password_env` or `AT.password_file`.
fn secret_key(at: &str, secret: &SecretRef) -> String {
    match secret {
        SecretRef::Env(_) => format!("{at}.password_env"),
        SecretRef::File(_) => format!("{at}.password_file"),
    }
}

/// A secret or file certs.toml names: the key its secret is named under, the file and the key
/// that names it, the secret.
type Ref<'a> = (String, Option<(String, &'a Path)>, Option<&'a SecretRef>);

/// Every secret and file certs.toml names (generated clients' bundle passwords aside: they
/// are read only when their bundle is written).
fn references(desired: &Declared) -> Vec<Ref<'_>> {
    let mut refs: Vec<Ref<'_>> = Vec::new();
    for c in desired.clients.values() {
        if let ClientSpec::Upload(r) = &c.source {
            let at = format!("clients.{}", c.key);
            let file = (format!("{at}.upload"), r.path.as_path());
            refs.push((at, Some(file), r.password.as_ref()))
        }
    }
    if let Some(r) = desired.admin_certificate() {
        let at = "cluster.admin_certificate".to_string();
        let file = (format!("{at}.path"), r.path.as_path());
        refs.push((at, Some(file), r.password.as_ref()));
    }
    if let Some(p) = desired.cluster_ca_file() {
        refs.push(("cluster".into(), Some(("cluster.ca".into(), p)), None));
    }
    if let Some(i) = desired.install() {
        refs.push(("server.install".into(), None, i.password.as_ref()));
    }
    if let Some(ServerDesired {
        source: ServerSpec::Imported(files),
        ..
    }) = &desired.server
    {
        for (i, r) in files.iter().enumerate() {
            let at = format!("server.certificates[{i}]");
            let file = (format!("{at}.path"), r.path.as_path());
            refs.push((at, Some(file), r.password.as_ref()));
        }
    }
    refs
}

/// The files certs.toml names that lie inside the store.
fn files_inside_store(desired: &Declared) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (key, path) in named_files(desired) {
        if inside_store(desired, path) {
            problems.push(desired.error_at(
                key,
                format!(
                    "{} is inside the store {}; certs.toml may not point into the store (its files are ravencert's own: keys, certificates, bundles) — name a file outside it",
                    path.display(),
                    desired.store.path.display()
                ),
            ));
        }
    }
    problems
}

/// `[cluster].ca`'s PEM file, read like an upload (through `reader`: from the disk, links kept
/// inside the repository, or from a git revision): it must hold certificates, and no private
/// key (it is reviewed and kept in git).
fn check_ca_file(path: &Path, reader: Reader<'_>) -> Result<(), String> {
    let bytes = reader(path)?;
    let file = crate::pki::read_cert_file(&bytes, None).map_err(|e| {
        format!(
            "{}: {e}; the CA file is a PEM file of the certificate(s) that sign or are the cluster's TLS certificate",
            path.display()
        )
    })?;
    if file.key.is_some() {
        return Err(format!(
            "{} holds a private key; the CA file is reviewed and kept in git, so it must hold public certificates only — remove the key",
            path.display()
        ));
    }
    if file.certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(())
}

/// Every file certs.toml names, with the key that names it.
fn named_files(desired: &Declared) -> Vec<(String, &Path)> {
    fn password_file<'a>(at: &str, s: Option<&'a SecretRef>) -> Option<(String, &'a Path)> {
        match s {
            Some(SecretRef::File(p)) => Some((format!("{at}.password_file"), p.as_path())),
            _ => None,
        }
    }
    let mut out = Vec::new();
    for c in desired.clients.values() {
        let at = format!("clients.{}", c.key);
        match &c.source {
            ClientSpec::Generate(g) => out.extend(password_file(&at, g.password.as_ref())),
            ClientSpec::Upload(r) => {
                out.push((format!("{at}.upload"), r.path.as_path()));
                out.extend(password_file(&at, r.password.as_ref()));
            }
        }
    }
    if let Some(ServerDesired {
        source: ServerSpec::Imported(files),
        ..
    }) = &desired.server
    {
        for (i, r) in files.iter().enumerate() {
            let at = format!("server.certificates[{i}]");
            out.push((format!("{at}.path"), r.path.as_path()));
            out.extend(password_file(&at, r.password.as_ref()));
        }
    }
    if let Some(r) = desired.admin_certificate() {
        let at = "cluster.admin_certificate";
        out.push((format!("{at}.path"), r.path.as_path()));
        out.extend(password_file(at, r.password.as_ref()));
    }
    if let Some(p) = desired.cluster_ca_file() {
        out.push(("cluster.ca".into(), p));
    }
    if let Some(i) = desired.install() {
        out.extend(password_file("server.install", i.password.as_ref()));
    }
    out
}

/// Whether `path` lies inside the store, where it really points (links and `..` resolved).
fn inside_store(desired: &Declared, path: &Path) -> bool {
    crate::fsutil::resolve(path).starts_with(crate::fsutil::resolve(&desired.store.path))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Declared, Vec<ConfigError>> {
        parse(Path::new("certs.toml"), text, Path::new("/cfg"))
    }

    const SERVER: &str = "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n";

    fn first_error(text: &str) -> ConfigError {
        parse_str(text).expect_err("should be refused").remove(0)
    }

    #[test]
    fn a_file_that_is_not_toml_is_never_echoed() {
        for text in [
            "root:$6$SECRETHASH:19000:0:99999:7:::\nbin:*:19000\n",
            "HOME=/root\0CI_TOKEN=SECRETHASH\0",
            "version = 1\nSECRETHASH\n",
        ] {
            let e = first_error(text);
            assert_eq!(e.snippet, None, "{e}");
            assert!(!e.to_string().contains("SECRETHASH"), "{e}");
        }
        // A file that is TOML shows the line at fault.
        let e = first_error("version = 1\n[clients.a]\nclearance = 7\n");
        assert_eq!(e.snippet.as_deref(), Some("clearance = 7"), "{e}");
    }

    #[test]
    fn inline_passwords_are_masked_after_other_password_keys() {
        assert_eq!(
            redact(
                r#"certificates = [{ path = "a.pfx", password_env = "A", password = "s3cret" }]"#
            ),
            r#"certificates = [{ path = "a.pfx", password_env = "A", password = ***"#
        );
        assert_eq!(redact(r#"password_env = "A""#), r#"password_env = "A""#);
        assert_eq!(redact(r#""password" = "s3cret""#), r#""password = ***"#);
        assert_eq!(redact("'password' = 's3cret'"), "'password = ***");
    }

    #[test]
    fn snippets_are_capped_and_escaped() {
        let long = format!(
            "version = 1\n[clients.a]\nclearance = \"{}\"\n",
            "x".repeat(500)
        );
        let e = first_error(&long);
        let snippet = e.snippet.clone().unwrap();
        assert!(
            snippet.chars().count() <= MAX_SNIPPET_CHARS + 1,
            "{snippet}"
        );
        assert!(snippet.ends_with('…'), "{snippet}");
        assert_eq!(
            shown_line("a\u{1b}[2Jb\rc\u{202e}d\u{7f}\te"),
            "a\\x1b[2Jb\\x0dc\\u{202e}d\\x7f\te"
        );
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let d = parse_str(&format!(
            "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\n"
        ))
        .unwrap();
        assert_eq!(d.store.path, Path::new("/cfg/store"));
        assert_eq!(d.store.max_deletions, 5);
        let admin = &d.clients["admin"];
        assert_eq!(admin.name, "admin");
        let ClientSpec::Generate(g) = &admin.source else {
            panic!()
        };
        assert_eq!(g.key, KeySpec::Rsa4096);
        assert_eq!(g.validity, Period::days(5 * 365));
        assert_eq!(g.pfx, PfxProfile::Modern);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = first_error(&format!(
            "{SERVER}[clients.admin]\nclearence = \"ClusterAdmin\"\n"
        ));
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("clearence"), "{e}");
    }

    #[test]
    fn password_in_file_is_refused_with_pointer() {
        let e = first_error(&format!(
            "{SERVER}[clients.app]\nclearance = \"Operator\"\npassword = \"hunter2\"\n"
        ));
        assert_eq!(e.key, "clients.app.password");
        assert!(e.message.contains("password_env"));
        // The line is shown to point at the mistake, with the value masked: the password
        // itself reaches no screen and no CI log.
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(e.snippet.as_deref(), Some("password = ***"));
    }

    #[test]
    fn databases_only_for_valid_user() {
        let e = first_error(&format!(
            "{SERVER}[clients.op]\nclearance = \"Operator\"\ndatabases = {{ Orders = \"Read\" }}\n"
        ));
        assert_eq!(e.key, "clients.op.databases");
        assert_eq!(e.line, Some(7));
    }

    #[test]
    fn case_duplicate_databases_refused() {
        let e = first_error(&format!(
            "{SERVER}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\", orders = \"Admin\" }}\n"
        ));
        assert!(e.message.contains("case-insensitively"), "{e}");
    }

    #[test]
    fn valid_user_without_databases_warns() {
        let d = parse_str(&format!("{SERVER}[clients.u]\nclearance = \"ValidUser\"\n")).unwrap();
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn duplicate_names_refused() {
        let e = first_error(&format!(
            "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"Ops\"\n[clients.b]\nclearance = \"Operator\"\nname = \"ops\"\n"
        ));
        assert_eq!(e.key, "clients.b.name");
    }

    #[test]
    fn lookalike_names_refused() {
        // A second ClusterAdmin named `аpp` with a Cyrillic а beside `app`.
        let e = first_error(&format!(
            "{SERVER}[clients.app]\nclearance = \"ClusterAdmin\"\n[clients.app2]\nclearance = \"ClusterAdmin\"\nname = \"\u{0430}pp\"\n"
        ));
        assert_eq!(e.key, "clients.app2.name");
        assert!(e.message.contains("clients.app2"), "{e}");
        assert!(e.message.contains("clients.app "), "{e}");
        assert!(e.message.contains("looks the same"), "{e}");
        // Capital Cyrillic А, a zero-width space, `I` for `l`.
        for (a, b) in [
            ("app", "\u{0410}PP"),
            ("app", "a\u{200B}pp"),
            ("Bill", "BiII"),
        ] {
            let e = first_error(&format!(
                "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"{a}\"\n[clients.b]\nclearance = \"Operator\"\nname = \"{b}\"\n"
            ));
            assert_eq!(e.key, "clients.b.name", "{a} / {b}");
        }
        // Names that merely differ are fine.
        parse_str(&format!(
            "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"app\"\n[clients.b]\nclearance = \"Operator\"\nname = \"apps\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn bidi_controls_refused_in_names_and_database_names() {
        let e = first_error(&format!(
            "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"adm\\u202Enim\"\n"
        ));
        assert_eq!(e.key, "clients.a.name");
        for db in ["Orders\\u202E", "Ord\\u2066ers", "Orders\\u200F"] {
            let e = first_error(&format!(
                "{SERVER}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ \"{db}\" = \"Read\" }}\n"
            ));
            assert!(e.key.starts_with("clients.u.databases"), "{db}: {e}");
            assert!(e.message.contains("not permitted"), "{db}: {e}");
        }
    }

    #[test]
    fn renew_before_must_be_shorter_than_validity() {
        let e = first_error(&format!(
            "{SERVER}[clients.a]\nclearance = \"Operator\"\nvalidity = \"30d\"\nrenew_before = \"30d\"\n"
        ));
        assert_eq!(e.key, "clients.a.renew_before");
    }

    #[test]
    fn version_other_than_one_refused() {
        let e = first_error("version = 2\n");
        assert_eq!(e.key, "version");
        assert_eq!(e.line, Some(1));
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        assert_eq!(
            first_error("version = \"1\"\n").kind,
            ConfigErrorKind::Syntax
        );
        assert_eq!(first_error("not toml at all").kind, ConfigErrorKind::Syntax);
    }

    #[test]
    fn generated_client_needs_server() {
        let e = first_error("version = 1\n[clients.a]\nclearance = \"Operator\"\n");
        assert_eq!(e.key, "clients.a");
    }

    #[test]
    fn renew_share_is_checked_against_the_real_lifetime() {
        let days = Period::days;
        // 90% of 30d + 7d back-dating is 33.3d: always due.
        assert!(always_due(RenewBefore::Percent(90), days(30)).is_some());
        // 80% of 37d is 29.6d: shorter than 30d, so not always due.
        assert!(always_due(RenewBefore::Percent(80), days(30)).is_none());
        assert!(always_due(RenewBefore::Percent(33), days(365)).is_none());
        assert!(always_due(RenewBefore::Period(days(30)), days(30)).is_some());
        assert!(always_due(RenewBefore::Period(days(29)), days(30)).is_none());
    }

    const OPS_ADMIN: &str = "[clients.ops-admin]\nclearance = \"ClusterAdmin\"\n";

    #[test]
    fn cluster_section_parses_into_settings() {
        let d = parse_str(&format!(
            "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.cluster.example.com/\", \"HTTPS://b.cluster.example.com:8443\", \"https://[::1]:443/raven//\"]\nadmin = \"ops-admin\"\nprune = true\ntimeout = \"2min\"\n"
        ))
        .unwrap();
        assert_eq!(
            d.cluster,
            Some(ClusterSettings {
                urls: vec![
                    "https://a.cluster.example.com".into(),
                    "https://b.cluster.example.com:8443".into(),
                    "https://[::1]:443/raven".into(),
                ],
                admin: ClusterAdmin::Client("ops-admin".into()),
                ca: CaPin::Store,
                prune: true,
                timeout: Period::seconds(120),
                keep: Vec::new(),
            })
        );
        // Defaults, an admin .pfx and a CA file, relative to certs.toml's folder.
        let d = parse_str(&format!(
            "{SERVER}[cluster]\nurls = [\"https://a.example.com\"]\nca = \"trust/ca.pem\"\nadmin_certificate = {{ path = \"secrets/admin.pfx\", password_env = \"ADMIN_PFX\" }}\n"
        ))
        .unwrap();
        let c = d.cluster.clone().unwrap();
        assert_eq!(c.ca, CaPin::Pem("/cfg/trust/ca.pem".into()));
        assert_eq!(
            c.admin,
            ClusterAdmin::Certificate(FileRef {
                path: "/cfg/secrets/admin.pfx".into(),
                password: Some(SecretRef::Env("ADMIN_PFX".into())),
            })
        );
        assert!(!c.prune);
        assert_eq!(c.timeout, CLUSTER_TIMEOUT_DEFAULT);
        assert!(d.positions.contains_key("cluster.admin_certificate.path"));
        // The CA file is under review; the admin .pfx (a secret) is watched, not hashed.
        assert!(d.certificate_files().contains(&"/cfg/trust/ca.pem".into()));
        assert!(!d
            .certificate_files()
            .contains(&"/cfg/secrets/admin.pfx".into()));
        assert!(d
            .referenced_files()
            .contains(&"/cfg/secrets/admin.pfx".into()));
        let system = parse_str(
            "version = 1\n[clients.p]\nclearance = \"Operator\"\nupload = \"p.crt\"\n[cluster]\nurls = [\"https://a.example.com\"]\nca = \"system\"\nadmin_certificate = { path = \"a.pfx\" }\n",
        )
        .unwrap();
        assert_eq!(system.cluster.unwrap().ca, CaPin::System);
        // Without [cluster], no cluster.
        assert_eq!(parse_str(SERVER).unwrap().cluster, None);
    }

    #[test]
    fn cluster_urls_are_https_node_addresses() {
        for good in [
            "https://a.example.com",
            "https://10.0.0.1:8080",
            "https://[fe80::1]",
        ] {
            assert!(check_cluster_url(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("http://a.example.com", "plain http"),
            (
                "https://admin:s3cret@a.example.com",
                "user name or password",
            ),
            ("https://a.example.com/?x=1", "query"),
            ("https://a.example.com#top", "fragment"),
            ("https://a.example.com:0", "port"),
            ("https://a.example.com:99999", "port"),
            ("https://", "no host"),
            ("https://a b", "white space"),
            ("a.example.com", "not a URL"),
            ("ftp://a.example.com", "not an https URL"),
            ("https://[zz]", "IPv6"),
        ] {
            let e = check_cluster_url(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad}"));
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        // A password in a URL is masked in the line an error shows.
        let e = first_error(&format!(
            "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://admin:s3cret@a.example.com\"]\nadmin = \"ops-admin\"\n"
        ));
        assert_eq!(e.key, "cluster.urls[0]");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        // Also when the URL is wrong in another way too (plain http).
        let e = first_error(&format!(
            "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"http://admin:s3cret@a.example.com\"]\nadmin = \"ops-admin\"\n"
        ));
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn cluster_admin_must_manage_every_declared_certificate() {
        let cluster = "[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops\"\n";
        let operator = "[clients.ops]\nclearance = \"Operator\"\n";
        // An Operator alone may manage Operators and ValidUsers.
        parse_str(&format!(
            "{SERVER}{operator}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n{cluster}"
        ))
        .unwrap();
        // Not beside a ClusterAdmin.
        let e = first_error(&format!("{SERVER}{operator}{OPS_ADMIN}{cluster}"));
        assert_eq!(e.key, "cluster.admin");
        assert!(e.message.contains("clients.ops-admin"), "{e}");
        // A ValidUser never.
        let e = first_error(&format!(
            "{SERVER}[clients.ops]\nclearance = \"ValidUser\"\n{cluster}"
        ));
        assert!(e.message.contains("cannot manage certificates"), "{e}");
    }

    #[test]
    fn cluster_timeout_is_bounded() {
        for (t, ok) in [
            ("1s", true),
            ("600s", true),
            ("10min", true),
            ("0s", false),
            ("11min", false),
            ("1h", false),
        ] {
            let r = parse_str(&format!(
                "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops-admin\"\ntimeout = \"{t}\"\n"
            ));
            assert_eq!(r.is_ok(), ok, "{t}: {r:?}");
        }
    }

    /// `[cluster] keep` (issue 23): 40 hex digits, normalized once; no duplicates; a note that
    /// is optional and capped; no other key. Each error names the line and the key.
    #[test]
    fn cluster_keep_is_validated() {
        let config = |keep: &str| {
            format!(
                "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops-admin\"\nkeep = [\n{keep}\n]\n"
            )
        };
        let a = "ab".repeat(20);
        let b = "0123456789".repeat(4);
        let good = parse_str(&config(&format!(
            "{{ thumbprint = \"{a}\", note = \"the backup team's\" }},\n{{ thumbprint = \"{b}\" }}"
        )));
        let keep = good.map(|d| d.cluster.map(|c| c.keep)).ok().flatten();
        assert_eq!(
            keep,
            Some(vec![
                KeptRegistration {
                    thumbprint: a.to_uppercase(),
                    note: Some("the backup team's".into()),
                },
                KeptRegistration {
                    thumbprint: b.clone(),
                    note: None,
                },
            ])
        );
        let cases = [
            (
                format!("{{ thumbprint = \"{}\" }}", &a[..39]),
                "cluster.keep[0].thumbprint",
                "40 hex digits",
            ),
            (
                format!("{{ thumbprint = \"{}zz\" }}", &a[..38]),
                "cluster.keep[0].thumbprint",
                "40 hex digits",
            ),
            (
                format!(
                    "{{ thumbprint = \"{a}\" }},\n{{ thumbprint = \"{}\" }}",
                    a.to_uppercase()
                ),
                "cluster.keep[1].thumbprint",
                "listed twice",
            ),
            (
                format!("{{ thumbprint = \"{a}\", note = \"{}\" }}", "n".repeat(201)),
                "cluster.keep[0].note",
                "at most 200 characters",
            ),
            (
                format!("{{ thumbprint = \"{a}\", note = \"\" }}"),
                "cluster.keep[0].note",
                "leave `note` out",
            ),
            (
                format!("{{ thumbprint = \"{a}\", owner = \"backup\" }}"),
                "cluster.keep.owner",
                "unknown field `owner`",
            ),
        ];
        for (keep, key, says) in cases {
            let text = config(&keep);
            let e = first_error(&text);
            assert!(e.key.contains(key), "{keep}: {e}");
            assert!(e.message.contains(says), "{keep}: {e}");
            // The line of the offending entry (the second for a duplicate).
            let line = keep.lines().last().unwrap_or_default();
            let expected = text.lines().position(|l| l == line).map(|i| i + 1);
            assert_eq!(e.line, expected, "{keep}: {e}");
        }
    }

    #[test]
    fn store_path_must_not_hold_certs_toml() {
        for bad in [".", "", "./", "a/..", "..", "../..", "a/../.."] {
            assert!(check_store_path(bad).is_err(), "{bad:?}");
        }
        for good in ["store", "../store", "./s", "a/../b", "/var/lib/ravencert"] {
            assert!(check_store_path(good).is_ok(), "{good:?}");
        }
    }
}
