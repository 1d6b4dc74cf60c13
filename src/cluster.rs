//! The RavenDB REST client of the cluster target (docs/contract.md §7): list, register, edit and
//! unregister certificates, and read the server version, over HTTPS with a client certificate.
//!
//! - TLS is OpenSSL's (rustls refuses the CA-as-end-entity server certificate ravencert
//!   generates). The server is pinned by [`Pin`]: the store's server thumbprints, a CA file, or
//!   the system's roots.
//! - One [`Client`] keeps one HTTP agent: connections are kept alive and reused, every request
//!   has the configured timeout, and redirects are never followed.
//! - The urls are tried in order; a node that does not answer (connect error or timeout) is
//!   skipped with a warning naming it, and the node that answered is asked first next time. A
//!   node that answers with an error is not skipped: its error is the result.
//! - Only public certificates are ever sent (base64 DER in `register`); the request bodies can
//!   be captured with [`Client::with_body_log`] so tests can check that.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::model::{Access, Clearance};
use crate::pki;

/// The largest response body read (a listing of 1,000 certificates is about 1 MB).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;
/// The longest server message quoted in an error when the body is not RavenDB's JSON.
const MAX_QUOTED: usize = 500;

/// What can go wrong talking to the cluster. Every case names the node URL.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `[cluster] urls` is empty.
    #[error("no cluster url to connect to: list at least one node in [cluster] urls")]
    NoUrls,
    /// A url that is not an `https://` URL.
    #[error("cluster url {url:?} is not usable: {detail}; write it as https://host:port")]
    BadUrl {
        /// The url as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The client certificate or its key could not be used.
    #[error("the admin certificate cannot be used for TLS: {detail}")]
    Identity {
        /// What OpenSSL said.
        detail: String,
    },
    /// The CA file given as the pin holds no usable certificate.
    #[error("the cluster CA cannot be used: {detail}; give a PEM file with the CA certificate(s)")]
    Ca {
        /// What is wrong with it.
        detail: String,
    },
    /// No node answered (connection refused, no route, timeout).
    #[error("no cluster node answered (tried {url}): {detail}; check that RavenDB runs there and that [cluster] urls are right")]
    Unreachable {
        /// The node(s) tried, in order.
        url: String,
        /// The last node's failure.
        detail: String,
    },
    /// The TLS handshake failed (certificate verification against the CA, hostname, protocol).
    #[error("{url}: TLS failed: {detail}")]
    Tls {
        /// The node.
        url: String,
        /// OpenSSL's reason.
        detail: String,
    },
    /// The server presented a certificate whose thumbprint is not one of the pinned ones.
    #[error("{url}: the server presented certificate {presented}, but the pin expects {}; refusing to talk to it (is this the right cluster, or was its certificate replaced outside ravencert?)", .expected.join(" or "))]
    PinMismatch {
        /// The node.
        url: String,
        /// The pinned thumbprints.
        expected: Vec<String>,
        /// The thumbprint of the certificate the server presented.
        presented: String,
    },
    /// HTTP 403: the server does not accept the client certificate for this operation.
    #[error("{url}: access denied (HTTP 403: {message}); the admin certificate is not registered in this cluster or lacks clearance: it must be ClusterAdmin (or Operator for non-admin certificates), e.g. listed in the nodes' Security.WellKnownCertificates.Admin")]
    Auth {
        /// The node.
        url: String,
        /// The server's message.
        message: String,
    },
    /// An HTTP 5xx without a message: what a RavenDB node answers while it is still starting
    /// (4.1 does for about a second after its start).
    #[error("{url}: the server answered HTTP {status} without a message, as a RavenDB node does while it is still starting; retry when RavenDB is up")]
    Starting {
        /// The node.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Any other HTTP error (RavenDB's JSON `Message` when it sent one).
    #[error("{url}: the server answered HTTP {status}: {message}")]
    Server {
        /// The node.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer was not what RavenDB sends.
    #[error("{url}: unexpected answer: {detail}")]
    Decode {
        /// The node and path.
        url: String,
        /// What did not parse.
        detail: String,
    },
}

/// Result of the cluster client.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// How the server's TLS certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Accept the connection iff the leaf's SHA-1 thumbprint is one of these (the store's
    /// server certificates). The hostname is not checked: the pin is stronger.
    Thumbprints(Vec<String>),
    /// Verify the chain against these CA certificate(s) (PEM) and the hostname.
    CaPem(Vec<u8>),
    /// Verify the chain against the system's roots and the hostname.
    System,
}

/// The client certificate ravencert authenticates with.
#[derive(Clone)]
pub enum Identity {
    /// A certificate and its unencrypted private key, PEM (a store's issued bundle).
    Pem {
        /// The certificate.
        cert: Vec<u8>,
        /// The private key.
        key: Vec<u8>,
    },
    /// A PKCS#12 file with its password.
    Pfx {
        /// The file's bytes.
        der: Vec<u8>,
        /// Its password (empty for none).
        password: String,
    },
}

impl std::fmt::Debug for Identity {
    // Never show the key or the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Pem { .. } => f.write_str("Identity::Pem(..)"),
            Identity::Pfx { .. } => f.write_str("Identity::Pfx(..)"),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The nodes, tried in order (`https://host:port`).
    pub urls: Vec<String>,
    /// The client certificate.
    pub identity: Identity,
    /// How the server is verified.
    pub pin: Pin,
    /// The limit of every request (connect, TLS, send, answer).
    pub timeout: Duration,
    /// Fixed addresses for host names (as curl's `--resolve`): `("localhost", 127.0.0.1:8080)`.
    /// Names not listed resolve through the system.
    pub resolve: Vec<(String, SocketAddr)>,
}

/// One request as sent: method, path with query, body bytes (empty when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// `GET`, `PUT`, `POST` or `DELETE`.
    pub method: String,
    /// The path and query, e.g. `/admin/certificates?secondary=true`.
    pub path: String,
    /// The body as sent.
    pub body: Vec<u8>,
}

/// Where [`Client::with_body_log`] records every request.
pub type BodyLog = Arc<Mutex<Vec<SentRequest>>>;

/// `GET /build/version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerVersion {
    /// Major.minor, e.g. `4.1`.
    pub product_version: String,
    /// The build number, e.g. `41001`.
    pub build_version: i64,
    /// The full version, e.g. `4.1.0`.
    #[serde(default)]
    pub full_version: String,
}

impl ServerVersion {
    /// Whether the server is at least `major.minor` (false when its version does not parse).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.product_version.split('.').map(str::parse::<u32>);
        match (parts.next(), parts.next()) {
            (Some(Ok(ma)), Some(Ok(mi))) => (ma, mi) >= (major, minor),
            _ => false,
        }
    }
}

/// A registration's clearance as the server lists it: a client's, or the servers' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedClearance {
    /// A client clearance (ravencert can declare these).
    Client(Clearance),
    /// A server certificate of the cluster (never touched by ravencert).
    ClusterNode,
    /// The server's value for unknown certificates.
    UnauthenticatedClients,
}

/// One certificate registered in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// SHA-1 thumbprint, 40 upper-case hex digits.
    pub thumbprint: String,
    /// The name shown in the Studio.
    pub name: String,
    /// Its clearance.
    pub clearance: ListedClearance,
    /// Database -> access.
    pub permissions: BTreeMap<String, Access>,
    /// For a collection's secondary: its primary's thumbprint.
    pub collection_primary: Option<String>,
    /// For a collection's primary: its secondaries' thumbprints.
    pub collection_secondaries: Vec<String>,
    /// The certificate's expiry, when the server lists it.
    pub not_after: Option<OffsetDateTime>,
    /// The public certificate (DER), when the server lists it (`adopt` writes it out).
    pub certificate: Option<Vec<u8>>,
    /// `Disabled` (RavenDB 7.2.2 and later): access suspended in the Studio, the registration
    /// kept. None when the server does not list it.
    pub disabled: Option<bool>,
    /// `Usage` (RavenDB 7.2.5 and later): `Client`, `RavenServer`,
    /// `RavenServerForCommunication`; None for older servers and older entries.
    pub usage: Option<String>,
}

/// A listed entry ravencert does not manage and never changes: an SSO user or server (no
/// certificate of its own) or a well-known issuer. Never unregistered, never a stranger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmanaged {
    /// Its `Thumbprint` as listed (an SSO entry's is a GUID, not a certificate's SHA-1).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Why ravencert leaves it alone: its `Usage`, or `WellKnownIssuer`.
    pub usage: String,
}

/// `GET /admin/certificates?secondary=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Every registration, secondaries included, that could be read and passed the checks.
    pub registrations: Vec<Registration>,
    /// Why each other registration was left out (unreadable, a thumbprint that is not its
    /// certificate's, a collection claim the other side does not make): for the plan's
    /// warnings. A registration left out is never changed.
    pub left_out: Vec<String>,
    /// Entries ravencert does not manage (SSO, well-known issuers): never changed.
    pub unmanaged: Vec<Unmanaged>,
    /// The thumbprint of the certificate the answering node serves.
    pub loaded_server_cert: Option<String>,
    /// `LoadedServerCertForCommunication` (RavenDB 7.1.5 and later): the certificate the node
    /// uses as a client towards other nodes, when it is not the one it serves. Never
    /// unregistered.
    pub loaded_server_cert_for_communication: Option<String>,
    /// The well-known admin thumbprints of the node's settings.
    pub well_known_admins: Vec<String>,
    /// The server's version, from the answer's `Raven-Server-Version` header.
    pub server_version: Option<ServerVersion>,
}

/// A blocking HTTPS client for one cluster's certificate endpoints.
pub struct Client {
    agent: ureq::Agent,
    urls: Vec<String>,
    /// The node that answered last, asked first next time.
    active: AtomicUsize,
    body_log: Option<BodyLog>,
    handshakes: Arc<AtomicUsize>,
    /// The nodes skipped because they did not answer, with why.
    skipped: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("urls", &self.urls).finish()
    }
}

impl Client {
    /// A client for `options.urls`. Checks the urls, the identity and the pin; connects to
    /// nothing yet.
    pub fn new(options: &ClientOptions) -> Result<Client> {
        if options.urls.is_empty() {
            return Err(ClusterError::NoUrls);
        }
        let urls = options
            .urls
            .iter()
            .map(|u| check_url(u))
            .collect::<Result<Vec<_>>>()?;
        let tls = OpensslTls::new(&options.identity, &options.pin)?;
        let handshakes = tls.handshakes.clone();
        let agent = ureq::AgentBuilder::new()
            .tls_connector(Arc::new(tls))
            .resolver(FixedResolver(options.resolve.clone()))
            .timeout(options.timeout)
            .redirects(0)
            .user_agent(concat!("ravencert/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent,
            urls,
            active: AtomicUsize::new(0),
            body_log: None,
            handshakes,
            skipped: Mutex::new(Vec::new()),
        })
    }

    /// Records every request (method, path, body) in `log`, for tests and audits.
    pub fn with_body_log(mut self, log: BodyLog) -> Client {
        self.body_log = Some(log);
        self
    }

    /// The nodes skipped so far because they did not answer (`URL did not answer (why)`), and
    /// forgets them: the caller reports them.
    pub fn take_skipped(&self) -> Vec<String> {
        self.skipped
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// The log [`Client::with_body_log`] records into, if any.
    pub fn body_log(&self) -> Option<&BodyLog> {
        self.body_log.as_ref()
    }

    /// The node asked first (the one that answered last).
    pub fn url(&self) -> &str {
        let i = self.active.load(Ordering::Relaxed);
        self.urls.get(i).map_or("", String::as_str)
    }

    /// How many TLS connections this client has opened (kept-alive ones are reused).
    pub fn connections_opened(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// The server's version (`GET /build/version`).
    pub fn version(&self) -> Result<ServerVersion> {
        let (url, body) = self.send("GET", "/build/version", None)?;
        serde_json::from_slice(&body).map_err(|e| ClusterError::Decode {
            url: format!("{url}/build/version"),
            detail: e.to_string(),
        })
    }

    /// Every registered certificate, collection secondaries included, and the server's version
    /// when the answer carries it (RavenDB sends `Raven-Server-Version` with every response, so
    /// a plan needs no second request).
    pub fn list(&self) -> Result<Listing> {
        let path = "/admin/certificates?secondary=true";
        let answer = self.send_answer("GET", path, None)?;
        let mut listing = decode_listing(&answer.body).map_err(|detail| ClusterError::Decode {
            url: format!("{}{path}", answer.url),
            detail,
        })?;
        listing.server_version = answer.version.as_deref().and_then(version_from_header);
        Ok(listing)
    }

    /// Registers the public certificate `der` (PUT): RavenDB overwrites an existing
    /// registration of the same certificate, so this is safe to repeat.
    pub fn register(
        &self,
        name: &str,
        der: &[u8],
        clearance: Clearance,
        permissions: &BTreeMap<String, Access>,
    ) -> Result<()> {
        let body = serde_json::json!({
            "Name": name,
            "Certificate": openssl::base64::encode_block(der),
            "SecurityClearance": clearance.to_string(),
            "Permissions": permissions,
        });
        self.send("PUT", "/admin/certificates", Some(&body))
            .map(drop)
    }

    /// Sets a registration's name, clearance and permissions (POST .../edit); the certificate
    /// and its thumbprint stay. What the edit leaves as it is: see [`edit_body`].
    pub fn edit(
        &self,
        thumbprint: &str,
        name: &str,
        clearance: Clearance,
        permissions: &BTreeMap<String, Access>,
        disabled: Option<bool>,
    ) -> Result<()> {
        let body = edit_body(thumbprint, name, clearance, permissions, disabled);
        self.send("POST", "/admin/certificates/edit", Some(&body))
            .map(drop)
    }

    /// Removes a registration (DELETE); an unknown thumbprint is not an error.
    pub fn unregister(&self, thumbprint: &str) -> Result<()> {
        let path = format!("/admin/certificates?thumbprint={}", query_value(thumbprint));
        self.send("DELETE", &path, None).map(drop)
    }

    /// Sends one request to the first node that answers, starting with the last one that did.
    /// Returns that node's url and the response body.
    fn send(
        &self,
        method: &str,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<(String, Vec<u8>)> {
        self.send_answer(method, path, json)
            .map(|a| (a.url, a.body))
    }

    /// [`Client::send`] with the answer's `Raven-Server-Version` header.
    fn send_answer(
        &self,
        method: &str,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let body = json.map(|j| j.to_string().into_bytes()).unwrap_or_default();
        if let Some(log) = &self.body_log {
            if let Ok(mut log) = log.lock() {
                log.push(SentRequest {
                    method: method.to_string(),
                    path: path.to_string(),
                    body: body.clone(),
                });
            }
        }
        let first = self.active.load(Ordering::Relaxed);
        let n = self.urls.len();
        let mut last = String::new();
        for k in 0..n {
            let i = (first + k) % n;
            let url = &self.urls[i];
            let request = self
                .agent
                .request(method, &format!("{url}{path}"))
                .set("Accept", "application/json");
            let sent = if json.is_some() {
                request
                    .set("Content-Type", "application/json; charset=utf-8")
                    .send_bytes(&body)
            } else {
                request.call()
            };
            match answer(url, sent) {
                // Skipped only when another node follows; the last one's failure is the error.
                Err(Outcome::Unreachable(detail)) if k + 1 < n => {
                    tracing::warn!(node = %url, "cluster node did not answer ({detail}); trying the next");
                    if let Ok(mut skipped) = self.skipped.lock() {
                        skipped.push(format!("{url} did not answer ({detail})"));
                    }
                    last = detail;
                }
                Err(Outcome::Unreachable(detail)) => last = detail,
                Err(Outcome::Failed(e)) => return Err(e),
                Ok((body, version)) => {
                    self.active.store(i, Ordering::Relaxed);
                    return Ok(Answer {
                        url: url.clone(),
                        body,
                        version,
                    });
                }
            }
        }
        Err(ClusterError::Unreachable {
            url: self.urls.join(", "),
            detail: last,
        })
    }
}

/// The body of `POST /admin/certificates/edit`. The server builds the new registration from
/// Name, SecurityClearance and Permissions of the body and keeps the certificate, its dates
/// and its usage (RavenDB 4.1 to 7.2, read from the handler). Two things an edit must leave
/// as the Studio set them:
/// - two-factor authentication (5.4 and later): an absent `TwoFactorAuthenticationKey` keeps
///   the stored key (only `?deleteTwoFactorConfiguration=true` drops it), so none is sent;
/// - `Disabled` (7.2.2 and later): an absent field keeps the stored value, and the value the
///   listing showed is sent back as it was, so an edit never re-enables a registration.
///
/// Servers newer than the last version checked are refused an edit by the planner.
pub fn edit_body(
    thumbprint: &str,
    name: &str,
    clearance: Clearance,
    permissions: &BTreeMap<String, Access>,
    disabled: Option<bool>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "Thumbprint": thumbprint,
        "Name": name,
        "SecurityClearance": clearance.to_string(),
        "Permissions": permissions,
    });
    if let (Some(disabled), Some(map)) = (disabled, body.as_object_mut()) {
        map.insert("Disabled".into(), serde_json::Value::Bool(disabled));
    }
    body
}

/// Why a request to one node did not give a body.
enum Outcome {
    /// The node did not answer: try the next.
    Unreachable(String),
    /// The node answered with an error, or TLS refused it: report.
    Failed(ClusterError),
}

/// A node's 2xx answer.
struct Answer {
    /// The node that answered.
    url: String,
    /// The body.
    body: Vec<u8>,
    /// Its `Raven-Server-Version` header, e.g. `4.1.0.41001`.
    version: Option<String>,
}

/// `Raven-Server-Version: 4.1.0.41001` as a [`ServerVersion`] (None when it does not parse).
fn version_from_header(value: &str) -> Option<ServerVersion> {
    let parts: Vec<&str> = value.trim().split('.').collect();
    let number = |i: usize| parts.get(i)?.parse::<u32>().ok();
    let (major, minor, patch) = (number(0)?, number(1)?, number(2).unwrap_or(0));
    Some(ServerVersion {
        product_version: format!("{major}.{minor}"),
        build_version: parts.get(3).and_then(|b| b.parse().ok()).unwrap_or(0),
        full_version: format!("{major}.{minor}.{patch}"),
    })
}

/// The body of a 2xx answer with its version header, or what went wrong.
fn answer(
    url: &str,
    sent: std::result::Result<ureq::Response, ureq::Error>,
) -> std::result::Result<(Vec<u8>, Option<String>), Outcome> {
    let response = match sent {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            let body = read_body(r).unwrap_or_default();
            return Err(Outcome::Failed(http_error(url, status, &body)));
        }
        Err(ureq::Error::Transport(t)) => return Err(transport_error(url, &t)),
    };
    let status = response.status();
    if !(200..300).contains(&status) {
        // Redirects are not followed: a node that sends one is misconfigured for ravencert.
        let location = response.header("Location").unwrap_or("").to_string();
        return Err(Outcome::Failed(ClusterError::Server {
            url: url.to_string(),
            status,
            message: format!("redirect to {location:?} not followed; give that node's https url in [cluster] urls"),
        }));
    }
    let version = response.header("Raven-Server-Version").map(str::to_string);
    let body = read_body(response)
        .map_err(|e| Outcome::Unreachable(format!("the answer broke off: {e}")))?;
    Ok((body, version))
}

fn read_body(response: ureq::Response) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_RESPONSE)
        .read_to_end(&mut body)?;
    Ok(body)
}

/// An HTTP error status as an error: RavenDB's JSON `Message`, or the start of the body.
fn http_error(url: &str, status: u16, body: &[u8]) -> ClusterError {
    #[derive(Deserialize)]
    struct RavenError {
        #[serde(rename = "Message")]
        message: Option<String>,
    }
    let url = url.to_string();
    if status >= 500 && String::from_utf8_lossy(body).trim().is_empty() {
        return ClusterError::Starting { url, status };
    }
    let message = serde_json::from_slice::<RavenError>(body)
        .ok()
        .and_then(|e| e.message)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.char_indices().nth(MAX_QUOTED) {
                Some((i, _)) => format!("{}...", &text[..i]),
                None if text.is_empty() => "(no message)".to_string(),
                None => text.to_string(),
            }
        });
    if status == 403 {
        ClusterError::Auth { url, message }
    } else {
        ClusterError::Server {
            url,
            status,
            message,
        }
    }
}

/// A failure below HTTP: a TLS refusal (ours, from the connector) is reported; anything else
/// means the node did not answer.
fn transport_error(url: &str, t: &ureq::Transport) -> Outcome {
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<io::Error>());
    if let Some(refusal) = io.and_then(|e| e.get_ref()?.downcast_ref::<TlsRefusal>()) {
        let url = url.to_string();
        return Outcome::Failed(match refusal {
            TlsRefusal::Pin {
                expected,
                presented,
            } => ClusterError::PinMismatch {
                url,
                expected: expected.clone(),
                presented: presented.clone(),
            },
            TlsRefusal::Handshake(detail) => ClusterError::Tls {
                url,
                detail: detail.clone(),
            },
        });
    }
    match t.kind() {
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
            Outcome::Failed(ClusterError::BadUrl {
                url: url.to_string(),
                detail: t.to_string(),
            })
        }
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => {
            Outcome::Failed(ClusterError::Decode {
                url: url.to_string(),
                detail: t.to_string(),
            })
        }
        _ => Outcome::Unreachable(t.to_string()),
    }
}

/// `https://host[:port][/path]` (a path for a node behind a reverse proxy) without a trailing
/// slash, query, fragment or credentials.
fn check_url(url: &str) -> Result<String> {
    let bad = |detail: &str| ClusterError::BadUrl {
        url: url.to_string(),
        detail: detail.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("it must start with https://"))?;
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
        return Err(bad(
            "it must be only the node's address (and path), without a query, fragment or user",
        ));
    }
    Ok(format!("https://{rest}"))
}

/// A thumbprint is hex; anything else is percent-encoded so it cannot change the query.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A collection's member as RavenDB 4.1 lists it: the document id `certificates/<THUMBPRINT>`
/// (the prefix's letters are hex digits too: stripped before normalizing), or a bare thumbprint.
fn collection_key(key: &str) -> String {
    let bare = key
        .get(..13)
        .filter(|p| p.eq_ignore_ascii_case("certificates/"))
        .map_or(key, |_| &key[13..]);
    normalize_thumbprint(bare)
}

/// Upper-case hex without separators, as RavenDB writes thumbprints.
fn normalize_thumbprint(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

// ---- the listing --------------------------------------------------------------------------
//
// What a cluster sends is untrusted: anyone with Operator clearance can name a registration,
// and a node (or whatever answers in its place) decides the rest. A listing is decoded entry by
// entry: an entry that cannot be read or fails a check is left out and reported (its
// thumbprint and name escaped at the output boundary), never a reason to stop planning (that
// would block every revocation) and never read with more access than it states.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawListing {
    results: Vec<serde_json::Value>,
    #[serde(default)]
    loaded_server_cert: Option<String>,
    #[serde(default)]
    well_known_admin_certs: Option<Vec<String>>,
    #[serde(default)]
    well_known_issuers: Option<Vec<String>>,
    #[serde(default)]
    loaded_server_cert_for_communication: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRegistration {
    #[serde(default)]
    thumbprint: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    security_clearance: Option<String>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    collection_primary_key: Option<String>,
    #[serde(default)]
    collection_secondary_keys: Option<Vec<String>>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    usage: Option<String>,
}

/// What one listed entry is to ravencert.
enum Decoded {
    Managed(Registration),
    Unmanaged(Unmanaged),
}

/// The `Usage` values of entries ravencert never manages: SSO users and servers (RavenDB 7.2.5
/// and later; no certificate of their own) and well-known issuers.
const UNMANAGED_USAGES: [&str; 3] = ["SsoClient", "SsoServer", "WellKnownIssuer"];
/// The `Usage` values of certificates ravencert manages or protects.
const KNOWN_USAGES: [&str; 3] = ["Client", "RavenServer", "RavenServerForCommunication"];

/// RavenDB 4.1 writes control characters raw into its JSON strings (a registration named
/// `x<U+0001>y`), which JSON forbids. Inside strings they become `\u00XX` escapes here, so
/// that one such name cannot make the whole listing unreadable; the name then reads as the
/// server holds it and is shown escaped.
fn escape_raw_controls(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.iter().any(|&b| b < 0x20) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if b < 0x20 {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                continue;
            }
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes a listing's body (for the fuzz target of the decoder: any input gives a listing or
/// an error, never a panic).
#[doc(hidden)]
pub fn decode_listing_bytes(body: &[u8]) -> std::result::Result<Listing, String> {
    decode_listing(body)
}

fn decode_listing(body: &[u8]) -> std::result::Result<Listing, String> {
    let body = escape_raw_controls(body);
    let raw: RawListing = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let issuers: Vec<String> = raw
        .well_known_issuers
        .unwrap_or_default()
        .iter()
        .map(|t| normalize_thumbprint(t))
        .collect();
    let mut registrations = Vec::with_capacity(raw.results.len());
    let mut unmanaged = Vec::new();
    let mut left_out = Vec::new();
    for value in raw.results {
        match decode_registration(value) {
            Ok(Decoded::Managed(r)) if issuers.contains(&r.thumbprint) => {
                unmanaged.push(Unmanaged {
                    id: r.thumbprint,
                    name: r.name,
                    usage: "WellKnownIssuer".into(),
                })
            }
            Ok(Decoded::Managed(r)) => registrations.push(r),
            Ok(Decoded::Unmanaged(u)) => unmanaged.push(u),
            Err(why) => left_out.push(why),
        }
    }
    let mut listing = Listing {
        registrations,
        left_out,
        unmanaged,
        loaded_server_cert: raw
            .loaded_server_cert
            .filter(|t| !t.is_empty())
            .map(|t| normalize_thumbprint(&t)),
        loaded_server_cert_for_communication: raw
            .loaded_server_cert_for_communication
            .filter(|t| !t.is_empty())
            .map(|t| normalize_thumbprint(&t)),
        well_known_admins: raw
            .well_known_admin_certs
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_thumbprint(t))
            .collect(),
        server_version: None,
    };
    drop_repeated(&mut listing);
    check_collections(&mut listing);
    Ok(listing)
}

/// A thumbprint listed more than once is ambiguous (a server lists each registration once):
/// which entry holds its name, clearance and collection is anybody's guess, so every entry of
/// it is left out and reported.
fn drop_repeated(listing: &mut Listing) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &listing.registrations {
        *count.entry(r.thumbprint.as_str()).or_default() += 1;
    }
    let repeated: Vec<(String, usize)> = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    for (t, n) in &repeated {
        listing.left_out.push(format!(
            "cluster: registration {t} is listed {n} times; it is left alone"
        ));
    }
    listing
        .registrations
        .retain(|r| !repeated.iter().any(|(t, _)| *t == r.thumbprint));
}

/// A registration for a report: its thumbprint and name as the server sent them (shown
/// escaped at the output boundary), capped.
fn described(thumbprint: Option<&str>, name: Option<&str>) -> String {
    let cap = |s: &str| -> String {
        let s = s.escape_debug().to_string();
        let mut out: String = s.chars().take(80).collect();
        if s.chars().nth(80).is_some() {
            out.push('…');
        }
        out
    };
    match (thumbprint, name) {
        (Some(t), Some(n)) => format!("registration {} ('{}')", cap(t), cap(n)),
        (Some(t), None) => format!("registration {}", cap(t)),
        (None, Some(n)) => format!("registration '{}'", cap(n)),
        (None, None) => "a registration".to_string(),
    }
}

fn decode_registration(value: serde_json::Value) -> std::result::Result<Decoded, String> {
    let raw: RawRegistration = serde_json::from_value(value)
        .map_err(|e| format!("cluster: a registration cannot be read ({e}); it is left alone"))?;
    let who = described(raw.thumbprint.as_deref(), raw.name.as_deref());
    let fail = |why: String| format!("cluster: {who} {why}; it is left alone");
    match raw.usage.as_deref() {
        Some(u) if UNMANAGED_USAGES.contains(&u) => {
            return Ok(Decoded::Unmanaged(Unmanaged {
                id: raw.thumbprint.unwrap_or_default(),
                name: raw.name.unwrap_or_default(),
                usage: u.to_string(),
            }))
        }
        Some(u) if !KNOWN_USAGES.contains(&u) => {
            return Err(fail(format!("has a Usage ravencert does not know ({u:?})")))
        }
        _ => {}
    }
    let thumbprint = match raw.thumbprint.as_deref().map(normalize_thumbprint) {
        Some(t) if t.len() == 40 && raw.thumbprint.as_deref().is_some_and(|r| r.len() == 40) => t,
        _ => return Err(fail("has no valid thumbprint (40 hex digits)".into())),
    };
    let clearance = match raw.security_clearance.as_deref() {
        Some("ClusterAdmin") => ListedClearance::Client(Clearance::ClusterAdmin),
        Some("Operator") => ListedClearance::Client(Clearance::Operator),
        Some("ValidUser") => ListedClearance::Client(Clearance::ValidUser),
        Some("ClusterNode") => ListedClearance::ClusterNode,
        Some("UnauthenticatedClients") => ListedClearance::UnauthenticatedClients,
        Some(other) => return Err(fail(format!("has an unknown SecurityClearance {other:?}"))),
        None => return Err(fail("has no SecurityClearance".into())),
    };
    let permissions = decode_permissions(raw.permissions.unwrap_or_default()).map_err(fail)?;
    let not_after = match raw.not_after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            parse_date(text)
                .ok_or_else(|| fail(format!("has a NotAfter {text:?} that is not a date")))?,
        ),
    };
    let certificate = match raw.certificate.as_deref() {
        None | Some("") => None,
        Some(b64) => {
            let der = openssl::base64::decode_block(b64.trim())
                .map_err(|_| fail("has a Certificate that is not base64".into()))?;
            // The thumbprint is what every decision keys on: it must be the certificate's.
            if pki::thumbprint(&der) != thumbprint {
                return Err(fail(format!(
                    "lists a Certificate whose SHA-1 is {}, not its Thumbprint",
                    pki::thumbprint(&der)
                )));
            }
            Some(der)
        }
    };
    Ok(Decoded::Managed(Registration {
        certificate,
        disabled: raw.disabled,
        usage: raw.usage,
        thumbprint,
        name: raw.name.unwrap_or_default(),
        clearance,
        permissions,
        collection_primary: raw
            .collection_primary_key
            .filter(|k| !k.is_empty())
            .map(|k| collection_key(&k)),
        collection_secondaries: raw
            .collection_secondary_keys
            .unwrap_or_default()
            .iter()
            .map(|k| collection_key(k))
            .collect(),
        not_after,
    }))
}

/// Database -> access, every access one ravencert knows (an unknown one could be anything).
fn decode_permissions(
    raw: BTreeMap<String, String>,
) -> std::result::Result<BTreeMap<String, Access>, String> {
    raw.into_iter()
        .map(|(db, access)| {
            let access = match access.as_str() {
                "Admin" => Access::Admin,
                "ReadWrite" => Access::ReadWrite,
                "Read" => Access::Read,
                other => return Err(format!("grants an unknown access {other:?}")),
            };
            Ok((db, access))
        })
        .collect()
}

/// A collection is two claims that must agree: a primary lists its secondaries, and each
/// secondary names its primary. A claim the other side does not make would let a listing pull
/// one registration's certificate under another's clearance (adopt writes a collection as one
/// client): the registration making it is left out and reported, until none is left.
fn check_collections(listing: &mut Listing) {
    use std::collections::BTreeSet;
    // At most four rounds: a secondary left out leaves its primary one-sided, whose other
    // secondaries then point at nothing. Each round is n log n, whatever the listing holds
    // (collection members are hex thumbprints: safe to show as they are).
    loop {
        let primaries: BTreeMap<&str, &Registration> = listing
            .registrations
            .iter()
            .filter(|r| r.collection_primary.is_none())
            .map(|r| (r.thumbprint.as_str(), r))
            .collect();
        let named_back: BTreeSet<(&str, &str)> = listing
            .registrations
            .iter()
            .filter_map(|r| Some((r.collection_primary.as_deref()?, r.thumbprint.as_str())))
            .collect();
        let listed: BTreeSet<(&str, &str)> = primaries
            .values()
            .flat_map(|p| {
                p.collection_secondaries
                    .iter()
                    .map(|s| (p.thumbprint.as_str(), s.as_str()))
            })
            .collect();
        let mut bad: Vec<(String, String)> = Vec::new();
        for r in &listing.registrations {
            let who = described(Some(&r.thumbprint), Some(&r.name));
            if let Some(p) = &r.collection_primary {
                let agrees = primaries.contains_key(p.as_str())
                    && listed.contains(&(p.as_str(), r.thumbprint.as_str()))
                    && r.collection_secondaries.is_empty();
                if !agrees {
                    bad.push((
                        r.thumbprint.clone(),
                        format!("cluster: {who} names {p} as its collection's primary, which does not list it back; it is left alone"),
                    ));
                }
            } else if let Some(s) = r
                .collection_secondaries
                .iter()
                .find(|s| !named_back.contains(&(r.thumbprint.as_str(), s.as_str())))
            {
                bad.push((
                    r.thumbprint.clone(),
                    format!("cluster: {who} lists {s} as a secondary of its collection, which does not name it back; it is left alone"),
                ));
            }
        }
        if bad.is_empty() {
            return;
        }
        let gone: BTreeSet<String> = bad.iter().map(|(t, _)| t.clone()).collect();
        listing.left_out.extend(bad.into_iter().map(|(_, why)| why));
        listing
            .registrations
            .retain(|r| !gone.contains(&r.thumbprint));
    }
}

/// .NET's round-trip form, `2027-11-28T17:05:53.0000000` (UTC) with an optional `Z` or offset.
fn parse_date(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let (date, time_part) = text.trim_end_matches('Z').split_once('T')?;
    let whole = time_part.split('.').next()?;
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(&format!("{date}T{whole}"), &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

// ---- TLS ----------------------------------------------------------------------------------

/// Why our TLS connector refused a node; carried through ureq inside an `io::Error`.
#[derive(Debug, thiserror::Error)]
enum TlsRefusal {
    #[error("pinned thumbprint mismatch: presented {presented}")]
    Pin {
        expected: Vec<String>,
        presented: String,
    },
    #[error("{0}")]
    Handshake(String),
}

/// ureq's TLS: OpenSSL with the client certificate and the pin.
struct OpensslTls {
    connector: SslConnector,
    /// TLS connections opened so far (for the keep-alive checks).
    handshakes: Arc<AtomicUsize>,
    /// `Some` for [`Pin::Thumbprints`]: checked after the handshake, before any request byte.
    thumbprints: Option<Vec<String>>,
}

impl OpensslTls {
    fn new(identity: &Identity, pin: &Pin) -> Result<OpensslTls> {
        let identity_error = |e: openssl::error::ErrorStack| ClusterError::Identity {
            detail: e.to_string(),
        };
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(identity_error)?;
        let (cert, key, chain) = load_identity(identity)?;
        builder.set_certificate(&cert).map_err(identity_error)?;
        builder.set_private_key(&key).map_err(identity_error)?;
        builder
            .check_private_key()
            .map_err(|e| ClusterError::Identity {
                detail: format!("the private key does not belong to the certificate ({e})"),
            })?;
        for extra in chain {
            builder
                .add_extra_chain_cert(extra)
                .map_err(identity_error)?;
        }
        let thumbprints = match pin {
            Pin::Thumbprints(list) => {
                // The pin decides; OpenSSL's chain verdict is ignored (a self-issued CA as end
                // entity would fail it anyway).
                builder.set_verify(SslVerifyMode::NONE);
                Some(list.iter().map(|t| normalize_thumbprint(t)).collect())
            }
            Pin::CaPem(pem) => {
                builder.set_cert_store(ca_store(pem)?);
                None
            }
            Pin::System => None,
        };
        Ok(OpensslTls {
            connector: builder.build(),
            handshakes: Arc::new(AtomicUsize::new(0)),
            thumbprints,
        })
    }
}

type LoadedIdentity = (X509, PKey<openssl::pkey::Private>, Vec<X509>);

fn load_identity(identity: &Identity) -> Result<LoadedIdentity> {
    let detail = |what: &str, e: openssl::error::ErrorStack| ClusterError::Identity {
        detail: format!("{what}: {e}"),
    };
    match identity {
        Identity::Pem { cert, key } => Ok((
            X509::from_pem(cert).map_err(|e| detail("the certificate is not PEM", e))?,
            PKey::private_key_from_pem(key)
                .map_err(|e| detail("the private key is not an unencrypted PEM key", e))?,
            Vec::new(),
        )),
        Identity::Pfx { der, password } => {
            let parsed = Pkcs12::from_der(der)
                .and_then(|p| p.parse2(password))
                .map_err(|e| detail("the .pfx cannot be opened (wrong password?)", e))?;
            let missing = |what: &str| ClusterError::Identity {
                detail: format!("the .pfx holds no {what}"),
            };
            let chain = parsed
                .ca
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            Ok((
                parsed.cert.ok_or_else(|| missing("certificate"))?,
                parsed.pkey.ok_or_else(|| missing("private key"))?,
                chain,
            ))
        }
    }
}

fn ca_store(pem: &[u8]) -> Result<openssl::x509::store::X509Store> {
    let ca_error = |e: openssl::error::ErrorStack| ClusterError::Ca {
        detail: e.to_string(),
    };
    let certs = X509::stack_from_pem(pem).map_err(ca_error)?;
    if certs.is_empty() {
        return Err(ClusterError::Ca {
            detail: "the file holds no PEM certificate".to_string(),
        });
    }
    let mut store = X509StoreBuilder::new().map_err(ca_error)?;
    for cert in certs {
        store.add_cert(cert).map_err(ca_error)?;
    }
    Ok(store.build())
}

impl ureq::TlsConnector for OpensslTls {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> std::result::Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let refuse = |r: TlsRefusal| ureq::Error::from(io::Error::other(r));
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        let mut config = self
            .connector
            .configure()
            .map_err(|e| refuse(TlsRefusal::Handshake(e.to_string())))?;
        if self.thumbprints.is_some() {
            config.set_verify_hostname(false);
        }
        let stream = config.connect(dns_name, io).map_err(|e| match e {
            HandshakeError::WouldBlock(_) => ureq::Error::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
            HandshakeError::SetupFailure(e) => refuse(TlsRefusal::Handshake(e.to_string())),
            HandshakeError::Failure(mid) => refuse(TlsRefusal::Handshake(handshake_detail(&mid))),
        })?;
        if let Some(expected) = &self.thumbprints {
            let presented = stream
                .ssl()
                .peer_certificate()
                .and_then(|c| c.to_der().ok())
                .map(|der| pki::thumbprint(&der))
                .unwrap_or_else(|| "(none)".to_string());
            if !expected.contains(&presented) {
                return Err(refuse(TlsRefusal::Pin {
                    expected: expected.clone(),
                    presented,
                }));
            }
        }
        Ok(Box::new(TlsStream(stream)))
    }
}

/// OpenSSL's reason, with the verification verdict when that was it.
fn handshake_detail(mid: &openssl::ssl::MidHandshakeSslStream<Box<dyn ureq::ReadWrite>>) -> String {
    let verify = mid.ssl().verify_result();
    if verify == openssl::x509::X509VerifyResult::OK {
        mid.error().to_string()
    } else {
        format!(
            "the server certificate did not verify: {}",
            verify.error_string()
        )
    }
}

/// An OpenSSL stream as ureq's transport.
#[derive(Debug)]
struct TlsStream(SslStream<Box<dyn ureq::ReadWrite>>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for TlsStream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.get_ref().socket()
    }
}

/// `ClientOptions::resolve` first, then the system.
struct FixedResolver(Vec<(String, SocketAddr)>);

impl ureq::Resolver for FixedResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = netloc.rsplit_once(':').unwrap_or((netloc, "443"));
        let fixed: Vec<SocketAddr> = self
            .0
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, addr)| {
                let mut addr = *addr;
                if let Ok(port) = port.parse() {
                    addr.set_port(port);
                }
                addr
            })
            .collect();
        if fixed.is_empty() {
            netloc.to_socket_addrs().map(Iterator::collect)
        } else {
            Ok(fixed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            check_url("https://a.example.com:443/").unwrap(),
            "https://a.example.com:443"
        );
        assert!(matches!(
            check_url("http://a"),
            Err(ClusterError::BadUrl { .. })
        ));
        // A path: a node behind a reverse proxy, as [cluster] urls allow.
        assert_eq!(check_url("https://a/raven/").unwrap(), "https://a/raven");
        assert!(matches!(
            check_url("https://a/x?y=1"),
            Err(ClusterError::BadUrl { .. })
        ));
        assert!(matches!(
            check_url("https://user@a"),
            Err(ClusterError::BadUrl { .. })
        ));
        assert!(matches!(
            check_url("https://"),
            Err(ClusterError::BadUrl { .. })
        ));
    }

    /// A listing entry for the tests: `der`'s real thumbprint unless `thumbprint` is given.
    fn entry(name: &str, der: &[u8], clearance: &str, extra: &str) -> String {
        format!(
            r#"{{"Name":{},"Certificate":"{}","Thumbprint":"{}","SecurityClearance":"{clearance}"{extra}}}"#,
            serde_json::to_string(name).unwrap(),
            openssl::base64::encode_block(der),
            pki::thumbprint(der)
        )
    }

    fn der(n: u32) -> Vec<u8> {
        test_certificate(n)
    }

    /// A self-signed certificate, different for each `n`.
    fn test_certificate(n: u32) -> Vec<u8> {
        use openssl::{asn1::Asn1Time, bn::BigNum, ec, nid::Nid, x509::X509Name};
        let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", &format!("c{n}")).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_serial_number(&BigNum::from_u32(n + 1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        b.build().to_der().unwrap()
    }

    #[test]
    fn listing_decodes_and_ignores_unknown_fields() {
        let (s, a) = (der(1), der(2));
        let body = format!(
            r#"{{"Results":[{},{}],"LoadedServerCert":"{}","WellKnownAdminCerts":["99aa"],"Extra":1}}"#,
            entry(
                "Server Certificate",
                &s,
                "ClusterNode",
                r#","NotAfter":"2027-11-28T17:05:53.0000000","Permissions":{},"CollectionPrimaryKey":"","CollectionSecondaryKeys":[],"NotBefore":"x","PublicKeyPinningHash":"y""#
            ),
            entry(
                "app",
                &a,
                "ValidUser",
                r#","Permissions":{"Orders":"ReadWrite"},"Usage":"Client","Disabled":false"#
            ),
            pki::thumbprint(&s).to_lowercase(),
        );
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert_eq!(listing.left_out, Vec::<String>::new());
        assert_eq!(listing.loaded_server_cert, Some(pki::thumbprint(&s)));
        assert_eq!(listing.well_known_admins, vec!["99AA"]);
        assert_eq!(listing.server_version, None);
        let server = &listing.registrations[0];
        assert_eq!(server.clearance, ListedClearance::ClusterNode);
        assert_eq!(server.collection_primary, None);
        assert_eq!(
            server.not_after,
            Some(time::macros::datetime!(2027-11-28 17:05:53 UTC))
        );
        let app = &listing.registrations[1];
        assert_eq!(app.clearance, ListedClearance::Client(Clearance::ValidUser));
        assert_eq!(app.permissions["Orders"], Access::ReadWrite);
    }

    /// RavenDB 7.2's listing: the newer fields decode, and what ravencert does not manage (an
    /// SSO user without a certificate, a well-known issuer) is set apart, not reported as bad.
    #[test]
    fn a_72_listing_decodes_its_newer_fields() {
        let body = include_bytes!("../tests/fixtures/ravendb-listings/ravendb-7.2.json");
        let listing = decode_listing(body).unwrap();
        assert_eq!(listing.left_out, Vec::<String>::new());
        let usages: Vec<(&str, &str)> = listing
            .unmanaged
            .iter()
            .map(|u| (u.name.as_str(), u.usage.as_str()))
            .collect();
        assert_eq!(
            usages,
            vec![
                ("alice", "SsoClient"),
                ("Corporate Issuer", "WellKnownIssuer")
            ]
        );
        assert_eq!(
            listing.loaded_server_cert_for_communication.as_deref(),
            Some("6091A4FEA6F248728C6BBD5F0A3E05219E0DFA4B")
        );
        let batch = listing
            .registrations
            .iter()
            .find(|r| r.name == "Batch")
            .unwrap();
        assert_eq!(batch.disabled, Some(true));
        assert_eq!(batch.usage.as_deref(), Some("Client"));
        let legacy = listing
            .registrations
            .iter()
            .find(|r| r.name == "Legacy Entry")
            .unwrap();
        assert_eq!(legacy.usage, None);
        // An unknown usage is left alone and reported, never guessed at.
        let body = String::from_utf8(body.to_vec())
            .unwrap()
            .replace(r#""Usage": "Client""#, r#""Usage": "Robot""#);
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert!(listing.left_out.iter().all(|w| w.contains("\"Robot\"")));
        assert_eq!(listing.left_out.len(), 3, "{:?}", listing.left_out);
    }

    /// An edit sends no two-factor key (absent keeps the stored one), and sends back the
    /// Disabled the listing showed (so it never enables a registration); without one, none.
    #[test]
    fn an_edit_leaves_two_factor_and_disabled_as_they_are() {
        let perms = BTreeMap::from([("Orders".to_string(), Access::Read)]);
        let body = edit_body("AB", "n", Clearance::ValidUser, &perms, Some(true));
        assert_eq!(body["Disabled"], serde_json::Value::Bool(true));
        assert_eq!(body["Permissions"]["Orders"], "Read");
        assert!(body.get("TwoFactorAuthenticationKey").is_none());
        let body = edit_body("AB", "n", Clearance::ValidUser, &perms, None);
        assert!(body.get("Disabled").is_none());
    }

    #[test]
    fn one_bad_entry_is_left_out_and_the_rest_is_read() {
        let (good, other) = (der(3), der(4));
        let body = format!(
            r#"{{"Results":[{},{},{},{},{}]}}"#,
            entry("good", &good, "ValidUser", ""),
            entry("root?", &other, "Root", ""),
            entry(
                "bad access",
                &other,
                "ValidUser",
                r#","Permissions":{"Orders":"Owner"}"#
            ),
            r#"{"Name":"no thumbprint","SecurityClearance":"ClusterAdmin"}"#,
            r#"{"Name":42}"#,
        );
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert_eq!(listing.registrations.len(), 1);
        assert_eq!(listing.registrations[0].name, "good");
        assert_eq!(listing.left_out.len(), 4, "{:?}", listing.left_out);
        assert!(
            listing.left_out[0].contains("\"Root\""),
            "{:?}",
            listing.left_out
        );
        assert!(listing
            .left_out
            .iter()
            .all(|w| w.ends_with("it is left alone")));
    }

    #[test]
    fn a_raw_control_character_in_a_name_does_not_stop_the_listing() {
        // RavenDB 4.1 writes U+0001 raw inside the string, which JSON forbids.
        let (a, b) = (der(5), der(6));
        let body = format!(
            r#"{{"Results":[{},{}]}}"#,
            entry("xQy", &a, "Operator", ""),
            entry("tab\there", &b, "ValidUser", ""),
        )
        .replace("xQy", "x\u{1}y\ttab\nline")
        .into_bytes();
        assert!(body.contains(&1u8) && body.contains(&b'\n'));
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        let listing = decode_listing(&body).unwrap();
        assert_eq!(listing.registrations[0].name, "x\u{1}y\ttab\nline");
        assert_eq!(listing.registrations[1].name, "tab\there");
        // Pretty-printed JSON (white space between tokens) is left as it is.
        let pretty = b"{\n\t\"Results\": [ ]\r\n}";
        assert!(decode_listing(pretty).unwrap().registrations.is_empty());
    }

    /// Found by the fuzzer: the same thumbprint twice, once as a plain registration and once
    /// as a collection's primary, made the collection check read one entry and the planner the
    /// other.
    #[test]
    fn a_thumbprint_listed_twice_is_left_out() {
        let (p, s) = (der(12), der(13));
        let (tp, ts) = (pki::thumbprint(&p), pki::thumbprint(&s));
        let body = format!(
            r#"{{"Results":[{},{},{}]}}"#,
            entry("Root", &p, "ClusterAdmin", ""),
            entry(
                "Root",
                &p,
                "ClusterAdmin",
                &format!(r#","CollectionSecondaryKeys":["{ts}"]"#)
            ),
            entry(
                "Root",
                &s,
                "ClusterAdmin",
                &format!(r#","CollectionPrimaryKey":"{tp}""#)
            ),
        );
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert!(
            listing.registrations.is_empty(),
            "{:?}",
            listing.registrations
        );
        assert!(
            listing.left_out[0].contains("listed 2 times"),
            "{:?}",
            listing.left_out
        );
        let regression = include_bytes!(
            "../fuzz/regressions/cluster_listing/crash-2d77f94fff2adcf529f79d325afad214bcdc4d18"
        );
        let listing = decode_listing(regression).unwrap();
        for r in &listing.registrations {
            if let Some(p) = &r.collection_primary {
                let primary = listing.registrations.iter().find(|x| &x.thumbprint == p);
                assert!(primary.is_some_and(|x| x.collection_secondaries.contains(&r.thumbprint)));
            }
        }
    }

    #[test]
    fn a_thumbprint_that_is_not_its_certificates_is_left_out() {
        let (real, other) = (der(7), der(8));
        let lying = entry("Root", &real, "ClusterAdmin", "")
            .replace(&pki::thumbprint(&real), &pki::thumbprint(&other));
        let body = format!(r#"{{"Results":[{lying}]}}"#);
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert!(listing.registrations.is_empty());
        assert!(
            listing.left_out[0].contains("not its Thumbprint"),
            "{:?}",
            listing.left_out
        );
    }

    #[test]
    fn a_collection_claim_the_other_side_does_not_make_is_left_out() {
        let (p, s, stray) = (der(9), der(10), der(11));
        let (tp, ts, tx) = (
            pki::thumbprint(&p),
            pki::thumbprint(&s),
            pki::thumbprint(&stray),
        );
        // The primary lists two secondaries; only one names it back. The stray is a separate
        // ValidUser registration that the ClusterAdmin primary tries to pull in.
        let body = format!(
            r#"{{"Results":[{},{},{}]}}"#,
            entry(
                "Root",
                &p,
                "ClusterAdmin",
                &format!(r#","CollectionSecondaryKeys":["certificates/{ts}","{tx}"]"#)
            ),
            entry(
                "Root",
                &s,
                "ClusterAdmin",
                &format!(r#","CollectionPrimaryKey":"certificates/{tp}""#)
            ),
            entry(
                "Reader",
                &stray,
                "ValidUser",
                r#","Permissions":{"Orders":"ReadWrite"}"#
            ),
        );
        let listing = decode_listing(body.as_bytes()).unwrap();
        let kept: Vec<&str> = listing
            .registrations
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        // The primary is left out; its real secondary then points at nothing and goes too.
        assert_eq!(kept, vec!["Reader"], "{:?}", listing.left_out);
        assert_eq!(
            listing.registrations[0].clearance,
            ListedClearance::Client(Clearance::ValidUser)
        );
        assert_eq!(listing.left_out.len(), 2, "{:?}", listing.left_out);
        // A consistent collection stays whole.
        let body = format!(
            r#"{{"Results":[{},{}]}}"#,
            entry(
                "Root",
                &p,
                "ClusterAdmin",
                &format!(r#","CollectionSecondaryKeys":["certificates/{ts}"]"#)
            ),
            entry(
                "Root",
                &s,
                "ClusterAdmin",
                &format!(r#","CollectionPrimaryKey":"certificates/{tp}""#)
            ),
        );
        let listing = decode_listing(body.as_bytes()).unwrap();
        assert_eq!(listing.registrations.len(), 2, "{:?}", listing.left_out);
        assert_eq!(
            listing.registrations[1].collection_primary.as_deref(),
            Some(tp.as_str())
        );
    }

    #[test]
    fn server_errors_quote_ravendbs_message() {
        // A node still starting answers 500 with nothing in it: said so, with the way out.
        let e = http_error("https://a", 500, b"");
        assert!(
            matches!(e, ClusterError::Starting { status: 500, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("retry when RavenDB is up"), "{e}");
        let e = http_error("https://a", 500, br#"{"Type":"X","Message":"boom"}"#);
        assert!(
            matches!(e, ClusterError::Server { status: 500, ref message, .. } if message == "boom")
        );
        let e = http_error(
            "https://a",
            403,
            br#"{"Type":"InvalidAuth","Message":"no"}"#,
        );
        assert!(e.to_string().contains("not registered"), "{e}");
    }

    #[test]
    fn versions_compare() {
        let v = |p: &str| ServerVersion {
            product_version: p.into(),
            build_version: 0,
            full_version: String::new(),
        };
        assert!(v("4.1").at_least(4, 1));
        assert!(!v("4.1").at_least(5, 2));
        assert!(v("6.0").at_least(5, 2));
        assert!(!v("x").at_least(1, 0));
    }

    #[test]
    fn query_values_cannot_break_out() {
        assert_eq!(query_value("AB12"), "AB12");
        assert_eq!(query_value("a&b=c"), "a%26b%3Dc");
    }

    #[test]
    fn the_version_header_reads_as_the_version_endpoint_does() {
        let v = version_from_header("4.1.0.41001").unwrap();
        assert_eq!(v.product_version, "4.1");
        assert_eq!(v.build_version, 41001);
        assert_eq!(v.full_version, "4.1.0");
        assert!(v.at_least(4, 1) && !v.at_least(5, 2));
        assert_eq!(
            version_from_header("6.0.105-nightly")
                .unwrap()
                .product_version,
            "6.0"
        );
        assert_eq!(version_from_header("5.4").unwrap().full_version, "5.4.0");
        assert_eq!(version_from_header("garbage"), None);
    }

    #[test]
    fn collection_members_are_read_from_their_document_ids() {
        let t = "06B5AF23480C83FA3AD8ECB3D507EBE474EBE685";
        assert_eq!(collection_key(&format!("certificates/{t}")), t);
        assert_eq!(
            collection_key(&format!("Certificates/{}", t.to_lowercase())),
            t
        );
        assert_eq!(collection_key(t), t);
        assert_eq!(collection_key("cert"), "CE");
    }
}
