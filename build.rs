//! Embeds the git commit the binary is built from (RAVENCERT_GIT_COMMIT), which
//! `ravencert --version` prints so that an audit log can name the build that applied a change.
//! The environment variable of the same name overrides it (a build from a source tarball);
//! outside a git checkout it is "unknown".

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=RAVENCERT_GIT_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = match std::env::var("RAVENCERT_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a worktree has its own), and the branch refs
            // (loose or packed) which live in the common git dir.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!(
                    "cargo:rerun-if-changed={}",
                    PathBuf::from(dir).join("HEAD").display()
                );
            }
            if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                let common = PathBuf::from(common);
                println!("cargo:rerun-if-changed={}", common.join("refs").display());
                println!(
                    "cargo:rerun-if-changed={}",
                    common.join("packed-refs").display()
                );
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=RAVENCERT_GIT_COMMIT={commit}");
}
