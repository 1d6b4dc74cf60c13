//! A small harness for tests of the `ravencert` binary: a temp folder with a certs.toml, runs of
//! the binary, snapshots of the store, and the real `openssl` command for cross-checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(
            self.code, 1,
            "expected exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
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

    pub fn env(mut self, k: &str, v: &str) -> Env {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// Runs `ravencert ARGS` in the folder, without a terminal.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ravencert"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .env_remove("RAVENCERT_TEST_NOW")
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run ravencert");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every path under the store with its mode and bytes: compare two to prove nothing changed.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        snapshot(&self.store())
    }

    pub fn status(&self) -> serde_json::Value {
        self.run(&["status", "--json"]).success().json()
    }

    /// The current thumbprint registered for a client key.
    pub fn thumbprint(&self, key: &str) -> String {
        let s = self.status();
        s["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key)
            .unwrap_or_else(|| panic!("{key} not registered: {s}"))["thumbprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn server_pem(&self) -> PathBuf {
        let s = self.status();
        let t = s["server"][0]["thumbprint"].as_str().unwrap().to_string();
        self.store().join("certs").join(format!("{t}.pem"))
    }
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
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

/// Runs the real `openssl` command.
pub fn openssl(args: &[&str]) -> Run {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is installed (.ci/run installs it)");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `openssl x509 -fingerprint -sha1` without colons: the RavenDB thumbprint.
pub fn openssl_thumbprint(pem: &Path) -> String {
    let r = openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha1",
    ])
    .success();
    r.stdout.trim().rsplit('=').next().unwrap().replace(':', "")
}

/// Runs `script` with `bash -c` (under `set -e`) in `dir`; panics with its output on failure.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .current_dir(dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks a certs.toml text against the checked-in JSON schema (schema/certs.schema.json), as an
/// editor with the `#:schema` line would: Ok, or the validator's complaint. A text that is not
/// TOML at all is Err too.
pub fn schema_check(config: &str) -> Result<(), String> {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/certs.schema.json"
        ))
        .expect("schema/certs.schema.json is checked in"),
    )
    .expect("the schema is JSON");
    let value: serde_json::Value = toml::from_str(config).map_err(|e| format!("not TOML: {e}"))?;
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("certs.schema.json", schema)
        .expect("the schema loads");
    let id = compiler
        .compile("certs.schema.json", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema compiles: {e:#}"));
    schemas.validate(&value, id).map_err(|e| format!("{e:#}"))
}

/// Makes a self-signed EC P-256 certificate (valid a year) with the openssl command, as a
/// partner would send one: `cert` and `key` are written under `dir`; `cn` may be any UTF-8.
/// Returns the certificate's thumbprint.
pub fn self_signed(dir: &Path, cert: &str, key: &str, cn: &str) -> String {
    let (cert, key) = (dir.join(cert), dir.join(key));
    for p in [&cert, &key] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    }
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "365",
        "-utf8",
        "-subj",
        &format!("/CN={cn}"),
    ])
    .success();
    openssl_thumbprint(&cert)
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
