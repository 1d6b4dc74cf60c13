//! Plan outputs reviewed as text: snapshots with unstable values (thumbprints, dates, temp
//! paths) replaced by placeholders.

mod common;

use common::{Env, SERVER};

fn config(orders_access: &str, ops_clearance: &str) -> String {
    format!(
        r#"{SERVER}
[store]
prune = true

[clients.admin]
clearance = "ClusterAdmin"

[clients.ops]
name = "Operations"
clearance = "{ops_clearance}"

[clients.orders-app]
name = "Orders App"
clearance = "ValidUser"
databases = {{ Orders = "{orders_access}", Reporting = "Read" }}
"#
    )
}

fn filters(env: &Env) -> Vec<(String, String)> {
    vec![
        (
            regex_escape(&env.dir.path().display().to_string()),
            "[TEMP]".into(),
        ),
        (r"[0-9A-F]{40}".into(), "[THUMBPRINT]".into()),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z".into(),
            "[DATE]".into(),
        ),
        (r"[A-Za-z0-9+/]{43}=".into(), "[PINNING_HASH]".into()),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn snapshot(env: &Env, name: &str, text: &str) {
    let f = filters(env);
    let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    insta::with_settings!({ filters => refs, snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn plan_snapshots() {
    let env = Env::new();
    env.config(&config("Read", "Operator"));
    snapshot(
        &env,
        "plan_first_text",
        &env.run(&["plan"]).success().stdout,
    );
    snapshot(
        &env,
        "plan_first_json",
        &env.run(&["plan", "--json"]).success().stdout,
    );
    env.run(&["apply", "--yes"]).success();

    // Raise one, lower another, drop admin (prune).
    env.config(
        &config("ReadWrite", "ValidUser")
            .replace("[clients.admin]\nclearance = \"ClusterAdmin\"\n", ""),
    );
    snapshot(
        &env,
        "plan_edit_text",
        &env.run(&["plan", "--diff"]).success().stdout,
    );
    snapshot(
        &env,
        "plan_edit_markdown_diff",
        &env.run(&["plan", "--markdown", "--diff"]).success().stdout,
    );
    snapshot(
        &env,
        "plan_edit_json",
        &env.run(&["plan", "--json"]).success().stdout,
    );
}
