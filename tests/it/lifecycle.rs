//! Certificate lifecycle and safe change under a moving clock (RAVENCERT_TEST_NOW, honoured by
//! debug builds only): renewal, rotation overlap, saved plans, guards, markdown.

use crate::common;

use crate::common::{json, Env, SERVER};

const T0: &str = "2027-01-01T00:00:00Z";

fn at(days: i64) -> String {
    let t0 =
        time::OffsetDateTime::parse(T0, &time::format_description::well_known::Rfc3339).unwrap();
    (t0 + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Runs at T0 + `days`.
fn run_at(env: &Env, days: i64, args: &[&str]) -> common::Run {
    env.run_with(args, &[("RAVENCERT_TEST_NOW", &at(days))])
}

fn entries(env: &Env, days: i64) -> Vec<serde_json::Value> {
    run_at(env, days, &["status", "--json"]).success().json()["certificates"]
        .as_array()
        .unwrap()
        .clone()
}

const ROTATING: &str = r#"
[clients.app]
clearance = "ValidUser"
databases = { Orders = "Read" }
validity = "90d"
renew_before = "30d"
overlap = "14d"
"#;

#[test]
fn renewal_and_rotation_overlap_walkthrough() {
    let env = Env::new();
    env.config(&format!("{SERVER}{ROTATING}"));
    run_at(&env, 0, &["apply", "--yes"]).success();
    let first = entries(&env, 0)[0]["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();

    // Two months on, 31 days left: nothing to do.
    let quiet = run_at(&env, 59, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stdout);

    // 29 days left: re-issued, and the reason says why.
    let plan = run_at(&env, 61, &["plan", "--json"]).success().json();
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "replace");
    assert_eq!(change["reason"], "expires in 29 days (renew_before 30d)");
    run_at(&env, 61, &["apply", "--yes"]).success();

    // During the overlap both are registered; the new one has the bundle.
    let both = entries(&env, 62);
    assert_eq!(both.len(), 2);
    let second = both
        .iter()
        .map(|e| e["thumbprint"].as_str().unwrap().to_string())
        .find(|t| *t != first)
        .unwrap();
    let crt = env.store().join("issued/app/app.crt");
    assert_eq!(common::openssl_thumbprint(&crt), second);
    // status --json tells the retiring one from the current one.
    let retiring: Vec<(&str, &serde_json::Value)> = both
        .iter()
        .map(|e| (e["thumbprint"].as_str().unwrap(), &e["retiring_after"]))
        .collect();
    for (thumb, after) in &retiring {
        if *thumb == first {
            // Re-issued at day 61 with a 14-day overlap.
            assert_eq!(after.as_str(), Some(at(75).as_str()), "{both:?}");
        } else {
            assert!(after.is_null(), "{both:?}");
        }
    }
    // The old one has 28 days left, inside renew_before: it is retiring, not renew due.
    let text = run_at(&env, 62, &["status"]).success().stdout;
    let old_row = text
        .lines()
        .find(|l| l.contains(&first))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(old_row.contains("app (old)"), "{text}");
    assert!(old_row.contains("[retiring 2027-03-17]"), "{text}");
    assert!(!text.contains("[renew due]"), "{text}");
    assert_eq!(
        run_at(&env, 74, &["plan", "--detailed-exitcode"]).code,
        0,
        "the overlap has not ended yet"
    );

    // After the overlap the old one goes, although prune = false: it is ravencert's rotation.
    let plan = run_at(&env, 76, &["plan", "--json"]).success().json();
    assert_eq!(plan["changes"][0]["action"], "delete");
    assert_eq!(plan["changes"][0]["reason"], "rotation overlap ended");
    assert_eq!(plan["changes"][0]["before"]["thumbprint"], first.as_str());
    run_at(&env, 76, &["apply", "--yes"]).success();
    let left = entries(&env, 76);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["thumbprint"], second.as_str());
    assert!(!env.store().join(format!("certs/{first}.pem")).exists());
    run_at(&env, 76, &["plan", "--detailed-exitcode"]).success();
}

#[test]
fn expired_certificates_are_replaced_with_the_date_in_the_reason() {
    let env = Env::new();
    env.config(&format!("{SERVER}{ROTATING}"));
    run_at(&env, 0, &["apply", "--yes"]).success();
    let plan = run_at(&env, 200, &["plan", "--json"]).success().json();
    let reasons = json::strs(&plan["changes"], "reason");
    assert!(reasons.contains(&"expired on 2027-04-01"), "{reasons:?}");
}

#[test]
fn renew_before_as_a_share_of_the_lifetime() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}{}",
        ROTATING.replace("renew_before = \"30d\"", "renew_before = \"33%\"")
    ));
    run_at(&env, 0, &["apply", "--yes"]).success();
    // Lifetime 97 days (not-before is a week back): 33% is 32 days before expiry.
    assert_eq!(run_at(&env, 57, &["plan", "--detailed-exitcode"]).code, 0);
    let plan = run_at(&env, 59, &["plan", "--json"]).success().json();
    assert_eq!(
        plan["changes"][0]["reason"],
        "expires in 31 days (renew_before 33%)"
    );
}

#[test]
fn saved_plan_applies_when_fresh_and_refuses_when_stale() {
    let env = Env::new().env("APP_PASSWORD", "saved-plan-secret-77");
    let config = format!("{SERVER}{ROTATING}password_env = \"APP_PASSWORD\"\n");
    env.config(&config);
    env.run(&["plan", "--out", "plan.json"]).success();
    let text = std::fs::read_to_string(env.path("plan.json")).unwrap();
    assert!(!text.contains("saved-plan-secret-77"));
    assert!(!text.contains("PRIVATE"));
    assert!(text.contains("store_fingerprint"));

    // Fresh: carried out.
    env.run(&["apply", "plan.json", "--yes"]).success();
    assert_eq!(entries(&env, 0).len(), 1);

    // Store changed after the plan was made.
    env.config(&config.replace("Orders = \"Read\"", "Orders = \"ReadWrite\""));
    env.run(&["plan", "--out", "edit.json"]).success();
    env.run(&["apply", "--yes", "--replace", "app"]).success();
    env.cmd(&["apply", "edit.json", "--yes"]).refused(&[
        "Saved plan is stale: the store changed after the plan was made. Run plan again.",
    ]);

    // certs.toml changed after the plan was made.
    env.run(&["plan", "--out", "edit.json"]).success();
    env.config(&config.replace("Orders = \"Read\"", "Orders = \"Admin\""));
    env.cmd(&["apply", "edit.json", "--yes"])
        .refused(&["Saved plan is stale", "certs.toml"]);

    // Garbage is not a plan.
    env.write("junk.json", "{}");
    let junk = env.run(&["apply", "junk.json", "--yes"]).failure();
    assert!(junk.stderr.contains("not a saved plan"), "{}", junk.stderr);
}

fn many_clients(n: usize, prune: bool) -> String {
    let mut s = format!("{SERVER}[store]\nprune = {prune}\nmax_deletions = 3\n");
    for i in 0..n {
        s.push_str(&format!("[clients.c{i}]\nclearance = \"Operator\"\n"));
    }
    s
}

#[test]
fn guards_refuse_and_leave_the_store_untouched() {
    let env = Env::new();
    env.config(&many_clients(5, true));
    env.run(&["apply", "--yes"]).success();

    // Four deletions, max_deletions = 3.
    env.config(&many_clients(1, true));
    env.cmd(&["apply", "--yes"]).refused(&[
        "deletes 4 certificates",
        "c1, c2, c3, c4",
        "max_deletions = 3",
    ]);

    // Every client gone: refused even with no limit, unless --allow-delete-all.
    env.config(&many_clients(0, true).replace("max_deletions = 3", "max_deletions = 0"));
    env.cmd(&["apply", "--yes"])
        .refused(&["--allow-delete-all"]);
    env.run(&["apply", "--yes", "--allow-delete-all"]).success();
    assert!(entries(&env, 0).is_empty());
}

/// The refusal of a one-step delete or re-issue of a protected client: it names the client and
/// the way out.
const TWO_STEPS: &str = "drop `protect` first, apply, then";

#[test]
fn protect_refuses_a_one_step_reissue_except_an_explicit_replace() {
    let env = Env::new();
    let config = format!("{SERVER}[clients.root]\nclearance = \"ClusterAdmin\"\n");
    env.config(&config);
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("root");

    // Protect added: an update of its own (the store remembers it), the certificate kept.
    let protected = format!("{config}protect = true\n");
    env.config(&protected);
    let plan = env.run(&["plan"]).success();
    assert!(plan.stdout.contains("~ client root"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("protect: false -> true"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("ESCALATION"), "{}", plan.stdout);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("root"), thumb);
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert_eq!(registry.matches("protect = true").count(), 1, "{registry}");
    let quiet = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stdout);

    // A key change would re-issue it: refused, nothing changed, the way out named.
    let rekeyed = format!("{protected}key = \"ec-p384\"\n");
    env.config(&rekeyed);
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        env.cmd(args)
            .refused(&["client 'root' is protected", "--replace root", TWO_STEPS]);
    }
    // Dropping protect in the same step changes nothing: the store remembers it.
    env.config(&rekeyed.replace("protect = true\n", ""));
    env.cmd(&["apply", "--yes"])
        .refused(&["client 'root' is protected", TWO_STEPS]);

    // Named explicitly: the one-step re-issue, protect kept.
    env.config(&rekeyed);
    env.run(&["apply", "--yes", "--replace", "root"]).success();
    assert_ne!(env.thumbprint("root"), thumb);
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert_eq!(registry.matches("protect = true").count(), 1, "{registry}");
}

#[test]
fn a_protected_client_leaves_only_in_two_reviewed_steps() {
    let env = Env::new();
    let root =
        "[clients.root]\nname = \"Break-glass\"\nclearance = \"ClusterAdmin\"\nprotect = true\n";
    let app = "[clients.app]\nclearance = \"ValidUser\"\n";
    let config = |clients: &str| format!("{SERVER}[store]\nprune = true\n{clients}{app}");
    env.config(&config(root));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("root");

    // Removed with prune on, or renamed: refused, naming the client and the way out; the
    // store (and the whole folder) unchanged.
    for (what, clients) in [
        ("removed", String::new()),
        (
            "renamed",
            root.replace("clients.root", "clients.break-glass"),
        ),
    ] {
        env.config(&config(&clients));
        for args in [
            &["plan"][..],
            &["plan", "--json"][..],
            &["apply", "--yes"][..],
        ] {
            let run = env.cmd(args).refused(&[
                "client 'root' is protected",
                &format!("{TWO_STEPS} remove it"),
            ]);
            assert!(
                !run.stderr.contains("break-glass"),
                "{what}: {}",
                run.stderr
            );
        }
        assert_eq!(env.thumbprint("root"), thumb, "{what}");
    }

    // Step one: protect dropped, an update that changes nothing else, with a note.
    env.config(&config(&root.replace("protect = true\n", "")));
    let plan = env.run(&["plan", "--diff"]).success().stdout;
    assert!(plan.contains("~ client root"), "{plan}");
    assert!(plan.contains("protect: true -> false"), "{plan}");
    assert!(
        plan.contains("-protect = true"),
        "the registry diff shows it: {plan}"
    );
    assert!(
        plan.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete"),
        "{plan}"
    );
    assert!(plan.contains("no longer protected"), "{plan}");
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("root"), thumb);

    // Step two: removed, a plain delete.
    env.config(&config(""));
    let plan = env.run(&["plan"]).success().stdout;
    assert!(plan.contains("- client root"), "{plan}");
    env.run(&["apply", "--yes"]).success();
    let left: Vec<String> = entries(&env, 0)
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec!["app".to_string()]);
}

#[test]
fn markdown_plan_snapshot() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}[store]\nprune = true\n[clients.admin]\nclearance = \"ClusterAdmin\"\n[clients.app]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n[clients.gone]\nclearance = \"Operator\"\n"
    ));
    env.run(&["apply", "--yes"]).success();
    env.config(&format!(
        "{SERVER}[store]\nprune = true\n[clients.admin]\nclearance = \"ClusterAdmin\"\n[clients.app]\nclearance = \"Operator\"\n[clients.new-reader]\nclearance = \"ValidUser\"\n"
    ));
    let md = env.run(&["plan", "--markdown"]).success().stdout;
    common::review::assert_review("plan_markdown", &md, &[]);
}

#[test]
fn drift_hand_edited_clearance_is_reported_and_repaired() {
    let env = Env::new();
    env.config(&format!("{SERVER}{ROTATING}"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    let reg = env.store().join("registry.toml");
    let text = std::fs::read_to_string(&reg).unwrap();
    std::fs::write(
        &reg,
        text.replace("clearance = \"ValidUser\"", "clearance = \"ClusterAdmin\""),
    )
    .unwrap();

    let plan = env.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains("Changed outside ravencert"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(&format!("client 'app' ({thumb}) was edited in the registry: clearance ValidUser -> ClusterAdmin")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("clearance: ClusterAdmin -> ValidUser"),
        "{}",
        plan.stdout
    );
    let json = env.run(&["plan", "--json"]).success().json();
    assert!(json["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("changed outside ravencert"));

    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("app"), thumb);
    let after = env.run(&["plan", "--detailed-exitcode"]).success();
    assert!(
        !after.stdout.contains("Changed outside"),
        "{}",
        after.stdout
    );
}

#[test]
fn drift_removed_certificate_file_is_restored_or_reissued() {
    let env = Env::new();
    env.config(&format!("{SERVER}{ROTATING}"));
    env.run(&["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    let pem = env.store().join(format!("certs/{thumb}.pem"));
    let original = std::fs::read(&pem).unwrap();
    std::fs::remove_file(&pem).unwrap();

    // The issued bundle still holds it: restored in place, same thumbprint.
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["changes"][0]["action"], "update");
    assert!(plan["changes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("restored from the issued bundle"));
    env.run(&["apply", "--yes"]).success();
    assert_eq!(std::fs::read(&pem).unwrap(), original);
    assert_eq!(env.thumbprint("app"), thumb);
    env.run(&["plan", "--detailed-exitcode"]).success();

    // Bundle gone too: nothing can restore it, so it is re-issued.
    std::fs::remove_file(&pem).unwrap();
    std::fs::remove_dir_all(env.store().join("issued/app")).unwrap();
    let plan = env.run(&["plan", "--json"]).success().json();
    assert_eq!(plan["changes"][0]["action"], "replace");
    let reason = plan["changes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("public certificate file lost"), "{reason}");
    env.run(&["apply", "--yes"]).success();
    assert_ne!(env.thumbprint("app"), thumb);
    env.run(&["plan", "--detailed-exitcode"]).success();
}

/// Kept access is not "No changes": a client removed from certs.toml while prune is off keeps
/// its certificate and its access, so the plan counts and lists it (with its clearance and
/// databases) in every format, and --detailed-exitcode says 2 until it is pruned or declared.
#[test]
fn an_undeclared_client_kept_without_prune_is_counted_listed_and_exit_2() {
    let env = Env::new();
    let both = format!(
        "{}\n[clients.keep]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"ReadWrite\" }}\n\n[clients.gone]\nname = \"Gone App\"\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Admin\" }}\n",
        common::SERVER
    );
    env.config(&both);
    env.run(&["apply", "--yes"]).success();
    let settled = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "{}", settled.shown());
    assert!(settled.stdout.contains("No changes."), "{}", settled.stdout);

    let gone = both.split("\n[clients.gone]").next().unwrap().to_string();
    env.config(&gone);
    let text = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(text.code, 2, "{}", text.shown());
    assert!(!text.stdout.contains("No changes"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("1 undeclared certificate kept: still has access."),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("client gone ('Gone App'): ValidUser, Orders: Admin"),
        "{}",
        text.stdout
    );
    let json = env.run(&["plan", "--json"]).success().json();
    assert_eq!(json["summary"]["kept"], 1, "{json:#}");
    assert_eq!(json["kept"][0]["key"], "gone", "{json:#}");
    assert_eq!(
        json["kept"][0]["permissions"]["Orders"], "Admin",
        "{json:#}"
    );
    let md = env.run(&["plan", "--markdown"]).success().stdout;
    assert!(md.contains("1 undeclared certificate kept"), "{md}");
    assert!(!md.contains("No changes"), "{md}");
    // apply changes nothing and says the same; with prune the client goes, and it settles.
    let applied = env.run(&["apply", "--yes"]).success();
    assert!(
        applied.stdout.contains("still has access"),
        "{}",
        applied.stdout
    );
    env.config(&gone.replace("version = 1", "version = 1\n[store]\nprune = true\n"));
    env.run(&["apply", "--yes"]).success();
    let done = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(done.code, 0, "{}", done.shown());
}

/// The store records the settings each apply ran with, so a plain plan shows a later change of
/// them (here a guard loosened: flagged), and the apply that carries it out records it.
#[test]
fn a_settings_change_against_the_store_is_shown_flagged_then_recorded() {
    let env = Env::new();
    let config = format!(
        "{}\n[clients.app]\nclearance = \"Operator\"\n",
        common::SERVER.replace("version = 1", "version = 1\n[store]\nmax_deletions = 3\n")
    );
    env.config(&config);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.run(&["plan", "--detailed-exitcode"]).code, 0);
    env.config(&config.replace("max_deletions = 3", "max_deletions = 0\nprune = true"));
    let plan = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.shown());
    assert!(
        plan.stdout.contains("~ settings store  [ESCALATION]"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("max_deletions: 3 -> 0"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("prune: false -> true"),
        "{}",
        plan.stdout
    );
    env.run(&["apply", "--yes"]).success();
    let after = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(after.code, 0, "{}", after.shown());
}

/// issue 25: `until` caps the issued certificate's end, as openssl reads it, and the capped
/// certificate is not renewed on the next plans though it is inside renew_before.
#[test]
fn until_caps_not_after_as_openssl_reads_it() {
    let env = Env::new();
    // Four hours after T0: a break-glass client.
    env.config(&format!(
        "{SERVER}\n[clients.breakglass]\nclearance = \"ClusterAdmin\"\nuntil = 2027-01-01T04:00:00Z\n"
    ));
    run_at(&env, 0, &["apply", "--yes"]).success();
    let crt = env.store().join("issued/breakglass/breakglass.crt");
    let end =
        common::openssl(&["x509", "-enddate", "-noout", "-in", crt.to_str().unwrap()]).success();
    assert_eq!(end.stdout.trim(), "notAfter=Jan  1 04:00:00 2027 GMT");
    let listed = entries(&env, 0);
    let entry = listed.iter().find(|e| e["key"] == "breakglass").unwrap();
    assert_eq!(entry["not_after"], "2027-01-01T04:00:00Z");
    // Applied, the plan is empty: neither renewed (4 hours left, renew_before 30d) nor
    // re-issued for its validity.
    let again = run_at(&env, 0, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    // `status` says when access ends, in text and JSON.
    let text = run_at(&env, 0, &["status"]).success().stdout;
    assert!(text.contains("Access"), "{text}");
    assert!(
        text.contains("until 2027-01-01 04:00Z (4 hours left)"),
        "{text}"
    );
    // Cut at its until, it is never renewed: not marked renew due with 4 hours left.
    assert!(!text.contains("[renew due]"), "{text}");
    assert_eq!(entry["until"], "2027-01-01T04:00:00Z");
}

/// issue 25: moving `until` before a certificate's end re-issues it to end by then, and the
/// old certificate goes in the same apply despite an overlap; moving it later is flagged.
#[test]
fn earlier_until_reissues_and_the_old_certificate_goes_now() {
    let env = Env::new();
    let client = "\n[clients.app]\nclearance = \"Operator\"\noverlap = \"7d\"\n";
    env.config(&format!("{SERVER}{client}"));
    run_at(&env, 0, &["apply", "--yes"]).success();
    let old = env.thumbprint("app");
    env.config(&format!("{SERVER}{client}until = 2027-01-01T06:00:00Z\n"));
    let plan = run_at(&env, 0, &["plan", "--json"]).success().json();
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "replace", "{plan:#}");
    assert_eq!(change["escalation"], false);
    run_at(&env, 0, &["apply", "--yes"]).success();
    let listed = entries(&env, 0);
    assert_eq!(
        listed.len(),
        1,
        "the old certificate is not kept: {listed:#?}"
    );
    assert_ne!(env.thumbprint("app"), old);
    let crt = env.store().join("issued/app/app.crt");
    let end =
        common::openssl(&["x509", "-enddate", "-noout", "-in", crt.to_str().unwrap()]).success();
    assert_eq!(end.stdout.trim(), "notAfter=Jan  1 06:00:00 2027 GMT");
    // Later: re-issued to extend access, flagged in the Markdown plan a reviewer reads.
    env.config(&format!("{SERVER}{client}until = 2027-01-01T10:00:00Z\n"));
    let md = run_at(&env, 0, &["plan", "--markdown"]).success().stdout;
    assert!(md.contains("to extend access"), "{md}");
    assert!(md.contains("**1 change widens access**"), "{md}");
    assert!(
        md.contains("| replace ⚠️ escalation | client | app |"),
        "{md}"
    );
}

/// issue 25: once `until` has passed, the client leaves the store with prune off, its bundle
/// folder too; a client declared with an `until` already past is not issued at all.
#[test]
fn passed_until_removes_from_store_without_prune() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}\n[clients.app]\nclearance = \"Operator\"\n\n[clients.temp]\nclearance = \"Operator\"\nuntil = 2027-01-01T04:00:00Z\n"
    ));
    run_at(&env, 0, &["apply", "--yes"]).success();
    assert!(env.store().join("issued/temp/temp.pfx").exists());
    let plan = run_at(&env, 1, &["plan", "--json"]).success().json();
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "delete");
    assert_eq!(change["key"], "temp");
    assert_eq!(change["reason"], "access ended 2027-01-01T04:00:00Z");
    run_at(&env, 1, &["apply", "--yes"]).success();
    let keys: Vec<String> = entries(&env, 1)
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["app"]);
    assert!(!env.store().join("issued/temp").exists());
    let quiet = run_at(&env, 1, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stdout);
}

#[test]
fn past_until_on_new_client_issues_nothing() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}\n[clients.app]\nclearance = \"Operator\"\n\n[clients.late]\nclearance = \"Operator\"\nuntil = 2026-12-31\n"
    ));
    let run = run_at(&env, 0, &["apply", "--yes"]).success();
    assert!(
        run.stderr
            .contains("client 'late': until 2026-12-31T00:00:00Z has passed; not issued")
            || run
                .stdout
                .contains("client 'late': until 2026-12-31T00:00:00Z has passed; not issued"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!env.store().join("issued/late").exists());
    let keys: Vec<String> = entries(&env, 0)
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["app"]);
}

/// A saved plan that issues a client is refused once the client's until has passed: the apply
/// never issues access that already ended.
#[test]
fn saved_plan_refused_after_until_passed() {
    let env = Env::new();
    env.config(&format!(
        "{SERVER}\n[clients.temp]\nclearance = \"Operator\"\nuntil = 2027-01-01T12:00:00Z\n"
    ));
    run_at(&env, 0, &["plan", "--out", "plan.json"]).success();
    env.cmd(&["apply", "plan.json", "--yes"])
        .env("RAVENCERT_TEST_NOW", &at(1))
        .refused(&["Saved plan is stale", "time has passed"]);
    assert!(!env.store().join("issued/temp").exists());
    // Before until it is carried out.
    run_at(&env, 0, &["apply", "plan.json", "--yes"]).success();
    assert!(env.store().join("issued/temp/temp.pfx").exists());
}

/// issue 25: `disabled = true` is an update the store records (same certificate), with a
/// warning that without [cluster] it only records; a disabled client inside its renewal window
/// is not renewed; enabling it again is flagged in the text, Markdown and JSON plans.
#[test]
fn disabled_is_recorded_not_renewed_and_enabling_is_flagged_in_every_format() {
    let env = Env::new();
    let on = format!("{SERVER}{ROTATING}");
    env.config(&on);
    run_at(&env, 0, &["apply", "--yes"]).success();
    let thumb = env.thumbprint("app");
    let off = format!("{on}disabled = true\n");
    env.config(&off);
    let plan = run_at(&env, 1, &["plan"]).success();
    let says = format!("{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("~ client app"), "{says}");
    assert!(plan.stdout.contains("disabled in certs.toml"), "{says}");
    assert!(plan.stdout.contains("disabled: false -> true"), "{says}");
    assert!(!plan.stdout.contains("ESCALATION"), "{says}");
    assert!(
        says.contains("clients.app: disabled only records the suspension here: without [cluster]"),
        "{says}"
    );
    run_at(&env, 1, &["apply", "--yes"]).success();
    assert_eq!(env.thumbprint("app"), thumb);
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert_eq!(registry.matches("disabled = true").count(), 1, "{registry}");
    // status says so: an Access column in the text, `disabled` in the JSON.
    let status = run_at(&env, 1, &["status", "--json"]).success().json();
    let app = json::find(&status["certificates"], "key", "app")
        .cloned()
        .unwrap();
    assert_eq!(app["disabled"], true, "{status:#}");
    let text = run_at(&env, 1, &["status"]).success().stdout;
    let header = text.lines().find(|l| l.contains("Databases")).unwrap();
    assert!(header.trim_end().ends_with("Access"), "{text}");
    let row = text.lines().find(|l| l.contains(&thumb)).unwrap();
    assert!(row.trim_end().ends_with("disabled"), "{text}");
    // Inside renew_before (30d of 90d): not renewed while disabled, and said so.
    let due = run_at(&env, 70, &["plan", "--detailed-exitcode"]);
    assert_eq!(due.code, 0, "{}", due.stdout);
    assert!(
        format!("{}{}", due.stdout, due.stderr)
            .contains("client 'app' is disabled: not renewed although expires in"),
        "{}\n{}",
        due.stdout,
        due.stderr
    );
    // Enabled again inside the window: re-issued, flagged in every format.
    env.config(&on);
    let text = run_at(&env, 70, &["plan"]).success().stdout;
    assert!(text.contains("-/+ client app  [ESCALATION]"), "{text}");
    assert!(text.contains("enabled in certs.toml; expires in"), "{text}");
    let md = run_at(&env, 70, &["plan", "--markdown"]).success().stdout;
    assert!(md.contains("1 change widens access"), "{md}");
    let json = run_at(&env, 70, &["plan", "--json"]).success().json();
    let change = json::find(&json["changes"], "key", "app").cloned().unwrap();
    assert_eq!(change["escalation"], true, "{json:#}");
    assert_eq!(change["before"]["disabled"], true, "{json:#}");
    assert_eq!(change["after"].get("disabled"), None, "{json:#}");
}
