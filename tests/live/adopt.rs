//! `ravencert adopt` (docs/contract.md §8) against a real RavenDB 4.1: a cluster populated by REST
//! calls, as the Studio leaves one, is adopted into a certs.toml that changes nothing on day one.

use crate::common;

use crate::common::ravendb::{ClientCert, Pin, RavenServer};
use crate::common::{openssl, Env};
use ::openssl as ossl;
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
    let admin = ClientCert::issued(&node.store(), "admin");
    let admin_pfx = node.path("admin.pfx");
    #[rustfmt::skip]
    openssl(&[
        "pkcs12", "-export", "-in", admin.cert.to_str().unwrap(), "-inkey", admin.key.to_str().unwrap(),
        "-passout", &format!("pass:{PFX_PASSWORD}"), "-out", admin_pfx.to_str().unwrap(),
    ])
    .success();
    let pin = Pin::localhost(server_pem.clone());
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
        "zurich-team",
        "ri-ben",
    ] {
        assert!(
            toml.contains(&format!("[clients.{key}]")),
            "{key} in\n{toml}"
        );
    }
    // The collection stays together: both certificates in one upload file.
    let file = std::fs::read_to_string(env.path("trust/zurich-team.pem")).unwrap();
    assert_eq!(file.matches("BEGIN CERTIFICATE").count(), 2, "{file}");
    // Refuses to overwrite.
    let again = c.adopt_into(&env);
    assert_eq!(again.code, 1, "{}", again.shown());

    env.run(&["validate"]).success();
    common::schema_check(&toml).unwrap();
    assert!(env.path("certs.schema.json").exists());
    let plan = env.run(&["plan", "--json"]).success().json();
    assert!(cluster_changes(&plan).is_empty(), "{plan}");
    // The collection too: each of its certificates is registered with the access declared.
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["escalation"] == false),
        "{plan}"
    );
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

/// A name certs.toml cannot hold (a line break, which would also try to start a TOML table,
/// or U+0001, which RavenDB 4.1 writes raw into its JSON, so that the listing was once
/// unreadable as a whole) leaves that registration out of the adoption, reported escaped,
/// never raw and never dropped silently; everything else is adopted, and plan, apply and
/// status go on with it on the cluster. The revocation it once blocked goes through: with
/// prune on, it is unregistered.
#[test]
fn a_name_ravencert_cannot_hold_is_left_out_and_nothing_stops() {
    let c = existing_cluster();
    let evil = c.upload(
        "Orders\n[clients.evil]",
        "ValidUser",
        r#"{"Orders":"Admin"}"#,
        false,
    );
    let odd = c.upload("x\u{1}y", "Operator", "{}", false);
    c.upload("Reports", "ValidUser", r#"{"Reports":"ReadWrite"}"#, false);
    let (_, raw) = c
        .server
        .curl_json("GET", "/admin/certificates?secondary=true", None);
    assert!(raw.contains("x\u{1}y"), "the server writes U+0001 raw");

    let (env, run) = c.adopt();
    let run = run.success();
    for t in [&evil[0], &odd[0]] {
        assert!(run.stderr.contains(t.as_str()), "{}", run.shown());
    }
    assert!(run.stderr.contains("x\\u{1}y"), "escaped: {}", run.shown());
    assert!(
        run.stderr.contains("Orders\\n[clients.evil]"),
        "{}",
        run.shown()
    );
    common::assert_no_raw("adopt's stderr", &run.stderr);
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    assert!(toml.contains("[clients.reports]"), "{toml}");
    assert!(
        !toml.contains("evil") && !toml.contains("x\u{1}y"),
        "{toml}"
    );

    let plan = env.run(&["plan", "--json"]).success().json();
    assert!(cluster_changes(&plan).is_empty(), "{plan}");
    env.run(&["apply", "--yes"]).success();
    let status = env.run(&["status"]).success();
    common::assert_no_raw("status", &status.stdout);
    let json = env.run(&["status", "--json"]).success().json();
    let extra: Vec<&Value> = json["cluster"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "extra")
        .collect();
    assert_eq!(extra.len(), 2, "{json}");

    let pruned = toml.replace(
        "ca = \"trust/cluster-ca.pem\"\nprune = false",
        "ca = \"trust/cluster-ca.pem\"\nprune = true",
    );
    assert_ne!(pruned, toml);
    env.config(&pruned);
    let plan = env.run(&["plan", "--json"]).success().json();
    let unregisters: Vec<Value> = cluster_changes(&plan)
        .into_iter()
        .filter(|c| c["action"] == "unregister")
        .map(|c| c["thumbprint"].clone())
        .collect();
    assert!(unregisters.contains(&Value::from(odd[0].clone())), "{plan}");
    env.run(&["apply", "--yes"]).success();
    let (_, raw) = c
        .server
        .curl_json("GET", "/admin/certificates?secondary=true", None);
    assert!(!raw.contains(&odd[0]) && !raw.contains(&evil[0]), "{raw}");
    assert!(!raw.contains('\u{1}'));
}

/// A TLS server on 127.0.0.1 that answers every request with `listing` as RavenDB 4.1 would
/// (its version header included): a test double for what a real server cannot be made to do,
/// lie in its listing.
fn lying_server(cert: &std::path::Path, key: &std::path::Path, listing: String) -> u16 {
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRaven-Server-Version: 4.1.0.41001\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{listing}",
        listing.len()
    );
    common::double::tls_server(cert, key, answer)
}

/// One listing entry for `pem` (a file under `dir`), with `thumbprint` as the listing claims.
fn listed(
    dir: &std::path::Path,
    pem: &str,
    name: &str,
    clearance: &str,
    thumbprint: &str,
    extra: &str,
) -> String {
    let x509 = ossl::x509::X509::from_pem(&std::fs::read(dir.join(pem)).unwrap()).unwrap();
    format!(
        r#"{{"Name":{},"Certificate":"{}","Thumbprint":"{thumbprint}","SecurityClearance":"{clearance}","Permissions":{{{}}}{extra}}}"#,
        serde_json::to_string(name).unwrap(),
        ossl::base64::encode_block(&x509.to_der().unwrap()),
        if clearance == "ValidUser" {
            r#""Orders":"ReadWrite""#
        } else {
            ""
        },
    )
}

/// adopt trusts nothing in a listing: a registration whose thumbprint is not its
/// certificate's, and a ClusterAdmin collection that claims a separate ValidUser registration
/// as its secondary (which would have written that certificate into the ClusterAdmin client),
/// are reported and left out; the rest is adopted with exactly the access the listing gives it.
#[test]
fn adopt_leaves_out_a_lying_thumbprint_and_a_stray_secondary() {
    let node = Env::new();
    node.config(NODE);
    node.run(&["apply", "--yes", "--offline"]).success();
    let server_thumb = node.server_thumbprint();
    let server_pem = node.store().join(format!("certs/{server_thumb}.pem"));
    let server_key = node.store().join(format!("server/{server_thumb}.key"));
    let dir = node.dir.path();
    let root = common::self_signed(dir, "h/root.pem", "h/root.key", "root");
    let reader = common::self_signed(dir, "h/reader.pem", "h/reader.key", "reader");
    common::self_signed(dir, "h/forged.pem", "h/forged.key", "forged");
    let other = common::self_signed(dir, "h/other.pem", "h/other.key", "other");
    std::fs::copy(&server_pem, dir.join("h/server.pem")).unwrap();
    let entries = [
        listed(
            dir,
            "h/server.pem",
            "Server Certificate",
            "ClusterNode",
            &server_thumb,
            "",
        ),
        listed(
            dir,
            "h/root.pem",
            "Root",
            "ClusterAdmin",
            &root,
            &format!(r#","CollectionSecondaryKeys":["certificates/{reader}"]"#),
        ),
        listed(dir, "h/reader.pem", "Reader", "ValidUser", &reader, ""),
        // forged.pem's certificate under the thumbprint of another one.
        listed(dir, "h/forged.pem", "Forged", "Operator", &other, ""),
    ];
    let listing = format!(
        r#"{{"Results":[{}],"LoadedServerCert":"{server_thumb}","WellKnownAdminCerts":[]}}"#,
        entries.join(",")
    );
    let port = lying_server(&server_pem, &server_key, listing);

    let admin = node.store().join("issued/admin");
    let admin_pfx = node.path("admin.pfx");
    #[rustfmt::skip]
    openssl(&[
        "pkcs12", "-export", "-in", admin.join("admin.crt").to_str().unwrap(),
        "-inkey", admin.join("admin.key").to_str().unwrap(),
        "-passout", &format!("pass:{PFX_PASSWORD}"), "-out", admin_pfx.to_str().unwrap(),
    ])
    .success();
    let env = Env::new().env("ADMIN_PFX_PASSWORD", PFX_PASSWORD);
    std::fs::copy(&server_pem, env.path("server.pem")).unwrap();
    let url = format!("https://localhost:{port}");
    #[rustfmt::skip]
    let run = env.run(&[
        "adopt", "--url", &url, "--admin-certificate", admin_pfx.to_str().unwrap(),
        "--password-env", "ADMIN_PFX_PASSWORD", "--ca", "server.pem",
    ]);
    let run = run.success();
    assert!(run.stderr.contains("not its Thumbprint"), "{}", run.shown());
    assert!(run.stderr.contains(&root), "{}", run.shown());
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    // Only the reader is declared, as the ValidUser it is; nothing is ClusterAdmin or Operator.
    assert!(toml.contains("[clients.reader]"), "{toml}");
    assert!(
        !toml.contains("[clients.root]") && !toml.contains("[clients.forged]"),
        "{toml}"
    );
    assert!(
        !toml.contains("\"ClusterAdmin\"") && !toml.contains("\"Operator\""),
        "{toml}"
    );
    let mut trust: Vec<String> = std::fs::read_dir(env.path("trust"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    trust.sort();
    assert_eq!(
        trust,
        ["cluster-ca.pem", "reader.pem", "server-1.pem"],
        "{trust:?}"
    );
    assert_eq!(
        common::openssl_thumbprint(&env.path("trust/reader.pem")),
        reader
    );
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

/// Adopting is quiet (issue 23): access the cluster already grants is no escalation in the
/// first plan after adopt, in the store block as in the cluster block, in text as in JSON; a
/// name with accents becomes a transliterated ASCII key; adopt's warnings go to stderr. A
/// plan that does not read the cluster (`--offline`) still flags the access it creates.
#[test]
fn the_first_plan_after_adopt_flags_nothing_and_keys_are_transliterated() {
    let c = existing_cluster();
    c.upload("Zürich Büro", "ValidUser", r#"{"Orders":"Admin"}"#, false);
    c.upload("Ops Team", "Operator", "{}", false);
    c.upload("Root", "ClusterAdmin", "{}", false);
    c.upload(
        "Reporting",
        "ValidUser",
        r#"{"Reports":"ReadWrite"}"#,
        false,
    );
    // The Studio allows two registrations under one name; ravencert renames the second.
    c.upload("Twice", "ValidUser", r#"{"Orders":"ReadWrite"}"#, false);
    c.upload("Twice", "ValidUser", r#"{"Orders":"ReadWrite"}"#, false);

    let (env, run) = c.adopt();
    let run = run.success();
    assert!(
        run.stderr
            .contains("warning: two registrations share a name"),
        "warnings on stderr: {}",
        run.shown()
    );
    assert!(!run.stdout.contains("warning"), "{}", run.shown());
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    for key in [
        "zurich-buro",
        "ops-team",
        "root",
        "reporting",
        "twice",
        "twice-2",
    ] {
        assert!(
            toml.contains(&format!("[clients.{key}]")),
            "{key} in\n{toml}"
        );
    }
    for line in toml.lines().filter(|l| l.starts_with("[clients.")) {
        assert!(line.is_ascii(), "{line}");
    }
    assert!(env.path("trust/zurich-buro.pem").exists());

    let plan = env.run(&["plan", "--json"]).success().json();
    let flagged: Vec<&Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["escalation"] == true)
        .collect();
    assert!(flagged.is_empty(), "flagged {flagged:?} in {plan}");
    let store_creates = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == "client" && c["action"] == "create")
        .count();
    assert_eq!(store_creates, 6, "{plan}");
    // Only the rename of the second "Twice" is a cluster change: a name, no access.
    let cluster = cluster_changes(&plan);
    assert!(
        cluster
            .iter()
            .all(|c| c["action"] == "edit" && c["key"] == "twice-2"),
        "{plan}"
    );
    let text = env.run(&["plan"]).success().stdout;
    assert!(!text.contains("ESCALATION"), "{text}");
    let markdown = env.run(&["plan", "--markdown"]).success().stdout;
    assert!(!markdown.contains("widen"), "{markdown}");

    // Without the cluster there is nothing to measure against: today's flags.
    let offline = env.run(&["plan", "--offline", "--json"]).success().json();
    let flagged: Vec<&str> = offline["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["escalation"] == true)
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert_eq!(
        flagged,
        [
            "ops-team",
            "reporting",
            "root",
            "twice",
            "twice-2",
            "zurich-buro"
        ],
        "{offline}"
    );

    // Applied, the store holds what the cluster grants: the next plan has nothing to say.
    env.run(&["apply", "--yes"]).success();
    let after = env.run(&["plan", "--json"]).success().json();
    assert!(after["changes"].as_array().unwrap().is_empty(), "{after}");
}
