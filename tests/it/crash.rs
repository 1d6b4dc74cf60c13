//! Crash safety: an apply that dies at any moment leaves a store that loads, whose registry and
//! files agree, and that the next apply converges. Proven two ways: aborting before every
//! file-system step in turn (the `test-hooks` feature, on for tests only), and SIGKILL at
//! random moments during a large apply.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Env, SERVER};

const V1: &str = r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.app]
clearance = "ValidUser"
databases = { Orders = "Read" }
password_env = "APP_PASSWORD"

[clients.ops]
clearance = "Operator"
overlap = "7d"

[clients.gone]
clearance = "Operator"
"#;

/// Every kind of change at once: update, replace with overlap, delete, create, upload.
const V2: &str = r#"
[store]
prune = true

[clients.admin]
clearance = "ClusterAdmin"

[clients.app]
clearance = "ValidUser"
databases = { Orders = "ReadWrite" }
password_env = "APP_PASSWORD"

[clients.ops]
clearance = "Operator"
overlap = "7d"
key = "ec-p384"

[clients.new]
clearance = "ValidUser"
databases = { Reports = "Read" }

[clients.partner]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "partner.crt"
"#;

fn env() -> Env {
    let env = Env::new().env("APP_PASSWORD", "crash-test-secret");
    common::self_signed(env.dir.path(), "partner.crt", "partner.key", "partner");
    env
}

/// The store loads, shows no drift (the registry and its files agree), and a normal apply
/// converges to "no changes".
#[track_caller]
fn assert_recovers(env: &Env, context: &str) {
    let plan = env.run(&["plan", "--json"]);
    assert_eq!(
        plan.code, 0,
        "{context}: the store does not load after the crash:\n{}",
        plan.stderr
    );
    let warnings = plan.json()["warnings"].to_string();
    assert!(
        !warnings.contains("changed outside ravencert"),
        "{context}: the crash left registry and files disagreeing: {warnings}"
    );
    let apply = env.run(&["apply", "--yes"]);
    assert_eq!(
        apply.code, 0,
        "{context}: apply after the crash failed:\n{}",
        apply.stderr
    );
    let again = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{context}: not converged:\n{}", again.stdout);
    // Every registered certificate's file is there and is that certificate.
    for c in env.status()["certificates"].as_array().unwrap() {
        let t = c["thumbprint"].as_str().unwrap();
        let pem = env.store().join(format!("certs/{t}.pem"));
        assert_eq!(common::openssl_thumbprint(&pem), t, "{context}");
    }
    // No temp files or staged bundles are left behind once converged.
    for (path, _) in env.snapshot() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.starts_with(".tmp-"),
            "{context}: leftover {}",
            path.display()
        );
        assert!(
            !name.ends_with(".new"),
            "{context}: leftover {}",
            path.display()
        );
    }
}

/// Aborts the apply before step 1, 2, 3, ... until one runs to the end.
fn abort_at_every_step(setup: &dyn Fn() -> Env, final_config: &str) -> u64 {
    for n in 1.. {
        let env = setup();
        env.config(final_config);
        let at = n.to_string();
        let run = env.run_with(&["apply", "--yes"], &[("RAVENCERT_FAULT_AT", &at)]);
        if run.code == 0 {
            assert_recovers(&env, "no abort");
            return n - 1;
        }
        assert!(
            run.stderr.contains("fault injection"),
            "step {n}: expected an injected abort, got:\n{}",
            run.stderr
        );
        assert_recovers(&env, &format!("abort before step {n}"));
    }
    unreachable!()
}

#[test]
fn first_apply_survives_an_abort_at_every_step() {
    let steps = abort_at_every_step(&env, &format!("{SERVER}{V1}"));
    assert!(steps > 20, "only {steps} file-system steps seen");
}

#[test]
fn changing_apply_survives_an_abort_at_every_step() {
    let setup = || {
        let e = env();
        e.config(&format!("{SERVER}{V1}"));
        e.run(&["apply", "--yes"]).success();
        e
    };
    let steps = abort_at_every_step(&setup, &format!("{SERVER}{V2}"));
    assert!(steps > 20, "only {steps} file-system steps seen");
}

#[test]
fn sigkill_at_random_moments_during_a_large_apply() {
    let env = env();
    // Every round re-issues all 80 clients (the key type flips), so each apply has as much
    // work as the first and a kill anywhere in the window lands mid-apply.
    let config = |key: &str| {
        let mut c = format!("{SERVER}[store]\nprune = true\nmax_deletions = 0\n");
        for i in 0..80 {
            c.push_str(&format!(
                "[clients.c{i:03}]\nclearance = \"ValidUser\"\ndatabases = {{ Db{} = \"Read\" }}\nkey = \"{key}\"\n",
                i % 7
            ));
        }
        c
    };
    // How long does an uninterrupted apply take here? Kill within that window.
    let probe = Env::new();
    probe.config(&config("ec-p256"));
    let t = Instant::now();
    probe.run(&["apply", "--yes"]).success();
    let window = t.elapsed().as_millis().max(50) as u64;

    // A random seed, printed so that a failure can be replayed.
    let seed = fastrand::u64(..);
    eprintln!("sigkill test: seed {seed}, kill window {window} ms");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut killed = 0;
    for round in 0..24 {
        env.config(&config(if round % 2 == 0 { "ec-p256" } else { "ec-p384" }));
        let mut apply = env
            .cmd(&["apply", "--yes", "--lock-timeout", "10s"])
            .env("APP_PASSWORD", "x")
            .spawn("apply");
        // A random moment: after a random number of new certificate files (0-79) appeared,
        // plus a random few milliseconds, so kills land in every phase of the apply.
        let certs = env.store().join("certs");
        let count = || std::fs::read_dir(&certs).map(|d| d.count()).unwrap_or(0);
        let start = count();
        let target = start + rng.usize(0..80);
        let deadline = Instant::now() + Duration::from_millis(window * 3);
        while count() < target && Instant::now() < deadline && apply.running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..5)));
        if apply.running() {
            apply.kill(); // SIGKILL
            killed += 1;
        }
        apply.wait_exit();
        // The store must load and agree with itself after every kill.
        let plan = env.run(&["plan", "--json"]);
        assert_eq!(plan.code, 0, "round {round} (seed {seed}): {}", plan.stderr);
        assert!(
            !plan.stdout.contains("changed outside ravencert"),
            "round {round} (seed {seed}): {}",
            plan.stdout
        );
    }
    eprintln!("sigkill test: {killed} of 24 applies killed mid-way");
    assert!(
        killed >= 20,
        "too few applies were interrupted ({killed} of 24)"
    );
    assert_recovers(&env, &format!("after the SIGKILL rounds (seed {seed})"));
}

/// A large apply writes its clients as they are issued, a batch at a time, each batch recorded
/// in the manifest (one append) before any of its files is made. Aborted anywhere in the
/// stream, every file it left is one the manifest names (what the next apply may sweep), and
/// the next apply converges with none of the unregistered ones left over.
#[test]
fn a_streaming_apply_aborted_mid_stream_leaves_only_recorded_files() {
    let mut config = SERVER.to_string();
    for i in 0..300 {
        config.push_str(&format!(
            "[clients.c{i:03}]\nclearance = \"ValidUser\"\ndatabases = {{ Db = \"Read\" }}\n"
        ));
    }
    // 300 clients take about 1,830 file-system steps, about 6 a client, written in batches by
    // several threads at once: aborts early, in the first batches, and in later ones.
    let mut aborted = 0;
    for at in [12, 390, 780, 785, 1260, 1650] {
        let env = env();
        env.config(&config);
        let run = env.run_with(
            &["apply", "--yes"],
            &[("RAVENCERT_FAULT_AT", &at.to_string())],
        );
        if run.code == 0 {
            continue;
        }
        assert!(run.stderr.contains("fault injection"), "{}", run.stderr);
        aborted += 1;
        let manifest = std::fs::read_to_string(env.store().join(".manifest")).unwrap_or_default();
        let recorded: std::collections::BTreeSet<&str> = manifest.lines().collect();
        for sub in ["certs", "keys", "issued"] {
            let Ok(dir) = std::fs::read_dir(env.store().join(sub)) else {
                continue;
            };
            for e in dir {
                let name = e.unwrap().file_name().to_string_lossy().to_string();
                let rel = format!("{sub}/{name}");
                assert!(
                    name.starts_with(".tmp-") || recorded.contains(rel.as_str()),
                    "abort before step {at}: {rel} was written before the manifest named it"
                );
            }
        }
        assert_recovers(&env, &format!("abort before step {at}"));
        let certs = std::fs::read_dir(env.store().join("certs"))
            .unwrap()
            .count();
        assert_eq!(
            certs, 301,
            "abort before step {at}: unregistered files left"
        );
    }
    assert!(aborted >= 4, "only {aborted} applies were aborted");
}

/// A new client's files are written in place (nothing names them until the registry commits),
/// so a crash mid-write can leave them torn. The next apply replaces what it finds: every
/// registered client's bundle is whole and holds its registered certificate.
#[test]
fn files_a_crash_tore_before_the_commit_are_replaced_by_the_next_apply() {
    let files_in = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    for at in 1.. {
        let env = env();
        env.config(&format!("{SERVER}{V1}"));
        let run = env.run_with(
            &["apply", "--yes"],
            &[("RAVENCERT_FAULT_AT", &at.to_string())],
        );
        assert_ne!(run.code, 0, "the apply ended before any bundle was written");
        assert!(run.stderr.contains("fault injection"), "{}", run.stderr);
        let store = env.store();
        let bundle_files: Vec<_> = files_in(&store.join("issued"))
            .iter()
            .filter(|d| !d.file_name().unwrap().to_string_lossy().starts_with('.'))
            .flat_map(|d| files_in(d))
            .collect();
        if bundle_files.is_empty() {
            continue;
        }
        // Tear every file a client's writes left, as a crash mid-write would: half its bytes.
        let certs = files_in(&store.join("certs"));
        let keys = files_in(&store.join("keys"));
        for f in bundle_files.iter().chain(&certs).chain(&keys) {
            let bytes = std::fs::read(f).unwrap();
            std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
        }
        let context = format!("files torn by an abort before step {at}");
        assert_recovers(&env, &context);
        let registered = env.registered();
        assert_eq!(registered.len(), 4, "{context}: {registered:?}");
        for (key, thumbprint) in &registered {
            let dir = store.join("issued").join(key);
            let crt = dir.join(format!("{key}.crt"));
            assert_eq!(
                common::openssl_thumbprint(&crt),
                *thumbprint,
                "{context}: {key}"
            );
            let password = if key == "app" {
                "crash-test-secret"
            } else {
                ""
            };
            common::openssl::pkcs12(&dir.join(format!("{key}.pfx")), password, &["-noout"])
                .success();
        }
        return;
    }
}

/// A bundle an interrupted apply left staged (`issued/.KEY.new`, with no folder in issued/, as
/// a crash between a staged bundle's commit and its move leaves it) is never taken for the one
/// a later apply issues: when the client is issued again, its new certificate's bundle ends in
/// issued/KEY and the stale one is removed.
#[test]
fn a_stale_staged_bundle_is_never_moved_over_a_newly_issued_one() {
    let env = Env::new();
    let config = |key: &str| {
        format!(
            "{SERVER}[clients.a]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\nkey = \"{key}\"\n"
        )
    };
    env.config(&config("ec-p256"));
    env.run(&["apply", "--yes"]).success();
    let store = env.store();
    std::fs::rename(store.join("issued/a"), store.join("issued/.a.new")).unwrap();
    let manifest = store.join(".manifest");
    let mut recorded = std::fs::read_to_string(&manifest).unwrap();
    recorded.push_str("issued/.a.new\n");
    std::fs::write(&manifest, recorded).unwrap();

    // Another key type: the client is issued again.
    env.config(&config("ec-p384"));
    env.run(&["apply", "--yes"]).success();
    let t = env.thumbprint("a");
    assert_eq!(
        common::openssl_thumbprint(&store.join("issued/a/a.crt")),
        t,
        "issued/a holds another certificate than the registered one"
    );
    assert!(
        !store.join("issued/.a.new").exists(),
        "the stale bundle is left"
    );
    env.run(&["plan", "--detailed-exitcode"]).success();
}

/// A write-back error (the disk refused a write) that an early flush during the issuing was told
/// of, while the commit's own flush hears nothing (as when it goes through a folder opened after
/// the error was told): the apply must still refuse to commit a registry naming files the disk
/// may not hold. Nothing is registered, and the next apply converges.
#[test]
fn a_write_back_error_an_early_flush_met_stops_the_commit() {
    let env = env();
    env.config(&format!("{SERVER}{V1}"));
    let run = env.run_with(
        &["apply", "--yes"],
        &[
            ("RAVENCERT_TEST_FLUSH_EVERY", "1"),
            ("RAVENCERT_FAULT_EARLY_FLUSH", "1"),
        ],
    );
    assert_eq!(run.code, 1, "the apply committed:\n{}", run.stdout);
    assert!(
        run.stderr.contains("os error 5"),
        "the error is not told:\n{}",
        run.stderr
    );
    assert!(
        !env.store().join("registry.toml").exists(),
        "a registry was committed"
    );
    assert_recovers(&env, "after an early flush failed");
    assert_eq!(env.registered().len(), 4);
}

/// A thread the system refuses (a limit on processes) is done without, whichever it is: the
/// store read ahead, the early flusher, an issuing thread, the commit's flush, the finish's
/// moves. The plan and the apply work on the threads they are given, or on their own, and
/// never panic.
#[test]
fn plan_and_apply_go_on_with_the_threads_the_system_gives() {
    for given in 0..=7 {
        let given = given.to_string();
        let env = env();
        env.config(&format!("{SERVER}{V1}"));
        let limited = [("RAVENCERT_JOBS", "8"), ("RAVENCERT_TEST_THREADS", &given)];
        env.cmd(&["plan"]).envs(&limited).run().success();
        env.cmd(&["apply", "--yes"]).envs(&limited).run().success();
        assert_eq!(env.registered().len(), 4, "{given} threads given");
        env.cmd(&["plan", "--detailed-exitcode"])
            .envs(&limited)
            .run()
            .success();
        assert_recovers(&env, &format!("{given} threads given"));
    }
}

/// A panic in one issuing thread (a bug) stops the others before it surfaces: they do not make
/// and write every client left. Nothing is registered, and the next apply converges.
#[test]
fn a_panic_while_issuing_stops_every_thread() {
    let env = env();
    let mut config = SERVER.to_string();
    for i in 0..400 {
        config.push_str(&format!("\n[clients.c{i:03}]\nclearance = \"ValidUser\"\n"));
    }
    env.config(&config);
    let run = env
        .cmd(&["apply", "--yes"])
        .envs(&[
            ("RAVENCERT_JOBS", "2"),
            ("RAVENCERT_TEST_PANIC_ISSUING", "20"),
        ])
        .run();
    assert_ne!(run.code, 0, "the apply went on:\n{}", run.stdout);
    assert!(run.stderr.contains("internal error"), "{}", run.stderr);
    assert!(
        !env.store().join("registry.toml").exists(),
        "a registry was committed"
    );
    let certs = std::fs::read_dir(env.store().join("certs"))
        .unwrap()
        .count();
    assert!(
        certs < 200,
        "{certs} certificate files: the other thread went on issuing"
    );
    assert_recovers(&env, "after a panic while issuing");
    assert_eq!(env.registered().len(), 400);
}
