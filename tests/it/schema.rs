//! The checked-in JSON schema must be what the Rust types generate, and the bundled example must
//! be a valid config that points at it.

use crate::common;

#[test]
fn checked_in_schema_is_up_to_date() {
    let generated = ravencert::config::json_schema();
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/certs.schema.json"
    ))
    .expect("schema/certs.schema.json is checked in");
    assert!(
        generated == checked_in,
        "schema/certs.schema.json is out of date: run `cargo run -- schema > schema/certs.schema.json`"
    );
}

#[test]
fn example_starts_with_schema_line_and_validates() {
    let example = ravencert::EXAMPLE;
    assert_eq!(
        example.lines().next(),
        Some("#:schema ./schema/certs.schema.json")
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let desired = ravencert::config::parse(&dir.join("certs.toml.example"), example, dir)
        .expect("certs.toml.example is valid");
    assert!(desired.clients.len() >= 4);
    assert!(ravencert::config::check_references(&desired, true, true).is_empty());
}

#[test]
fn bundled_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["development", "production"] {
        let path = root.join("examples").join(name).join("certs.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#:schema ../../schema/certs.schema.json"));
        let desired = ravencert::config::parse(&path, &text, path.parent().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(desired.clients.len() >= 2, "{name}");
    }
    // The production example's policy.toml: valid, passing its schema, and kept by the
    // certs.toml beside it (validate evaluates it).
    let policy = root.join("examples/production/policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.starts_with("#:schema ../../schema/policy.schema.json"));
    let parsed = ravencert::config::parse_policy(&policy, "policy.toml", &policy, &text)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(parsed.rules.len(), 6);
    if let Err(e) = common::policy_schema_check(&text) {
        panic!("examples/production/policy.toml does not pass the schema:\n{e}");
    }
    let config = root.join("examples/production/certs.toml");
    let run = common::Env::new()
        .run(&["-c", config.to_str().unwrap(), "validate"])
        .success();
    assert!(
        run.stdout.contains("policy.toml: 5 rules hold; 1 not evaluated (no-idle-access: the cluster does not report last use)."),
        "{}",
        run.shown()
    );
}

/// Every config the project ships passes the JSON schema that its `#:schema` line names:
/// certs.toml.example, the examples, and the starter `ravencert init` writes.
#[test]
fn shipped_configs_pass_the_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs = vec![
        root.join("certs.toml.example"),
        root.join("src/starter.toml"),
    ];
    for name in [
        "development",
        "production",
        "two-clusters/cluster-a",
        "two-clusters/cluster-b",
    ] {
        configs.push(root.join("examples").join(name).join("certs.toml"));
    }
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = common::schema_check(&text) {
            panic!("{} does not pass the schema:\n{e}", path.display());
        }
    }
}

/// The schema is no stricter than validation on what real configs hold: Unicode names and
/// database names, every duration unit, shares, uploads with an overlap, node certificates.
#[test]
fn schema_accepts_configs_that_validation_accepts() {
    let generated = r#"version = 1
[defaults]
validity = "6mo"
renew_before = "33%"
overlap = "90min"

[server]
generate = true
name = "Кластер Zürich – prod"
dns = ["cluster.example.com", "*.cluster.example.com"]
validity = "1y"

[clients.app]
name = "Заказы – отчёты"
clearance = "ValidUser"
databases = { "Заказы" = "Read", "Orders.2024-eu_1" = "ReadWrite", COM10 = "Admin" }
validity = "2w"
renew_before = "36h"
password_env = "APP_PASSWORD"

[clients.ops]
clearance = "Operator"
validity = "30d"
renew_before = "0d"
overlap = "45s"

[clients.partner]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "trust/partner.pfx"
password_file = "secrets/partner.pass"
overlap = "1w"
"#;
    let imported = r#"version = 1
[server]
certificates = [{ path = "nodes/a.pfx", password_env = "A" }, { path = "nodes/b.pfx" }]
key = "ec-p256"
export = "exports/cluster.pfx"

[clients.admin]
clearance = "ClusterAdmin"
"#;
    let uploads_only =
        "version = 1\n[clients.partner]\nclearance = \"Operator\"\nupload = \"p.crt\"\n";
    // [cluster]: every form of URL, admin and ca that validation accepts.
    let cluster = format!(
        "{generated}\n[cluster]\nurls = [\"https://a.cluster.example.com/\", \"HTTPS://10.0.0.2:8443\", \"https://[fd00::3]:443/raven\"]\n\
         admin = \"ops\"\nca = \"store\"\nprune = true\ntimeout = \"600s\"\n"
    );
    let cluster_pfx = "version = 1\n[clients.partner]\nclearance = \"Operator\"\nupload = \"p.crt\"\n\
                       [cluster]\nurls = [\"https://a.example.com\"]\nca = \"system\"\ntimeout = \"10min\"\n\
                       admin_certificate = { path = \"secrets/admin.pfx\", password_file = \"secrets/admin.pass\" }\n";
    let cluster_pem = format!(
        "{imported}\n[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"admin\"\nca = \"trust/ca.pem\"\ntimeout = \"1s\"\n"
    );
    // `until` in every form validation accepts: a TOML date, a TOML offset time, a string.
    let until = "version = 1\n[clients.a]\nclearance = \"Operator\"\nupload = \"a.crt\"\nuntil = 2026-05-01\n\
                 [clients.b]\nclearance = \"Operator\"\nupload = \"b.crt\"\nuntil = 2026-05-01T18:00:00.5+02:00\n\
                 [clients.c]\nclearance = \"Operator\"\nupload = \"c.crt\"\nuntil = \"2026-05-01T18:00:00Z\"\n\
                 [clients.d]\nclearance = \"Operator\"\nupload = \"d.crt\"\ndisabled = true\n";
    for text in [
        generated,
        imported,
        uploads_only,
        until,
        &cluster,
        cluster_pfx,
        &cluster_pem,
    ] {
        ravencert::config::parse(
            std::path::Path::new("certs.toml"),
            text,
            std::path::Path::new("/cfg"),
        )
        .unwrap_or_else(|e| panic!("validation refuses it: {e:?}\n{text}"));
        if let Err(e) = common::schema_check(text) {
            panic!("the schema refuses a valid config: {e}\n{text}");
        }
    }
}

/// certs.toml.example's commented-out `[cluster]` works as written: uncommented, it is valid
/// and passes the schema (the example itself is applied without a server, so it stays a comment).
#[test]
fn example_cluster_section_works_uncommented() {
    let example = ravencert::EXAMPLE;
    let start = example
        .find("# [cluster]")
        .expect("certs.toml.example shows a [cluster] section");
    let mut config = example[..start].to_string();
    for line in example[start..].lines() {
        let line = line.strip_prefix("# ").unwrap_or(line);
        if !line.starts_with('#') {
            config.push_str(line);
            config.push('\n');
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let desired = ravencert::config::parse(&dir.join("certs.toml.example"), &config, dir)
        .unwrap_or_else(|e| panic!("{e:?}\n{config}"));
    let cluster = desired.cluster.expect("the [cluster] section is read");
    assert_eq!(cluster.urls.len(), 2);
    assert_eq!(
        cluster.admin,
        ravencert::config::ClusterAdmin::Client("admin".into())
    );
    if let Err(e) = common::schema_check(&config) {
        panic!("the uncommented [cluster] does not pass the schema: {e}\n{config}");
    }
}

/// The production example's commented alternative, the nodes' own certificates, works as
/// written (it is no future feature): uncommented in place of the generated server, it is valid.
#[test]
fn production_example_node_certificates_line_works() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/production/certs.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("once supported"), "{text}");
    let line = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches(['#', ' '])
                .strip_prefix("certificates = ")
        })
        .expect("the example shows `certificates = [...]`");
    let line = format!("certificates = {}", line.replace(", ...", ""));
    let server_only = ["generate = ", "name = ", "dns = ", "validity = "];
    let mut config = String::new();
    let mut in_server = false;
    for l in text.lines() {
        if l.starts_with('[') {
            in_server = l == "[server]";
            config.push_str(l);
            config.push('\n');
            if in_server {
                config.push_str(&line);
                config.push('\n');
            }
            continue;
        }
        if in_server && server_only.iter().any(|s| l.starts_with(s)) {
            continue;
        }
        config.push_str(l);
        config.push('\n');
    }
    let desired = ravencert::config::parse(&path, &config, path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{e:?}\n{config}"));
    assert!(matches!(
        desired.server.unwrap().source,
        ravencert::config::ServerSpec::Imported(_)
    ));
}

#[test]
fn checked_in_policy_schema_is_up_to_date() {
    let generated = ravencert::config::policy_json_schema();
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/policy.schema.json"
    ))
    .expect("schema/policy.schema.json is checked in");
    assert!(
        generated == checked_in,
        "schema/policy.schema.json is out of date: run `cargo run -- schema --policy > schema/policy.schema.json`"
    );
    // `ravencert schema --policy` prints it.
    let out = common::Env::new().run(&["schema", "--policy"]).success();
    assert_eq!(out.stdout, generated);
}

fn parse_policy(
    text: &str,
) -> Result<ravencert::config::Policy, Vec<ravencert::config::ConfigError>> {
    let path = std::path::Path::new("policy.toml");
    ravencert::config::parse_policy(path, "policy.toml", path, text)
}

/// The policy schema accepts what validation accepts, and refuses what it refuses where JSON
/// Schema can say it (one value or one rule at a time; unique names it cannot).
#[test]
fn policy_schema_accepts_what_validation_accepts() {
    let rules = |body: &str| format!("version = 1\n[[rule]]\nname = \"r\"\n{body}");
    let valid = [
        "version = 1\n".to_string(),
        rules("clearance = \"ClusterAdmin\"\nallow = [\"admin\", \"breakglass-*\"]\n"),
        rules("clearance = \"Operator\"\nallow = []\n"),
        rules("clients = [\"breakglass-*\", \"*\"]\nrequire_until = true\nmax_validity = \"8h\"\n"),
        rules("database = \"Заказы.2024-eu_1\"\nmax_access = \"ReadWrite\"\nallow = [\"payments-api\"]\n"),
        rules("database = \"Payments\"\nmax_access = \"Read\"\n"),
        rules("keys = [\"ec-p256\", \"ec-p384\", \"rsa-4096\"]\n"),
        rules("max_unused = \"90d\"\nclearance = \"ValidUser\"\n"),
        rules("max_validity = \"1y\"\nmax_unused = \"6mo\"\nclients = [\"app\"]\n"),
    ];
    for text in &valid {
        parse_policy(text).unwrap_or_else(|e| panic!("validation refuses it: {e:?}\n{text}"));
        if let Err(e) = common::policy_schema_check(text) {
            panic!("the schema refuses a valid policy: {e}\n{text}");
        }
    }
    let invalid = [
        "version = 2\n".to_string(),
        rules(""),
        rules("require_until = false\n"),
        rules("max_access = \"Read\"\n"),
        rules("clients = [\"x\"]\nallow = [\"x\"]\n"),
        rules("keys = []\n"),
        rules("clients = []\nrequire_until = true\n"),
        rules("clients = [\"a*b\"]\nrequire_until = true\n"),
        rules("max_validity = \"3m\"\n"),
        rules("max_unused = \"0d\"\n"),
        rules("database = \"CON\"\nmax_access = \"Read\"\n"),
        rules("keys = [\"ec-p256\"]\nmax_acess = \"Read\"\n"),
        "version = 1\n[[rule]]\nname = \"Bad Name\"\nkeys = [\"ec-p256\"]\n".to_string(),
    ];
    for text in &invalid {
        assert!(
            parse_policy(text).is_err(),
            "validation accepts it:\n{text}"
        );
        assert!(
            common::policy_schema_check(text).is_err(),
            "the schema accepts an invalid policy:\n{text}"
        );
    }
}
