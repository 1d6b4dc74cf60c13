//! The wire format: the listing's JSON as RavenDB writes it (read entry by entry, checked,
//! never trusted), the version header, and the edit's body.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    ClusterClearance, ClusterError, Listing, Registration, ServerVersion, Unmanaged, Usage,
};
use crate::model::{Access, Clearance, Thumbprint};
use crate::pki;

/// Name, SecurityClearance and Permissions of the body and keeps the certificate, its dates
/// and its usage (RavenDB 4.1 to 7.2, read from the handler). Two things an edit must leave
/// as the Studio set them:
/// - two-factor authentication (5.4 and later): an absent `TwoFactorAuthenticationKey` keeps
///   the stored key (only `?deleteTwoFactorConfiguration=true` drops it), so none is sent;
/// - `Disabled` (7.2.2 and later): an absent field keeps the stored value; the value sent is
///   the plan's (`disabled = true`, or enabling what ravencert disabled) or else the one the
///   listing showed, so an edit never re-enables a registration disabled in the Studio.
///
/// Servers newer than the last version checked are refused an edit by the planner.
pub fn edit_body(
    thumbprint: &str,
    name: &str,
    clearance: Clearance,
    permissions: &BTreeMap<String, Access>,
    disabled: Option<bool>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "Thumbprint": thumbprint,
        "Name": name,
        "SecurityClearance": clearance.to_string(),
        "Permissions": permissions,
    });
    if let (Some(disabled), Some(map)) = (disabled, body.as_object_mut()) {
        map.insert("Disabled".into(), serde_json::Value::Bool(disabled));
    }
    body
}

/// `Raven-Server-Version: 4.1.0.41001` as a [`ServerVersion`] (None when it does not parse).
pub(super) fn version_from_header(value: &str) -> Option<ServerVersion> {
    let parts: Vec<&str> = value.trim().split('.').collect();
    let number = |i: usize| parts.get(i)?.parse::<u32>().ok();
    let (major, minor, patch) = (number(0)?, number(1)?, number(2).unwrap_or(0));
    Some(ServerVersion {
        major,
        minor,
        full: format!("{major}.{minor}.{patch}"),
    })
}

/// `GET /build/version`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BuildVersion {
    /// Major.minor, e.g. `4.1`.
    product_version: String,
    /// The build number, e.g. `41001`: required, as RavenDB always sends it; not used.
    #[serde(rename = "BuildVersion")]
    _build_version: i64,
    /// The full version, e.g. `4.1.0`.
    #[serde(default)]
    full_version: String,
}

/// The body of `GET /build/version` from node `url` as a [`ServerVersion`]; an error when it
/// is not JSON, or its product version is not `major.minor` (ravencert needs the version to
/// know which values the server can hold).
pub(super) fn decode_build_version(url: &str, body: &[u8]) -> Result<ServerVersion, ClusterError> {
    let raw: BuildVersion = serde_json::from_slice(body).map_err(|e| ClusterError::Decode {
        url: format!("{url}/build/version"),
        detail: e.to_string(),
    })?;
    let mut parts = raw.product_version.split('.').map(|p| p.parse().ok());
    let (Some(major), Some(minor)) = (parts.next().flatten(), parts.next().flatten()) else {
        return Err(ClusterError::Decode {
            url: url.to_string(),
            detail: format!(
                "cannot read the server version from {:?}; ravencert needs it to know which values the server can hold",
                raw.product_version
            ),
        });
    };
    let full = if raw.full_version.is_empty() {
        raw.product_version
    } else {
        raw.full_version
    };
    Ok(ServerVersion { major, minor, full })
}

/// A collection's member as RavenDB 4.1 lists it: the document id `certificates/<THUMBPRINT>`
/// (the prefix's letters are hex digits too: stripped before normalizing), or a bare thumbprint.
pub(super) fn collection_key(key: &str) -> String {
    let bare = key
        .get(..13)
        .filter(|p| p.eq_ignore_ascii_case("certificates/"))
        .map_or(key, |_| &key[13..]);
    normalize_thumbprint(bare)
}

/// Upper-case hex without separators, as RavenDB writes thumbprints.
pub(super) fn normalize_thumbprint(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

// ---- the listing --------------------------------------------------------------------------
//
// What a cluster sends is untrusted: anyone with Operator clearance can name a registration,
// and a node (or whatever answers in its place) decides the rest. A listing is decoded entry by
// entry: an entry that cannot be read or fails a check is left out and reported (its
// thumbprint and name escaped at the output boundary), never a reason to stop planning (that
// would block every revocation) and never read with more access than it states.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawListing {
    results: Vec<serde_json::Value>,
    #[serde(default)]
    loaded_server_cert: Option<String>,
    #[serde(default)]
    well_known_admin_certs: Option<Vec<String>>,
    #[serde(default)]
    well_known_issuers: Option<Vec<String>>,
    #[serde(default)]
    loaded_server_cert_for_communication: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRegistration {
    #[serde(default)]
    thumbprint: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    security_clearance: Option<String>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    collection_primary_key: Option<String>,
    #[serde(default)]
    collection_secondary_keys: Option<Vec<String>>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    usage: Option<String>,
}

/// What one listed entry is to ravencert.
enum Decoded {
    Managed(Registration),
    Unmanaged(Unmanaged),
}

/// The `Usage` values of entries ravencert never manages: SSO users and servers (RavenDB 7.2.5
/// and later; no certificate of their own) and well-known issuers.
const UNMANAGED_USAGES: [&str; 3] = ["SsoClient", "SsoServer", "WellKnownIssuer"];
/// The `Usage` values of certificates ravencert manages or protects.
const KNOWN_USAGES: [&str; 3] = ["Client", "RavenServer", "RavenServerForCommunication"];

/// RavenDB 4.1 writes control characters raw into its JSON strings (a registration named
/// `x<U+0001>y`), which JSON forbids. Inside strings they become `\u00XX` escapes here, so
/// that one such name cannot make the whole listing unreadable; the name then reads as the
/// server holds it and is shown escaped.
fn escape_raw_controls(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.iter().any(|&b| b < 0x20) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if b < 0x20 {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                continue;
            }
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes a listing's body (for the fuzz target of the decoder: any input gives a listing or
/// an error, never a panic).
#[doc(hidden)]
pub fn decode_listing_bytes(body: &[u8]) -> std::result::Result<Listing, String> {
    decode_listing(body)
}

pub(super) fn decode_listing(body: &[u8]) -> std::result::Result<Listing, String> {
    let body = escape_raw_controls(body);
    let raw: RawListing = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let issuers: Vec<String> = raw
        .well_known_issuers
        .unwrap_or_default()
        .iter()
        .map(|t| normalize_thumbprint(t))
        .collect();
    let mut registrations = Vec::with_capacity(raw.results.len());
    let mut unmanaged = Vec::new();
    let mut left_out = Vec::new();
    for value in raw.results {
        match decode_registration(value) {
            Ok(Decoded::Managed(r)) if issuers.iter().any(|i| r.thumbprint == i.as_str()) => {
                unmanaged.push(Unmanaged {
                    id: r.thumbprint.into(),
                    name: r.name,
                    usage: "WellKnownIssuer".into(),
                })
            }
            Ok(Decoded::Managed(r)) => registrations.push(r),
            Ok(Decoded::Unmanaged(u)) => unmanaged.push(u),
            Err(why) => left_out.push(why),
        }
    }
    let mut listing = Listing {
        registrations,
        left_out,
        unmanaged,
        loaded_server_cert: raw
            .loaded_server_cert
            .filter(|t| !t.is_empty())
            .map(|t| normalize_thumbprint(&t)),
        loaded_server_cert_for_communication: raw
            .loaded_server_cert_for_communication
            .filter(|t| !t.is_empty())
            .map(|t| normalize_thumbprint(&t)),
        well_known_admins: raw
            .well_known_admin_certs
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_thumbprint(t))
            .collect(),
        server_version: None,
    };
    drop_repeated(&mut listing);
    check_collections(&mut listing);
    Ok(listing)
}

/// A thumbprint listed more than once is ambiguous (a server lists each registration once):
/// which entry holds its name, clearance and collection is anybody's guess, so every entry of
/// it is left out and reported.
fn drop_repeated(listing: &mut Listing) {
    let mut count: BTreeMap<&Thumbprint, usize> = BTreeMap::new();
    for r in &listing.registrations {
        *count.entry(&r.thumbprint).or_default() += 1;
    }
    let repeated: Vec<(Thumbprint, usize)> = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, n)| (t.clone(), n))
        .collect();
    for (t, n) in &repeated {
        listing.left_out.push(format!(
            "cluster: registration {t} is listed {n} times; it is left alone"
        ));
    }
    listing
        .registrations
        .retain(|r| !repeated.iter().any(|(t, _)| *t == r.thumbprint));
}

/// A registration for a report: its thumbprint and name as the server sent them (shown
/// escaped at the output boundary), capped.
fn described(thumbprint: Option<&str>, name: Option<&str>) -> String {
    let cap = |s: &str| -> String {
        let s = s.escape_debug().to_string();
        let mut out: String = s.chars().take(80).collect();
        if s.chars().nth(80).is_some() {
            out.push('…');
        }
        out
    };
    match (thumbprint, name) {
        (Some(t), Some(n)) => format!("registration {} ('{}')", cap(t), cap(n)),
        (Some(t), None) => format!("registration {}", cap(t)),
        (None, Some(n)) => format!("registration '{}'", cap(n)),
        (None, None) => "a registration".to_string(),
    }
}

fn decode_registration(value: serde_json::Value) -> std::result::Result<Decoded, String> {
    let raw: RawRegistration = serde_json::from_value(value)
        .map_err(|e| format!("cluster: a registration cannot be read ({e}); it is left alone"))?;
    let who = described(raw.thumbprint.as_deref(), raw.name.as_deref());
    let fail = |why: String| format!("cluster: {who} {why}; it is left alone");
    match raw.usage.as_deref() {
        Some(u) if UNMANAGED_USAGES.contains(&u) => {
            return Ok(Decoded::Unmanaged(Unmanaged {
                id: raw.thumbprint.unwrap_or_default(),
                name: raw.name.unwrap_or_default(),
                usage: u.to_string(),
            }))
        }
        Some(u) if !KNOWN_USAGES.contains(&u) => {
            return Err(fail(format!("has a Usage ravencert does not know ({u:?})")))
        }
        _ => {}
    }
    // Made a Thumbprint here, upper-cased once: every later comparison is exact.
    let thumbprint = match raw.thumbprint.as_deref().map(Thumbprint::parse) {
        Some(Ok(t)) => t,
        _ => return Err(fail("has no valid thumbprint (40 hex digits)".into())),
    };
    let clearance = match raw.security_clearance.as_deref() {
        Some("ClusterAdmin") => ClusterClearance::ClusterAdmin,
        Some("Operator") => ClusterClearance::Operator,
        Some("ValidUser") => ClusterClearance::ValidUser,
        Some("ClusterNode") => ClusterClearance::ClusterNode,
        Some("UnauthenticatedClients") => ClusterClearance::UnauthenticatedClients,
        Some(other) => return Err(fail(format!("has an unknown SecurityClearance {other:?}"))),
        None => return Err(fail("has no SecurityClearance".into())),
    };
    let permissions = decode_permissions(raw.permissions.unwrap_or_default()).map_err(fail)?;
    let not_after = match raw.not_after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            parse_date(text)
                .ok_or_else(|| fail(format!("has a NotAfter {text:?} that is not a date")))?,
        ),
    };
    let certificate = match raw.certificate.as_deref() {
        None | Some("") => None,
        Some(b64) => {
            let der = openssl::base64::decode_block(b64.trim())
                .map_err(|_| fail("has a Certificate that is not base64".into()))?;
            // The thumbprint is what every decision keys on: it must be the certificate's.
            if pki::thumbprint(&der) != thumbprint {
                return Err(fail(format!(
                    "lists a Certificate whose SHA-1 is {}, not its Thumbprint",
                    pki::thumbprint(&der)
                )));
            }
            Some(der)
        }
    };
    Ok(Decoded::Managed(Registration {
        certificate,
        disabled: raw.disabled,
        usage: raw.usage,
        thumbprint,
        name: raw.name.unwrap_or_default(),
        clearance,
        permissions,
        collection_primary: raw
            .collection_primary_key
            .filter(|k| !k.is_empty())
            .map(|k| collection_key(&k)),
        collection_secondaries: raw
            .collection_secondary_keys
            .unwrap_or_default()
            .iter()
            .map(|k| collection_key(k))
            .collect(),
        not_after,
    }))
}

/// Database -> access, every access one ravencert knows (an unknown one could be anything).
fn decode_permissions(
    raw: BTreeMap<String, String>,
) -> std::result::Result<BTreeMap<String, Access>, String> {
    raw.into_iter()
        .map(|(db, access)| {
            let access = match access.as_str() {
                "Admin" => Access::Admin,
                "ReadWrite" => Access::ReadWrite,
                "Read" => Access::Read,
                other => return Err(format!("grants an unknown access {other:?}")),
            };
            Ok((db, access))
        })
        .collect()
}

/// A collection is two claims that must agree: a primary lists its secondaries, and each
/// secondary names its primary. A claim the other side does not make would let a listing pull
/// one registration's certificate under another's clearance (adopt writes a collection as one
/// client): the registration making it is left out and reported, until none is left.
fn check_collections(listing: &mut Listing) {
    use std::collections::BTreeSet;
    // At most four rounds: a secondary left out leaves its primary one-sided, whose other
    // secondaries then point at nothing. Each round is n log n, whatever the listing holds
    // (collection members are hex thumbprints: safe to show as they are).
    loop {
        let primaries: BTreeMap<&str, &Registration> = listing
            .registrations
            .iter()
            .filter(|r| r.collection_primary.is_none())
            .map(|r| (r.thumbprint.as_str(), r))
            .collect();
        let named_back: BTreeSet<(&str, &str)> = listing
            .registrations
            .iter()
            .filter_map(|r| Some((r.collection_primary.as_deref()?, r.thumbprint.as_str())))
            .collect();
        let listed: BTreeSet<(&str, &str)> = primaries
            .values()
            .flat_map(|p| {
                p.collection_secondaries
                    .iter()
                    .map(|s| (p.thumbprint.as_str(), s.as_str()))
            })
            .collect();
        let mut bad: Vec<(Thumbprint, String)> = Vec::new();
        for r in &listing.registrations {
            let who = described(Some(r.thumbprint.as_str()), Some(&r.name));
            if let Some(p) = &r.collection_primary {
                let agrees = primaries.contains_key(p.as_str())
                    && listed.contains(&(p.as_str(), r.thumbprint.as_str()))
                    && r.collection_secondaries.is_empty();
                if !agrees {
                    bad.push((
                        r.thumbprint.clone(),
                        format!("cluster: {who} names {p} as its collection's primary, which does not list it back; it is left alone"),
                    ));
                }
            } else if let Some(s) = r
                .collection_secondaries
                .iter()
                .find(|s| !named_back.contains(&(r.thumbprint.as_str(), s.as_str())))
            {
                bad.push((
                    r.thumbprint.clone(),
                    format!("cluster: {who} lists {s} as a secondary of its collection, which does not name it back; it is left alone"),
                ));
            }
        }
        if bad.is_empty() {
            return;
        }
        let gone: BTreeSet<Thumbprint> = bad.iter().map(|(t, _)| t.clone()).collect();
        listing.left_out.extend(bad.into_iter().map(|(_, why)| why));
        listing
            .registrations
            .retain(|r| !gone.contains(&r.thumbprint));
    }
}

/// What `GET /admin/stats` says of each certificate's last use: `LastRequestTimePerCertificate`
/// (RavenDB's `ServerStatistics`: by thumbprint, the last request the answering node served
/// with that certificate since it started; RavenDB 6.x and 7.x, not 4.1). None when the answer
/// has no such field. A thumbprint or a date that cannot be read is left out, and named in the
/// notes (escaped, as a listing's values are): never guessed.
/// (`node` is left empty for the caller.)
pub(super) fn decode_last_used(body: &[u8]) -> std::result::Result<Option<Usage>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(&escape_raw_controls(body)).map_err(|e| e.to_string())?;
    let per = match value.get("LastRequestTimePerCertificate") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(per)) => per,
        Some(_) => return Err("LastRequestTimePerCertificate is not an object".into()),
    };
    let mut last_used = BTreeMap::new();
    let mut notes = Vec::new();
    for (key, when) in per {
        let thumbprint = Thumbprint::parse(key).ok();
        // Whole seconds, as every date ravencert shows.
        let date = when
            .as_str()
            .and_then(parse_date)
            .and_then(|d| d.replace_nanosecond(0).ok());
        match (thumbprint, date) {
            (Some(t), Some(d)) => {
                // Several spellings of one thumbprint: the latest use counts.
                let latest = last_used.get(&t).map_or(d, |&old: &OffsetDateTime| old.max(d));
                last_used.insert(t, latest);
            }
            _ => notes.push(format!(
                "cluster: the last use the server reports for {} ({}) cannot be read; it is shown as unknown",
                key.escape_debug(),
                when.to_string().escape_debug()
            )),
        }
    }
    Ok(Some(Usage {
        node: String::new(),
        last_used,
        left_out: notes,
    }))
}

/// .NET's round-trip form, `2027-11-28T17:05:53.0000000` (UTC) with an optional `Z` or offset.
fn parse_date(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let (date, time_part) = text.trim_end_matches('Z').split_once('T')?;
    let whole = time_part.split('.').next()?;
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(&format!("{date}T{whole}"), &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}
