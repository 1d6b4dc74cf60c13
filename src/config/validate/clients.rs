//! `[clients.KEY]`: names, clearance and databases, generated or uploaded.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::fields::{
    always_due, period_field, refuse_fields, refuse_password, renew_field, secret_ref,
};
use super::until::until_field;
use super::Defaults;
use crate::config::diagnostics::Checker;
use crate::config::raw::RawClient;
use crate::config::{ClientDesired, ClientSpec, FileRef, GenerateSpec, SecretRef};
use crate::model::{check_client_key, check_database_name, check_name, Clearance, Permissions};

/// What every client is validated against.
pub(super) struct ClientContext<'a> {
    pub(super) defaults: &'a Defaults,
    pub(super) base: &'a Path,
    /// Whether certs.toml has a `[server]` (valid or not).
    pub(super) has_server: bool,
}

pub(super) fn validate_client(
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
    // Keys are made only for a field that is set (10,000 clients: 30,000 strings fewer).
    let overlap = c
        .overlap
        .as_ref()
        .and_then(|v| period_field(ck, Some(v), &format!("{at}.overlap")))
        .unwrap_or(ctx.defaults.overlap);
    let until = client_until(ck, &at, c);
    Some(ClientDesired {
        key: id,
        name,
        clearance: c.clearance,
        permissions,
        protect: c.protect,
        overlap: Some(overlap).filter(|o| o.seconds > 0),
        source,
        until,
        disabled: c.disabled,
    })
}

/// `until`, marked at `AT.until` for the plan's later errors; refused with `protect`, which
/// wants two reviewed steps to leave while `until` ends access on its own.
fn client_until(ck: &mut Checker<'_>, at: &str, c: &RawClient) -> Option<time::OffsetDateTime> {
    let v = c.until.as_ref()?;
    let key = format!("{at}.until");
    ck.mark(key.clone(), &v.span());
    let until = until_field(ck, Some(v), &key)?;
    if c.protect {
        ck.error_at(
            Some(&v.span()),
            key,
            "`until` and `protect` cannot go together: protect makes the client leave in two reviewed steps, until ends its access on its own; drop one".into(),
        );
        return None;
    }
    Some(until)
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
pub(super) struct Names {
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
        let generated_only = [
            ("key", c.key.as_ref().map(|k| k.span())),
            ("validity", c.validity.as_ref().map(|k| k.span())),
            ("renew_before", c.renew_before.as_ref().map(|k| k.span())),
            ("pfx", c.pfx.as_ref().map(|k| k.span())),
        ];
        refuse_fields(ck, at, &generated_only, |field| {
            format!("`{field}` is for generated certificates; an uploaded certificate keeps what its file holds — remove `{field}` or `upload`")
        });
        return ClientSpec::Upload(FileRef {
            path: ctx.base.join(upload.get_ref()),
            password,
        });
    }
    let defaults = ctx.defaults;
    let validity = c
        .validity
        .as_ref()
        .and_then(|v| period_field(ck, Some(v), &format!("{at}.validity")))
        .unwrap_or(defaults.validity);
    let renew_before = c
        .renew_before
        .as_ref()
        .and_then(|v| renew_field(ck, Some(v), &format!("{at}.renew_before")))
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
