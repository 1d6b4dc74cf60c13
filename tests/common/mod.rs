//! The harness of the binary's tests: a temp folder with a certs.toml ([`Env`]), runs of the
//! binary through one builder ([`Cmd`]: env, umask, stdin, timeout, memory cap; refused runs
//! checked to leave the folder unchanged; daemons), folder snapshots, the real `openssl`
//! command for fixtures and cross-checks, and insta filters for outputs reviewed as text.
// Each test binary uses a part of the harness.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod double;
pub mod folder;
pub mod json;
pub mod openssl;
pub mod ravendb;
pub mod review;
pub mod run;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use daemon::{wait_until, Daemon};
pub use folder::{changed_paths, snapshot, Snapshot};
pub use openssl::{openssl, openssl_thumbprint, self_signed};
pub use run::{Cmd, Run};

/// A temp folder the binary runs in, with variables every run of it gets.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
}

/// The server section most tests use: a fast EC key.
pub const SERVER: &str = r#"version = 1
[server]
generate = true
name = "cluster.example.com"
key = "ec-p256"
export = "exports/cluster.pfx"

[defaults]
key = "ec-p256"
"#;

/// certs.toml whose `[server]` imports `certificates` (inline tables, comma-separated) and
/// exports exports/cluster.pfx, then `more` tables, EC P-256 `[defaults]`, and `rest`.
pub fn imported_server(certificates: &str, more: &str, rest: &str) -> String {
    format!(
        r#"version = 1
[server]
certificates = [{certificates}]
export = "exports/cluster.pfx"

{more}[defaults]
key = "ec-p256"

{rest}"#
    )
}

/// Runs `ravencert -c certs.toml settings` in `env` (after an apply) and parses its JSON.
pub fn node_settings(env: &Env) -> ravendb::NodeSettings {
    let run = env.run(&["-c", "certs.toml", "settings"]).success();
    ravendb::NodeSettings::from_json(&run.json()).unwrap_or_else(|e| panic!("{e}\n{}", run.shown()))
}

/// An Env with `ravendb::node_config(key, name)` applied offline (the store made, node/server.pfx
/// installed); returns it and the server certificate's thumbprint.
pub fn applied_node(key: &str, name: &str) -> (Env, String) {
    let env = Env::new();
    env.config(&ravendb::node_config(key, name));
    env.run(&["-c", "certs.toml", "apply", "--yes", "--offline"])
        .success();
    let server_thumb = env.server_thumbprint();
    (env, server_thumb)
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
            envs: Vec::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> &Env {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
        self
    }

    /// Writes certs.toml.
    pub fn config(&self, text: &str) -> &Env {
        self.write("certs.toml", text)
    }

    /// Adds a variable every run gets.
    pub fn env(mut self, k: &str, v: &str) -> Env {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// `ravencert ARGS` in the folder, to be configured and run.
    pub fn cmd(&self, args: &[&str]) -> Cmd<'_> {
        Cmd::new(self, args)
    }

    /// Runs `ravencert ARGS` in the folder, without a terminal.
    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).run()
    }

    pub fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        self.cmd(args).envs(extra_env).run()
    }

    /// Every path under the store with its mode and bytes: compare two to prove nothing changed.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.store())
    }

    /// `status --json` of the store alone (`--offline`: a `[cluster]` is not asked).
    pub fn status(&self) -> serde_json::Value {
        self.run(&["status", "--json", "--offline"])
            .success()
            .json()
    }

    /// The current thumbprint registered for a client key.
    pub fn thumbprint(&self, key: &str) -> String {
        let s = self.status();
        json::find(&s["certificates"], "key", key)
            .unwrap_or_else(|| panic!("{key} not registered: {s}"))["thumbprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every registered client certificate as (key, thumbprint), sorted.
    pub fn registered(&self) -> Vec<(String, String)> {
        let mut out = json::string_pairs(&self.status()["certificates"], "key", "thumbprint");
        out.sort();
        out
    }

    /// The thumbprint of the (first) server certificate.
    pub fn server_thumbprint(&self) -> String {
        self.status()["server"][0]["thumbprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn server_pem(&self) -> PathBuf {
        let t = self.server_thumbprint();
        self.store().join("certs").join(format!("{t}.pem"))
    }
}

/// An editor's save: a temp file next to it, renamed over it.
pub fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(".certs.toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Runs `script` with `bash -c` (under `set -e`) in `dir`; panics with its output on failure.
#[track_caller]
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first character no terminal should receive raw (newline aside), with its byte offset.
pub fn raw_unsafe(text: &str) -> Option<(usize, char)> {
    text.char_indices()
        .find(|(_, c)| *c != '\n' && ravencert::render::is_unsafe_char(*c))
}

/// Fails when `text` holds a character no terminal should receive raw.
#[track_caller]
pub fn assert_no_raw(what: &str, text: &str) {
    if let Some((at, c)) = raw_unsafe(text) {
        panic!(
            "{what} holds U+{:04X} raw at byte {at}:\n{}",
            u32::from(c),
            text.escape_debug()
        );
    }
}

/// Checks a certs.toml text against the checked-in JSON schema (schema/certs.schema.json), as an
/// editor with the `#:schema` line would: Ok, or the validator's complaint. A text that is not
/// TOML at all is Err too.
pub fn schema_check(config: &str) -> Result<(), String> {
    check_against_schema("certs.schema.json", config)
}

/// policy.toml text against schema/policy.schema.json, as [`schema_check`] does certs.toml.
pub fn policy_schema_check(policy: &str) -> Result<(), String> {
    check_against_schema("policy.schema.json", policy)
}

fn check_against_schema(name: &str, text: &str) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("schema/{name} is checked in")),
    )
    .expect("the schema is JSON");
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    let value = toml_to_json(toml::Value::Table(table));
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(name, schema)
        .expect("the schema loads");
    let id = compiler
        .compile(name, &mut schemas)
        .unwrap_or_else(|e| panic!("the schema compiles: {e:#}"));
    schemas.validate(&value, id).map_err(|e| format!("{e:#}"))
}

/// A TOML value as an editor's schema check sees it: a date or time is its text (serde would
/// give toml's private datetime map instead).
fn toml_to_json(v: toml::Value) -> serde_json::Value {
    match v {
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => a.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(t) => t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect(),
        other => serde_json::to_value(other).expect("a TOML scalar is JSON"),
    }
}

/// Markdown rendered the way GitHub renders a pull-request comment (tables, autolinks, alerts,
/// footnotes), with raw HTML let through as GitHub lets some through, so that a test sees any
/// HTML or link that a value smuggles in.
pub fn gfm(md: &str) -> String {
    let mut o = comrak::Options::default();
    o.extension.table = true;
    o.extension.autolink = true;
    o.extension.strikethrough = true;
    o.extension.tasklist = true;
    o.extension.footnotes = true;
    o.extension.alerts = true;
    o.render.r#unsafe = true;
    comrak::markdown_to_html(md, &o)
}
