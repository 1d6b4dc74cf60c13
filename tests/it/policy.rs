//! policy.toml end to end (docs/contract.md §10, issue 25): each rule refuses a config that breaks
//! it in validate, plan and apply, naming the rule and the client, with nothing written; syntax
//! errors point at policy.toml's lines; `--policy FILE`; saved plans go stale when the policy
//! changes.

use crate::common::review::{assert_review, filters};
use crate::common::{Env, SERVER};

/// A rule and a certs.toml (after SERVER) that breaks it with client `bad`.
struct Case {
    rule: &'static str,
    policy: &'static str,
    clients: &'static str,
}

const CASES: &[Case] = &[
    Case {
        rule: "standing-cluster-admins",
        policy: "clearance = \"ClusterAdmin\"\nallow = [\"admin\", \"breakglass-*\"]\n",
        clients: "[clients.admin]\nclearance = \"ClusterAdmin\"\n[clients.bad]\nclearance = \"ClusterAdmin\"\n",
    },
    Case {
        rule: "break-glass-has-an-end",
        policy: "clients = [\"bad*\"]\nrequire_until = true\n",
        clients: "[clients.bad]\nclearance = \"Operator\"\n",
    },
    Case {
        rule: "short-lived",
        policy: "max_validity = \"90d\"\n",
        clients: "[clients.bad]\nclearance = \"Operator\"\nvalidity = \"1y\"\n",
    },
    Case {
        rule: "payments-read-only",
        policy: "database = \"Payments\"\nmax_access = \"Read\"\nallow = [\"payments-api\"]\n",
        clients: "[clients.payments-api]\nclearance = \"ValidUser\"\ndatabases = { Payments = \"Admin\" }\n[clients.bad]\nclearance = \"ValidUser\"\ndatabases = { payments = \"ReadWrite\" }\n",
    },
    Case {
        rule: "strong-keys",
        policy: "keys = [\"ec-p384\", \"rsa-4096\"]\n",
        clients: "[clients.bad]\nclearance = \"Operator\"\nkey = \"ec-p256\"\n",
    },
];

fn policy_of(case: &Case) -> String {
    format!(
        "version = 1\n\n[[rule]]\nname = \"{}\"\n{}",
        case.rule, case.policy
    )
}

#[test]
fn each_rule_refuses_a_violating_config_with_its_name() {
    for case in CASES {
        let env = Env::new();
        env.config(&format!("{SERVER}{}", case.clients));
        env.write("policy.toml", policy_of(case));
        let rule = format!("rule '{}' (policy.toml:3)", case.rule);
        for args in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
            let run = env.cmd(args).refused(&[&rule, "clients.bad"]);
            assert!(
                !run.stderr.contains("clients.admin") && !run.stderr.contains("payments-api"),
                "only the client breaking the rule is named\n{}",
                run.shown()
            );
        }
        assert!(!env.store().exists(), "{}", case.rule);
        // Without the client that breaks it, the same policy holds and the apply goes through.
        let keep = case
            .clients
            .split("[clients.bad]")
            .next()
            .unwrap_or_default();
        env.config(&format!("{SERVER}{keep}"));
        let v = env.run(&["validate"]).success();
        assert!(
            v.stdout.contains("policy.toml: 1 rule holds."),
            "{}",
            v.shown()
        );
        env.run(&["apply", "--yes"]).success();
        assert!(env.store().exists());
    }
}

/// `plan` shows the plan, then refuses it: exit 1, the refusal on stderr, `--out` writes
/// nothing; `--detailed-exitcode` does not turn it into a 2.
#[test]
fn plan_shows_the_policy_and_exits_1_on_violation() {
    let env = Env::new();
    let case = &CASES[0];
    env.config(&format!("{SERVER}{}", case.clients));
    env.write("policy.toml", policy_of(case));
    let run = env
        .cmd(&["plan", "--out", "plan.json", "--detailed-exitcode"])
        .refused(&["refused by policy.toml", "clients.bad holds ClusterAdmin"]);
    assert!(run.stdout.contains("+ client bad"), "{}", run.shown());
    assert!(!run.stdout.contains("Saved this plan"), "{}", run.shown());
    let json = env
        .cmd(&["plan", "--json"])
        .refused(&["clients.bad"])
        .json();
    let rule = &json["policy"]["rules"][0];
    assert_eq!(json["policy"]["file"], "policy.toml", "{json:#}");
    assert_eq!(rule["name"], "standing-cluster-admins");
    assert_eq!(rule["holds"], false);
    assert_eq!(rule["clients"], serde_json::json!(["admin", "bad"]));
    assert_eq!(rule["violations"][0]["client"], "bad");
    // Each rule, whether it holds and for whom, as a reviewer reads it.
    env.write(
        "policy.toml",
        format!(
            "{}\n[[rule]]\nname = \"no-idle-access\"\nmax_unused = \"90d\"\n\n[[rule]]\nname = \"strong-keys\"\nkeys = [\"ec-p256\"]\n",
            policy_of(case)
        ),
    );
    let text = env.cmd(&["plan"]).refused(&["clients.bad"]).stdout;
    assert_review("plan_policy_text", &text, &filters(&env));
    let md = env
        .cmd(&["plan", "--markdown"])
        .refused(&["clients.bad"])
        .stdout;
    assert_review("plan_policy_markdown", &md, &filters(&env));
    // Without a policy, no policy anywhere: the outputs are as before.
    std::fs::remove_file(env.path("policy.toml")).unwrap();
    let plain = env.run(&["plan", "--json"]).success().json();
    assert!(plain.get("policy").is_none(), "{plain:#}");
    let text = env.run(&["plan", "--markdown"]).success().stdout;
    assert!(!text.contains("Policy"), "{text}");
}

#[test]
fn policy_syntax_errors_point_at_policy_toml() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[clients.app]\nclearance = \"Operator\"\n"
    ));
    env.write(
        "policy.toml",
        "version = 1\n\n[[rule]]\nname = \"a\"\ndatabase = \"Payments\"\nmax_acess = \"Read\"\n",
    );
    for args in [
        &["validate"][..],
        &["plan"],
        &["apply", "--yes"],
        &["plan", "--json"],
    ] {
        let run = env.cmd(args).refused(&[
            "policy.toml:6:1: rule[0].max_acess: unknown field `max_acess`",
            "| max_acess = \"Read\"",
            "(nothing was changed)",
        ]);
        assert!(!run.stderr.contains("certs.toml"), "{}", run.shown());
    }
    // Two problems: counted as policy.toml's.
    env.write(
        "policy.toml",
        "version = 1\n[[rule]]\nname = \"a\"\nmax_access = \"Read\"\n[[rule]]\nname = \"a\"\nkeys = []\n",
    );
    env.cmd(&["validate"]).refused(&[
        "policy.toml:4:14: rule[0].max_access: max_access limits the access to one database",
        "rule[1].name: rule name 'a' is already used by rule[0]",
        "rule[1].keys: allows no key type",
        "(3 problems in policy.toml; nothing was changed)",
    ]);
    // Not text, or a folder: said as such.
    env.write("policy.toml", b"version = 1\n\xff\n".as_slice());
    env.cmd(&["validate"])
        .refused(&["policy.toml: is not UTF-8 text"]);
    std::fs::remove_file(env.path("policy.toml")).unwrap();
    std::fs::create_dir(env.path("policy.toml")).unwrap();
    env.cmd(&["validate"])
        .refused(&["policy.toml: cannot be read: is not a regular file"]);
}

/// Control characters in policy.toml never reach the terminal raw, in any message.
#[test]
fn hostile_policy_is_escaped() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[clients.app]\nclearance = \"Operator\"\n"
    ));
    for policy in [
        "version = 1\n[[rule]]\nname = \"a\\u001b]0;pwned\\u0007\"\nkeys = [\"ec-p256\"]\n",
        "version = 1\n[[rule]]\nname = \"a\"\nclearance = \"Admin\\nerror: forged line\"\nallow = []\n",
        "version = 1\n[[rule]]\nname = \"a\"\nmax_unused = \"1\\u202e\\nerror: forged line\"\n",
        "version = 1\n[[rule]]\nname = \"a\"\nallow = [\"\\u0000\"]\nclearance = \"Operator\"\n",
        "version = 1\n\u{1b}[2J[[rule]]\n",
    ] {
        env.write("policy.toml", policy);
        let run = env.cmd(&["validate"]).refused(&["policy.toml"]);
        assert!(
            crate::common::raw_unsafe(&run.stderr).is_none(),
            "{}",
            run.shown()
        );
        assert!(
            !run.stderr.lines().any(|l| l.starts_with("error: forged")),
            "{}",
            run.shown()
        );
    }
}

#[test]
fn policy_flag_reads_that_file() {
    let env = Env::new();
    env.config(&format!("{SERVER}{}", CASES[0].clients));
    // No policy.toml beside certs.toml: none in force.
    env.run(&["validate"]).success();
    env.write("rules/strict.toml", policy_of(&CASES[0]));
    env.cmd(&["plan", "--policy", "rules/strict.toml"])
        .refused(&[
            "rule 'standing-cluster-admins' (rules/strict.toml:3)",
            "clients.bad",
        ]);
    env.cmd(&["apply", "--yes", "--policy", "rules/strict.toml"])
        .refused(&["clients.bad"]);
    // A --policy file that is not there is an error, not "no policy".
    env.cmd(&["validate", "--policy", "rules/missing.toml"])
        .refused(&["rules/missing.toml: cannot be read"]);
    // --policy wins over policy.toml beside certs.toml.
    env.write("policy.toml", "version = 1\n");
    env.cmd(&["validate", "--policy", "rules/strict.toml"])
        .refused(&["clients.bad"]);
    env.run(&["validate"]).success();
}

#[test]
fn saved_plan_stale_after_policy_change() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[clients.admin]\nclearance = \"ClusterAdmin\"\n"
    ));
    env.write("policy.toml", policy_of(&CASES[0]));
    env.run(&["plan", "--out", "plan.json"]).success();
    // A policy that still holds, but another one: the plan was not checked against it.
    env.write(
        "policy.toml",
        policy_of(&CASES[0]).replace("\"breakglass-*\"", "\"breakglass-*\", \"ops\""),
    );
    env.cmd(&["apply", "plan.json", "--yes"])
        .refused(&["Saved plan is stale"]);
    assert!(!env.store().exists());
    // Unchanged policy: the saved plan applies.
    env.run(&["plan", "--out", "plan.json"]).success();
    env.run(&["apply", "plan.json", "--yes"]).success();
    assert_eq!(env.registered().len(), 1);
}

/// `max_unused` needs the cluster's last use: without it (no cluster, or RavenDB 4.1), the
/// rule is shown as not evaluated and refuses nothing.
#[test]
fn max_unused_is_not_evaluated_without_last_use() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[clients.app]\nclearance = \"Operator\"\n"
    ));
    env.write(
        "policy.toml",
        "version = 1\n[[rule]]\nname = \"no-idle-access\"\nmax_unused = \"90d\"\n",
    );
    let v = env.run(&["validate"]).success();
    assert!(
        v.stdout.contains("policy.toml: 0 rules hold; 1 not evaluated (no-idle-access: the cluster does not report last use)."),
        "{}",
        v.shown()
    );
    env.run(&["apply", "--yes"]).success();
}
