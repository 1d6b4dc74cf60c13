//! Before/after snapshots of a folder: every path with its mode and bytes, so that a test can
//! prove a refused command changed nothing, and name what it changed when it did.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every path under a folder (itself included) with its mode and, for files, its bytes.
pub type Snapshot = BTreeMap<PathBuf, (u32, Vec<u8>)>;

/// The snapshot of `root` (empty when it does not exist); links are recorded, not followed.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let bytes = if m.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.insert(e.path().to_path_buf(), (m.permissions().mode(), bytes));
    }
    out
}

/// The paths whose mode or bytes differ between two snapshots, or that only one has.
pub fn changed_paths(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let paths: BTreeSet<_> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.display().to_string())
        .collect()
}

/// Fails with the changed paths when two snapshots differ.
#[track_caller]
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    assert_eq!(
        changed_paths(before, after),
        Vec::<String>::new(),
        "{what} changed"
    );
}
