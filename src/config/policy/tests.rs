//! policy.toml's parsing and validation: every rule kind read, every refusal at its line and key.

use std::path::Path;

use super::{parse_policy, Policy};
use crate::config::ConfigError;
use crate::model::{Access, Clearance, KeySpec, Period};

fn parse(text: &str) -> Result<Policy, Vec<ConfigError>> {
    parse_policy(
        Path::new("policy.toml"),
        "policy.toml",
        Path::new("/cfg/policy.toml"),
        text,
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(p) => panic!("accepted: {p:?}\n{text}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

const EVERY_KIND: &str = r#"version = 1

[[rule]]
name = "standing-cluster-admins"
clearance = "ClusterAdmin"
allow = ["admin", "breakglass-*"]

[[rule]]
name = "break-glass-is-short"
clients = ["breakglass-*"]
require_until = true
max_validity = "8h"

[[rule]]
name = "payments-read-only"
database = "Payments"
max_access = "Read"
allow = ["payments-api"]

[[rule]]
name = "modern-keys"
keys = ["ec-p256", "ec-p384", "rsa-4096"]

[[rule]]
name = "no-idle-access"
max_unused = "90d"
"#;

#[test]
fn parses_every_rule_kind() {
    let p = parse(EVERY_KIND).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(p.shown, "policy.toml");
    assert!(p.digest.starts_with("sha256:") && p.digest.len() == 7 + 64);
    let names: Vec<&str> = p.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "standing-cluster-admins",
            "break-glass-is-short",
            "payments-read-only",
            "modern-keys",
            "no-idle-access"
        ]
    );
    let lines: Vec<usize> = p.rules.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 8, 14, 20, 24]);
    let admins = &p.rules[0];
    assert_eq!(admins.select.clearance, Some(Clearance::ClusterAdmin));
    let allow = admins.allow.as_ref().unwrap();
    assert!(allow.iter().any(|a| a.matches("breakglass-jane")));
    assert!(allow.iter().any(|a| a.matches("admin")));
    assert!(!allow
        .iter()
        .any(|a| a.matches("admin2") || a.matches("breakglass")));
    let short = &p.rules[1];
    assert!(short.require_until);
    assert_eq!(short.max_validity, Some(Period::seconds(8 * 3600)));
    assert!(short.select.clients[0].matches("breakglass-x"));
    let payments = &p.rules[2];
    assert_eq!(payments.select.database.as_deref(), Some("Payments"));
    assert_eq!(payments.max_access, Some(Access::Read));
    let keys = p.rules[3].keys.as_ref().unwrap();
    assert!(keys.contains(&KeySpec::EcP256) && !keys.contains(&KeySpec::Rsa2048));
    assert_eq!(p.rules[4].max_unused, Some(Period::days(90)));
    assert_eq!(
        admins.canonical(),
        "clearance>=ClusterAdmin allow=[admin, breakglass-*]"
    );
    assert_eq!(
        short.canonical(),
        "clients=[breakglass-*] require_until max_validity=8h"
    );
    // No rules at all is a policy that holds for everything.
    assert!(parse("version = 1\n").unwrap().rules.is_empty());
}

#[test]
fn errors_name_file_line_and_key() {
    let typo = "version = 1\n\n[[rule]]\nname = \"a\"\nkeys = [\"ec-p256\"]\n\n[[rule]]\nname = \"b\"\ndatabase = \"Payments\"\nmax_acess = \"Read\"\n";
    let e = errors(typo);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("policy.toml:10:1: rule[1].max_acess: unknown field `max_acess`"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("| max_acess = \"Read\""), "{}", e[0]);
    let bad = "version = 1\n[[rule]]\nname = \"a\"\nclearance = \"Operator\"\nallow = [\"ok\", \"bad*x\"]\nmax_validity = \"3m\"\n";
    let e = errors(bad);
    assert!(
        e.iter().any(|l| l.starts_with("policy.toml:5:")
            && l.contains("rule[0].allow[1]: 'bad*x' is not a client key pattern")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|l| l.starts_with("policy.toml:6:")
            && l.contains("rule[0].max_validity: '3m' is ambiguous")),
        "{e:?}"
    );
    // A missing version names policy.toml, not certs.toml.
    let e = errors("[[rule]]\nname = \"a\"\nkeys = [\"ec-p256\"]\n");
    assert!(
        e[0].contains("policy.toml must start with `version = 1`"),
        "{e:?}"
    );
    // Not TOML at all: no line of it is echoed.
    let e = errors("root:x:0:0:root:/root:/bin/bash\n");
    assert!(!e[0].contains("/bin/bash"), "{e:?}");
}

#[test]
fn refuses_duplicate_names_empty_rules_max_access_without_database_version_2() {
    let cases: &[(&str, &str)] = &[
        (
            "version = 2\n",
            "policy.toml:1:11: version: format version 2 is not supported",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nkeys = [\"ec-p256\"]\n[[rule]]\nname = \"a\"\nmax_unused = \"1d\"\n",
            "policy.toml:6:8: rule[1].name: rule name 'a' is already used by rule[0]",
        ),
        (
            "version = 1\n[[rule]]\nname = \"empty\"\nclearance = \"Operator\"\n",
            "policy.toml:2:1: rule[0]: rule 'empty' constrains nothing: give allow, require_until = true",
        ),
        (
            "version = 1\n[[rule]]\nname = \"off\"\nrequire_until = false\n",
            "rule[0]: rule 'off' constrains nothing",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nmax_access = \"Read\"\n",
            "policy.toml:4:14: rule[0].max_access: max_access limits the access to one database: add `database = \"Name\"`",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nclients = [\"x\"]\nallow = [\"x\"]\n",
            "rule[0].allow: allow needs something to allow",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\ndatabase = \"Pay\"\nallow = [\"x\"]\n",
            "rule[0].allow: allow needs something to allow",
        ),
        (
            "version = 1\n[[rule]]\nname = \"Upper\"\nkeys = [\"ec-p256\"]\n",
            "rule[0].name: rule name 'Upper' is not allowed",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nkeys = []\n",
            "rule[0].keys: allows no key type",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nclients = []\nrequire_until = true\n",
            "rule[0].clients: selects no client",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\ndatabase = \"Pay ments\"\nmax_access = \"Read\"\n",
            "rule[0].database: The name 'Pay ments' is not permitted",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nmax_unused = \"0d\"\n",
            "rule[0].max_unused: must be longer than zero",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nkeys = [\"dsa-1024\"]\n",
            "rule[0].keys[0]: unknown variant `dsa-1024`",
        ),
        (
            "version = 1\n[[rule]]\nname = \"a\"\nclearance = \"Root\"\nallow = []\n",
            "rule[0].clearance: unknown variant `Root`",
        ),
    ];
    for (text, want) in cases {
        let e = errors(text);
        assert!(e.iter().any(|l| l.contains(want)), "want {want:?} in {e:?}");
    }
    // A rule selecting by clearance with an empty allow is meaningful: nobody may hold it.
    let none = parse(
        "version = 1\n[[rule]]\nname = \"no-admins\"\nclearance = \"ClusterAdmin\"\nallow = []\n",
    );
    assert!(none.is_ok(), "{none:?}");
}

/// policy.toml is attacker-written: no input makes the parser panic, and no message holds a
/// raw control character or newline of it.
#[test]
fn hostile_values_are_quoted_escaped() {
    let cases = [
        "version = 1\n[[rule]]\nname = \"a\\u001b[31m\"\nkeys = [\"ec-p256\"]\n",
        "version = 1\n[[rule]]\nname = \"a\"\nmax_unused = \"1\\nerror: forged\"\n",
        "version = 1\n[[rule]]\nname = \"a\"\ndatabase = \"x\\ny\"\nmax_access = \"Read\"\n",
        "version = 1\n[[rule]]\nname = \"a\"\nallow = [\"\\u202ex\"]\nclearance = \"Operator\"\n",
        "version = 1\n[[rule]]\nname = \"a\"\nclearance = \"Admin\\nerror: forged\"\nallow = []\n",
        "version = 1\n[[rule]]\nname = \"a\"\nmax_validity = 5\n",
        "version = 1\n[[rule]]\n[[rule]]\n",
        "version = 1\nrule = 5\n",
        "version = 99999999999999999999\n",
        "\u{feff}version = 1\n",
        "version = 1\n[[rule]]\nname = \"a\"\nkeys = [\"ec-p256\"]\nmax_validity = \"99999999999y\"\n",
    ];
    for text in cases {
        let Err(e) = parse(text) else {
            continue;
        };
        for line in e.iter().map(|e| e.message.clone()) {
            assert!(
                !line
                    .chars()
                    .any(|c| c.is_control() || crate::chars::is_invisible(c)),
                "{line:?} from {text:?}"
            );
        }
    }
}
