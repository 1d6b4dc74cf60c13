//! `ravencert bundle KEY [--out FILE.zip]`: the zip RavenDB hands out for a generated client.
//! The zip is opened with the real `unzip` command, the .pfx with `openssl pkcs12` and the
//! declared password, and every thumbprint is compared with the store's.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::openssl::pkcs12;
use crate::common::{openssl, openssl_thumbprint, self_signed, Env, SERVER};

const APP_PW: &str = "Bundle-pw-3c9e";

/// A generated client with a password (from the environment), one without, and an upload.
fn applied() -> Env {
    let env = Env::new();
    self_signed(
        env.dir.path(),
        "trust/partner.pem",
        "trust/partner.key",
        "partner",
    );
    env.config(&format!(
        r#"{SERVER}
[clients.app]
clearance = "ValidUser"
databases = {{ Orders = "ReadWrite" }}
password_env = "APP_PFX_PASSWORD"

[clients.nopw]
clearance = "Operator"

[clients.partner]
clearance = "ValidUser"
databases = {{ Orders = "Read" }}
upload = "trust/partner.pem"
"#
    ));
    env.cmd(&["apply", "--yes"])
        .env("APP_PFX_PASSWORD", APP_PW)
        .run()
        .success();
    env
}

/// Runs `unzip ARGS` in `dir`: stdout as bytes. The command is required (.ci/run installs it).
fn unzip(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("unzip")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("the unzip command cannot be run ({e}); install it (.ci/run installs unzip)")
        });
    assert!(
        out.status.success(),
        "unzip {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_zip_holds_the_issued_bundle_and_opens_with_unzip_and_openssl() {
    let env = applied();
    // No password in the environment: bundle copies the protected files, it reads no secret.
    let run = env.run(&["bundle", "app"]).success();
    assert!(run.stdout.contains("Wrote app.zip"), "{}", run.shown());
    run.hides(&[APP_PW]);
    let zip = env.path("app.zip");
    assert_eq!(mode(&zip), 0o600, "the zip holds a private key");

    let listing = String::from_utf8(unzip(env.dir.path(), &["-Z1", "app.zip"])).unwrap();
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(names, ["app.crt", "app.key", "app.pfx"]);
    unzip(env.dir.path(), &["-l", "app.zip"]);
    let issued = env.store().join("issued/app");
    for name in ["app.pfx", "app.crt", "app.key"] {
        let inside = unzip(env.dir.path(), &["-p", "app.zip", name]);
        assert_eq!(
            inside,
            std::fs::read(issued.join(name)).unwrap(),
            "{name} is not the store's"
        );
        env.write(&format!("out/{name}"), &inside);
    }

    // The .crt is the registered certificate.
    let client = env.thumbprint("app");
    assert_eq!(openssl_thumbprint(&env.path("out/app.crt")), client);

    // The .pfx opens with the declared password only, and holds the client certificate, its
    // key and the server certificate.
    let pfx = env.path("out/app.pfx");
    pkcs12(&pfx, "wrong", &["-nodes"]).failure();
    let leaf = pkcs12(&pfx, APP_PW, &["-nokeys", "-clcerts"]).success();
    env.write("out/leaf.pem", &leaf.stdout);
    assert_eq!(openssl_thumbprint(&env.path("out/leaf.pem")), client);
    let cas = pkcs12(&pfx, APP_PW, &["-nokeys", "-cacerts"]).success();
    env.write("out/server.pem", &cas.stdout);
    assert_eq!(
        openssl_thumbprint(&env.path("out/server.pem")),
        env.server_thumbprint()
    );
    let key = pkcs12(&pfx, APP_PW, &["-nocerts", "-nodes"]).success();
    env.write("out/leaf.key", &key.stdout);
    let (leaf_key, leaf_pem) = (env.path("out/leaf.key"), env.path("out/leaf.pem"));
    let key_pub = openssl(&["pkey", "-in", leaf_key.to_str().unwrap(), "-pubout"])
        .success()
        .stdout;
    let cert_pub = openssl(&[
        "x509",
        "-in",
        leaf_pem.to_str().unwrap(),
        "-noout",
        "-pubkey",
    ])
    .success()
    .stdout;
    assert_eq!(key_pub, cert_pub, "the .pfx key is not the certificate's");
}

#[test]
fn out_names_the_zip_and_a_client_without_password_is_said_so() {
    let env = applied();
    let run = env
        .run(&["bundle", "nopw", "--out", "handout.zip"])
        .success();
    assert!(run.stdout.contains("without a password"), "{}", run.shown());
    assert!(!env.path("nopw.zip").exists());
    assert_eq!(mode(&env.path("handout.zip")), 0o600);
    let crt = unzip(env.dir.path(), &["-p", "handout.zip", "nopw.crt"]);
    env.write("nopw.crt", &crt);
    assert_eq!(
        openssl_thumbprint(&env.path("nopw.crt")),
        env.thumbprint("nopw")
    );
    // Written under a restrictive umask or a permissive one alike.
    env.cmd(&["bundle", "nopw", "--out", "open.zip"])
        .umask(0o000)
        .run()
        .success();
    assert_eq!(mode(&env.path("open.zip")), 0o600);
}

#[test]
fn refused_for_an_upload_an_unknown_key_and_a_client_not_issued() {
    let env = applied();
    env.cmd(&["bundle", "partner"]).refused(&[
        "'partner' is an upload",
        "ravencert never held its private key",
    ]);
    env.cmd(&["bundle", "nope"])
        .refused(&["no client 'nope'", "app, nopw, partner"]);
    let text = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&format!(
        "{text}\n[clients.late]\nclearance = \"ValidUser\"\n"
    ));
    env.cmd(&["bundle", "late"])
        .refused(&["'late' has no issued bundle", "run `ravencert apply`"]);
}

#[test]
fn never_overwrites_nor_follows_a_link() {
    let env = applied();
    env.write("app.zip", "someone else's file");
    env.cmd(&["bundle", "app"])
        .refused(&["app.zip already exists", "never overwrites"]);
    assert_eq!(
        std::fs::read_to_string(env.path("app.zip")).unwrap(),
        "someone else's file"
    );
    // A link, even to nowhere, is not written through.
    std::os::unix::fs::symlink(env.path("elsewhere.zip"), env.path("link.zip")).unwrap();
    env.cmd(&["bundle", "app", "--out", "link.zip"])
        .refused(&["link.zip already exists"]);
    assert!(!env.path("elsewhere.zip").exists());
    // Nor inside the store.
    env.cmd(&["bundle", "app", "--out", "store/app.zip"])
        .refused(&["inside the store"]);
}
