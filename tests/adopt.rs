//! `ravencert adopt` (SPEC §8) against a real RavenDB 4.1: a cluster populated by REST calls, as
//! the Studio leaves one, is adopted into a certs.toml that changes nothing on day one.

mod common;

use common::ravendb::{ClientCert, Pin, RavenServer};
use common::{openssl, Env};
use serde_json::Value;
use std::path::PathBuf;

/// The cluster's own certificates, made once by a ravencert store (the "existing cluster").
const NODE: &str = r#"version = 1
[server]
generate = true
name = "localhost"
dns = ["localhost"]
key = "rsa-2048"
install = { path = "node/cluster.pfx", pfx = "legacy" }

[defaults]
key = "ec-p256"

[clients.admin]
clearance = "ClusterAdmin"

[cluster]
urls = ["https://127.0.0.1:1"]
admin = "admin"
"#;

/// A running cluster whose admin .pfx and server certificate an adopter is given.
struct Existing {
    node: Env,
    server: RavenServer,
    admin_pfx: PathBuf,
    server_pem: PathBuf,
}

const PFX_PASSWORD: &str = "adopt-secret";

fn existing_cluster() -> Existing {
    let node = Env::new();
    node.config(NODE);
    node.run(&["apply", "--yes", "--offline"]).success();
    let settings = common::node_settings(&node);
    let server_pem = node
        .store()
        .join("certs")
        .join(format!("{}.pem", node.server_thumbprint()));
    let dir = node.store().join("issued/admin");
    let admin = ClientCert {
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
    };
    let admin_pfx = node.path("admin.pfx");
    #[rustfmt::skip]
    openssl(&[
        "pkcs12", "-export", "-in", admin.cert.to_str().unwrap(), "-inkey", admin.key.to_str().unwrap(),
        "-passout", &format!("pass:{PFX_PASSWORD}"), "-out", admin_pfx.to_str().unwrap(),
    ])
    .success();
    let pin = Pin {
        server_pem: server_pem.clone(),
        name: "localhost".into(),
    };
    let server = RavenServer::start_with_settings(&settings, &admin, &pin);
    Existing {
        node,
        server,
        admin_pfx,
        server_pem,
    }
}

impl Existing {
    /// Registers a fresh self-signed certificate (or, with `second`, a two-certificate
    /// collection) by REST, as the Studio's upload does. Returns the thumbprint(s).
    fn upload(&self, name: &str, clearance: &str, perms: &str, second: bool) -> Vec<String> {
        let dir = self.node.dir.path();
        let slug: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let mut thumbs = vec![common::self_signed(
            dir,
            &format!("hand/{slug}.pem"),
            &format!("hand/{slug}.key"),
            &format!("{slug} one"),
        )];
        let mut pem = std::fs::read(self.node.path(&format!("hand/{slug}.pem"))).unwrap();
        if second {
            thumbs.push(common::self_signed(
                dir,
                &format!("hand/{slug}2.pem"),
                &format!("hand/{slug}2.key"),
                &format!("{slug} two"),
            ));
            pem.extend(std::fs::read(self.node.path(&format!("hand/{slug}2.pem"))).unwrap());
        }
        // A collection travels as a key-less PKCS#12 of its certificates, as the Studio sends it.
        let bundle = self.node.path(&format!("hand/{slug}.bundle.pem"));
        std::fs::write(&bundle, &pem).unwrap();
        let pfx = self.node.path(&format!("hand/{slug}.pfx"));
        #[rustfmt::skip]
        openssl(&[
            "pkcs12", "-export", "-nokeys", "-in", bundle.to_str().unwrap(),
            "-passout", "pass:", "-out", pfx.to_str().unwrap(),
        ])
        .success();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pfx).unwrap());
        let body = serde_json::json!({
            "Name": name,
            "Certificate": b64,
            "SecurityClearance": clearance,
            "Permissions": serde_json::from_str::<Value>(perms).unwrap(),
        });
        let (status, answer) =
            self.server
                .curl_json("PUT", "/admin/certificates", Some(&body.to_string()));
        assert!((200..300).contains(&status), "{status} {answer}");
        thumbs
    }

    fn registrations(&self) -> Vec<Value> {
        let (status, body) =
            self.server
                .curl_json("GET", "/admin/certificates?secondary=true", None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["Results"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// `ravencert adopt` into a fresh folder.
    fn adopt(&self) -> (Env, common::Run) {
        let env = Env::new().env("ADMIN_PFX_PASSWORD", PFX_PASSWORD);
        std::fs::copy(&self.server_pem, env.path("server.pem")).unwrap();
        let url = format!("https://localhost:{}", self.server.port());
        let pfx = self.admin_pfx.to_str().unwrap().to_string();
        let run = env.run(&[
            "adopt",
            "--url",
            &url,
            "--admin-certificate",
            &pfx,
            "--password-env",
            "ADMIN_PFX_PASSWORD",
            "--ca",
            "server.pem",
        ]);
        (env, run)
    }
}

fn cluster_changes(plan: &Value) -> Vec<Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == "cluster")
        .cloned()
        .collect()
}

#[test]
fn an_adopted_cluster_plans_no_change_and_an_edit_is_one_edit() {
    let c = existing_cluster();
    c.upload(
        "Orders App",
        "ValidUser",
        r#"{"Orders":"ReadWrite","Invoices":"Admin"}"#,
        false,
    );
    c.upload("orders-app", "ValidUser", r#"{"Orders":"Admin"}"#, false);
    c.upload("Ops Team", "Operator", "{}", false);
    c.upload("Root", "ClusterAdmin", "{}", false);
    let collection = c.upload(
        "Zürich \"Team\"",
        "ValidUser",
        r#"{"Reports":"ReadWrite"}"#,
        true,
    );
    c.upload("日本", "ValidUser", r#"{"Tokyo":"ReadWrite"}"#, false);

    let (env, run) = c.adopt();
    let run = run.success();
    assert!(run.stdout.contains("Wrote"), "{}", run.shown());
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    assert!(toml.starts_with("#:schema "), "{toml}");
    for key in [
        "orders-app",
        "orders-app-2",
        "ops-team",
        "root",
        "z-rich-team",
        "client",
    ] {
        assert!(
            toml.contains(&format!("[clients.{key}]")),
            "{key} in\n{toml}"
        );
    }
    // The collection stays together: both certificates in one upload file.
    let file = std::fs::read_to_string(env.path("trust/z-rich-team.pem")).unwrap();
    assert_eq!(file.matches("BEGIN CERTIFICATE").count(), 2, "{file}");
    // Refuses to overwrite.
    let again = c.adopt_into(&env);
    assert_eq!(again.code, 1, "{}", again.shown());

    env.run(&["validate"]).success();
    common::schema_check(&toml).unwrap();
    assert!(env.path("certs.schema.json").exists());
    let plan = env.run(&["plan", "--json"]).success().json();
    assert!(cluster_changes(&plan).is_empty(), "{plan}");
    let log = env.path("requests.log");
    env.run_with(
        &["apply", "--yes"],
        &[("RAVENCERT_REQUEST_LOG", log.to_str().unwrap())],
    )
    .success();
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(
        sent.lines().all(|l| l.starts_with("GET ")),
        "apply changed the cluster: {sent}"
    );
    let status = env.run(&["status", "--json"]).success().json();
    let states = status["cluster"]["certificates"].as_array().unwrap();
    let clients = c
        .registrations()
        .iter()
        .filter(|r| r["SecurityClearance"] != "ClusterNode")
        .count();
    assert_eq!(states.len(), clients, "{status}");
    assert!(states.iter().all(|s| s["state"] == "in sync"), "{status}");
    assert!(states
        .iter()
        .any(|s| s["thumbprint"] == collection[1].as_str()));

    // An edit of one permission in the adopted certs.toml is one edit on the cluster.
    let edited = toml.replacen("\"Orders\" = \"Admin\"", "\"Orders\" = \"ReadWrite\"", 1);
    assert_ne!(edited, toml);
    env.config(&edited);
    let plan = env.run(&["plan", "--json"]).success().json();
    let changes = cluster_changes(&plan);
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0]["action"], "edit");
    assert_eq!(changes[0]["key"], "orders-app-2");
}

impl Existing {
    fn adopt_into(&self, env: &Env) -> common::Run {
        let url = format!("https://localhost:{}", self.server.port());
        env.run(&[
            "adopt",
            "--url",
            &url,
            "--admin-certificate",
            self.admin_pfx.to_str().unwrap(),
            "--password-env",
            "ADMIN_PFX_PASSWORD",
            "--ca",
            "server.pem",
        ])
    }
}

#[test]
fn a_name_ravencert_refuses_writes_nothing_and_says_which() {
    let c = existing_cluster();
    // A Studio name with a line break: it must neither reach certs.toml raw nor be dropped.
    c.upload(
        "Orders\n[clients.evil]",
        "ValidUser",
        r#"{"Orders":"Admin"}"#,
        false,
    );
    let (env, run) = c.adopt();
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(run.stderr.contains("not valid"), "{}", run.shown());
    assert!(
        !run.stderr.contains("\n[clients.evil]"),
        "raw: {}",
        run.shown()
    );
    assert!(!env.path("certs.toml").exists());
    assert!(!env.path("trust").exists());
}

#[test]
fn a_trust_folder_that_is_a_link_is_refused_and_nothing_is_written() {
    let c = existing_cluster();
    c.upload(
        "Orders App",
        "ValidUser",
        r#"{"Orders":"ReadWrite"}"#,
        false,
    );
    let env = Env::new().env("ADMIN_PFX_PASSWORD", PFX_PASSWORD);
    std::fs::copy(&c.server_pem, env.path("server.pem")).unwrap();
    // `trust` leads to another folder (a link someone left, or planted).
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.path("trust")).unwrap();
    let run = c.adopt_into(&env);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains("trust"),
        "{}",
        run.shown()
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!env.path("certs.toml").exists());
    assert!(!env.path("certs.schema.json").exists());
}
