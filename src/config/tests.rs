//! The unit tests of certs.toml's parsing and validation.

use std::path::Path;

use super::diagnostics::{redact, MAX_SNIPPET_CHARS};
use super::validate::{always_due, check_store_path};
use super::*;
use crate::model::cluster_url as check_cluster_url;

fn parse_str(text: &str) -> Result<Declared, Vec<ConfigError>> {
    parse(Path::new("certs.toml"), text, Path::new("/cfg"))
}

const SERVER: &str = "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n";

fn first_error(text: &str) -> ConfigError {
    parse_str(text).expect_err("should be refused").remove(0)
}

#[test]
fn a_file_that_is_not_toml_is_never_echoed() {
    for text in [
        "root:$6$SECRETHASH:19000:0:99999:7:::\nbin:*:19000\n",
        "HOME=/root\0CI_TOKEN=SECRETHASH\0",
        "version = 1\nSECRETHASH\n",
    ] {
        let e = first_error(text);
        assert_eq!(e.snippet, None, "{e}");
        assert!(!e.to_string().contains("SECRETHASH"), "{e}");
    }
    // A file that is TOML shows the line at fault.
    let e = first_error("version = 1\n[clients.a]\nclearance = 7\n");
    assert_eq!(e.snippet.as_deref(), Some("clearance = 7"), "{e}");
}

#[test]
fn inline_passwords_are_masked_after_other_password_keys() {
    assert_eq!(
        redact(r#"certificates = [{ path = "a.pfx", password_env = "A", password = "s3cret" }]"#),
        r#"certificates = [{ path = "a.pfx", password_env = "A", password = ***"#
    );
    assert_eq!(redact(r#"password_env = "A""#), r#"password_env = "A""#);
    assert_eq!(redact(r#""password" = "s3cret""#), r#""password = ***"#);
    assert_eq!(redact("'password' = 's3cret'"), "'password = ***");
}

#[test]
fn snippets_are_capped_and_escaped() {
    let long = format!(
        "version = 1\n[clients.a]\nclearance = \"{}\"\n",
        "x".repeat(500)
    );
    let e = first_error(&long);
    let snippet = e.snippet.clone().unwrap();
    assert!(
        snippet.chars().count() <= MAX_SNIPPET_CHARS + 1,
        "{snippet}"
    );
    assert!(snippet.ends_with('…'), "{snippet}");
    // redact shows the line as shown_line does (no password, no URL in this one).
    assert_eq!(
        redact("a\u{1b}[2Jb\rc\u{202e}d\u{7f}\te"),
        "a\\x1b[2Jb\\x0dc\\u{202e}d\\x7f\te"
    );
}

/// A quoted config line shows every character of the one invisible-character table escaped
/// (tab excepted: it is kept as the line's own spacing), not only those a hand-kept list named.
#[test]
fn quoted_lines_escape_the_whole_invisible_table() {
    for &(first, last) in crate::chars::INVISIBLE {
        for c in (first..=last)
            .filter_map(char::from_u32)
            .filter(|&c| c != '\t')
        {
            let shown = redact(&format!("a{c}b"));
            assert!(
                !shown.contains(c) && shown.starts_with('a') && shown.ends_with('b'),
                "U+{:04X} shown raw: {shown:?}",
                c as u32
            );
        }
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let d = parse_str(&format!(
        "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\n"
    ))
    .unwrap();
    assert_eq!(d.store.path, Path::new("/cfg/store"));
    assert_eq!(d.store.max_deletions, 5);
    let admin = &d.clients["admin"];
    assert_eq!(admin.name, "admin");
    let ClientSpec::Generate(g) = &admin.source else {
        panic!()
    };
    assert_eq!(g.key, KeySpec::Rsa4096);
    assert_eq!(g.validity, Period::days(5 * 365));
    assert_eq!(g.pfx, PfxProfile::Modern);
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = first_error(&format!(
        "{SERVER}[clients.admin]\nclearence = \"ClusterAdmin\"\n"
    ));
    assert_eq!(e.line, Some(6));
    assert!(e.message.contains("clearence"), "{e}");
}

#[test]
fn password_in_file_is_refused_with_pointer() {
    let e = first_error(&format!(
        "{SERVER}[clients.app]\nclearance = \"Operator\"\npassword = \"hunter2\"\n"
    ));
    assert_eq!(e.key, "clients.app.password");
    assert!(e.message.contains("password_env"));
    // The line is shown to point at the mistake, with the value masked: the password
    // itself reaches no screen and no CI log.
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_eq!(e.snippet.as_deref(), Some("password = ***"));
}

#[test]
fn databases_only_for_valid_user() {
    let e = first_error(&format!(
        "{SERVER}[clients.op]\nclearance = \"Operator\"\ndatabases = {{ Orders = \"Read\" }}\n"
    ));
    assert_eq!(e.key, "clients.op.databases");
    assert_eq!(e.line, Some(7));
}

#[test]
fn case_duplicate_databases_refused() {
    let e = first_error(&format!(
        "{SERVER}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\", orders = \"Admin\" }}\n"
    ));
    assert!(e.message.contains("case-insensitively"), "{e}");
}

#[test]
fn valid_user_without_databases_warns() {
    let d = parse_str(&format!("{SERVER}[clients.u]\nclearance = \"ValidUser\"\n")).unwrap();
    assert_eq!(d.warnings.len(), 1);
}

#[test]
fn duplicate_names_refused() {
    let e = first_error(&format!(
        "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"Ops\"\n[clients.b]\nclearance = \"Operator\"\nname = \"ops\"\n"
    ));
    assert_eq!(e.key, "clients.b.name");
}

#[test]
fn lookalike_names_refused() {
    // A second ClusterAdmin named `аpp` with a Cyrillic а beside `app`.
    let e = first_error(&format!(
        "{SERVER}[clients.app]\nclearance = \"ClusterAdmin\"\n[clients.app2]\nclearance = \"ClusterAdmin\"\nname = \"\u{0430}pp\"\n"
    ));
    assert_eq!(e.key, "clients.app2.name");
    assert!(e.message.contains("clients.app2"), "{e}");
    assert!(e.message.contains("clients.app "), "{e}");
    assert!(e.message.contains("looks the same"), "{e}");
    // Capital Cyrillic А, a zero-width space, `I` for `l`.
    for (a, b) in [
        ("app", "\u{0410}PP"),
        ("app", "a\u{200B}pp"),
        ("Bill", "BiII"),
    ] {
        let e = first_error(&format!(
            "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"{a}\"\n[clients.b]\nclearance = \"Operator\"\nname = \"{b}\"\n"
        ));
        assert_eq!(e.key, "clients.b.name", "{a} / {b}");
    }
    // Names that merely differ are fine.
    parse_str(&format!(
        "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"app\"\n[clients.b]\nclearance = \"Operator\"\nname = \"apps\"\n"
    ))
    .unwrap();
}

#[test]
fn bidi_controls_refused_in_names_and_database_names() {
    let e = first_error(&format!(
        "{SERVER}[clients.a]\nclearance = \"Operator\"\nname = \"adm\\u202Enim\"\n"
    ));
    assert_eq!(e.key, "clients.a.name");
    for db in ["Orders\\u202E", "Ord\\u2066ers", "Orders\\u200F"] {
        let e = first_error(&format!(
            "{SERVER}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ \"{db}\" = \"Read\" }}\n"
        ));
        assert!(e.key.starts_with("clients.u.databases"), "{db}: {e}");
        assert!(e.message.contains("not permitted"), "{db}: {e}");
    }
}

#[test]
fn renew_before_must_be_shorter_than_validity() {
    let e = first_error(&format!(
        "{SERVER}[clients.a]\nclearance = \"Operator\"\nvalidity = \"30d\"\nrenew_before = \"30d\"\n"
    ));
    assert_eq!(e.key, "clients.a.renew_before");
}

#[test]
fn version_other_than_one_refused() {
    let e = first_error("version = 2\n");
    assert_eq!(e.key, "version");
    assert_eq!(e.line, Some(1));
    assert_eq!(e.kind, ConfigErrorKind::Invalid);
    assert_eq!(
        first_error("version = \"1\"\n").kind,
        ConfigErrorKind::Syntax
    );
    assert_eq!(first_error("not toml at all").kind, ConfigErrorKind::Syntax);
}

#[test]
fn generated_client_needs_server() {
    let e = first_error("version = 1\n[clients.a]\nclearance = \"Operator\"\n");
    assert_eq!(e.key, "clients.a");
}

#[test]
fn renew_share_is_checked_against_the_real_lifetime() {
    let days = Period::days;
    // 90% of 30d + 7d back-dating is 33.3d: always due.
    assert!(always_due(RenewBefore::Percent(90), days(30)).is_some());
    // 80% of 37d is 29.6d: shorter than 30d, so not always due.
    assert!(always_due(RenewBefore::Percent(80), days(30)).is_none());
    assert!(always_due(RenewBefore::Percent(33), days(365)).is_none());
    assert!(always_due(RenewBefore::Period(days(30)), days(30)).is_some());
    assert!(always_due(RenewBefore::Period(days(29)), days(30)).is_none());
}

const OPS_ADMIN: &str = "[clients.ops-admin]\nclearance = \"ClusterAdmin\"\n";

#[test]
fn cluster_section_parses_into_settings() {
    let d = parse_str(&format!(
        "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.cluster.example.com/\", \"HTTPS://b.cluster.example.com:8443\", \"https://[::1]:443/raven//\"]\nadmin = \"ops-admin\"\nprune = true\ntimeout = \"2min\"\n"
    ))
    .unwrap();
    assert_eq!(
        d.cluster,
        Some(ClusterSettings {
            urls: vec![
                "https://a.cluster.example.com".into(),
                "https://b.cluster.example.com:8443".into(),
                "https://[::1]:443/raven".into(),
            ],
            admin: ClusterAdmin::Client("ops-admin".into()),
            ca: CaPin::Store,
            prune: true,
            timeout: Period::seconds(120),
            keep: Vec::new(),
        })
    );
    // Defaults, an admin .pfx and a CA file, relative to certs.toml's folder.
    let d = parse_str(&format!(
        "{SERVER}[cluster]\nurls = [\"https://a.example.com\"]\nca = \"trust/ca.pem\"\nadmin_certificate = {{ path = \"secrets/admin.pfx\", password_env = \"ADMIN_PFX\" }}\n"
    ))
    .unwrap();
    let c = d.cluster.clone().unwrap();
    assert_eq!(c.ca, CaPin::Pem("/cfg/trust/ca.pem".into()));
    assert_eq!(
        c.admin,
        ClusterAdmin::Certificate(FileRef {
            path: "/cfg/secrets/admin.pfx".into(),
            password: Some(SecretRef::Env("ADMIN_PFX".into())),
        })
    );
    assert!(!c.prune);
    assert_eq!(c.timeout, CLUSTER_TIMEOUT_DEFAULT);
    assert!(d.positions.contains_key("cluster.admin_certificate.path"));
    // The CA file is under review; the admin .pfx (a secret) is watched, not hashed.
    assert!(d.certificate_files().contains(&"/cfg/trust/ca.pem".into()));
    assert!(!d
        .certificate_files()
        .contains(&"/cfg/secrets/admin.pfx".into()));
    assert!(d
        .referenced_files()
        .contains(&"/cfg/secrets/admin.pfx".into()));
    let system = parse_str(
        "version = 1\n[clients.p]\nclearance = \"Operator\"\nupload = \"p.crt\"\n[cluster]\nurls = [\"https://a.example.com\"]\nca = \"system\"\nadmin_certificate = { path = \"a.pfx\" }\n",
    )
    .unwrap();
    assert_eq!(system.cluster.unwrap().ca, CaPin::System);
    // Without [cluster], no cluster.
    assert_eq!(parse_str(SERVER).unwrap().cluster, None);
}

#[test]
fn cluster_urls_are_https_node_addresses() {
    for good in [
        "https://a.example.com",
        "https://10.0.0.1:8080",
        "https://[fe80::1]",
    ] {
        assert!(check_cluster_url(good).is_ok(), "{good}");
    }
    for (bad, why) in [
        ("http://a.example.com", "plain http"),
        (
            "https://admin:s3cret@a.example.com",
            "user name or password",
        ),
        ("https://a.example.com/?x=1", "query"),
        ("https://a.example.com#top", "fragment"),
        ("https://a.example.com:0", "port"),
        ("https://a.example.com:99999", "port"),
        ("https://", "no host"),
        ("https://a b", "white space"),
        ("a.example.com", "not a URL"),
        ("ftp://a.example.com", "not an https URL"),
        ("https://[zz]", "IPv6"),
    ] {
        let e = check_cluster_url(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad}"));
        assert!(e.message.contains(why), "{bad}: {}", e.message);
    }
    // A password in a URL is masked in the line an error shows.
    let e = first_error(&format!(
        "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://admin:s3cret@a.example.com\"]\nadmin = \"ops-admin\"\n"
    ));
    assert_eq!(e.key, "cluster.urls[0]");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    // Also when the URL is wrong in another way too (plain http).
    let e = first_error(&format!(
        "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"http://admin:s3cret@a.example.com\"]\nadmin = \"ops-admin\"\n"
    ));
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn cluster_admin_must_manage_every_declared_certificate() {
    let cluster = "[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops\"\n";
    let operator = "[clients.ops]\nclearance = \"Operator\"\n";
    // An Operator alone may manage Operators and ValidUsers.
    parse_str(&format!(
        "{SERVER}{operator}[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n{cluster}"
    ))
    .unwrap();
    // Not beside a ClusterAdmin.
    let e = first_error(&format!("{SERVER}{operator}{OPS_ADMIN}{cluster}"));
    assert_eq!(e.key, "cluster.admin");
    assert!(e.message.contains("clients.ops-admin"), "{e}");
    // A ValidUser never.
    let e = first_error(&format!(
        "{SERVER}[clients.ops]\nclearance = \"ValidUser\"\n{cluster}"
    ));
    assert!(e.message.contains("cannot manage certificates"), "{e}");
}

#[test]
fn cluster_timeout_is_bounded() {
    for (t, ok) in [
        ("1s", true),
        ("600s", true),
        ("10min", true),
        ("0s", false),
        ("11min", false),
        ("1h", false),
    ] {
        let r = parse_str(&format!(
            "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops-admin\"\ntimeout = \"{t}\"\n"
        ));
        assert_eq!(r.is_ok(), ok, "{t}: {r:?}");
    }
}

/// `[cluster] keep` (issue 23): 40 hex digits, normalized once; no duplicates; a note that
/// is optional and capped; no other key. Each error names the line and the key.
#[test]
fn cluster_keep_is_validated() {
    let config = |keep: &str| {
        format!(
            "{SERVER}{OPS_ADMIN}[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"ops-admin\"\nkeep = [\n{keep}\n]\n"
        )
    };
    let a = "ab".repeat(20);
    let b = "0123456789".repeat(4);
    let good = parse_str(&config(&format!(
        "{{ thumbprint = \"{a}\", note = \"the backup team's\" }},\n{{ thumbprint = \"{b}\" }}"
    )));
    let keep = good.map(|d| d.cluster.map(|c| c.keep)).ok().flatten();
    assert_eq!(
        keep,
        Some(vec![
            KeptRegistration {
                thumbprint: crate::model::Thumbprint::parse(&a.to_uppercase()).unwrap(),
                note: Some("the backup team's".into()),
            },
            KeptRegistration {
                thumbprint: crate::model::Thumbprint::parse(&b).unwrap(),
                note: None,
            },
        ])
    );
    let cases = [
        (
            format!("{{ thumbprint = \"{}\" }}", &a[..39]),
            "cluster.keep[0].thumbprint",
            "40 hex digits",
        ),
        (
            format!("{{ thumbprint = \"{}zz\" }}", &a[..38]),
            "cluster.keep[0].thumbprint",
            "40 hex digits",
        ),
        (
            format!(
                "{{ thumbprint = \"{a}\" }},\n{{ thumbprint = \"{}\" }}",
                a.to_uppercase()
            ),
            "cluster.keep[1].thumbprint",
            "listed twice",
        ),
        (
            format!("{{ thumbprint = \"{a}\", note = \"{}\" }}", "n".repeat(201)),
            "cluster.keep[0].note",
            "at most 200 characters",
        ),
        (
            format!("{{ thumbprint = \"{a}\", note = \"\" }}"),
            "cluster.keep[0].note",
            "leave `note` out",
        ),
        (
            format!("{{ thumbprint = \"{a}\", owner = \"backup\" }}"),
            "cluster.keep[0].owner",
            "unknown field `owner`",
        ),
    ];
    for (keep, key, says) in cases {
        let text = config(&keep);
        let e = first_error(&text);
        assert!(e.key.contains(key), "{keep}: {e}");
        assert!(e.message.contains(says), "{keep}: {e}");
        // The line of the offending entry (the second for a duplicate).
        let line = keep.lines().last().unwrap_or_default();
        let expected = text.lines().position(|l| l == line).map(|i| i + 1);
        assert_eq!(e.line, expected, "{keep}: {e}");
    }
}

#[test]
fn store_path_must_not_hold_certs_toml() {
    for bad in [".", "", "./", "a/..", "..", "../..", "a/../.."] {
        assert!(check_store_path(bad).is_err(), "{bad:?}");
    }
    for good in ["store", "../store", "./s", "a/../b", "/var/lib/ravencert"] {
        assert!(check_store_path(good).is_ok(), "{good:?}");
    }
}

/// Syntax errors name the key path where toml puts them, also for dotted keys and inline
/// tables (which a guess from the line's text and the `[table]` above got wrong).
#[test]
fn syntax_errors_name_dotted_keys_and_inline_tables() {
    let top = "version = 1\nclients.app = { clearance = \"Operator\", colour = \"x\" }\n";
    for (clients, key, line) in [
        // An inline table: the key at fault inside it, not the table's own key.
        (
            "[clients]\napp = { name = \"x\", clearance = \"Bogus\" }\n",
            "clients.app.clearance",
            6,
        ),
        (
            "[clients]\napp = { clearance = \"ValidUser\", databases = { Orders = 1 } }\n",
            "clients.app.databases.Orders",
            6,
        ),
        (
            "[clients]\napp = { clearance = \"Operator\", colour = \"x\" }\n",
            "clients.app.colour",
            6,
        ),
        // A dotted key: the table it makes, or the key inside it.
        ("[clients]\napp.name = \"x\"\n", "clients.app", 6),
        (
            "[clients]\napp.name = \"x\"\napp.clearance = \"Bogus\"\n",
            "clients.app.clearance",
            7,
        ),
        (
            "[clients.app]\nclearance = \"Operator\"\ndatabases.Orders = \"Bogus\"\n",
            "clients.app.databases.Orders",
            7,
        ),
        // After [server], a dotted key belongs to it: `clients` is the unknown key there.
        (&top[12..], "server.clients", 5),
    ] {
        // SERVER takes lines 1 to 4.
        let text = format!("{SERVER}{clients}");
        let e = first_error(&text);
        assert_eq!(e.kind, ConfigErrorKind::Syntax, "{clients}: {e}");
        assert_eq!(
            (e.key.as_str(), e.line),
            (key, Some(line)),
            "{clients}: {e}"
        );
    }
    // At the top level, before any [table].
    let e = first_error(&format!("{top}{}", &SERVER[12..]));
    assert_eq!(
        (e.key.as_str(), e.line),
        ("clients.app.colour", Some(2)),
        "{e}"
    );
    // Text that is not TOML has no span for the key at fault: it is read from the line.
    let e = first_error("version = 1\n[clients.a]\nclearance = \n");
    assert_eq!(
        (e.key.as_str(), e.line),
        ("clients.a.clearance", Some(3)),
        "{e}"
    );
}

/// certs.toml with one client `k` whose table ends with `extra`.
fn with_until(extra: &str) -> Result<Declared, Vec<ConfigError>> {
    parse_str(&format!(
        "{SERVER}[clients.k]\nclearance = \"Operator\"\n{extra}\n"
    ))
}

fn until_of(extra: &str) -> time::OffsetDateTime {
    with_until(extra).expect("valid").clients["k"]
        .until
        .expect("until is read")
}

#[test]
fn until_accepts_a_date_an_offset_time_and_a_string() {
    use time::macros::datetime;
    assert_eq!(
        until_of("until = 2026-05-01"),
        datetime!(2026-05-01 0:00 UTC)
    );
    assert_eq!(
        until_of("until = 2026-05-01T18:00:00+02:00"),
        datetime!(2026-05-01 16:00 UTC)
    );
    assert_eq!(
        until_of("until = 2026-05-01 18:00:00.9Z"),
        datetime!(2026-05-01 18:00 UTC),
        "fractions of a second are floored"
    );
    assert_eq!(
        until_of("until = \"2026-05-01\""),
        datetime!(2026-05-01 0:00 UTC)
    );
    assert_eq!(
        until_of("until = \"2026-05-01T18:00:00+02:00\""),
        datetime!(2026-05-01 16:00 UTC)
    );
    let none = with_until("").expect("valid");
    assert_eq!(none.clients["k"].until, None);
}

#[test]
fn until_refuses_a_time_without_zone_and_out_of_range_years() {
    for (extra, says) in [
        ("until = 2026-05-01T18:00:00", "needs a time zone"),
        ("until = \"2026-05-01T18:00\"", "needs a time zone"),
        ("until = 18:00:00", "not a date or a time with a zone"),
        ("until = \"tomorrow\"", "not a date or a time with a zone"),
        ("until = 7", "not a value of type integer"),
        ("until = 1999-12-31", "outside the years 2000 to 9999"),
    ] {
        let e = with_until(extra).expect_err(extra).remove(0);
        assert_eq!(e.key, "clients.k.until", "{extra}: {e}");
        assert_eq!(e.line, Some(7), "{extra}: {e}");
        assert!(e.message.contains(says), "{extra}: {e}");
    }
}

#[test]
fn until_with_protect_or_on_the_cluster_admin_is_refused() {
    let e = with_until("protect = true\nuntil = 2026-05-01")
        .expect_err("protect")
        .remove(0);
    assert_eq!(e.key, "clients.k.until", "{e}");
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("`protect`"), "{e}");
    let e = first_error(&format!(
        "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\nuntil = 2026-05-01\n[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"admin\"\n"
    ));
    assert_eq!(e.key, "cluster.admin", "{e}");
    assert!(e.message.contains("has an `until`"), "{e}");
}

#[test]
fn disabled_is_read_and_without_cluster_only_warns_that_it_records() {
    let d = with_until("disabled = true").expect("valid");
    assert!(d.clients["k"].disabled);
    assert_eq!(
        d.warnings,
        vec!["clients.k: disabled only records the suspension here: without [cluster], ravencert changes no registration and the certificate stays valid".to_string()]
    );
    let enabled = with_until("").expect("valid");
    assert!(!enabled.clients["k"].disabled);
    assert!(enabled.warnings.is_empty(), "{:?}", enabled.warnings);
    // With [cluster] the registration follows it: no warning.
    let clustered = parse_str(&format!(
        "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\n[clients.k]\nclearance = \"Operator\"\ndisabled = true\n[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"admin\"\n"
    ))
    .expect("valid");
    assert!(clustered.clients["k"].disabled);
    assert!(clustered.warnings.is_empty(), "{:?}", clustered.warnings);
    // Not a string: refused at the key.
    let e = with_until("disabled = \"yes\"")
        .expect_err("string")
        .remove(0);
    assert_eq!(e.key, "clients.k.disabled", "{e}");
}

#[test]
fn disabled_on_the_cluster_admin_is_refused() {
    let e = first_error(&format!(
        "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\ndisabled = true\n[cluster]\nurls = [\"https://a.example.com\"]\nadmin = \"admin\"\n"
    ));
    assert_eq!(e.key, "cluster.admin", "{e}");
    assert!(e.message.contains("clients.admin is disabled"), "{e}");
}
