//! Registry-only servers (docs/contract.md §8): `[server] certificates` entries without a private
//! key (a PEM .crt, a DER .cer, a .pfx made with `openssl pkcs12 -export -nokeys`). ravencert
//! registers and exports them, uploads and edits work, and declaring a generated client (or
//! `install`) is an error naming the missing key. Every input is made with the real `openssl`
//! command, and the export is read back with it.

use crate::common;

use crate::common::openssl::{pem_thumbprints, pkcs12, verify_partial_chain};
use crate::common::{json, openssl_thumbprint, sh, Env};

const NODE_PW: &str = "node-secret";

/// node1 and node2 (self-signed, as Studio-made node certificates are) with their keys, and the
/// public forms of node1: PEM .crt, DER .cer, a .pfx without key; two partner client certificates.
const FIXTURES: &str = r#"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
for n in node1 node2; do
  openssl req -x509 $EC -keyout $n.key -out $n.pem -days 365 -subj /CN=$n.example.com \
    -addext subjectAltName=DNS:$n.example.com
  openssl pkcs12 -export -in $n.pem -inkey $n.key -passout pass:$NODE_PW -out $n.pfx
done
cp node1.pem node1.crt
cp node2.pem node2.crt
openssl x509 -in node1.pem -outform DER -out node1.cer
openssl pkcs12 -export -nokeys -in node1.pem -passout pass:$NODE_PW -out node1-nokey.pfx
for n in partner other; do
  openssl req -x509 $EC -keyout $n.key -out $n.pem -days 365 -subj /CN=$n
done
"#;

fn fixture_env() -> Env {
    let env = Env::new().env("NODE_PW", NODE_PW);
    std::fs::create_dir_all(env.path("trust")).unwrap();
    sh(
        &env.path("trust"),
        &format!("NODE_PW={NODE_PW}\n{FIXTURES}"),
    );
    env
}

/// certs.toml with these `[server] certificates` entries (inline tables) and client tables.
fn config(nodes: &[&str], rest: &str) -> String {
    common::imported_server(&nodes.join(", "), "[store]\nprune = true\n\n", rest)
}

const CRT: &str = r#"{ path = "trust/node1.crt" }"#;
const CER: &str = r#"{ path = "trust/node1.cer" }"#;
const NOKEY_PFX: &str = r#"{ path = "trust/node1-nokey.pfx", password_env = "NODE_PW" }"#;
const NODE1_PFX: &str = r#"{ path = "trust/node1.pfx", password_env = "NODE_PW" }"#;
const NODE2_CRT: &str = r#"{ path = "trust/node2.crt" }"#;

fn partner(access: &str) -> String {
    format!(
        "[clients.partner]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"{access}\" }}\nupload = \"trust/partner.pem\"\n"
    )
}

const OTHER: &str = "[clients.other]\nclearance = \"Operator\"\nupload = \"trust/other.pem\"\n";
const ADMIN: &str = "[clients.admin]\nclearance = \"ClusterAdmin\"\n";

/// Thumbprints of the certificates in the export (no password), read by `openssl pkcs12`, and
/// whether it holds a private key.
fn export_contents(env: &Env) -> (Vec<String>, bool) {
    let pfx = env.path("exports/cluster.pfx");
    let certs = env.path("export-certs.pem");
    pkcs12(&pfx, "", &["-nokeys", "-out", certs.to_str().unwrap()]).success();
    let keys = pkcs12(&pfx, "", &["-nocerts", "-nodes"]).success();
    let text = std::fs::read_to_string(&certs).unwrap();
    let thumbprints = pem_thumbprints(&text, env.dir.path(), "export");
    (thumbprints, keys.stdout.contains("PRIVATE KEY"))
}

fn server_status(env: &Env) -> Vec<serde_json::Value> {
    env.status()["server"].as_array().unwrap().clone()
}

fn server_key_files(env: &Env) -> Vec<String> {
    match std::fs::read_dir(env.store().join("server")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One keyless node entry (.crt, .cer or key-less .pfx): applied, registered without key file,
/// exported, uploads added, edited and deleted, and the registry read back with no change.
fn registry_only_lifecycle(node: &str) {
    let env = fixture_env();
    let node1 = openssl_thumbprint(&env.path("trust/node1.pem"));
    let partner_tp = openssl_thumbprint(&env.path("trust/partner.pem"));
    let other_tp = openssl_thumbprint(&env.path("trust/other.pem"));

    env.config(&config(&[node], &partner("Read")));
    env.run(&["validate"]).success();
    env.run(&["apply", "--yes"]).success();

    // status shows the server, without a key; the store holds no server key.
    let server = server_status(&env);
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(server[0]["thumbprint"], node1.as_str());
    assert_eq!(server[0]["has_key"], false, "{server:?}");
    assert!(
        server_key_files(&env).is_empty(),
        "{:?}",
        server_key_files(&env)
    );
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert!(registry.contains("has_key = false"), "{registry}");
    let text = env.run(&["status"]).success();
    assert!(text.stdout.contains(&node1), "{}", text.stdout);

    // The export holds the node certificate, no key, and opens with openssl.
    assert_eq!(export_contents(&env), (vec![node1.clone()], false));
    assert_eq!(
        env.registered(),
        vec![("partner".into(), partner_tp.clone())]
    );

    // The registry round-trips: loaded, verified, and nothing to do.
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.shown());

    // An edit, and another upload.
    env.config(&config(
        &[node],
        &format!("{}\n{OTHER}", partner("ReadWrite")),
    ));
    let plan = env.run(&["plan", "--json"]).success().json();
    let actions = json::string_pairs(&plan["changes"], "key", "action");
    assert!(
        actions.contains(&("partner".into(), "update".into())),
        "{plan}"
    );
    assert!(
        actions.contains(&("other".into(), "create".into())),
        "{plan}"
    );
    env.run(&["apply", "--yes"]).success();
    let status = env.status();
    let p = json::find(&status["certificates"], "key", "partner")
        .unwrap()
        .clone();
    assert_eq!(p["permissions"]["Orders"], "ReadWrite", "{status}");
    assert_eq!(
        env.registered(),
        vec![
            ("other".into(), other_tp.clone()),
            ("partner".into(), partner_tp.clone())
        ]
    );

    // A delete (prune).
    env.config(&config(&[node], &partner("ReadWrite")));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.registered(), vec![("partner".into(), partner_tp)]);
    assert_eq!(export_contents(&env), (vec![node1], false));
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.shown());

    // A generated client: refused at its key, naming the missing key and the way out.
    let bad = config(&[node], &format!("{}\n{ADMIN}", partner("ReadWrite")));
    env.config(&bad);
    let line = bad.lines().position(|l| l == "[clients.admin]").unwrap() + 1;
    for args in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
        let run = env.cmd(args).refused(&[
            "private key",
            "import the node .pfx with its private key in [server] certificates, or declare this client as an upload",
        ]);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&format!("certs.toml:{line}:")) && l.contains("clients.admin")),
            "{}",
            run.shown()
        );
    }
}

#[test]
fn keyless_server_from_a_pem_crt() {
    registry_only_lifecycle(CRT);
}

#[test]
fn keyless_server_from_a_der_cer() {
    registry_only_lifecycle(CER);
}

#[test]
fn keyless_server_from_a_pfx_without_key() {
    registry_only_lifecycle(NOKEY_PFX);
}

#[test]
fn install_with_a_keyless_server_is_refused() {
    let env = fixture_env();
    let good = config(&[CRT], &partner("Read"));
    env.config(&good);
    env.run(&["apply", "--yes"]).success();
    let bad = good.replace(
        "export = \"exports/cluster.pfx\"\n",
        "export = \"exports/cluster.pfx\"\ninstall = { path = \"node/cluster.pfx\" }\n",
    );
    env.config(&bad);
    let line = bad.lines().position(|l| l.starts_with("install")).unwrap() + 1;
    for args in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
        let run = env.cmd(args).refused(&["server.install", "no private key"]);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&format!("certs.toml:{line}:"))),
            "{}",
            run.shown()
        );
    }
    assert!(!env.path("node/cluster.pfx").exists());
}

/// Mixed: the first entry with a key signs generated clients, whatever its place.
#[test]
fn the_first_node_with_a_key_signs_generated_clients() {
    let env = fixture_env();
    env.config(&config(&[NODE2_CRT, NODE1_PFX], ADMIN));
    env.run(&["apply", "--yes"]).success();
    let (node1, node2) = (
        openssl_thumbprint(&env.path("trust/node1.pem")),
        openssl_thumbprint(&env.path("trust/node2.pem")),
    );
    let server = server_status(&env);
    assert_eq!(server[0]["thumbprint"], node2.as_str());
    assert_eq!(server[0]["has_key"], false);
    assert_eq!(server[1]["thumbprint"], node1.as_str());
    assert!(server[1].get("has_key").is_none(), "{server:?}");
    assert_eq!(server_key_files(&env), vec![format!("{node1}.key")]);
    let verify = verify_partial_chain(
        &env.path("trust/node1.pem"),
        &env.store().join("issued/admin/admin.crt"),
    );
    assert!(verify.stdout.contains(": OK"), "{}", verify.shown());
    let mut both = vec![node1, node2];
    both.sort();
    assert_eq!(export_contents(&env), (both, false));
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.shown());
}

/// The same certificate, its key added then dropped: a server replace each time, and the store's
/// key file follows.
#[test]
fn adding_and_dropping_the_node_key_is_a_server_change() {
    let env = fixture_env();
    let node1 = openssl_thumbprint(&env.path("trust/node1.pem"));
    env.config(&config(&[CRT], &partner("Read")));
    env.run(&["apply", "--yes"]).success();
    assert!(server_key_files(&env).is_empty());

    // The .pfx with its key: a server replace, then generated clients work.
    env.config(&config(
        &[NODE1_PFX],
        &format!("{}\n{ADMIN}", partner("Read")),
    ));
    let plan = env.run(&["plan", "--json"]).success().json();
    let server = json::find(&plan["changes"], "target", "server")
        .unwrap_or_else(|| panic!("no server change: {plan}"))
        .clone();
    assert_eq!(server["action"], "replace", "{plan}");
    assert!(
        server["reason"].as_str().unwrap().contains("private key"),
        "{plan}"
    );
    env.run(&["apply", "--yes"]).success();
    assert_eq!(server_key_files(&env), vec![format!("{node1}.key")]);
    assert!(server_status(&env)[0].get("has_key").is_none());
    let verify = verify_partial_chain(
        &env.path("trust/node1.pem"),
        &env.store().join("issued/admin/admin.crt"),
    );
    assert!(verify.stdout.contains(": OK"), "{}", verify.shown());

    // Back to the public certificate (and no generated client): the key file goes.
    env.config(&config(&[CRT], &partner("Read")));
    env.run(&["apply", "--yes"]).success();
    assert!(
        server_key_files(&env).is_empty(),
        "{:?}",
        server_key_files(&env)
    );
    assert_eq!(server_status(&env)[0]["has_key"], false);
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.shown());
}
