//! One function per command: load what it needs, call the core, render. The CLI and the tests
//! call these; they return what to print and the exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::apply;
use crate::config::{self, ClientSpec, ConfigError, Declared, Desired};
use crate::git;
use crate::model::RenewBefore;
use crate::plan::{self, Plan, PlanOptions};
use crate::registry::Actual;
use crate::render::{self, Style};
use crate::store::Store;

/// An error for the person at the terminal; always exit code 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Global settings shared by every command.
pub struct Context {
    pub config: PathBuf,
    pub store_override: Option<PathBuf>,
    pub style: Style,
    pub now: OffsetDateTime,
    /// With `watch --git` the config lives in a cache checkout: a relative `[server].export`
    /// is resolved against this folder (the store's) instead.
    pub export_base: Option<PathBuf>,
    /// With `watch --git`: the paths (files or folders) an absolute or `..` export may name,
    /// as the machine's own `--allow-export-path` says; the commit cannot widen it.
    pub allowed_exports: Vec<PathBuf>,
}

/// The result of a command: what to print and how to exit.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Output {
    fn ok(stdout: String) -> Output {
        Output {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
}

fn config_errors(errors: Vec<ConfigError>) -> Failure {
    let n = errors.len();
    let mut text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\nerror: ");
    if n > 1 {
        text.push_str(&format!(
            "\n({n} problems in certs.toml; nothing was changed)"
        ));
    } else {
        text.push_str("\n(nothing was changed)");
    }
    Failure(text)
}

/// certs.toml is text a person reviews: anything larger is a mistake, not a config.
const MAX_CONFIG_BYTES: usize = 4 << 20;

/// Where certs.toml is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// The file on disk (and the files it references).
    WorkTree,
    /// The file (and the certificate files it references) at a git revision.
    Rev(String),
}

impl Context {
    /// Reads and validates certs.toml from the disk.
    pub fn desired(&self) -> Result<Declared> {
        self.parse(&Revision::WorkTree)
    }

    fn parse(&self, source: &Revision) -> Result<Declared> {
        let text = match source {
            Revision::WorkTree => {
                if let Some(workdir) = git::workdir_of(&self.config) {
                    git::check_links_stay_inside(&self.config, &workdir).map_err(Failure)?;
                }
                crate::fsutil::read_regular(&self.config, MAX_CONFIG_BYTES as u64, true).map_err(
                    |e| {
                        if e.kind() == std::io::ErrorKind::InvalidInput
                            && e.to_string().contains("bytes allowed")
                        {
                            return Failure(format!(
                        "{}: a certs.toml larger than {} MiB is refused (is this the right file?)",
                        self.config.display(),
                        MAX_CONFIG_BYTES >> 20
                    ));
                        }
                        Failure(format!(
                            "cannot read {}: {e}{}",
                            self.config.display(),
                            if e.kind() == std::io::ErrorKind::NotFound {
                                " (run `ravencert init` to write a starter, or pass -c PATH)"
                            } else {
                                ""
                            }
                        ))
                    },
                )?
            }
            Revision::Rev(rev) => git::read_at(&self.config, rev)?.0,
        };
        if text.len() > MAX_CONFIG_BYTES {
            return Err(Failure(format!(
                "{}: is {} bytes; a certs.toml larger than {} MiB is refused (is this the right file?)",
                self.config.display(),
                text.len(),
                MAX_CONFIG_BYTES >> 20
            )));
        }
        let text = String::from_utf8(text)
            .map_err(|_| Failure(format!("{}: is not UTF-8 text", self.config.display())))?;
        let base = match self.config.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let shown = match source {
            Revision::WorkTree => self.config.clone(),
            Revision::Rev(rev) => PathBuf::from(format!("{}@{rev}", self.config.display())),
        };
        let mut desired = config::parse(&shown, &text, &base).map_err(config_errors)?;
        desired.config_path = self.config.clone();
        if let Some(s) = &self.store_override {
            desired.store.path = s.clone();
        }
        check_store_location(&desired, &base, self.store_override.is_some())?;
        if let Some(export_base) = &self.export_base {
            self.rebase_export(&mut desired, &base, export_base)?;
        }
        Ok(desired)
    }

    /// Git mode: a relative export is written next to the store (the checkout is a cache). An
    /// absolute or `..` export would let a commit make the daemon (root) write anywhere: refused
    /// unless the machine allows that path with `--allow-export-path`.
    fn rebase_export(&self, desired: &mut Declared, base: &Path, export_base: &Path) -> Result<()> {
        let Some(export) = desired.server.as_ref().and_then(|s| s.export.clone()) else {
            return Ok(());
        };
        let rel = export
            .strip_prefix(base)
            .ok()
            .filter(|r| !r.is_absolute())
            .map(Path::to_path_buf);
        let leaves = rel.as_ref().is_none_or(|r| {
            r.components().any(|c| {
                use std::path::Component::{ParentDir, Prefix, RootDir};
                matches!(c, ParentDir | RootDir | Prefix(_))
            })
        });
        let target = match &rel {
            Some(r) => export_base.join(r),
            None => export.clone(),
        };
        if leaves {
            let real = crate::fsutil::resolve(&target);
            let allowed = self
                .allowed_exports
                .iter()
                .any(|a| real.starts_with(crate::fsutil::resolve(a)));
            if !allowed {
                let shown = rel.as_ref().unwrap_or(&export);
                return Err(config_errors(vec![desired.error_at(
                    "server.export".into(),
                    format!(
                        "with watch --git, the export must be a relative path without `..` (written next to the store); {} would be written at {} — if this machine means it, start the daemon with --allow-export-path {}",
                        shown.display(),
                        real.display(),
                        real.display()
                    ),
                )]));
            }
        }
        if let Some(server) = desired.server.as_mut() {
            server.export = Some(target);
        }
        Ok(())
    }

    /// Desired plus the check that every referenced secret and file is there, and what the
    /// referenced certificate files hold. `issuing`: the passwords of generated clients are
    /// needed (a review plan issues nothing, so it does not need them).
    pub fn load(&self, source: &Revision, issuing: bool) -> Result<Desired> {
        let declared = self.parse(source)?;
        let on_disk = *source == Revision::WorkTree;
        let desired = match source {
            Revision::WorkTree => {
                // In a repository, a certificate file is under review like certs.toml: no link
                // inside the repository may lead out of it. Outside git, the user's own paths.
                let workdir = git::workdir_of(&self.config);
                declared.resolve(
                    &|p: &Path| {
                        if let Some(w) = &workdir {
                            git::check_links_stay_inside(p, w)?;
                        }
                        crate::inputs::from_disk(p)
                    },
                    on_disk,
                    issuing,
                )
            }
            Revision::Rev(rev) => declared.resolve(
                &|p: &Path| git::read_file_at(p, rev).map_err(|e| e.to_string()),
                on_disk,
                issuing,
            ),
        }
        .map_err(config_errors)?;
        check_export_path(&desired).map_err(|message| {
            config_errors(vec![desired.error_at("server.export".into(), message)])
        })?;
        Ok(desired)
    }

    /// The store when certs.toml cannot be read as a whole: `[store].path` if the file still
    /// says it, else `store` next to certs.toml (the default).
    fn fallback_store(&self) -> PathBuf {
        let base = match self.config.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let named = crate::fsutil::read_regular(&self.config, MAX_CONFIG_BYTES as u64, true)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .and_then(|t| {
                t.get("store")?
                    .get("path")?
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            });
        base.join(named.unwrap_or_else(|| PathBuf::from("store")))
    }

    pub fn desired_checked(&self) -> Result<Desired> {
        self.load(&Revision::WorkTree, true)
    }
}

/// The store is a folder of its own: never certs.toml's folder or one above it (its `.gitignore`
/// of `*` would hide certs.toml from git, and `/` would make every file a store file).
fn check_store_location(desired: &Declared, base: &Path, overridden: bool) -> Result<()> {
    let store = crate::fsutil::resolve(&desired.store.path);
    let config_dir = crate::fsutil::resolve(base);
    if !config_dir.starts_with(&store) {
        return Ok(());
    }
    let message = format!(
        "{} is {}; the store must be a folder of its own (it holds private keys, and its .gitignore of `*` would hide certs.toml from git) — name another folder, e.g. {}",
        desired.store.path.display(),
        if store == config_dir {
            "the folder of certs.toml".to_string()
        } else {
            format!("a folder above certs.toml ({})", store.display())
        },
        base.join("store").display()
    );
    Err(if overridden {
        Failure(format!("--store: {message}"))
    } else {
        config_errors(vec![desired.error_at("store.path".into(), message)])
    })
}

/// The export is written where certs.toml says, so that path must not be something else: not
/// inside the store, not certs.toml or a file it names, not a link, and, when a file is
/// already there, one that is a certificate export (never /etc/passwd or a private key).
fn check_export_path(desired: &Declared) -> std::result::Result<(), String> {
    match export_path(desired) {
        Some(path) => check_export_target(desired, path),
        None => Ok(()),
    }
}

fn check_export_target(desired: &Declared, path: &Path) -> std::result::Result<(), String> {
    // Compared where they really point, whether or not they exist yet (the first apply).
    let target = crate::fsutil::resolve(path);
    let store = crate::fsutil::resolve(&desired.store.path);
    if target.starts_with(&store) {
        return Err(format!(
            "{} is inside the store {}; the export is meant to be shared, so write it elsewhere (e.g. exports/cluster.pfx)",
            path.display(),
            desired.store.path.display()
        ));
    }
    // Its folder is created on apply: whatever part of it exists must be a folder.
    let mut ancestor = path.parent();
    while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                return Err(format!(
                    "{} cannot be written: {} is a file, not a folder — remove it or choose another export path",
                    path.display(),
                    dir.display()
                ));
            }
            break;
        }
        ancestor = dir.parent();
    }
    let mut others = desired.referenced_files();
    others.push(desired.config_path.clone());
    if others.iter().any(|f| crate::fsutil::resolve(f) == target) {
        return Err(format!(
            "{} is a file certs.toml uses as input; the export would overwrite it — choose another path",
            path.display()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link; ravencert does not write an export through a link — remove it or choose another path",
            path.display()
        )),
        Ok(m) if !m.is_file() => Err(format!(
            "{} exists and is not a regular file; remove it or choose another path",
            path.display()
        )),
        Ok(_) => match crate::fsutil::read_regular(path, 16 << 20, false) {
            Ok(bytes) if crate::pki::is_certificate_export(&bytes) => Ok(()),
            _ => Err(format!(
                "{} exists and is not a certificate export (a password-less .pfx of certificates); ravencert will not overwrite it — remove it or choose another path",
                path.display()
            )),
        },
    }
}

fn export_path(desired: &Declared) -> Option<&Path> {
    desired.server.as_ref().and_then(|s| s.export.as_deref())
}

pub fn init(ctx: &Context) -> Result<Output> {
    if ctx.config.exists() {
        return Err(Failure(format!(
            "{} already exists; init never overwrites (edit it, or pass -c NEW_PATH)",
            ctx.config.display()
        )));
    }
    let starter = crate::STARTER;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&ctx.config)
        .and_then(|mut f| f.write_all(starter.as_bytes()))
        .map_err(|e| Failure(format!("cannot write {}: {e}", ctx.config.display())))?;
    Ok(Output::ok(format!(
        "Wrote {}. Review it, then run `ravencert plan`.\n",
        ctx.config.display()
    )))
}

pub fn validate(ctx: &Context) -> Result<Output> {
    let desired = ctx.desired_checked()?;
    // Every check of the plan that needs no store, so that validate and plan agree.
    plan::check_declared(&desired, ctx.now).map_err(|e| plan_failure(&desired, e))?;
    let mut out = format!(
        "{} is valid: {} client certificate{}, store {}.\n",
        ctx.config.display(),
        desired.clients.len(),
        if desired.clients.len() == 1 { "" } else { "s" },
        desired.store.path.display()
    );
    for w in &desired.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(Output::ok(out))
}

pub struct PlanRequest {
    pub rev: Option<String>,
    pub base: Option<String>,
    pub json: bool,
    pub markdown: bool,
    pub out: Option<PathBuf>,
    pub diff: bool,
    pub detailed_exitcode: bool,
    pub replace: Vec<String>,
    pub allow_delete_all: bool,
}

fn options(replace: &[String], allow_delete_all: bool) -> PlanOptions {
    PlanOptions {
        replace: replace.iter().cloned().collect::<BTreeSet<_>>(),
        allow_delete_all,
        bundle_passwords: None,
    }
}

/// The options with the fingerprints of the declared bundle passwords under this store's key,
/// so that the planner sees a changed password without ever holding one.
fn with_passwords(opts: &PlanOptions, desired: &Desired, store: &Store) -> Result<PlanOptions> {
    let key = store.password_key()?;
    let mut map = BTreeMap::new();
    for c in desired.clients.values() {
        let ClientSpec::Generate(g) = &c.source else {
            continue;
        };
        // A client without a password is left out: the planner reads that as NO_PASSWORD.
        let fingerprint = match (&g.password, &key) {
            (None, _) => continue,
            // No key yet: whatever was recorded cannot match, so the bundle is made again.
            (Some(_), None) => "hmac-sha256:(no store key)".to_string(),
            (Some(r), Some(k)) => {
                let secret = r.read().map_err(|e| {
                    config_errors(vec![
                        desired.error_at(format!("clients.{}", c.key), e.to_string())
                    ])
                })?;
                crate::pki::password_fingerprint(k, &c.key, Some(secret.expose()))?
            }
        };
        map.insert(c.key.clone(), fingerprint);
    }
    Ok(PlanOptions {
        bundle_passwords: Some(map),
        ..opts.clone()
    })
}

/// Loads the store and plans. `secrets`: the declared passwords are at hand (not for a plan of
/// another revision), so a changed bundle password is planned too.
fn compute(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    secrets: bool,
) -> Result<(Store, Actual, Plan)> {
    let store = Store::new(&desired.store.path);
    let actual = store.load(export_path(desired))?;
    let opts = if secrets {
        with_passwords(opts, desired, &store)?
    } else {
        opts.clone()
    };
    let plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| plan_failure(desired, e))?;
    Ok((store, actual, plan))
}

/// A refused plan, placed at the certs.toml key it concerns when there is one.
fn plan_failure(desired: &Desired, e: plan::PlanError) -> Failure {
    let key = match &e {
        plan::PlanError::Refused { key, .. } => key.clone(),
        plan::PlanError::TooManyDeletions { .. } => "store.max_deletions".to_string(),
        _ => String::new(),
    };
    if key.is_empty() {
        return Failure(e.to_string());
    }
    let message = match e {
        plan::PlanError::Refused { message, .. } => format!("refused: {message}"),
        other => other.to_string(),
    };
    config_errors(vec![desired.error_at(key, message)])
}

/// The store as it would be had `base` been applied: for `plan --base`, which needs no store.
fn assumed_store(base: &Desired, now: OffsetDateTime) -> Actual {
    use crate::model::Origin;
    use crate::registry::{CertEntry, Registry, ServerEntry};
    // Thumbprints and dates of a store nobody reads here are not known: placeholders that are
    // never shown (the plan gives null, the diff "(known after apply)"). The dates follow the
    // declared validity so that no re-issue is planned from them.
    let issued = now - time::Duration::seconds(crate::model::BACKDATING.seconds);
    let assumed = "(as registered)".to_string();
    let mut reg = Registry::new();
    if let Some(server) = &base.server {
        match &server.source {
            config::ServerSpec::Generate {
                name,
                dns,
                key,
                validity,
                ..
            } => reg.server.push(ServerEntry {
                name: name.clone(),
                thumbprint: assumed.clone(),
                public_key_pinning_hash: assumed.clone(),
                dns: dns.clone(),
                not_before: issued,
                not_after: now + validity.as_duration(),
                source: Origin::Generated,
                key_type: Some(*key),
                revision: None,
            }),
            config::ServerSpec::Imported(_) => {
                reg.server = apply::node_entries(&base.files.nodes, None)
            }
        }
    }
    for c in base.clients.values() {
        match &c.source {
            ClientSpec::Generate(g) => reg.certificates.push(CertEntry {
                key: c.key.clone(),
                name: c.name.clone(),
                thumbprint: format!("{assumed} {}", c.key),
                public_key_pinning_hash: assumed.clone(),
                clearance: c.clearance,
                not_before: issued,
                not_after: now + g.validity.as_duration(),
                source: Origin::Generated,
                key_type: Some(g.key),
                collection_primary: None,
                collection_secondaries: vec![],
                retire_after: None,
                revision: None,
                permissions: c.permissions.clone(),
                pfx: g.pfx,
                bundle_password: None,
                subject: None,
            }),
            ClientSpec::Upload(_) => reg.certificates.extend(apply::upload_entries(
                c,
                base.files.uploads.get(&c.key).map_or(&[][..], |v| v),
                None,
            )),
        }
    }
    let mut export: Vec<String> = reg.server.iter().map(|s| s.thumbprint.clone()).collect();
    export.sort();
    Actual {
        bundles_ok: base
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.source, ClientSpec::Generate(_)))
            .map(|(k, _)| k.clone())
            .collect(),
        export_thumbprints: Some(export),
        registry: reg,
        exists: true,
        sealed: true,
        ..Actual::default()
    }
}

pub fn plan(ctx: &Context, req: &PlanRequest) -> Result<Output> {
    let opts = options(&req.replace, req.allow_delete_all);
    let (desired, actual, plan) = match (&req.base, &req.rev) {
        (Some(base_rev), _) => {
            // Review mode: what changes between certs.toml at BASE and the working tree's,
            // with the store assumed to match BASE. No store is read, nothing is issued.
            let desired = ctx.load(&Revision::WorkTree, false)?;
            // No certs.toml at BASE (the pull request that adds it): nothing is registered.
            let actual = if git::exists_at(&ctx.config, base_rev)? {
                let base = ctx.load(&Revision::Rev(base_rev.clone()), false)?;
                assumed_store(&base, ctx.now)
            } else {
                Actual {
                    registry: crate::registry::Registry::new(),
                    ..Actual::default()
                }
            };
            let plan = plan::plan(&desired, &actual, ctx.now, &opts)?;
            (desired, actual, plan)
        }
        (None, Some(rev)) => {
            let desired = ctx.load(&Revision::Rev(rev.clone()), false)?;
            let (_, actual, plan) = compute(ctx, &desired, &opts, false)?;
            (desired, actual, plan)
        }
        (None, None) => {
            let desired = ctx.desired_checked()?;
            let (_, actual, plan) = compute(ctx, &desired, &opts, true)?;
            (desired, actual, plan)
        }
    };
    let mut stdout = if req.json {
        let mut v = render::plan_json(&plan);
        if req.diff {
            let after = apply::project(&actual.registry, &plan, &desired, ctx.now);
            v["registry_diff"] = Value::String(render::registry_diff(&actual.registry, &after));
        }
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    } else if req.markdown {
        render::plan_markdown(&plan)
    } else {
        render::plan_text(&plan, ctx.style)
    };
    if let Some(out) = &req.out {
        let saved = SavedPlan::new(
            ctx,
            &desired,
            &actual,
            &plan,
            &req.replace,
            req.allow_delete_all,
        )?;
        saved.write(out)?;
        if !req.json {
            stdout.push_str(&format!(
                "\nSaved this plan to {}. Apply exactly it with `ravencert apply {}`.\n",
                render::Escaped(&out.display().to_string()),
                render::Escaped(&out.display().to_string())
            ));
        }
    }
    if req.diff && !req.json {
        let after = apply::project(&actual.registry, &plan, &desired, ctx.now);
        let diff = render::registry_diff(&actual.registry, &after);
        if !diff.is_empty() {
            if req.markdown {
                if !stdout.ends_with("\n\n") {
                    stdout.push('\n');
                }
                stdout.push_str(&render::markdown_diff(&diff));
            } else {
                stdout.push('\n');
                stdout.push_str(&diff);
            }
        }
    }
    let code = if req.detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    };
    Ok(Output {
        stdout,
        stderr: String::new(),
        code,
    })
}

pub struct ApplyRequest {
    pub require_clean: bool,
    pub planfile: Option<PathBuf>,
    pub yes: bool,
    pub json: bool,
    pub replace: Vec<String>,
    pub lock_timeout: Duration,
    pub allow_delete_all: bool,
}

/// The applied revision of the working tree's certs.toml: `sha1:<commit>[+dirty]`, or None
/// outside git. With `require_clean`, uncommitted changes (or no git) refuse the apply.
/// certs.toml's provenance covers the certificate files it names: an uncommitted upload
/// makes the applied revision dirty too.
fn local_revision(ctx: &Context, desired: &Desired, require_clean: bool) -> Result<Option<String>> {
    let files = desired.certificate_files();
    if !require_clean {
        return Ok(git::provenance(&ctx.config, &files).map(|p| p.revision()));
    }
    let p = git::require_provenance(&ctx.config, &files)
        .map_err(|e| Failure(format!("--require-clean: {e}")))?;
    if !p.dirty_files.is_empty() {
        return Err(Failure(format!(
            "--require-clean: uncommitted changes in {}; commit them (so the applied revision names what was applied) or drop --require-clean. Nothing was changed.",
            p.dirty_files.join(", ")
        )));
    }
    Ok(Some(p.revision()))
}

/// The applied revision of a certs.toml on disk (and the certificate files it names), when it
/// is in git.
pub fn revision_of(config: &Path, desired: &Desired) -> Option<String> {
    git::provenance(config, &desired.certificate_files()).map(|p| p.revision())
}

/// The plan for `desired` against its store, changing nothing.
pub fn plan_for(ctx: &Context, desired: &Desired, opts: &PlanOptions) -> Result<Plan> {
    Ok(compute(ctx, desired, opts, true)?.2)
}

/// Lock, load, plan and apply: the one path every apply takes (CLI and watch).
pub fn converge(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    lock_timeout: Duration,
    revision: Option<String>,
    check: &dyn Fn(&Actual, &Plan) -> Result<()>,
) -> Result<(Plan, apply::Outcome)> {
    let store = Store::new(&desired.store.path);
    let _lock = store.lock(lock_timeout)?;
    let actual = store.load(export_path(desired))?;
    let opts = with_passwords(opts, desired, &store)?;
    let plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| plan_failure(desired, e))?;
    check(&actual, &plan)?;
    let outcome =
        apply::apply(desired, &store, &actual, &plan, ctx.now, revision).map_err(|e| match e {
            // Not "apply failed": the store part succeeded, and the message says so.
            e @ apply::ApplyError::Export { .. } => Failure(e.to_string()),
            e => Failure(format!("apply failed: {e}")),
        })?;
    Ok((plan, outcome))
}

pub fn apply(ctx: &Context, req: &ApplyRequest) -> Result<Output> {
    let desired = ctx.desired_checked()?;
    let revision = local_revision(ctx, &desired, req.require_clean)?;
    let saved = match &req.planfile {
        Some(path) => Some(SavedPlan::read(path)?),
        None => None,
    };
    let opts = match &saved {
        Some(s) => options(&s.options.replace, s.options.allow_delete_all),
        None => options(&req.replace, req.allow_delete_all),
    };
    // A first look without the lock, to show the plan and ask.
    let (_store, preview_actual, preview) = compute(ctx, &desired, &opts, true)?;
    if let Some(s) = &saved {
        s.check(&desired, &preview_actual, &preview)?;
    }
    let mut stderr = String::new();
    if !preview.is_empty() && !req.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure(
                "apply needs confirmation and there is no terminal to ask on: review `ravencert plan`, then run `ravencert apply --yes` (nothing was changed)".into(),
            ));
        }
        // With --json, stdout holds only the JSON document: the plan shown for confirmation
        // and the question go to stderr, which is the terminal a person reads.
        let shown = format!(
            "{}\nDo you want to perform these actions? Only 'yes' will be accepted to approve.\n  Enter a value: ",
            render::plan_text(&preview, ctx.style)
        );
        let shown = render::escape_output(&shown, ctx.style.color);
        if req.json {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(shown.as_bytes());
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(shown.as_bytes());
            let _ = out.flush();
        }
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            return Err(Failure("apply cancelled; nothing was changed".into()));
        }
    }

    // Under the lock, plan again: the store may have changed while we asked.
    let (plan, outcome) = converge(
        ctx,
        &desired,
        &opts,
        req.lock_timeout,
        revision,
        &|actual, plan| {
            if let Some(s) = &saved {
                s.check(&desired, actual, plan)?;
            }
            if *plan != preview && !req.yes {
                return Err(Failure(
                "the store changed while you were confirming; nothing was changed — run apply again".into(),
            ));
            }
            Ok(())
        },
    )?;

    let stdout = if req.json {
        let mut v = render::plan_json(&plan);
        v["applied"] = json!(true);
        v["issued"] = outcome
            .issued
            .iter()
            .map(|(key, thumb, not_after)| {
                json!({ "key": key, "thumbprint": thumb, "not_after": render::rfc3339(*not_after) })
            })
            .collect();
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    } else if plan.is_empty() {
        render::plan_text(&plan, ctx.style)
    } else {
        let mut s = if req.yes {
            render::plan_text(&plan, ctx.style)
        } else {
            String::new()
        };
        for (key, thumb, _) in &outcome.issued {
            s.push_str(&format!(
                "registered {}: {}\n",
                render::Escaped(key),
                render::Escaped(thumb)
            ));
        }
        s.push_str(&format!(
            "Apply complete: {} created, {} updated, {} replaced, {} deleted, {} exported.\n",
            plan.count(plan::Action::Create),
            plan.count(plan::Action::Update),
            plan.count(plan::Action::Replace),
            plan.count(plan::Action::Delete),
            plan.count(plan::Action::Export),
        ));
        s
    };
    if !plan.warnings.is_empty() && req.json {
        stderr.push_str(&format!(
            "{} warning(s), see \"warnings\"\n",
            plan.warnings.len()
        ));
    }
    Ok(Output {
        stdout,
        stderr,
        code: 0,
    })
}

fn renew_of(desired: Option<&Declared>, key: &str) -> Option<RenewBefore> {
    let d = desired?;
    match &d.clients.get(key)?.source {
        ClientSpec::Generate(g) => Some(g.renew_before),
        ClientSpec::Upload(_) => Some(d.renew_before),
    }
}

/// The Expires cell: date and days left, then EXPIRED, `[retiring DATE]` for an old
/// certificate kept through its rotation overlap (already replaced, so never renew due), or
/// `[renew due]` inside renew_before.
fn expires_cell(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: Option<RenewBefore>,
    retiring_after: Option<OffsetDateTime>,
) -> String {
    let days = (not_after - now).whole_days();
    let mut s = format!("{} ({} days left)", not_after.date(), days);
    if not_after <= now {
        s = format!("{} (EXPIRED)", not_after.date());
    } else if let Some(r) = retiring_after {
        s.push_str(&format!(" [retiring {}]", r.date()));
    } else if let Some(r) = renew {
        if not_after - now < r.window(not_after - not_before) {
            s.push_str(" [renew due]");
        }
    }
    s
}

pub fn status(ctx: &Context, json_out: bool) -> Result<Output> {
    // The store path comes from certs.toml unless --store names it. An invalid certs.toml
    // (a watch daemon refusing a bad commit) is when the store matters most: it is shown
    // anyway, with a warning, as long as the store can be found.
    let (desired, config_error) = match ctx.desired() {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    let root = match (&ctx.store_override, &desired) {
        (Some(s), _) => s.clone(),
        (None, Some(d)) => d.store.path.clone(),
        (None, None) => ctx.fallback_store(),
    };
    let store = Store::new(&root);
    let mut warnings = Vec::new();
    let actual = match config_error {
        None => store.load(None)?,
        Some(e) => {
            let actual = store.load(None).map_err(|se| {
                Failure(format!(
                    "{e}\n(the store {} cannot be shown either: {se})",
                    root.display()
                ))
            })?;
            if !actual.exists {
                return Err(e);
            }
            let first = e.0.lines().next().unwrap_or_default().to_string();
            warnings.push(format!(
                "{} is invalid ({first}); this is the store as last applied, without renewal marks",
                ctx.config.display()
            ));
            actual
        }
    };
    let stderr: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    let reg = &actual.registry;
    if json_out {
        let server: Vec<Value> = reg
            .server
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "subject": format!("CN={}", s.name),
                    "thumbprint": s.thumbprint,
                    "not_before": render::rfc3339(s.not_before),
                    "not_after": render::rfc3339(s.not_after),
                    "source": s.source.as_str(),
                })
            })
            .collect();
        let certificates: Vec<Value> = reg
            .certificates
            .iter()
            .map(|c| {
                json!({
                    "key": c.key,
                    "name": c.name,
                    "thumbprint": c.thumbprint,
                    "public_key_pinning_hash": c.public_key_pinning_hash,
                    "clearance": c.clearance,
                    "permissions": c.permissions,
                    "not_before": render::rfc3339(c.not_before),
                    "not_after": render::rfc3339(c.not_after),
                    "source": c.source.as_str(),
                    "collection_primary": c.collection_primary,
                    "retiring_after": c.retire_after.map(render::rfc3339),
                })
            })
            .collect();
        let v = json!({
            "server": server,
            "certificates": certificates,
            "applied_revision": reg.applied_revision,
            "warnings": warnings,
        });
        return Ok(Output {
            stdout: format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
            stderr,
            code: 0,
        });
    }

    let mut out = String::new();
    if !actual.exists {
        out.push_str(&format!(
            "The store {} is empty: run `ravencert apply`.\n",
            render::Escaped(&root.display().to_string())
        ));
        return Ok(Output::ok(out));
    }
    let server_renew = desired
        .as_ref()
        .and_then(|d| match d.server.as_ref().map(|s| &s.source) {
            Some(config::ServerSpec::Generate { renew_before, .. }) => Some(*renew_before),
            _ => None,
        });
    out.push_str("Server certificate\n");
    let rows: Vec<Vec<String>> = reg
        .server
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.thumbprint.clone(),
                "ClusterNode".into(),
                expires_cell(ctx.now, s.not_before, s.not_after, server_renew, None),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("  (none registered)\n");
    } else {
        out.push_str(&render::table(
            &["Name", "Thumbprint", "Clearance", "Expires"],
            &rows,
        ));
    }
    out.push_str("\nClient certificates\n");
    let rows: Vec<Vec<String>> = reg
        .certificates
        .iter()
        .map(|c| {
            let mut name = c.name.clone();
            if c.retire_after.is_some() {
                name.push_str(" (old)");
            }
            let databases = if c.clearance == crate::model::Clearance::ValidUser {
                if c.permissions.is_empty() {
                    "(none)".to_string()
                } else {
                    c.permissions
                        .iter()
                        .map(|(db, a)| format!("{db}: {a}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            } else {
                "All".to_string()
            };
            let clearance = match c.clearance {
                crate::model::Clearance::ValidUser => "User".to_string(),
                other => other.to_string(),
            };
            vec![
                name,
                c.thumbprint.clone(),
                clearance,
                expires_cell(
                    ctx.now,
                    c.not_before,
                    c.not_after,
                    renew_of(desired.as_ref(), &c.key),
                    c.retire_after,
                ),
                databases,
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("  (none registered)\n");
    } else {
        out.push_str(&render::table(
            &["Name", "Thumbprint", "Clearance", "Expires", "Databases"],
            &rows,
        ));
    }
    if let Some(r) = &reg.applied_revision {
        out.push_str(&format!("\nApplied revision: {}\n", render::Escaped(r)));
    }
    Ok(Output {
        stdout: out,
        stderr,
        code: 0,
    })
}

pub fn export(ctx: &Context, out: Option<PathBuf>) -> Result<Output> {
    let desired = ctx.desired()?;
    let path = out
        .or_else(|| export_path(&desired).map(Path::to_path_buf))
        .ok_or_else(|| {
            Failure("no export path: set [server].export in certs.toml or pass --out PATH".into())
        })?;
    check_export_target(&desired, &path).map_err(Failure)?;
    let store = Store::new(&desired.store.path);
    let actual = store.load(None)?;
    apply::write_export_to(&store, &actual.registry, &path).map_err(|e| Failure(e.to_string()))?;
    Ok(Output::ok(format!(
        "Exported {} server certificate{} to {}\n",
        actual.registry.server.len(),
        if actual.registry.server.len() == 1 {
            ""
        } else {
            "s"
        },
        path.display()
    )))
}

// ---------------------------------------------------------------------------------------------
// Saved plans: what was reviewed is what is applied, or nothing is.

/// What a saved plan was computed from, so that `apply PLANFILE` can refuse a stale one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SavedOptions {
    pub replace: Vec<String>,
    pub allow_delete_all: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub kind: String,
    pub created: String,
    pub config: PathBuf,
    pub store: PathBuf,
    /// sha256 of what the planner saw of the store (registry, bundles, export).
    pub store_fingerprint: String,
    /// sha256 of certs.toml and the certificate files it references (never of secrets).
    pub config_fingerprint: String,
    pub options: SavedOptions,
    pub plan: Value,
}

const SAVED_KIND: &str = "ravencert saved plan";

fn store_fingerprint(actual: &Actual) -> String {
    let mut text = actual.registry.to_text();
    text.push_str("\n# bundles\n");
    for k in &actual.bundles_ok {
        text.push_str(k);
        text.push('\n');
    }
    text.push_str("# export\n");
    for t in actual.export_thumbprints.iter().flatten() {
        text.push_str(t);
        text.push('\n');
    }
    format!("sha256:{}", crate::pki::sha256_hex(text.as_bytes()))
}

fn config_fingerprint(desired: &Desired) -> Result<String> {
    let mut bytes = std::fs::read(&desired.config_path).map_err(|e| {
        Failure(format!(
            "cannot read {}: {e}",
            desired.config_path.display()
        ))
    })?;
    // Certificate files only: password files are secrets and are not hashed.
    for f in desired.certificate_files() {
        bytes.extend_from_slice(f.to_string_lossy().as_bytes());
        bytes.extend_from_slice(&std::fs::read(&f).unwrap_or_default());
    }
    Ok(format!("sha256:{}", crate::pki::sha256_hex(&bytes)))
}

impl SavedPlan {
    fn new(
        ctx: &Context,
        desired: &Desired,
        actual: &Actual,
        plan: &Plan,
        replace: &[String],
        allow_delete_all: bool,
    ) -> Result<SavedPlan> {
        Ok(SavedPlan {
            format_version: 1,
            kind: SAVED_KIND.into(),
            created: render::rfc3339(ctx.now),
            config: ctx.config.clone(),
            store: desired.store.path.clone(),
            store_fingerprint: store_fingerprint(actual),
            config_fingerprint: config_fingerprint(desired)?,
            options: SavedOptions {
                replace: replace.to_vec(),
                allow_delete_all,
            },
            plan: render::plan_json(plan),
        })
    }

    fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(path, format!("{text}\n")).map_err(|e| {
            Failure(format!(
                "cannot write the saved plan {}: {e}",
                path.display()
            ))
        })
    }

    fn read(path: &Path) -> Result<SavedPlan> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure(format!(
                "cannot read the saved plan {}: {e}",
                path.display()
            ))
        })?;
        let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
            Failure(format!(
                "{} is not a saved plan ({e}); make one with `ravencert plan --out FILE`",
                path.display()
            ))
        })?;
        if saved.kind != SAVED_KIND || saved.format_version != 1 {
            return Err(Failure(format!(
                "{} is not a saved plan this ravencert reads (format_version 1)",
                path.display()
            )));
        }
        Ok(saved)
    }

    /// Refuses the saved plan unless the store, the config and the plan itself are unchanged.
    fn check(&self, desired: &Desired, actual: &Actual, plan: &Plan) -> Result<()> {
        if store_fingerprint(actual) != self.store_fingerprint {
            return Err(Failure(
                "Saved plan is stale: the store changed after the plan was made. Run plan again."
                    .into(),
            ));
        }
        if config_fingerprint(desired)? != self.config_fingerprint {
            return Err(Failure(
                "Saved plan is stale: certs.toml or a file it references changed after the plan was made. Run plan again.".into(),
            ));
        }
        if render::plan_json(plan) != self.plan {
            return Err(Failure(
                "Saved plan is stale: the plan would now differ (time has passed since it was made, e.g. a certificate entered its renewal window). Run plan again.".into(),
            ));
        }
        Ok(())
    }
}
