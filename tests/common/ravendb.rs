//! A real RavenDB 4.1 server for the cluster tests (docs/contract.md §7), started the way
//! docs/ravendb.md §7 measured it: `scripts/ravendb-test-server.sh` provisions the
//! server, the .NET Core 2.1 runtime and OpenSSL 1.1 into a cache once, and each test starts its
//! own server on a free 127.0.0.1 port with a fresh data directory.
//!
//! TLS without shortcuts: the server listens on `https://127.0.0.1:<port>`, but its certificate
//! names a DNS name (e.g. `localhost`), not the address. Every request, the readiness probe too,
//! goes through `curl --resolve NAME:PORT:127.0.0.1 https://NAME:PORT/...` with `--cacert` the
//! server's own PEM, so the server certificate is verified (pinned) and never skipped with `-k`.
//! OpenSSL-based clients accept the pinned certificate even though ravencert makes it a CA
//! (rustls would refuse it: `CaUsedAsEndEntity`).
//!
//! Provisioning failure fails the test with the script's reason; tests never skip.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take from spawn to answering `GET /admin/certificates` with 200
/// (about 3.5 s from a fresh data directory on 2 cores; generous for a loaded CI machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM stops the server in about a second; SIGKILL after this.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `scripts/ravendb-test-server.sh` provisioned.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `Raven.Server.dll`; the server runs with its folder as the working directory.
    pub server_dll: PathBuf,
    /// The .NET Core 2.1 `dotnet` executable.
    pub dotnet: PathBuf,
    /// The folder with `libssl.so.1.1` and `libcrypto.so.1.1` (the server's LD_LIBRARY_PATH).
    pub openssl_lib: PathBuf,
    /// How long the script took in this test process (long the first time, ~0 when cached).
    pub took: Duration,
}

/// Runs the provisioning script once per test process and returns its paths, or why it failed
/// (with the end of its output). The script itself serializes concurrent test processes.
pub fn provision() -> Result<Paths, String> {
    static PATHS: OnceLock<Result<Paths, String>> = OnceLock::new();
    PATHS.get_or_init(run_provision_script).clone()
}

fn run_provision_script() -> Result<Paths, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/ravendb-test-server.sh"
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{script} failed ({}); the end of its output:\n{}",
            out.status,
            tail(&stderr, 40)
        ));
    }
    let value = |key: &str| -> Result<PathBuf, String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(PathBuf::from)
            .ok_or_else(|| format!("{script} printed no {key}= line; stdout:\n{stdout}"))
    };
    Ok(Paths {
        server_dll: value("server_dll")?,
        dotnet: value("dotnet")?,
        openssl_lib: value("openssl_lib")?,
        took,
    })
}

/// A client certificate and its unencrypted private key, both PEM (an issued bundle's
/// `<key>.crt` and `<key>.key`).
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientCert {
    /// The issued bundle of client `key` in `store`: `issued/<key>/<key>.crt` and `.key`.
    pub fn issued(store: &Path, key: &str) -> ClientCert {
        let dir = store.join("issued").join(key);
        ClientCert {
            cert: dir.join(format!("{key}.crt")),
            key: dir.join(format!("{key}.key")),
        }
    }
}

/// How clients verify the server: its certificate (PEM) and a DNS name that certificate holds.
#[derive(Debug, Clone)]
pub struct Pin {
    pub server_pem: PathBuf,
    pub name: String,
}

impl Pin {
    /// The server certificate `server_pem`, checked for the name `localhost` (the name the
    /// live tests' certs.toml gives the server).
    pub fn localhost(server_pem: PathBuf) -> Pin {
        Pin {
            server_pem,
            name: "localhost".into(),
        }
    }
}

/// The `[server]` table of a node the live tests start: a generated server certificate for
/// `localhost` (RSA, valid a year) installed at `install` as a legacy .pfx, the only profile
/// RavenDB 4.1 reads.
pub fn localhost_server(install: &str) -> String {
    format!(
        r#"[server]
generate = true
name = "localhost"
dns = ["localhost"]
key = "rsa-2048"
validity = "1y"
install = {{ path = "{install}", pfx = "legacy" }}
"#
    )
}

/// The certs.toml of a node started with ravencert's own certificates: the store in `store/`,
/// `localhost_server` installed as node/server.pfx, its ClusterAdmin client `admin`, a ValidUser
/// client `key` named `name` (ReadWrite on Orders), and a `[cluster]` whose admin is `admin`.
pub fn node_config(key: &str, name: &str) -> String {
    let server = localhost_server("node/server.pfx");
    format!(
        r#"version = 1
[store]
path = "store"

{server}
[clients.admin]
clearance = "ClusterAdmin"
key = "ec-p256"

[clients.{key}]
name = "{name}"
clearance = "ValidUser"
databases = {{ Orders = "ReadWrite" }}
key = "ec-p256"

# The node is bootstrapped from `ravencert settings` (its admin thumbprint); the tests talk to
# the server on its own port.
[cluster]
urls = ["https://localhost:1"]
admin = "admin"
"#
    )
}

/// What `ravencert settings` prints for a node (docs/contract.md §7): the server certificate
/// `[server] install` keeps (legacy profile for 4.1) and the admin certificate's thumbprint, as the
/// node's settings.json would hold them.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `Security.Certificate.Path`: absolute.
    pub certificate_path: PathBuf,
    /// `Security.WellKnownCertificates.Admin`: 40 upper-case hex digits.
    pub admin_thumbprint: String,
}

impl NodeSettings {
    /// The settings from `ravencert settings`' JSON (see `common::node_settings`, which runs it).
    pub fn from_json(json: &serde_json::Value) -> Result<NodeSettings, String> {
        let text = |key: &str| {
            json[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("settings printed no {key}: {json}"))
        };
        Ok(NodeSettings {
            certificate_path: PathBuf::from(text("Security.Certificate.Path")?),
            admin_thumbprint: text("Security.WellKnownCertificates.Admin")?,
        })
    }
}

/// One running RavenDB 4.1 server with its own port, data directory and log. Dropping it stops
/// the server (also when the test panics).
pub struct RavenServer {
    paths: Paths,
    server_pfx: PathBuf,
    admin_thumbprint: String,
    admin: ClientCert,
    pin: Pin,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    ready_after: Duration,
    last_exit: Option<ExitStatus>,
}

impl RavenServer {
    /// Starts a server that loads `server_pfx` (legacy PKCS#12: 3DES, SHA-1 MAC; empty password)
    /// and trusts `admin_thumbprint` (40 upper-case hex) as a well-known ClusterAdmin, and waits
    /// until `GET /admin/certificates` with the `admin` certificate answers 200, verified
    /// against `pin`. Panics with the reason and the server log's tail when provisioning fails
    /// or the server is not ready within a minute.
    pub fn start(
        server_pfx: &Path,
        admin_thumbprint: &str,
        admin: &ClientCert,
        pin: &Pin,
    ) -> RavenServer {
        let paths = provision().unwrap_or_else(|e| panic!("RavenDB test server: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("ravencert-ravendb.")
            .tempdir()
            .expect("temp dir for the RavenDB data");
        let mut server = RavenServer {
            paths,
            server_pfx: server_pfx.to_path_buf(),
            admin_thumbprint: admin_thumbprint.to_string(),
            admin: admin.clone(),
            pin: pin.clone(),
            port: free_port(),
            dir,
            child: None,
            ready_after: Duration::ZERO,
            last_exit: None,
        };
        server.spawn_and_wait();
        server
    }

    /// Starts a server as a new node is bootstrapped with ravencert: it loads the certificate
    /// `[server] install` wrote and trusts the admin thumbprint of `settings` (what `ravencert
    /// settings` printed); see [`RavenServer::start`].
    pub fn start_with_settings(
        settings: &NodeSettings,
        admin: &ClientCert,
        pin: &Pin,
    ) -> RavenServer {
        RavenServer::start(
            &settings.certificate_path,
            &settings.admin_thumbprint,
            admin,
            pin,
        )
    }

    /// The server's own URL, `https://127.0.0.1:<port>` (its certificate does not name the
    /// address: clients verify with [`RavenServer::pinned_url`] and `--resolve`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `https://<pin name>:<port>`: the URL under which the server certificate verifies, for a
    /// client that resolves the name to 127.0.0.1.
    pub fn pinned_url(&self) -> String {
        format!("https://{}:{}", self.pin.name, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (panics when it is stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// How long the last start took from spawn to the first 200 of the readiness probe.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The server's resident memory in KiB (VmRSS), if it is running.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the server printed so far (all starts, in order).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server: SIGTERM, up to 10 s to exit, then SIGKILL. Stopping twice is a no-op.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.last_exit = Some(status);
            return;
        }
        // Our own child, not reaped yet: its pid is still ours. (rustix: libc is no dependency.)
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.last_exit = Some(status);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        self.last_exit = child.wait().ok();
    }

    /// How the server process last ended (after [`RavenServer::stop`]): a clean SIGTERM stop is
    /// not `signal() == Some(SIGKILL)`.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    /// Stops the server and starts it again on the same port with the same data directory, and
    /// waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// `curl_json` as the admin client.
    pub fn curl_json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.curl_json_as(&self.admin, method, path, body)
    }

    /// One HTTPS request with `client`'s certificate, the server verified against the pin, as
    /// the Studio would send it: returns the HTTP status and the response body. Panics when curl
    /// gets no HTTP answer at all (connection, TLS), with curl's message.
    pub fn curl_json_as(
        &self,
        client: &ClientCert,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        match self.curl(client, method, path, body, Duration::from_secs(30)) {
            Ok(answer) => answer,
            Err(e) => panic!(
                "{method} {path}: {e}\nserver log tail:\n{}",
                self.log_tail()
            ),
        }
    }

    fn curl(
        &self,
        client: &ClientCert,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--request", method])
            .arg("--max-time")
            .arg(timeout.as_secs().max(1).to_string())
            .arg("--cert")
            .arg(&client.cert)
            .arg("--key")
            .arg(&client.key)
            .arg("--cacert")
            .arg(&self.pin.server_pem)
            .arg("--resolve")
            .arg(format!("{}:{}:127.0.0.1", self.pin.name, self.port))
            .args(["--write-out", "\n%{http_code}"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if body.is_some() {
            cmd.args([
                "--header",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ]);
        }
        cmd.arg(format!("{}{path}", self.pinned_url()));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run curl (is it installed?): {e}"))?;
        {
            let mut stdin = child.stdin.take().expect("piped stdin");
            if let Some(body) = body {
                stdin
                    .write_all(body.as_bytes())
                    .map_err(|e| format!("writing the body to curl: {e}"))?;
            }
        }
        let out = child.wait_with_output().map_err(|e| format!("curl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        match code.trim().parse::<u16>() {
            Ok(code) if out.status.success() && code != 0 => Ok((code, body.to_string())),
            _ => Err(format!(
                "curl failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log_tail(&self) -> String {
        tail(&self.log(), 60)
    }

    fn spawn_and_wait(&mut self) {
        let server_dir = self
            .paths
            .server_dll
            .parent()
            .expect("Raven.Server.dll has a folder");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let _ = writeln!(
            log,
            "=== ravencert test: starting on port {} ===",
            self.port
        );
        let stderr = log.try_clone().expect("clone the log handle");
        let started = Instant::now();
        let child = Command::new(&self.paths.dotnet)
            .arg(&self.paths.server_dll)
            .arg(format!("--ServerUrl=https://127.0.0.1:{}", self.port))
            .arg("--Setup.Mode=None")
            .arg("--License.Eula.Accepted=true")
            .arg(format!(
                "--Security.Certificate.Path={}",
                self.server_pfx.display()
            ))
            .arg(format!(
                "--Security.WellKnownCertificates.Admin={}",
                self.admin_thumbprint
            ))
            .arg(format!("--DataDir={}", self.data_dir().display()))
            .arg("--non-interactive")
            // Without it .NET Core 2.1 aborts (no usable ICU); without OpenSSL 1.1 it aborts too.
            .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
            .env("LD_LIBRARY_PATH", &self.paths.openssl_lib)
            .current_dir(server_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.paths.dotnet.display()));
        self.child = Some(child);
        self.wait_ready(started);
    }

    /// Polls `GET /admin/certificates` until 200. `/build/version` answers earlier, and after a
    /// restart the certificate list answers 500 for about a second, so only this one counts.
    fn wait_ready(&mut self, started: Instant) {
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!(
                    "RavenDB exited before it was ready ({status}); log tail:\n{}",
                    self.log_tail()
                );
            }
            match self.curl(
                &self.admin,
                "GET",
                "/admin/certificates",
                None,
                Duration::from_secs(5),
            ) {
                Ok((200, _)) => {
                    self.ready_after = started.elapsed();
                    return;
                }
                Ok((code, body)) => last = format!("HTTP {code}: {}", tail(&body, 5)),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "RavenDB on port {} was not ready after {READY_TIMEOUT:?} (last probe: {last}); log tail:\n{}",
            self.port,
            self.log_tail()
        );
    }
}

impl Drop for RavenServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bind port 0, read it, let it go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
