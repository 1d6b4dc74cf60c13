//! Saved plans (`plan --out FILE`, `apply FILE`): what was reviewed is what is applied, or
//! nothing is. A saved plan holds no secret; it records what it was computed from (hashes of
//! the store and of certs.toml with its certificate files) so that a stale one is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::Desired;
use crate::plan::Plan;
use crate::registry::Actual;
use crate::render::{self, PlanDocument};

/// Why a saved plan cannot be written, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// The file cannot be written.
    #[error("cannot write the saved plan {}: {source}", .path.display())]
    Write {
        /// The saved plan.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plan cannot be encoded as JSON.
    #[error("cannot encode the saved plan {}: {source}", .path.display())]
    Encode {
        /// The saved plan.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file cannot be read.
    #[error("cannot read the saved plan {}: {source}", .path.display())]
    Read {
        /// The saved plan.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON of a saved plan.
    #[error("{} is not a saved plan ({source}); make one with `ravencert plan --out FILE`", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        source: serde_json::Error,
    },
    /// A saved plan of another kind or format version.
    #[error("{} is not a saved plan this ravencert reads (format_version 1)", .0.display())]
    Unsupported(PathBuf),
    /// certs.toml cannot be read to compute its fingerprint.
    #[error("cannot read {}: {source}", .path.display())]
    ReadConfig {
        /// certs.toml.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store is not what the plan was computed from.
    #[error("Saved plan is stale: the store changed after the plan was made. Run plan again.")]
    StoreChanged,
    /// certs.toml or a certificate file it names changed.
    #[error("Saved plan is stale: certs.toml or a file it references changed after the plan was made. Run plan again.")]
    ConfigChanged,
    /// The plan breaks the policy in force: it is never saved, so never applied.
    #[error("{0}")]
    Refused(Box<crate::plan::PlanError>),
    /// The same inputs now plan differently (time moved on).
    #[error("Saved plan is stale: the plan would now differ (time has passed since it was made, e.g. a certificate entered its renewal window). Run plan again.")]
    PlanChanged,
}

type Result<T> = std::result::Result<T, SavedPlanError>;

/// The plan options a saved plan was computed with, applied again with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedOptions {
    /// `--replace KEY`s.
    pub(crate) replace: Vec<String>,
    /// `--allow-delete-all`.
    pub(crate) allow_delete_all: bool,
}

/// A plan saved with `plan --out`, as its JSON file holds it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedPlan {
    /// Always 1.
    format_version: u32,
    /// [`KIND`]: tells a saved plan from other JSON.
    kind: String,
    /// When the plan was made (RFC 3339).
    created: String,
    /// certs.toml's path as given.
    config: PathBuf,
    /// The store's path.
    store: PathBuf,
    /// sha256 of what the planner saw of the store (registry, bundles, export).
    store_fingerprint: String,
    /// sha256 of certs.toml, the certificate files it references (never of secrets) and the
    /// policy in force.
    config_fingerprint: String,
    /// The options the plan was made with.
    pub(crate) options: SavedOptions,
    /// The plan, as `plan --json` shows it.
    plan: PlanDocument,
}

/// The `kind` of every saved plan.
const KIND: &str = "ravencert saved plan";

/// What a saved plan is made from.
pub(crate) struct Source<'a> {
    /// The time of the plan.
    pub(crate) now: OffsetDateTime,
    /// certs.toml's path as given.
    pub(crate) config: &'a Path,
    /// What certs.toml declares.
    pub(crate) desired: &'a Desired,
    /// The store the plan was computed against.
    pub(crate) actual: &'a Actual,
    /// The plan.
    pub(crate) plan: &'a Plan,
}

fn store_fingerprint(actual: &Actual) -> String {
    let mut text = actual.registry.to_text();
    text.push_str("\n# bundles\n");
    for k in &actual.bundles_ok {
        text.push_str(k);
        text.push('\n');
    }
    text.push_str("# export\n");
    for t in actual.export_thumbprints.iter().flatten() {
        text.push_str(t.as_str());
        text.push('\n');
    }
    format!("sha256:{}", crate::pki::sha256_hex(text.as_bytes()))
}

fn config_fingerprint(desired: &Desired) -> Result<String> {
    let mut bytes = std::fs::read(&desired.declared.config_path).map_err(|source| {
        SavedPlanError::ReadConfig {
            path: desired.declared.config_path.clone(),
            source,
        }
    })?;
    // Certificate files only: password files are secrets and are not hashed.
    for f in desired.declared.certificate_files() {
        bytes.extend_from_slice(f.to_string_lossy().as_bytes());
        // A file that cannot be read hashes as empty: the fingerprint then differs from one
        // made while it could, which is what a stale check needs (its reading is planned too).
        bytes.extend_from_slice(&std::fs::read(&f).unwrap_or_default());
    }
    // The policy the plan was checked against: another one makes the plan stale.
    bytes.extend_from_slice(b"\0policy: ");
    if let Some(p) = &desired.policy_in_force {
        bytes.extend_from_slice(p.digest.as_bytes());
    }
    Ok(format!("sha256:{}", crate::pki::sha256_hex(&bytes)))
}

impl SavedPlan {
    /// The saved form of `source.plan`, made with `options`.
    pub(crate) fn new(source: &Source<'_>, options: SavedOptions) -> Result<SavedPlan> {
        if let Some(refused) = source.plan.policy_refusal() {
            return Err(SavedPlanError::Refused(Box::new(refused)));
        }
        Ok(SavedPlan {
            format_version: 1,
            kind: KIND.into(),
            created: render::rfc3339(source.now),
            config: source.config.to_path_buf(),
            store: source.desired.declared.store.path.clone(),
            store_fingerprint: store_fingerprint(source.actual),
            config_fingerprint: config_fingerprint(source.desired)?,
            options,
            plan: render::plan_document(source.plan),
        })
    }

    /// Writes the plan to `path` atomically: a reader sees the old file or the whole new one.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| SavedPlanError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(path, format!("{text}\n").as_bytes()).map_err(|source| SavedPlanError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a saved plan, refusing other JSON and other format versions.
    pub(crate) fn read(path: &Path) -> Result<SavedPlan> {
        let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedPlan =
            serde_json::from_str(&text).map_err(|source| SavedPlanError::Malformed {
                path: path.to_path_buf(),
                source,
            })?;
        if saved.kind != KIND || saved.format_version != 1 {
            return Err(SavedPlanError::Unsupported(path.to_path_buf()));
        }
        Ok(saved)
    }

    /// Refuses the saved plan unless the store, the config and the plan itself are unchanged.
    pub(crate) fn check(&self, desired: &Desired, actual: &Actual, plan: &Plan) -> Result<()> {
        if store_fingerprint(actual) != self.store_fingerprint {
            return Err(SavedPlanError::StoreChanged);
        }
        if config_fingerprint(desired)? != self.config_fingerprint {
            return Err(SavedPlanError::ConfigChanged);
        }
        // The changes, not their flags: an escalation is measured against the cluster when
        // the plan reads it, and a saved plan may be made or applied without it.
        if render::plan_document(plan).unflagged() != self.plan.clone().unflagged() {
            return Err(SavedPlanError::PlanChanged);
        }
        Ok(())
    }
}

/// Temp file in the same folder, write, fsync, rename over `path`, fsync the folder. The temp
/// file is created with mode 0666 less the umask, as a plain write would (a plan holds no
/// secret), and removed if anything fails before the rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, bytes, &crate::fsutil::AtomicWrite::REPLACE)
        .map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedPlan {
        SavedPlan {
            format_version: 1,
            kind: KIND.into(),
            created: "2026-01-01T00:00:00Z".into(),
            config: "certs.toml".into(),
            store: "store".into(),
            store_fingerprint: "sha256:00".into(),
            config_fingerprint: "sha256:11".into(),
            options: SavedOptions {
                replace: vec!["admin".into()],
                allow_delete_all: false,
            },
            plan: render::plan_document(&Plan::default()),
        }
    }

    #[test]
    fn written_atomically_and_read_back_as_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        saved().write(&path).unwrap();
        // Replaced whole, and no temp file left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let back = SavedPlan::read(&path).unwrap();
        assert_eq!(back.plan, render::plan_document(&Plan::default()));
        assert_eq!(back.options, saved().options);
    }

    #[test]
    fn other_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut other = saved();
        other.kind = "something else".into();
        other.write(&path).unwrap();
        assert!(matches!(
            SavedPlan::read(&path),
            Err(SavedPlanError::Unsupported(_))
        ));
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(
            SavedPlan::read(&path),
            Err(SavedPlanError::Malformed { .. })
        ));
    }
}
