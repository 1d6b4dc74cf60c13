//! Plan outputs reviewed as text: snapshots with unstable values (thumbprints, dates, temp
//! paths) replaced by placeholders.

use crate::common::{review, Env, SERVER};

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

fn snapshot(env: &Env, name: &str, text: &str) {
    review::assert_review(name, text, &review::filters(env));
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
