//! `[server] install` (the server certificate with its key where a node loads it) and
//! `ravencert settings` (the node's settings.json fragment), cross-checked with the openssl
//! command.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use crate::common::openssl::pkcs12;
use crate::common::{openssl, openssl_thumbprint, Env};

const PASSWORD: &str = "install-secret-7Qx";

fn config(install: &str) -> String {
    format!(
        "version = 1\n[server]\ngenerate = true\nname = \"localhost\"\nkey = \"ec-p256\"\n\
         install = {install}\n[defaults]\nkey = \"ec-p256\"\n\n\
         [clients.admin]\nclearance = \"ClusterAdmin\"\n\n\
         [cluster]\nurls = [\"https://127.0.0.1:1\"]\nadmin = \"admin\"\n"
    )
}

/// The certificate and key the install file holds, as PEM: (certificate, public key of the key).
fn opened(env: &Env, password: &str, extra: &[&str]) -> (String, String) {
    let pfx = env.path("node/server.pfx");
    let mut args = vec!["-nodes"];
    args.extend_from_slice(extra);
    let pem = pkcs12(&pfx, password, &args).success().stdout;
    env.write("opened.pem", &pem);
    let cert = openssl(&["x509", "-in", env.path("opened.pem").to_str().unwrap()])
        .success()
        .stdout;
    let key_pub = openssl(&[
        "pkey",
        "-in",
        env.path("opened.pem").to_str().unwrap(),
        "-pubout",
    ])
    .success()
    .stdout;
    let cert_pub = openssl(&[
        "x509",
        "-in",
        env.path("opened.pem").to_str().unwrap(),
        "-noout",
        "-pubkey",
    ])
    .success()
    .stdout;
    assert_eq!(key_pub, cert_pub, "the key belongs to the certificate");
    (cert, key_pub)
}

#[test]
fn legacy_install_holds_the_server_certificate_and_key_and_settings_names_it() {
    let env = Env::new();
    env.config(&config("{ path = \"node/server.pfx\", pfx = \"legacy\" }"));
    env.run(&["apply", "--yes", "--offline"]).success();
    let pfx = env.path("node/server.pfx");
    let mode = std::fs::metadata(&pfx).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // 3DES and a SHA-1 MAC: OpenSSL 3 opens it without -legacy; no PBES2 anywhere.
    let info = pkcs12(&pfx, "", &["-info", "-noout"]).success();
    assert!(info.stderr.contains("MAC: sha1"), "{}", info.shown());
    assert!(info.stderr.contains("pbeWithSHA1And3-KeyTripleDES-CBC"));
    assert!(!info.stderr.contains("PBES2") && !info.stderr.contains("RC2"));
    let (cert, _) = opened(&env, "", &[]);
    env.write("installed.crt", &cert);
    assert_eq!(
        openssl_thumbprint(&env.path("installed.crt")),
        openssl_thumbprint(&env.server_pem())
    );

    let run = env.run(&["settings"]).success();
    let json = run.json();
    assert_eq!(
        json["Security.Certificate.Path"],
        std::fs::canonicalize(&pfx).unwrap().to_str().unwrap()
    );
    let admin_pem = env.store().join("issued/admin/admin.crt");
    assert_eq!(
        json["Security.WellKnownCertificates.Admin"],
        openssl_thumbprint(&admin_pem).as_str()
    );
    assert!(json.get("Security.Certificate.Password").is_none());
    assert_eq!(run.stderr, "");
    env.run(&["plan", "--offline", "--detailed-exitcode"])
        .success();
}

#[test]
fn install_is_kept_current_and_its_password_never_printed() {
    let env = Env::new().env("NODE_PFX_PASSWORD", PASSWORD);
    env.config(&config(
        "{ path = \"node/server.pfx\", password_env = \"NODE_PFX_PASSWORD\" }",
    ));
    env.run(&["apply", "--yes", "--offline"])
        .success()
        .hides(&[PASSWORD]);
    // Modern by default: PBES2 with AES-256.
    let info = pkcs12(&env.path("node/server.pfx"), PASSWORD, &["-info", "-noout"]).success();
    assert!(info.stderr.contains("PBES2"), "{}", info.shown());
    opened(&env, PASSWORD, &[]);

    let run = env.run(&["settings"]).success();
    run.hides(&[PASSWORD]);
    assert!(run.json().get("Security.Certificate.Password").is_none());
    assert!(
        run.stderr.contains("Security.Certificate.Password")
            && run.stderr.contains("NODE_PFX_PASSWORD"),
        "{}",
        run.shown()
    );

    // Missing, a changed password, a changed profile, a re-issued server: each re-writes it.
    std::fs::remove_file(env.path("node/server.pfx")).unwrap();
    let plan = env.run(&["plan", "--offline"]).success();
    assert!(plan.stdout.contains("> install"), "{}", plan.shown());
    assert!(plan.stdout.contains("is missing"));
    env.run(&["apply", "--yes", "--offline"]).success();
    env.run(&["plan", "--offline", "--detailed-exitcode"])
        .success();

    let other = env
        .run_with(
            &["plan", "--offline"],
            &[("NODE_PFX_PASSWORD", "another-one")],
        )
        .success();
    assert!(other
        .stdout
        .contains("does not open with the declared password"));
    other.hides(&[PASSWORD, "another-one"]);

    env.config(&config(
        "{ path = \"node/server.pfx\", pfx = \"legacy\", password_env = \"NODE_PFX_PASSWORD\" }",
    ));
    let plan = env.run(&["plan", "--offline"]).success();
    assert!(
        plan.stdout.contains("pfx modern -> legacy"),
        "{}",
        plan.shown()
    );
    env.run(&["apply", "--yes", "--offline"]).success();
    let info = pkcs12(&env.path("node/server.pfx"), PASSWORD, &["-info", "-noout"]).success();
    assert!(info.stderr.contains("pbeWithSHA1And3-KeyTripleDES-CBC"));

    let before = env.server_thumbprint();
    env.run(&["apply", "--yes", "--offline", "--replace", "server"])
        .success();
    let after = env.server_thumbprint();
    assert_ne!(before, after);
    let (cert, _) = opened(&env, PASSWORD, &[]);
    env.write("installed.crt", &cert);
    assert_eq!(openssl_thumbprint(&env.path("installed.crt")), after);
}

#[test]
fn settings_refuses_what_it_cannot_name() {
    let env = Env::new();
    env.config(&config("{ path = \"node/server.pfx\", pfx = \"legacy\" }"));
    let run = env.run(&["settings"]).failure();
    assert!(
        run.stderr.contains("run `ravencert apply` first"),
        "{}",
        run.shown()
    );

    env.config(common::SERVER);
    let run = env.run(&["settings"]).failure();
    assert!(
        run.stderr.contains("no [server] install"),
        "{}",
        run.shown()
    );

    env.config(
        "version = 1\n[server]\ngenerate = true\nname = \"localhost\"\nkey = \"ec-p256\"\n\
         install = { path = \"node/server.pfx\" }\n",
    );
    let run = env.run(&["settings"]).failure();
    assert!(run.stderr.contains("no [cluster] admin"), "{}", run.shown());
}

#[test]
fn settings_names_an_admin_certificate_pfx() {
    let env = Env::new();
    common::self_signed(
        env.dir.path(),
        "secrets/admin.crt",
        "secrets/admin.key",
        "ops",
    );
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        env.path("secrets/admin.crt").to_str().unwrap(),
        "-inkey",
        env.path("secrets/admin.key").to_str().unwrap(),
        "-out",
        env.path("secrets/admin.pfx").to_str().unwrap(),
        "-passout",
        "pass:",
    ])
    .success();
    env.config(
        "version = 1\n[server]\ngenerate = true\nname = \"localhost\"\nkey = \"ec-p256\"\n\
         install = { path = \"node/server.pfx\", pfx = \"legacy\" }\n\n\
         [cluster]\nurls = [\"https://127.0.0.1:1\"]\n\
         admin_certificate = { path = \"secrets/admin.pfx\" }\n",
    );
    env.run(&["apply", "--yes", "--offline"]).success();
    let json = env.run(&["settings"]).success().json();
    assert_eq!(
        json["Security.WellKnownCertificates.Admin"],
        openssl_thumbprint(&env.path("secrets/admin.crt")).as_str()
    );
}

#[test]
fn install_through_a_linked_folder_is_refused_and_its_target_untouched() {
    let env = Env::new();
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.path("node")).unwrap();
    // Relative to certs.toml's folder, and absolute: a link anywhere on the way is refused.
    let absolute = format!(
        "{{ path = \"{}\" }}",
        env.path("node/sub/server.pfx").display()
    );
    for install in ["{ path = \"node/server.pfx\" }", absolute.as_str()] {
        env.config(&config(install));
        for args in [&["plan"][..], &["apply", "--yes", "--offline"][..]] {
            env.cmd(args)
                .refused(&["server.install", "symbolic link", "node"]);
        }
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
