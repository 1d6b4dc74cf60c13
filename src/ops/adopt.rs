//! `ravencert adopt` (docs/contract.md §8): brings a running cluster under management without
//! changing it. Reads the cluster's registrations once and writes a certs.toml that declares
//! exactly them (each client an `upload` of the public certificate written next to it, the server
//! certificates as public `[server] certificates`), so that the first plan shows no cluster
//! change. Nothing is written when anything is wrong, and nothing is ever overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use toml_writer::{ToTomlKey as _, ToTomlValue as _, TomlKeyBuilder, TomlStringBuilder};

use super::error::{Error, Result};
use super::{Context, Output};
use crate::model::Thumbprint;
use crate::ravendb::{
    Client, ClientOptions, ClusterClearance, Identity, Listing, Pin, Registration,
};

/// What `adopt` was asked for.
pub struct AdoptRequest {
    /// `--url`: a node of the cluster.
    pub url: String,
    /// `--admin-certificate`: a .pfx with its key that the cluster accepts as admin.
    pub admin_certificate: PathBuf,
    /// `--password-env`: the variable holding its password.
    pub password_env: Option<String>,
    /// `--ca`: `system` (default) or a PEM file of the CA (or the server certificate itself).
    pub ca: Option<String>,
}

/// Why adopt wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// certs.toml (or a file adopt would write) exists already.
    #[error("{} already exists; adopt never overwrites — pass -c NEW_PATH, or move it away", .0.display())]
    Exists(PathBuf),
    /// The admin certificate or its password cannot be read.
    #[error("--admin-certificate {}: {detail}", .path.display())]
    AdminCertificate {
        /// The .pfx.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// `--ca` cannot be read.
    #[error("--ca {}: {detail}", .path.display())]
    Ca {
        /// The PEM file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A registration lists no certificate to write.
    #[error("the cluster lists certificate {0} without its public certificate; adopt cannot declare it (is the server older than 4.0?)")]
    NoCertificate(String),
    /// The certs.toml adopt made is not valid (a name ravencert refuses, ...).
    #[error("the certs.toml adopt would write is not valid, so nothing was written:\n{0}\nrename the offending registrations in the Studio, then adopt again")]
    Invalid(String),
    /// A symbolic link lies on the way to a file adopt would write (`trust/` a link, ...).
    #[error("{}: {source}; nothing was written", .path.display())]
    Link {
        /// The file adopt would write.
        path: PathBuf,
        /// The link.
        source: crate::fsutil::LinkOnPath,
    },
    /// Writing a file failed.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `ravencert adopt`.
pub fn adopt(ctx: &Context, req: &AdoptRequest) -> Result<Output> {
    if ctx.config.exists() {
        return Err(AdoptError::Exists(ctx.config.clone()).into());
    }
    let base = crate::fsutil::folder_of(&ctx.config).to_path_buf();
    let (identity, pfx_shown) = admin_identity(req, &base)?;
    let (pin, ca_file) = ca_pin(req)?;
    let client = Client::new(&ClientOptions {
        urls: vec![req.url.clone()],
        identity,
        pin,
        timeout: std::time::Duration::from_secs(30),
        resolve: Vec::new(),
    })
    .map_err(Error::Cluster)?;
    let listing = client.list().map_err(Error::Cluster)?;
    let version = listing
        .server_version
        .as_ref()
        .map(|v| v.full.clone())
        .unwrap_or_default();
    let adoption = Adoption::new(&listing)?;
    let text = adoption.certs_toml(&Header {
        url: client.url(),
        version: &version,
        pfx: &pfx_shown,
        password_env: req.password_env.as_deref(),
        ca: if ca_file.is_some() {
            "trust/cluster-ca.pem"
        } else {
            "system"
        },
        well_known: &listing.well_known_admins,
        now: ctx.now,
    });
    // The written config must be one ravencert accepts: checked before anything is written.
    crate::config::parse(&ctx.config, &text, &base).map_err(|errors| {
        AdoptError::Invalid(
            errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let mut files = adoption.files.clone();
    if let Some(pem) = ca_file {
        files.push(("trust/cluster-ca.pem".into(), pem));
    }
    // The schema the `#:schema` line names, for editors (kept when one is there already).
    if !base.join("certs.schema.json").exists() {
        files.push((
            "certs.schema.json".into(),
            crate::config::json_schema().into_bytes(),
        ));
    }
    write_all(&base, &files, &ctx.config, &text)?;
    // Warnings go to stderr, as every other command's do: stdout says what was written.
    let mut out = Output::ok(adoption.summary(&ctx.config, client.url()));
    for r in &adoption.renamed {
        let _ = writeln!(
            out.stderr,
            "warning: two registrations share a name; renamed {} (the plan shows the rename as an edit)",
            crate::render::Escaped(r)
        );
    }
    for why in &adoption.left_out {
        let _ = writeln!(out.stderr, "warning: {why}");
    }
    Ok(out)
}

/// The admin .pfx (read now, with its password) and how certs.toml names it: relative to
/// certs.toml's folder when it lies inside it, else absolute.
fn admin_identity(req: &AdoptRequest, base: &Path) -> Result<(Identity, String)> {
    let fail = |detail: String| AdoptError::AdminCertificate {
        path: req.admin_certificate.clone(),
        detail,
    };
    let der = crate::inputs::from_disk(&req.admin_certificate).map_err(fail)?;
    let password = match &req.password_env {
        Some(var) => crate::inputs::SecretRef::Env(var.clone())
            .read()
            .map_err(|e| fail(e.to_string()))?
            .expose()
            .to_string(),
        None => String::new(),
    };
    crate::pki::pfx_thumbprints(&der, &password)
        .map_err(|e| fail(format!("cannot open it as a .pfx with its password: {e}")))?;
    let real = crate::fsutil::resolve(&req.admin_certificate);
    let shown = match real.strip_prefix(crate::fsutil::resolve(base)) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => real,
    };
    Ok((
        Identity::Pfx { der, password },
        shown.to_string_lossy().into_owned(),
    ))
}

/// `--ca`: the system's roots, or a PEM file (copied next to certs.toml as its `ca`).
fn ca_pin(req: &AdoptRequest) -> Result<(Pin, Option<Vec<u8>>)> {
    match req.ca.as_deref() {
        None | Some("system") => Ok((Pin::System, None)),
        Some(path) => {
            let pem =
                crate::inputs::from_disk(Path::new(path)).map_err(|detail| AdoptError::Ca {
                    path: PathBuf::from(path),
                    detail,
                })?;
            Ok((Pin::CaPem(pem.clone()), Some(pem)))
        }
    }
}

/// One client to declare: its key, its registration (a collection's primary), and its file.
struct Adopted<'a> {
    key: String,
    name: String,
    primary: &'a Registration,
    secondaries: Vec<&'a Registration>,
}

/// What adopt declares and the files it writes (relative path, bytes).
struct Adoption<'a> {
    clients: Vec<Adopted<'a>>,
    servers: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    renamed: Vec<String>,
    /// Registrations not adopted, and why (shown as warnings).
    left_out: Vec<String>,
}

/// certs.toml's header: where it came from and how to reach the cluster.
struct Header<'a> {
    url: &'a str,
    version: &'a str,
    pfx: &'a str,
    password_env: Option<&'a str>,
    ca: &'a str,
    well_known: &'a [String],
    now: time::OffsetDateTime,
}

impl<'a> Adoption<'a> {
    fn new(listing: &'a Listing) -> Result<Adoption<'a>> {
        let by_thumbprint: BTreeMap<&str, &Registration> = listing
            .registrations
            .iter()
            .map(|r| (r.thumbprint.as_str(), r))
            .collect();
        let mut adoption = Adoption {
            clients: Vec::new(),
            servers: Vec::new(),
            files: Vec::new(),
            renamed: Vec::new(),
            left_out: Vec::new(),
        };
        adoption.servers_from(listing, &by_thumbprint)?;
        adoption.left_out.extend(listing.left_out.iter().cloned());
        let mut keys = Unique::default();
        let mut names = Unique::default();
        let mut primaries: Vec<&Registration> = listing
            .registrations
            .iter()
            .filter(|r| r.clearance.client().is_some())
            .filter(|r| r.collection_primary.is_none())
            .collect();
        primaries.sort_by(|a, b| (&a.name, &a.thumbprint).cmp(&(&b.name, &b.thumbprint)));
        for r in primaries {
            let secondaries: Vec<&Registration> = r
                .collection_secondaries
                .iter()
                .filter_map(|t| by_thumbprint.get(t.as_str()).copied())
                .collect();
            // Every registration is checked before anything is written: a name certs.toml
            // cannot hold, or a certificate ravencert would not read back as this
            // registration's upload, leaves the client out (reported, never widened).
            let checked = match r.name.trim() {
                "" => Ok(()),
                name => crate::model::check_name(name)
                    .map_err(|e| format!("has a name ravencert cannot declare: {e}; rename it in the Studio to adopt it")),
            };
            let pem = match checked.and_then(|()| collection_pem(r, &secondaries)) {
                Ok(pem) => pem,
                Err(why) => {
                    adoption.left_out.push(format!(
                        "cluster: registration {} ('{}') {why}; it is not adopted",
                        r.thumbprint,
                        r.name.escape_debug()
                    ));
                    continue;
                }
            };
            let name = adoption.unique_name(&r.name, &mut names);
            let key = keys.take(&slug(&name), |base, n| format!("{base}-{n}"));
            adoption.files.push((format!("trust/{key}.pem"), pem));
            adoption.clients.push(Adopted {
                key,
                name,
                primary: r,
                secondaries,
            });
        }
        Ok(adoption)
    }

    /// The servers' own certificates: the one the node serves, then every ClusterNode one.
    fn servers_from(
        &mut self,
        listing: &'a Listing,
        by_thumbprint: &BTreeMap<&str, &'a Registration>,
    ) -> Result<()> {
        let mut seen = BTreeSet::new();
        let nodes = listing.loaded_server_cert.iter().map(String::as_str).chain(
            listing
                .registrations
                .iter()
                .filter(|r| r.clearance == ClusterClearance::ClusterNode)
                .map(|r| r.thumbprint.as_str()),
        );
        for t in nodes {
            let Some(r) = by_thumbprint.get(t) else {
                continue;
            };
            if !seen.insert(t) {
                continue;
            }
            let path = format!("trust/server-{}.pem", self.servers.len() + 1);
            self.files.push((path.clone(), certificate_pem(r)?));
            self.servers.push(path);
        }
        Ok(())
    }

    /// The registration's name, or (for a second registration under a name already taken,
    /// which RavenDB allows and ravencert does not) the name with ` (2)`, noted.
    fn unique_name(&mut self, name: &str, taken: &mut Unique) -> String {
        let base = if name.trim().is_empty() {
            "unnamed"
        } else {
            name
        };
        let candidate = taken.take(base, |base, n| format!("{base} ({n})"));
        if candidate != name {
            self.renamed.push(format!("{name:?} -> {candidate:?}"));
        }
        candidate
    }
}

/// Names handed out once each, compared without case: `take` gives the base, else the first
/// free numbered form after the last one given for that base, so that n registrations of one
/// name cost n steps, not n² (a listing can hold thousands).
#[derive(Default)]
struct Unique {
    taken: BTreeSet<String>,
    next: BTreeMap<String, usize>,
}

impl Unique {
    fn take(&mut self, base: &str, numbered: impl Fn(&str, usize) -> String) -> String {
        if self.taken.insert(base.to_lowercase()) {
            return base.to_string();
        }
        let n = self.next.entry(base.to_lowercase()).or_insert(2);
        loop {
            let candidate = numbered(base, *n);
            *n += 1;
            if self.taken.insert(candidate.to_lowercase()) {
                return candidate;
            }
        }
    }
}

/// A collection's certificates as the PEM file its upload names, checked the way the plan will
/// read that file: each certificate parses, and the file's end entities are exactly the
/// collection's members (no member issued another, none is missing).
fn collection_pem(
    primary: &Registration,
    secondaries: &[&Registration],
) -> std::result::Result<Vec<u8>, String> {
    let members: Vec<&Registration> = std::iter::once(primary)
        .chain(secondaries.iter().copied())
        .collect();
    let mut pem = Vec::new();
    for m in &members {
        let der = m
            .certificate
            .as_ref()
            .ok_or_else(|| format!("lists no certificate for {}", m.thumbprint))?;
        crate::pki::inspect(der).map_err(|e| {
            format!(
                "has a certificate {} that cannot be read: {e}",
                m.thumbprint
            )
        })?;
        pem.extend(crate::pki::der_to_pem(der).map_err(|e| e.to_string())?);
    }
    let file =
        crate::pki::read_cert_file(&pem, None).map_err(|e| format!("cannot be read back: {e}"))?;
    let ends = crate::pki::end_entities(&file.certs).map_err(|e| e.to_string())?;
    let mut read: Vec<Thumbprint> = ends.iter().map(|d| crate::pki::thumbprint(d)).collect();
    let mut listed: Vec<Thumbprint> = members.iter().map(|m| m.thumbprint.clone()).collect();
    read.sort();
    listed.sort();
    if read != listed {
        return Err("is a collection whose certificates would not read back as its members (one issued another)".into());
    }
    Ok(pem)
}

/// A registration's public certificate as PEM.
fn certificate_pem(r: &Registration) -> Result<Vec<u8>> {
    let der = r
        .certificate
        .as_ref()
        .ok_or_else(|| AdoptError::NoCertificate(r.thumbprint.to_string()))?;
    Ok(crate::pki::der_to_pem(der)?)
}

/// A client key from a name: transliterated to ASCII (`Zürich Büro` -> `zurich-buro`, `日本`
/// -> `ri-ben`), then lower-case letters and digits, `-` for anything else (runs collapsed,
/// none at the ends), at most 56 characters; `client` when nothing is left, never `server`
/// (the server's key).
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in deunicode::deunicode(name)
        .chars()
        .flat_map(char::to_lowercase)
    {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(56).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    match trimmed.as_str() {
        "" => "client".into(),
        "server" => "server-client".into(),
        _ => trimmed,
    }
}

/// A value as a TOML basic string on one line: toml_writer writes it (always the basic,
/// double-quoted form, `"` and `\` escaped), then [`escape_invisible`] leaves no invisible
/// character raw, so that no value read from the cluster or the command line can end the line
/// or the string, or steer a terminal that shows the file.
fn quoted(text: &str) -> String {
    escape_invisible(&TomlStringBuilder::new(text).as_basic().to_toml_value())
}

/// A key that is data (a database name): always a basic string, as a value is, even when TOML
/// would take it bare, so that every database reads the same in certs.toml.
fn quoted_key(text: &str) -> String {
    escape_invisible(&TomlKeyBuilder::new(text).as_basic().to_toml_key())
}

/// A table's key (a client key): bare when TOML allows it (every [`slug`] is), else a basic
/// string (never a literal one).
fn table_key(text: &str) -> String {
    let key = TomlKeyBuilder::new(text);
    let key = key.as_unquoted().unwrap_or_else(|| key.as_basic());
    escape_invisible(&key.to_toml_key())
}

/// toml_writer escapes `"`, `\`, the C0 controls and DEL, five of them in their short forms
/// (`\n`), and leaves every other character raw: the C1 controls (U+009B starts a terminal
/// sequence, U+0085 ends a line) and the format characters (U+202E reorders one) among them.
/// One pass over what it wrote (a valid basic string, in which every `\` starts an escape)
/// writes each character of the invisible table (`chars::INVISIBLE`) as `\uXXXX`
/// (`\UXXXXXXXX` beyond the Basic Multilingual Plane), whether toml_writer left it raw or
/// escaped it short: the text adopt has always written (`\u000A`, never `\n`), now for the
/// whole table.
fn escape_invisible(written: &str) -> String {
    let mut out = String::with_capacity(written.len());
    let mut rest = written.chars();
    while let Some(c) = rest.next() {
        let c = match c {
            '\\' => match rest.next() {
                Some(e) => match short_escape(e) {
                    Some(decoded) => decoded,
                    // `\"`, `\\`, `\uXXXX`: kept as written.
                    None => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                },
                None => '\\',
            },
            c => c,
        };
        if !crate::chars::is_invisible(c) {
            out.push(c);
        } else if u32::from(c) <= 0xFFFF {
            let _ = write!(out, "\\u{:04X}", u32::from(c));
        } else {
            let _ = write!(out, "\\U{:08X}", u32::from(c));
        }
    }
    out
}

/// The character a TOML short escape stands for (`n` in `\n`); `None` for `"`, `\`, `u` and
/// `U`, which stand for visible characters or are written in the long form already. `e` is
/// TOML 1.1's ESC, should a later toml_writer write it.
fn short_escape(e: char) -> Option<char> {
    match e {
        'b' => Some('\u{8}'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'f' => Some('\u{c}'),
        'r' => Some('\r'),
        'e' => Some('\u{1b}'),
        _ => None,
    }
}

impl Adoption<'_> {
    fn certs_toml(&self, h: &Header<'_>) -> String {
        let mut out = String::from("#:schema ./certs.schema.json\n");
        let when = crate::render::rfc3339(h.now);
        let _ = writeln!(
            out,
            "# Written by `ravencert adopt` from the cluster at {} (RavenDB {}) on {when}.\n# Each client is a registration as the cluster listed it; review, then commit.\nversion = 1\n\n[store]\npath = {}\n",
            crate::render::Escaped(h.url),
            crate::render::Escaped(h.version),
            quoted("store")
        );
        out.push_str("[server]\n# The cluster's server certificate(s), public only: ravencert registers and exports,\n# but generates no client until a node .pfx with its private key is declared here.\ncertificates = [");
        let entries: Vec<String> = self
            .servers
            .iter()
            .map(|p| format!("{{ path = {} }}", quoted(p)))
            .collect();
        out.push_str(&entries.join(", "));
        out.push_str("]\n\n[cluster]\n");
        let _ = writeln!(out, "urls = [{}]", quoted(h.url));
        let password = h
            .password_env
            .map(|v| format!(", password_env = {}", quoted(v)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "admin_certificate = {{ path = {}{password} }}\nca = {}\nprune = false",
            quoted(h.pfx),
            quoted(h.ca)
        );
        for t in h.well_known {
            let _ = writeln!(
                out,
                "# Well-known admin certificate from the nodes' settings (not declared; never touched): {}",
                crate::render::Escaped(t)
            );
        }
        for c in &self.clients {
            client_toml(&mut out, c);
        }
        out
    }

    fn summary(&self, config: &Path, url: &str) -> String {
        let mut out = format!(
            "Wrote {} from {}: {} client{}, {} server certificate{}, the public certificates under trust/.\n",
            crate::render::Escaped(&config.display().to_string()),
            crate::render::Escaped(url),
            self.clients.len(),
            if self.clients.len() == 1 { "" } else { "s" },
            self.servers.len(),
            if self.servers.len() == 1 { "" } else { "s" },
        );
        out.push_str("Next: `ravencert plan` (it shows no cluster change), then `ravencert apply` to fill the store.\n");
        out
    }
}

/// One `[clients.KEY]` table with a comment saying where it came from.
fn client_toml(out: &mut String, c: &Adopted<'_>) {
    let r = c.primary;
    let expires = r
        .not_after
        .map(|t| format!(", expires {}", t.date()))
        .unwrap_or_default();
    let members = if c.secondaries.is_empty() {
        String::new()
    } else {
        let list: Vec<&str> = c
            .secondaries
            .iter()
            .map(|s| s.thumbprint.as_str())
            .collect();
        format!(" with secondaries {}", list.join(", "))
    };
    let _ = writeln!(
        out,
        "\n# Registered on the cluster as {}{members}{expires}.",
        crate::render::Escaped(r.thumbprint.as_str())
    );
    let _ = writeln!(out, "[clients.{}]", table_key(&c.key));
    let _ = writeln!(out, "name = {}", quoted(&c.name));
    let clearance = r
        .clearance
        .client()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "clearance = {}", quoted(&clearance));
    if !r.permissions.is_empty() {
        let dbs: Vec<String> = r
            .permissions
            .iter()
            .map(|(db, access)| format!("{} = {}", quoted_key(db), quoted(&access.to_string())))
            .collect();
        let _ = writeln!(out, "databases = {{ {} }}", dbs.join(", "));
    }
    let _ = writeln!(out, "upload = {}", quoted(&format!("trust/{}.pem", c.key)));
}

/// Writes the certificate files, then certs.toml, each created exclusively: nothing is
/// overwritten, and a file that exists stops everything before anything is written. As in the
/// store, no symbolic link may lie between certs.toml's folder and a file (a `trust` that is a
/// link would put the certificates ravencert will trust wherever it points): checked for every
/// file before anything is written, and again right before each write.
fn write_all(base: &Path, files: &[(String, Vec<u8>)], config: &Path, text: &str) -> Result<()> {
    let no_links = |path: &Path| -> Result<()> {
        crate::fsutil::refuse_links_below(base, path).map_err(|source| {
            let path = path.to_path_buf();
            AdoptError::Link { path, source }.into()
        })
    };
    for (rel, _) in files {
        let path = base.join(rel);
        no_links(&path)?;
        if path.exists() || std::fs::symlink_metadata(&path).is_ok() {
            return Err(AdoptError::Exists(path).into());
        }
    }
    no_links(config)?;
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        let io = |source| AdoptError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        no_links(path)?;
        // Whole or not at all, and never over a file (or link) that appeared meanwhile.
        crate::fsutil::write_atomic(path, bytes, &crate::fsutil::AtomicWrite::NEW)
            .map_err(|e| io(e.source))?;
        Ok(())
    };
    for (rel, bytes) in files {
        write(&base.join(rel), bytes)?;
    }
    write(config, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_names_are_valid_and_unique() {
        assert_eq!(slug("Orders App"), "orders-app");
        assert_eq!(slug("  Ops -- Team!! "), "ops-team");
        assert_eq!(slug("Zürich \"quoted\" ünïcode"), "zurich-quoted-unicode");
        assert_eq!(slug("Zürich Büro"), "zurich-buro");
        assert_eq!(slug("Łódź Straße"), "lodz-strasse");
        assert_eq!(slug("日本"), "ri-ben");
        assert_eq!(slug("!?"), "client");
        assert_eq!(slug("Server"), "server-client");
        assert_eq!(slug(&"a".repeat(100)).len(), 56);
        let mut taken = Unique::default();
        let key = |base: &str, n: usize| format!("{base}-{n}");
        assert_eq!(taken.take("ops", key), "ops");
        assert_eq!(taken.take("ops", key), "ops-2");
        assert_eq!(taken.take("ops-3", key), "ops-3");
        assert_eq!(taken.take("ops", key), "ops-4");
        assert_eq!(taken.take("OPS", key), "OPS-5");
        let pattern = regex_lite(&slug("Ops.Team_1"));
        // 5,000 registrations of one name: 5,000 names, each numbered form tried once.
        let mut names = Unique::default();
        let numbered = |base: &str, n: usize| format!("{base} ({n})");
        let all: BTreeSet<String> = (0..5000).map(|_| names.take("Team", numbered)).collect();
        assert_eq!(all.len(), 5000);
        assert!(all.contains("Team (5000)"));
        assert!(pattern, "{}", slug("Ops.Team_1"));
    }

    /// The client key pattern of certs.toml: `^[a-z0-9_-][a-z0-9_.-]{0,63}$`.
    fn regex_lite(key: &str) -> bool {
        !key.is_empty()
            && key.len() <= 64
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    }

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        assert_eq!(quoted("a \"b\"\n\\"), r#""a \"b\"\u000A\\""#);
        // What TOML reads back is the text itself.
        let text = "Zürich \"Team\"\t\u{7f}\\end";
        let back: toml::Table = toml::from_str(&format!("v = {}", quoted(text))).unwrap();
        assert_eq!(back["v"].as_str(), Some(text));
    }

    const HOSTILE_NAME: &str = "Team \"A\" \\ C:\\x \\n\n[clients.evil]\u{7f}\u{9b}";
    const HOSTILE_DB: &str = "Db\" = \"Admin\"\\\n";

    /// The certs.toml adopt writes for untrusted values in every place a string goes.
    fn hostile_certs_toml() -> String {
        use crate::model::Access;
        let registration = Registration {
            thumbprint: Thumbprint::parse(&"AB".repeat(20)).unwrap(),
            name: HOSTILE_NAME.to_string(),
            clearance: crate::plan::ClusterClearance::ValidUser,
            permissions: [(HOSTILE_DB.to_string(), Access::Read)].into(),
            collection_primary: None,
            collection_secondaries: Vec::new(),
            not_after: None,
            certificate: None,
            disabled: None,
            usage: None,
        };
        let adoption = Adoption {
            clients: vec![Adopted {
                key: "team-a".into(),
                name: HOSTILE_NAME.to_string(),
                primary: &registration,
                secondaries: Vec::new(),
            }],
            servers: vec!["trust/server-1.pem".into()],
            files: Vec::new(),
            renamed: Vec::new(),
            left_out: Vec::new(),
        };
        adoption.certs_toml(&Header {
            url: "https://a\"b\\c\n.example",
            version: "7.1",
            pfx: "admin \"x\".pfx",
            password_env: Some("PW\\\"\n"),
            ca: "system",
            well_known: &[],
            now: time::OffsetDateTime::UNIX_EPOCH,
        })
    }

    /// Names, databases and the command line are untrusted: quotes, backslashes, escapes and
    /// line breaks in them come back from the written certs.toml as the same values.
    #[test]
    fn hostile_values_parse_back_unchanged() {
        let (name, db) = (HOSTILE_NAME, HOSTILE_DB);
        let text = hostile_certs_toml();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let client = &doc["clients"]["team-a"];
        assert_eq!(client["name"].as_str(), Some(name), "{text}");
        assert_eq!(client["databases"][db].as_str(), Some("Read"), "{text}");
        assert!(doc["clients"].get("evil").is_none(), "{text}");
        let cluster = &doc["cluster"];
        assert_eq!(
            cluster["urls"][0].as_str(),
            Some("https://a\"b\\c\n.example")
        );
        let admin = &cluster["admin_certificate"];
        assert_eq!(admin["path"].as_str(), Some("admin \"x\".pfx"));
        assert_eq!(admin["password_env"].as_str(), Some("PW\\\"\n"));
    }

    /// The whole text, byte for byte, as adopt wrote it when it formatted TOML by hand (before
    /// toml_writer): basic strings only, `\u000A` rather than `\n`, database keys quoted.
    #[test]
    fn the_written_text_is_unchanged() {
        let expected = r#"#:schema ./certs.schema.json
# Written by `ravencert adopt` from the cluster at https://a"b\c\u{a}.example (RavenDB 7.1) on 1970-01-01T00:00:00Z.
# Each client is a registration as the cluster listed it; review, then commit.
version = 1

[store]
path = "store"

[server]
# The cluster's server certificate(s), public only: ravencert registers and exports,
# but generates no client until a node .pfx with its private key is declared here.
certificates = [{ path = "trust/server-1.pem" }]

[cluster]
urls = ["https://a\"b\\c\u000A.example"]
admin_certificate = { path = "admin \"x\".pfx", password_env = "PW\\\"\u000A" }
ca = "system"
prune = false

# Registered on the cluster as ABABABABABABABABABABABABABABABABABABABAB.
[clients.team-a]
name = "Team \"A\" \\ C:\\x \\n\u000A[clients.evil]\u007F\u009B"
clearance = "ValidUser"
databases = { "Db\" = \"Admin\"\\\u000A" = "Read" }
upload = "trust/team-a.pem"
"#;
        assert_eq!(hostile_certs_toml(), expected);
        assert_eq!(table_key("team-a"), "team-a");
        assert_eq!(table_key("a b\u{202e}"), r#""a b\u202E""#);
        assert_eq!(quoted_key("Orders"), r#""Orders""#);
        assert_eq!(quoted("Zürich \"Team\""), r#""Zürich \"Team\"""#);
        assert_eq!(quoted("tab\there\u{e0041}"), r#""tab\u0009here\U000E0041""#);
    }

    /// What adopt wrote by hand before toml_writer: `"` and `\` escaped, every character
    /// `escape` picks as `\uXXXX` (`\UXXXXXXXX` beyond the Basic Multilingual Plane). With
    /// `char::is_control` it is the old `quoted` exactly.
    fn hand_quoted(text: &str, escape: fn(char) -> bool) -> String {
        let mut out = String::from('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if escape(c) && u32::from(c) <= 0xFFFF => {
                    out.push_str(&format!("\\u{:04X}", u32::from(c)))
                }
                c if escape(c) => out.push_str(&format!("\\U{:08X}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Many strings drawn from every invisible character, quotes, backslashes, escape-like text
    /// and characters beyond the Basic Multilingual Plane: what adopt writes, as a value and as
    /// a key, reads back as the same string, holds no raw invisible character, and is the text
    /// adopt wrote by hand (exactly the old text when no format character is in it).
    #[test]
    fn every_string_is_written_escaped_and_reads_back() {
        let mut alphabet: Vec<char> = crate::chars::INVISIBLE
            .iter()
            .flat_map(|&(first, last)| first..=last)
            .filter_map(char::from_u32)
            .collect();
        alphabet.extend("\"'\\ =#[]{}.,unrtbfexU0A9ü日\u{a0}\u{fffd}\u{fffc}".chars());
        alphabet.extend([
            '\u{10000}',
            '\u{1d11e}',
            '\u{1f600}',
            '\u{e0100}',
            '\u{10ffff}',
        ]);
        let mut rng = fastrand::Rng::with_seed(24);
        let mut samples: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
        samples.extend(
            ["", "v", "\\u0041", "\\n", "\"\"\"", "'''", "a\\", "\\\\\""].map(String::from),
        );
        samples.extend((0..20_000).map(|_| {
            let len = rng.usize(0..=16);
            (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect::<String>()
        }));
        let has_format_char = |s: &str| {
            s.chars()
                .any(|c| crate::chars::is_invisible(c) && !c.is_control())
        };
        for s in &samples {
            let value = quoted(s);
            let key = quoted_key(s);
            let table = table_key(s);
            for written in [&value, &key, &table] {
                assert!(
                    !written.chars().any(crate::chars::is_invisible),
                    "{s:?} -> {written:?}"
                );
            }
            assert_eq!(value, hand_quoted(s, crate::chars::is_invisible), "{s:?}");
            assert_eq!(key, value, "{s:?}");
            if !has_format_char(s) {
                assert_eq!(value, hand_quoted(s, char::is_control), "{s:?}");
            }
            let doc = format!("v = {value}\n[k]\n{key} = 1\n[t.{table}]\n");
            let back: toml::Table = match toml::from_str(&doc) {
                Ok(back) => back,
                Err(e) => panic!("{s:?}: {e}\n{doc}"),
            };
            assert_eq!(back["v"].as_str(), Some(s.as_str()), "{doc}");
            assert_eq!(
                back["k"].get(s.as_str()).and_then(|v| v.as_integer()),
                Some(1),
                "{doc}"
            );
            assert!(
                back["t"].get(s.as_str()).is_some_and(|t| t.is_table()),
                "{doc}"
            );
        }
    }
}
