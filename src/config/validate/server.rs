//! `[server]`: a generated self-signed certificate or the nodes' own files, and `install`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::fields::{
    always_due, check_dns_name, period_field, refuse_fields, refuse_password, secret_ref,
};
use crate::config::diagnostics::Checker;
use crate::config::raw::{RawCertFile, RawInstall, RawServer};
use crate::config::{FileRef, InstallSpec, SecretRef, ServerDesired, ServerSpec};
use crate::model::{check_name, KeySpec, Period, PfxProfile, RenewBefore};

pub(super) fn validate_server(
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
    let generated_only = [
        ("name", s.name.as_ref().map(|x| x.span())),
        ("dns", s.dns.as_ref().map(|x| x.span())),
        ("validity", s.validity.as_ref().map(|x| x.span())),
    ];
    refuse_fields(ck, "server", &generated_only, |field| {
        format!("`{field}` is for a generated server certificate; existing certificates keep what their files hold")
    });
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
