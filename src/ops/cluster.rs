//! The cluster target in the shell (docs/contract.md §7): connect as `[cluster]` says, read the
//! listing once, plan with [`plan::cluster`], carry the plan out request by request, and remember
//! what was set so that a later change in the Studio is told apart from a change of certs.toml.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::error::{Error, Result};
use crate::config::{CaPin, ClusterAdmin, ClusterSettings, Desired};
use crate::model::{EntryThumbprint, Thumbprint};
use crate::plan::PlanOptions;
use crate::plan::{
    plan_cluster, ClusterAction, ClusterChange, ClusterListing, ClusterOptions, ClusterPlan,
    ClusterView, Keep, RegistrationFields, ServerVersion,
};
use crate::ravendb::{BodyLog, Client, ClientOptions, ClusterError, Identity, Listing, Pin};
use crate::registry::{CertEntry, Registry};
use crate::store::Store;

mod reading;
mod state;
mod usage;

pub(crate) use reading::{measured, read, wants_usage, Reading};
use state::State;

/// Why the cluster cannot be contacted as `[cluster]` says, before any request.
#[derive(Debug, thiserror::Error)]
pub enum ClusterSetupError {
    /// `admin = KEY` names a client the store holds no certificate of.
    #[error("[cluster] admin = {key:?}: the store holds no certificate of clients.{key} yet; run `ravencert apply --offline` once to issue it, then register it in the cluster (e.g. as Security.WellKnownCertificates.Admin, see `ravencert settings`)")]
    AdminNotIssued {
        /// The client key.
        key: String,
    },
    /// The admin client's private key is not in the store.
    #[error("[cluster] admin = {key:?}: the private key of certificate {thumbprint} is not in the store (a store from before keys/ was kept); re-issue it with `ravencert apply --replace {key}`")]
    AdminKeyMissing {
        /// The client key.
        key: String,
        /// Its certificate.
        thumbprint: String,
    },
    /// `admin_certificate` cannot be read or opened.
    #[error("[cluster] admin_certificate {}: {detail}", .path.display())]
    AdminCertificate {
        /// The .pfx.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
    /// `ca = "store"` and the store holds no server certificate to pin.
    #[error("[cluster] ca = \"store\": the store holds no server certificate to pin the cluster's TLS certificate to; declare [server] and apply, or set ca to a PEM file or \"system\"")]
    NoServerToPin,
    /// `ca = PATH` cannot be read.
    #[error("[cluster] ca {}: {detail}", .path.display())]
    CaFile {
        /// The PEM file.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
    /// The store's cluster state cannot be read, or fails its seal (edited, unsealed, its key
    /// gone): refused before any request, since it decides what apply unregisters uncounted
    /// and which server certificates are pinned.
    #[error("the store's cluster state (.cluster-state.json) {0}; nothing was changed. Delete the file to start afresh: ravencert then treats the registrations it made before as foreign (kept, with a warning, unless [cluster] prune = true) and accepts from the nodes only the store's current server certificate(s)")]
    State(String),
    /// `RAVENCERT_REQUEST_LOG` cannot be opened (a link, not a regular file, no permission).
    #[error("RAVENCERT_REQUEST_LOG={}: {detail}; nothing was sent to the cluster — fix it, or unset RAVENCERT_REQUEST_LOG to run without the request log", .path.display())]
    RequestLog {
        /// The log file.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A cluster phase that stopped at a failed request: what was done, what failed, what was not.
#[derive(Debug, thiserror::Error)]
#[error("{}", cluster_failed_message(self))]
pub struct ClusterApplyError {
    /// The node the phase talked to.
    pub url: String,
    /// Whether the store phase ran before (its changes stay committed).
    pub store_applied: bool,
    /// The requests that succeeded, as `register 'name' THUMBPRINT`.
    pub done: Vec<String>,
    /// The request that failed.
    pub failed: String,
    /// Why it failed.
    pub source: ClusterError,
    /// The requests not sent.
    pub not_done: Vec<String>,
}

fn cluster_failed_message(e: &ClusterApplyError) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join("; ")
        }
    };
    format!(
        "the cluster phase stopped at a failed request: {} failed: {}\n  {}; on the cluster {}:\n  done: {}\n  not done: {}\n  Every request is safe to repeat: run apply again once the cluster answers, and it does only what remains.",
        e.failed,
        e.source,
        if e.store_applied {
            "the store is applied and stays committed"
        } else {
            "the store had nothing to change"
        },
        e.url,
        list(&e.done),
        list(&e.not_done)
    )
}

/// One cluster, connected (lazily: no request until asked).
pub(crate) struct Target {
    client: Client,
    settings: ClusterSettings,
    admin_thumbprint: Option<Thumbprint>,
    /// The store's current server certificate(s) (for the note on a node still serving an
    /// older one).
    store_servers: Vec<EntryThumbprint>,
    /// What the last read noticed, for the plan's warnings.
    notes: std::cell::RefCell<Vec<String>>,
    /// `RAVENCERT_REQUEST_LOG`, opened before any request.
    request_log: Option<std::fs::File>,
}

/// What a cluster apply did.
#[derive(Debug, Default)]
pub(crate) struct ClusterOutcome {
    /// The requests sent, in order, as a person reads them.
    pub(crate) done: Vec<String>,
}

/// Where every request to the cluster is recorded (method, path, body), when
/// `RAVENCERT_REQUEST_LOG` names a file: an audit of what was sent, and how the tests check that
/// only public certificates ever leave the store. Bodies hold no secret; the file is appended.
fn body_log_file() -> Option<std::path::PathBuf> {
    std::env::var_os("RAVENCERT_REQUEST_LOG").map(Into::into)
}

/// Opens the request log before any request: created 0600, never through a link. A log that
/// cannot be opened (a link planted where it goes, a folder, no permission) is an error, not a
/// warning: whoever set the variable asked for an audit of every request, so none is sent
/// that it would not record.
fn open_request_log() -> Result<Option<std::fs::File>> {
    let Some(path) = body_log_file() else {
        return Ok(None);
    };
    crate::fsutil::open_append_private(&path)
        .map(Some)
        .map_err(|e| {
            let detail = if e.is_link() {
                "is a symbolic link; ravencert does not write its request log through a link (one planted where the log goes would send it elsewhere) — name the file itself".to_string()
            } else {
                e.to_string()
            };
            ClusterSetupError::RequestLog { path, detail }.into()
        })
}

/// With the `test-hooks` feature (the tests' builds): with `RAVENCERT_TEST_CLUSTER_BARRIER=DIR`,
/// after the n-th cluster request of an apply, writes `DIR/n` and waits (up to a minute) until the
/// test removes it, so that a test can stop the server between two requests. Other builds never
/// read it.
fn test_barrier(_n: usize) {
    #[cfg(feature = "test-hooks")]
    if let Some(dir) = std::env::var_os("RAVENCERT_TEST_CLUSTER_BARRIER") {
        let flag = std::path::Path::new(&dir).join(_n.to_string());
        if std::fs::write(&flag, b"").is_ok() {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while flag.exists() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

impl Target {
    /// A client for `settings`, authenticating and pinning from `registry` (the store as it is
    /// now). Sends nothing.
    pub(crate) fn connect(
        settings: &ClusterSettings,
        store: &Store,
        registry: &Registry,
    ) -> Result<Target> {
        // The state first: a state that fails its seal refuses the whole run, before the
        // store phase and before any request.
        let state = State::load(store, settings)?;
        let (identity, admin_thumbprint) = identity(settings, store, registry)?;
        let pin = pin(settings, registry, state.servers_for(settings))?;
        let request_log = open_request_log()?;
        let options = ClientOptions {
            urls: settings.urls.clone(),
            identity,
            pin,
            timeout: settings.timeout.as_std(),
            resolve: Vec::new(),
        };
        let mut client = Client::new(&options).map_err(Error::Cluster)?;
        if request_log.is_some() {
            client = client.with_body_log(BodyLog::default());
        }
        Ok(Target {
            client,
            settings: settings.clone(),
            admin_thumbprint,
            store_servers: registry
                .server
                .iter()
                .map(|s| s.thumbprint.clone())
                .collect(),
            notes: Default::default(),
            request_log,
        })
    }

    /// The node asked first.
    pub(crate) fn url(&self) -> String {
        self.client.url().to_string()
    }

    /// The cluster's registrations, read with one request (a second only when the server's
    /// answer carries no version header).
    pub(crate) fn read(&self) -> Result<ClusterListing> {
        let mut listing = self.client.list().map_err(Error::Cluster)?;
        let version = match listing.server_version.take() {
            Some(v) => v,
            None => self.client.version().map_err(Error::Cluster)?,
        };
        if let Some(loaded) = &listing.loaded_server_cert {
            // The listed value is upper-case hex, as the decoder normalizes it.
            let stale = matches!(self.settings.ca, CaPin::Store)
                && !self.store_servers.iter().any(|t| t.as_str() == loaded);
            if stale {
                let store: Vec<&str> = self.store_servers.iter().map(|t| t.as_str()).collect();
                self.notes.borrow_mut().push(format!(
                    "cluster: node {} still serves server certificate {loaded}, not the store's {}; restart it with the current certificate ([server] install) — until then ravencert accepts the previous one",
                    self.url(),
                    store.join(" or ")
                ));
            }
        }
        // (A registration disabled on the cluster is the planner's warning: it knows which
        // ravencert disabled.)
        self.notes
            .borrow_mut()
            .extend(listing.left_out.iter().cloned());
        Ok(listing_for_plan(listing, version))
    }

    /// `[cluster] keep`, as the planner reads it: notes by thumbprint.
    pub(crate) fn keep(&self) -> Keep {
        self.settings
            .keep
            .iter()
            .map(|k| (k.thumbprint.clone(), k.note.clone()))
            .collect()
    }

    /// The certificate ravencert authenticates with, when known.
    pub(crate) fn admin_thumbprint(&self) -> Option<&Thumbprint> {
        self.admin_thumbprint.as_ref()
    }

    /// The cluster plan for `projected` (the store's registry after its plan) against
    /// `listing`, with what ravencert last set on this cluster.
    pub(crate) fn plan(
        &self,
        store: &Store,
        projected: &Registry,
        listing: &ClusterListing,
        guards: &Guards,
    ) -> Result<ClusterPlan> {
        let state = State::load(store, &self.settings)?;
        let opts = ClusterOptions {
            url: self.url(),
            prune: self.settings.prune,
            admin_thumbprint: self.admin_thumbprint.clone(),
            admin_key: match &self.settings.admin {
                ClusterAdmin::Client(key) => Some(key.clone()),
                ClusterAdmin::Certificate(_) => None,
            },
            last_set: state.for_cluster(&self.settings).clone(),
            max_deletions: guards.max_deletions,
            store_deletions: guards.store_deletions,
            store_removed: guards.store_removed.clone(),
            ended: guards.ended.clone(),
            allow_delete_all: guards.allow_delete_all,
            keep: self.keep(),
        };
        let mut plan = plan_cluster(projected, listing, &opts)?;
        for note in self.notes.borrow().iter().rev() {
            plan.warnings.insert(0, note.clone());
        }
        for skipped in self.client.take_skipped() {
            plan.warnings
                .insert(0, format!("cluster: node {skipped}; {} answered", plan.url));
        }
        Ok(plan)
    }

    /// Carries out `plan` request by request (registers, edits, then unregisters), with the
    /// public certificates from `store`; stops at the first failed request. Records what was
    /// set in the store's cluster state, also when it stops.
    pub(crate) fn apply(
        &self,
        store: &Store,
        registry: &Registry,
        listing: &ClusterListing,
        plan: &ClusterPlan,
        store_applied: bool,
    ) -> Result<ClusterOutcome> {
        let mut state = State::load(store, &self.settings)?;
        let mut outcome = ClusterOutcome::default();
        let result = self.send_all(store, registry, listing, plan, &mut state, &mut outcome);
        state.settle(&self.settings, registry, listing, plan);
        let saved = state.write(store);
        match result {
            Ok(()) => saved.map(|()| outcome),
            Err((i, source)) => Err(Error::ClusterApply(Box::new(ClusterApplyError {
                url: self.url(),
                store_applied,
                done: outcome.done,
                failed: describe(&plan.changes[i]),
                source,
                not_done: plan.changes[i + 1..].iter().map(describe).collect(),
            }))),
        }
    }

    fn send_all(
        &self,
        store: &Store,
        registry: &Registry,
        listing: &ClusterListing,
        plan: &ClusterPlan,
        state: &mut State,
        outcome: &mut ClusterOutcome,
    ) -> std::result::Result<(), (usize, ClusterError)> {
        let set = state.for_cluster_mut(&self.settings);
        // Looked up once per change: a scan each was quadratic in a registration of thousands.
        let entries: BTreeMap<&str, &CertEntry> = registry
            .certificates
            .iter()
            .map(|e| (e.thumbprint.as_str(), e))
            .collect();
        // Reversed, so that of a thumbprint listed twice the first entry counts, as a scan found.
        let listed: BTreeMap<&str, Option<bool>> = listing
            .registrations
            .iter()
            .rev()
            .map(|r| (r.thumbprint.as_str(), r.disabled))
            .collect();
        for (i, change) in plan.changes.iter().enumerate() {
            let t = change.thumbprint.as_ref().map(Thumbprint::as_str);
            let entry = t.and_then(|t| entries.get(t)).copied();
            let listed_disabled = t.and_then(|t| listed.get(t)).copied().flatten();
            self.send(store, entry, listed_disabled, change)
                .map_err(|e| (i, e))?;
            if let Some(t) = &change.thumbprint {
                match change.action {
                    // Unregistered while disabled: remembered, so enabling registers it again.
                    ClusterAction::Unregister if change.disabled != Some(true) => {
                        set.remove(t);
                    }
                    _ => {
                        if let Some(e) = entry {
                            set.insert(t.clone(), RegistrationFields::from(e));
                        }
                    }
                }
            }
            outcome.done.push(describe(change));
            test_barrier(outcome.done.len());
        }
        Ok(())
    }

    /// One request of the plan; `entry` is the registry's entry of its certificate,
    /// `listed_disabled` what the listing says of its `Disabled`.
    fn send(
        &self,
        store: &Store,
        entry: Option<&CertEntry>,
        listed_disabled: Option<bool>,
        change: &ClusterChange,
    ) -> std::result::Result<(), ClusterError> {
        let t = change.thumbprint.as_ref().map_or("", Thumbprint::as_str);
        match (change.action, entry) {
            (ClusterAction::Unregister, _) => self.client.unregister(t),
            (ClusterAction::Register, Some(e)) => {
                let der = store.read_cert_der(t).map_err(|e| ClusterError::NotSent {
                    detail: format!(
                        "the certificate to register cannot be read from the store: {e}"
                    ),
                })?;
                self.client
                    .register(&e.name, &der, e.clearance, &e.permissions)
            }
            (ClusterAction::Edit, Some(e)) => {
                // As the plan says (disabled = true); else as listed, so a registration
                // disabled in the Studio stays disabled.
                let disabled = change.disabled.or(listed_disabled);
                self.client
                    .edit(t, &e.name, e.clearance, &e.permissions, disabled)
            }
            (_, None) => Err(ClusterError::NotSent {
                detail: format!("certificate {t} is not in the store's registry"),
            }),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.flush_body_log();
    }
}

impl Target {
    /// Appends this client's request log to `RAVENCERT_REQUEST_LOG` (opened at connect). The
    /// requests are sent by now: a write that fails is a warning, on stderr or in watch's log.
    fn flush_body_log(&mut self) {
        let Some(file) = self.request_log.as_mut() else {
            return;
        };
        let Some(log) = self.client.body_log() else {
            return;
        };
        let Ok(sent) = log.lock() else {
            return;
        };
        let mut text = String::new();
        for r in sent.iter() {
            text.push_str(&format!(
                "{} {} {}\n",
                r.method,
                r.path,
                String::from_utf8_lossy(&r.body)
            ));
        }
        use std::io::Write as _;
        if let Err(e) = file.write_all(text.as_bytes()) {
            warn_visibly(&format!(
                "the request log (RAVENCERT_REQUEST_LOG) is incomplete: {} requests not written: {e}",
                sent.len()
            ));
        }
    }
}

/// A warning the person running ravencert sees: `watch`'s log when it has one (tracing),
/// stderr otherwise (the other commands set no log). A warning stderr cannot take has nowhere
/// else to go: it is dropped, never a panic (as `eprintln!` would).
fn warn_visibly(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "warning: {}",
            crate::render::Escaped(message)
        );
    }
}

/// The store plan's deletions and the guards' settings, for the cluster's guard.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guards {
    pub(crate) max_deletions: u32,
    pub(crate) store_deletions: usize,
    /// The thumbprints this run's store plan deletes or re-issues.
    pub(crate) store_removed: BTreeSet<Thumbprint>,
    /// The thumbprints it deletes because access ended, with that reason.
    pub(crate) ended: BTreeMap<Thumbprint, String>,
    pub(crate) allow_delete_all: bool,
}

impl Guards {
    /// The guards for the cluster plan that follows the store plan `plan` of this run.
    pub(crate) fn new(desired: &Desired, plan: &crate::plan::Plan, opts: &PlanOptions) -> Guards {
        use crate::plan::Action;
        Guards {
            max_deletions: desired.declared.store.max_deletions,
            store_deletions: plan.count(Action::Delete),
            store_removed: plan
                .changes
                .iter()
                .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
                .flat_map(|c| c.thumbprints.iter().filter_map(|t| t.known().cloned()))
                .collect(),
            ended: plan
                .changes
                .iter()
                .filter(|c| {
                    c.action == Action::Delete && crate::plan::until::is_ended_reason(&c.reason)
                })
                .flat_map(|c| {
                    c.thumbprints
                        .iter()
                        .filter_map(|t| t.known().cloned())
                        .map(|t| (t, c.reason.clone()))
                })
                .collect(),
            allow_delete_all: opts.allow_delete_all,
        }
    }
}

/// `register orders-app ('Orders App') THUMBPRINT` (the registration named as the plan names
/// it), for the apply report, its failure and watch's log.
pub(crate) fn describe(c: &ClusterChange) -> String {
    format!(
        "{} {} {}",
        c.action.as_str(),
        crate::render::registration(c),
        c.thumbprint.as_ref().map_or("(new)", Thumbprint::as_str)
    )
}

/// The client certificate ravencert authenticates with, and its thumbprint.
fn identity(
    settings: &ClusterSettings,
    store: &Store,
    registry: &Registry,
) -> Result<(Identity, Option<Thumbprint>)> {
    match &settings.admin {
        ClusterAdmin::Client(key) => {
            let t = admin_thumbprint(registry, key)
                .ok_or_else(|| ClusterSetupError::AdminNotIssued { key: key.clone() })?;
            let missing = || ClusterSetupError::AdminKeyMissing {
                key: key.clone(),
                thumbprint: t.to_string(),
            };
            let der = store.read_cert_der(t.as_str())?;
            let cert = crate::pki::der_to_pem(&der)?;
            let key_pem = store
                .read_client_key(t.as_str())
                .ok_or_else(missing)?
                .to_pem()?;
            Ok((Identity::Pem { cert, key: key_pem }, Some(t)))
        }
        ClusterAdmin::Certificate(file) => {
            let fail = |detail: String| ClusterSetupError::AdminCertificate {
                path: file.path.clone(),
                detail,
            };
            let der = crate::inputs::from_disk(&file.path).map_err(fail)?;
            let password = match &file.password {
                Some(r) => r
                    .read()
                    .map_err(|e| fail(e.to_string()))?
                    .expose()
                    .to_string(),
                None => String::new(),
            };
            let thumbprint = crate::pki::pfx_thumbprints(&der, &password)
                .map_err(|e| fail(format!("cannot open it as a .pfx with its password: {e}")))?
                .into_iter()
                .next();
            Ok((Identity::Pfx { der, password }, thumbprint))
        }
    }
}

/// The admin client's certificate in use (its active primary): its thumbprint.
fn admin_thumbprint(registry: &Registry, key: &str) -> Option<Thumbprint> {
    registry.certificates.iter().find_map(|e| {
        (e.key == key && e.retire_after.is_none() && e.collection_primary.is_none())
            .then(|| e.thumbprint.known().cloned())
            .flatten()
    })
}

/// How the server's TLS certificate is verified.
/// With `ca = "store"`: the store's server certificate(s), and the ones nodes were last seen
/// serving (a re-issued server certificate takes effect when a node restarts with it; until
/// then the node serves the previous one, which ravencert itself issued).
fn pin(settings: &ClusterSettings, registry: &Registry, served: &[Thumbprint]) -> Result<Pin> {
    Ok(match &settings.ca {
        CaPin::Store => {
            if registry.server.is_empty() {
                return Err(ClusterSetupError::NoServerToPin.into());
            }
            let mut thumbprints: Vec<Thumbprint> = registry
                .server
                .iter()
                .filter_map(|s| s.thumbprint.known().cloned())
                .collect();
            for t in served {
                if !thumbprints.contains(t) {
                    thumbprints.push(t.clone());
                }
            }
            Pin::Thumbprints(thumbprints)
        }
        CaPin::System => Pin::System,
        CaPin::Pem(path) => {
            let pem =
                crate::inputs::from_disk(path).map_err(|detail| ClusterSetupError::CaFile {
                    path: path.clone(),
                    detail,
                })?;
            Pin::CaPem(pem)
        }
    })
}

/// The client's listing as the planner reads it, with the server's `version`.
fn listing_for_plan(listing: Listing, version: ServerVersion) -> ClusterListing {
    ClusterListing {
        server_thumbprints: listing.server_thumbprints(),
        well_known_admins: listing.well_known_admin_thumbprints(),
        can_disable: crate::plan::can_disable(&listing.registrations, &version),
        registrations: listing.registrations,
        version,
        last_used: BTreeMap::new(),
    }
}

/// The cluster part of a plan, and the connection it was read over (to apply it with).
pub(crate) struct Preview {
    /// What the plan shows.
    pub(crate) view: ClusterView,
    /// The connection and the listing read, when the cluster was contacted.
    pub(crate) session: Option<(Target, ClusterListing)>,
    /// `--offline`: the apply leaves the cluster out too.
    offline: bool,
}

impl Preview {
    fn skipped(why: impl Into<String>) -> Preview {
        Preview {
            view: ClusterView::Skipped(why.into()),
            session: None,
            offline: false,
        }
    }
}

/// What a plan against the store needs to plan the cluster too.
pub(crate) struct StorePlanned<'a> {
    pub(crate) desired: &'a Desired,
    pub(crate) store: &'a Store,
    pub(crate) actual: &'a crate::registry::Actual,
    pub(crate) plan: &'a crate::plan::Plan,
    pub(crate) now: OffsetDateTime,
    pub(crate) opts: &'a PlanOptions,
}

/// Plans the cluster after the store plan `s`, with what `reading` found. When the admin
/// certificate or the server certificate to pin is issued by this very plan, the cluster can
/// only be planned after the store is applied: skipped, and said so.
pub(crate) fn preview(s: &StorePlanned<'_>, reading: Reading) -> Result<Preview> {
    let (target, listing) = match reading {
        Reading::Absent => {
            return Ok(Preview {
                view: ClusterView::Absent,
                session: None,
                offline: false,
            })
        }
        Reading::Offline => {
            return Ok(Preview {
                offline: true,
                ..Preview::skipped("--offline")
            })
        }
        Reading::NotYet(e) if !s.plan.is_empty() => {
            return Ok(Preview::skipped(format!(
                "{}; apply reconciles the cluster right after the store",
                first_clause(&e.to_string())
            )))
        }
        Reading::NotYet(e) => return Err(e.into()),
        Reading::Listed(target, listing) => (target, listing),
    };
    let projected = crate::plan::project(&s.actual.registry, s.plan, s.desired, s.now);
    let guards = Guards::new(s.desired, s.plan, s.opts);
    let plan = target
        .plan(s.store, &projected, &listing, &guards)
        .map_err(|e| match e {
            Error::Plan(p) => Error::from_plan(s.desired, p),
            e => e,
        })?;
    Ok(Preview {
        view: ClusterView::Planned(plan),
        session: Some((*target, listing)),
        offline: false,
    })
}

/// A setup error's first clause, for the skip line.
fn first_clause(message: &str) -> &str {
    message.split(';').next().unwrap_or(message)
}

/// The cluster phase of an apply, after the store phase: plan against the store as committed
/// (re-reading the cluster when the store changed) and carry it out.
pub(crate) fn apply_after_store(
    s: &StorePlanned<'_>,
    preview: Preview,
    registry: &Registry,
) -> Result<(ClusterView, ClusterOutcome)> {
    let Some(settings) = &s.desired.declared.cluster else {
        return Ok((ClusterView::Absent, ClusterOutcome::default()));
    };
    if preview.offline {
        return Ok((preview.view, ClusterOutcome::default()));
    }
    let (target, listing, plan) = match (preview.session, preview.view) {
        // Nothing changed in the store: the plan shown is the plan to carry out.
        (Some((target, listing)), ClusterView::Planned(plan)) if s.plan.is_empty() => {
            (target, listing, plan)
        }
        (session, _) => {
            let target = match session {
                Some((t, _)) => t,
                None => Target::connect(settings, s.store, registry)?,
            };
            let listing = target.read()?;
            let guards = Guards::new(s.desired, s.plan, s.opts);
            let plan = target.plan(s.store, registry, &listing, &guards)?;
            (target, listing, plan)
        }
    };
    let outcome = target.apply(s.store, registry, &listing, &plan, !s.plan.is_empty())?;
    Ok((ClusterView::Planned(plan), outcome))
}

/// Whether two cluster views make the same changes (action, client, name, and the thumbprint
/// when it is known): what a person confirmed is what is carried out.
pub(crate) fn same_changes(a: &ClusterView, b: &ClusterView) -> bool {
    let changes = |v: &ClusterView| {
        let all = v.plan().map_or(&[][..], |p| p.changes.as_slice());
        let key = |c: &ClusterChange| {
            (
                c.action,
                c.key.clone(),
                c.name.clone(),
                c.thumbprint.clone(),
            )
        };
        all.iter().map(key).collect::<Vec<_>>()
    };
    changes(a) == changes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Clearance, Period};
    use crate::registry::{CertEntry, ServerEntry};

    #[test]
    fn store_pin_holds_keyless_node_certificates_too() {
        let settings = ClusterSettings {
            urls: vec!["https://a.example.com".into()],
            admin: ClusterAdmin::Client("admin".into()),
            ca: CaPin::Store,
            prune: false,
            timeout: Period::seconds(30),
            keep: Vec::new(),
        };
        let mut registry = Registry::new();
        for (t, has_key) in [("A", true), ("B", false)] {
            registry.server.push(ServerEntry {
                name: "node".into(),
                thumbprint: t.repeat(40).into(),
                public_key_pinning_hash: "x".into(),
                dns: vec![],
                not_before: OffsetDateTime::UNIX_EPOCH,
                not_after: OffsetDateTime::UNIX_EPOCH,
                source: crate::model::Origin::Uploaded,
                key_type: None,
                revision: None,
                has_key,
            });
        }
        let pinned = pin(&settings, &registry, &[]).unwrap();
        assert_eq!(
            pinned,
            Pin::Thumbprints(
                ["A", "B"]
                    .map(|t| Thumbprint::parse(&t.repeat(40)).unwrap())
                    .into()
            )
        );
    }

    /// A listing fixture, decoded by the client and read as the planner reads it.
    fn fixture(version: &str, product: &str) -> ClusterListing {
        let path = format!(
            "{}/tests/fixtures/ravendb-listings/ravendb-{version}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        let listing = crate::ravendb::decode_listing_bytes(&body).unwrap();
        assert_eq!(listing.left_out, Vec::<String>::new());
        let (major, minor) = product.split_once('.').unwrap();
        let version = ServerVersion {
            major: major.parse().unwrap(),
            minor: minor.parse().unwrap(),
            full: format!("{product}.0"),
        };
        listing_for_plan(listing, version)
    }

    fn declared(key: &str, name: &str, thumbprint: &str, clearance: Clearance) -> CertEntry {
        CertEntry {
            name: name.into(),
            clearance,
            source: crate::model::Origin::Uploaded,
            ..CertEntry::fixture(key, thumbprint)
        }
    }

    const APP: &str = "CFDBD6120652B8AD91A08F18BBB971A159271F52";
    const BATCH: &str = "812383772D393B153B85CF1C470FF72CCEA387AD";
    const LEGACY: &str = "FF507825EE802E6BAF9A60F785DDA74AA38EE019";

    fn plan_72(product: &str) -> std::result::Result<ClusterPlan, crate::plan::PlanError> {
        let listing = fixture("7.2", product);
        let mut registry = Registry::new();
        let mut app = declared("orders-app", "Orders App", APP, Clearance::ValidUser);
        app.permissions
            .insert("Orders".into(), crate::model::Access::Admin);
        registry.certificates = vec![
            app,
            declared("batch", "Batch Jobs", BATCH, Clearance::Operator),
        ];
        let opts = ClusterOptions {
            url: "https://a.example.com".into(),
            prune: true,
            ..ClusterOptions::default()
        };
        crate::plan::plan_cluster(&registry, &listing, &opts)
    }

    /// What a RavenDB 7.2 cluster lists, planned with prune on: the declared clients are
    /// edited (the disabled one too: the edit carries its Disabled back), an ordinary
    /// registration the store does not hold is unregistered, and nothing ravencert does not
    /// manage is touched or counted as a stranger: the SSO user, the well-known issuer, the
    /// server's certificates for serving and for talking to other nodes.
    #[test]
    fn a_72_listing_plans_edits_and_leaves_sso_issuers_and_servers_alone() {
        let plan = plan_72("7.2").unwrap();
        let mut got: Vec<(ClusterAction, String)> = plan
            .changes
            .iter()
            .map(|c| {
                (
                    c.action,
                    c.thumbprint.clone().map(String::from).unwrap_or_default(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (ClusterAction::Edit, BATCH.to_string()),
                (ClusterAction::Edit, APP.to_string()),
                (ClusterAction::Unregister, LEGACY.to_string()),
            ],
            "{:?}",
            plan.changes
        );
        let extra: Vec<&str> = plan.extra.iter().map(|e| e.thumbprint.as_str()).collect();
        assert_eq!(extra, vec![LEGACY]);
        let listing = fixture("7.2", "7.2");
        assert_eq!(
            listing
                .registrations
                .iter()
                .find(|r| r.thumbprint == BATCH)
                .and_then(|r| r.disabled),
            Some(true)
        );
        // Served, and used towards the other nodes (7.1.5 and later): both protected.
        assert_eq!(listing.server_thumbprints.len(), 2, "{listing:?}");
        // The SSO user and the well-known issuer are not registrations to the planner.
        assert_eq!(listing.registrations.len(), 5, "{listing:?}");
    }

    /// A server newer than the last one whose edit handler was checked: the edit is refused,
    /// naming the registration, rather than guessed.
    #[test]
    fn an_edit_on_a_server_newer_than_the_last_checked_is_refused_by_name() {
        let err = plan_72("7.3").unwrap_err().to_string();
        assert!(err.contains(BATCH) || err.contains(APP), "{err}");
        assert!(err.contains("7.3.0") && err.contains("Studio"), "{err}");
    }

    /// The 4.1 and 5.4 shapes read whole, a collection included.
    #[test]
    fn the_41_and_54_listings_read_whole() {
        let l41 = fixture("4.1", "4.1");
        assert_eq!(l41.registrations.len(), 5);
        assert_eq!(
            l41.registrations[4].collection_primary.as_deref(),
            Some(LEGACY)
        );
        assert_eq!(l41.well_known_admins.len(), 1);
        let l54 = fixture("5.4", "5.4");
        assert_eq!(l54.registrations.len(), 3);
        assert!(l54.well_known_admins.is_empty());
        assert!(l54.registrations.iter().all(|r| r.disabled.is_none()));
    }
}
