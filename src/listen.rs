//! `watch --listen ADDR`: a read-only HTTP listener (docs/contract.md §9) serving `/metrics`
//! (Prometheus),
//! `/healthz` and `/` from a [`Snapshot`] that the watch loop replaces after every attempt.
//!
//! The listener runs on its own threads and only reads the snapshot (a clone under a lock held
//! for the copy), so it never blocks or delays an apply. Every connection is bounded: one
//! request (`Connection: close`), a head of at most [`MAX_HEAD`] bytes read within
//! [`REQUEST_DEADLINE`], no body, at most [`MAX_CONNECTIONS`] at once (more are closed at
//! once), GET (or HEAD) only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::model::EntryThumbprint;

/// The largest request head read; a longer one is answered 431 and closed.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; one more is closed without an answer.
pub const MAX_CONNECTIONS: usize = 32;
/// `/healthz`'s reason until the first attempt has been recorded.
pub const STARTING: &str = "starting: no check has run yet";
/// How long one read or write may wait.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the whole answer (7 MB at 10,000 certificates).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// The answer is written in pieces of at most this size, the deadline checked between them.
const WRITE_CHUNK: usize = 64 * 1024;
/// A connection thread's stack: the paths are shallow, but an overflow would abort the daemon.
const CONNECTION_STACK: usize = 256 * 1024;

/// Why the listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address cannot be bound (in use, not local, no permission).
    #[error(
        "--listen {addr}: cannot listen there: {source} (pick a free port, e.g. 127.0.0.1:9464)"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The listener thread cannot be started.
    #[error("--listen: cannot start the listener thread: {0}")]
    Thread(std::io::Error),
}

/// One registered certificate, as `/metrics` labels and values it.
#[derive(Debug, Clone)]
pub struct CertificateMetric {
    /// The client key (`server` for the server certificate).
    pub key: String,
    /// Its name.
    pub name: String,
    /// Its thumbprint.
    pub thumbprint: EntryThumbprint,
    /// Its clearance (ClusterNode for the server certificate).
    pub clearance: String,
    /// generated, uploaded, imported…
    pub source: String,
    /// Not before, Unix seconds.
    pub not_before: i64,
    /// Not after, Unix seconds.
    pub not_after: i64,
    /// Inside its renewal window or expired, as `status` marks it.
    pub renewal_due: bool,
    /// When its access ends by itself (`until`), Unix seconds.
    pub until: Option<i64>,
    /// `disabled = true`: access suspended, the certificate kept.
    pub disabled: bool,
    /// When it was last used, Unix seconds, where the cluster says.
    pub last_used: Option<i64>,
}

/// What the cluster looked like after the last attempt that reached it.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetric {
    /// The cluster holds the store's registrations as declared (known strangers aside).
    pub in_sync: bool,
    /// Certificates it holds otherwise (missing, differing, extra and not kept).
    pub drift: u64,
    /// The client registrations it holds beyond the store's, kept or not.
    pub extra: Vec<ExtraMetric>,
}

/// A registration on the cluster that the store does not hold, as `/metrics` labels it.
#[derive(Debug, Clone)]
pub struct ExtraMetric {
    /// Its thumbprint.
    pub thumbprint: EntryThumbprint,
    /// Its name on the cluster.
    pub name: String,
    /// Its clearance on the cluster (ValidUser, Operator, ClusterAdmin).
    pub clearance: String,
    /// Named by `[cluster] keep`: a known stranger, not drift.
    pub kept: bool,
}

/// What the listener shows: the state after the last attempt. Holds no secret.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The store's certificates (shared: a request's copy of the snapshot is cheap).
    pub certificates: Arc<[CertificateMetric]>,
    /// When the last attempt ran (Unix seconds), if one has.
    pub last_check: Option<i64>,
    /// When the last apply ran (Unix seconds), if one has.
    pub last_apply: Option<i64>,
    /// Whether the last apply succeeded.
    pub last_apply_success: Option<bool>,
    /// Whether the last check could use certs.toml and the secrets and files it names (None
    /// before the first check).
    pub config_valid: Option<bool>,
    /// Applies that succeeded so far.
    pub applies_succeeded: u64,
    /// Applies that failed so far.
    pub applies_failed: u64,
    /// The cluster, when one is declared and was reached.
    pub cluster: Option<ClusterMetric>,
    /// None while healthy; else why not, on one line.
    pub unhealthy: Option<String>,
    /// The status page for `/` (HTML, every value escaped by its renderer; shared).
    pub page: Arc<str>,
    /// `/metrics`, encoded by [`Snapshot::sealed`] once per attempt, not per scrape.
    pub exposition: Arc<str>,
}

impl Snapshot {
    /// The snapshot with its `/metrics` encoded from its values.
    pub fn sealed(mut self) -> Snapshot {
        self.exposition = Arc::from(metrics(&self));
        self
    }
}

/// The snapshot the watch loop writes and the listener reads.
pub type Shared = Arc<RwLock<Snapshot>>;

/// Binds `addr` and serves on background threads until the process exits. Returns the
/// snapshot to update and the bound address (port 0 picks a free port).
pub fn start(addr: &str) -> Result<(Shared, SocketAddr), ListenError> {
    let bind_error = |source| ListenError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(bind_address(addr)).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let shared: Shared = Arc::new(RwLock::new(
        Snapshot {
            unhealthy: Some(STARTING.into()),
            ..Snapshot::default()
        }
        .sealed(),
    ));
    let state = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("listen".into())
        .spawn(move || accept_loop(&listener, &state))
        .map_err(ListenError::Thread)?;
    info!("listening on http://{bound}");
    Ok((shared, bound))
}

/// The address to bind: a port alone (`9464` or `:9464`) means loopback, so that only an
/// address written out in full exposes the listener beyond this machine.
fn bind_address(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if port.parse::<u16>().is_ok() {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_string()
    }
}

/// Releases a connection's slot when its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections for ever, a thread each up to [`MAX_CONNECTIONS`]. When accepting
/// fails (out of file descriptors), it waits, doubling up to a second, rather than spin.
fn accept_loop(listener: &TcpListener, state: &Shared) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut pause = Duration::ZERO;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => {
                pause = Duration::ZERO;
                s
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => {
                if pause.is_zero() {
                    warn!("listener: cannot accept a connection: {e}");
                }
                pause = (pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
                std::thread::sleep(pause);
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            drop(stream); // over the bound: closed unanswered
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let state = Arc::clone(state);
        let spawned = std::thread::Builder::new()
            .name("listen-conn".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                let _slot = slot;
                serve(stream, &state);
            });
        if let Err(e) = spawned {
            warn!("listener: cannot start a connection thread: {e}");
        }
    }
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    /// Shared with the snapshot for the page: a scrape copies no 7 MB page.
    body: Arc<str>,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Arc::from(body.into()),
        }
    }
}

/// One connection, one request.
fn serve(mut stream: TcpStream, state: &Shared) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let (answer, head_only) = match read_head(&mut stream) {
        Ok(head) => respond(&head, state),
        Err(answer) => (answer, false),
    };
    let reason = match answer.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    let body = if head_only { "" } else { &answer.body };
    let started = Instant::now();
    let sent = [head.as_bytes(), body.as_bytes()]
        .into_iter()
        .all(|part| write_within(&mut stream, part, started));
    if sent {
        close_gently(&mut stream);
    }
}

/// Writes `bytes` unless [`ANSWER_DEADLINE`] (counted from `started`) passes first: each write
/// waits at most what is left of it, so a client taking a byte now and then cannot hold its
/// slot past the deadline.
fn write_within(stream: &mut TcpStream, mut bytes: &[u8], started: Instant) -> bool {
    while !bytes.is_empty() {
        let left = ANSWER_DEADLINE.saturating_sub(started.elapsed());
        if left.is_zero()
            || stream
                .set_write_timeout(Some(left.min(IO_TIMEOUT)))
                .is_err()
        {
            return false;
        }
        let piece = &bytes[..bytes.len().min(WRITE_CHUNK)];
        match stream.write(piece) {
            Ok(0) | Err(_) => return false,
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
        }
    }
    true
}

/// Ends the answer, then reads (for at most a second, 64 KiB) what the client still sends, such
/// as a refused body: closing with unread input would reset the connection and could lose the
/// answer before the client reads it.
fn close_gently(stream: &mut TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 && started.elapsed() < Duration::from_secs(1) {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// The request's method and path, read within the deadline and the size bound.
struct Head {
    method: String,
    path: String,
}

/// Reads one request head: 408 past [`REQUEST_DEADLINE`] (each read waits at most what is
/// left of it), 431 past [`MAX_HEAD`], 400 when malformed or cut short.
fn read_head(stream: &mut TcpStream) -> Result<Head, Answer> {
    let started = Instant::now();
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let left = REQUEST_DEADLINE.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Answer::text(408, "request too slow\n"));
        }
        let _ = stream.set_read_timeout(Some(left.min(IO_TIMEOUT)));
        if len == buf.len() {
            return Err(Answer::text(431, "request head over 8 KiB\n"));
        }
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(Answer::text(400, "incomplete request\n")),
            Ok(n) => n,
            Err(_) => return Err(Answer::text(408, "request too slow\n")),
        };
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(Head {
                    method: request.method.unwrap_or_default().to_string(),
                    path: request.path.unwrap_or_default().to_string(),
                })
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Answer::text(431, "over 64 request headers\n"))
            }
            Err(_) => return Err(Answer::text(400, "malformed request\n")),
        }
    }
}

/// The answer to a well-formed request, and whether it is a HEAD (no body sent).
fn respond(head: &Head, state: &Shared) -> (Answer, bool) {
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        return (Answer::text(405, "GET only\n"), false);
    }
    // A copy: the lock is held only for the clone, never while writing to a client.
    let snapshot = match state.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let path = head.path.split('?').next().unwrap_or_default();
    let answer = match path {
        "/metrics" => Answer {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: Arc::clone(&snapshot.exposition),
        },
        "/healthz" => healthz(&snapshot),
        "/" => Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: page(&snapshot),
        },
        _ => Answer::text(404, "not found: /metrics, /healthz or /\n"),
    };
    (answer, head_only)
}

/// 200 `ok` while the last attempt succeeded, else 503 and why, on one escaped line.
fn healthz(s: &Snapshot) -> Answer {
    match &s.unhealthy {
        None => Answer::text(200, "ok\n"),
        Some(reason) => {
            let line = reason.replace(['\r', '\n'], " | ");
            Answer::text(
                503,
                format!("{}\n", crate::render::escape_output(&line, false)),
            )
        }
    }
}

/// The status page the watch loop rendered after its last attempt; before there is one, a
/// page that says why (starting, or the first certs.toml invalid and no store yet).
fn page(s: &Snapshot) -> Arc<str> {
    if !s.page.is_empty() {
        return Arc::clone(&s.page);
    }
    let why = s.unhealthy.as_deref().unwrap_or(STARTING);
    Arc::from(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>ravencert status</title></head>\n<body><p>No status yet: {}</p></body></html>\n",
        crate::render::html_escape(why)
    ))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    key: String,
    name: String,
    thumbprint: String,
    clearance: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExtraLabels {
    thumbprint: String,
    name: String,
    clearance: String,
    kept: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// A gauge holding `value`.
fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// The Prometheus exposition of a snapshot (docs/contract.md §9's series), built by the client
/// crate.
fn metrics(s: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("ravencert");
    certificate_metrics(&mut registry, &s.certificates);
    let (last_check, last_apply) = (s.last_check, s.last_apply);
    for (name, help, value) in [
        (
            "last_check_timestamp_seconds",
            "When the last check ran",
            last_check,
        ),
        (
            "last_apply_timestamp_seconds",
            "When the last apply ran",
            last_apply,
        ),
        (
            "last_apply_success",
            "Whether the last apply succeeded (1) or failed (0)",
            s.last_apply_success.map(i64::from),
        ),
        (
            "config_valid",
            "Whether certs.toml and the secrets and files it names can be used (1) or not (0)",
            s.config_valid.map(i64::from),
        ),
    ] {
        if let Some(v) = value {
            registry.register(name, help, gauge(v));
        }
    }
    let applies = Family::<ResultLabel, Counter>::default();
    for (result, n) in [
        ("success", s.applies_succeeded),
        ("failure", s.applies_failed),
    ] {
        applies
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc_by(n);
    }
    registry.register("applies", "Applies by result", applies);
    if let Some(c) = &s.cluster {
        cluster_metrics(&mut registry, c);
    }
    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .set(1);
    registry.register("build_info", "The running ravencert", build);
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        out.clear(); // writing to a String does not fail
    }
    out
}

/// The cluster's series: in sync, the drift count, and one series per registration beyond the
/// store's (labelled with its clearance, and whether `[cluster] keep` names it).
fn cluster_metrics(registry: &mut Registry, c: &ClusterMetric) {
    let drift = i64::try_from(c.drift).unwrap_or(i64::MAX);
    registry.register(
        "cluster_in_sync",
        "Whether the cluster holds the store's registrations as declared (known strangers of [cluster] keep aside)",
        gauge(i64::from(c.in_sync)),
    );
    registry.register(
        "cluster_drift_certificates",
        "Certificates the cluster holds otherwise than the store (missing, differing, extra and not kept)",
        gauge(drift),
    );
    let extra = Family::<ExtraLabels, Gauge>::default();
    for e in &c.extra {
        extra
            .get_or_create(&ExtraLabels {
                thumbprint: e.thumbprint.to_string(),
                name: e.name.clone(),
                clearance: e.clearance.clone(),
                kept: e.kept.to_string(),
            })
            .set(1);
    }
    registry.register(
        "cluster_extra_certificate_info",
        "Each client registration on the cluster that the store does not hold (kept: named by [cluster] keep)",
        extra,
    );
}

/// The per-certificate series: expiry, start and renewal due, labelled as docs/contract.md §9
/// lists.
fn certificate_metrics(registry: &mut Registry, certificates: &[CertificateMetric]) {
    let not_after = Family::<CertificateLabels, Gauge>::default();
    let not_before = Family::<CertificateLabels, Gauge>::default();
    let due = Family::<CertificateLabels, Gauge>::default();
    let until = Family::<CertificateLabels, Gauge>::default();
    let disabled = Family::<CertificateLabels, Gauge>::default();
    let last_used = Family::<CertificateLabels, Gauge>::default();
    for c in certificates {
        let labels = CertificateLabels {
            key: c.key.clone(),
            name: c.name.clone(),
            thumbprint: c.thumbprint.to_string(),
            clearance: c.clearance.clone(),
            source: c.source.clone(),
        };
        not_after.get_or_create(&labels).set(c.not_after);
        not_before.get_or_create(&labels).set(c.not_before);
        due.get_or_create(&labels).set(i64::from(c.renewal_due));
        if let Some(u) = c.until {
            until.get_or_create(&labels).set(u);
        }
        disabled.get_or_create(&labels).set(i64::from(c.disabled));
        if let Some(at) = c.last_used {
            last_used.get_or_create(&labels).set(at);
        }
    }
    registry.register(
        "certificate_not_after_seconds",
        "When each registered certificate expires (Unix time)",
        not_after,
    );
    registry.register(
        "certificate_not_before_seconds",
        "When each registered certificate became valid (Unix time)",
        not_before,
    );
    registry.register(
        "certificate_renewal_due",
        "Whether each registered certificate is inside its renewal window or expired",
        due,
    );
    registry.register(
        "certificate_access_until_seconds",
        "When each client certificate's access ends by itself, its until (Unix time); only clients that have one",
        until,
    );
    registry.register(
        "certificate_disabled",
        "Whether each registered certificate's client is disabled in certs.toml (access suspended, the certificate kept)",
        disabled,
    );
    registry.register(
        "certificate_last_used_seconds",
        "When each certificate was last used (Unix time), where the cluster says (RavenDB 6.x and 7.x; as the node that answered saw it since it started)",
        last_used,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_every_series_of_the_spec() {
        let s = Snapshot {
            certificates: Arc::from([CertificateMetric {
                key: "app".into(),
                name: "app \"x\"".into(),
                thumbprint: "AB".into(),
                clearance: "Operator".into(),
                source: "generated".into(),
                not_before: 1,
                not_after: 2,
                renewal_due: true,
                until: Some(4),
                disabled: true,
                last_used: Some(5),
            }]),
            last_check: Some(3),
            last_apply: Some(3),
            last_apply_success: Some(true),
            config_valid: Some(false),
            applies_succeeded: 1,
            cluster: Some(ClusterMetric {
                extra: vec![ExtraMetric {
                    thumbprint: "CD".into(),
                    name: "backup".into(),
                    clearance: "Operator".into(),
                    kept: true,
                }],
                ..ClusterMetric::default()
            }),
            ..Snapshot::default()
        };
        let text = s.sealed().exposition.to_string();
        for series in [
            "ravencert_certificate_not_after_seconds{key=\"app\",name=\"app \\\"x\\\"\"",
            "ravencert_certificate_not_before_seconds{",
            "ravencert_certificate_renewal_due{",
            "ravencert_certificate_access_until_seconds{key=\"app\",name=\"app \\\"x\\\"\",thumbprint=\"AB\",clearance=\"Operator\",source=\"generated\"} 4",
            "ravencert_certificate_disabled{key=\"app\",name=\"app \\\"x\\\"\",thumbprint=\"AB\",clearance=\"Operator\",source=\"generated\"} 1",
            "ravencert_certificate_last_used_seconds{key=\"app\",name=\"app \\\"x\\\"\",thumbprint=\"AB\",clearance=\"Operator\",source=\"generated\"} 5",
            "ravencert_last_check_timestamp_seconds 3",
            "ravencert_last_apply_timestamp_seconds 3",
            "ravencert_last_apply_success 1",
            "ravencert_config_valid 0",
            "ravencert_applies_total{result=\"success\"} 1",
            "ravencert_applies_total{result=\"failure\"} 0",
            "ravencert_cluster_in_sync 0",
            "ravencert_cluster_drift_certificates 0",
            "ravencert_cluster_extra_certificate_info{thumbprint=\"CD\",name=\"backup\",clearance=\"Operator\",kept=\"true\"} 1",
            "ravencert_build_info{version=",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
        // Before the first check: no value is claimed.
        let starting = Snapshot::default().sealed().exposition.to_string();
        assert!(!starting.contains("ravencert_config_valid"), "{starting}");
    }

    #[test]
    fn a_port_alone_binds_loopback() {
        assert_eq!(bind_address("9464"), "127.0.0.1:9464");
        assert_eq!(bind_address(":0"), "127.0.0.1:0");
        assert_eq!(bind_address("0.0.0.0:9464"), "0.0.0.0:9464");
        assert_eq!(bind_address("[::1]:9464"), "[::1]:9464");
        assert_eq!(bind_address("99999"), "99999");
    }

    #[test]
    fn the_page_is_the_rendered_one_or_says_why_there_is_none() {
        let starting = page(&Snapshot::default());
        assert!(starting.contains("no check has run yet"));
        let invalid = page(&Snapshot {
            unhealthy: Some("certs.toml is invalid: <b>name</b>".into()),
            ..Snapshot::default()
        });
        assert!(
            invalid.contains("invalid: &lt;b&gt;name&lt;/b&gt;"),
            "{invalid}"
        );
        let s = Snapshot {
            page: "<!DOCTYPE html><p>rendered</p>".into(),
            ..Snapshot::default()
        };
        assert_eq!(&*page(&s), "<!DOCTYPE html><p>rendered</p>");
    }
}
