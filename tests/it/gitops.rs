//! GitOps end to end: `watch` driven by real file events (editor rename-saves, in-place writes,
//! invalid saves, SIGTERM), `plan --rev` / `plan --base` and apply provenance against real git
//! repositories made with the `git` command, and a fleet of `watch --git` daemons following one
//! bare repository.
//!
//! Robust on a loaded machine: nothing asserts on timing; every wait polls a condition with a
//! generous deadline and fails with the daemon's log (common::daemon). Daemons are killed when
//! a test panics.

use crate::common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{save_by_rename, sh, wait_until, Daemon, Env, SERVER};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Harness

/// An Env whose git (the command and the library inside ravencert) reads no system or user
/// configuration: HOME is the temp folder.
fn git_env() -> Env {
    let mut env = Env::new();
    let home = env.dir.path().to_str().unwrap().to_string();
    for (k, v) in [
        ("HOME", home.as_str()),
        ("XDG_CONFIG_HOME", home.as_str()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_TERMINAL_PROMPT", "0"),
    ] {
        env.envs.push((k.into(), v.into()));
    }
    env
}

/// A `git_env` whose folder is a new repository on branch main.
fn git_repo() -> Env {
    let env = git_env();
    git(&env, env.dir.path(), &["init", "-q", "-b", "main"]);
    env
}

/// Runs `git ARGS` in `cwd` with the env's isolation; returns stdout, trimmed.
#[track_caller]
fn git(env: &Env, cwd: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (k, v) in &env.envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the git command is installed");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}:\n{}{}",
        cwd.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `watch --git REMOTE --branch main --poll 1s`: a daemon that follows the test repository.
fn watch_git_args(remote: &Path) -> Vec<&str> {
    vec![
        "watch",
        "--git",
        remote.to_str().unwrap(),
        "--branch",
        "main",
        "--poll",
        "1s",
    ]
}

/// `watch_git_args` with `-c certs.toml --store STORE`: a daemon that follows the test
/// repository into its own store.
fn follow_args<'a>(remote: &'a Path, store: &'a Path) -> Vec<&'a str> {
    let mut args = watch_git_args(remote);
    args.extend(["-c", "certs.toml", "--store", store.to_str().unwrap()]);
    args
}

/// Commits everything in the work tree `work` and pushes it to `remote`'s main: what a merged
/// pull request does to the branch the daemons follow. Returns the commit id.
#[track_caller]
fn publish(env: &Env, work: &Path, remote: &Path, message: &str) -> String {
    let commit = commit_all(env, work, message);
    git(env, work, &["push", "-q", remote.to_str().unwrap(), "main"]);
    commit
}

/// Commits everything in the work tree at `cwd`; returns the commit id.
#[track_caller]
fn commit_all(env: &Env, cwd: &Path, message: &str) -> String {
    git(env, cwd, &["add", "-A"]);
    git(
        env,
        cwd,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            message,
        ],
    );
    git(env, cwd, &["rev-parse", "HEAD"])
}

/// Starts `ravencert ARGS` as a daemon whose log is NAME.log.
fn spawn(env: &Env, name: &str, args: &[&str]) -> Daemon {
    env.cmd(args).spawn(name)
}

/// `status --json` of the store at `store` (certs.toml may be invalid meanwhile), or None when
/// the command fails (the store does not exist yet).
fn status_of(env: &Env, store: &Path) -> Option<Value> {
    let r = env.run(&["status", "--json", "--store", store.to_str().unwrap()]);
    (r.code == 0).then(|| r.json())
}

fn client<'a>(status: &'a Value, key: &str) -> Option<&'a Value> {
    status["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["key"] == key)
}

fn clearance_of(env: &Env, store: &Path, key: &str) -> Option<String> {
    let s = status_of(env, store)?;
    Some(client(&s, key)?["clearance"].as_str()?.to_string())
}

fn revision_of(env: &Env, store: &Path) -> Option<String> {
    status_of(env, store)?["applied_revision"]
        .as_str()
        .map(str::to_string)
}

/// A save in place: truncate and write the same inode.
fn save_in_place(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// Holds a store's apply lock from another process (flock(1) takes the same kind of lock as
/// ravencert) until released or dropped.
struct LockHolder(Child);

impl LockHolder {
    #[track_caller]
    fn hold(lock: &Path) -> LockHolder {
        let child = Command::new("flock")
            .args(["-x", lock.to_str().unwrap(), "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the flock command (util-linux)");
        let holder = LockHolder(child);
        wait_until("flock to hold the lock", String::new, || {
            !Command::new("flock")
                .args(["-n", lock.to_str().unwrap(), "true"])
                .status()
                .unwrap()
                .success()
        });
        holder
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether process `pid` has `file` open.
fn has_open(pid: u32, file: &Path) -> bool {
    let Ok(file) = fs::canonicalize(file) else {
        return false;
    };
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|e| e.ok())
                .any(|e| fs::read_link(e.path()).is_ok_and(|t| t == file))
        })
        .unwrap_or(false)
}

fn with_app(clearance: &str) -> String {
    let dbs = if clearance == "ValidUser" {
        "databases = { Orders = \"Read\" }\n"
    } else {
        ""
    };
    format!("{SERVER}\n[clients.app]\nclearance = \"{clearance}\"\n{dbs}")
}

// ---------------------------------------------------------------------------------------------
// watch, local file

#[test]
fn watch_follows_rename_saves_in_place_writes_and_survives_invalid_saves() {
    let env = Env::new();
    let config = env.path("certs.toml");
    let store = env.store();
    env.config(&with_app("ValidUser"));
    let mut d = spawn(&env, "watch", &["watch", "--interval", "1h"]);

    // Converges at start.
    wait_until(
        "the start apply",
        || d.context(),
        || clearance_of(&env, &store, "app").as_deref() == Some("ValidUser"),
    );
    d.wait_log("start: applied");

    // Editor-style save (rename over the file): clearance raised.
    d.save_until(
        "the rename-save to be applied (Operator)",
        || save_by_rename(&config, &with_app("Operator")),
        || clearance_of(&env, &store, "app").as_deref() == Some("Operator"),
    );
    // The change's log line says what changed, before -> after.
    d.wait_log("clearance ValidUser -> Operator");
    let line = d
        .log()
        .lines()
        .find(|l| l.contains("clearance ValidUser -> Operator"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("~ client app [ESCALATION]"), "{line}");
    assert!(line.contains("Orders: Read -> (none)"), "{line}");

    // In-place write of the same file.
    save_in_place(&config, &with_app("ClusterAdmin"));
    wait_until(
        "the in-place write to be applied (ClusterAdmin)",
        || d.context(),
        || clearance_of(&env, &store, "app").as_deref() == Some("ClusterAdmin"),
    );
    // The store is committed before the log line is written: wait for the line.
    d.wait_log_count("change: applied", 1);

    // An invalid save is logged and changes nothing. (The in-place write may have been read
    // half-written, which logs "invalid" too: count from here.)
    let invalid = d.count("is invalid");
    let before = fs::read(store.join("registry.toml")).unwrap();
    let snapshot = env.snapshot();
    save_by_rename(&config, "version = 1\n[server\ngenerate = true\n");
    d.wait_log_count("is invalid", invalid);
    let line = d
        .log()
        .lines()
        .rfind(|l| l.contains("is invalid"))
        .unwrap()
        .to_string();
    assert!(line.contains("nothing applied"), "{line}");
    assert!(line.contains("certs.toml"), "{line}");
    assert_eq!(fs::read(store.join("registry.toml")).unwrap(), before);
    assert!(
        env.snapshot() == snapshot,
        "the store changed after an invalid save\n{}",
        d.context()
    );
    assert_eq!(
        clearance_of(&env, &store, "app").as_deref(),
        Some("ClusterAdmin")
    );

    // A later valid save is applied.
    let fixed = format!(
        "{}\n[clients.late]\nclearance = \"Operator\"\n",
        with_app("ClusterAdmin")
    );
    save_by_rename(&config, &fixed);
    wait_until(
        "the valid save after the invalid one to be applied",
        || d.context(),
        || clearance_of(&env, &store, "late").as_deref() == Some("Operator"),
    );

    // SIGTERM: exit 0, and the log says so.
    let status = d.terminate();
    assert!(status.success(), "exit {status:?}\n{}", d.context());
    assert!(d.log().contains("stopping"), "{}", d.context());
}

#[test]
fn watch_reacts_to_a_referenced_upload_file_changing() {
    let env = Env::new();
    let store = env.store();
    let mk = |name: &str| {
        sh(
            env.dir.path(),
            &format!(
                "mkdir -p trust\n\
                 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                 -keyout {name}.key -out {name}.pem -days 30 -subj /CN=partner \
                 -addext extendedKeyUsage=clientAuth 2>/dev/null"
            ),
        )
    };
    mk("one");
    mk("two");
    fs::copy(env.path("one.pem"), env.path("trust/partner.pem")).unwrap();
    env.config(&format!(
        "{SERVER}\n[clients.partner]\nclearance = \"Operator\"\nupload = \"trust/partner.pem\"\n"
    ));
    let first = common::openssl_thumbprint(&env.path("one.pem"));
    let second = common::openssl_thumbprint(&env.path("two.pem"));
    let thumb = || {
        status_of(&env, &store)
            .and_then(|s| Some(client(&s, "partner")?["thumbprint"].as_str()?.to_string()))
    };
    let mut d = spawn(&env, "watch", &["watch", "--interval", "1h"]);
    wait_until(
        "the upload to be registered",
        || d.context(),
        || thumb().as_deref() == Some(first.as_str()),
    );
    // The file certs.toml names (in a sub-folder) now holds another certificate.
    let tmp = env.path("trust/.partner.pem.tmp");
    d.save_until(
        "the new upload to replace the old one",
        || {
            fs::copy(env.path("two.pem"), &tmp).unwrap();
            fs::rename(&tmp, env.path("trust/partner.pem")).unwrap();
        },
        || thumb().as_deref() == Some(second.as_str()),
    );
    assert!(d.terminate().success(), "{}", d.context());
}

#[test]
fn watch_plan_only_never_writes() {
    let env = Env::new();
    let config = env.path("certs.toml");
    env.config(&with_app("ValidUser"));

    // With no store: the start plan is logged and no store is made.
    let mut d = spawn(
        &env,
        "plan-only",
        &["watch", "--plan-only", "--interval", "1h"],
    );
    d.wait_log("start: plan only, would apply");
    assert!(d.log().contains("+ client app"), "{}", d.context());
    assert!(!env.store().exists(), "{}", d.context());
    assert!(!env.path("exports").exists(), "{}", d.context());

    // The store is made by a real apply (the plan-only daemon holds no lock).
    env.run(&["apply", "--yes"]).success();
    let snapshot = env.snapshot();
    let registry = fs::read(env.store().join("registry.toml")).unwrap();

    // A change: planned and logged, never applied.
    let planned = d.count("plan only, would apply");
    d.save_until(
        "the planned update to be logged",
        || save_by_rename(&config, &with_app("Operator")),
        || d.log().contains("~ client app [ESCALATION]"),
    );
    assert!(d.count("plan only, would apply") > planned);
    assert!(d.log().contains("1 updated"), "{}", d.context());
    assert_eq!(
        fs::read(env.store().join("registry.toml")).unwrap(),
        registry
    );
    assert!(
        env.snapshot() == snapshot,
        "plan-only changed the store\n{}",
        d.context()
    );
    assert_eq!(
        clearance_of(&env, &env.store(), "app").as_deref(),
        Some("ValidUser")
    );
    assert!(!d.log().contains("applied"), "{}", d.context());
    assert!(d.terminate().success(), "{}", d.context());
    assert!(env.snapshot() == snapshot);
}

// ---------------------------------------------------------------------------------------------
// plan --rev, plan --base

#[test]
fn plan_rev_reads_the_config_at_a_revision_against_the_store() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&with_app("Operator"));
    let v1 = commit_all(&env, root, "v1");
    env.config(&with_app("ClusterAdmin"));
    commit_all(&env, root, "v2");
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        clearance_of(&env, &env.store(), "app").as_deref(),
        Some("ClusterAdmin")
    );

    // HEAD is what was applied.
    let head = env.run(&["plan", "--rev", "HEAD", "--detailed-exitcode"]);
    assert_eq!(head.code, 0, "{}{}", head.stdout, head.stderr);

    // The working tree is not read with --rev: make it unreadable.
    env.config("this is not = = toml [");
    let snapshot = env.snapshot();
    for rev in ["HEAD~1", v1.as_str(), &v1[..10]] {
        let plan = env.run(&["plan", "--rev", rev, "--json"]).success().json();
        let changes = plan["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{rev}: {plan:#}");
        let c = &changes[0];
        assert_eq!(c["action"], "update", "{c:#}");
        assert_eq!(c["key"], "app");
        assert_eq!(c["before"]["clearance"], "ClusterAdmin", "{c:#}");
        assert_eq!(c["after"]["clearance"], "Operator", "{c:#}");
        assert_eq!(c["escalation"], false, "lowering is no escalation: {c:#}");
        assert_eq!(plan["summary"]["update"], 1);
    }
    assert!(env.snapshot() == snapshot, "plan --rev wrote to the store");

    // An unknown revision: exit 1, the message names it.
    let bad = env
        .run(&["plan", "--rev", "no-such-rev", "--json"])
        .failure();
    assert!(bad.stdout.is_empty(), "{}", bad.stdout);
    assert!(
        bad.stderr.contains("'no-such-rev'") && bad.stderr.contains("revision"),
        "{}",
        bad.stderr
    );
    // A revision that lacks certs.toml.
    git(&env, root, &["checkout", "-q", "--orphan", "empty"]);
    git(&env, root, &["rm", "-rqf", "--cached", "."]);
    git(
        &env,
        root,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "empty",
        ],
    );
    let missing = env.run(&["plan", "--rev", "empty"]).failure();
    assert!(
        missing
            .stderr
            .contains("does not exist at revision 'empty'"),
        "{}",
        missing.stderr
    );
}

#[test]
fn plan_rev_outside_git_is_a_clear_error() {
    let env = git_env();
    env.config(&with_app("Operator"));
    let r = env.run(&["plan", "--rev", "HEAD"]).failure();
    assert!(
        r.stderr.contains("not inside a git repository"),
        "{}",
        r.stderr
    );
}

const TWO_CLIENTS: &str = r#"
[clients.alice]
clearance = "ValidUser"
databases = { Orders = "Read" }
password_env = "ALICE_PFX_PASSWORD"

[clients.bob]
clearance = "Operator"
"#;

#[test]
fn plan_base_reviews_a_change_without_a_store() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&format!("{SERVER}{TWO_CLIENTS}"));
    let c1 = commit_all(&env, root, "two clients");
    env.write("README.md", "certificates of the cluster\n");
    commit_all(&env, root, "readme");

    // The pull request: bob raised to ClusterAdmin, carol added.
    env.config(&format!(
        "{SERVER}{}\n[clients.carol]\nclearance = \"ValidUser\"\ndatabases = {{ Reporting = \"Read\" }}\n",
        TWO_CLIENTS.replace(
            "clearance = \"Operator\"",
            "clearance = \"ClusterAdmin\""
        )
    ));

    // ALICE_PFX_PASSWORD is not set: a review issues nothing and needs no secret.
    for base in ["HEAD", "HEAD~1", "main", c1.as_str()] {
        let (plan, md) = review(&env, base, [1, 1, 0, 0, 0]);
        let changes = plan["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 2, "--base {base}: {plan:#}");
        let update = changes.iter().find(|c| c["action"] == "update").unwrap();
        assert_eq!(update["key"], "bob", "{plan:#}");
        assert_eq!(update["target"], "client");
        assert_eq!(update["escalation"], true, "{plan:#}");
        assert_eq!(update["before"]["clearance"], "Operator");
        assert_eq!(update["after"]["clearance"], "ClusterAdmin");
        let create = changes.iter().find(|c| c["action"] == "create").unwrap();
        assert_eq!(create["key"], "carol", "{plan:#}");
        assert_eq!(create["after"]["permissions"]["Reporting"], "Read");
        assert!(
            md.contains("Plan: 1 to create, 1 to update, 0 to replace, 0 to delete, 0 to export."),
            "{md}"
        );
        assert!(md.contains("| bob |"), "{md}");
        assert!(md.contains("| carol |"), "{md}");
    }

    let text = env.run(&["plan", "--base", "HEAD"]).success().stdout;
    assert!(text.contains("Operator -> ClusterAdmin"), "{text}");
    assert!(text.contains("ESCALATION"), "{text}");

    // Nothing was made: no store, no export.
    assert!(!env.store().exists(), "plan --base created the store");
    assert!(!env.path("exports").exists());

    // No change between BASE and the work tree.
    git(&env, root, &["checkout", "-q", "--", "certs.toml"]);
    let same = env.run(&["plan", "--base", "HEAD", "--detailed-exitcode"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    assert!(!env.store().exists());

    // An unknown base.
    let bad = env.run(&["plan", "--base", "nope"]).failure();
    assert!(bad.stderr.contains("'nope'"), "{}", bad.stderr);
    assert!(!env.store().exists());
}

/// A review plan shows nothing it cannot know: no thumbprint or date of the assumed store, in
/// JSON, text or the registry diff (issue 10 #8).
#[test]
fn plan_base_invents_no_values() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&format!("{SERVER}{TWO_CLIENTS}"));
    commit_all(&env, root, "two clients");
    // bob re-issued (another key type), alice edited, bob's old name dropped from review.
    env.config(&format!(
        "{SERVER}{}",
        TWO_CLIENTS
            .replace("Orders = \"Read\"", "Orders = \"ReadWrite\"")
            .replace(
                "clearance = \"Operator\"",
                "clearance = \"Operator\"\nkey = \"ec-p384\""
            )
    ));
    let plan = env
        .run(&["plan", "--base", "HEAD", "--json", "--diff"])
        .success()
        .json();
    for c in plan["changes"].as_array().unwrap() {
        if let Some(before) = c["before"].as_object() {
            assert!(
                before.get("thumbprint").is_none_or(|t| t.is_null())
                    && before.get("not_after").is_none_or(|t| t.is_null()),
                "invented before-values: {c:#}"
            );
        }
    }
    let all = plan.to_string();
    assert!(!all.contains("as registered"), "{all}");
    let diff = plan["registry_diff"].as_str().unwrap();
    assert!(diff.contains("(known after apply)"), "{diff}");
    // Dates in the diff are whole seconds, and none is a made-up one.
    for line in diff.lines().filter(|l| l.contains("not_")) {
        assert!(
            line.contains("(known after apply)"),
            "a date in review: {line}"
        );
    }
    let text = env
        .run(&["plan", "--base", "HEAD", "--diff"])
        .success()
        .stdout;
    assert!(
        !text.contains("as registered") && !text.contains("expires:"),
        "{text}"
    );
}

/// `plan --base BASE` as a reviewer gets it: the JSON (its summary checked against `counts`:
/// create, update, replace, delete, export) and the Markdown, which flags the escalation.
fn review(env: &Env, base: &str, counts: [u64; 5]) -> (serde_json::Value, String) {
    let plan = env
        .run(&["plan", "--base", base, "--json"])
        .success()
        .json();
    let [create, update, replace, delete, export] = counts;
    assert_eq!(
        plan["summary"],
        serde_json::json!({"create": create, "update": update, "replace": replace, "delete": delete, "export": export}),
        "--base {base}: {plan:#}"
    );
    let md = env
        .run(&["plan", "--base", base, "--markdown"])
        .success()
        .stdout;
    assert!(md.contains("escalation"), "--base {base}: {md}");
    (plan, md)
}

/// The first pull request of a cluster: certs.toml does not exist at BASE yet (issue 10 #9).
#[test]
fn plan_base_without_certs_toml_at_base_plans_every_create() {
    let env = git_repo();
    let root = env.dir.path();
    env.write("README.md", "certificates of the cluster\n");
    commit_all(&env, root, "readme");
    env.config(&format!("{SERVER}{TWO_CLIENTS}"));
    review(&env, "main", [3, 0, 0, 0, 1]);
    assert!(!env.store().exists());
    // An unknown base is still an error.
    env.run(&["plan", "--base", "nope"]).failure();
}

/// A cluster whose node .pfx lives on the nodes, outside the repository, and whose partner
/// upload is a .pfx with a password; `alice` has a bundle password. `node` is the node file's
/// absolute path.
fn keys_elsewhere(node: &Path, partner_access: &str) -> String {
    format!(
        r#"version = 1
[server]
certificates = [{{ path = "{}", password_env = "NODE_PFX_PASSWORD" }}]

[defaults]
key = "ec-p256"

[clients.alice]
clearance = "ValidUser"
databases = {{ Orders = "Read" }}
password_env = "ALICE_PFX_PASSWORD"

[clients.partner]
clearance = "ValidUser"
databases = {{ Orders = "{partner_access}" }}
upload = "trust/partner.pfx"
password_env = "PARTNER_PFX_PASSWORD"
"#,
        node.display()
    )
}

/// The keys of a JSON plan's `not_read` entries.
fn not_read_keys(plan: &Value) -> Vec<String> {
    plan["not_read"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Review needs no secret and no private key (issue 22, part A): with every password variable
/// unset and the node .pfx outside the repository, `plan --base` plans from what the
/// repository holds and names what it did not read — the node file, the partner's .pfx (its
/// password), alice's bundle password — instead of failing. Wrong passwords in the
/// environment change nothing (none is read). A partner file whose bytes changed is a replace
/// flagged as an escalation, not "no changes".
#[test]
fn plan_base_reads_no_secret_and_names_what_it_did_not_read() {
    let env = git_env();
    let root = env.dir.path();
    let outside = tempfile::tempdir().unwrap();
    common::openssl::partner_upload(outside.path(), "node-secret-31x");
    let node = outside.path().join("node.pfx");
    fs::rename(outside.path().join("partner.pfx"), &node).unwrap();
    fs::create_dir_all(env.path("trust")).unwrap();
    common::openssl::partner_upload(&env.path("trust"), "partner-secret-8k");
    for f in ["partner.key", "partner.pem", "partner.der"] {
        fs::remove_file(env.path("trust").join(f)).unwrap();
    }
    git(&env, root, &["init", "-q", "-b", "main"]);
    env.config(&keys_elsewhere(&node, "Read"));
    commit_all(&env, root, "keys on the nodes");
    git(&env, root, &["checkout", "-q", "-b", "pr"]);
    // The pull request: the partner gets write access, carol is added.
    env.config(&format!(
        "{}\n[clients.carol]\nclearance = \"ValidUser\"\ndatabases = {{ Reporting = \"Read\" }}\n",
        keys_elsewhere(&node, "ReadWrite")
    ));

    let r = env.run(&["plan", "--base", "main", "--json", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}", r.shown());
    let plan = r.json();
    let changes = plan["changes"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c["action"].as_str().unwrap(), c["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [("create", "carol"), ("update", "partner")],
        "{plan:#}"
    );
    assert_eq!(changes[1]["escalation"], true, "{plan:#}");
    assert_eq!(changes[1]["after"]["permissions"]["Orders"], "ReadWrite");
    let not_read = not_read_keys(&plan);
    for key in [
        "server.certificates[0].path",
        "clients.partner.upload",
        "clients.alice.password_env",
    ] {
        assert!(not_read.iter().any(|k| k == key), "{key}: {plan:#}");
    }
    let all = plan.to_string();
    assert!(all.contains(&node.display().to_string()), "{all}");

    // No password is read: wrong ones in the environment give the very same plan.
    let wrong = env
        .cmd(&["plan", "--base", "main", "--json"])
        .envs(&[
            ("NODE_PFX_PASSWORD", "wrong-1"),
            ("PARTNER_PFX_PASSWORD", "wrong-2"),
            ("ALICE_PFX_PASSWORD", "wrong-3"),
        ])
        .run()
        .success()
        .json();
    assert_eq!(wrong, plan);

    let text = env.run(&["plan", "--base", "main"]).success();
    assert!(
        text.stdout.contains("Not read in review"),
        "{}",
        text.shown()
    );
    assert!(
        text.stdout.contains("server.certificates[0].path")
            && text.stdout.contains("clients.partner.upload")
            && text.stdout.contains("clients.alice.password_env"),
        "{}",
        text.shown()
    );
    let md = env.run(&["plan", "--base", "main", "--markdown"]).success();
    assert!(md.stdout.contains("Not read in review"), "{}", md.shown());
    for r in [&text, &md] {
        r.hides(&["node-secret-31x", "partner-secret-8k", "PRIVATE KEY"]);
    }

    // The partner's file now holds someone else: its certificates cannot be read without the
    // password, but its bytes changed — a replace that widens access, never "no changes".
    let other = tempfile::tempdir().unwrap();
    common::openssl::partner_upload(other.path(), "partner-secret-8k");
    fs::copy(
        other.path().join("partner.pfx"),
        env.path("trust/partner.pfx"),
    )
    .unwrap();
    env.config(&keys_elsewhere(&node, "Read"));
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["action"], "replace", "{plan:#}");
    assert_eq!(changes[0]["key"], "partner");
    assert_eq!(changes[0]["escalation"], true, "{plan:#}");
    assert!(!env.store().exists(), "plan --base created the store");
}

/// `plan --rev` reads no secret and no private key either (issue 22): planned against the
/// store, it names the bundle password it did not compare, checks the store's server
/// certificate without its key (a garbled key file does not stop it, while a plain plan, which
/// reads it, refuses), and leaves the cluster out instead of presenting the admin's key there.
#[test]
fn plan_rev_reads_no_secret_no_private_key_and_no_cluster() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&format!(
        "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\n\
         [clients.app]\nclearance = \"Operator\"\npassword_env = \"APP_PFX_PASSWORD\"\n\n\
         [cluster]\nurls = [\"https://127.0.0.1:1\"]\nadmin = \"admin\"\n"
    ));
    commit_all(&env, root, "app");
    env.cmd(&["apply", "--yes", "--offline"])
        .env("APP_PFX_PASSWORD", "app-secret-6t")
        .run()
        .success();
    let key = fs::read_dir(env.store().join("server"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .unwrap();
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\ngarbled\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let plain = env.run(&["plan", "--offline"]).failure();
    assert!(plain.stderr.contains("private key"), "{}", plain.shown());

    let r = env.run(&["plan", "--rev", "main", "--json", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}", r.shown());
    let plan = r.json();
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan:#}");
    assert_eq!(
        not_read_keys(&plan),
        ["clients.app.password_env"],
        "{plan:#}"
    );
    assert!(
        plan["cluster"].to_string().contains("reads no private key"),
        "{plan:#}"
    );
    let text = env.run(&["plan", "--rev", "main"]).success();
    assert!(
        text.stdout.contains("Not read in review"),
        "{}",
        text.shown()
    );
}

// ---------------------------------------------------------------------------------------------
// Provenance

#[test]
fn apply_records_the_commit_and_require_clean_refuses_a_dirty_tree() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&with_app("ValidUser"));
    let c1 = commit_all(&env, root, "v1");

    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        revision_of(&env, &env.store()).as_deref(),
        Some(format!("sha1:{c1}").as_str())
    );
    // The store (with its .gitignore) and the export do not make certs.toml dirty.
    env.run(&["apply", "--yes", "--require-clean"]).success();
    let text = env.run(&["status"]).success().stdout;
    assert!(
        text.contains(&format!("Applied revision: sha1:{c1}")),
        "{text}"
    );

    // Uncommitted edit: --require-clean refuses and changes nothing at all.
    env.config(&with_app("Operator"));
    let snapshot = env.snapshot();
    let refused = env.run(&["apply", "--yes", "--require-clean"]).failure();
    assert!(refused.stderr.contains("uncommitted"), "{}", refused.stderr);
    assert!(
        env.snapshot() == snapshot,
        "a refused apply changed the store"
    );

    // Without it, the dirty flag is recorded.
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        revision_of(&env, &env.store()).as_deref(),
        Some(format!("sha1:{c1}+dirty").as_str())
    );
    assert_eq!(
        clearance_of(&env, &env.store(), "app").as_deref(),
        Some("Operator")
    );

    // Committed and changed again: clean, the new commit.
    env.config(&with_app("ClusterAdmin"));
    let c2 = commit_all(&env, root, "v2");
    env.run(&["apply", "--yes", "--require-clean"]).success();
    assert_eq!(
        revision_of(&env, &env.store()).as_deref(),
        Some(format!("sha1:{c2}").as_str())
    );
}

#[test]
fn committing_what_was_applied_dirty_then_applying_clean_records_the_commit() {
    let env = git_repo();
    let root = env.dir.path();
    env.config(&with_app("ValidUser"));
    let c1 = commit_all(&env, root, "v1");
    env.run(&["apply", "--yes"]).success();
    env.config(&with_app("Operator"));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        revision_of(&env, &env.store()).as_deref(),
        Some(format!("sha1:{c1}+dirty").as_str())
    );
    // The reviewed commit now holds exactly what was applied.
    let c2 = commit_all(&env, root, "v2");
    env.run(&["apply", "--yes", "--require-clean"]).success();
    assert_eq!(
        revision_of(&env, &env.store()).as_deref(),
        Some(format!("sha1:{c2}").as_str()),
        "--require-clean succeeded, yet the registry does not name the clean commit"
    );
}

#[test]
fn require_clean_outside_git_is_refused() {
    let env = git_env();
    env.config(&with_app("ValidUser"));
    let r = env.run(&["apply", "--yes", "--require-clean"]).failure();
    assert!(r.stderr.contains("--require-clean"), "{}", r.stderr);
    assert!(
        r.stderr.contains("not inside a git repository"),
        "{}",
        r.stderr
    );
    assert!(!env.store().exists());
    // Without the flag, an apply outside git records no revision.
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.status()["applied_revision"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Fleet: several watch --git daemons following one bare repository

const FLEET_CONFIG: &str = r#"version = 1

[server]
certificates = [{ path = "nodes/a.pfx" }]

[clients.alice]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "trust/alice.pem"

[clients.bob]
clearance = "Operator"
upload = "trust/bob.pem"
"#;

/// A bare repository `remote.git` and a work clone `work/` whose first commit (pushed) holds
/// FLEET_CONFIG with an imported node certificate and uploaded clients, all made with openssl.
/// Returns (remote path, work path, first commit).
fn fleet_repo(env: &Env) -> (PathBuf, PathBuf, String) {
    let remote = env.path("remote.git");
    let work = env.path("work");
    let root = env.dir.path();
    git(
        env,
        root,
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(env, root, &["init", "-q", "-b", "main", "work"]);
    sh(
        &work,
        r#"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
mkdir -p nodes trust
openssl req -x509 $EC -keyout n.key -out n.pem -days 30 -subj /CN=node \
  -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl pkcs12 -export -in n.pem -inkey n.key -out nodes/a.pfx -passout pass:
for c in alice bob; do
  openssl req -x509 $EC -keyout $c.key -out trust/$c.pem -days 30 -subj /CN=$c \
    -addext extendedKeyUsage=clientAuth 2>/dev/null
done
rm -f n.key n.pem alice.key bob.key
"#,
    );
    fs::write(work.join("certs.toml"), FLEET_CONFIG).unwrap();
    let c1 = publish(env, &work, &remote, "fleet v1");
    (remote, work, c1)
}

fn fleet_daemons(env: &Env, remote: &Path, n: usize) -> Vec<Daemon> {
    (1..=n)
        .map(|i| {
            let store = env.path(&format!("store{i}"));
            let mut args = follow_args(remote, &store);
            args.extend_from_slice(&["--interval", "1h"]);
            spawn(env, &format!("watch{i}"), &args)
        })
        .collect()
}

fn all_logs(daemons: &[Daemon]) -> String {
    daemons.iter().map(Daemon::context).collect::<String>()
}

#[track_caller]
fn wait_fleet_at(env: &Env, daemons: &[Daemon], revision: &str) {
    for i in 1..=daemons.len() {
        let store = env.path(&format!("store{i}"));
        wait_until(
            &format!("store{i} to record {revision}"),
            || all_logs(daemons),
            || revision_of(env, &store).as_deref() == Some(revision),
        );
    }
}

#[test]
fn a_fleet_following_one_repository_converges_to_the_same_registry() {
    let env = git_env();
    let (remote, work, c1) = fleet_repo(&env);
    let mut daemons = fleet_daemons(&env, &remote, 3);
    wait_fleet_at(&env, &daemons, &format!("main@sha1:{c1}"));

    // A reviewed change lands on main: alice may now write.
    fs::write(
        work.join("certs.toml"),
        FLEET_CONFIG.replace("Orders = \"Read\"", "Orders = \"ReadWrite\""),
    )
    .unwrap();
    let c2 = publish(&env, &work, &remote, "alice writes orders");
    wait_fleet_at(&env, &daemons, &format!("main@sha1:{c2}"));

    let registries: Vec<Vec<u8>> = (1..=3)
        .map(|i| fs::read(env.path(&format!("store{i}/registry.toml"))).unwrap())
        .collect();
    assert!(
        registries.iter().all(|r| *r == registries[0]),
        "the fleet's registries differ:\n{}",
        registries
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    let s = status_of(&env, &env.path("store2")).unwrap();
    assert_eq!(
        client(&s, "alice").unwrap()["permissions"]["Orders"],
        "ReadWrite",
        "{s:#}"
    );
    assert_eq!(client(&s, "bob").unwrap()["clearance"], "Operator");
    assert_eq!(s["server"][0]["source"], "uploaded", "{s:#}");
    let text = String::from_utf8_lossy(&registries[0]).into_owned();
    assert!(text.contains("Orders = \"ReadWrite\""), "{text}");
    // The clone lives beside each store, never inside it.
    for i in 1..=3 {
        assert!(env.path(&format!(".store{i}.git-cache")).is_dir());
        assert!(!env.path(&format!("store{i}/certs.toml")).exists());
    }

    for (i, d) in daemons.iter_mut().enumerate() {
        let status = d.terminate();
        assert!(
            status.success(),
            "watch{} exited {status:?}\n{}",
            i + 1,
            d.context()
        );
        assert!(d.log().contains("stopping"), "{}", d.context());
    }
}

#[test]
fn a_fleet_records_a_commit_that_changes_nothing_in_the_registry() {
    let env = git_env();
    let (remote, work, c1) = fleet_repo(&env);
    let mut daemons = fleet_daemons(&env, &remote, 1);
    wait_fleet_at(&env, &daemons, &format!("main@sha1:{c1}"));
    fs::write(work.join("README.md"), "who may connect to the cluster\n").unwrap();
    let c2 = publish(&env, &work, &remote, "readme");
    daemons[0].wait_log(&format!("commit {}", &c2[..12]));
    assert_eq!(
        revision_of(&env, &env.path("store1")).as_deref(),
        Some(format!("main@sha1:{c2}").as_str()),
        "{}",
        all_logs(&daemons)
    );
    assert!(daemons[0].terminate().success());
}

#[test]
fn watch_git_needs_a_store() {
    let env = git_env();
    let (remote, _work, _) = fleet_repo(&env);
    let mut d = spawn(&env, "no-store", &watch_git_args(&remote));
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", d.context());
    assert!(d.log().contains("--store"), "{}", d.context());
    // No clone was made anywhere.
    let stray: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("git-cache"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // --branch is required with --git.
    let mut d = spawn(
        &env,
        "no-branch",
        &["watch", "--git", remote.to_str().unwrap(), "--store", "s"],
    );
    assert_eq!(d.wait_exit().code(), Some(1), "{}", d.context());
    assert!(d.log().contains("--branch"), "{}", d.context());
}

#[test]
fn watch_git_logs_an_invalid_commit_and_applies_the_next_one() {
    let env = git_env();
    let (remote, work, c1) = fleet_repo(&env);
    // The export of a --git daemon lands next to its store, not in the cache checkout.
    let config = FLEET_CONFIG.replace(
        "certificates = [{ path = \"nodes/a.pfx\" }]",
        "certificates = [{ path = \"nodes/a.pfx\" }]\nexport = \"exports/cluster.pfx\"",
    );
    fs::write(work.join("certs.toml"), &config).unwrap();
    let c1b = publish(&env, &work, &remote, "export");
    assert_ne!(c1, c1b);
    fs::create_dir_all(env.path("m1")).unwrap();
    let store = env.path("m1/store");
    let mut d = spawn(&env, "watch", &follow_args(&remote, &store));
    let export = env.path("m1/exports/cluster.pfx");
    // The registry is the commit point and the export is written after it (src/apply.rs):
    // a reader can see the revision a moment before the export.
    wait_until(
        "the first commit to be applied and exported",
        || d.context(),
        || {
            revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c1b}").as_str())
                && export.is_file()
        },
    );
    assert!(!env.path("m1/.store.git-cache/exports").exists());
    let node = status_of(&env, &store).unwrap()["server"][0]["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    let exported = common::openssl::pkcs12(&export, "", &["-nokeys"]).success();
    fs::write(env.path("exported.pem"), exported.stdout).unwrap();
    assert_eq!(common::openssl_thumbprint(&env.path("exported.pem")), node);

    // A broken commit: logged, nothing applied.
    let registry = fs::read(store.join("registry.toml")).unwrap();
    fs::write(work.join("certs.toml"), "version = 1\n[clients.x\n").unwrap();
    let c2 = publish(&env, &work, &remote, "broken");
    d.wait_log(&format!("commit {}", &c2[..12]));
    d.wait_log("is invalid");
    assert_eq!(fs::read(store.join("registry.toml")).unwrap(), registry);

    // The fix: applied.
    fs::write(
        work.join("certs.toml"),
        config.replace("clearance = \"Operator\"", "clearance = \"ClusterAdmin\""),
    )
    .unwrap();
    let c3 = publish(&env, &work, &remote, "fixed, bob is admin");
    wait_until(
        "the fixed commit to be applied",
        || d.context(),
        || revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c3}").as_str()),
    );
    assert_eq!(
        clearance_of(&env, &store, "bob").as_deref(),
        Some("ClusterAdmin")
    );
    assert!(d.terminate().success(), "{}", d.context());
}

/// Two self-signed clientAuth certificates, `one.pem` and `two.pem`, in the env's folder.
fn two_partner_certs(env: &Env) {
    sh(
        env.dir.path(),
        r#"
for n in one two; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
    -out $n.pem -days 30 -subj /CN=partner -addext extendedKeyUsage=clientAuth 2>/dev/null
done
mkdir -p trust
"#,
    );
}

const PARTNER: &str =
    "\n[clients.partner]\nclearance = \"Operator\"\nupload = \"trust/partner.pem\"\n";

#[test]
fn plan_rev_reads_referenced_files_at_the_revision() {
    let env = git_repo();
    let root = env.dir.path();
    two_partner_certs(&env);
    fs::copy(env.path("one.pem"), env.path("trust/partner.pem")).unwrap();
    env.config(&format!("{SERVER}{PARTNER}"));
    git(&env, root, &["add", "certs.toml", "trust"]);
    commit_all(&env, root, "partner one");
    env.run(&["apply", "--yes"]).success();
    fs::copy(env.path("two.pem"), env.path("trust/partner.pem")).unwrap();
    commit_all(&env, root, "partner two");

    let at_v1 = env.run(&["plan", "--rev", "HEAD~1", "--detailed-exitcode"]);
    assert_eq!(at_v1.code, 0, "{}{}", at_v1.stdout, at_v1.stderr);
    let at_v2 = env
        .run(&["plan", "--rev", "HEAD", "--json"])
        .success()
        .json();
    assert_eq!(at_v2["changes"][0]["action"], "replace", "{at_v2:#}");
    assert_eq!(at_v2["changes"][0]["key"], "partner");

    // The upload file is read from git, not from the disk.
    fs::remove_file(env.path("trust/partner.pem")).unwrap();
    let gone = env.run(&["plan", "--rev", "HEAD~1", "--detailed-exitcode"]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    env.run(&["plan"]).failure();
}

#[test]
fn require_clean_covers_the_files_certs_toml_references() {
    let env = git_repo();
    let root = env.dir.path();
    two_partner_certs(&env);
    fs::copy(env.path("one.pem"), env.path("trust/partner.pem")).unwrap();
    env.config(&format!("{SERVER}{PARTNER}"));
    git(&env, root, &["add", "certs.toml", "trust"]);
    let c1 = commit_all(&env, root, "partner one");
    // Not committed: the file certs.toml names now holds another certificate.
    fs::copy(env.path("two.pem"), env.path("trust/partner.pem")).unwrap();
    let r = env.run(&["apply", "--yes", "--require-clean"]);
    if r.code == 0 {
        let two = common::openssl_thumbprint(&env.path("two.pem"));
        panic!(
            "applied {two} (uncommitted) under revision {:?} (commit {c1} holds another certificate)",
            revision_of(&env, &env.store())
        );
    }
    assert!(r.stderr.contains("uncommitted"), "{}", r.stderr);
}

#[test]
fn watch_retries_with_backoff_while_the_store_is_locked() {
    let env = Env::new();
    let store = env.store();
    env.config(&with_app("ValidUser"));
    let mut d = spawn(
        &env,
        "watch",
        &["watch", "--interval", "1h", "--lock-timeout", "0s"],
    );
    d.wait_log("start: applied");
    // Another apply holds the lock.
    let holder = LockHolder::hold(&store.join(".lock"));
    let failed = d.count("apply failed");
    d.save_until(
        "the apply to fail on the lock",
        || save_by_rename(&env.path("certs.toml"), &with_app("Operator")),
        || d.count("apply failed") > failed,
    );
    d.wait_log("retrying in");
    assert!(
        d.log().contains("locked by another apply"),
        "{}",
        d.context()
    );
    assert_eq!(
        clearance_of(&env, &store, "app").as_deref(),
        Some("ValidUser")
    );
    // Released: a retry applies it, with no further edit.
    holder.release();
    wait_until(
        "a retry to apply the change once the lock is free",
        || d.context(),
        || clearance_of(&env, &store, "app").as_deref() == Some("Operator"),
    );
    // The store is committed before the log line is written: wait for the line.
    d.wait_log("retry: applied");
    assert!(d.terminate().success(), "{}", d.context());
}

#[test]
fn watch_periodic_recheck_repairs_what_no_file_event_reports() {
    let env = Env::new();
    env.config(&with_app("ValidUser"));
    // 10s is the shortest interval watch takes.
    let mut d = spawn(&env, "watch", &["watch", "--interval", "10s"]);
    d.wait_log("start: applied");
    let export = env.path("exports/cluster.pfx");
    assert!(export.is_file());
    // The export folder is not watched: only the re-check finds the file gone.
    fs::remove_file(&export).unwrap();
    wait_until(
        "the periodic re-check to write the export again",
        || d.context(),
        || export.is_file(),
    );
    d.wait_log("periodic re-check: applied");
    assert!(d.terminate().success(), "{}", d.context());
}

#[test]
fn a_save_made_during_the_start_apply_is_not_lost() {
    let env = Env::new();
    let store = env.store();
    let config = env.path("certs.toml");
    env.config(&with_app("ValidUser"));
    env.run(&["apply", "--yes"]).success();
    // Another apply holds the lock, so the daemon's start attempt (certs.toml already read)
    // waits for it: the daemon opening the lock file is the proof.
    let holder = LockHolder::hold(&store.join(".lock"));
    let d = spawn(&env, "watch", &["watch", "--interval", "1h"]);
    let pid = d.id();
    wait_until(
        "the start attempt to wait for the lock",
        || d.context(),
        || has_open(pid, &store.join(".lock")),
    );
    // Saved after the daemon started and logged "watching certs.toml".
    assert!(d.log().contains("watching"), "{}", d.context());
    save_by_rename(&config, &with_app("Operator"));
    holder.release();
    d.wait_log("start:");
    wait_until(
        "the save made during the start apply to be applied",
        || d.context(),
        || clearance_of(&env, &store, "app").as_deref() == Some("Operator"),
    );
}

#[test]
fn watch_converges_to_the_last_save_of_a_burst() {
    let env = Env::new();
    let store = env.store();
    let config = env.path("certs.toml");
    env.config(&with_app("ValidUser"));
    let mut d = spawn(&env, "watch", &["watch", "--interval", "1h"]);
    d.wait_log("start: applied");
    d.save_until(
        "the first change (the watch is in place)",
        || save_by_rename(&config, &with_app("Operator")),
        || clearance_of(&env, &store, "app").as_deref() == Some("Operator"),
    );
    for round in 0..3 {
        let last = if round % 2 == 0 {
            "ClusterAdmin"
        } else {
            "ValidUser"
        };
        for i in 0..40 {
            let c = ["ValidUser", "Operator", "ClusterAdmin"][i % 3];
            if i % 2 == 0 {
                save_by_rename(&config, &with_app(c));
            } else {
                save_in_place(&config, &with_app(c));
            }
        }
        save_by_rename(&config, &with_app(last));
        wait_until(
            &format!("round {round} to converge to {last}"),
            || d.context(),
            || {
                clearance_of(&env, &store, "app").as_deref() == Some(last)
                    && env.run(&["plan", "--detailed-exitcode"]).code == 0
            },
        );
    }
    assert!(d.terminate().success(), "{}", d.context());
}

// ---------------------------------------------------------------------------------------------
// Issue 11: what a pull-request author controls (the repository's files) and what a local user
// near the store can reach (the git cache, the export folder).

/// A value only this test's environment holds: must never reach the output.
const CANARY: &str = "ci-token-5f0c1e9d";

/// A pull request replaces certs.toml with a link to the CI runner's environment: the review
/// plan refuses the link and prints nothing of what it points to (#1).
#[test]
fn plan_base_refuses_a_certs_toml_linked_out_of_the_repository() {
    let env = git_repo().env("CI_DEPLOY_TOKEN", CANARY);
    let root = env.dir.path();
    env.config(&format!("{SERVER}{TWO_CLIENTS}"));
    commit_all(&env, root, "two clients");
    git(&env, root, &["checkout", "-q", "-b", "pr"]);
    fs::remove_file(env.path("certs.toml")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", env.path("certs.toml")).unwrap();
    commit_all(&env, root, "innocent change");

    for args in [
        &["plan", "--base", "main", "--markdown"][..],
        &["plan", "--base", "main", "--json"][..],
        &["plan"][..],
        &["validate"][..],
        &["apply", "--yes"][..],
    ] {
        let r = env.run(args);
        let shown = format!("{args:?}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
        assert_eq!(r.code, 1, "{shown}");
        assert!(r.stderr.contains("symbolic link"), "{shown}");
        assert!(r.stderr.contains("certs.toml"), "{shown}");
        assert!(
            !r.stdout.contains(CANARY) && !r.stderr.contains(CANARY),
            "{shown}"
        );
    }
    // At the revision, git holds the link as a link: refused too, never read as the file.
    let r = env.run(&["plan", "--rev", "pr"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("is a symbolic link at revision 'pr'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("/proc/self/environ\n"), "{}", r.stderr);
    assert!(!env.store().exists());
}

/// A link that stays inside the repository is a file under review like any other: accepted.
/// An upload linked out of the repository is refused, in the work tree and at a revision (#1).
#[test]
fn uploads_linked_out_of_the_repository_are_refused() {
    let env = git_env();
    two_partner_certs(&env);
    let root = env.dir.path();
    git(&env, root, &["init", "-q", "-b", "main"]);
    fs::create_dir_all(env.path("trust")).unwrap();
    fs::copy(env.path("one.pem"), env.path("trust/one.pem")).unwrap();
    std::os::unix::fs::symlink("one.pem", env.path("trust/partner.pem")).unwrap();
    env.config(&format!(
        "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\nupload = \"trust/partner.pem\"\n"
    ));
    commit_all(&env, root, "partner, linked inside the repository");
    env.run(&["plan"]).success();

    // The link now leads out of the repository (a file only this machine has).
    let outside = tempfile::tempdir().unwrap();
    fs::copy(env.path("two.pem"), outside.path().join("two.pem")).unwrap();
    fs::remove_file(env.path("trust/partner.pem")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("two.pem"),
        env.path("trust/partner.pem"),
    )
    .unwrap();
    commit_all(&env, root, "partner, linked out");
    for args in [&["plan"][..], &["apply", "--yes"][..], &["validate"][..]] {
        let r = env.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("clients.partner.upload")
                && r.stderr
                    .contains("symbolic link leading out of the repository"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = env.run(&["plan", "--rev", "HEAD"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("is a symbolic link at revision"),
        "{}",
        r.stderr
    );
    assert!(!env.store().exists());
}

/// `watch --git` reads a commit from git objects: a committed link to a secret file is refused
/// and logged without a line of the file; the last good state stays. The cache is never checked
/// out, so there is no work tree another user could swap files in (#1, #4).
#[test]
fn watch_git_refuses_a_committed_link_and_never_checks_out() {
    let env = git_env();
    let (remote, work, c1) = fleet_repo(&env);
    let shadow = env.path("shadow");
    fs::write(&shadow, "root:$6$SHADOWHASH:19000:0:99999:7:::\n").unwrap();
    let store = env.path("store1");
    let mut daemons = fleet_daemons(&env, &remote, 1);
    wait_fleet_at(&env, &daemons, &format!("main@sha1:{c1}"));
    let cache = env.path(".store1.git-cache");
    assert!(cache.join(".git").is_dir());
    assert!(
        !cache.join("certs.toml").exists() && !cache.join("nodes").exists(),
        "the cache has a work tree: {:?}",
        fs::read_dir(&cache).unwrap().collect::<Vec<_>>()
    );
    let registry = fs::read(store.join("registry.toml")).unwrap();

    fs::remove_file(work.join("certs.toml")).unwrap();
    std::os::unix::fs::symlink(&shadow, work.join("certs.toml")).unwrap();
    let c2 = publish(&env, &work, &remote, "link");
    daemons[0].wait_log(&format!("commit {}", &c2[..12]));
    daemons[0].wait_log("is invalid");
    let log = daemons[0].log();
    assert!(log.contains("symbolic link"), "{log}");
    assert!(!log.contains("SHADOWHASH"), "{log}");
    assert_eq!(fs::read(store.join("registry.toml")).unwrap(), registry);
    assert_eq!(
        revision_of(&env, &store).as_deref(),
        Some(format!("main@sha1:{c1}").as_str())
    );

    // A node certificate linked out of the repository: refused the same way.
    fs::remove_file(work.join("certs.toml")).unwrap();
    fs::write(work.join("certs.toml"), FLEET_CONFIG).unwrap();
    fs::remove_file(work.join("nodes/a.pfx")).unwrap();
    std::os::unix::fs::symlink(&shadow, work.join("nodes/a.pfx")).unwrap();
    let c3 = publish(&env, &work, &remote, "node link");
    daemons[0].wait_log(&format!("commit {}", &c3[..12]));
    daemons[0].wait_log("nodes/a.pfx is a symbolic link at revision");
    assert!(!daemons[0].log().contains("SHADOWHASH"));
    assert_eq!(fs::read(store.join("registry.toml")).unwrap(), registry);
    assert!(daemons[0].terminate().success());
}

/// A `watch --git` daemon (root on a server) writes the export next to its store; a commit
/// cannot aim it anywhere else unless the machine allows that path (#2).
#[test]
fn watch_git_refuses_export_paths_the_machine_did_not_allow() {
    let env = git_env();
    let (remote, work, _c1) = fleet_repo(&env);
    let elsewhere = env.path("etc-elsewhere");
    let cases = [
        format!("{}/cluster.pfx", elsewhere.display()),
        "../../etc-elsewhere/cluster.pfx".to_string(),
        "exports/../../../etc-elsewhere/cluster.pfx".to_string(),
    ];
    fs::create_dir_all(env.path("m1/m2")).unwrap();
    let store = env.path("m1/m2/store");
    let spawn = |name: &str, extra: &[&str]| {
        let mut args = follow_args(&remote, &store);
        args.extend_from_slice(extra);
        spawn(&env, name, &args)
    };
    let mut d = spawn("refuse", &[]);
    for (i, export) in cases.iter().enumerate() {
        fs::write(
            work.join("certs.toml"),
            FLEET_CONFIG.replace(
                "certificates = [{ path = \"nodes/a.pfx\" }]",
                &format!("certificates = [{{ path = \"nodes/a.pfx\" }}]\nexport = \"{export}\""),
            ),
        )
        .unwrap();
        let c = publish(&env, &work, &remote, &format!("export {i}"));
        d.wait_log(&format!("commit {}", &c[..12]));
        d.wait_log_count("--allow-export-path", i);
        assert!(!elsewhere.exists(), "{export}: {}", d.context());
    }
    assert!(d.terminate().success());

    // The machine allows the folder: the last commit is applied, the export written there.
    let allowed = elsewhere.to_str().unwrap().to_string();
    let mut d = spawn("allow", &["--allow-export-path", &allowed]);
    wait_until(
        "the export in the allowed folder",
        || d.context(),
        || elsewhere.join("cluster.pfx").is_file(),
    );
    assert!(store.join("registry.toml").is_file());
    assert!(d.terminate().success());
}

/// Under `umask 000` the git cache is private (0700, its .git too) and the export folder
/// 0755; a cache another user can write to is refused, not used (#4).
#[test]
fn watch_git_cache_and_export_folder_modes_under_umask_000() {
    use std::os::unix::fs::PermissionsExt;
    let env = git_env();
    let (remote, work, _c1) = fleet_repo(&env);
    fs::write(
        work.join("certs.toml"),
        FLEET_CONFIG.replace(
            "certificates = [{ path = \"nodes/a.pfx\" }]",
            "certificates = [{ path = \"nodes/a.pfx\" }]\nexport = \"exports/deep/cluster.pfx\"",
        ),
    )
    .unwrap();
    let c = publish(&env, &work, &remote, "export");
    let watch = |name: &str, store: &Path| {
        env.cmd(&follow_args(&remote, store))
            .umask(0o000)
            .spawn(name)
    };
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;

    let store = env.path("host/a/store");
    let mut d = watch("umask", &store);
    wait_until(
        "the commit to be applied",
        || d.context(),
        || revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c}").as_str()),
    );
    let cache = env.path("host/a/.store.git-cache");
    assert_eq!(mode(&cache), 0o700, "{}", d.context());
    assert_eq!(mode(&cache.join(".git")), 0o700);
    assert_eq!(mode(&env.path("host")), 0o755);
    assert_eq!(mode(&env.path("host/a")), 0o755);
    assert_eq!(mode(&env.path("host/a/exports")), 0o755);
    assert_eq!(mode(&env.path("host/a/exports/deep")), 0o755);
    assert!(env.path("host/a/exports/deep/cluster.pfx").is_file());
    assert!(d.terminate().success());

    // A cache another user could write to: refused at start, with what to do.
    chmod_777(&cache);
    let mut d = watch("open-cache", &store);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", d.context());
    assert!(
        d.log().contains("writable by other users") && d.log().contains("remove it"),
        "{}",
        d.context()
    );
    assert_eq!(mode(&cache), 0o777, "the refused cache was changed");

    // A cache that is a link: refused too.
    fs::remove_dir_all(&cache).unwrap();
    fs::create_dir(env.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere"), &cache).unwrap();
    let mut d = watch("linked-cache", &store);
    assert_eq!(d.wait_exit().code(), Some(1), "{}", d.context());
    assert!(d.log().contains("symbolic link"), "{}", d.context());
    assert_eq!(fs::read_dir(env.path("elsewhere")).unwrap().count(), 0);
}

fn chmod_777(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
}

/// `watch --git` takes the bounded periods of every watch: an absurd --poll or --interval is
/// a usage error (exit 1), never a panic (#12).
#[test]
fn watch_git_bounds_poll_and_interval() {
    let env = git_env();
    for (flag, value) in [
        ("--poll", "18446744073709551615s"),
        ("--interval", "18446744073709551615s"),
        ("--poll", "0s"),
    ] {
        let r = env.run(&[
            "watch", "--git", "repo", "--branch", "main", flag, value, "--store", "s",
        ]);
        assert_eq!(r.code, 1, "{flag} {value}: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

#[test]
fn watch_git_listener_reports_a_failing_fetch_and_its_recovery() {
    let env = git_env();
    let (remote, _work, c1) = fleet_repo(&env);
    fs::create_dir_all(env.path("m1")).unwrap();
    let store = env.path("m1/store");
    let mut args = follow_args(&remote, &store);
    args.extend(["--listen", "127.0.0.1:0"]);
    let d = spawn(&env, "watch", &args);
    let addr = d.listening();
    let health = || common::daemon::http_get(addr, "/healthz");
    wait_until(
        "the first commit to be applied",
        || d.context(),
        || {
            revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c1}").as_str())
                && health().is_some_and(|(c, _)| c == 200)
        },
    );
    // The remote goes away: the source of truth cannot be read, and /healthz says so.
    let moved = env.path("remote-moved.git");
    fs::rename(&remote, &moved).unwrap();
    wait_until(
        "/healthz to report the failing fetch",
        || d.context(),
        || health().is_some_and(|(c, body)| c == 503 && body.contains("git fetch failed")),
    );
    fs::rename(&moved, &remote).unwrap();
    wait_until(
        "/healthz to recover",
        || d.context(),
        || health().is_some_and(|(c, _)| c == 200),
    );
}

/// Settings are changes: a pull request that re-points `[cluster] urls` and turns prune on,
/// swaps `ca` or the admin identity, or raises `max_deletions` is reviewed as a flagged
/// settings change (text, Markdown, JSON; exit 2 under --detailed-exitcode), never as "No
/// changes": after merge, the daemon presents its admin identity to the new host or
/// unregisters every stranger.
#[test]
fn plan_base_shows_every_settings_change_flagged() {
    let env = git_repo();
    let root = env.dir.path();
    let clients = "\n[clients.admin]\nclearance = \"ClusterAdmin\"\n";
    let cluster = "\n[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n";
    let base = format!("{SERVER}\n[store]\nmax_deletions = 5\n{clients}{cluster}");
    env.config(&base);
    commit_all(&env, root, "base");
    // The admin .pfx stays on the machine, outside git.
    env.write(".gitignore", "secrets/\n");
    env.write("secrets/admin.pfx", "not read in a review");
    let cases = [
        (
            "cluster",
            base.replace(
                "urls = [\"https://a.cluster.example.com\"]",
                "urls = [\"https://attacker.example.net\"]\nprune = true",
            ),
            vec!["https://attacker.example.net", "prune turned on"],
        ),
        (
            "cluster",
            base.replace("admin = \"admin\"", "admin = \"admin\"\nca = \"system\""),
            vec!["ca: store -> system"],
        ),
        (
            "cluster",
            base.replace(
                "admin = \"admin\"",
                "admin_certificate = { path = \"secrets/admin.pfx\", password_env = \"ADMIN_PFX_PASSWORD\" }",
            ),
            vec!["admin identity changed", "certificate secrets/admin.pfx"],
        ),
        (
            "store",
            base.replace("max_deletions = 5", "max_deletions = 50"),
            vec!["max_deletions: 5 -> 50"],
        ),
    ];
    // No password variable is set: a review reads none (nor the admin .pfx).
    let run = |args: &[&str]| env.run(args);
    for (key, config, says) in cases {
        env.config(&config);
        let text = run(&["plan", "--base", "main", "--detailed-exitcode"]);
        assert_eq!(text.code, 2, "{}", text.shown());
        assert!(
            text.stdout
                .contains(&format!("~ settings {key}  [ESCALATION]")),
            "{}",
            text.stdout
        );
        for s in &says {
            assert!(text.stdout.contains(s), "{s} in {}", text.stdout);
        }
        assert!(!text.stdout.contains("No changes"), "{}", text.stdout);
        let md = run(&["plan", "--base", "main", "--markdown"])
            .success()
            .stdout;
        assert!(md.contains(&format!("| settings | {key} |")), "{md}");
        assert!(md.contains("1 change widens access"), "{md}");
        let json = run(&["plan", "--base", "main", "--json"]).success().json();
        let change = common::json::find(&json["changes"], "target", "settings")
            .cloned()
            .unwrap_or_else(|| panic!("{json:#}"));
        assert_eq!(change["key"], key, "{json:#}");
        assert_eq!(change["escalation"], true, "{json:#}");
        assert_ne!(change["before"], change["after"], "{json:#}");
    }
    // Narrowing (a timeout, fewer deletions allowed) is shown but not flagged.
    env.config(&base.replace("max_deletions = 5", "max_deletions = 2"));
    let json = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    assert_eq!(json["changes"][0]["target"], "settings", "{json:#}");
    assert_eq!(json["changes"][0]["escalation"], false, "{json:#}");
    assert!(!env.store().exists(), "a review made a store");
}

// ---------------------------------------------------------------------------------------------
// policy.toml under review (issue 25)

const ADMIN_ONLY: &str = "version = 1\n\n[[rule]]\nname = \"standing-cluster-admins\"\nclearance = \"ClusterAdmin\"\nallow = [\"admin\"]\n";

fn admins(keys: &[&str]) -> String {
    let mut text = SERVER.to_string();
    for k in keys {
        text.push_str(&format!("\n[clients.{k}]\nclearance = \"ClusterAdmin\"\n"));
    }
    text
}

/// A repository whose main has certs.toml with the ClusterAdmin `admin` and policy.toml
/// allowing only it.
fn policed_repo() -> Env {
    let env = git_repo();
    env.config(&admins(&["admin"]));
    env.write("policy.toml", ADMIN_ONLY);
    commit_all(&env, env.dir.path(), "admin, and a policy");
    env
}

/// The pull request that widens `allow` and adds the ClusterAdmin it allows, at once, is
/// refused by `plan --base main`: BASE's policy is in force. Loosening the policy alone is
/// its own (flagged) change, which passes; once merged, the second pull request passes too.
#[test]
fn a_pr_that_loosens_the_policy_for_itself_is_refused_by_plan_base() {
    let env = policed_repo();
    let root = env.dir.path();
    let loose = ADMIN_ONLY.replace("[\"admin\"]", "[\"admin\", \"ops\"]");
    env.write("policy.toml", &loose);
    env.config(&admins(&["admin", "ops"]));
    for args in [
        &["plan", "--base", "main"][..],
        &["plan", "--base", "main", "--markdown"],
        &["plan", "--base", "main", "--json"],
    ] {
        let run = env.cmd(args).refused(&[
            "refused by policy.toml@main",
            "rule 'standing-cluster-admins' (policy.toml@main:3): clients.ops holds ClusterAdmin",
        ]);
        assert!(
            run.stdout.contains("ops"),
            "the plan is shown\n{}",
            run.shown()
        );
    }
    let md = env
        .cmd(&["plan", "--base", "main", "--markdown"])
        .refused(&["clients.ops"])
        .stdout;
    common::review::assert_review("plan_base_policy_markdown", &md, &[]);
    // The policy change alone: shown, flagged, not refused.
    env.config(&admins(&["admin"]));
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["key"], "policy");
    assert_eq!(changes[0]["escalation"], true);
    commit_all(&env, root, "security: ops may be a ClusterAdmin");
    // Merged: the change that uses it now passes against the new main.
    env.config(&admins(&["admin", "ops"]));
    env.run(&["plan", "--base", "main"]).success();
    // The work tree's own policy is still read (and must parse) under --base.
    env.write("policy.toml", "version = 1\n[[rule]]\nname = \"x\"\n");
    env.cmd(&["plan", "--base", "main"])
        .refused(&["policy.toml:2:1: rule[0]: rule 'x' constrains nothing"]);
}

/// BASE holds policy.toml but no certs.toml yet (the policy merged first): the pull request
/// that adds certs.toml is still judged by BASE's policy, and loosening it shows as a change
/// of that policy, not as a first one.
#[test]
fn base_policy_holds_for_the_pull_request_that_adds_certs_toml() {
    let env = git_repo();
    let root = env.dir.path();
    env.write("policy.toml", ADMIN_ONLY);
    env.write("README.md", "the cluster's certificates\n");
    commit_all(&env, root, "security: the policy first");
    env.write(
        "policy.toml",
        ADMIN_ONLY.replace("[\"admin\"]", "[\"admin\", \"ops\"]"),
    );
    env.config(&admins(&["admin", "ops"]));
    env.cmd(&["plan", "--base", "main"]).refused(&[
        "refused by policy.toml@main",
        "clients.ops holds ClusterAdmin",
    ]);
    // With the policy unchanged the first certs.toml passes, and no policy change is shown.
    env.write("policy.toml", ADMIN_ONLY);
    env.config(&admins(&["admin"]));
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    let changes = plan["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["key"] != "policy"), "{plan:#}");
}

#[test]
fn a_policy_change_is_a_flagged_settings_change() {
    let env = policed_repo();
    env.write(
        "policy.toml",
        format!("{ADMIN_ONLY}\n[[rule]]\nname = \"strong-keys\"\nkeys = [\"ec-p256\"]\n"),
    );
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    let change = &plan["changes"][0];
    assert_eq!(change["target"], "settings", "{plan:#}");
    assert_eq!(change["key"], "policy");
    assert_eq!(change["escalation"], true);
    assert!(
        change["reason"]
            .as_str()
            .unwrap()
            .starts_with("policy.toml changed"),
        "{change:#}"
    );
    assert_eq!(change["after"]["rule strong-keys"], "keys=[ec-p256]");
    assert!(
        change["before"].get("rule strong-keys").is_none(),
        "{change:#}"
    );
    let text = env.run(&["plan", "--base", "main"]).success().stdout;
    assert!(text.contains("ESCALATION"), "{text}");
    assert!(
        text.contains("rule strong-keys: (none) -> keys=[ec-p256]"),
        "{text}"
    );
    // A comment is no change of policy.
    env.write(
        "policy.toml",
        format!("# reviewed by security\n{ADMIN_ONLY}"),
    );
    let same = env.run(&["plan", "--base", "main", "--detailed-exitcode"]);
    assert_eq!(same.code, 0, "{}", same.shown());
    // A local apply records the policy; the next plan has no change, a new rule is one.
    env.write("policy.toml", ADMIN_ONLY);
    env.run(&["apply", "--yes"]).success();
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.shown());
    env.write(
        "policy.toml",
        ADMIN_ONLY.replace("[\"admin\"]", "[\"admin\", \"ops\"]"),
    );
    let local = env.run(&["plan", "--json"]).success().json();
    assert_eq!(local["changes"][0]["key"], "policy", "{local:#}");
    assert_eq!(local["changes"][0]["escalation"], true);
}

#[test]
fn plan_base_keeps_base_policy_when_the_pr_deletes_it() {
    let env = policed_repo();
    fs::remove_file(env.path("policy.toml")).unwrap();
    env.config(&admins(&["admin", "ops"]));
    env.cmd(&["plan", "--base", "main"]).refused(&[
        "refused by policy.toml@main",
        "clients.ops holds ClusterAdmin",
    ]);
    // The deletion alone is shown as a flagged change.
    env.config(&admins(&["admin"]));
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    let change = &plan["changes"][0];
    assert_eq!(change["key"], "policy", "{plan:#}");
    assert_eq!(change["escalation"], true);
    assert!(change["reason"]
        .as_str()
        .unwrap()
        .starts_with("policy.toml removed"));
    // A pull request adding the first policy is reviewed, not yet enforced.
    let env = git_repo();
    env.config(&admins(&["admin", "ops"]));
    commit_all(&env, env.dir.path(), "two admins");
    env.write("policy.toml", ADMIN_ONLY);
    let plan = env
        .run(&["plan", "--base", "main", "--json"])
        .success()
        .json();
    assert_eq!(plan["changes"][0]["key"], "policy", "{plan:#}");
    // `--rev` reads the policy of that revision: none at the commit, so nothing refuses it.
    env.run(&["plan", "--rev", "main"]).success();
    // A --policy outside the repository cannot be read at a revision.
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("p.toml");
    fs::write(&file, ADMIN_ONLY).unwrap();
    env.cmd(&["plan", "--base", "main", "--policy", file.to_str().unwrap()])
        .refused(&["cannot be read at revision 'main'"]);
}

/// `watch --git` reads policy.toml from the commit it applies: a commit that breaks it is
/// logged and not applied (the last good state stays), the next good one is.
#[test]
fn watch_git_reads_policy_from_the_commit() {
    let env = git_env();
    let (remote, work, c1) = fleet_repo(&env);
    let store = env.path("m1/store");
    fs::create_dir_all(env.path("m1")).unwrap();
    let mut d = spawn(&env, "watch", &follow_args(&remote, &store));
    wait_until(
        "the first commit to be applied",
        || d.context(),
        || revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c1}").as_str()),
    );
    let registry = fs::read(store.join("registry.toml")).unwrap();
    // bob made a ClusterAdmin while the policy allows none.
    fs::write(
        work.join("policy.toml"),
        "version = 1\n[[rule]]\nname = \"no-cluster-admins\"\nclearance = \"ClusterAdmin\"\nallow = []\n",
    )
    .unwrap();
    fs::write(
        work.join("certs.toml"),
        FLEET_CONFIG.replace("clearance = \"Operator\"", "clearance = \"ClusterAdmin\""),
    )
    .unwrap();
    let c2 = publish(&env, &work, &remote, "bob is admin, against the policy");
    d.wait_log(&format!("commit {}", &c2[..12]));
    d.wait_log("policy: refused by policy.toml@");
    d.wait_log("rule 'no-cluster-admins'");
    assert_eq!(fs::read(store.join("registry.toml")).unwrap(), registry);
    // The policy itself is in the commit: a commit dropping the rule is applied.
    fs::write(work.join("policy.toml"), "version = 1\n").unwrap();
    let c3 = publish(&env, &work, &remote, "policy relaxed");
    wait_until(
        "the relaxed commit to be applied",
        || d.context(),
        || revision_of(&env, &store).as_deref() == Some(format!("main@sha1:{c3}").as_str()),
    );
    assert_eq!(
        clearance_of(&env, &store, "bob").as_deref(),
        Some("ClusterAdmin")
    );
    assert!(d.terminate().success(), "{}", d.context());
}

/// `watch --git --policy FILE`: FILE is a path inside the repository, like `-c`, read from each
/// commit's checkout (it was read relative to the daemon's folder, so every commit failed);
/// one outside the repository is refused before anything runs.
#[test]
fn watch_git_reads_the_policy_flag_inside_the_repository() {
    let env = git_env();
    let (remote, work, _) = fleet_repo(&env);
    let store = env.path("m1/store");
    fs::create_dir_all(env.path("m1")).unwrap();
    fs::write(
        work.join("strict.toml"),
        "version = 1\n[[rule]]\nname = \"no-operators\"\nclearance = \"Operator\"\nallow = []\n",
    )
    .unwrap();
    let c2 = publish(&env, &work, &remote, "a stricter policy, named by --policy");
    let mut args = follow_args(&remote, &store);
    args.extend(["--policy", "strict.toml"]);
    let mut d = spawn(&env, "watch", &args);
    d.wait_log(&format!("commit {}", &c2[..12]));
    d.wait_log("rule 'no-operators'");
    assert!(!store.join("registry.toml").exists(), "{}", d.context());
    assert!(d.terminate().success(), "{}", d.context());
    let mut outside = follow_args(&remote, &store);
    outside.extend(["--policy", "/etc/ravencert/policy.toml"]);
    let run = env.run(&outside);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(
        run.stderr
            .contains("with --git, --policy names policy.toml inside the repository"),
        "{}",
        run.shown()
    );
}
