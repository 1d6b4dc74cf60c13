//! The cluster benchmark (issue 13), run by scripts/bench.py (`bench_cluster`):
//! `cargo run --release --example cluster_bench -- BIN [N_REGISTER] [N_NOOP]` drives the release
//! `ravencert` binary BIN against a local RavenDB 4.1 (started as tests/live/cluster.rs does) and
//! prints `key=value` lines:
//!
//! 1. N_REGISTER (300) EC P-256 clients issued offline; the server started with the store's
//!    server certificate and admin client; one warm-up PUT (the server's first write after a
//!    start takes seconds: cluster warm-up), then WARM_PUTS re-PUTs of it over one connection (a
//!    fresh server's next few hundred writes are slower); then `ravencert apply --yes` registers
//!    them, timed.
//! 2. The same registrations sent again by a shell loop of one `curl` per certificate (what an
//!    admin scripts today: a process and a TLS handshake each), with the very bodies ravencert
//!    sent (read back from `RAVENCERT_REQUEST_LOG`), timed. A re-PUT costs what a first PUT does.
//! 3. The kept-alive floor: the same bodies PUT back to back by ravencert's own client (one
//!    TLS connection, no process or plan around it), and over 2 and 4 connections at once; the
//!    variants alternate, [`FLOOR_ROUNDS`] rounds, medians. Also one `curl` process sending them
//!    all over one kept-alive connection (`--next`), as a floor that is not ravencert's code.
//!    Then fresh registrations alternately by `apply --yes` and by the floor client on a
//!    connection already open (each after unregistering all again): the per-PUT floor without
//!    any handshake, against ravencert's whole command (its one handshake and listing included).
//! 4. N_NOOP (1,000) clients declared and applied; then a no-op `ravencert plan`, timed five
//!    times after a warm-up run, with the requests each run sent and its peak memory.
//!
//! `cluster_bench BIN --scale N` (scripts/bench.py with `BENCH_CLUSTER_SCALE`, 3,000) instead
//! registers N clients on a fresh server with one `apply --yes` (timed, no curl loop), then
//! times a no-op plan at N registrations and the listing alone by curl (the server's share).
//! `cluster_bench BIN --floor N` registers N the same way, then measures the floor only, and
//! alternates fresh registrations by `apply` and by the floor client (each after unregistering
//! all again): ravencert's whole command against the floor, without the curl loop's minutes.
//!
//! Needs openssl (the server's legacy .pfx), curl and /usr/bin/time (GNU time, peak RSS).

// The test helper that provisions, starts and stops RavenDB; kept out of the shipped library.
#[path = "../tests/common/ravendb.rs"]
mod ravendb;

use ravencert::model::{Access, Clearance};
use ravencert::ravendb as rc;
use ravendb::{ClientCert, Pin, RavenServer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const BASE: &str = r#"version = 1
[store]
path = "store"

[server]
generate = true
name = "localhost"
dns = ["localhost"]
key = "rsa-2048"
validity = "1y"

[defaults]
key = "ec-p256"

[clients.admin]
name = "ravencert admin"
clearance = "ClusterAdmin"
"#;

/// The timed plan runs (after one warm-up run).
const PLAN_RUNS: usize = 5;

/// The rounds of the floor measurement (each round: 1, 2 and 4 connections, in turn).
const FLOOR_ROUNDS: usize = 5;

/// The re-PUTs of the admin's registration that warm the server up before anything is timed.
const WARM_PUTS: usize = 400;

/// The connection counts the floor is measured over.
const FLOOR_CONNECTIONS: [usize; 3] = [1, 2, 4];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 4 {
        eprintln!("usage: cluster_bench RAVENCERT_BINARY [N_REGISTER=300] [N_NOOP=1000]\n       cluster_bench RAVENCERT_BINARY --scale N");
        std::process::exit(1);
    }
    let flag = args.get(2).map(String::as_str);
    if matches!(flag, Some("--scale" | "--floor")) {
        let n = args
            .get(3)
            .and_then(|a| a.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let Some(n) = n else {
            eprintln!("cluster_bench: {} needs a positive number", args[2]);
            std::process::exit(1);
        };
        let mode = if flag == Some("--scale") {
            Mode::Scale(n)
        } else {
            Mode::Floor(n)
        };
        if let Err(e) = run(Path::new(&args[1]), mode) {
            eprintln!("cluster_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let number = |i: usize, default: usize| -> usize {
        match args.get(i).map(|a| a.parse::<usize>()) {
            None => default,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                eprintln!("cluster_bench: {} must be a positive number", args[i]);
                std::process::exit(1);
            }
        }
    };
    let (n_register, n_noop) = (number(2, 300), number(3, 1000));
    if let Err(e) = run(
        Path::new(&args[1]),
        Mode::Register(n_register, n_noop.max(n_register)),
    ) {
        eprintln!("cluster_bench: {e}");
        std::process::exit(1);
    }
}

/// What to measure.
#[derive(Clone, Copy)]
enum Mode {
    /// N registered (vs a curl loop and the floor), then a no-op plan at M.
    Register(usize, usize),
    /// N registered by one apply, then a no-op plan at N.
    Scale(usize),
    /// N registered by one apply, then the floor alone (no curl loop, no plan): quick.
    Floor(usize),
}

/// The bench's folder, binary and server.
struct Bench {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pin: Pin,
    admin: ClientCert,
    server_thumb: String,
}

fn run(bin: &Path, mode: Mode) -> Res<()> {
    let n_declared = match mode {
        Mode::Register(n, _) | Mode::Scale(n) | Mode::Floor(n) => n,
    };
    let bin = std::fs::canonicalize(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("ravencert-cluster-bench.")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let store = dir.path().join("store");
    let issued = store.join("issued").join("admin");
    let mut b = Bench {
        bin,
        pin: Pin {
            server_pem: PathBuf::new(),
            name: "localhost".into(),
        },
        admin: ClientCert {
            cert: issued.join("admin.crt"),
            key: issued.join("admin.key"),
        },
        dir,
        server_thumb: String::new(),
    };
    b.declare(n_declared, None)?;
    b.ravencert(&["apply", "--yes", "--offline"], None)?;
    let status = b.status()?;
    let server_thumb = status["server"][0]["thumbprint"]
        .as_str()
        .ok_or("status --json names no server thumbprint")?
        .to_string();
    let admin_thumb = thumbprint_of(&status, "admin")?;
    b.server_thumb = server_thumb.clone();
    b.pin.server_pem = store.join("certs").join(format!("{server_thumb}.pem"));
    let pfx = b.legacy_pfx(&store, &server_thumb)?;
    let mut server = RavenServer::start(&pfx, &admin_thumb, &b.admin, &b.pin);
    println!("server_ready_s={:.2}", server.ready_after().as_secs_f64());
    b.warm_up(&server)?;

    match mode {
        Mode::Register(n_register, n_noop) => {
            b.register(&server, n_register)?;
            b.noop_plan(&server, n_noop)?;
        }
        Mode::Scale(n) => {
            b.scale(&server, n)?;
            b.noop_plan(&server, n)?;
        }
        Mode::Floor(n) => {
            b.scale(&server, n)?;
            let sent = std::fs::read_to_string(b.path("scale.log")).map_err(|e| format!("{e}"))?;
            let puts: Vec<&str> = sent
                .lines()
                .filter_map(|l| l.strip_prefix("PUT /admin/certificates "))
                .collect();
            b.floor(&server, &puts)?;
            b.fresh_rounds(&server, &puts)?;
        }
    }
    if let Some(kib) = server.rss_kib() {
        println!("server_rss_mib={:.1}", kib as f64 / 1024.0);
    }
    server.stop();
    Ok(())
}

impl Bench {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// certs.toml with `n` clients, and `[cluster]` at `url` when given.
    fn declare(&self, n: usize, url: Option<&str>) -> Res<()> {
        let mut text = String::from(BASE);
        for i in 0..n {
            text.push_str(&format!(
                "[clients.c{i:05}]\nclearance = \"ValidUser\"\ndatabases = {{ Db{} = \"ReadWrite\" }}\n",
                i % 9
            ));
        }
        if let Some(url) = url {
            text.push_str(&format!(
                "\n[cluster]\nurls = [\"{url}\"]\nadmin = \"admin\"\ntimeout = \"60s\"\n"
            ));
        }
        std::fs::write(self.path("certs.toml"), text).map_err(|e| format!("certs.toml: {e}"))
    }

    /// Runs ravencert in the bench folder (request log to `log` when given); fails on a
    /// non-zero exit.
    fn ravencert(&self, args: &[&str], log: Option<&Path>) -> Res<Output> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(self.dir.path());
        if let Some(log) = log {
            cmd.env("RAVENCERT_REQUEST_LOG", log);
        }
        checked(cmd, &format!("ravencert {}", args.join(" ")))
    }

    fn status(&self) -> Res<serde_json::Value> {
        let out = self.ravencert(&["status", "--json", "--offline"], None)?;
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
    }

    /// The server certificate as RavenDB 4.1 reads it: legacy PKCS#12 (3DES, SHA-1 MAC).
    fn legacy_pfx(&self, store: &Path, thumb: &str) -> Res<PathBuf> {
        let pfx = self.path("server.pfx");
        let mut cmd = Command::new("openssl");
        cmd.args(["pkcs12", "-export", "-in"])
            .arg(&self.pin.server_pem)
            .arg("-inkey")
            .arg(store.join("server").join(format!("{thumb}.key")))
            .args(["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES"])
            .args(["-macalg", "sha1", "-passout", "pass:", "-out"])
            .arg(&pfx);
        checked(cmd, "openssl pkcs12 -export")?;
        Ok(pfx)
    }

    /// The server's first write after a start: the admin's own registration, as ravencert
    /// would make it (so the timed apply registers exactly the clients).
    fn warm_up(&self, server: &RavenServer) -> Res<()> {
        let pem = std::fs::read_to_string(&self.admin.cert).map_err(|e| format!("{e}"))?;
        let b64: String = pem
            .lines()
            .take_while(|l| !l.starts_with("-----END"))
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let body = format!(
            r#"{{"Name":"ravencert admin","Certificate":"{b64}","SecurityClearance":"ClusterAdmin","Permissions":{{}}}}"#
        );
        let t = Instant::now();
        let (code, answer) = server.curl_json("PUT", "/admin/certificates", Some(&body));
        if !(200..300).contains(&code) {
            return Err(format!("warm-up PUT: HTTP {code}: {answer}"));
        }
        println!("warmup_put_s={:.2}", t.elapsed().as_secs_f64());
        // Then the same registration again, WARM_PUTS times over one connection: a server just
        // started answers its first few hundred writes slower (measured: the first 300 PUTs
        // after the first write took 8-9 ms each where later ones took 4-5 ms), so that every
        // figure after this (ravencert, the curl loop, the floor) meets the same warm server.
        let client = self.client(server)?;
        let der = openssl::base64::decode_block(&b64).map_err(|e| format!("{e}"))?;
        let mut halves = [0.0; 2];
        for i in 0..WARM_PUTS {
            let t = Instant::now();
            client
                .register(
                    "ravencert admin",
                    &der,
                    Clearance::ClusterAdmin,
                    &BTreeMap::new(),
                )
                .map_err(|e| format!("warm-up re-PUT: {e}"))?;
            halves[i * 2 / WARM_PUTS] += t.elapsed().as_secs_f64() * 1000.0;
        }
        let half = (WARM_PUTS / 2) as f64;
        println!("warmup_reputs={WARM_PUTS}");
        println!("warmup_first_half_ms_per_put={:.2}", halves[0] / half);
        println!("warmup_second_half_ms_per_put={:.2}", halves[1] / half);
        Ok(())
    }

    /// `apply --yes` registering `n` clients, then the same PUTs by a curl loop.
    fn register(&self, server: &RavenServer, n: usize) -> Res<()> {
        self.declare(n, Some(&server.url()))?;
        let log = self.path("apply.log");
        let t = Instant::now();
        self.ravencert(&["apply", "--yes"], Some(&log))?;
        let ours = t.elapsed();
        let sent = std::fs::read_to_string(&log).map_err(|e| format!("request log: {e}"))?;
        let puts: Vec<&str> = sent
            .lines()
            .filter_map(|l| l.strip_prefix("PUT /admin/certificates "))
            .collect();
        println!("register_n={n}");
        println!("register_requests={}", sent.lines().count());
        println!("register_puts={}", puts.len());
        println!("register_ravencert_s={:.3}", ours.as_secs_f64());
        let theirs = self.curl_loop(server, &puts)?;
        println!("register_curl_s={:.3}", theirs.as_secs_f64());
        println!(
            "register_curl_ms_per_put={:.1}",
            theirs.as_secs_f64() * 1000.0 / puts.len().max(1) as f64
        );
        println!(
            "register_speedup={:.1}",
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
        self.floor(server, &puts)?;
        self.fresh_rounds(server, &puts)?;
        println!(
            "register_curl_keepalive_ms_per_put={:.2}",
            self.curl_keepalive(server, puts.len())?.as_secs_f64() * 1000.0
                / puts.len().max(1) as f64
        );
        Ok(())
    }

    /// `n` clients registered on a fresh server by one `apply --yes`: the requests it sent and
    /// how long it took (the whole command).
    fn scale(&self, server: &RavenServer, n: usize) -> Res<()> {
        self.declare(n, Some(&server.url()))?;
        let log = self.path("scale.log");
        let t = Instant::now();
        self.ravencert(&["apply", "--yes"], Some(&log))?;
        let took = t.elapsed();
        let sent = std::fs::read_to_string(&log).map_err(|e| format!("request log: {e}"))?;
        let puts = sent.lines().filter(|l| l.starts_with("PUT ")).count();
        println!("scale_n={n}");
        println!("scale_register_requests={}", sent.lines().count());
        println!("scale_register_puts={puts}");
        println!("scale_register_s={:.3}", took.as_secs_f64());
        println!(
            "scale_register_ms_per_put={:.2}",
            took.as_secs_f64() * 1000.0 / puts.max(1) as f64
        );
        Ok(())
    }

    /// A client as ravencert builds one: the admin's certificate, the server pinned.
    fn client(&self, server: &RavenServer) -> Res<rc::Client> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let pin = ravencert::model::Thumbprint::parse(&self.server_thumb)
            .map_err(|e| format!("server thumbprint: {e:?}"))?;
        rc::Client::new(&rc::ClientOptions {
            urls: vec![server.url()],
            identity: rc::Identity::Pem {
                cert: read(&self.admin.cert)?,
                key: read(&self.admin.key)?,
            },
            pin: rc::Pin::Thumbprints(vec![pin]),
            timeout: Duration::from_secs(60),
            resolve: Vec::new(),
        })
        .map_err(|e| format!("client: {e}"))
    }

    /// The kept-alive floor: `bodies` PUT back to back by ravencert's client, over 1, 2 and 4
    /// connections (one client each), alternating, [`FLOOR_ROUNDS`] rounds; prints the
    /// median ms per PUT of each and the connections the single one opened.
    fn floor(&self, server: &RavenServer, bodies: &[&str]) -> Res<()> {
        let bodies: Vec<Body> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| format!("a logged body: {e}")))
            .collect::<Res<_>>()?;
        let mut times: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for _ in 0..FLOOR_ROUNDS {
            for conns in FLOOR_CONNECTIONS {
                let clients: Vec<rc::Client> = (0..conns)
                    .map(|_| self.client(server))
                    .collect::<Res<_>>()?;
                let next = AtomicUsize::new(0);
                let t = Instant::now();
                std::thread::scope(|s| {
                    let workers: Vec<_> = clients
                        .iter()
                        .map(|c| s.spawn(|| put_all(c, &bodies, &next)))
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
                        .collect::<Res<Vec<()>>>()
                })?;
                let ms = t.elapsed().as_secs_f64() * 1000.0 / bodies.len().max(1) as f64;
                times.entry(conns).or_default().push(ms);
                let opened: usize = clients.iter().map(rc::Client::connections_opened).sum();
                println!("floor_c{conns}_connections_opened={opened}");
            }
        }
        for (conns, mut t) in times {
            t.sort_by(f64::total_cmp);
            let all: Vec<String> = t.iter().map(|x| format!("{x:.2}")).collect();
            println!("floor_c{conns}_ms_per_put={:.2}", t[t.len() / 2]);
            println!("floor_c{conns}_runs={}", all.join(","));
        }
        Ok(())
    }

    /// Fresh registrations, alternately by `apply --yes` and by the floor client (one
    /// connection), each after every client is unregistered again: [`FLOOR_ROUNDS`] rounds,
    /// medians in ms per PUT.
    fn fresh_rounds(&self, server: &RavenServer, bodies: &[&str]) -> Res<()> {
        let parsed: Vec<Body> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| format!("a logged body: {e}")))
            .collect::<Res<_>>()?;
        let thumbs: Vec<String> = parsed
            .iter()
            .map(|b| {
                let der =
                    openssl::base64::decode_block(&b.certificate).map_err(|e| format!("{e}"))?;
                Ok(hex::encode_upper(openssl::sha::sha1(&der)))
            })
            .collect::<Res<_>>()?;
        let n = parsed.len().max(1) as f64;
        let (mut apply, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..FLOOR_ROUNDS {
            let client = self.client(server)?;
            for t in &thumbs {
                client.unregister(t).map_err(|e| format!("DELETE: {e}"))?;
            }
            let t = Instant::now();
            self.ravencert(&["apply", "--yes"], None)?;
            apply.push(t.elapsed().as_secs_f64() * 1000.0 / n);
            for t in &thumbs {
                client.unregister(t).map_err(|e| format!("DELETE: {e}"))?;
            }
            let t = Instant::now();
            put_all(&client, &parsed, &AtomicUsize::new(0))?;
            floor.push(t.elapsed().as_secs_f64() * 1000.0 / n);
        }
        for (name, mut v) in [("apply", apply), ("floor", floor)] {
            v.sort_by(f64::total_cmp);
            let all: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
            println!("fresh_{name}_ms_per_put={:.2}", v[v.len() / 2]);
            println!("fresh_{name}_runs={}", all.join(","));
        }
        Ok(())
    }

    /// One `curl` process sending the `n` bodies of `bodies/` over one kept-alive connection
    /// (`--next` between them): a floor outside ravencert's code. Checks it connected once.
    fn curl_keepalive(&self, server: &RavenServer, n: usize) -> Res<Duration> {
        let mut config = String::new();
        for i in 0..n {
            if i > 0 {
                config.push_str("next\n");
            }
            config.push_str(&format!(
                "silent\nshow-error\nfail\noutput = \"/dev/null\"\ncert = \"{cert}\"\nkey = \"{key}\"\ncacert = \"{ca}\"\nresolve = \"localhost:{port}:127.0.0.1\"\nrequest = \"PUT\"\nheader = \"Content-Type: application/json\"\ndata-binary = \"@bodies/{i:05}.json\"\nwrite-out = \"%{{num_connects}}\\n\"\nurl = \"https://localhost:{port}/admin/certificates\"\n",
                cert = self.admin.cert.display(),
                key = self.admin.key.display(),
                ca = self.pin.server_pem.display(),
                port = server.port(),
            ));
        }
        std::fs::write(self.path("keepalive.curlrc"), config).map_err(|e| format!("{e}"))?;
        let mut cmd = Command::new("curl");
        cmd.args(["--config", "keepalive.curlrc"])
            .current_dir(self.dir.path());
        let t = Instant::now();
        let out = checked(cmd, "curl --next (one connection)")?;
        let took = t.elapsed();
        let connects: usize = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<usize>().ok())
            .sum();
        println!("register_curl_keepalive_connections={connects}");
        Ok(took)
    }

    /// One `curl` per body, from a bash loop: a process and a TLS handshake each.
    fn curl_loop(&self, server: &RavenServer, bodies: &[&str]) -> Res<Duration> {
        let folder = self.path("bodies");
        std::fs::create_dir_all(&folder).map_err(|e| format!("{e}"))?;
        for (i, body) in bodies.iter().enumerate() {
            std::fs::write(folder.join(format!("{i:05}.json")), body)
                .map_err(|e| format!("{e}"))?;
        }
        let script = format!(
            r#"set -euo pipefail
for body in bodies/*.json; do
  curl --silent --show-error --fail -o /dev/null --cert '{cert}' --key '{key}' --cacert '{ca}' \
    --resolve 'localhost:{port}:127.0.0.1' -X PUT -H 'Content-Type: application/json' \
    --data-binary "@$body" 'https://localhost:{port}/admin/certificates'
done
"#,
            cert = self.admin.cert.display(),
            key = self.admin.key.display(),
            ca = self.pin.server_pem.display(),
            port = server.port(),
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).current_dir(self.dir.path());
        let t = Instant::now();
        checked(cmd, "the curl loop")?;
        Ok(t.elapsed())
    }

    /// `n` clients applied, then a no-op plan timed [`PLAN_RUNS`] times.
    fn noop_plan(&self, server: &RavenServer, n: usize) -> Res<()> {
        self.declare(n, Some(&server.url()))?;
        let t = Instant::now();
        self.ravencert(&["apply", "--yes"], None)?;
        println!("noop_apply_s={:.2}", t.elapsed().as_secs_f64());
        let args = ["plan", "--detailed-exitcode"];
        self.ravencert(&args, None)?; // warm the page cache, as a watch tick finds it
        let log = self.path("plan.log");
        let mut times = Vec::new();
        let mut requests = Vec::new();
        let mut paths = Vec::new();
        for _ in 0..PLAN_RUNS {
            let _ = std::fs::remove_file(&log);
            let t = Instant::now();
            self.ravencert(&args, Some(&log))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let sent = std::fs::read_to_string(&log).unwrap_or_default();
            requests.push(sent.lines().count());
            paths.extend(sent.lines().map(|l| l.trim_end().to_string()));
        }
        paths.sort();
        paths.dedup();
        for p in &paths {
            println!("noop_request={p}");
        }
        times.sort_by(f64::total_cmp);
        println!("noop_n={n}");
        println!("noop_runs={PLAN_RUNS}");
        println!("noop_median_ms={:.1}", times[times.len() / 2]);
        println!("noop_min_ms={:.1}", times[0]);
        println!("noop_max_ms={:.1}", times[times.len() - 1]);
        let counts: Vec<String> = requests.iter().map(usize::to_string).collect();
        println!("noop_requests={}", counts.join(","));
        println!(
            "noop_peak_rss_mib={:.1}",
            self.peak_rss_kib(&args)? / 1024.0
        );
        // The same plan without the cluster: what the store and certs.toml cost alone.
        let offline = ["plan", "--detailed-exitcode", "--offline"];
        let mut times = Vec::new();
        for _ in 0..PLAN_RUNS {
            let t = Instant::now();
            self.ravencert(&offline, None)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!("noop_offline_median_ms={:.1}", times[times.len() / 2]);
        // The listing alone, fetched by one curl process (handshake, server, transfer).
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..PLAN_RUNS {
            let t = Instant::now();
            let (code, body) = server.curl_json("GET", "/admin/certificates?secondary=true", None);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if code != 200 {
                return Err(format!("GET /admin/certificates: HTTP {code}"));
            }
            size = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!("noop_curl_get_median_ms={:.1}", times[times.len() / 2]);
        println!("noop_listing_kib={:.0}", size as f64 / 1024.0);
        Ok(())
    }

    /// ravencert's peak RSS for `args`, by GNU time (a separate run: not in the timings).
    fn peak_rss_kib(&self, args: &[&str]) -> Res<f64> {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M"])
            .arg(&self.bin)
            .args(args)
            .current_dir(self.dir.path());
        let out = checked(cmd, "/usr/bin/time ravencert plan")?;
        let err = String::from_utf8_lossy(&out.stderr);
        err.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("/usr/bin/time printed no peak RSS: {err}"))
    }
}

/// A register body as ravencert sent it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Body {
    name: String,
    certificate: String,
    security_clearance: Clearance,
    permissions: BTreeMap<String, Access>,
}

/// PUTs the bodies `next` hands out, one at a time, until none is left.
fn put_all(client: &rc::Client, bodies: &[Body], next: &AtomicUsize) -> Res<()> {
    while let Some(b) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
        let der = openssl::base64::decode_block(&b.certificate).map_err(|e| format!("{e}"))?;
        client
            .register(&b.name, &der, b.security_clearance, &b.permissions)
            .map_err(|e| format!("PUT {}: {e}", b.name))?;
    }
    Ok(())
}

/// Runs `cmd`; its output, or why it failed (exit status and stderr's end).
fn checked(mut cmd: Command, what: &str) -> Res<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(out);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(20).collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// The current thumbprint of client `key` in `status --json`.
fn thumbprint_of(status: &serde_json::Value, key: &str) -> Res<String> {
    status["certificates"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["key"] == key && c["retiring_after"].is_null())
        })
        .and_then(|c| c["thumbprint"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{key} is not in the store"))
}
