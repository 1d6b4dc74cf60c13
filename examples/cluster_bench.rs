//! The cluster benchmark (issue 13), run by scripts/bench.py (`bench_cluster`):
//! `cargo run --release --example cluster_bench -- BIN [N_REGISTER] [N_NOOP]` drives the release
//! `ravencert` binary BIN against a local RavenDB 4.1 (started as tests/live/cluster.rs does) and
//! prints `key=value` lines:
//!
//! 1. N_REGISTER (300) EC P-256 clients issued offline; the server started with the store's
//!    server certificate and admin client; one warm-up PUT (the server's first write after a
//!    start takes seconds: cluster warm-up); then `ravencert apply --yes` registers them, timed.
//! 2. The same registrations sent again by a shell loop of one `curl` per certificate (what an
//!    admin scripts today: a process and a TLS handshake each), with the very bodies ravencert
//!    sent (read back from `RAVENCERT_REQUEST_LOG`), timed. A re-PUT costs what a first PUT does.
//! 3. N_NOOP (1,000) clients declared and applied; then a no-op `ravencert plan`, timed five
//!    times after a warm-up run, with the requests each run sent and its peak memory.
//!
//! Needs openssl (the server's legacy .pfx), curl and /usr/bin/time (GNU time, peak RSS).

// The test helper that provisions, starts and stops RavenDB; kept out of the shipped library.
#[path = "../tests/common/ravendb.rs"]
mod ravendb;

use ravendb::{ClientCert, Pin, RavenServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 4 {
        eprintln!("usage: cluster_bench RAVENCERT_BINARY [N_REGISTER=300] [N_NOOP=1000]");
        std::process::exit(1);
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
    if let Err(e) = run(Path::new(&args[1]), n_register, n_noop.max(n_register)) {
        eprintln!("cluster_bench: {e}");
        std::process::exit(1);
    }
}

/// The bench's folder, binary and server.
struct Bench {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pin: Pin,
    admin: ClientCert,
}

fn run(bin: &Path, n_register: usize, n_noop: usize) -> Res<()> {
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
    };
    b.declare(n_register, None)?;
    b.ravencert(&["apply", "--yes", "--offline"], None)?;
    let status = b.status()?;
    let server_thumb = status["server"][0]["thumbprint"]
        .as_str()
        .ok_or("status --json names no server thumbprint")?
        .to_string();
    let admin_thumb = thumbprint_of(&status, "admin")?;
    b.pin.server_pem = store.join("certs").join(format!("{server_thumb}.pem"));
    let pfx = b.legacy_pfx(&store, &server_thumb)?;
    let mut server = RavenServer::start(&pfx, &admin_thumb, &b.admin, &b.pin);
    println!("server_ready_s={:.2}", server.ready_after().as_secs_f64());
    b.warm_up(&server)?;

    b.register(&server, n_register)?;
    b.noop_plan(&server, n_noop)?;
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
        Ok(())
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
