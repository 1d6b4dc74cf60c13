//! git: another way to read certs.toml. Reads it at a revision, tells which commit the working
//! tree's certs.toml is (and whether it has uncommitted changes), and follows a remote branch in
//! a cache clone for `watch --git`. Files are read from git objects: a symbolic link (a blob of
//! mode 120000) is refused, never read as the file it names.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Repository, Status};

/// Why certs.toml (or a file it names) cannot be read from git, or the remote followed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A refusal or failure explained in words (a link leaving the repository, a missing file,
    /// uncommitted changes, ...).
    #[error("{0}")]
    Message(String),
    /// libgit2's own error.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

type Result<T> = std::result::Result<T, GitError>;

fn msg(text: impl Into<String>) -> GitError {
    GitError::Message(text.into())
}

/// The repository holding `file` and the file's path inside it. Only the folder is resolved:
/// the file itself may be a symbolic link, which must not decide the repository or the path.
fn locate(file: &Path) -> Result<(Repository, PathBuf)> {
    let parent = crate::fsutil::folder_of(file);
    let name = file
        .file_name()
        .ok_or_else(|| msg(format!("{} does not name a file", file.display())))?;
    // The folder may not exist in the working tree (a file deleted since, or `watch --git`'s
    // cache, which is never checked out): resolved as far as it exists.
    let abs = crate::fsutil::resolve(parent).join(name);
    let mut start = abs.parent().unwrap_or(Path::new("/"));
    while !start.is_dir() {
        start = start.parent().unwrap_or(Path::new("/"));
    }
    let outside = || {
        msg(format!(
            "{} is not inside a git repository (needed for --rev, --base and --require-clean)",
            file.display()
        ))
    };
    if !under_git(start) {
        return Err(outside());
    }
    let repo = Repository::discover(start).map_err(|_| outside())?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| msg("the repository has no working tree"))?;
    let workdir = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    let rel = abs
        .strip_prefix(&workdir)
        .map_err(|_| {
            msg(format!(
                "{} is outside the repository's working tree",
                file.display()
            ))
        })?
        .to_path_buf();
    Ok((repo, rel))
}

/// Whether the canonical folder `dir` or one above it holds `.git` (a folder, or a worktree's
/// file). Only such a folder is worth asking libgit2 about: its first call loads the system's CA
/// bundle (about 45 ms), which a command outside git must not pay. (libgit2's discovery reads no
/// `GIT_DIR`, and a bare repository has no working tree to hold certs.toml.)
fn under_git(dir: &Path) -> bool {
    dir.ancestors()
        .any(|d| d.join(".git").symlink_metadata().is_ok())
}

/// The working tree of the repository holding certs.toml (by its folder), if there is one.
pub(crate) fn workdir_of(config: &Path) -> Option<PathBuf> {
    let parent = crate::fsutil::folder_of(config);
    let dir = std::fs::canonicalize(parent).ok()?;
    if !under_git(&dir) {
        return None;
    }
    let repo = Repository::discover(&dir).ok()?;
    let workdir = repo.workdir()?;
    std::fs::canonicalize(workdir).ok()
}

/// Files under review (certs.toml, the certificate files it names) are read where a link
/// inside the repository `workdir` leads: no link inside it may lead out of it (a committed
/// `certs.toml -> /proc/self/environ`). Paths named outside the repository are the user's own.
pub(crate) fn check_links_stay_inside(
    path: &Path,
    workdir: &Path,
) -> std::result::Result<(), String> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut cur = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::Normal(n) => {
                let next = cur.join(n);
                match std::fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let target = std::fs::canonicalize(&next);
                        let inside = cur.starts_with(workdir);
                        match target {
                            Ok(t) if !inside || t.starts_with(workdir) => cur = t,
                            _ if !inside => cur = next,
                            _ => {
                                return Err(format!(
                                    "{} is a symbolic link leading out of the repository {}; files under review must be regular files inside it — replace the link with the file",
                                    path.display(),
                                    workdir.display()
                                ))
                            }
                        }
                    }
                    Ok(_) => cur = next,
                    Err(_) => cur = next,
                }
            }
            Component::ParentDir => {
                cur.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}

/// Whether `file` exists at the revision (a pull request that adds certs.toml has none at its
/// base). An unknown revision is an error.
pub(crate) fn exists_at(file: &Path, rev: &str) -> Result<bool> {
    let (repo, rel) = locate(file)?;
    let exists = tree_at(&repo, rev)?.get_path(&rel).is_ok();
    Ok(exists)
}

/// Whether a review (`plan --base`, `plan --rev`) may read `file`, a file certs.toml names:
/// None when the repository holds it — committed at `rev`, or (the work tree, `rev` None)
/// tracked by git — else why not. A file outside the repository (a node .pfx on the nodes) is
/// never opened (only the folders on its path are resolved); a file of the work tree that does
/// not exist is left to the reader, whose error names it.
pub(crate) fn withheld(file: &Path, rev: Option<&str>) -> Option<String> {
    let Ok((repo, rel)) = locate(file) else {
        return Some("outside the repository".into());
    };
    match rev {
        Some(rev) => {
            let tree = tree_at(&repo, rev).ok()?;
            match tree.get_path(&rel) {
                Ok(_) => None,
                Err(_) => Some(format!("not committed at revision '{rev}'")),
            }
        }
        None => {
            std::fs::symlink_metadata(file).ok()?;
            let tracked = repo
                .index()
                .is_ok_and(|index| index.get_path(&rel, 0).is_some());
            (!tracked).then(|| "not committed (git does not track it)".to_string())
        }
    }
}

/// The tree of the commit a revision names.
fn tree_at<'r>(repo: &'r Repository, rev: &str) -> Result<git2::Tree<'r>> {
    let obj = repo
        .revparse_single(rev)
        .map_err(|_| msg(format!("revision '{rev}' is not known to the repository")))?;
    Ok(obj
        .peel_to_commit()
        .map_err(|_| msg(format!("revision '{rev}' is not a commit")))?
        .tree()?)
}

/// The bytes of a file at a revision (`HEAD~1`, `main`, a commit id).
fn blob_at(repo: &Repository, rev: &str, rel: &Path) -> Result<Vec<u8>> {
    let tree = tree_at(repo, rev)?;
    let entry = tree.get_path(rel).map_err(|_| {
        msg(format!(
            "{} does not exist at revision '{rev}'",
            rel.display()
        ))
    })?;
    // A symbolic link is stored as a blob holding its target: never read as the file.
    if entry.filemode() == 0o120000 {
        return Err(msg(format!(
            "{} is a symbolic link at revision '{rev}'; ravencert reads only regular files from git — commit the file itself",
            rel.display()
        )));
    }
    let blob = entry.to_object(repo)?.peel_to_blob().map_err(|_| {
        msg(format!(
            "{} is not a file at revision '{rev}'",
            rel.display()
        ))
    })?;
    Ok(blob.content().to_vec())
}

/// certs.toml (or any file next to it) as it stood at `rev`, plus the commit id `rev` names.
pub(crate) fn read_at(file: &Path, rev: &str) -> Result<(Vec<u8>, String)> {
    let (repo, rel) = locate(file)?;
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| {
            msg(format!(
                "revision '{rev}' is not a commit in the repository"
            ))
        })?;
    Ok((blob_at(&repo, rev, &rel)?, commit.id().to_string()))
}

/// Reads another file (an upload) at the same revision, by its path on disk.
pub(crate) fn read_file_at(file: &Path, rev: &str) -> Result<Vec<u8>> {
    let (repo, rel) = locate(file)?;
    blob_at(&repo, rev, &rel)
}

/// Where certs.toml comes from: the commit of HEAD, and which of the files that make up the
/// config (certs.toml and the certificate files it names) differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Provenance {
    commit: String,
    pub(crate) dirty_files: Vec<String>,
}

impl Provenance {
    /// The applied revision as the registry records it: `sha1:<commit>` (`+dirty` when a file
    /// had uncommitted changes).
    pub(crate) fn revision(&self) -> String {
        format!(
            "sha1:{}{}",
            self.commit,
            if self.dirty_files.is_empty() {
                ""
            } else {
                "+dirty"
            }
        )
    }
}

/// The provenance of `config` and `files`; an error when it is not in a repository.
pub(crate) fn require_provenance(config: &Path, files: &[PathBuf]) -> Result<Provenance> {
    let (repo, rel) = locate(config)?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|_| msg("the repository has no commit yet"))?;
    let mut dirty_files = Vec::new();
    if repo.status_file(&rel)? != Status::CURRENT {
        dirty_files.push(config.display().to_string());
    }
    for f in files {
        let clean = locate(f)
            .ok()
            .filter(|(r, _)| r.path() == repo.path())
            .and_then(|(_, rel)| repo.status_file(&rel).ok())
            .is_some_and(|s| s == Status::CURRENT);
        if !clean {
            dirty_files.push(f.display().to_string());
        }
    }
    Ok(Provenance {
        commit: head.id().to_string(),
        dirty_files,
    })
}

/// Like [`require_provenance`]; None when certs.toml is not in a git repository.
pub(crate) fn provenance(config: &Path, files: &[PathBuf]) -> Option<Provenance> {
    require_provenance(config, files).ok()
}

/// A clone of a remote, kept in a private cache folder. Never checked out: what is applied is
/// read from the git objects of the fetched commit.
pub(crate) struct Follower {
    repo: Repository,
    branch: String,
    pub(crate) worktree: PathBuf,
}

impl Follower {
    /// Opens the cache clone, or clones `url` into `cache`. The cache is private (0700 whatever
    /// the umask) and must be the running user's own: another user able to write in it could
    /// change what is applied.
    pub(crate) fn open(url: &str, branch: &str, cache: &Path) -> Result<Follower> {
        let repo = if cache.exists() || std::fs::symlink_metadata(cache).is_ok() {
            check_private_dir(cache)?;
            check_private_dir(&cache.join(".git"))?;
            // An older ravencert made it with the umask's mode; it is this user's: tighten it.
            std::fs::set_permissions(
                cache,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
            )
            .map_err(|e| msg(format!("cannot make {} private: {e}", cache.display())))?;
            Repository::open(cache).map_err(|e| {
                msg(format!(
                    "{} is not a usable git cache ({}); remove it and ravencert clones again",
                    cache.display(),
                    e.message()
                ))
            })?
        } else {
            private_dir(cache)?;
            let r = Repository::init(cache)?;
            private_dir(&cache.join(".git"))?;
            r.remote("origin", url)?;
            r
        };
        {
            let remote = repo.find_remote("origin")?;
            if remote.url() != Some(url) {
                repo.remote_set_url("origin", url)?;
            }
        }
        Ok(Follower {
            worktree: cache.to_path_buf(),
            repo,
            branch: branch.to_string(),
        })
    }

    /// Fetches the branch; returns its latest commit.
    pub(crate) fn fetch(&self) -> Result<String> {
        let mut remote = self.repo.find_remote("origin")?;
        let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = self.branch);
        let mut opts = FetchOptions::new();
        remote
            .fetch(&[refspec.as_str()], Some(&mut opts), None)
            .map_err(|e| msg(format!("fetching {} failed: {}", self.branch, e.message())))?;
        let reference = self
            .repo
            .find_reference(&format!("refs/remotes/origin/{}", self.branch))
            .map_err(|_| msg(format!("the remote has no branch '{}'", self.branch)))?;
        Ok(reference.peel_to_commit()?.id().to_string())
    }
}

/// Creates `dir` (and any missing parents, 0755 as the export's) as a private folder: 0700,
/// set explicitly since the umask masks the mode given at creation.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::create_dirs(parent, 0o755)
            .map_err(|e| msg(format!("cannot create {}: {e}", parent.display())))?;
    }
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| msg(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| msg(format!("cannot make {} private: {e}", dir.display())))?;
    check_private_dir(dir)
}

/// The cache (and its `.git`) must be a real folder of the running user that nobody else can
/// write to: not a link, owned by this user, not writable by group or others.
fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| msg(format!("cannot inspect {}: {e}", dir.display())))?;
    let problem = if m.file_type().is_symlink() {
        Some("is a symbolic link".to_string())
    } else if !m.is_dir() {
        Some("is not a folder".to_string())
    } else if m.uid() != crate::fsutil::effective_uid() {
        Some(format!(
            "is owned by user id {}, not by the user running ravencert",
            m.uid()
        ))
    } else if m.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by other users (mode {:03o})",
            m.mode() & 0o777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(msg(format!(
            "the git cache {} {p}; another user could change what is applied — remove it (ravencert clones again into a private folder)",
            dir.display()
        ))),
    }
}
