//! Secrets stay secret, and private files stay private, through every command that reads
//! certs.toml: validate, plan (text, --json --diff, --markdown, --out), apply (--yes, --json,
//! a saved plan, --replace), status (text, --json, --html), export, and watch (a change applied
//! while it runs, its listener's /metrics, /healthz and / scraped, then SIGTERM through the
//! `kill` command).
//!
//! Passwords come from the environment (password_env) and from files (password_file); an
//! uploaded .pfx is protected too. After every command: no password, no "PRIVATE KEY" text, no
//! bytes of an issued or uploaded .pfx and no private key (raw, hex or base64, whole or any
//! window of it) appears on stdout, stderr, in the watch log, a saved plan file, or the store's
//! registry files; and everything under store/server and store/issued is mode 0600 in 0700
//! folders (nothing in the store is open to group or others) — also when every command runs
//! under `umask 000`.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{Cmd, Env};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

const ENV_PW: &str = "S3cr3t-env-7f1c";
const FILE_PW: &str = "S3cr3t-file-99aa";
/// The password of the uploaded partner .pfx (from a password file too).
const UPLOAD_PW: &str = "S3cr3t-upload-5d0e";
const PASSWORDS: [&str; 3] = [ENV_PW, FILE_PW, UPLOAD_PW];

/// certs.toml: generated clients with a password from the environment, from a file, and
/// none; an upload protected by a password file. `extra` is appended.
fn config(extra: &str) -> String {
    format!(
        r#"{}
[clients.admin]
clearance = "ClusterAdmin"

[clients.env-app]
clearance = "ValidUser"
databases = {{ Orders = "ReadWrite" }}
password_env = "ENV_APP_PFX_PASSWORD"

[clients.file-app]
clearance = "Operator"
password_file = "secrets/file-app.pass"

[clients.partner]
clearance = "ValidUser"
databases = {{ Orders = "Read" }}
upload = "trust/partner.pfx"
password_file = "secrets/partner.pass"
{extra}"#,
        common::SERVER
    )
}

/// `ravencert ARGS`, under `umask 000` when asked.
fn command<'a>(env: &'a Env, umask000: bool, args: &[&str]) -> Cmd<'a> {
    let cmd = env.cmd(args);
    if umask000 {
        cmd.umask(0o000)
    } else {
        cmd
    }
}

/// What must never show: byte strings (each window of a secret blob), by window length.
#[derive(Default)]
struct Forbidden {
    by_len: HashMap<usize, HashMap<Vec<u8>, String>>,
}

impl Forbidden {
    /// Forbids `needle` itself.
    fn exact(&mut self, what: &str, needle: &[u8]) {
        self.by_len
            .entry(needle.len())
            .or_default()
            .insert(needle.to_vec(), what.to_string());
    }

    /// Forbids every window of `len` bytes of `blob` (all of it when shorter).
    fn windows(&mut self, what: &str, blob: &[u8], len: usize) {
        if blob.len() <= len {
            self.exact(what, blob);
            return;
        }
        let set = self.by_len.entry(len).or_default();
        for (i, w) in blob.windows(len).enumerate() {
            set.entry(w.to_vec())
                .or_insert_with(|| format!("{what} (bytes from offset {i})"));
        }
    }

    /// Forbids a binary secret as raw bytes, as hex (both cases) and as base64.
    fn binary(&mut self, what: &str, der: &[u8], hex_too: bool) {
        self.windows(&format!("{what}, raw"), der, 16);
        if hex_too {
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            self.windows(&format!("{what}, hex"), hex.as_bytes(), 32);
            self.windows(&format!("{what}, HEX"), hex.to_uppercase().as_bytes(), 32);
        }
        self.windows(
            &format!("{what}, base64"),
            BASE64.encode(der).as_bytes(),
            24,
        );
    }

    /// The first forbidden thing in `hay`.
    fn find(&self, hay: &[u8]) -> Option<String> {
        for (len, set) in &self.by_len {
            if hay.len() < *len {
                continue;
            }
            for w in hay.windows(*len) {
                if let Some(what) = set.get(w) {
                    return Some(what.clone());
                }
            }
        }
        None
    }
}

/// The unencrypted PKCS#8 DER of a PEM private key, trying each password of the walk.
fn key_der(path: &Path) -> Vec<u8> {
    common::openssl::key_der(path, &["", ENV_PW, FILE_PW, UPLOAD_PW])
        .unwrap_or_else(|| panic!("cannot read the private key {}", path.display()))
}

/// The base64 body of a PEM file (its lines between the BEGIN and END lines, joined).
fn pem_body(pem: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect::<String>()
        .into_bytes()
}

/// One walk-through: every command, every output checked, with or without `umask 000`.
struct Walk {
    env: Env,
    umask000: bool,
    forbidden: Forbidden,
    /// Every text produced so far: (where it came from, its bytes).
    outputs: Vec<(String, Vec<u8>)>,
    /// The private files (by content) already learned.
    seen_keys: HashSet<Vec<u8>>,
}

impl Walk {
    fn new(umask000: bool) -> Walk {
        let env = Env::new().env("ENV_APP_PFX_PASSWORD", ENV_PW);
        fs::create_dir_all(env.path("trust")).unwrap();
        common::openssl::partner_upload(&env.path("trust"), UPLOAD_PW);
        env.write("secrets/file-app.pass", format!("{FILE_PW}\n"));
        env.write("secrets/partner.pass", format!("{UPLOAD_PW}\n"));
        env.config(&config(""));

        let mut forbidden = Forbidden::default();
        for pw in PASSWORDS {
            forbidden.exact(&format!("the password {pw}"), pw.as_bytes());
        }
        forbidden.exact("PRIVATE KEY text", b"PRIVATE KEY");
        let pfx = fs::read(env.path("trust/partner.pfx")).unwrap();
        forbidden.binary("the uploaded partner.pfx", &pfx, false);
        let key = key_der(&env.path("trust/partner.key"));
        forbidden.binary("the uploaded partner's private key", &key, true);
        Walk {
            env,
            umask000,
            forbidden,
            outputs: Vec::new(),
            seen_keys: HashSet::new(),
        }
    }

    fn label(&self, args: &[&str]) -> String {
        format!(
            "{}ravencert {}",
            if self.umask000 { "(umask 000) " } else { "" },
            args.join(" ")
        )
    }

    /// Runs a command that must succeed, then checks everything.
    fn ok(&mut self, args: &[&str]) -> String {
        let raw = command(&self.env, self.umask000, args).output();
        let label = self.label(args);
        assert_eq!(
            raw.status.code(),
            Some(0),
            "{label} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&raw.stdout),
            String::from_utf8_lossy(&raw.stderr)
        );
        let stdout = String::from_utf8_lossy(&raw.stdout).into_owned();
        self.outputs
            .push((format!("stdout of {label}"), raw.stdout));
        self.outputs
            .push((format!("stderr of {label}"), raw.stderr));
        self.after(&label);
        stdout
    }

    /// After each command: learn the private material now in the store, check the modes, and
    /// check every output and file so far against everything forbidden.
    fn after(&mut self, label: &str) {
        self.learn_store_secrets();
        self.check_modes(label);
        let store = self.env.store();
        for name in ["registry.toml", ".registry.applied", ".lock", ".gitignore"] {
            if let Ok(bytes) = fs::read(store.join(name)) {
                self.outputs
                    .push((format!("store/{name} after {label}"), bytes));
            }
        }
        for (what, bytes) in &self.outputs {
            if let Some(found) = self.forbidden.find(bytes) {
                panic!(
                    "{found} appears in {what}:\n{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }

    /// Adds every private key and .pfx under store/server and store/issued to the forbidden.
    fn learn_store_secrets(&mut self) {
        let store = self.env.store();
        if !store.exists() {
            return;
        }
        for e in walkdir::WalkDir::new(&store).follow_links(false) {
            let e = e.unwrap();
            let path = e.path().to_path_buf();
            if !e.file_type().is_file() {
                continue;
            }
            let rel = path
                .strip_prefix(&store)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let bytes = fs::read(&path).unwrap();
            if self.seen_keys.contains(&bytes) {
                continue;
            }
            if rel.ends_with(".key") {
                let der = key_der(&path);
                self.forbidden
                    .binary(&format!("the private key store/{rel}"), &der, true);
                self.forbidden.windows(
                    &format!("the PEM body of store/{rel}"),
                    &pem_body(&bytes),
                    24,
                );
            } else if rel.ends_with(".pfx") {
                self.forbidden
                    .binary(&format!("the bundle store/{rel}"), &bytes, false);
            } else {
                continue;
            }
            self.seen_keys.insert(bytes);
        }
    }

    /// store/server and store/issued: files 0600, folders 0700; the store folder 0700; no
    /// link; nothing in the store open to group or others.
    fn check_modes(&self, label: &str) {
        let store = self.env.store();
        if !store.exists() {
            return;
        }
        for (path, (mode, _)) in self.env.snapshot() {
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(&store).unwrap();
            let mode = mode & 0o7777;
            assert!(
                !meta.file_type().is_symlink(),
                "{} is a link (after {label})",
                path.display()
            );
            assert_eq!(
                mode & 0o077,
                0,
                "{} is open to group or others: {mode:04o} (after {label})",
                path.display()
            );
            let private = rel.as_os_str().is_empty()
                || rel.starts_with("server")
                || rel.starts_with("issued");
            if private {
                let expected = if meta.is_dir() { 0o700 } else { 0o600 };
                assert_eq!(
                    mode,
                    expected,
                    "{} has mode {mode:04o}, expected {expected:04o} (after {label})",
                    path.display()
                );
            }
        }
    }

    fn thumbprints(&self) -> Vec<(String, String)> {
        let r = self.env.cmd(&["status", "--json"]).output();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.stdout) else {
            return Vec::new();
        };
        v["certificates"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["key"].as_str().unwrap_or_default().to_string(),
                            c["thumbprint"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn registered(&self, key: &str) -> Option<String> {
        self.thumbprints()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t)
    }

    /// A saved plan file: checked like every output.
    fn plan_file(&mut self, rel: &str) {
        let bytes = fs::read(self.env.path(rel)).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains("ravencert saved plan"), "{text}");
        self.outputs.push((format!("the saved plan {rel}"), bytes));
        self.after(&format!("reading {rel}"));
    }

    /// Runs `watch`, changes certs.toml while it runs (until the change is applied), then
    /// stops it with `kill -TERM` and checks its exit and its log.
    fn watch(&mut self) {
        let args = ["watch", "--interval", "1h", "--listen", "127.0.0.1:0"];
        let mut daemon = command(&self.env, self.umask000, &args).spawn("watch");
        let addr = daemon.listening();
        daemon.wait_log("start:");
        // The change: a new client whose password comes from the password file, and env-app's
        // permissions. Saved again every 2 s until applied (the first event may come before
        // the file watch is in place).
        let changed = config(
            "\n[clients.watched]\nclearance = \"Operator\"\npassword_file = \"secrets/file-app.pass\"\n",
        )
        .replace("Orders = \"ReadWrite\"", "Orders = \"Read\"");
        daemon.save_until(
            "watch to apply the change",
            || common::save_by_rename(&self.env.path("certs.toml"), &changed),
            || self.registered("watched").is_some(),
        );
        // The apply that registered it may still be finishing its bundles: wait for its log.
        daemon.wait_log("stored watched");
        // What the listener serves once the change is in its snapshot.
        common::wait_until(
            "the listener to show the change",
            || daemon.context(),
            || {
                common::daemon::http_get(addr, "/metrics")
                    .is_some_and(|(_, body)| body.contains("key=\"watched\""))
            },
        );
        for path in ["/metrics", "/healthz", "/"] {
            let (_, body) = common::daemon::http_get(addr, path).expect("the listener answers");
            self.outputs.push((
                format!("GET {path} of {}", self.label(&args)),
                body.into_bytes(),
            ));
        }
        let status = daemon.terminate();
        let log_text = daemon.log();
        assert_eq!(
            status.code(),
            Some(0),
            "watch exit after SIGTERM\n{log_text}"
        );
        assert!(log_text.contains("stopping"), "{log_text}");
        assert!(!log_text.contains("panicked"), "{log_text}");
        let label = self.label(&["watch"]);
        self.outputs
            .push((format!("the log of {label}"), log_text.into_bytes()));
        self.outputs.push((
            format!("stdout of {label}"),
            fs::read(self.env.path("watch.out")).unwrap(),
        ));
        self.after(&label);
    }
}

fn walk_through(umask000: bool) {
    let mut w = Walk::new(umask000);

    // Before the store exists: everything is to be created.
    w.ok(&["validate"]);
    let text = w.ok(&["plan"]);
    assert!(text.contains("+ client env-app"), "{text}");
    let json = w.ok(&["plan", "--json", "--diff"]);
    assert!(json.contains("registry_diff"), "{json}");
    w.ok(&["plan", "--markdown"]);
    w.ok(&["plan", "--out", "first.plan"]);
    w.plan_file("first.plan");
    w.ok(&["apply", "first.plan", "--yes"]);
    assert!(w.registered("env-app").is_some() && w.registered("file-app").is_some());
    assert!(w.registered("partner").is_some());
    w.ok(&["status"]);
    w.ok(&["status", "--json"]);
    let page = w.ok(&["status", "--html"]);
    assert!(page.contains("env-app"), "{page}");
    w.ok(&["plan", "--json", "--diff"]);

    // A change reviewed as a saved plan and applied from it.
    w.env.config(&config(
        "\n[clients.late]\nclearance = \"ValidUser\"\npassword_env = \"ENV_APP_PFX_PASSWORD\"\n",
    ));
    w.ok(&["validate"]);
    let text = w.ok(&["plan", "--diff"]);
    assert!(text.contains("late"), "{text}");
    w.ok(&["plan", "--json", "--diff"]);
    w.ok(&["plan", "--markdown"]);
    w.ok(&["plan", "--out", "second.plan"]);
    w.plan_file("second.plan");
    w.ok(&["apply", "second.plan", "--yes"]);
    assert!(w.registered("late").is_some());

    // Re-issues: the passworded bundles are written again (JSON and text output).
    let before = w.registered("env-app");
    let json = w.ok(&["apply", "--yes", "--json", "--replace", "env-app"]);
    assert!(json.contains("\"applied\": true"), "{json}");
    assert_ne!(w.registered("env-app"), before);
    w.ok(&["apply", "--yes", "--replace", "file-app"]);
    w.env
        .config(&config("").replace("\"Operator\"", "\"ClusterAdmin\""));
    w.ok(&["apply", "--yes"]);
    w.ok(&["apply", "--yes", "--json"]);

    w.ok(&["export"]);
    w.ok(&["export", "--out", "elsewhere/cluster.pfx"]);
    w.ok(&["status"]);
    w.ok(&["status", "--json"]);
    w.ok(&["status", "--html"]);

    w.watch();
    w.ok(&["status", "--json"]);
    w.ok(&["plan"]);

    // The walk really produced the private files it checked.
    let issued = w.env.store().join("issued");
    for key in ["env-app", "file-app", "admin", "late", "watched"] {
        let pfx = issued.join(key).join(format!("{key}.pfx"));
        assert!(pfx.is_file(), "{} missing", pfx.display());
        assert_eq!(
            fs::metadata(&pfx).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // server key; admin, env-app, file-app, late, watched and the two re-issues: key + pfx.
    assert!(
        w.seen_keys.len() >= 15,
        "only {} private files",
        w.seen_keys.len()
    );
    assert!(w.outputs.len() > 50);
}

#[test]
fn no_secret_leaks_and_private_files_stay_private() {
    walk_through(false);
}

#[test]
fn no_secret_leaks_and_private_files_stay_private_under_umask_000() {
    walk_through(true);
}

#[test]
fn the_leak_checks_catch_leaks() {
    // The checks themselves: each kind of leak is found.
    let mut f = Forbidden::default();
    f.exact("pw", ENV_PW.as_bytes());
    let der: Vec<u8> = (0u8..=200).collect();
    f.binary("blob", &der, true);
    assert!(f.find(b"error: S3cr3t-env-7f1c\n").is_some());
    let b64 = BASE64.encode(&der);
    assert!(f
        .find(format!("x {} y", &b64[64..128]).as_bytes())
        .is_some());
    let hex: String = der[40..60].iter().map(|b| format!("{b:02X}")).collect();
    assert!(f.find(hex.as_bytes()).is_some());
    assert!(f.find(&der[100..130]).is_some());
    assert!(f.find(b"nothing secret here, just a thumbprint").is_none());
}

// ---------------------------------------------------------------------------------------------
// Secrets only when used (issue 22, part B)

const APP_PW: &str = "app-bundle-secret-4q";

/// A generated server installed for a node, `admin` (the cluster's admin, no password) and
/// `app`, whose bundle password comes from APP_PFX_PASSWORD. `extra` is appended.
fn installed(extra: &str) -> String {
    format!(
        "version = 1\n[server]\ngenerate = true\nname = \"localhost\"\nkey = \"ec-p256\"\n\
         install = {{ path = \"node/server.pfx\", pfx = \"legacy\" }}\n[defaults]\nkey = \"ec-p256\"\n\n\
         [clients.admin]\nclearance = \"ClusterAdmin\"\n\n\
         [clients.app]\nclearance = \"Operator\"\npassword_env = \"APP_PFX_PASSWORD\"\n\n\
         [cluster]\nurls = [\"https://127.0.0.1:1\"]\nadmin = \"admin\"\n{extra}"
    )
}

/// The installed config applied once with app's bundle password; later runs get none.
fn applied_with_app_password() -> Env {
    let env = Env::new();
    env.config(&installed(""));
    env.run_with(
        &["apply", "--yes", "--offline"],
        &[("APP_PFX_PASSWORD", APP_PW)],
    )
    .success();
    env
}

/// `settings` (a path and a thumbprint), `status` and a plan with nothing to do never write
/// app's bundle, so they need no APP_PFX_PASSWORD: they succeed without it, and the plan says
/// that app's bundle password was not compared.
#[test]
fn settings_status_and_a_no_op_plan_need_no_unrelated_bundle_password() {
    let env = applied_with_app_password();

    let settings = env.run(&["settings"]).success();
    assert!(
        settings.json()["Security.WellKnownCertificates.Admin"].is_string(),
        "{}",
        settings.shown()
    );
    env.run(&["status", "--offline"]).success();
    let plan = env.run(&["plan", "--offline", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.shown());
    assert!(
        plan.stdout.contains("clients.app.password_env")
            && plan.stdout.contains("APP_PFX_PASSWORD is not set"),
        "the plan says what it did not compare: {}",
        plan.shown()
    );
    let json = env.run(&["plan", "--offline", "--json"]).success().json();
    assert_eq!(json["changes"], serde_json::json!([]), "{json:#}");
    assert_eq!(
        json["not_read"][0]["key"], "clients.app.password_env",
        "{json:#}"
    );
}

/// A password is needed when its bundle is written: a new client whose variable is unset is
/// planned (the plan needs no secret), and apply refuses it with exit 1, naming that client's
/// variable as not set — and nothing about the unrelated `app`, whose variable is unset too.
/// Nothing is written; once the new client's variable is set, apply succeeds without app's.
#[test]
fn a_missing_password_stops_only_the_apply_that_writes_its_bundle() {
    let env = applied_with_app_password();
    env.config(&installed(
        "\n[clients.late]\nclearance = \"ValidUser\"\ndatabases = { Orders = \"Read\" }\npassword_env = \"LATE_PFX_PASSWORD\"\n",
    ));

    let plan = env.run(&["plan", "--offline", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.shown());
    assert!(plan.stdout.contains("+ client late"), "{}", plan.shown());

    let refused = env.cmd(&["apply", "--yes", "--offline"]).refused(&[
        "clients.late",
        "environment variable LATE_PFX_PASSWORD is not set",
    ]);
    assert!(
        !refused.stderr.contains("APP_PFX_PASSWORD") && !refused.stderr.contains("invalid"),
        "{}",
        refused.shown()
    );

    env.run_with(
        &["apply", "--yes", "--offline"],
        &[("LATE_PFX_PASSWORD", "late-bundle-secret-2w")],
    )
    .success()
    .hides(&["late-bundle-secret-2w", APP_PW]);
    common::openssl::pkcs12(
        &env.store().join("issued/late/late.pfx"),
        "late-bundle-secret-2w",
        &["-info", "-noout"],
    )
    .success();
}
