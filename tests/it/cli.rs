//! End-to-end tests of the binary: what an admin does, cross-checked with the openssl command.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::common::openssl::pkcs12;
use crate::common::review::{assert_review, filters};
use crate::common::{json, openssl, openssl_thumbprint, Env, SERVER};

const PASSWORD: &str = "correct horse battery staple";

fn three_clients() -> String {
    format!(
        r#"{SERVER}
[clients.admin]
clearance = "ClusterAdmin"

[clients.ops]
name = "Operations"
clearance = "Operator"
key = "rsa-2048"

[clients.orders-app]
name = "Orders App"
clearance = "ValidUser"
databases = {{ Orders = "Read" }}
key = "ec-p384"
validity = "90d"
password_env = "ORDERS_PASSWORD"
"#
    )
}

fn env_with_three() -> Env {
    let env = Env::new().env("ORDERS_PASSWORD", PASSWORD);
    env.config(&three_clients());
    env
}

/// A whole message of the command line, reviewed as text (tests/snapshots/NAME.snap; the temp
/// folder, thumbprints and dates replaced by placeholders): what is wrong, where, what to do.
#[track_caller]
fn assert_message(env: &Env, name: &str, text: &str) {
    assert_review(name, text, &filters(env));
}

#[test]
fn first_apply_creates_everything_and_is_idempotent() {
    let env = env_with_three();
    let plan = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert!(plan
        .stdout
        .contains("Plan: 4 to create, 0 to update, 0 to replace, 0 to delete, 1 to export."));

    let apply = env.run(&["apply", "--yes"]).success();
    assert!(apply.stdout.contains("Apply complete"));

    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again
        .stdout
        .contains("No changes. The store matches certs.toml."));

    let status = env.status();
    let clearances: Vec<(&str, &str)> = status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["clearance"].as_str().unwrap()))
        .collect();
    assert_eq!(
        clearances,
        vec![
            ("admin", "ClusterAdmin"),
            ("ops", "Operator"),
            ("orders-app", "ValidUser")
        ]
    );
    assert_eq!(status["certificates"][2]["permissions"]["Orders"], "Read");
    assert_eq!(status["server"][0]["subject"], "CN=cluster.example.com");
}

#[test]
fn issued_certificates_pass_openssl_checks() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let server = env.server_pem();
    let server = server.to_str().unwrap();

    // Thumbprints in status are openssl's SHA-1 fingerprints.
    let status = env.status();
    for c in status["certificates"].as_array().unwrap() {
        let key = c["key"].as_str().unwrap();
        let crt = env.store().join(format!("issued/{key}/{key}.crt"));
        assert_eq!(openssl_thumbprint(&crt), c["thumbprint"].as_str().unwrap());
        // Signed by the server certificate, good for TLS client auth.
        openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            server,
            crt.to_str().unwrap(),
        ])
        .success();
        let text = openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-text"])
            .success()
            .stdout;
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(!text.contains("TLS Web Server Authentication"));
        assert!(text.contains("Issuer: CN = cluster.example.com"));
        assert!(text.contains(&format!("Subject: CN = {}", c["name"].as_str().unwrap())));
        assert!(text.contains("X509v3 Authority Key Identifier"));
    }
    assert_eq!(
        openssl_thumbprint(std::path::Path::new(server)),
        status["server"][0]["thumbprint"]
    );

    // Key types and validity as declared.
    let x509_text = |key: &str| {
        let crt = env.store().join(format!("issued/{key}/{key}.crt"));
        openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-text"])
            .success()
            .stdout
    };
    assert!(x509_text("ops").contains("Public-Key: (2048 bit)"));
    assert!(x509_text("ops").contains("rsaEncryption"));
    assert!(x509_text("orders-app").contains("NIST CURVE: P-384"));
    assert!(x509_text("admin").contains("NIST CURVE: P-256"));
    let orders = &status["certificates"][2];
    let nb = time::OffsetDateTime::parse(
        orders["not_before"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let na = time::OffsetDateTime::parse(
        orders["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // not-before a week back (clock skew margin), not-after 90 days from now.
    assert_eq!((na - nb).whole_days(), 97);
    let now = time::OffsetDateTime::now_utc();
    assert!((na - now).whole_days() >= 89 && (na - now).whole_days() <= 90);

    // The protected .pfx opens with its password and not with a wrong one; it holds the client
    // certificate, its key and the server certificate.
    let pfx = env.store().join("issued/orders-app/orders-app.pfx");
    let opened = pkcs12(&pfx, PASSWORD, &["-nodes"]).success();
    assert_eq!(opened.stdout.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(opened.stdout.matches("BEGIN PRIVATE KEY").count(), 1);
    pkcs12(&pfx, "wrong", &["-nodes"]).failure();
    let info = pkcs12(&pfx, PASSWORD, &["-info", "-noout"]).success();
    assert!(info.stderr.contains("AES-256-CBC"), "{}", info.stderr);
    assert!(info.stderr.contains("MAC: sha256"), "{}", info.stderr);

    // The key file is encrypted with the same password.
    let key = env.store().join("issued/orders-app/orders-app.key");
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-passin",
        &format!("pass:{PASSWORD}"),
        "-noout",
    ])
    .success();

    // The export holds the server certificate and no private key.
    let exp = pkcs12(&env.path("exports/cluster.pfx"), "", &["-nodes"]).success();
    assert_eq!(exp.stdout.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!exp.stdout.contains("PRIVATE KEY"));
    let exported = env.path("exported.pem");
    std::fs::write(&exported, &exp.stdout).unwrap();
    assert_eq!(
        openssl_thumbprint(&exported),
        status["server"][0]["thumbprint"]
    );
}

#[test]
fn legacy_profile_uses_3des_and_sha1_mac() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}\n[clients.old]\nclearance = \"Operator\"\npfx = \"legacy\"\npassword_file = \"old.pass\"\n"
    ));
    env.write("old.pass", "legacy-secret\n");
    env.run(&["apply", "--yes"]).success();
    let pfx = env.store().join("issued/old/old.pfx");
    let info = pkcs12(&pfx, "legacy-secret", &["-info", "-noout"]).success();
    assert!(
        info.stderr.contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{}",
        info.stderr
    );
    assert!(info.stderr.contains("MAC: sha1"), "{}", info.stderr);
    assert!(!info.stderr.contains("RC2"));
}

#[test]
fn editing_clearance_and_permissions_keeps_the_thumbprint() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let before = env.thumbprint("orders-app");

    env.config(&three_clients().replace(
        "databases = { Orders = \"Read\" }",
        "databases = { Orders = \"ReadWrite\", Reporting = \"Read\" }",
    ));
    let plan = env.run(&["plan"]).success();
    assert!(
        plan.stdout.contains("~ client orders-app  [ESCALATION]"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("Orders: Read -> ReadWrite"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("Reporting: (none) -> Read"));
    assert!(plan
        .stdout
        .contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 0 to export."));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("orders-app"), before);
    let s = env.status();
    assert_eq!(s["certificates"][2]["permissions"]["Orders"], "ReadWrite");

    // Lowering clearance: an update that is not an escalation.
    env.config(&three_clients().replace(
        "name = \"Operations\"\nclearance = \"Operator\"",
        "name = \"Operations\"\nclearance = \"ValidUser\"\ndatabases = { Ops = \"Admin\" }",
    ));
    let ops_before = env.thumbprint("ops");
    let plan = env.run(&["plan", "--json"]).success().json();
    let change = json::find(&plan["changes"], "key", "ops").unwrap().clone();
    assert_eq!(change["action"], "update");
    assert_eq!(change["escalation"], false);
    assert_eq!(change["before"]["clearance"], "Operator");
    assert_eq!(change["after"]["clearance"], "ValidUser");
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("ops"), ops_before);
}

#[test]
fn undeclared_clients_warn_without_prune_and_are_deleted_with_it() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let without_admin =
        three_clients().replace("[clients.admin]\nclearance = \"ClusterAdmin\"\n", "");
    env.config(&without_admin);
    // Kept access: listed with its clearance, counted, and not "No changes" (exit 2).
    let plan = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.shown());
    assert!(plan.stdout.contains("client admin ("), "{}", plan.stdout);
    assert!(plan.stdout.contains("ClusterAdmin"), "{}", plan.stdout);
    assert!(plan.stdout.contains("prune = false"));
    env.run(&["apply", "--yes"]).success();
    assert!(env.store().join("issued/admin/admin.pfx").exists());

    env.config(&without_admin.replace("version = 1", "version = 1\n[store]\nprune = true"));
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["summary"]["delete"], 1);
    // Turning prune on is a settings change of its own, flagged.
    assert_eq!(plan["changes"][0]["target"], "settings");
    assert_eq!(plan["changes"][0]["escalation"], true);
    assert_eq!(plan["changes"][1]["action"], "delete");
    assert_eq!(plan["changes"][1]["key"], "admin");
    let admin_thumb = env.thumbprint("admin");
    env.run(&["apply", "--yes"]).success();
    let s = env.status();
    assert_eq!(s["certificates"].as_array().unwrap().len(), 2);
    assert!(!env.store().join("issued/admin").exists());
    assert!(!env
        .store()
        .join(format!("certs/{admin_thumb}.pem"))
        .exists());
}

#[test]
fn replace_reissues_with_a_new_thumbprint() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let old = env.thumbprint("admin");
    let plan = env.run(&["plan", "--replace", "admin"]).success();
    assert!(plan.stdout.contains("-/+ client admin"), "{}", plan.stdout);
    assert!(plan.stdout.contains("--replace admin"));
    env.run(&["apply", "--yes", "--replace", "admin"]).success();
    let new = env.thumbprint("admin");
    assert_ne!(old, new);
    let crt = env.store().join("issued/admin/admin.crt");
    assert_eq!(openssl_thumbprint(&crt), new);
    assert!(!env.store().join(format!("certs/{old}.pem")).exists());
    env.run(&["plan", "--detailed-exitcode"]).success();

    let unknown = env.run(&["plan", "--replace", "nobody"]).failure();
    assert_message(&env, "error_replace_unknown_key", &unknown.stderr);
}

#[test]
fn key_type_change_forces_replacement() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    env.config(&three_clients().replace("key = \"ec-p384\"", "key = \"ec-p256\""));
    let plan = env.run(&["plan"]).success();
    assert!(
        plan.stdout
            .contains("key ec-p384 -> ec-p256 forces replacement"),
        "{}",
        plan.stdout
    );
}

#[test]
fn apply_without_terminal_or_yes_refuses_and_changes_nothing() {
    let env = env_with_three();
    let r = env.cmd(&["apply"]).refused(&[]);
    assert_message(&env, "error_apply_without_yes", &r.stderr);
    assert!(!env.store().exists());

    env.run(&["apply", "--yes"]).success();
    env.config(&three_clients().replace("ClusterAdmin", "Operator"));
    let r = env.cmd(&["apply"]).refused(&[]);
    assert_message(&env, "error_apply_without_yes", &r.stderr);
}

#[test]
fn export_command_writes_the_server_certificate() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let out = env.path("elsewhere/b.pfx");
    env.run(&["export", "--out", out.to_str().unwrap()])
        .success();
    let exp = pkcs12(&out, "", &["-nodes"]).success();
    assert_eq!(exp.stdout.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!exp.stdout.contains("PRIVATE KEY"));

    // A deleted export is planned again.
    std::fs::remove_file(env.path("exports/cluster.pfx")).unwrap();
    let plan = env.run(&["plan"]).success();
    assert!(plan.stdout.contains("> export"), "{}", plan.stdout);
}

#[test]
fn private_files_are_0600_in_0700_folders_even_with_a_loose_umask() {
    let env = env_with_three();
    env.cmd(&["apply", "--yes"]).umask(0o000).run().success();
    for (path, (mode, _)) in env.snapshot() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let expected = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode & 0o777, expected, "{}", path.display());
    }
    let key = env.store().join("issued/orders-app/orders-app.key");
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn no_secret_reaches_the_terminal() {
    let env = env_with_three();
    let mut outputs = Vec::new();
    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--json", "--diff"],
        vec!["apply", "--yes"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["apply", "--yes", "--json", "--replace", "orders-app"],
        vec!["export"],
    ] {
        let r = env.run(&args).success();
        outputs.push(r.stdout);
        outputs.push(r.stderr);
    }
    for o in &outputs {
        assert!(!o.contains(PASSWORD));
        assert!(!o.contains("PRIVATE KEY"));
        assert!(!o.contains("BEGIN"));
    }
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert!(!registry.contains(PASSWORD) && !registry.contains("PRIVATE"));
}

#[test]
fn a_second_apply_waits_for_the_lock_and_names_the_holder() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    // Hold the lock the way an apply does.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.store().join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(
        env.store().join(".lock"),
        "pid 4242 on testhost since now\n",
    )
    .unwrap();
    env.config(&three_clients().replace("ClusterAdmin", "Operator"));
    let r = env
        .cmd(&["apply", "--yes", "--lock-timeout", "1s"])
        .refused(&[]);
    assert_message(&env, "cli_lock_held", &r.stderr);
    drop(lock);
    env.run(&["apply", "--yes", "--lock-timeout", "1s"])
        .success();
}

#[test]
fn corrupt_store_is_an_error_and_nothing_is_written() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("admin");
    // Swap admin's public certificate for another one: thumbprint mismatch.
    let other = env.thumbprint("ops");
    let certs = env.store().join("certs");
    std::fs::copy(
        certs.join(format!("{other}.pem")),
        certs.join(format!("{thumb}.pem")),
    )
    .unwrap();
    let r = env.cmd(&["apply", "--yes"]).refused(&[&thumb]);
    assert_message(&env, "cli_store_certificate_swapped", &r.stderr);

    // An unknown store format version.
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let reg = env.store().join("registry.toml");
    let text = std::fs::read_to_string(&reg).unwrap();
    std::fs::write(
        &reg,
        text.replace("format_version = 1", "format_version = 9"),
    )
    .unwrap();
    let r = env.run(&["plan"]).failure();
    assert_message(&env, "error_store_format_version", &r.stderr);
}

#[test]
fn symlinks_in_the_store_are_not_followed() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("admin");
    let pem = env.store().join(format!("certs/{thumb}.pem"));
    let outside = env.path("outside.pem");
    std::fs::rename(&pem, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &pem).unwrap();
    let r = env.run(&["plan"]).failure();
    assert_message(&env, "cli_store_symlink", &r.stderr);
}

#[test]
fn init_writes_a_starter_once() {
    let env = Env::new();
    env.run(&["init"]).success();
    let text = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    assert!(text.contains("version = 1"));
    // The starter is ready to use as it is.
    env.run(&["validate"]).success();
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["summary"]["create"], 2);
    let r = env.run(&["init"]).failure();
    assert_message(&env, "cli_init_exists", &r.stderr);
    assert_eq!(
        std::fs::read_to_string(env.path("certs.toml")).unwrap(),
        text
    );
}

/// The starter's `#:schema` line works for someone who only has the binary: it names a file
/// next to certs.toml, the starter says how to write it, and the starter passes that schema.
#[test]
fn init_starter_points_to_a_schema_the_binary_writes() {
    let env = Env::new();
    env.run(&["init"]).success();
    let text = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    let first = text.lines().next().unwrap();
    let target = first
        .strip_prefix("#:schema ")
        .unwrap_or_else(|| panic!("the starter does not start with #:schema: {first}"));
    assert_eq!(target, "./certs.schema.json");
    assert!(
        text.contains("ravencert schema > certs.schema.json"),
        "the starter must say how to write the schema:\n{text}"
    );
    // Every file the starter mentions is one the user has or can make with the binary.
    assert!(!text.contains("certs.toml.example"), "{text}");
    let schema = env.run(&["schema"]).success().stdout;
    env.write(target, &schema);
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(schema["title"], "ravencert certs.toml");
    common::schema_check(&text).unwrap();
}

#[test]
fn store_flag_overrides_the_config_path_and_has_a_gitignore() {
    let env = env_with_three();
    env.run(&["--store", "other-store", "apply", "--yes"])
        .success();
    assert!(env.path("other-store/registry.toml").exists());
    assert!(!env.store().exists());
    assert_eq!(
        std::fs::read_to_string(env.path("other-store/.gitignore")).unwrap(),
        "*\n"
    );
}

#[test]
fn completions_and_schema_print() {
    let env = Env::new();
    let c = env.run(&["completions", "bash"]).success();
    assert!(c.stdout.contains("ravencert"));
    let s = env.run(&["schema"]).success().json();
    assert_eq!(s["title"], "ravencert certs.toml");
}

#[test]
fn colors_only_when_asked_and_never_with_no_color() {
    let env = env_with_three();
    let plain = env.run(&["plan"]).success();
    assert!(
        !plain.stdout.contains('\x1b'),
        "off a terminal, auto means no color"
    );
    let colored = env.run(&["--color", "always", "plan"]).success();
    assert!(colored.stdout.contains("\x1b["));
    let no_color = env
        .run_with(&["--color", "always", "plan"], &[("NO_COLOR", "1")])
        .success();
    assert!(!no_color.stdout.contains('\x1b'));
    assert!(!env
        .run(&["--color", "never", "plan"])
        .success()
        .stdout
        .contains('\x1b'));
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let env = Env::new();
    let bad = env.run(&["plan", "--no-such-flag"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert_message(&env, "cli_unknown_flag", &bad.stderr);
    assert_eq!(env.run(&["--help"]).code, 0);
    assert_eq!(env.run(&["--version"]).code, 0);
}

/// The value line under "X509v3 Key Usage" in `openssl x509 -text`.
fn key_usage_of(pem: &std::path::Path) -> String {
    let text = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"])
        .success()
        .stdout;
    let mut lines = text.lines();
    lines
        .find(|l| l.contains("X509v3 Key Usage"))
        .unwrap_or_else(|| panic!("no Key Usage:\n{text}"));
    lines.next().unwrap().trim().to_string()
}

#[test]
fn ec_certificates_carry_no_key_encipherment() {
    // RFC 5480: an EC key signs (digitalSignature); keyEncipherment is for RSA key transport.
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let issued = |key: &str| env.store().join(format!("issued/{key}/{key}.crt"));
    assert_eq!(
        key_usage_of(&env.server_pem()),
        "Digital Signature, Certificate Sign",
        "the EC server certificate"
    );
    assert_eq!(
        key_usage_of(&issued("admin")),
        "Digital Signature",
        "ec-p256"
    );
    assert_eq!(
        key_usage_of(&issued("orders-app")),
        "Digital Signature",
        "ec-p384"
    );
    assert_eq!(
        key_usage_of(&issued("ops")),
        "Digital Signature, Key Encipherment",
        "rsa-2048 keeps keyEncipherment"
    );
}

#[test]
fn markdown_plan_fences_the_registry_diff() {
    let env = Env::new();
    // A client name is free text: one holding a fence must not end the diff block early.
    env.config(&format!(
        "{SERVER}\n[clients.app]\nname = \"App ```` x\"\nclearance = \"Operator\"\n"
    ));
    let md = env.run(&["plan", "--markdown", "--diff"]).success().stdout;
    let lines: Vec<&str> = md.lines().collect();
    let open = lines
        .iter()
        .position(|l| l.starts_with("```") && l.ends_with("diff"))
        .unwrap_or_else(|| panic!("no ```diff block:\n{md}"));
    let fence = lines[open].trim_end_matches("diff");
    assert!(
        fence.len() > 4,
        "longer than the name's backtick run:\n{md}"
    );
    // The block is closed by the fence alone, at the end, and holds the whole diff.
    let close = open
        + 1
        + lines[open + 1..]
            .iter()
            .position(|l| l.starts_with(fence))
            .unwrap_or_else(|| panic!("the diff block is never closed:\n{md}"));
    assert_eq!(lines[close], fence, "{md}");
    assert_eq!(close, lines.len() - 1, "nothing after the block:\n{md}");
    let block = &lines[open + 1..close];
    assert!(block[0].starts_with("--- registry.toml"), "{md}");
    assert!(
        block
            .iter()
            .any(|l| l.starts_with('+') && l.contains("App ```` x")),
        "{md}"
    );
    // The table before it is untouched.
    assert!(
        lines[..open]
            .iter()
            .any(|l| l.starts_with("| `+` | create")),
        "{md}"
    );
}

#[test]
fn apply_json_on_a_terminal_asks_on_stderr_and_keeps_stdout_json() {
    let env = env_with_three();
    let r = env
        .cmd(&["apply", "--json"])
        .env("NO_COLOR", "1")
        .stdin("yes\n")
        .stdin_terminal()
        .run()
        .success();
    let (out, err) = (&r.stdout, &r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"));
    assert_eq!(v["applied"], true, "{out}");
    assert!(
        err.contains("Do you want to perform these actions?"),
        "{err}"
    );
    assert!(err.contains("Plan: 4 to create"), "{err}");
    assert_eq!(env.status()["certificates"].as_array().unwrap().len(), 3);
}

#[test]
fn export_to_a_bare_file_name_writes_it_in_the_current_folder() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let r = env.run(&["export", "--out", "pub.pfx"]).success();
    assert!(r.stdout.contains("to pub.pfx"), "{}", r.stdout);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let exp = pkcs12(&env.path("pub.pfx"), "", &["-nodes"]).success();
    assert_eq!(exp.stdout.matches("BEGIN CERTIFICATE").count(), 1);
    // Written again over the previous export, still in the current folder.
    env.run(&["export", "--out", "pub.pfx"]).success();
}

#[test]
fn export_failing_after_the_store_commits_says_what_was_done() {
    let env = Env::new();
    // A folder that cannot be made (validate cannot know: /proc takes no new folders).
    let config = |export: &str| {
        format!(
            "{}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
            SERVER.replace("exports/cluster.pfx", export)
        )
    };
    env.config(&config("/proc/ravencert-test/cluster.pfx"));
    let r = env.run(&["apply", "--yes"]).failure();
    assert_message(
        &env,
        "cli_export_failed_after_the_store_committed",
        &r.stderr,
    );
    // The store did commit; the export is all that is left.
    assert_eq!(env.status()["certificates"].as_array().unwrap().len(), 1);
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["summary"]["export"], 1, "{plan}");
    assert_eq!(plan["changes"].as_array().unwrap().len(), 1, "{plan}");
    // Once the path can be written, the next apply writes it.
    env.config(&config("out/cluster.pfx"));
    env.run(&["apply", "--yes"]).success();
    assert!(env.path("out/cluster.pfx").is_file());
}

#[test]
fn status_shows_the_store_when_certs_toml_is_invalid() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    let good = env.status();
    // A bad commit: an unknown clearance.
    env.config(&three_clients().replace("\"Operator\"", "\"Operater\""));

    let r = env.run(&["status", "--json"]).success();
    let v = r.json();
    assert_eq!(v["certificates"], good["certificates"]);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains("certs.toml is invalid"), "{w}");
    assert!(w.contains("Operater"), "names the first error: {w}");
    assert_message(&env, "cli_status_warns_of_an_invalid_certs_toml", &r.stderr);

    let text = env.run(&["status"]).success();
    assert!(text.stdout.contains("Orders App"), "{}", text.stdout);
    assert!(
        text.stderr.contains("certs.toml is invalid"),
        "{}",
        text.stderr
    );

    // A file that is not even TOML: the store is found where it defaults to.
    env.config("version = 1\n[clients.broken\n");
    let r = env.run(&["status", "--json"]).success();
    assert_eq!(r.json()["certificates"], good["certificates"]);

    // An invalid file that still says where its store is.
    std::fs::rename(env.store(), env.path("kept")).unwrap();
    env.config(&format!(
        "{}\n[store]\npath = \"kept\"\n",
        three_clients().replace("\"Operator\"", "\"Operater\"")
    ));
    let r = env.run(&["status", "--json"]).success();
    assert_eq!(r.json()["certificates"], good["certificates"]);
    std::fs::rename(env.path("kept"), env.store()).unwrap();

    // A valid config has no warnings.
    env.config(&three_clients());
    assert_eq!(env.status()["warnings"], serde_json::json!([]));
}

#[test]
fn status_with_an_invalid_certs_toml_and_no_store_is_the_config_error() {
    let env = Env::new();
    env.config("version = 1\n[server]\ngenerate = yes\n");
    let r = env.run(&["status"]).failure();
    assert_message(
        &env,
        "cli_status_of_an_invalid_certs_toml_without_a_store",
        &r.stderr,
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // A named store path that does not exist either.
    env.config("version = 1\n[store]\npath = \"elsewhere\"\n[server]\ngenerate = yes\n");
    env.run(&["status", "--json"]).failure();
}

/// `watch --interval 0s` used to re-check in a busy loop; a huge value must not panic. Each bad
/// duration is refused before anything starts: exit 1, a message naming the option and the
/// bound, and no store.
#[test]
fn watch_refuses_intervals_and_polls_out_of_bounds() {
    let env = env_with_three();
    let git = [
        "--git",
        "/nonexistent/repo",
        "--branch",
        "main",
        "--store",
        "s",
    ];
    let cases: &[&[&str]] = &[
        &["--interval", "0s"],
        &["--interval", "9s"],
        &["--interval", "2y"],
        &["--interval", "18446744073709551615s"],
        &["--interval", "30m"],
        &["--interval", "500ms"],
        &["--interval=-1h"],
        &["--lock-timeout", "366d"],
        &[&git[..], &["--poll", "0s"]].concat(),
        &[&git[..], &["--poll", "5m"]].concat(),
    ];
    // Every message in one review: each names the option, the bound or the unit.
    let mut messages = String::new();
    for args in cases {
        let mut argv = vec!["watch"];
        argv.extend_from_slice(args);
        // Bounded, so that a command that should have been refused cannot hang the test.
        let r = env.cmd(&argv).timeout(10).run();
        assert_eq!(r.code, 1, "{argv:?} was not refused\n{r:?}");
        assert!(!r.stderr.contains("panicked"), "{argv:?}\n{}", r.stderr);
        assert!(!env.store().exists(), "{argv:?} wrote a store");
        messages.push_str(&format!("$ ravencert {}\n{}\n", argv.join(" "), r.stderr));
    }
    assert_message(&env, "cli_watch_durations_out_of_bounds", &messages);
}

/// The command line reads durations with certs.toml's grammar: `min` for minutes, `d` for days;
/// `m` alone is refused everywhere with a hint, on the command line as in certs.toml.
#[test]
fn command_line_durations_use_the_config_grammar() {
    let env = env_with_three();
    let r = env
        .run(&["apply", "--yes", "--lock-timeout", "2m"])
        .failure();
    assert_message(&env, "error_lock_timeout_unit", &r.stderr);
    assert!(!env.store().exists());
    env.run(&["apply", "--yes", "--lock-timeout", "2min"])
        .success();
    env.run(&["apply", "--yes", "--lock-timeout", "1d"])
        .success();

    env.config(&three_clients().replace("validity = \"90d\"", "validity = \"3m\""));
    let r = env.run(&["validate"]).failure();
    assert_message(&env, "cli_validity_in_months_as_m", &r.stderr);
    env.config(&three_clients().replace("validity = \"90d\"", "validity = \"3mo\""));
    env.run(&["validate"]).success();
}

/// The README's five-minute walkthrough runs as printed, from an empty folder: every command
/// of its `sh` blocks in order (`ravencert apply` answered `yes` on a terminal, `> FILE`
/// written), every `toml` block set into the certs.toml that `init` wrote (a table already
/// there replaced, up to its first blank line; a new one appended), and every output line it
/// shows (`# ...` under a command, thumbprints aside) found in that command's output.
#[test]
fn readme_walkthrough_runs_as_printed() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("\n## Five-minute walkthrough\n")
        .expect("the walkthrough is in the README");
    let section = &readme[at + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let env = Env::new();
    let mut commands = 0;
    let mut rest = section;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let (lang, body) = after.split_once('\n').unwrap();
        let close = body.find("```").expect("a closed code block");
        let block = &body[..close];
        rest = &body[close + 3..];
        match lang.trim() {
            "sh" => commands += walkthrough_commands(&env, block),
            "toml" => set_tables(&env, block),
            other => panic!("the walkthrough has a {other:?} block"),
        }
    }
    assert!(commands >= 7, "{section}");
}

/// Runs each command line of a walkthrough `sh` block, checking the output lines shown under
/// it. Returns how many commands ran.
fn walkthrough_commands(env: &Env, block: &str) -> usize {
    let mut runs: Vec<(String, Vec<&str>)> = Vec::new();
    for line in block.lines() {
        if let Some(shown) = line.strip_prefix('#') {
            let (_, expected) = runs.last_mut().expect("output under a command");
            expected.push(shown.trim());
            continue;
        }
        let command = line.split("  #").next().unwrap().trim();
        assert!(!command.contains(['"', '\'', '$', '|', ';']), "{line}");
        let mut words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words.remove(0), "ravencert", "{line}");
        let stdout_to = words.iter().position(|w| *w == ">").map(|i| {
            let file = words[i + 1].to_string();
            words.truncate(i);
            file
        });
        let run = if words == ["apply"] {
            env.cmd(&words).stdin_terminal().stdin("yes\n").run()
        } else {
            env.run(&words)
        };
        let run = run.success();
        if let Some(file) = stdout_to {
            env.write(&file, &run.stdout);
        }
        runs.push((run.stdout, Vec::new()));
    }
    for (stdout, expected) in &runs {
        for line in expected
            .iter()
            .filter(|l| !l.is_empty() && !l.starts_with("thumbprint"))
        {
            assert!(
                stdout.lines().any(|l| l.trim() == *line),
                "the README shows {line:?}, the command printed:\n{stdout}"
            );
        }
    }
    runs.len()
}

/// Sets each table of a walkthrough `toml` block in certs.toml: one already there is replaced
/// (its header line up to the first blank line), a new one appended.
fn set_tables(env: &Env, block: &str) {
    let mut config = std::fs::read_to_string(env.path("certs.toml")).expect("init wrote it");
    for table in block.trim().split("\n\n") {
        let header = table.lines().next().unwrap();
        assert!(header.starts_with('['), "{table}");
        let starts = config
            .match_indices(&format!("{header}\n"))
            .map(|(i, _)| i)
            .find(|i| *i == 0 || config[..*i].ends_with('\n'));
        match starts {
            Some(i) => {
                let end = config[i..].find("\n\n").map_or(config.len(), |e| i + e + 1);
                config.replace_range(i..end, &format!("{table}\n"));
            }
            None => config.push_str(&format!("\n{table}\n")),
        }
    }
    env.config(&config);
}

/// `ravencert ARGS` in `env`'s folder with stdout (and stderr) going where the test says.
fn run_into(env: &Env, args: &[&str], stdout: Stdio, stderr: Stdio) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ravencert"))
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("NO_COLOR")
        .env_remove("RAVENCERT_TEST_NOW")
        .envs(env.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("run ravencert")
}

/// `status --json > /dev/full`: the output cannot be written, so the command fails, saying so
/// on one line, rather than exit 0 leaving a truncated file behind (issue 22).
#[test]
fn an_output_that_cannot_be_written_is_an_error() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    for args in [
        &["status", "--json"][..],
        &["plan"][..],
        &["schema"][..],
        &["--help"][..],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run_into(&env, args, Stdio::from(full), Stdio::piped());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot write the output: ") && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `ravencert status --json | head -c 1`: a reader that stops early is not an error, the
/// command exits as it would have (0), quietly. The pipe's read end is closed before the
/// binary starts, so its first write meets a closed pipe.
#[test]
fn a_closed_pipe_on_stdout_is_a_quiet_success() {
    let env = env_with_three();
    env.run(&["apply", "--yes"]).success();
    for args in [&["status", "--json"][..], &["plan"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run_into(&env, args, Stdio::from(writer), Stdio::piped());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    // Through a shell, as typed: ravencert's own exit status (pipefail) is 0.
    common::sh(
        env.dir.path(),
        &format!(
            "set -o pipefail\n'{}' status --json | head -c 1 >/dev/null",
            env!("CARGO_BIN_EXE_ravencert")
        ),
    );
}

/// An error that cannot be written to stderr (`2>/dev/full`) still exits 1, without a panic.
#[test]
fn an_error_that_cannot_be_written_still_exits_1() {
    let env = Env::new();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let out = run_into(
        &env,
        &["-c", "missing.toml", "validate"],
        Stdio::piped(),
        Stdio::from(full()),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Both streams full: the same.
    let out = run_into(
        &env,
        &["-c", "missing.toml", "status", "--json"],
        Stdio::from(full()),
        Stdio::from(full()),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A `watch` whose log cannot be written (`2>/dev/full`) goes on applying: a log line it cannot
/// write is dropped, never a panic that would stop the daemon.
#[test]
fn watch_goes_on_when_its_log_cannot_be_written() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[clients.app]\nclearance = \"ValidUser\"\n"
    ));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ravencert"))
        .args(["watch", "--interval", "10s"])
        .current_dir(env.dir.path())
        .env_remove("NO_COLOR")
        .env_remove("RAVENCERT_TEST_NOW")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(full))
        .spawn()
        .unwrap();
    let registry = env.store().join("registry.toml");
    common::wait_until(
        "the first apply",
        || "watch with its log at /dev/full".to_string(),
        || registry.exists() || !matches!(child.try_wait(), Ok(None)),
    );
    assert!(matches!(child.try_wait(), Ok(None)), "watch stopped");
    assert!(registry.exists());
    child.kill().unwrap();
    child.wait().unwrap();
}
