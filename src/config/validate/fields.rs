//! Checks of single values that several sections share: periods, secrets, paths, DNS names.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use crate::config::diagnostics::Checker;
use crate::config::SecretRef;
use crate::model::{Period, RenewBefore, BACKDATING};

/// A literal `password = ...` at `at`: refused where it stands.
pub(super) fn refuse_password(ck: &mut Checker<'_>, at: &str, password: &Spanned<toml::Value>) {
    ck.error_at(
        Some(&password.span()),
        format!("{at}.password"),
        "passwords never stand in certs.toml (it is reviewed and kept in git): name an environment variable with `password_env` or a file with `password_file`".into(),
    );
}

/// The store must be a folder of its own: never certs.toml's folder or one above it (its
/// `.gitignore` of `*` would hide certs.toml itself from git, and apply would sweep its files).
/// Absolute paths and `--store` are checked against the file system in ops.
pub(in crate::config) fn check_store_path(path: &str) -> Result<(), String> {
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

pub(super) fn check_dns_name(name: &str) -> Result<(), String> {
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
pub(in crate::config) fn always_due(renew: RenewBefore, validity: Period) -> Option<String> {
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

/// A text field `at` read by `parse`, when it is set; what `parse` refuses is an error at the
/// value.
fn parsed_field<T>(
    ck: &mut Checker<'_>,
    v: Option<&Spanned<String>>,
    at: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    let v = v?;
    parse(v.get_ref())
        .map_err(|e| ck.error_at(Some(&v.span()), at, e))
        .ok()
}

pub(super) fn period_field(
    ck: &mut Checker<'_>,
    v: Option<&Spanned<String>>,
    at: &str,
) -> Option<Period> {
    parsed_field(ck, v, at, |text| match Period::parse(text)? {
        s if s.seconds > 0 || at.ends_with("overlap") => Ok(s),
        _ => Err("must be longer than zero".into()),
    })
}

pub(super) fn renew_field(
    ck: &mut Checker<'_>,
    v: Option<&Spanned<String>>,
    at: &str,
) -> Option<RenewBefore> {
    parsed_field(ck, v, at, RenewBefore::parse)
}

/// Fields set where they do not apply: an error at each, key `AT.FIELD`, in the words `why`
/// gives for the field. `fields` pairs each name with its value's span, None when unset.
pub(super) fn refuse_fields(
    ck: &mut Checker<'_>,
    at: &str,
    fields: &[(&str, Option<Range<usize>>)],
    why: impl Fn(&str) -> String,
) {
    for (field, span) in fields {
        if let Some(span) = span {
            ck.error_at(Some(span), format!("{at}.{field}"), why(field));
        }
    }
}

pub(super) fn secret_ref(
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
