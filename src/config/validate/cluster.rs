//! `[cluster]`: the nodes' URLs, the admin identity, the CA pin, the timeout and `keep`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::fields::{refuse_password, secret_ref};
use crate::config::diagnostics::Checker;
use crate::config::raw::{RawAdminCertificate, RawCluster, RawKeep};
use crate::config::{
    CaPin, ClientDesired, ClientSpec, ClusterAdmin, ClusterSettings, FileRef, KeptRegistration,
    CLUSTER_TIMEOUT_DEFAULT, CLUSTER_TIMEOUT_MAX, CLUSTER_TIMEOUT_MIN, MAX_KEEP_NOTE_CHARS,
};
use crate::model::{cluster_url, Clearance, Period, Thumbprint};

/// What `[cluster]` is validated against.
pub(super) struct ClusterContext<'a> {
    /// The valid clients, by key (`admin` names one).
    pub(super) clients: &'a BTreeMap<String, ClientDesired>,
    pub(super) base: &'a Path,
    /// Whether certs.toml has a `[server]` (valid or not): `ca = "store"` pins to it.
    pub(super) has_server: bool,
}

pub(super) fn validate_cluster(
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

/// `keep`: each a thumbprint (40 hex digits, made a [`Thumbprint`] here, upper-cased once for
/// every later comparison) listed once, with an optional note of 1 to [`MAX_KEEP_NOTE_CHARS`]
/// characters. An entry whose thumbprint is refused is left out (the file is refused anyway).
fn cluster_keep(ck: &mut Checker<'_>, keep: &[Spanned<RawKeep>]) -> Vec<KeptRegistration> {
    let mut out: Vec<KeptRegistration> = Vec::new();
    for (i, k) in keep.iter().enumerate() {
        let k = k.get_ref();
        let at = |field: &str| format!("cluster.keep[{i}].{field}");
        let thumbprint = Thumbprint::parse(k.thumbprint.get_ref()).ok();
        match &thumbprint {
            None => ck.error_at(
                Some(&k.thumbprint.span()),
                at("thumbprint"),
                "must be a certificate's thumbprint: 40 hex digits (its SHA-1, as the Studio lists it)".into(),
            ),
            Some(t) if out.iter().any(|o| o.thumbprint == *t) => ck.error_at(
                Some(&k.thumbprint.span()),
                at("thumbprint"),
                format!("{t} is listed twice; list each registration once"),
            ),
            Some(_) => {}
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
        if let Some(thumbprint) = thumbprint {
            out.push(KeptRegistration { thumbprint, note });
        }
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
        match cluster_url(u.get_ref()) {
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
        _ if client.disabled => Some(format!("clients.{id} is disabled: ravencert would suspend the very identity it manages the cluster with; drop `disabled` there, or name another client")),
        _ if client.until.is_some() => Some(format!("clients.{id} has an `until`: once it passes, ravencert would lose the identity it manages the cluster with; drop `until` there, or name another client")),
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
