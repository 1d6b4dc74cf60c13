//! Uploads (`[clients.X] upload = PATH`) and imported node certificates (`[server]
//! certificates = [...]`), end to end: every input is built with the real `openssl` command in
//! the test's folder, and every registered thumbprint is cross-checked with
//! `openssl x509 -fingerprint -sha1`.

use std::path::{Path, PathBuf};

use crate::common;

use crate::common::openssl::{key_der, pem_thumbprints, pkcs12, verify_partial_chain};
use crate::common::{json, openssl, openssl_thumbprint, sh, Env, SERVER};
use serde_json::Value;

const CHAIN_PW: &str = "chain-secret";
const RC2_PW: &str = "rc2-secret";
const TDES_PW: &str = "tdes-secret";
const NODE_PW: &str = "node-secret";
const OPS_PW: &str = "ops-secret";

/// Builds every input under `trust/`: a root CA, an intermediate, two clientAuth leaves signed by
/// the intermediate, an expired leaf, two self-signed node certificates, and the files made from
/// them (chain .pfx, PEM bundle, DER, RC2 and 3DES .pfx, node .pfx with and without key).
fn fixtures() -> String {
    format!(
        r#"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $EC -keyout root.key -out root.pem -days 3650 -subj /CN=Test-Root \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
openssl req $EC -keyout inter.key -out inter.csr -subj /CN=Test-Intermediate
openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial -days 3650 \
  -extfile ca.ext -out inter.pem
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > leaf.ext
for n in leaf1 leaf2; do
  openssl req $EC -keyout $n.key -out $n.csr -subj /CN=$n
  openssl x509 -req -in $n.csr -CA inter.pem -CAkey inter.key -CAcreateserial -days 365 \
    -extfile leaf.ext -out $n.pem
done
cat inter.pem root.pem > chain.pem
openssl pkcs12 -export -in leaf1.pem -inkey leaf1.key -certfile chain.pem \
  -passout pass:{CHAIN_PW} -out chain.pfx
cat leaf1.pem leaf2.pem > bundle.pem
openssl x509 -in leaf1.pem -outform DER -out partner.bin
openssl pkcs12 -export -legacy -in leaf1.pem -inkey leaf1.key -passout pass:{RC2_PW} -out rc2.pfx
openssl pkcs12 -export -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1 \
  -in leaf2.pem -inkey leaf2.key -passout pass:{TDES_PW} -out 3des.pfx
for n in node1 node2; do
  openssl req -x509 $EC -keyout $n.key -out $n.pem -days 365 -subj /CN=$n.example.com \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=digitalSignature,keyCertSign \
    -addext subjectAltName=DNS:$n.example.com
  openssl pkcs12 -export -in $n.pem -inkey $n.key -passout pass:{NODE_PW} -out $n.pfx
done
openssl pkcs12 -export -nokeys -in node1.pem -passout pass:{NODE_PW} -out node1-nokey.pfx
mkdir -p ca/newcerts && touch ca/index.txt && echo 1000 > ca/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = CA_default
[CA_default]
dir = ./ca
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = pol
x509_extensions = ext
[pol]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
CNF
openssl req $EC -keyout expired.key -out expired.csr -subj /CN=expired
openssl ca -batch -config ca.cnf -cert inter.pem -keyfile inter.key -in expired.csr -notext \
  -startdate 20200101000000Z -enddate 20200201000000Z -out expired.pem
"#
    )
}

/// A temp folder with every input under `trust/` and their passwords in the environment.
fn fixture_env() -> Env {
    let env = Env::new()
        .env("CHAIN_PW", CHAIN_PW)
        .env("RC2_PW", RC2_PW)
        .env("TDES_PW", TDES_PW)
        .env("NODE_PW", NODE_PW)
        .env("OPS_PW", OPS_PW);
    std::fs::create_dir_all(env.path("trust")).unwrap();
    sh(&env.path("trust"), &fixtures());
    env
}

/// The RavenDB thumbprint of a PEM certificate in the test folder, by `openssl`.
fn tp(env: &Env, rel: &str) -> String {
    openssl_thumbprint(&env.path(rel))
}

/// certs.toml: the common generated server plus the given client tables.
fn with_server(clients: &str) -> String {
    format!("{SERVER}\n{clients}")
}

/// A server imported from node .pfx files (paths under trust/, password from NODE_PW).
fn imported(nodes: &[&str], rest: &str) -> String {
    let list = nodes
        .iter()
        .map(|n| format!(r#"{{ path = "trust/{n}", password_env = "NODE_PW" }}"#))
        .collect::<Vec<_>>()
        .join(", ");
    common::imported_server(&list, "", rest)
}

fn pair(key: &str, thumbprint: &str) -> (String, String) {
    (key.to_string(), thumbprint.to_string())
}

/// The status entries of one client key.
fn entries(status: &Value, key: &str) -> Vec<Value> {
    json::filter(&status["certificates"], "key", key)
        .into_iter()
        .cloned()
        .collect()
}

/// Thumbprints of the certificates a .pfx holds, by `openssl pkcs12` + `openssl x509`.
fn pfx_thumbprints(env: &Env, rel: &str, password: &str) -> Vec<String> {
    let out = env.path("pfx-certs.pem");
    pkcs12(
        &env.path(rel),
        password,
        &["-nokeys", "-out", out.to_str().unwrap()],
    )
    .success();
    let text = std::fs::read_to_string(&out).unwrap();
    pem_thumbprints(&text, env.dir.path(), "pfx-cert")
}

/// The public key (PEM, SubjectPublicKeyInfo) of a private key file, trying the given passwords.
fn public_key(path: &Path, passwords: &[&str]) -> Option<String> {
    passwords.iter().find_map(|p| {
        let r = openssl(&[
            "pkey",
            "-in",
            path.to_str().unwrap(),
            "-pubout",
            "-passin",
            &format!("pass:{p}"),
        ]);
        (r.code == 0).then_some(r.stdout)
    })
}

/// The public key of the private key inside a .pfx, trying the given passwords.
fn pfx_public_key(env: &Env, path: &Path, passwords: &[&str]) -> Option<Option<String>> {
    let out = env.path("pfx-key.pem");
    passwords.iter().find_map(|p| {
        let r = openssl(&[
            "pkcs12",
            "-in",
            path.to_str().unwrap(),
            "-nocerts",
            "-nodes",
            "-passin",
            &format!("pass:{p}"),
            "-out",
            out.to_str().unwrap(),
        ]);
        if r.code != 0 {
            return None;
        }
        let text = std::fs::read_to_string(&out).unwrap();
        if !text.contains("PRIVATE KEY") {
            return Some(None);
        }
        Some(public_key(&out, &[""]))
    })
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Writes `config`; `plan` and `apply --yes` must both be refused (exit 1, every needle in
/// stderr) and leave the test folder byte-identical.
#[track_caller]
fn assert_refused(env: &Env, config: &str, extra_env: &[(&str, &str)], needles: &[&str]) {
    assert!(
        !env.snapshot().is_empty(),
        "refuse over a store: apply first"
    );
    env.config(config);
    for args in [&["plan"][..], &["apply", "--yes"]] {
        env.cmd(args).envs(extra_env).refused(needles);
    }
}

/// A store after a first successful apply: generated server, `admin`, and `partner` uploading
/// the chain .pfx. Returns the env and its config.
fn applied_env() -> (Env, String) {
    let env = fixture_env();
    let config = with_server(
        r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.partner]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "trust/chain.pfx"
password_env = "CHAIN_PW"
"#,
    );
    env.config(&config);
    env.run(&["apply", "--yes"]).success();
    (env, config)
}

#[test]
fn chain_pfx_registers_only_the_leaf() {
    let env = fixture_env();
    env.config(&with_server(
        r#"
[clients.partner]
name = "Partner Cluster"
clearance = "ValidUser"
databases = { Orders = "Read", Reporting = "ReadWrite" }
upload = "trust/chain.pfx"
password_env = "CHAIN_PW"
"#,
    ));
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["summary"]["create"], 2, "{plan}");
    env.run(&["apply", "--yes"]).success();

    let leaf = tp(&env, "trust/leaf1.pem");
    assert_eq!(env.registered(), vec![pair("partner", &leaf)]);
    let status = env.status();
    let c = &entries(&status, "partner")[0];
    assert_eq!(c["name"], "Partner Cluster");
    assert_eq!(c["source"], "uploaded");
    assert_eq!(c["clearance"], "ValidUser");
    assert_eq!(
        c["permissions"],
        serde_json::json!({ "Orders": "Read", "Reporting": "ReadWrite" })
    );
    assert_eq!(c["collection_primary"], Value::Null);

    // Neither the root nor the intermediate is anywhere in the store.
    let text = serde_json::to_string(&status).unwrap();
    for ca in ["trust/root.pem", "trust/inter.pem"] {
        let t = tp(&env, ca);
        assert!(!text.contains(&t), "{ca} ({t}) registered: {text}");
        assert!(!env.store().join("certs").join(format!("{t}.pem")).exists());
    }
    let stored = env.store().join("certs").join(format!("{leaf}.pem"));
    assert_eq!(openssl_thumbprint(&stored), leaf);
}

#[test]
fn pem_bundle_is_a_collection_and_prune_deletes_it_whole() {
    let env = fixture_env();
    let bundle = r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.bundle]
name = "Partner Bundle"
clearance = "Operator"
upload = "trust/bundle.pem"
"#;
    env.config(&with_server(bundle));
    env.run(&["apply", "--yes"]).success();

    let (first, second) = (tp(&env, "trust/leaf1.pem"), tp(&env, "trust/leaf2.pem"));
    let status = env.status();
    let members = entries(&status, "bundle");
    assert_eq!(members.len(), 2, "{status}");
    let by_tp = |t: &str| {
        members
            .iter()
            .find(|c| c["thumbprint"] == t)
            .unwrap_or_else(|| panic!("{t} not registered: {status}"))
            .clone()
    };
    let (p, s) = (by_tp(&first), by_tp(&second));
    assert_eq!(p["collection_primary"], Value::Null);
    assert_eq!(s["collection_primary"], first.as_str());
    for c in [&p, &s] {
        assert_eq!(c["name"], "Partner Bundle");
        assert_eq!(c["clearance"], "Operator");
        assert_eq!(c["source"], "uploaded");
    }

    let text = env.run(&["status"]).success().stdout;
    assert!(text.contains(&first) && text.contains(&second), "{text}");

    // Removed with prune = true: one delete takes the whole collection.
    env.config(&with_server(
        r#"
[store]
prune = true

[clients.admin]
clearance = "ClusterAdmin"
"#,
    ));
    let plan = env.run(&["plan", "--json"]).success().json();
    let deletes = json::filter(&plan["changes"], "action", "delete");
    assert_eq!(deletes.len(), 1, "{plan}");
    assert_eq!(deletes[0]["key"], "bundle");
    assert_eq!(plan["summary"]["delete"], 1);
    env.run(&["apply", "--yes"]).success();

    let left = env.registered();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "admin");
    for t in [&first, &second] {
        assert!(!env.store().join("certs").join(format!("{t}.pem")).exists());
    }
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

#[test]
fn der_file_is_detected_by_content_not_extension() {
    let env = fixture_env();
    env.config(&with_server(
        r#"
[clients.partner]
clearance = "Operator"
upload = "trust/partner.bin"
"#,
    ));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        env.registered(),
        vec![pair("partner", &tp(&env, "trust/leaf1.pem"))]
    );
    assert_eq!(entries(&env.status(), "partner")[0]["source"], "uploaded");
}

#[test]
fn legacy_rc2_and_3des_pfx_are_read() {
    let env = fixture_env();
    // Make sure the inputs really use the legacy algorithms.
    let info = |file: &str, pw: &str, legacy: bool| {
        let path = env.path(file);
        let pass = format!("pass:{pw}");
        let mut args = vec![
            "pkcs12",
            "-in",
            path.to_str().unwrap(),
            "-info",
            "-noout",
            "-passin",
            &pass,
        ];
        if legacy {
            args.push("-legacy");
        }
        let r = openssl(&args).success();
        format!("{}{}", r.stdout, r.stderr)
    };
    assert!(info("trust/rc2.pfx", RC2_PW, true).contains("RC2"));
    assert!(info("trust/3des.pfx", TDES_PW, false).contains("TripleDES"));

    env.config(&with_server(
        r#"
[clients.old-rc2]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "trust/rc2.pfx"
password_env = "RC2_PW"

[clients.old-3des]
clearance = "ValidUser"
databases = { Orders = "ReadWrite" }
upload = "trust/3des.pfx"
password_env = "TDES_PW"
"#,
    ));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        env.registered(),
        vec![
            pair("old-3des", &tp(&env, "trust/leaf2.pem")),
            pair("old-rc2", &tp(&env, "trust/leaf1.pem")),
        ]
    );
}

#[test]
fn reencoded_certificate_is_no_change_and_another_is_a_replace() {
    let env = fixture_env();
    let client = |upload: &str, password: &str| {
        with_server(&format!(
            r#"
[clients.partner]
clearance = "ValidUser"
databases = {{ Orders = "Read" }}
upload = "{upload}"
{password}
"#
        ))
    };
    env.config(&client("trust/chain.pfx", r#"password_env = "CHAIN_PW""#));
    env.run(&["apply", "--yes"]).success();
    let (leaf1, leaf2) = (tp(&env, "trust/leaf1.pem"), tp(&env, "trust/leaf2.pem"));

    // The same leaf as PEM, then as DER: nothing to do.
    for file in ["trust/leaf1.pem", "trust/partner.bin"] {
        env.config(&client(file, ""));
        let r = env.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(r.code, 0, "{file}: {}{}", r.stdout, r.stderr);
        assert!(r
            .stdout
            .contains("No changes. The store matches certs.toml."));
    }

    // Another certificate in the file: a replace naming both thumbprints.
    env.config(&client("trust/leaf2.pem", ""));
    let r = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let plan = env.run(&["plan", "--json"]).success().json();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0]["action"], "replace");
    assert_eq!(changes[0]["target"], "client");
    assert_eq!(changes[0]["key"], "partner");
    let reason = changes[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&leaf1) && reason.contains(&leaf2),
        "{reason}"
    );
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.registered(), vec![pair("partner", &leaf2)]);
    assert!(!env
        .store()
        .join("certs")
        .join(format!("{leaf1}.pem"))
        .exists());
}

#[test]
fn no_uploaded_private_key_reaches_the_store() {
    let env = fixture_env();
    // leaf2's certificate with its (unencrypted) key in one PEM file.
    sh(&env.path("trust"), "cat leaf2.pem leaf2.key > keyed.pem");
    env.config(&with_server(
        r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.ops]
clearance = "Operator"
password_env = "OPS_PW"

[clients.partner]
clearance = "Operator"
upload = "trust/chain.pfx"
password_env = "CHAIN_PW"

[clients.keyed]
clearance = "Operator"
upload = "trust/keyed.pem"
"#,
    ));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.registered().len(), 4);

    let passwords = ["", OPS_PW];
    let mut uploaded = Vec::new();
    for key in ["trust/leaf1.key", "trust/leaf2.key"] {
        let path = env.path(key);
        let pem = std::fs::read_to_string(&path).unwrap();
        let body: Vec<String> = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .map(str::to_string)
            .collect();
        let body_joined = body.concat();
        let der = key_der(&path, &[""]).expect("openssl reads the key");
        uploaded.push((
            key,
            body,
            body_joined,
            der,
            public_key(&path, &[""]).unwrap(),
        ));
    }

    let mut key_files = 0;
    let mut pfx_files = 0;
    for file in files_under(&env.store())
        .into_iter()
        .chain(files_under(&env.path("exports")))
    {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes).replace(['\n', '\r'], "");
        for (key, body, joined, der, _) in &uploaded {
            assert!(
                !text.contains(joined.as_str()),
                "{} holds {key}",
                file.display()
            );
            for line in body {
                assert!(
                    !text.contains(line.as_str()),
                    "{} holds a line of {key}",
                    file.display()
                );
            }
            assert!(
                !bytes.windows(der.len()).any(|w| w == der.as_slice()),
                "{} holds {key} as DER",
                file.display()
            );
        }
        let name = file.file_name().unwrap().to_str().unwrap();
        if name.ends_with(".key") {
            key_files += 1;
            let public = public_key(&file, &passwords)
                .unwrap_or_else(|| panic!("{} cannot be read by openssl", file.display()));
            for (key, _, _, _, uploaded_public) in &uploaded {
                assert_ne!(&public, uploaded_public, "{} is {key}", file.display());
            }
        } else if name.ends_with(".pfx") {
            pfx_files += 1;
            let inner = pfx_public_key(&env, &file, &passwords)
                .unwrap_or_else(|| panic!("{} cannot be read by openssl", file.display()));
            if let Some(public) = inner {
                for (key, _, _, _, uploaded_public) in &uploaded {
                    assert_ne!(&public, uploaded_public, "{} holds {key}", file.display());
                }
            }
        }
    }
    // The server key and the two issued clients' keys were checked.
    assert!(key_files >= 3, "only {key_files} key files in the store");
    assert!(pfx_files >= 2, "only {pfx_files} pfx files in the store");
}

#[test]
fn imported_node_certificate_signs_clients_and_is_exported_without_key() {
    let env = fixture_env();
    // The node file the config names is a copy, so the test can swap it.
    std::fs::copy(env.path("trust/node1.pfx"), env.path("trust/a.pfx")).unwrap();
    env.config(&imported(
        &["a.pfx"],
        r#"
[clients.admin]
clearance = "ClusterAdmin"
"#,
    ));
    env.run(&["apply", "--yes"]).success();

    let (node1, node2) = (tp(&env, "trust/node1.pem"), tp(&env, "trust/node2.pem"));
    let status = env.status();
    let server = status["server"].as_array().unwrap();
    assert_eq!(server.len(), 1, "{status}");
    assert_eq!(server[0]["thumbprint"], node1.as_str());
    assert_eq!(server[0]["subject"], "CN=node1.example.com");
    assert_eq!(env.registered().len(), 1);

    // The generated client chains to the imported node certificate.
    let crt = env.store().join("issued/admin/admin.crt");
    let verify = verify_partial_chain(&env.path("trust/node1.pem"), &crt);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains(": OK"), "{}", verify.stdout);

    // The export holds the node certificate and no private key.
    assert_eq!(
        pfx_thumbprints(&env, "exports/cluster.pfx", ""),
        vec![node1.clone()]
    );
    assert_eq!(
        pfx_public_key(&env, &env.path("exports/cluster.pfx"), &[""]),
        Some(None),
        "the export holds a private key"
    );

    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);

    // Another node certificate in the file: a server replace naming both thumbprints.
    std::fs::copy(env.path("trust/node2.pfx"), env.path("trust/a.pfx")).unwrap();
    let plan = env.run(&["plan", "--json"]).success().json();
    let replace = json::find(&plan["changes"], "target", "server")
        .unwrap_or_else(|| panic!("no server change: {plan}"));
    assert_eq!(replace["action"], "replace");
    let reason = replace["reason"].as_str().unwrap();
    assert!(
        reason.contains(&node1) && reason.contains(&node2),
        "{reason}"
    );
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.status()["server"][0]["thumbprint"], node2.as_str());
    assert_eq!(
        pfx_thumbprints(&env, "exports/cluster.pfx", ""),
        vec![node2]
    );
}

#[test]
fn two_node_certificates_are_exported_as_a_collection() {
    let env = fixture_env();
    env.config(&imported(
        &["node1.pfx", "node2.pfx"],
        r#"
[clients.admin]
clearance = "ClusterAdmin"
"#,
    ));
    env.run(&["apply", "--yes"]).success();
    let (node1, node2) = (tp(&env, "trust/node1.pem"), tp(&env, "trust/node2.pem"));
    let status = env.status();
    let server = json::strs(&status["server"], "thumbprint");
    assert_eq!(server, vec![node1.as_str(), node2.as_str()]);
    let mut both = vec![node1.clone(), node2];
    both.sort();
    assert_eq!(pfx_thumbprints(&env, "exports/cluster.pfx", ""), both);
    // Clients are signed with the first node's key.
    let verify = verify_partial_chain(
        &env.path("trust/node1.pem"),
        &env.store().join("issued/admin/admin.crt"),
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

#[test]
fn collection_edit_applies_to_every_member() {
    let env = fixture_env();
    let config = |access: &str| {
        with_server(&format!(
            r#"
[clients.bundle]
clearance = "ValidUser"
databases = {{ Orders = "{access}" }}
upload = "trust/bundle.pem"
"#
        ))
    };
    env.config(&config("Read"));
    env.run(&["apply", "--yes"]).success();
    env.config(&config("ReadWrite"));
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["summary"]["update"], 1, "{plan}");
    assert_eq!(plan["summary"]["replace"], 0, "{plan}");
    env.run(&["apply", "--yes"]).success();
    let status = env.status();
    let members = entries(&status, "bundle");
    assert_eq!(members.len(), 2);
    for m in members {
        assert_eq!(m["permissions"]["Orders"], "ReadWrite", "{status}");
    }
}

#[test]
fn renaming_an_uploaded_client_needs_prune() {
    let (env, config) = applied_env();
    let leaf1 = tp(&env, "trust/leaf1.pem");
    let renamed = config.replace("[clients.partner]", "[clients.partner-b]");
    assert_refused(&env, &renamed, &[], &[&leaf1, "partner", "prune"]);

    env.config(&format!("{renamed}\n[store]\nprune = true\n"));
    env.run(&["apply", "--yes"]).success();
    let now = env.registered();
    assert!(now.contains(&pair("partner-b", &leaf1)), "{now:?}");
    assert!(!now.iter().any(|(k, _)| k == "partner"), "{now:?}");
}

#[test]
fn replace_flag_on_an_upload_is_refused() {
    let (env, _) = applied_env();
    env.cmd(&["plan", "--replace", "partner"])
        .refused(&["chain.pfx"]);
    env.cmd(&["apply", "--yes", "--replace", "partner"])
        .refused(&[]);
}

// --- refusals: exit 1, a message naming the file (and password source), folder untouched ---

/// The store a refusal starts from.
#[derive(Clone, Copy)]
enum Start {
    /// Generated server, `admin`, and `partner` uploading the chain .pfx (CHAIN_PW).
    Partner,
    /// A server imported from trust/node1.pfx (NODE_PW), and `admin`.
    Node,
}

/// What the error must name: a text, or the thumbprint of a certificate file in the folder.
enum Says {
    Text(&'static str),
    Thumbprint(&'static str),
}
use Says::{Text, Thumbprint};

/// One refused upload: from a started store, copy or write a file, edit certs.toml, set variables; plan
/// and apply must both refuse, naming every `says`.
struct Refusal {
    start: Start,
    /// A file copied into the folder before the edit: (from, to), `{server}` standing for the
    /// server certificate's file in the store.
    copy: Option<(&'static str, &'static str)>,
    /// A file written into the folder before the edit: (path, text).
    write: Option<(&'static str, &'static str)>,
    /// The edit of the started config: `(from, to)` replaced, or a client table appended.
    edit: Edit,
    env: &'static [(&'static str, &'static str)],
    says: &'static [Says],
}

enum Edit {
    None,
    Replace(&'static str, &'static str),
    /// `[clients.KEY]` with clearance Operator uploading the file, and these further lines.
    Client(&'static str, &'static str, &'static str),
    /// The imported server reads this node file instead.
    Node(&'static str),
}

impl Refusal {
    const DEFAULT: Refusal = Refusal {
        start: Start::Partner,
        copy: None,
        write: None,
        edit: Edit::None,
        env: &[],
        says: &[],
    };
}

const NODE_CLIENTS: &str = "[clients.admin]\nclearance = \"ClusterAdmin\"\n";

fn check_refusal(case: &Refusal) {
    let (env, config) = match case.start {
        Start::Partner => applied_env(),
        Start::Node => {
            let env = fixture_env();
            let config = imported(&["node1.pfx"], NODE_CLIENTS);
            env.config(&config);
            env.run(&["apply", "--yes"]).success();
            (env, config)
        }
    };
    if let Some((from, to)) = case.copy {
        let from = match from {
            "{server}" => env.server_pem(),
            rel => env.path(rel),
        };
        std::fs::copy(from, env.path(to)).unwrap();
    }
    if let Some((rel, text)) = case.write {
        env.write(rel, text);
    }
    let bad = match case.edit {
        Edit::None => config.clone(),
        Edit::Replace(from, to) => {
            assert!(config.contains(from), "{from:?} is not in certs.toml");
            config.replace(from, to)
        }
        Edit::Client(key, upload, more) => format!(
            "{config}\n[clients.{key}]\nclearance = \"Operator\"\nupload = \"{upload}\"\n{more}"
        ),
        Edit::Node(file) => imported(&[file], NODE_CLIENTS),
    };
    let says: Vec<String> = case
        .says
        .iter()
        .map(|s| match s {
            Text(t) => t.to_string(),
            Thumbprint(rel) => tp(&env, rel),
        })
        .collect();
    let says: Vec<&str> = says.iter().map(String::as_str).collect();
    assert_refused(&env, &bad, case.env, &says);
}

/// Each refusal is its own test.
macro_rules! refusals {
    ($( $name:ident: $case:expr; )+) => {
        $(
            #[test]
            fn $name() {
                check_refusal(&$case);
            }
        )+
    };
}

refusals! {
    refuses_a_wrong_password: Refusal {
        env: &[("CHAIN_PW", "not the password")],
        says: &[Text("trust/chain.pfx"), Text("CHAIN_PW"), Text("password is wrong")],
        ..Refusal::DEFAULT
    };
    refuses_a_protected_pfx_without_password: Refusal {
        edit: Edit::Replace("password_env = \"CHAIN_PW\"\n", ""),
        says: &[Text("trust/chain.pfx"), Text("password")],
        ..Refusal::DEFAULT
    };
    refuses_an_unset_password_variable: Refusal {
        edit: Edit::Replace("CHAIN_PW", "CHAIN_PW_UNSET"),
        says: &[Text("CHAIN_PW_UNSET")],
        ..Refusal::DEFAULT
    };
    refuses_garbage: Refusal {
        write: Some(("trust/garbage.crt", "this is not a certificate\n")),
        edit: Edit::Client("junk", "trust/garbage.crt", ""),
        says: &[Text("trust/garbage.crt"), Text("clients.junk")],
        ..Refusal::DEFAULT
    };
    refuses_a_pem_holding_only_a_private_key: Refusal {
        copy: Some(("trust/leaf2.key", "trust/only-key.pem")),
        edit: Edit::Client("keyonly", "trust/only-key.pem", ""),
        says: &[Text("trust/only-key.pem"), Text("no certificate")],
        ..Refusal::DEFAULT
    };
    refuses_an_expired_certificate: Refusal {
        edit: Edit::Client("old", "trust/expired.pem", ""),
        says: &[Text("trust/expired.pem"), Text("expired on 2020-02-01"), Thumbprint("trust/expired.pem")],
        ..Refusal::DEFAULT
    };
    refuses_the_generated_server_certificate_as_a_client: Refusal {
        copy: Some(("{server}", "trust/server.pem")),
        edit: Edit::Client("self", "trust/server.pem", ""),
        says: &[Text("clients.self"), Thumbprint("trust/server.pem"), Text("server")],
        ..Refusal::DEFAULT
    };
    refuses_the_node_certificate_as_a_client: Refusal {
        start: Start::Node,
        edit: Edit::Client("self", "trust/node1.pfx", "password_env = \"NODE_PW\"\n"),
        says: &[Text("clients.self"), Thumbprint("trust/node1.pem"), Text("server")],
        ..Refusal::DEFAULT
    };
    refuses_one_certificate_declared_by_two_clients: Refusal {
        edit: Edit::Client("again", "trust/leaf1.pem", ""),
        says: &[Text("clients.partner"), Text("clients.again"), Thumbprint("trust/leaf1.pem")],
        ..Refusal::DEFAULT
    };
    refuses_the_certificate_of_a_generated_client: Refusal {
        copy: Some(("store/issued/admin/admin.crt", "trust/admin-copy.crt")),
        edit: Edit::Client("copy", "trust/admin-copy.crt", ""),
        says: &[Text("clients.copy"), Text("admin"), Thumbprint("trust/admin-copy.crt")],
        ..Refusal::DEFAULT
    };
    refuses_a_node_pfx_without_private_key: Refusal {
        start: Start::Node,
        edit: Edit::Node("node1-nokey.pfx"),
        says: &[Text("trust/node1-nokey.pfx"), Text("private key")],
        ..Refusal::DEFAULT
    };
    refuses_a_node_pfx_with_a_wrong_password: Refusal {
        start: Start::Node,
        env: &[("NODE_PW", "wrong")],
        says: &[Text("trust/node1.pfx"), Text("NODE_PW"), Text("password is wrong")],
        ..Refusal::DEFAULT
    };
}

#[test]
fn traditional_encrypted_key_in_a_pem_upload_gets_password_messages() {
    let (env, config) = applied_env();
    sh(
        &env.path("trust"),
        "openssl pkey -in leaf2.key -aes256 -traditional -passout pass:kpw -out trad.key\n\
         grep -q 'Proc-Type: 4,ENCRYPTED' trad.key\n\
         cat leaf2.pem trad.key > trad.pem",
    );
    let upload = format!(
        "{config}\n[clients.trad]\nclearance = \"Operator\"\nupload = \"trust/trad.pem\"\n"
    );
    // No password named: the message must say that one is needed.
    assert_refused(
        &env,
        &upload,
        &[],
        &["trust/trad.pem", "password-protected"],
    );
    // A wrong one: the message must say it is wrong.
    let with_pw = format!("{upload}password_env = \"TRAD_PW\"\n");
    assert_refused(
        &env,
        &with_pw,
        &[("TRAD_PW", "wrong")],
        &["trust/trad.pem", "TRAD_PW", "password is wrong"],
    );
    // The right one works.
    env.config(&with_pw);
    env.run_with(&["apply", "--yes"], &[("TRAD_PW", "kpw")])
        .success();
    assert!(env
        .registered()
        .contains(&pair("trad", &tp(&env, "trust/leaf2.pem"))));
}
