//! The shared vocabulary: RavenDB's clearances and access levels, key types, durations.
//! Spellings follow RavenDB (`ClusterAdmin`, `ReadWrite`), so an admin who knows the Studio
//! finds the same words here.

use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A time as RFC 3339 (`2026-01-01T00:00:00Z`), as every output and the registry show it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub use crate::thumbprint::{EntryThumbprint, EntryThumbprintError, Thumbprint, ThumbprintError};

/// A certificate's security clearance (one per certificate).
// Its text form (Display) is RavenDB's word, as certs.toml, the registry and every output
// write it. (Not in the doc comment: schemars copies that into the checked-in schema.)
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::Display,
)]
pub enum Clearance {
    /// Only the databases listed in its permissions ("User" in the Studio).
    ValidUser,
    /// Admin of every database; cannot change the cluster.
    Operator,
    /// No restriction.
    ClusterAdmin,
}

/// Access to one database, for a `ValidUser`. Ordered by power: Read < ReadWrite < Admin.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::Display,
)]
// No doc comments on these variants: schemars would put them into the checked-in schema.
#[allow(missing_docs)]
pub enum Access {
    Read,
    ReadWrite,
    Admin,
}

/// Database name -> access. Sorted by name so that every rendering is stable.
pub(crate) type Permissions = BTreeMap<String, Access>;

/// Key algorithm and size of a generated certificate.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::Display,
)]
// No doc comments on these variants: schemars would put them into the checked-in schema. The
// names are the algorithms (RSA with its modulus size, ECDSA on NIST P-256 or P-384).
#[allow(missing_docs)]
pub enum KeySpec {
    #[serde(rename = "rsa-2048")]
    #[strum(serialize = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    #[strum(serialize = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    #[strum(serialize = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "ec-p256")]
    #[strum(serialize = "ec-p256")]
    EcP256,
    #[serde(rename = "ec-p384")]
    #[strum(serialize = "ec-p384")]
    EcP384,
}

/// How an issued .pfx is encrypted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum PfxProfile {
    /// PBES2 / PBKDF2 / AES-256-CBC with a SHA-256 MAC (OpenSSL 3's default).
    #[default]
    Modern,
    /// 3DES with a SHA-1 MAC, for old Windows and .NET Framework clients.
    Legacy,
}

/// What the `[server] install` file holds, opened with the declared password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstalledFile {
    /// No file there.
    Missing,
    /// A file that does not open with the declared password (changed, or the file altered).
    Unreadable,
    /// A file that opens.
    Holds {
        /// The thumbprint of the certificate its key belongs with, if it holds one with a key.
        thumbprint: Option<EntryThumbprint>,
        /// Its PKCS#12 profile, when it is one ravencert writes.
        profile: Option<PfxProfile>,
    },
}

/// A certificate file certs.toml names that a review plan (`plan --base`, `plan --rev`) did
/// not read: one outside the repository or not committed, or one that opens only with a
/// password (a review reads none). What it holds is not known; the plan says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadFile {
    /// The certs.toml key naming it: `clients.KEY.upload`, `server.certificates[N].path`,
    /// `cluster.ca`.
    pub key: String,
    /// The file, as certs.toml names it (joined to its folder).
    pub path: std::path::PathBuf,
    /// Why it was not read.
    pub why: String,
    /// The SHA-256 of its bytes when the repository holds it (only its password was missing):
    /// equal bytes at BASE mean the same certificates.
    pub digest: Option<String>,
    /// How it compares with the same key at BASE (`plan --base`).
    pub since_base: SinceBase,
}

/// How a file a review plan did not read compares with the one the same key named at BASE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SinceBase {
    /// Not compared with BASE (`plan --rev`: planned against a store).
    #[default]
    Unknown,
    /// The same bytes as at BASE, or the same path outside what review reads.
    Same,
    /// Other bytes or another path than at BASE.
    Changed,
    /// Not declared at BASE (a new client or node, or certs.toml is new).
    New,
}

/// Where a certificate registered in the store came from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Origin {
    /// Issued by ravencert, signed by the server certificate.
    Generated,
    /// Brought in a file (`upload`).
    Uploaded,
}

impl Origin {
    /// The word the registry and the outputs use: `generated` or `uploaded`.
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Generated certificates start this long before they are issued, as RavenDB's do (clock skew).
pub(crate) const BACKDATING: Period = Period::days(7);

/// From how many certificates per-certificate work (the store's checks, the registry's text, the
/// verification cache's stamps) is spread over every core: below it, the threads cost more than
/// they save.
pub(crate) const PARALLEL_FROM: usize = 256;

/// `f` of each item, in order: on every core from [`PARALLEL_FROM`] items, on this thread below.
pub(crate) fn per_certificate<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if items.len() < PARALLEL_FROM {
        items.iter().map(f).collect()
    } else {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
}

/// The key the server certificate answers to in `--replace` (so no client may take it).
pub const SERVER_KEY: &str = "server";

/// What the registry records for a bundle without a password.
pub const NO_PASSWORD: &str = "none";

/// A span of time, written the same way in certs.toml and on the command line: a whole number
/// with `s`, `min`, `h`, `d`, `w`, `mo` (30 days) or `y` (365 days). A bare `m` is refused: it
/// could mean minutes or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub(crate) seconds: i64,
}

/// The units of a [`Period`], with their length in seconds.
const SPAN_UNITS: [(&str, i64); 7] = [
    ("s", 1),
    ("min", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 7 * 86_400),
    ("mo", 30 * 86_400),
    ("y", 365 * 86_400),
];

/// The units of a [`Period`] as a regular-expression group (for the JSON schema).
pub(crate) const PERIOD_UNIT_PATTERN: &str = "(s|min|h|d|w|mo|y)";

const SPAN_EXAMPLES: &str = "write e.g. 30s, 10min, 12h, 90d, 2w, 6mo, 1y";

impl Period {
    /// A period of whole days.
    pub const fn days(days: i64) -> Period {
        Period {
            seconds: days * 86_400,
        }
    }

    pub(crate) const fn seconds(seconds: i64) -> Period {
        Period { seconds }
    }

    pub(crate) fn as_duration(self) -> time::Duration {
        time::Duration::seconds(self.seconds)
    }

    /// The span as a std Duration (a negative span, which the parser never makes, is zero).
    pub(crate) fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(self.seconds).unwrap_or(0))
    }

    /// Parses `<whole number><unit>`, unit one of s, min, h, d, w, mo (30 days), y (365 days).
    pub(crate) fn parse(text: &str) -> Result<Period, String> {
        let text = text.trim();
        let unit_at = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{text}' has no unit ({SPAN_EXAMPLES})"))?;
        let (digits, unit) = text.split_at(unit_at);
        if digits.is_empty() {
            return Err(format!(
                "'{text}' must start with a whole number ({SPAN_EXAMPLES})"
            ));
        }
        if unit == "m" {
            return Err(format!(
                "'{text}' is ambiguous: did you mean `min` or `mo`? (`min` is minutes, `mo` is 30 days)"
            ));
        }
        let Some(&(_, per)) = SPAN_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "'{text}' has an unknown unit '{unit}' (use s, min, h, d, w, mo = 30 days or y = 365 days)"
            ));
        };
        // Bounded so that adding it to today's date (or to a clock) can never overflow.
        const MAX: i64 = 1_000 * 365 * 86_400;
        match digits.parse::<i64>() {
            Ok(n) if n <= MAX / per => Ok(Period { seconds: n * per }),
            _ => Err(format!("'{text}' is longer than 1000 years")),
        }
    }

    /// Parses a command-line duration: the same grammar, between `min` and `max`.
    pub(crate) fn parse_within(text: &str, min: Period, max: Period) -> Result<Period, String> {
        let span = Period::parse(text)?;
        if span < min {
            return Err(format!("must be at least {min}"));
        }
        if span > max {
            return Err(format!("must be at most {max}"));
        }
        Ok(span)
    }
}

impl fmt::Display for Period {
    /// The largest unit that divides the span exactly, so that the text parses back to it. Days
    /// are preferred to weeks and months ("180d", not "6mo"); whole years read better as years.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        let unit = if s != 0 && s % (365 * 86_400) == 0 {
            ("y", 365 * 86_400)
        } else if s % 86_400 == 0 {
            ("d", 86_400)
        } else if s % 3_600 == 0 {
            ("h", 3_600)
        } else if s % 60 == 0 {
            ("min", 60)
        } else {
            ("s", 1)
        };
        write!(f, "{}{}", s / unit.1, unit.0)
    }
}

/// When to re-issue: a fixed span before expiry, or a share of the certificate's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewBefore {
    /// This long before the certificate expires (`30d`).
    Period(Period),
    /// When this share of the certificate's lifetime is left (`33%`).
    Percent(u8),
}

impl RenewBefore {
    pub(crate) fn parse(text: &str) -> Result<RenewBefore, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let n: u8 = p
                .parse()
                .map_err(|_| format!("'{t}' is not a whole percentage from 1% to 99%"))?;
            if !(1..=99).contains(&n) {
                return Err(format!("'{t}' is not a whole percentage from 1% to 99%"));
            }
            return Ok(RenewBefore::Percent(n));
        }
        Period::parse(t).map(RenewBefore::Period)
    }

    /// How long before `not_after` a certificate with this lifetime is re-issued.
    pub(crate) fn window(self, lifetime: time::Duration) -> time::Duration {
        match self {
            RenewBefore::Period(s) => s.as_duration(),
            RenewBefore::Percent(p) => lifetime * (f64::from(p) / 100.0),
        }
    }
}

impl fmt::Display for RenewBefore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewBefore::Period(s) => s.fmt(f),
            RenewBefore::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Checks a database name against RavenDB's rule; returns the server's own message when bad.
pub(crate) fn check_database_name(name: &str) -> Result<(), String> {
    let not_permitted = || {
        format!(
            "The name '{name}' is not permitted. Only letters, digits and characters ('_', '-', '.') are allowed."
        )
    };
    if name.is_empty() {
        return Err("a database name cannot be empty".into());
    }
    if name.chars().count() > 128 {
        return Err(format!(
            "The name '{name}' is longer than 128 characters, RavenDB's limit."
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(not_permitted());
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(format!(
            "The name '{name}' is not permitted. A '.' must stand between other allowed characters."
        ));
    }
    let upper = name.to_ascii_uppercase();
    let reserved = matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && matches!(upper.as_bytes()[3], b'1'..=b'9'));
    if reserved {
        return Err(format!(
            "The name '{name}' is not permitted. It is a reserved name on Windows."
        ));
    }
    Ok(())
}

/// Client keys become file names: 1-64 characters of a-z 0-9 - _ . not starting with '.'.
pub(crate) fn check_client_key(key: &str) -> Result<(), String> {
    let ok_chars = key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if key.is_empty() || key.len() > 64 || !ok_chars || key.starts_with('.') {
        return Err(format!(
            "client key '{}' is not allowed: use 1 to 64 characters of a-z 0-9 - _ . not starting with '.' (it becomes a file name)",
            key.escape_debug()
        ));
    }
    if key == SERVER_KEY {
        return Err(format!(
            "client key '{key}' is reserved: `--replace {key}` names the server certificate, so a client cannot be called that; choose another key (e.g. '{key}-client')"
        ));
    }
    Ok(())
}

/// Characters a certificate name may not hold: every invisible character (`chars`), the ones
/// the output escapes. Control characters would split the CN, the registry and the status table
/// (a newline) or drive a terminal; bidi controls make a text read differently from what it
/// holds; zero-width and other format characters make two different names look the same.
fn is_forbidden_in_name(c: char) -> bool {
    crate::chars::is_invisible(c)
}

/// The same set as a regular-expression character class (for the JSON schema).
pub(crate) const NAME_FORBIDDEN_CLASS: crate::chars::RegexClass = crate::chars::REGEX_CLASS;

/// The forms under which two names look alike (Unicode TR39 confusable skeletons, lower-cased):
/// `аpp` with a Cyrillic а, `app` and `APP` share one; so do `Il` and `ll`. Two client names
/// that share a form are one person to a reviewer. The skeleton is taken of the name as written
/// (where `I` looks like `l`) and of the name lower-cased (where Cyrillic `А` becomes `а`, like
/// `a`); it drops invisible default-ignorable characters (zero-width marks).
pub(crate) fn name_lookalikes(name: &str) -> [String; 2] {
    let skeleton = |s: &str| skeleton(s).to_lowercase();
    [skeleton(name), skeleton(&name.to_lowercase())]
}

/// TR39's skeleton. ASCII text (most names) maps character by character through a table made
/// once: decomposition changes no ASCII character, so the skeleton of an ASCII string is the
/// skeletons of its characters joined — and 10,000 names cost a table lookup each.
fn skeleton(s: &str) -> String {
    use unicode_security::confusable_detection::skeleton as tr39;
    static ASCII: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    if !s.is_ascii() {
        return tr39(s).collect();
    }
    let table = ASCII.get_or_init(|| {
        (0u8..128)
            .map(|b| tr39(&char::from(b).to_string()).collect())
            .collect()
    });
    s.bytes().map(|b| table[usize::from(b)].as_str()).collect()
}

/// RFC 5280's upper bound of a CommonName, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// Checks a certificate name (a client's `name`, the generated server's CN), already trimmed.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| is_forbidden_in_name(*c)) {
        return Err(format!(
            "'{}' holds the character U+{:04X}; a name may not hold control characters or invisible ones such as text-direction marks or zero-width characters (it is the certificate's CN and shows in the registry and in status)",
            name.escape_debug(),
            u32::from(c)
        ));
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!(
            "'{name}' is {n} characters long; a certificate's CN holds at most {MAX_NAME_CHARS} (RFC 5280): shorten it"
        ));
    }
    Ok(())
}

/// What ravencert needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-1 of the DER, uppercase hex: how RavenDB names a certificate.
    pub thumbprint: Thumbprint,
    /// Base64 SHA-256 of the SubjectPublicKeyInfo, as RavenDB records it.
    pub public_key_pinning_hash: String,
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) common_name: Option<String>,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
    pub(crate) key_spec: Option<KeySpec>,
}

/// One certificate read from a file: public parts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    pub(crate) der: Vec<u8>,
    pub(crate) info: CertInfo,
}

/// Why a cluster URL is refused; `userinfo` is the `user:password` part to mask, if any.
pub struct UrlProblem {
    /// What is wrong and how to write it; it never holds the user name or password.
    pub message: String,
    /// The `user:password` part, for the caller to mask where it shows the URL.
    pub userinfo: Option<String>,
}

impl From<String> for UrlProblem {
    fn from(message: String) -> UrlProblem {
        UrlProblem {
            message,
            userinfo: None,
        }
    }
}

/// A cluster node's URL as ravencert uses it, normalized: `https://HOST[:PORT][/PATH]`, the
/// scheme in lower case, without trailing slashes. Plain http, a user name or password, a
/// query or a fragment are refused. The one check of a node URL: certs.toml's `[cluster] urls`
/// and the cluster client both call it, so the client takes what the config accepts.
///
/// The text is checked before [`url::Url`] parses it, since the parser forgives what ravencert
/// refuses (it drops tabs and newlines, lower-cases the scheme, keeps a user name): a password
/// is found first and never echoed. The parser then has the last word on the whole URL.
pub fn cluster_url(url: &str) -> Result<String, UrlProblem> {
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
    let normalized = format!("https://{authority}{path}");
    match url::Url::parse(&normalized) {
        Ok(u) if u.scheme() == "https" && u.has_host() && u.username().is_empty() => Ok(normalized),
        Ok(_) => Err(format!("'{shown}' is not a URL; {FORM}").into()),
        Err(e) => Err(format!("'{shown}': {e}; {FORM}").into()),
    }
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

/// Text with the user information of every URL in it (`https://USER:PASSWORD@host`) replaced by
/// `***`: a password in a URL is a password, whichever spelling it has (`Sup3r\u0050w` as
/// TOML escapes it, or decoded), and wherever the URL shows (an error's quoted line, a message,
/// a log). Whatever stands between `://` and the last `@` before the host ends is masked.
pub fn mask_url_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let ends_authority = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '/' | '?'
                    | '#'
                    | '"'
                    | '\''
                    | '`'
                    | ','
                    | ';'
                    | '['
                    | ']'
                    | '('
                    | ')'
                    | '<'
                    | '>'
                    | '{'
                    | '}'
            )
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(ends_authority).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_with_units() {
        assert_eq!(Period::parse("30s").unwrap().seconds, 30);
        assert_eq!(Period::parse("10min").unwrap().seconds, 600);
        assert_eq!(Period::parse("12h").unwrap().seconds, 12 * 3600);
        assert_eq!(Period::parse("30d").unwrap(), Period::days(30));
        assert_eq!(Period::parse("2w").unwrap(), Period::days(14));
        assert_eq!(Period::parse("6mo").unwrap(), Period::days(180));
        assert_eq!(Period::parse("5y").unwrap(), Period::days(5 * 365));
        assert_eq!(Period::parse("0s").unwrap().seconds, 0);
        assert!(Period::parse("30").is_err());
        assert!(Period::parse("d").is_err());
        assert!(Period::parse("1.5y").is_err());
        assert!(Period::parse("500ms").is_err());
        assert!(Period::parse("2 h").is_err());
        assert!(Period::parse("-1d").is_err());
        assert!(Period::parse("99999999999999999999d").is_err());
        assert!(Period::parse("18446744073709551615s").is_err());
        assert!(Period::parse("5000y").is_err());
        assert_eq!(Period::parse("1000y").unwrap(), Period::days(365_000));
    }

    #[test]
    fn unit_pattern_lists_every_unit() {
        let listed: Vec<&str> = PERIOD_UNIT_PATTERN
            .trim_matches(|c| c == '(' || c == ')')
            .split('|')
            .collect();
        let units: Vec<&str> = SPAN_UNITS.iter().map(|(u, _)| *u).collect();
        assert_eq!(listed, units);
    }

    #[test]
    fn bare_m_is_refused_with_a_hint() {
        for t in ["6m", "30m", "0m"] {
            let e = Period::parse(t).unwrap_err();
            assert!(e.contains("did you mean `min`"), "{e}");
            assert!(e.contains("`mo`"), "{e}");
        }
    }

    #[test]
    fn span_display_round_trips() {
        for (t, shown) in [
            ("5y", "5y"),
            ("6mo", "180d"),
            ("2w", "14d"),
            ("30d", "30d"),
            ("0d", "0d"),
            ("12h", "12h"),
            ("36h", "36h"),
            ("90min", "90min"),
            ("60min", "1h"),
            ("90s", "90s"),
            ("120s", "2min"),
            ("0s", "0d"),
        ] {
            let span = Period::parse(t).unwrap();
            assert_eq!(span.to_string(), shown, "{t}");
            assert_eq!(Period::parse(shown).unwrap(), span, "{shown} reads back");
        }
    }

    #[test]
    fn command_line_spans_are_bounded() {
        let (min, max) = (Period::seconds(10), Period::days(365));
        assert_eq!(Period::parse_within("10s", min, max).unwrap().seconds, 10);
        assert_eq!(Period::parse_within("1y", min, max).unwrap(), max);
        let e = Period::parse_within("0s", min, max).unwrap_err();
        assert_eq!(e, "must be at least 10s");
        let e = Period::parse_within("366d", min, max).unwrap_err();
        assert_eq!(e, "must be at most 1y");
        assert!(Period::parse_within("18446744073709551615s", min, max).is_err());
    }

    #[test]
    fn renew_before_accepts_share() {
        assert_eq!(RenewBefore::parse("33%").unwrap(), RenewBefore::Percent(33));
        assert!(RenewBefore::parse("0%").is_err());
        assert!(RenewBefore::parse("100%").is_err());
        let w = RenewBefore::Percent(50).window(time::Duration::days(10));
        assert_eq!(w, time::Duration::days(5));
    }

    #[test]
    fn database_names_follow_ravendb() {
        assert!(check_database_name("Orders").is_ok());
        assert!(check_database_name("Orders.2024-eu_1").is_ok());
        assert!(check_database_name("Заказы").is_ok());
        let e = check_database_name("a/b").unwrap_err();
        assert_eq!(e, "The name 'a/b' is not permitted. Only letters, digits and characters ('_', '-', '.') are allowed.");
        assert!(check_database_name(".x").is_err());
        assert!(check_database_name("x.").is_err());
        assert!(check_database_name("a..b").is_err());
        assert!(check_database_name("con").is_err());
        assert!(check_database_name("LPT3").is_err());
        assert!(check_database_name("COM10").is_ok());
        assert!(check_database_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn client_keys_are_safe_file_names() {
        assert!(check_client_key("orders-app").is_ok());
        assert!(check_client_key("a.b_c-1").is_ok());
        for bad in [
            "",
            ".hidden",
            "../x",
            "a/b",
            "Upper",
            "a b",
            "server",
            &"x".repeat(65),
        ] {
            assert!(check_client_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_refuse_control_characters_and_long_text() {
        assert!(check_name("Orders App").is_ok());
        assert!(check_name("Заказы – отчёты").is_ok());
        assert!(check_name(&"x".repeat(64)).is_ok());
        assert!(check_name(&"й".repeat(64)).is_ok());
        let e = check_name(&"x".repeat(65)).unwrap_err();
        assert!(
            e.contains("65 characters") && e.contains("at most 64"),
            "{e}"
        );
        for bad in [
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{2028}b",
            "evil\u{202E}gnp.exe",
            // Invisible, though not a control: zero width space, soft hyphen, BOM, a tag.
            "a\u{200B}pp",
            "a\u{AD}b",
            "\u{FEFF}app",
            "app\u{E0041}",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("control characters"), "{e}");
            assert!(
                !e.contains('\n'),
                "the message itself must stay on one line: {e}"
            );
        }
    }

    /// The text forms are RavenDB's words and appear in outputs and the registry: Display
    /// (strum) and serde must spell every variant the same way.
    #[test]
    fn display_spells_as_serde_does() {
        fn same<T: Serialize + fmt::Display>(values: &[T], expected: &[&str]) {
            for (v, e) in values.iter().zip(expected) {
                assert_eq!(v.to_string(), *e);
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{e}\""));
            }
        }
        use Clearance::*;
        same(
            &[ValidUser, Operator, ClusterAdmin],
            &["ValidUser", "Operator", "ClusterAdmin"],
        );
        same(
            &[Access::Read, Access::ReadWrite, Access::Admin],
            &["Read", "ReadWrite", "Admin"],
        );
        use KeySpec::*;
        same(
            &[Rsa2048, Rsa3072, Rsa4096, EcP256, EcP384],
            &["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"],
        );
        same(
            &[PfxProfile::Modern, PfxProfile::Legacy],
            &["modern", "legacy"],
        );
        same(
            &[Origin::Generated, Origin::Uploaded],
            &["generated", "uploaded"],
        );
        assert_eq!(Origin::Uploaded.as_str(), "uploaded");
    }

    #[test]
    fn access_is_ordered_by_power() {
        assert!(Access::Read < Access::ReadWrite && Access::ReadWrite < Access::Admin);
        assert!(Clearance::ValidUser < Clearance::Operator);
        assert!(Clearance::Operator < Clearance::ClusterAdmin);
    }

    #[test]
    fn ascii_skeletons_match_tr39() {
        use unicode_security::confusable_detection::skeleton as tr39;
        for name in [
            "Bill",
            "BiII",
            "rn-m",
            "O0o|l1I",
            "Orders App",
            "a.b_c-9",
            "~!@#$%^&*()",
        ] {
            assert_eq!(skeleton(name), tr39(name).collect::<String>(), "{name}");
        }
    }

    #[test]
    fn url_user_information_is_masked_in_every_spelling() {
        let cases = [
            (
                "https://ops:Sup3rPw@a.example.com:443/x",
                "https://***@a.example.com:443/x",
            ),
            (
                r#"urls = ["https://u:Sup3r\u0050w@a", "https://v:pw@b"]"#,
                r#"urls = ["https://***@a", "https://***@b"]"#,
            ),
            (
                "'https://u:p@h' and 'https://h2'",
                "'https://***@h' and 'https://h2'",
            ),
            ("no url here@all", "no url here@all"),
            ("https://host/path@x", "https://host/path@x"),
            ("https://a@b@c", "https://***@c"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_url_userinfo(text), masked, "{text}");
        }
    }

    /// One validator for node URLs: normalized as certs.toml always had them (the scheme in
    /// lower case, the host as written, no trailing slash), and what url::Url cannot parse as
    /// a host is refused too.
    #[test]
    fn cluster_urls_are_normalized_and_parsed() {
        for (text, normalized) in [
            ("HTTPS://B.example.com:8443/", "https://B.example.com:8443"),
            ("https://[::1]:443/raven//", "https://[::1]:443/raven"),
            ("https://10.0.0.1", "https://10.0.0.1"),
        ] {
            assert_eq!(
                cluster_url(text).ok().as_deref(),
                Some(normalized),
                "{text}"
            );
        }
        for bad in [
            "https://10.0.0.999",
            "https://a..b:1:2",
            "https://admin@a.example.com",
        ] {
            let e = cluster_url(bad).err().unwrap_or_else(|| panic!("{bad}"));
            assert!(!e.message.contains("admin@"), "{bad}: {}", e.message);
        }
    }
}
