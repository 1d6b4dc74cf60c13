//! The store converges on every declared field (issue 10): a bundle's password and profile,
//! validity, the server's name, DNS names and key, an uploaded certificate's holder, every
//! delete counted by max_deletions, the export path checked before the first apply, and links
//! inside the store refused. Each test runs the binary and cross-checks with `openssl`.

use crate::common;

use crate::common::{json, openssl, Env, SERVER};

fn client(extra: &str) -> String {
    format!("{SERVER}\n[clients.app]\nname = \"App\"\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n{extra}")
}

/// Opens `store/issued/app/app.pfx` with `password`, returning the `openssl pkcs12 -info` text.
fn open_pfx(env: &Env, password: &str) -> common::Run {
    let pfx = env.store().join("issued/app/app.pfx");
    common::openssl::pkcs12(&pfx, password, &["-info", "-nodes"])
}

fn plan_json(env: &Env) -> serde_json::Value {
    env.run(&["plan", "--json"]).success().json()
}

#[test]
fn changed_bundle_password_repackages_the_same_certificate() {
    let env = Env::new().env("APP_PASS", "first-password");
    env.config(&client("password_env = \"APP_PASS\"\n"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    assert_eq!(open_pfx(&env, "first-password").code, 0);

    // Same variable, new value: the registry holds no password, yet the change is seen.
    let env = Env {
        dir: env.dir,
        envs: vec![("APP_PASS".into(), "second-password".into())],
    };
    let plan = plan_json(&env);
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "update", "{plan:#}");
    assert_eq!(change["reason"], "bundle: password changed", "{plan:#}");
    assert_eq!(change["escalation"], false);
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    for secret in ["first-password", "second-password"] {
        assert!(!registry.contains(secret), "registry holds a password");
    }
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        env.thumbprint("app"),
        thumb,
        "the certificate was re-issued"
    );
    assert_ne!(
        open_pfx(&env, "first-password").code,
        0,
        "old password still opens it"
    );
    let opened = open_pfx(&env, "second-password");
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    // The .key is encrypted with the new password and is the certificate's key.
    let key = env.store().join("issued/app/app.key");
    let crt = env.store().join("issued/app/app.crt");
    let pub_of_key = openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-passin",
        "pass:second-password",
        "-pubout",
    ])
    .success()
    .stdout;
    let pub_of_crt = openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"])
        .success()
        .stdout;
    assert_eq!(pub_of_key, pub_of_crt);
    assert_eq!(common::openssl_thumbprint(&crt), thumb);
    env.run(&["plan", "--detailed-exitcode"]).success();

    // Removing the password: an unprotected bundle, same certificate.
    env.config(&client(""));
    let plan = plan_json(&env);
    assert_eq!(plan["changes"][0]["reason"], "bundle: password removed");
    env.run(&["apply", "--yes"]).success();
    assert_eq!(open_pfx(&env, "").code, 0);
    assert_eq!(env.thumbprint("app"), thumb);
    env.run(&["plan", "--detailed-exitcode"]).success();
}

#[test]
fn changed_pfx_profile_repackages_as_legacy() {
    let env = Env::new().env("APP_PASS", "pw-1");
    env.config(&client("password_env = \"APP_PASS\"\n"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    env.config(&client("password_env = \"APP_PASS\"\npfx = \"legacy\"\n"));
    let text = env.run(&["plan"]).success().stdout;
    assert!(text.contains("bundle: pfx modern -> legacy"), "{text}");
    assert!(text.contains("thumbprint (kept)"), "{text}");
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("app"), thumb);
    // 3DES and a SHA-1 MAC, readable by the default provider (never RC2).
    let info = open_pfx(&env, "pw-1");
    assert_eq!(info.code, 0, "{}", info.stderr);
    let all = format!("{}{}", info.stdout, info.stderr);
    assert!(all.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{all}");
    assert!(all.contains("MAC: sha1"), "{all}");
    env.run(&["plan", "--detailed-exitcode"]).success();
}

#[test]
fn changed_validity_replaces_client_and_server() {
    let env = Env::new();
    env.config(&client("validity = \"5y\"\n"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    env.config(&client("validity = \"1y\"\n"));
    let plan = plan_json(&env);
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "replace", "{plan:#}");
    assert_eq!(change["reason"], "validity 5y -> 1y");
    env.run(&["apply", "--yes"]).success();
    assert_ne!(env.thumbprint("app"), thumb);
    env.run(&["plan", "--detailed-exitcode"]).success();

    // The generated server: validity, DNS names, name and key each force a new certificate.
    let server = |extra: &str| {
        client("validity = \"1y\"\n").replacen(
            "name = \"cluster.example.com\"\n",
            &format!("name = \"cluster.example.com\"\n{extra}"),
            1,
        )
    };
    for (extra, reason) in [
        ("validity = \"2y\"\n", "validity 1y -> 2y"),
        (
            "validity = \"2y\"\ndns = [\"a.example.com\"]\n",
            "DNS names [cluster.example.com] -> [a.example.com]",
        ),
    ] {
        env.config(&server(extra));
        let plan = plan_json(&env);
        let change = json::find(&plan["changes"], "target", "server")
            .unwrap_or_else(|| panic!("no server change for {extra}: {plan:#}"));
        assert_eq!(change["action"], "replace");
        assert_eq!(change["reason"], reason);
        env.run(&["apply", "--yes"]).success();
        env.run(&["plan", "--detailed-exitcode"]).success();
    }
    env.config(
        &server("validity = \"2y\"\ndns = [\"a.example.com\"]\n").replacen(
            "key = \"ec-p256\"\nexport",
            "key = \"ec-p384\"\nexport",
            1,
        ),
    );
    let plan = plan_json(&env);
    assert_eq!(
        plan["changes"][0]["reason"],
        "key ec-p256 -> ec-p384 forces replacement"
    );
}

#[test]
fn overlap_deletions_count_against_max_deletions() {
    let env = Env::new();
    let config = |max: u32| {
        format!(
            "{SERVER}overlap = \"10d\"\n[store]\nmax_deletions = {max}\n\n\
             [clients.a]\nclearance = \"Operator\"\n[clients.b]\nclearance = \"Operator\"\n\
             [clients.c]\nclearance = \"Operator\"\n"
        )
    };
    env.config(&config(2));
    env.run(&["apply", "--yes"]).success();
    env.run(&[
        "apply",
        "--yes",
        "--replace",
        "a",
        "--replace",
        "b",
        "--replace",
        "c",
    ])
    .success();
    let later = [("RAVENCERT_TEST_NOW", "2099-01-01T00:00:00Z")];
    let before = env.snapshot();
    let refused = env.run_with(&["apply", "--yes"], &later).failure();
    assert!(
        refused.stderr.contains("deletes 3 certificates")
            && refused.stderr.contains("max_deletions = 2"),
        "{}",
        refused.stderr
    );
    // The refusal points at the line that sets the limit.
    assert!(
        refused.stderr.contains("certs.toml:12:"),
        "{}",
        refused.stderr
    );
    assert_eq!(before, env.snapshot(), "a refused apply changed the store");
    env.config(&config(3));
    let done = env
        .run_with(&["apply", "--yes", "--json"], &later)
        .success()
        .json();
    assert_eq!(done["summary"]["delete"], 3);
}

/// A self-signed client certificate made by the openssl command, as a partner would send it.
fn partner_cert(env: &Env, file: &str, cn: &str) -> String {
    common::self_signed(env.dir.path(), file, &format!("{file}.key"), cn)
}

#[test]
fn swapping_an_uploaded_certificate_is_an_escalation_showing_both_holders() {
    let env = Env::new();
    let old = partner_cert(&env, "trust/partner.crt", "Partner One");
    env.config(&format!(
        "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\nupload = \"trust/partner.crt\"\n"
    ));
    let first = env.run(&["plan"]).success().stdout;
    assert!(
        first.contains(&format!("certificate: CN=Partner One {old}")),
        "{first}"
    );
    env.run(&["apply", "--yes"]).success();

    // Same access, another holder.
    let new = partner_cert(&env, "trust/partner.crt", "Somebody Else");
    let text = env.run(&["plan"]).success().stdout;
    assert!(text.contains("-/+ client partner  [ESCALATION]"), "{text}");
    assert!(
        text.contains(&format!(
            "certificate: CN=Partner One {old} -> CN=Somebody Else {new}"
        )),
        "{text}"
    );
    let md = env.run(&["plan", "--markdown"]).success().stdout;
    assert!(md.contains("widen"), "{md}");
    assert!(md.contains("CN=Somebody Else") && md.contains(&new), "{md}");
    assert_eq!(plan_json(&env)["changes"][0]["escalation"], true);
}

#[test]
fn export_inside_the_store_is_refused_on_the_first_apply() {
    let env = Env::new();
    env.config(&SERVER.replace("exports/cluster.pfx", "store/pub/cluster.pfx"));
    for args in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
        let r = env.run(args).failure();
        assert!(r.stderr.contains("inside the store"), "{}", r.stderr);
        assert!(r.stderr.contains("certs.toml:6:"), "{}", r.stderr);
    }
    assert!(!env.store().exists(), "the refused apply created the store");
}

#[test]
fn store_that_contains_certs_toml_is_refused() {
    let env = Env::new();
    env.write("sub/certs.toml", client(""));
    // --store naming the config's own folder, and an absolute path above it.
    let here = env.path("sub");
    for store in [here.to_str().unwrap(), env.dir.path().to_str().unwrap()] {
        env.cmd(&["-c", "sub/certs.toml", "--store", store, "apply", "--yes"])
            .refused(&["the store must be a folder of its own"]);
    }
}

#[test]
fn a_link_in_the_store_is_reported_not_deleted() {
    let env = Env::new();
    env.config(&client(""));
    env.run(&["apply", "--yes"]).success();
    let link = env.store().join("certs/stray.pem");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    for args in [&["plan"][..], &["apply", "--yes"]] {
        env.cmd(args).refused(&["stray.pem", "symbolic link"]);
    }
}

#[test]
fn errors_point_at_the_right_place() {
    let env = Env::new();
    // A missing version is about `version`, at the top.
    env.config("[clients.app]\nclearance = \"Operator\"\n");
    let r = env.run(&["validate"]).failure();
    assert!(
        r.stderr
            .contains("certs.toml:1:1: version: missing field `version`"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("server"), "{}", r.stderr);
    // An invalid [server] reports its own error, not "add a [server] section".
    env.config("version = 1\n[server]\ngenerate = true\n[clients.app]\nclearance = \"Operator\"\n");
    let r = env.run(&["validate"]).failure();
    assert!(r.stderr.contains("server.name"), "{}", r.stderr);
    assert!(!r.stderr.contains("add a [server] section"), "{}", r.stderr);
}

/// Like ssh's StrictModes: a store folder or file owned by another user is refused, by plan and
/// apply alike, and nothing is written (issue 11 #5). The tests run as root, which can chown.
#[test]
fn store_parts_owned_by_another_user_are_refused() {
    let env = Env::new().env("APP_PASS", "pw-owner");
    env.config(&client("password_env = \"APP_PASS\"\n"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    let store = env.store();
    let server = env.server_pem();
    let server_thumb = server.file_stem().unwrap().to_str().unwrap().to_string();
    for rel in [
        String::new(),
        "registry.toml".into(),
        format!("server/{server_thumb}.key"),
        format!("certs/{thumb}.pem"),
        format!("keys/{thumb}.key"),
        "issued/app/app.pfx".into(),
        ".bundle-password-key".into(),
    ] {
        let path = store.join(&rel);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        for args in [&["plan"][..], &["apply", "--yes", "--replace", "app"]] {
            env.cmd(args).refused(&["owned by uid 65534"]);
        }
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    }
    env.run(&["plan", "--detailed-exitcode"]).success();
}

/// A store path naming a folder that already holds other files is refused, and none of its
/// files is touched; ravencert sweeps only names it writes (issue 11 #6).
#[test]
fn a_folder_with_other_files_is_not_taken_as_a_store() {
    let env = Env::new();
    for (rel, text) in [
        ("data/notes.txt", "mine"),
        (
            "data/certs/0123456789ABCDEF0123456789ABCDEF01234567.pem",
            "not ravencert's",
        ),
        ("data/server/backup.key", "a key of mine"),
        ("data/issued/old/readme", "x"),
        ("data/.tmp-keep", "y"),
    ] {
        env.write(rel, text);
    }
    env.config(&format!("{}[store]\npath = \"data\"\n", client("")));
    for args in [&["plan"][..], &["apply", "--yes"]] {
        env.cmd(args).refused(&["is not a ravencert store"]);
    }

    // In ravencert's own store, a file it did not make stays, whatever its name: sweeps follow
    // the manifest of what ravencert made, not a name pattern.
    env.config(&client(""));
    env.run(&["apply", "--yes"]).success();
    let old = env.thumbprint("app");
    let lookalike = "store/certs/0123456789ABCDEF0123456789ABCDEF01234567.pem";
    env.write("store/certs/README", "a note");
    env.write(lookalike, "named like a certificate, not ravencert's");
    env.write("store/issued/notes", "a folder-like name");
    env.run(&["apply", "--yes", "--replace", "app"]).success();
    for rel in ["store/certs/README", lookalike, "store/issued/notes"] {
        assert!(env.path(rel).exists(), "{rel} was deleted");
    }
    // What ravencert made and no longer needs is swept: the replaced certificate and key.
    assert!(!env.store().join(format!("certs/{old}.pem")).exists());
    assert!(!env.store().join(format!("keys/{old}.key")).exists());

    // A store from before the manifest: its own files are recognised by name, once.
    std::fs::remove_file(env.store().join(".manifest")).unwrap();
    let current = env.thumbprint("app");
    env.run(&["apply", "--yes", "--replace", "app"]).success();
    assert!(!env.store().join(format!("certs/{current}.pem")).exists());
    assert!(env.store().join(".manifest").exists());
}

/// `[store] path = "/"` is refused plainly: it holds certs.toml (issue 11 #11).
#[test]
fn the_root_folder_is_not_a_store() {
    let env = Env::new();
    env.config(&format!("{}[store]\npath = \"/\"\n", client("")));
    let r = env.run(&["plan"]).failure();
    assert!(r.stderr.contains("store.path"), "{}", r.stderr);
    assert!(
        r.stderr.contains("a folder above certs.toml"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("chmod"), "{}", r.stderr);
}

/// After an apply, the verification cache vouches for each certificate file and each bundle's
/// certificate it wrote, with the stamp (size, mtime, ctime, inode) the file has on disk: the
/// next plan reads none of them again, which is most of a no-op plan's time at 10,000 clients.
/// The stamps are taken as the files are written (the bundle folders move into place while the
/// cache is written), so a stamp off by the folder's move or the file's rename shows here.
#[test]
fn the_cache_after_an_apply_holds_every_written_certificate_as_it_is_on_disk() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let mut config = client("");
    for key in ["b", "c"] {
        config.push_str(&format!(
            "\n[clients.{key}]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n"
        ));
    }
    env.config(&config);
    env.run(&["apply", "--yes"]).success();
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.store().join(".verified.json")).unwrap())
            .unwrap();
    let files = cache["files"].as_object().expect("files");
    for key in ["app", "b", "c"] {
        let thumb = env.thumbprint(key);
        for rel in [
            format!("certs/{thumb}.pem"),
            format!("issued/{key}/{key}.crt"),
        ] {
            let m = std::fs::symlink_metadata(env.store().join(&rel)).unwrap();
            let on_disk = serde_json::json!([
                m.len(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                m.ino()
            ]);
            assert_eq!(files.get(&rel), Some(&on_disk), "{rel}: {cache:#}");
        }
    }
    // And the plan that trusts it sees the store as it is.
    assert_eq!(
        env.run(&["plan", "--detailed-exitcode"]).code,
        0,
        "a no-op plan after the apply"
    );
}

/// plan and apply begin reading the store beside certs.toml before certs.toml is parsed (most
/// configs keep it there): a certs.toml that names another store, or a `--store`, is planned
/// against that one, never against what the folder beside it holds.
#[test]
fn the_store_certs_toml_names_is_the_one_planned_not_the_one_beside_it() {
    let env = Env::new();
    let clients = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("\n[clients.{k}]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n"))
            .collect::<String>()
    };
    // ./store holds a and b.
    env.config(&format!("{SERVER}{}", clients(&["a", "b"])));
    env.run(&["apply", "--yes"]).success();
    let creates = |plan: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = json::items(&plan["changes"])
            .iter()
            .filter(|c| c["action"] == "create" && c["target"] == "client")
            .map(|c| c["key"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    };
    // Declared elsewhere: an empty store, where both are created.
    let elsewhere = SERVER.replacen(
        "version = 1\n",
        "version = 1\n[store]\npath = \"elsewhere\"\n",
        1,
    );
    env.config(&format!("{elsewhere}{}", clients(&["a", "b"])));
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(creates(&plan), ["a", "b"], "{plan:#}");
    env.run(&["apply", "--yes"]).success();
    assert!(env.path("elsewhere/issued/a/a.pfx").is_file());
    // --store wins over both.
    let plan = env
        .run(&["--store", "third", "plan", "--json"])
        .success()
        .json();
    assert_eq!(creates(&plan), ["a", "b"], "{plan:#}");
}

/// Every file under the store, with what a rewrite changes (inode, size, modification time).
fn store_files(env: &Env) -> std::collections::BTreeMap<String, (u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(env.store())
        .into_iter()
        .map(Result::unwrap)
        // The lock is written by every run that takes it: it names its holder.
        .filter(|e| e.file_type().is_file() && e.file_name() != ".lock")
        .map(|e| {
            let m = e.metadata().unwrap();
            let rel = e.path().strip_prefix(env.store()).unwrap();
            let seen = (m.ino(), m.size(), m.mtime(), m.mtime_nsec());
            (rel.display().to_string(), seen)
        })
        .collect()
}

#[test]
fn an_apply_with_nothing_to_do_writes_nothing_in_the_store() {
    // watch applies every interval: a converged store must not be rewritten each time (disk
    // writes, backups that see a change, a reviewer's `ls -l`).
    let env = Env::new();
    env.config(&client(""));
    env.run(&["apply", "--yes"]).success();
    let before = store_files(&env);
    assert!(before.contains_key(".verified.json"), "{before:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = env.run(&["apply", "--yes"]).success();
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    assert_eq!(store_files(&env), before);
}
