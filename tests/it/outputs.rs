//! Outputs a person reads, reviewed as text (insta snapshots under tests/snapshots/, unstable
//! values replaced by placeholders): the status tables, the apply report, and the error
//! messages of representative bad configs and refused commands. Also: the same inputs give
//! byte-identical plans from separate processes and separate copies of the store.

use crate::common;

use crate::common::review::{assert_review, filters, status_filters};
use crate::common::{Env, SERVER};

/// The clock every run here reads: dates and days left are the same on every machine.
const NOW: &str = "2026-01-15T12:00:00Z";

const CLIENTS: &str = r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.ops]
name = "Operations"
clearance = "Operator"
validity = "90d"

[clients.orders-app]
name = "Orders App"
clearance = "ValidUser"
databases = { Orders = "Read", Reporting = "ReadWrite" }
"#;

/// A folder whose runs all read the fixed clock, with certs.toml written.
fn env_at_now(config: &str) -> Env {
    let env = Env::new().env("RAVENCERT_TEST_NOW", NOW);
    env.config(config);
    env
}

#[test]
fn apply_report_and_status_text() {
    let env = env_at_now(&format!("{SERVER}{CLIENTS}"));
    let first = env.run(&["apply", "--yes"]).success();
    assert_review("apply_first_text", &first.stdout, &filters(&env));
    assert_review(
        "status_text",
        &env.run(&["status"]).success().stdout,
        &status_filters(&env),
    );

    // An update, a replace and a delete in one apply.
    env.config(&format!(
        "{SERVER}[store]\nprune = true\n{}",
        CLIENTS
            .replace("Orders = \"Read\"", "Orders = \"ReadWrite\"")
            .replace("[clients.admin]\nclearance = \"ClusterAdmin\"\n", "")
            .replace("validity = \"90d\"", "validity = \"180d\"")
    ));
    let edit = env.run(&["apply", "--yes"]).success();
    assert_review("apply_edit_text", &edit.stdout, &filters(&env));
    let none = env.run(&["apply", "--yes"]).success();
    assert_review("apply_no_changes_text", &none.stdout, &filters(&env));
}

/// Bad configs, one of each kind of check: syntax, an unknown key, a rule on one value, a rule
/// across values, a secret written in the file, a file it names. All their errors at once.
#[test]
fn error_messages_of_bad_configs() {
    let cases = [
        ("error_not_toml", "version = 1\n[server\n"),
        (
            "error_unknown_key",
            "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n\n\
             [clients.admin]\nclearence = \"ClusterAdmin\"\n",
        ),
        (
            "error_rules",
            "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n\n\
             [clients.app]\nclearance = \"Operator\"\ndatabases = { Orders = \"Read\" }\n\
             validity = \"3m\"\npassword = \"hunter2\"\nupload = \"missing.pem\"\n\n\
             [clients.other]\nname = \"app\"\nclearance = \"ValidUser\"\n",
        ),
    ];
    for (name, config) in cases {
        let env = env_at_now(config);
        let r = env.cmd(&["validate"]).refused(&[]);
        assert!(!r.stderr.contains("hunter2"), "{}", r.shown());
        assert_review(name, &r.stderr, &filters(&env));
    }
}

/// Commands refused over an applied store: no terminal to confirm, a guard, a stale or foreign
/// saved plan, a key that is not declared, a store from a newer version.
#[test]
fn error_messages_of_refused_commands() {
    let env = env_at_now(&format!("{SERVER}{CLIENTS}"));
    env.run(&["apply", "--yes"]).success();
    let refused = |name: &str, args: &[&str]| {
        let r = env.cmd(args).refused(&[]);
        assert_review(name, &r.stderr, &filters(&env));
    };
    env.config(&format!("{SERVER}{CLIENTS}").replace("\"Read\"", "\"ReadWrite\""));
    refused("error_apply_without_yes", &["apply"]);
    refused(
        "error_replace_unknown_key",
        &["plan", "--replace", "nobody"],
    );
    refused(
        "error_lock_timeout_unit",
        &["apply", "--yes", "--lock-timeout", "2m"],
    );
    env.write("junk.plan", "{}");
    refused("error_not_a_saved_plan", &["apply", "junk.plan", "--yes"]);

    env.config(&format!(
        "{SERVER}[store]\nprune = true\nmax_deletions = 1\n[clients.admin]\nclearance = \"ClusterAdmin\"\n"
    ));
    refused("error_max_deletions", &["apply", "--yes"]);

    let registry = env.store().join("registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(
        &registry,
        text.replace("format_version = 1", "format_version = 9"),
    )
    .unwrap();
    refused("error_store_format_version", &["plan"]);
}

/// A plan depends only on its inputs: two processes over one store, and a copy of the store
/// in another folder, print it byte for byte the same (hash order, threads and the folder's
/// name play no part). Within one process this could not fail; across processes it can.
#[test]
fn plans_are_the_same_from_separate_processes_and_copies_of_the_store() {
    let mut config = format!("{SERVER}[store]\nprune = true\n");
    for i in 0..40 {
        config.push_str(&format!(
            "[clients.c{i:02}]\nclearance = \"ValidUser\"\ndatabases = {{ Db{} = \"Read\", Other{} = \"ReadWrite\" }}\n",
            i % 7,
            i % 5
        ));
    }
    let env = env_at_now(&config);
    env.run(&["apply", "--yes"]).success();
    // Every kind of change: updates, deletes, creates.
    let mut edited = config.replace("\"Read\"", "\"Admin\"");
    edited = edited.replace("[clients.c03]", "[clients.n03]");
    edited = edited.replace("[clients.c17]", "[clients.n17]");
    env.config(&edited);

    let copy = Env::new().env("RAVENCERT_TEST_NOW", NOW);
    common::sh(
        env.dir.path(),
        &format!("cp -a . '{}'", copy.dir.path().display()),
    );
    let plans = |env: &Env| -> Vec<String> {
        [
            &["plan", "--diff"][..],
            &["plan", "--json", "--diff"],
            &["plan", "--markdown", "--diff"],
        ]
        .iter()
        .map(|args| {
            let out = env.run(args).success().stdout;
            out.replace(&env.dir.path().display().to_string(), "[TEMP]")
        })
        .collect()
    };
    let first = plans(&env);
    assert!(first[0].contains("to delete"), "{}", first[0]);
    assert_eq!(first, plans(&env), "a second process printed another plan");
    assert_eq!(first, plans(&copy), "a copy of the store gave another plan");
}

/// The benchmark's synthetic store (tests/common/synthetic.rs) is what the bench says: valid,
/// and converged, so that the bench measures a no-op plan.
#[test]
fn the_synthetic_store_is_converged() {
    let env = Env::new();
    common::synthetic::synthetic_store(env.dir.path(), 5).unwrap();
    let r = env.run(&["plan", "--detailed-exitcode"]).success();
    assert!(r.stdout.contains("No changes"), "{}", r.shown());
}

/// `status` reads like a table a person scans (issue 23, item 6): rows by name (then key)
/// whatever the keys say, the config's clearance words (ValidUser, not the Studio's User), and
/// a Databases column that wraps one database per line, so that twelve databases do not push
/// the lines past a terminal's width.
#[test]
fn status_rows_are_sorted_by_name_and_databases_wrap() {
    let databases: Vec<String> = (1..=12)
        .rev()
        .map(|i| format!("Database{i:02} = \"ReadWrite\""))
        .collect();
    let config = format!(
        "{SERVER}\n[clients.a-zulu]\nname = \"Zulu\"\nclearance = \"Operator\"\n\n\
         [clients.b-alpha]\nname = \"alpha\"\nclearance = \"ValidUser\"\ndatabases = {{ {} }}\n\n\
         [clients.c-mike]\nname = \"Mike\"\nclearance = \"ClusterAdmin\"\n\n\
         [clients.d-mike]\nname = \"Mike 2\"\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n",
        databases.join(", ")
    );
    let env = env_at_now(&config);
    env.run(&["apply", "--yes"]).success();
    let text = env.run(&["status"]).success().stdout;
    let clients = text
        .split("Client certificates\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let rows: Vec<&str> = clients
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split("  ").next())
        .collect();
    assert_eq!(names, ["alpha", "Mike", "Mike 2", "Zulu"], "{text}");
    // One database per line, in order, and every line fits a terminal.
    for i in 1..=12 {
        let db = format!("Database{i:02}: ReadWrite");
        let lines: Vec<&&str> = rows.iter().filter(|l| l.contains(&db)).collect();
        assert_eq!(lines.len(), 1, "{db}\n{text}");
        assert_eq!(lines[0].matches("Database").count(), 1, "{text}");
        assert!(lines[0].ends_with(&db), "{text}");
    }
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 120, "{widest} characters wide:\n{text}");
    // The config's clearance words, in text as in JSON.
    assert!(rows[0].contains("  ValidUser  "), "{text}");
    assert!(!text.contains(" User "), "{text}");
    let json = env.run(&["status", "--json"]).success().json();
    let clearances: Vec<&str> = json["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["clearance"].as_str())
        .collect();
    assert!(clearances.contains(&"ValidUser"), "{json}");
    // The page keeps the Studio's words.
    let page = env.run(&["status", "--html"]).success().stdout;
    assert!(
        page.contains(">User<") && page.contains(">Cluster Admin<"),
        "{page}"
    );
}
