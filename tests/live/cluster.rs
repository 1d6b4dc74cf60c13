//! The cluster target (docs/contract.md §7) end to end: the ravencert binary reconciles a real
//! RavenDB 4.1 server's registered certificates with its store. Each test runs its own server (they
//! change registrations), started with the store's own server certificate and admin client.

use crate::common;

use crate::common::ravendb::{ClientCert, Pin, RavenServer};
use crate::common::{Env, Run};
use serde_json::Value;
use std::path::PathBuf;

/// The store's server and admin, and the clients every test starts with.
fn base() -> String {
    let server = common::ravendb::localhost_server("node/cluster.pfx");
    format!(
        r#"version = 1
[store]
path = "store"
max_deletions = 3

{server}
[defaults]
key = "ec-p256"

[clients.admin]
name = "ravencert admin"
clearance = "ClusterAdmin"
"#
    )
}

const CLIENTS: &str = r#"
[clients.orders]
name = "Orders App"
clearance = "ValidUser"
databases = { Orders = "ReadWrite", Invoices = "Admin" }

[clients.ops]
name = "Ops Team"
clearance = "Operator"
"#;

/// A store and a RavenDB server that trusts its admin client.
struct Fixture {
    env: Env,
    server: RavenServer,
    log: PathBuf,
}

impl Fixture {
    /// `watch --plan-only --listen 127.0.0.1:0` on the fixture's store: a daemon whose
    /// `/metrics`, `/healthz` and page show the cluster as it finds it, changing nothing.
    fn listening_watch(&self) -> common::Daemon {
        self.env
            .cmd(&[
                "watch",
                "--plan-only",
                "--interval",
                "10s",
                "--listen",
                "127.0.0.1:0",
            ])
            .spawn("watch")
    }

    /// Bootstraps a node as an admin would: issues the store offline (server certificate
    /// installed as a legacy .pfx, admin client), starts RavenDB with the `ravencert settings`
    /// fragment, then declares `[cluster]` at it with `clients` and `cluster_extra` (more
    /// `[cluster]` keys).
    fn start(clients: &str, cluster_extra: &str) -> Fixture {
        let env = Env::new();
        env.config(&format!(
            "{}\n[cluster]\nurls = [\"https://127.0.0.1:1\"]\nadmin = \"admin\"\n",
            base()
        ));
        env.run(&["apply", "--yes", "--offline"]).success();
        let settings = common::node_settings(&env);
        let server_thumb = env.server_thumbprint();
        let store = env.store();
        let server_pem = store.join("certs").join(format!("{server_thumb}.pem"));
        let dir = store.join("issued").join("admin");
        // The Studio's side (curl) keeps its own copies: the store may re-issue both.
        let copy = |from: PathBuf, to: &str| {
            std::fs::copy(from, env.path(to)).unwrap();
            env.path(to)
        };
        let admin = ClientCert {
            cert: copy(dir.join("admin.crt"), "node/admin.crt"),
            key: copy(dir.join("admin.key"), "node/admin.key"),
        };
        let pin = Pin::localhost(copy(server_pem, "node/server.pem"));
        assert_eq!(settings.admin_thumbprint, env.thumbprint("admin"));
        let server = RavenServer::start_with_settings(&settings, &admin, &pin);
        let log = env.path("requests.log");
        let f = Fixture { env, server, log };
        f.declare(clients, cluster_extra);
        f
    }

    /// certs.toml: the base, `clients`, and `[cluster]` at this server with `extra` keys.
    fn declare(&self, clients: &str, extra: &str) {
        self.env.config(&format!(
            "{}{clients}\n[cluster]\nurls = [\"{}\"]\nadmin = \"admin\"\ntimeout = \"20s\"\n{extra}",
            base(),
            self.server.url()
        ));
    }

    /// `ravencert ARGS`, recording every request body in the log file.
    fn run(&self, args: &[&str]) -> Run {
        self.env.run_with(
            args,
            &[("RAVENCERT_REQUEST_LOG", self.log.to_str().unwrap())],
        )
    }

    /// The requests sent so far (one line each: METHOD PATH BODY); clears the log.
    fn take_requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_string).collect()
    }

    /// The cluster's registrations, as an admin reads them (curl, not ravencert).
    fn registrations(&self) -> Vec<Value> {
        let (status, body) =
            self.server
                .curl_json("GET", "/admin/certificates?secondary=true", None);
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["Results"].as_array().unwrap().clone()
    }

    fn registration(&self, thumbprint: &str) -> Option<Value> {
        self.registrations()
            .into_iter()
            .find(|r| r["Thumbprint"].as_str() == Some(thumbprint))
    }

    fn server_thumbprint(&self) -> String {
        let s = self
            .run(&["status", "--json", "--offline"])
            .success()
            .json();
        s["server"][0]["thumbprint"].as_str().unwrap().to_string()
    }

    fn thumbprint(&self, key: &str) -> String {
        let s = self
            .run(&["status", "--json", "--offline"])
            .success()
            .json();
        s["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key && c["retiring_after"].is_null())
            .unwrap_or_else(|| panic!("{key} not in the store: {s}"))["thumbprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A certificate registered by hand (PUT, as the Studio's upload does): a fresh self-signed
    /// one named `name` with `perms` (JSON). Returns its thumbprint.
    fn hand_upload(&self, name: &str, perms: &str) -> String {
        let file = format!("hand-{}.pem", name.replace(' ', "-"));
        let key = format!("hand-{}.key", name.replace(' ', "-"));
        let thumbprint = common::self_signed(self.env.dir.path(), &file, &key, name);
        let pem = std::fs::read_to_string(self.env.path(&file)).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let body = format!(
            r#"{{"Name":"{name}","Certificate":"{b64}","SecurityClearance":"ValidUser","Permissions":{perms}}}"#
        );
        let (status, answer) = self
            .server
            .curl_json("PUT", "/admin/certificates", Some(&body));
        assert!((200..300).contains(&status), "{status} {answer}");
        thumbprint
    }

    /// An edit as the Studio makes it (POST .../edit with the admin certificate).
    fn studio_edit(&self, thumbprint: &str, name: &str, clearance: &str, perms: &str) {
        let body = format!(
            r#"{{"Thumbprint":"{thumbprint}","Name":"{name}","SecurityClearance":"{clearance}","Permissions":{perms}}}"#
        );
        let (status, answer) =
            self.server
                .curl_json("POST", "/admin/certificates/edit", Some(&body));
        assert!((200..300).contains(&status), "{status} {answer}");
    }
}

fn changes(plan: &Value, target: &str) -> Vec<Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == target)
        .cloned()
        .collect()
}

fn perms(r: &Value) -> Value {
    r["Permissions"].clone()
}

/// A partner's certificate and a collection of two (a PEM bundle), uploaded.
const UPLOADS: &str = r#"
[clients.partner]
name = "Partner"
clearance = "ValidUser"
databases = { Orders = "ReadWrite" }
upload = "trust/partner.pem"

[clients.bundle]
name = "Partner Bundle"
clearance = "ValidUser"
databases = { Invoices = "Admin" }
upload = "trust/bundle.pem"
"#;

/// Writes the files UPLOADS names; returns the thumbprints (partner, bundle primary, secondary).
fn upload_files(env: &Env) -> (String, String, String) {
    let dir = env.dir.path();
    let partner = common::self_signed(dir, "trust/partner.pem", "trust/partner.key", "partner");
    let first = common::self_signed(dir, "trust/leaf1.pem", "trust/leaf1.key", "leaf one");
    let second = common::self_signed(dir, "trust/leaf2.pem", "trust/leaf2.key", "leaf two");
    let bundle = std::fs::read_to_string(env.path("trust/leaf1.pem")).unwrap()
        + &std::fs::read_to_string(env.path("trust/leaf2.pem")).unwrap();
    env.write("trust/bundle.pem", bundle);
    (partner, first, second)
}

/// Every request body holds public material only: no PEM key block, and none of the store's
/// private keys (server, clients, bundles) in base64.
fn assert_public_only(f: &Fixture, sent: &[String]) {
    let mut keys = Vec::new();
    for dir in ["keys", "server"] {
        for entry in std::fs::read_dir(f.env.store().join(dir)).unwrap() {
            let pem = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            keys.push(b64);
        }
    }
    assert!(keys.len() >= 3, "the store's keys: {keys:?}");
    for line in sent {
        assert!(!line.contains("PRIVATE KEY"), "{line}");
        for k in &keys {
            assert!(!line.contains(k.as_str()), "a private key was sent: {line}");
            assert!(!line.contains(&k[..64]), "a private key was sent: {line}");
        }
    }
}

#[test]
fn apply_registers_every_declared_client_and_a_second_plan_sends_one_request() {
    let f = Fixture::start(&format!("{CLIENTS}{UPLOADS}"), "");
    let (partner, first, second) = upload_files(&f.env);
    let plan = f.run(&["plan", "--json"]).success().json();
    let registers = changes(&plan, "cluster");
    // orders and ops; the admin is a well-known admin, but ravencert registers it by name too.
    let keys: Vec<&str> = registers
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    for key in ["admin", "ops", "orders", "partner", "bundle"] {
        assert!(keys.contains(&key), "{key} is registered: {plan}");
    }
    assert!(
        registers.iter().all(|c| c["action"] == "register"),
        "{plan}"
    );
    assert_eq!(plan["cluster"]["server_version"], "4.1.0", "{plan}");
    assert_eq!(plan["cluster"]["url"], f.server.url().as_str());
    f.take_requests();

    let out = f.run(&["apply", "--yes"]).success();
    assert!(
        out.stdout.contains("Cluster https://127.0.0.1:"),
        "{}",
        out.stdout
    );
    let orders = f
        .registration(&f.thumbprint("orders"))
        .expect("orders registered");
    assert_eq!(orders["Name"], "Orders App");
    assert_eq!(orders["SecurityClearance"], "ValidUser");
    assert_eq!(perms(&orders)["Orders"], "ReadWrite");
    assert_eq!(perms(&orders)["Invoices"], "Admin");
    let ops = f
        .registration(&f.thumbprint("ops"))
        .expect("ops registered");
    assert_eq!(ops["SecurityClearance"], "Operator");
    assert_eq!(ops["Name"], "Ops Team");
    // Uploads, both members of the collection included, with the declared access.
    let p = f
        .registration(&partner)
        .expect("the partner's upload registered");
    assert_eq!(p["Name"], "Partner");
    assert_eq!(perms(&p)["Orders"], "ReadWrite");
    for t in [&first, &second] {
        let m = f
            .registration(t)
            .expect("both members of the collection registered");
        assert_eq!(m["Name"], "Partner Bundle");
        assert_eq!(perms(&m)["Invoices"], "Admin");
    }
    // Only public certificates were sent.
    let sent = f.take_requests();
    let puts = sent
        .iter()
        .filter(|l| l.starts_with("PUT /admin/certificates"))
        .count();
    assert_eq!(
        puts, 6,
        "admin, ops, orders, partner and two bundle members: {sent:?}"
    );
    assert_public_only(&f, &sent);

    // Converged: an empty plan, one request.
    let again = f.run(&["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    let again = again.json();
    assert!(changes(&again, "cluster").is_empty(), "{again}");
    let sent = f.take_requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with("GET /admin/certificates?secondary=true"),
        "{sent:?}"
    );
    let text = f.run(&["plan"]).success().stdout;
    assert!(
        text.contains("No changes. The cluster's registrations match the store."),
        "{text}"
    );
}

#[test]
fn an_edit_in_certs_toml_edits_the_registration_in_place_and_flags_escalation() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let orders = f.thumbprint("orders");
    // Wider access for orders: a new database with Admin.
    let wider = CLIENTS
        .replace("name = \"Orders App\"", "name = \"Orders Service\"")
        .replace(
            "{ Orders = \"ReadWrite\", Invoices = \"Admin\" }",
            "{ Orders = \"Admin\", Invoices = \"Admin\", Billing = \"ReadWrite\" }",
        );
    f.declare(&wider, "");
    let plan = f.run(&["plan", "--json"]).success().json();
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 1, "{plan}");
    assert_eq!(cluster[0]["action"], "edit");
    assert_eq!(cluster[0]["key"], "orders");
    assert_eq!(cluster[0]["thumbprint"], orders.as_str());
    assert_eq!(cluster[0]["escalation"], true, "{plan}");
    assert_eq!(plan["cluster"]["edit"], 1);
    let text = f.run(&["plan"]).success().stdout;
    // Named by key, then name, as a register and an unregister are.
    assert!(
        text.contains("~ edit orders ('Orders Service')  [ESCALATION]"),
        "{text}"
    );
    assert!(
        text.contains(": 0 to register, 1 to edit, 0 to unregister."),
        "{text}"
    );
    let md = f.run(&["plan", "--markdown"]).success().stdout;
    assert!(md.contains("cluster change widens access"), "{md}");

    f.run(&["apply", "--yes"]).success();
    assert_eq!(
        f.thumbprint("orders"),
        orders,
        "an edit keeps the certificate"
    );
    let r = f.registration(&orders).unwrap();
    assert_eq!(r["Name"], "Orders Service");
    assert_eq!(perms(&r)["Orders"], "Admin");
    assert_eq!(perms(&r)["Billing"], "ReadWrite");
    assert!(changes(&f.run(&["plan", "--json"]).success().json(), "cluster").is_empty());
}

#[test]
fn a_reissue_registers_the_new_certificate_before_unregistering_the_old() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let old = f.thumbprint("orders");
    f.take_requests();
    let out = f.run(&["apply", "--yes", "--replace", "orders"]).success();
    let new = f.thumbprint("orders");
    assert_ne!(old, new);
    let sent = f.take_requests();
    let put = sent
        .iter()
        .position(|l| l.starts_with("PUT ") && l.contains("Orders App"))
        .unwrap_or_else(|| {
            panic!(
                "no register of the new certificate: {sent:?}\n{}",
                out.stdout
            )
        });
    let delete = sent
        .iter()
        .position(|l| l.starts_with("DELETE ") && l.contains(&old))
        .unwrap_or_else(|| panic!("no unregister of the old certificate: {sent:?}"));
    assert!(put < delete, "the new one is registered first: {sent:?}");
    assert!(f.registration(&new).is_some());
    assert!(f.registration(&old).is_none());
    assert!(out.stdout.contains("unregister"), "{}", out.stdout);

    // With an overlap, the old certificate stays registered until its overlap ends.
    f.declare(
        &CLIENTS.replace(
            "clearance = \"ValidUser\"",
            "clearance = \"ValidUser\"\noverlap = \"7d\"",
        ),
        "",
    );
    f.run(&["apply", "--yes", "--replace", "orders"]).success();
    let newer = f.thumbprint("orders");
    assert!(f.registration(&newer).is_some());
    assert!(f.registration(&new).is_some(), "kept through the overlap");
    assert!(changes(&f.run(&["plan", "--json"]).success().json(), "cluster").is_empty());
}

#[test]
fn a_change_in_the_studio_is_reported_and_set_back_by_apply_and_by_watch() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let orders = f.thumbprint("orders");
    f.studio_edit(&orders, "Orders App", "ValidUser", r#"{"Orders":"Admin"}"#);
    let plan = f.run(&["plan", "--json"]).success().json();
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 1, "{plan}");
    assert_eq!(cluster[0]["action"], "edit");
    assert_eq!(
        cluster[0]["reason"],
        "changed on the cluster outside ravencert"
    );
    f.run(&["apply", "--yes"]).success();
    let r = f.registration(&orders).unwrap();
    assert_eq!(perms(&r)["Orders"], "ReadWrite");
    assert_eq!(perms(&r)["Invoices"], "Admin");

    // watch: re-checks every interval and restores a registration removed in the Studio.
    let mut d = f
        .env
        .cmd(&["watch", "--interval", "10s", "--listen", "127.0.0.1:0"])
        .spawn("watch");
    let addr = d.listening();
    d.wait_log("cluster");
    let (status, body) = f.server.curl_json(
        "DELETE",
        &format!("/admin/certificates?thumbprint={orders}"),
        None,
    );
    assert!((200..300).contains(&status), "{status} {body}");
    assert!(f.registration(&orders).is_none());
    common::daemon::wait_until(
        "watch to register orders again",
        || d.context(),
        || f.registration(&orders).is_some(),
    );
    // The log line follows the request that registered it again.
    d.wait_log("removed from the cluster outside ravencert");
    // A Studio edit repaired by watch: the log says what the Studio set and what it is set
    // back to.
    f.studio_edit(
        &orders,
        "Orders (Studio)",
        "ValidUser",
        r#"{"Orders":"Admin","Invoices":"Admin"}"#,
    );
    common::daemon::wait_until(
        "watch to set the Studio's edit back",
        || d.context(),
        || {
            f.registration(&orders)
                .is_some_and(|r| r["Name"] == "Orders App" && perms(&r)["Orders"] == "ReadWrite")
        },
    );
    d.wait_log("Orders: Admin -> ReadWrite");
    let line = d
        .log()
        .lines()
        .find(|l| l.contains("Orders: Admin -> ReadWrite"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("~ cluster edit orders ('Orders App')"),
        "{line}"
    );
    assert!(
        line.contains("changed on the cluster outside ravencert"),
        "{line}"
    );
    assert!(
        line.contains("name Orders (Studio) -> Orders App"),
        "{line}"
    );
    assert!(!line.contains("Invoices"), "{line}");
    // The listener reports the cluster in sync, on /metrics and per row on the page.
    common::daemon::wait_until(
        "/metrics to show the cluster in sync",
        || d.context(),
        || {
            common::daemon::http_get(addr, "/metrics").is_some_and(|(_, m)| {
                m.contains("ravencert_cluster_in_sync 1")
                    && m.contains("ravencert_cluster_drift_certificates 0")
            })
        },
    );
    let (_, page) = common::daemon::http_get(addr, "/").expect("the page");
    let rows = page.matches("<tr class=\"cert").count();
    // Every client row (the server's has no cluster cell) says in sync.
    assert_eq!(page.matches(">in sync<").count(), rows - 1, "{page}");
    assert!(d.running());
}

#[test]
fn the_listener_reports_cluster_drift_and_forgets_the_cluster_after_a_failure() {
    let mut f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let orders = f.thumbprint("orders");
    // A Studio edit, and a hand upload that stays (prune is off): two certificates drift.
    f.studio_edit(&orders, "Orders App", "ValidUser", r#"{"Orders":"Admin"}"#);
    let stranger = f.hand_upload("Stranger", r#"{"Orders":"ReadWrite"}"#);
    let d = f.listening_watch();
    let addr = d.listening();
    let metrics = || common::daemon::http_get(addr, "/metrics").map(|(_, m)| m);
    common::daemon::wait_until(
        "/metrics to show the drift",
        || d.context(),
        || {
            metrics().is_some_and(|m| {
                m.contains("ravencert_cluster_in_sync 0")
                    && m.contains("ravencert_cluster_drift_certificates 2")
            })
        },
    );
    let (_, page) = common::daemon::http_get(addr, "/").expect("the page");
    assert_eq!(page.matches(">differs<").count(), 1, "{page}");
    assert!(
        page.contains(&stranger),
        "the extra registration is listed: {page}"
    );
    assert!(page.contains("Stranger"), "{page}");
    drop(d);

    // An apply that fails on the cluster: its state is no longer known, so no series claims it.
    let mut d = f
        .env
        .cmd(&["watch", "--interval", "10s", "--listen", "127.0.0.1:0"])
        .spawn("watch");
    let addr = d.listening();
    let metrics = || common::daemon::http_get(addr, "/metrics").map(|(_, m)| m);
    common::daemon::wait_until(
        "the first apply",
        || d.context(),
        || metrics().is_some_and(|m| m.contains("ravencert_last_apply_success 1")),
    );
    // The apply restored the edit; the stranger stays (prune is off) and still counts.
    assert!(
        metrics().is_some_and(|m| m.contains("ravencert_cluster_drift_certificates 1")),
        "{:?}",
        metrics()
    );
    f.server.stop();
    let path = f.env.path("certs.toml");
    let text = std::fs::read_to_string(&path).expect("certs.toml");
    d.save_until(
        "the failing apply",
        || common::save_by_rename(&path, &text.replace("Orders App", "Orders App 2")),
        || metrics().is_some_and(|m| m.contains("ravencert_last_apply_success 0")),
    );
    let m = metrics().expect("metrics");
    assert!(!m.contains("ravencert_cluster_in_sync"), "{m}");
    assert!(d.running());
}

#[test]
fn a_hand_upload_is_a_warning_and_prune_unregisters_it_within_max_deletions() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    // Uploaded by hand under the name of a declared client, and a stranger.
    let mut hand = Vec::new();
    for name in [
        "Orders App",
        "Stranger",
        "Stranger 2",
        "Stranger 3",
        "Stranger 4",
    ] {
        hand.push(f.hand_upload(name, r#"{"Orders":"ReadWrite"}"#));
    }
    let plan = f.run(&["plan", "--json"]).success().json();
    assert!(changes(&plan, "cluster").is_empty(), "prune is off: {plan}");
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains(&hand[0]) && warnings.contains(&f.thumbprint("orders")),
        "{warnings}"
    );
    // Kept access is not "No changes": every stranger is listed with its clearance, counted
    // in the summary, and --detailed-exitcode says 2.
    let kept = plan["cluster"]["kept"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(kept.len(), 5, "{plan:#}");
    assert!(
        kept.iter().all(|k| k["clearance"] == "ValidUser"),
        "{plan:#}"
    );
    let text = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(text.code, 2, "{}", text.shown());
    assert!(
        text.stdout
            .contains("5 registrations the store does not hold kept: still have access."),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("'Stranger 2' (ValidUser)"),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains("No changes. The cluster"),
        "{}",
        text.stdout
    );

    // prune: five unregisters exceed max_deletions = 3.
    f.declare(CLIENTS, "prune = true\n");
    let refused = f.run(&["apply", "--yes"]).failure();
    assert!(
        refused.stderr.contains("max_deletions"),
        "{}",
        refused.shown()
    );
    assert_eq!(f.registrations().len(), 4 + 5, "nothing unregistered");
    // Within the limit: two strangers removed by hand first.
    for t in &hand[3..] {
        f.server.curl_json(
            "DELETE",
            &format!("/admin/certificates?thumbprint={t}"),
            None,
        );
    }
    let out = f.run(&["apply", "--yes"]).success();
    assert!(out.stdout.contains("3 unregistered"), "{}", out.stdout);
    let left: Vec<String> = f
        .registrations()
        .iter()
        .map(|r| r["Thumbprint"].as_str().unwrap().to_string())
        .collect();
    for t in &hand[..3] {
        assert!(!left.contains(t), "{t} pruned");
    }
    // The server's own and the admin certificate are never touched.
    assert!(left.contains(&f.server_thumbprint()), "{left:?}");
    assert!(left.contains(&f.thumbprint("admin")), "{left:?}");
    assert!(changes(&f.run(&["plan", "--json"]).success().json(), "cluster").is_empty());
}

#[test]
fn read_access_is_refused_against_41_before_anything_changes() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let with_read = format!("{CLIENTS}\n[clients.reports]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n");
    f.declare(&with_read, "");
    let registered = f.registrations().len();
    // Refused before any change: the folder stays byte for byte (the lock file names the last
    // holder), and the cluster too.
    f.env
        .cmd(&["apply", "--yes"])
        .refused_except(&["Read", "4.1.0", "clients.reports", "5.2"], |p, _, _| {
            p.ends_with(".lock")
        });
    assert_eq!(f.registrations().len(), registered);
    let plan = f.run(&["plan"]).failure();
    assert!(plan.stderr.contains("5.2"), "{}", plan.shown());
}

/// `apply --yes` (with the variables `extra`) paused after its first cluster request by the test
/// barrier in `barrier`; returns it and the flag whose removal lets it go on.
fn apply_paused_after_first_request(
    f: &Fixture,
    barrier: &std::path::Path,
    extra: &[(&str, &str)],
) -> (common::daemon::Daemon, PathBuf) {
    let apply = f
        .env
        .cmd(&["apply", "--yes"])
        .env("RAVENCERT_TEST_CLUSTER_BARRIER", barrier.to_str().unwrap())
        .envs(extra)
        .spawn("apply");
    let first = barrier.join("1");
    common::daemon::wait_until(
        "the first cluster request",
        || apply.context(),
        || first.exists(),
    );
    (apply, first)
}

#[test]
fn a_server_stopped_mid_apply_leaves_the_store_committed_and_a_rerun_converges() {
    let mut f = Fixture::start(CLIENTS, "");
    let barrier = tempfile::tempdir().unwrap();
    let log = f.log.clone();
    let (mut apply, first) = apply_paused_after_first_request(
        &f,
        barrier.path(),
        &[("RAVENCERT_REQUEST_LOG", log.to_str().unwrap())],
    );
    f.server.stop();
    std::fs::remove_file(&first).unwrap();
    let exit = apply.wait_exit();
    let err = apply.log();
    assert_eq!(exit.code(), Some(1), "{err}");
    assert!(err.contains("done: register"), "{err}");
    assert!(err.contains("not done: "), "{err}");
    assert!(
        err.contains("store is applied and stays committed"),
        "{err}"
    );
    // The store is committed: every client is issued.
    let status = f.run(&["status", "--json", "--offline"]).success().json();
    assert_eq!(status["certificates"].as_array().unwrap().len(), 3);

    f.server.restart();
    let plan = f.run(&["plan", "--json"]).success().json();
    assert_eq!(changes(&plan, "store").len(), 0);
    assert_eq!(
        changes(&plan, "cluster").len(),
        2,
        "only what remains: {plan}"
    );
    f.run(&["apply", "--yes"]).success();
    assert!(f.registration(&f.thumbprint("orders")).is_some());
    assert!(f.registration(&f.thumbprint("ops")).is_some());
}

#[test]
fn a_certificate_file_swapped_mid_apply_is_not_registered_under_the_clients_name() {
    // Between two registrations, orders' and ops' certificate files are made to hold the admin
    // certificate. Registering what the file holds would PUT the admin certificate with a
    // client's name and clearance: RavenDB overwrites the registration of the same certificate,
    // so the cluster's own admin would be demoted and ravencert locked out. Only the
    // certificate the registry names is ever sent; the failure is the store's, not the node's.
    let f = Fixture::start(CLIENTS, "");
    let barrier = tempfile::tempdir().unwrap();
    let (mut apply, first) = apply_paused_after_first_request(&f, barrier.path(), &[]);
    let certs = f.env.store().join("certs");
    let admin = f.thumbprint("admin");
    let swapped = [f.thumbprint("orders"), f.thumbprint("ops")];
    let admin_pem = std::fs::read(certs.join(format!("{admin}.pem"))).unwrap();
    for t in &swapped {
        std::fs::write(certs.join(format!("{t}.pem")), &admin_pem).unwrap();
    }
    std::fs::remove_file(&first).unwrap();
    // A second request done would mean the swapped file was sent.
    let second = barrier.path().join("2");
    let context = apply.context();
    common::daemon::wait_until(
        "the apply's end",
        || context.clone(),
        || second.exists() || !apply.running(),
    );
    assert!(!second.exists(), "the swapped certificate was registered");
    let exit = apply.wait_exit();
    let err = apply.log();
    assert_eq!(exit.code(), Some(1), "{err}");
    assert!(
        err.contains("not sent: the certificate to register cannot be read from the store"),
        "{err}"
    );
    assert!(err.contains(&format!("holds certificate {admin}")), "{err}");
    assert!(
        !err.contains("unexpected answer"),
        "the node is not at fault: {err}"
    );
    let registered = f.registration(&admin).expect("the admin stays registered");
    assert_eq!(
        registered["SecurityClearance"], "ClusterAdmin",
        "{registered}"
    );
}

#[test]
fn connection_failures_name_the_node_and_what_failed() {
    let f = Fixture::start(CLIENTS, "");
    // Unreachable first url, second up: works, with a logged line for the first.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    f.env.config(&format!(
        "{}{CLIENTS}\n[cluster]\nurls = [\"{dead}\", \"{}\"]\nadmin = \"admin\"\ntimeout = \"5s\"\n",
        base(),
        f.server.url()
    ));
    let out = f.run(&["plan", "--json"]).success();
    assert_eq!(out.json()["cluster"]["url"], f.server.url().as_str());
    assert!(
        out.json()["warnings"].to_string().contains(&dead),
        "the skipped node is logged: {}",
        out.shown()
    );

    // Admin certificate not registered: a 403, explained.
    let stranger = format!("{CLIENTS}\n[clients.admin2]\nclearance = \"ClusterAdmin\"\n");
    f.declare(&stranger, "");
    f.run(&["apply", "--yes", "--offline"]).success();
    f.env.config(&format!(
        "{}{stranger}\n[cluster]\nurls = [\"{}\"]\nadmin = \"admin2\"\n",
        base(),
        f.server.url()
    ));
    let denied = f.run(&["plan"]).failure();
    assert!(denied.stderr.contains("HTTP 403"), "{}", denied.shown());
    assert!(
        denied.stderr.contains("not registered in this cluster"),
        "{}",
        denied.shown()
    );

    // The store's server certificate re-issued but not yet on the node: pin mismatch.
    f.declare(CLIENTS, "");
    let old_server = f.server_thumbprint();
    f.run(&["apply", "--yes", "--offline", "--replace", "server"])
        .success();
    let new_server = f.server_thumbprint();
    // Refused naming both thumbprints, before any change (the lock file names its holder).
    f.env
        .cmd(&["apply", "--yes"])
        .refused_except(&[&old_server, &new_server, "pin"], |p, _, _| {
            p.ends_with(".lock")
        });
}

#[test]
fn status_shows_how_the_cluster_holds_each_certificate() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes", "--offline"]).success();
    let orders = f.thumbprint("orders");
    let ops = f.thumbprint("ops");
    // Register orders with other permissions, and a stranger, by hand.
    let status = f.run(&["status", "--json"]).success().json();
    let state = |s: &Value, t: &str| {
        s["cluster"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["thumbprint"] == t)
            .map(|c| c["state"].as_str().unwrap().to_string())
    };
    assert_eq!(
        state(&status, &orders).as_deref(),
        Some("missing"),
        "{status}"
    );
    assert!(status["cluster"]["checked_at"].is_string());
    f.run(&["apply", "--yes"]).success();
    f.studio_edit(&orders, "Orders App", "ValidUser", r#"{"Orders":"Admin"}"#);
    let stranger = f.hand_upload("Stranger", "{}");
    let status = f.run(&["status", "--json"]).success().json();
    assert_eq!(state(&status, &orders).as_deref(), Some("differs"));
    assert_eq!(state(&status, &ops).as_deref(), Some("in sync"));
    assert_eq!(state(&status, &stranger).as_deref(), Some("extra"));
    let text = f.run(&["status"]).success().stdout;
    assert!(text.contains("Cluster"), "{text}");
    assert!(
        text.contains("differs") && text.contains("in sync"),
        "{text}"
    );
    assert!(text.contains(&stranger), "{text}");
    // --offline reads only the store.
    let offline = f.run(&["status", "--json", "--offline"]).success().json();
    assert!(offline.get("cluster").is_none());
}

#[test]
fn a_reissued_server_or_admin_certificate_keeps_ravencert_connected() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    // The server certificate is re-issued (a renewal); the node serves the old one until it
    // restarts with the new install file: ravencert still connects, and says so.
    let old_server = f.server_thumbprint();
    f.run(&["apply", "--yes", "--replace", "server"]).success();
    let new_server = f.server_thumbprint();
    assert_ne!(old_server, new_server);
    let plan = f.run(&["plan", "--json"]).success().json();
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("still serves server certificate") && warnings.contains(&old_server),
        "{plan}"
    );
    assert!(changes(&plan, "cluster").is_empty(), "{plan}");

    // The admin client is re-issued: its new certificate is registered first, over the
    // connection the old one opened, so the next run authenticates with the new one.
    let old_admin = f.thumbprint("admin");
    f.take_requests();
    f.run(&["apply", "--yes", "--replace", "admin"]).success();
    let new_admin = f.thumbprint("admin");
    assert_ne!(old_admin, new_admin);
    let sent = f.take_requests();
    let first_put = sent.iter().find(|l| l.starts_with("PUT ")).unwrap();
    assert!(first_put.contains("ravencert admin"), "{sent:?}");
    let admin = f
        .registration(&new_admin)
        .expect("the new admin registered");
    assert_eq!(admin["SecurityClearance"], "ClusterAdmin");
    f.run(&["plan", "--json"]).success();
    let sent = f.take_requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
}

/// The store's cluster state as the last apply sealed it.
fn cluster_state(f: &Fixture) -> (PathBuf, Value) {
    let path = f.env.store().join(".cluster-state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_hand_edited_cluster_state_is_refused_and_nothing_is_unregistered() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let stranger = f
        .hand_upload("Stranger", r#"{"Orders":"ReadWrite"}"#)
        .to_ascii_uppercase();
    let (path, state) = cluster_state(&f);
    // A foreign certificate written into the state as if ravencert had registered it: it
    // would be unregistered as "no longer in the store", uncounted, prune off.
    let mut foreign = state.clone();
    let set = foreign["clusters"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    let orders = set[f.thumbprint("orders").as_str()].clone();
    set[stranger.as_str()] = orders;
    // Another server certificate pinned beside the store's.
    let mut servers = state.clone();
    for list in servers["servers"].as_object_mut().unwrap().values_mut() {
        list.as_array_mut()
            .unwrap()
            .push(Value::from("AB".repeat(20)));
    }
    // Unsealed, as an older ravencert wrote it.
    let mut unsealed = state.clone();
    unsealed.as_object_mut().unwrap().remove("seal");
    let key = f.env.store().join(".cluster-state-key");
    let key_bytes = std::fs::read(&key).unwrap();
    let registered = f.registrations().len();
    for (what, edited) in [
        ("a foreign thumbprint", &foreign),
        ("servers", &servers),
        ("no seal", &unsealed),
        ("no key", &state),
    ] {
        std::fs::write(&path, serde_json::to_string_pretty(edited).unwrap()).unwrap();
        if what == "no key" {
            std::fs::remove_file(&key).unwrap();
        }
        let _ = f.take_requests();
        for args in [&["plan", "--json"][..], &["apply", "--yes"][..]] {
            f.env
                .cmd(args)
                .env("RAVENCERT_REQUEST_LOG", f.log.to_str().unwrap())
                .refused_except(
                    &[
                        ".cluster-state.json",
                        "nothing was changed",
                        "Delete the file",
                    ],
                    |p, _, _| p.ends_with(".lock"),
                );
        }
        assert_eq!(
            f.take_requests(),
            Vec::<String>::new(),
            "{what}: no request"
        );
        assert_eq!(f.registrations().len(), registered, "{what}");
        assert!(f.registration(&stranger).is_some(), "{what}: kept");
    }
    std::fs::write(&key, key_bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    // The seal covers the content, not its layout: the untouched state, compact, is used.
    f.run(&["plan", "--json"]).success();
    // The way out: delete the state. The stranger is foreign again: kept, with a warning.
    std::fs::remove_file(&path).unwrap();
    let plan = f.run(&["plan", "--json"]).success().json();
    assert!(changes(&plan, "cluster").is_empty(), "{plan}");
    f.run(&["apply", "--yes"]).success();
    assert!(f.registration(&stranger).is_some());
}

#[test]
fn the_request_log_is_private_and_never_written_through_a_link() {
    let f = Fixture::start(CLIENTS, "");
    let run = f.env.cmd(&["apply", "--yes"]).umask(0o022);
    run.env("RAVENCERT_REQUEST_LOG", f.log.to_str().unwrap())
        .run()
        .success();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&f.log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // A link where the log goes (planted in a shared folder): refused, its target untouched.
    let target = f.env.path("elsewhere.txt");
    std::fs::write(&target, "untouched\n").unwrap();
    let link = f.env.path("linked.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let refused = f.env.run_with(
        &["plan"],
        &[("RAVENCERT_REQUEST_LOG", link.to_str().unwrap())],
    );
    assert_eq!(refused.code, 1, "{}", refused.shown());
    assert!(
        refused.stderr.contains("symbolic link") && refused.stderr.contains("linked.log"),
        "{}",
        refused.shown()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
}

/// A ClusterAdmin kept for emergencies, protected.
const BREAK_GLASS: &str = r#"
[clients.break-glass]
name = "Break-glass admin"
clearance = "ClusterAdmin"
protect = true
"#;

/// certs.toml with `[store] prune = true`: what is removed from it is removed from the store,
/// and so unregistered from the cluster.
fn declare_pruned(f: &Fixture, clients: &str) {
    let base = base().replace("max_deletions = 3\n", "max_deletions = 3\nprune = true\n");
    f.env.config(&format!(
        "{base}{clients}\n[cluster]\nurls = [\"{}\"]\nadmin = \"admin\"\ntimeout = \"20s\"\n",
        f.server.url()
    ));
}

#[test]
fn a_protected_admin_is_never_unregistered_in_one_step() {
    let f = Fixture::start(CLIENTS, "");
    declare_pruned(&f, &format!("{CLIENTS}{BREAK_GLASS}"));
    f.run(&["apply", "--yes"]).success();
    let thumb = f.thumbprint("break-glass");
    assert!(f.registration(&thumb).is_some());
    let registered = f.registrations().len();
    let _ = f.take_requests();

    // Its table removed, or renamed, with prune on: refused before anything is sent.
    let renamed = BREAK_GLASS.replace("clients.break-glass", "clients.emergency");
    for (what, clients) in [("removed", ""), ("renamed", renamed.as_str())] {
        declare_pruned(&f, &format!("{CLIENTS}{clients}"));
        for args in [&["plan"][..], &["apply", "--yes"][..]] {
            f.env
                .cmd(args)
                .env("RAVENCERT_REQUEST_LOG", f.log.to_str().unwrap())
                .refused(&[
                    "client 'break-glass' is protected",
                    "drop `protect` first, apply, then remove it",
                ]);
        }
        let sent = f.take_requests();
        assert!(sent.is_empty(), "{what}: nothing sent: {sent:?}");
        assert_eq!(f.registrations().len(), registered, "{what}");
        assert!(f.registration(&thumb).is_some(), "{what}: still registered");
    }

    // Step one: protect dropped. The store's record changes, the cluster's registration not.
    declare_pruned(
        &f,
        &format!("{CLIENTS}{}", BREAK_GLASS.replace("protect = true\n", "")),
    );
    f.run(&["apply", "--yes"]).success();
    let sent = f.take_requests();
    assert!(!sent.iter().any(|l| l.starts_with("DELETE ")), "{sent:?}");
    assert!(f.registration(&thumb).is_some());

    // Step two: removed, and unregistered.
    declare_pruned(&f, CLIENTS);
    f.run(&["apply", "--yes"]).success();
    let sent = f.take_requests();
    assert!(
        sent.iter()
            .any(|l| l.starts_with("DELETE ") && l.contains(&thumb)),
        "{sent:?}"
    );
    assert!(f.registration(&thumb).is_none());
    assert_eq!(f.registrations().len(), registered - 1);
}

/// `[cluster] keep` (issue 23): a known stranger survives `prune = true`, is shown as
/// `extra (kept)` with its clearance and note, and is not drift: with only kept strangers left
/// the plan is settled, `ravencert_cluster_in_sync` is 1, and `/metrics`, the page and
/// `status --json` give the same counts.
#[test]
fn a_kept_stranger_survives_prune_and_is_not_drift() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let backup = f.hand_upload("Backup Team", r#"{"Orders":"ReadWrite"}"#);
    let stranger = f.hand_upload("Stranger", "{}");
    // Named in lower case (normalized), with a note that is markup.
    let keep = format!(
        "prune = true\nkeep = [{{ thumbprint = \"{}\", note = \"the backup team's <b>\" }}]\n",
        backup.to_lowercase()
    );
    f.declare(CLIENTS, &keep);
    let plan = f.run(&["plan", "--json"]).success().json();
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 1, "{plan:#}");
    assert_eq!(cluster[0]["action"], "unregister");
    assert_eq!(cluster[0]["thumbprint"], stranger.as_str());
    // The keep itself is a settings change, flagged: prune can no longer remove it.
    let settings = changes(&plan, "settings");
    assert!(
        settings.iter().any(|c| c["escalation"] == true
            && c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("kept: never unregistered"))),
        "{plan:#}"
    );
    // Declared, so not among the registrations that need attention.
    assert!(plan["cluster"]["kept"].is_null(), "{plan:#}");
    let known = plan["cluster"]["known_strangers"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(known.len(), 1, "{plan:#}");
    assert_eq!(known[0]["thumbprint"], backup.as_str());
    assert_eq!(known[0]["clearance"], "ValidUser");
    assert_eq!(known[0]["note"], "the backup team's <b>");

    f.run(&["apply", "--yes"]).success();
    assert!(f.registration(&backup).is_some(), "kept through prune");
    assert!(f.registration(&stranger).is_none(), "pruned");
    let settled = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "{}", settled.shown());
    assert!(
        settled.stdout.contains("extra (kept)") && settled.stdout.contains(&backup),
        "{}",
        settled.stdout
    );

    // status: text and JSON.
    let status = f.run(&["status", "--json"]).success().json();
    let entries = status["cluster"]["certificates"].as_array().unwrap();
    let kept = entries
        .iter()
        .find(|c| c["thumbprint"] == backup.as_str())
        .unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(kept["state"], "extra (kept)", "{status:#}");
    assert_eq!(kept["clearance"], "ValidUser", "{status:#}");
    assert_eq!(kept["name"], "Backup Team", "{status:#}");
    assert_eq!(kept["note"], "the backup team's <b>", "{status:#}");
    assert_eq!(status["cluster"]["in_sync"], true, "{status:#}");
    assert_eq!(status["cluster"]["drift"], 0, "{status:#}");
    let of_store = entries.iter().filter(|c| c["state"] == "in sync").count();
    assert_eq!(of_store, 3, "{status:#}");
    let text = f.run(&["status"]).success().stdout;
    let line = text
        .lines()
        .find(|l| l.contains(&backup))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("extra (kept)") && line.contains("ValidUser") && line.contains("Backup Team"),
        "{text}"
    );
    assert!(
        text.contains("3 of 3 certificates in sync; drift: 0"),
        "{text}"
    );

    // The daemon: in sync, no drift, the same counts on the page and one extra series.
    let d = f.listening_watch();
    let addr = d.listening();
    let metrics = || common::daemon::http_get(addr, "/metrics").map(|(_, m)| m);
    common::daemon::wait_until(
        "/metrics to show the cluster in sync",
        || d.context(),
        || metrics().is_some_and(|m| m.contains("ravencert_cluster_in_sync 1")),
    );
    let m = metrics().expect("metrics");
    assert!(m.contains("ravencert_cluster_drift_certificates 0"), "{m}");
    let extra: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("ravencert_cluster_extra_certificate_info{"))
        .collect();
    assert_eq!(extra.len(), 1, "{m}");
    for label in [
        format!("thumbprint=\"{backup}\""),
        "clearance=\"ValidUser\"".into(),
        "kept=\"true\"".into(),
    ] {
        assert!(extra[0].contains(&label), "{label}: {m}");
    }
    let (_, page) = common::daemon::http_get(addr, "/").expect("the page");
    assert!(
        page.contains("3 of 3 certificates in sync; drift: 0"),
        "{page}"
    );
    assert!(
        page.contains(&backup) && page.contains("extra (kept)"),
        "{page}"
    );
    assert!(page.contains("the backup team&#39;s &lt;b&gt;"), "{page}");
    assert!(!page.contains("<b>"), "{page}");
}

/// A store with an admin client, issued offline, whose `[cluster]` names `url`.
fn offline_store(url: &str) -> Env {
    let env = Env::new();
    env.config(&format!(
        "{}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\n[cluster]\nurls = [\"{url}\"]\nadmin = \"admin\"\ntimeout = \"5s\"\n",
        common::SERVER
    ));
    env
}

/// A port nothing listens on (bound a moment ago and let go).
fn closed_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port())
}

/// An outage names the way out (issue 23): an unreachable cluster refuses plan and apply
/// before any change, and the error says that nothing changed and that `--offline` applies
/// the store alone. `apply --offline` says once that the cluster was not contacted and lists
/// no request it never sent.
#[test]
fn an_unreachable_cluster_says_nothing_changed_and_names_offline() {
    let url = closed_url();
    let env = offline_store(&url);
    let offline = env.run(&["apply", "--yes", "--offline"]).success();
    assert_eq!(
        offline.stdout.matches("Cluster: not contacted").count(),
        1,
        "{}",
        offline.shown()
    );
    assert!(
        !offline
            .stdout
            .lines()
            .any(|l| l.starts_with("registered ") || l.starts_with("cluster: ")),
        "{}",
        offline.shown()
    );
    assert!(
        offline.stdout.contains("stored admin: "),
        "{}",
        offline.shown()
    );

    // A new client: the plan and the apply stop at the cluster, the store untouched.
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&format!(
        "{toml}\n[clients.reader]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"ReadWrite\" }}\n"
    ));
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let run = env.cmd(args).refused_except(
            &[
                "no cluster node answered",
                &url,
                "Nothing was changed",
                "--offline",
            ],
            |p, _, _| p.ends_with(".lock"),
        );
        assert!(
            run.stderr.contains("applies the store alone"),
            "{}",
            run.shown()
        );
    }
}

/// A node still starting answers HTTP 500 without a message (RavenDB 4.1 does for about a
/// second after it starts): the error says so and to retry when RavenDB is up, nothing changed.
#[test]
fn a_node_still_starting_says_retry_when_ravendb_is_up() {
    let env = offline_store("https://127.0.0.1:1");
    env.run(&["apply", "--yes", "--offline"]).success();
    let t = env.server_thumbprint();
    let port = common::double::tls_server(
        &env.store().join(format!("certs/{t}.pem")),
        &env.store().join(format!("server/{t}.key")),
        common::double::STARTING.to_string(),
    );
    let url = format!("https://127.0.0.1:{port}");
    let toml = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&toml.replace("https://127.0.0.1:1", &url));
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        env.cmd(args).refused_except(
            &[
                &url,
                "HTTP 500",
                "retry when RavenDB is up",
                "Nothing was changed",
            ],
            |p, _, _| p.ends_with(".lock"),
        );
    }
}

/// Issue 25: a passed `until` unregisters the client on the real RavenDB 4.1 with the store's
/// deletion, without `[cluster] prune`, saying why. The certificate it registered ends at
/// `until`, as the listing's own NotAfter shows.
#[test]
fn passed_until_unregisters_on_41_without_prune() {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole second");
    let until = now + time::Duration::hours(1);
    let shown = until
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    let temp = format!(
        "\n[clients.temp]\nname = \"Temp Access\"\nclearance = \"Operator\"\nuntil = \"{shown}\"\n"
    );
    let f = Fixture::start(&format!("{CLIENTS}{temp}"), "");
    f.run(&["apply", "--yes"]).success();
    let t = f.thumbprint("temp");
    let listed = f.registration(&t).expect("temp registered");
    let not_after = listed["NotAfter"].as_str().expect("4.1 lists NotAfter");
    let listed_end = time::PrimitiveDateTime::parse(
        not_after
            .trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or_default(),
        &time::format_description::well_known::Iso8601::DEFAULT,
    )
    .expect("a date")
    .assume_utc();
    assert_eq!(
        listed_end, until,
        "the registration ends at until: {listed}"
    );

    // A minute after until (the test clock); prune is off in [cluster] and [store].
    let later = (until + time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    let at_later = [("RAVENCERT_TEST_NOW", later.as_str())];
    let plan = f
        .env
        .run_with(&["plan", "--json"], &at_later)
        .success()
        .json();
    let reason = format!("access ended {shown}");
    let store: Vec<Value> = changes(&plan, "client")
        .into_iter()
        .filter(|c| c["key"] == "temp")
        .collect();
    assert_eq!(store.len(), 1, "{plan:#}");
    assert_eq!(store[0]["action"], "delete");
    assert_eq!(store[0]["reason"], reason.as_str());
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 1, "{plan:#}");
    assert_eq!(cluster[0]["action"], "unregister");
    assert_eq!(
        cluster[0]["reason"],
        format!("{reason} (removed from the store)").as_str()
    );
    f.env.run_with(&["apply", "--yes"], &at_later).success();
    assert!(
        f.registration(&t).is_none(),
        "unregistered from the cluster"
    );
    assert!(
        f.registration(&f.thumbprint("orders")).is_some(),
        "the others stay"
    );
}

/// issue 25: RavenDB 4.1 cannot disable a registration (its listing has no `Disabled`), so a
/// client disabled in certs.toml is unregistered while disabled, not counted against
/// max_deletions, its certificate kept in the store; enabling it registers the same
/// certificate again, flagged.
#[test]
fn disabled_unregisters_on_41_and_enabling_registers_again() {
    let f = Fixture::start(CLIENTS, "");
    f.run(&["apply", "--yes"]).success();
    let (orders, ops) = (f.thumbprint("orders"), f.thumbprint("ops"));
    assert!(f.registration(&orders).is_some() && f.registration(&ops).is_some());
    // Both disabled, with max_deletions = 1: two unregisters, neither counted.
    let disabled = CLIENTS
        .replace("\"ValidUser\"\n", "\"ValidUser\"\ndisabled = true\n")
        .replace("\"Operator\"\n", "\"Operator\"\ndisabled = true\n");
    f.declare(&disabled, "");
    let config = std::fs::read_to_string(f.env.path("certs.toml")).unwrap();
    f.env
        .config(&config.replace("max_deletions = 3", "max_deletions = 1"));
    let plan = f.run(&["plan", "--json"]).success().json();
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 2, "{plan:#}");
    for c in &cluster {
        assert_eq!(c["action"], "unregister", "{plan:#}");
        assert_eq!(c["escalation"], false, "{plan:#}");
        assert_eq!(
            c["reason"],
            "disabled in certs.toml: RavenDB 4.1.0 cannot disable a registration, so it is unregistered while disabled and registered again when enabled",
            "{plan:#}"
        );
    }
    for c in changes(&plan, "client") {
        assert_eq!(c["action"], "update", "{plan:#}");
        assert_eq!(c["reason"], "disabled in certs.toml", "{plan:#}");
    }
    let text = f.run(&["plan"]).success().stdout;
    assert!(text.contains("cannot disable a registration"), "{text}");
    assert!(!text.contains("ESCALATION"), "{text}");
    f.run(&["apply", "--yes"]).success();
    assert!(
        f.registration(&orders).is_none(),
        "unregistered while disabled"
    );
    assert!(
        f.registration(&ops).is_none(),
        "unregistered while disabled"
    );
    assert_eq!(
        (f.thumbprint("orders"), f.thumbprint("ops")),
        (orders.clone(), ops.clone())
    );
    let settled = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "{}", settled.stdout);
    // status: disabled, which is no drift; 4.1's statistics do not say when a certificate was
    // last used, so that is unknown (null), without a warning.
    let status = f.run(&["status", "--json"]).success();
    let json = status.json();
    assert_eq!(json["cluster"]["in_sync"], true, "{json:#}");
    for c in json["cluster"]["certificates"].as_array().unwrap() {
        assert!(c["last_used"].is_null(), "{json:#}");
        if c["thumbprint"] == orders.as_str() || c["thumbprint"] == ops.as_str() {
            assert_eq!(c["state"], "disabled", "{json:#}");
        }
    }
    assert!(!status.stderr.contains("last used"), "{}", status.stderr);

    // Enabled again: the same certificates registered again, flagged in the plan.
    f.declare(CLIENTS, "");
    let plan = f.run(&["plan", "--json"]).success().json();
    let cluster = changes(&plan, "cluster");
    assert_eq!(cluster.len(), 2, "{plan:#}");
    for c in &cluster {
        assert_eq!(c["action"], "register", "{plan:#}");
        assert_eq!(
            c["reason"], "enabled in certs.toml: registered again",
            "{plan:#}"
        );
        assert_eq!(c["escalation"], true, "{plan:#}");
    }
    for c in changes(&plan, "client") {
        assert_eq!(
            (c["reason"].as_str(), c["escalation"].as_bool()),
            (Some("enabled in certs.toml"), Some(true)),
            "{plan:#}"
        );
    }
    f.run(&["apply", "--yes"]).success();
    let r = f.registration(&orders).expect("registered again");
    assert_eq!(r["Name"], "Orders App");
    assert_eq!(perms(&r)["Invoices"], "Admin");
    assert_eq!(
        f.registration(&ops).unwrap()["SecurityClearance"],
        "Operator"
    );
    assert_eq!(f.thumbprint("orders"), orders, "the same certificate");
    let settled = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "{}", settled.stdout);
}
