//! [`Client`]: the requests, the failover between nodes, and how an answer (or its absence)
//! becomes a result.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::tls::{FixedResolver, OpensslTls, TlsRefusal};
use super::wire::{
    decode_build_version, decode_last_used, decode_listing, edit_body, version_from_header,
};
use super::{
    BodyLog, ClientOptions, ClusterError, Listing, Result, SentRequest, ServerVersion, Usage,
};
use crate::model::{Access, Clearance};

/// The largest response body read (a listing of 1,000 certificates is about 1 MB).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;
/// The longest server message quoted in an error when the body is not RavenDB's JSON.
const MAX_QUOTED: usize = 500;

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
        let (url, body) = self.send("GET", "/build/version", &[], None)?;
        decode_build_version(&url, &body)
    }

    /// Every registered certificate, collection secondaries included, and the server's version
    /// when the answer carries it (RavenDB sends `Raven-Server-Version` with every response, so
    /// a plan needs no second request).
    pub fn list(&self) -> Result<Listing> {
        let query = [("secondary", "true")];
        let answer = self.send_answer("GET", "/admin/certificates", &query, None)?;
        let mut listing = decode_listing(&answer.body).map_err(|detail| ClusterError::Decode {
            url: format!("{}{}", answer.url, answer.path),
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
        self.send("PUT", "/admin/certificates", &[], Some(&body))
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
        self.send("POST", "/admin/certificates/edit", &[], Some(&body))
            .map(drop)
    }

    /// When each certificate was last used, as the answering node saw it since it started
    /// (`GET /admin/stats`, its `LastRequestTimePerCertificate`). None where the server does
    /// not say: no such route (RavenDB 4.1 answers 400 `There is no handler for path`; 404),
    /// or an answer without the field.
    pub fn last_used(&self) -> Result<Option<Usage>> {
        let (url, body) = match self.send("GET", "/admin/stats", &[], None) {
            Err(e) if no_such_route(&e) => return Ok(None),
            other => other?,
        };
        let decoded = decode_last_used(&body).map_err(|detail| ClusterError::Decode {
            url: format!("{url}/admin/stats"),
            detail,
        })?;
        Ok(decoded.map(|usage| Usage { node: url, ..usage }))
    }

    /// Removes a registration (DELETE); an unknown thumbprint is not an error.
    pub fn unregister(&self, thumbprint: &str) -> Result<()> {
        let query = [("thumbprint", thumbprint)];
        self.send("DELETE", "/admin/certificates", &query, None)
            .map(drop)
    }

    /// Sends one request to the first node that answers, starting with the last one that did.
    /// Returns that node's url and the response body.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        json: Option<&serde_json::Value>,
    ) -> Result<(String, Vec<u8>)> {
        self.send_answer(method, path, query, json)
            .map(|a| (a.url, a.body))
    }

    /// The request to node `url`: `path`, then the `query` pairs as ureq encodes them
    /// (form-urlencoded: whatever a value holds, it stays one value).
    fn request(
        &self,
        method: &str,
        url: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> ureq::Request {
        let mut request = self.agent.request(method, &format!("{url}{path}"));
        // One pair at a time: without any, the url keeps no empty `?`.
        for (name, value) in query {
            request = request.query(name, value);
        }
        request.set("Accept", "application/json")
    }

    /// Records a request in the body log, if there is one.
    fn log(&self, method: &str, path: &str, body: &[u8]) {
        if let Some(log) = &self.body_log {
            if let Ok(mut log) = log.lock() {
                log.push(SentRequest {
                    method: method.to_string(),
                    path: path.to_string(),
                    body: body.to_vec(),
                });
            }
        }
    }

    /// [`Client::send`] with the answer's `Raven-Server-Version` header.
    fn send_answer(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        json: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let body = json.map(|j| j.to_string().into_bytes()).unwrap_or_default();
        let first = self.active.load(Ordering::Relaxed);
        let n = self.urls.len();
        let mut last = String::new();
        let mut sent_path = String::new();
        for k in 0..n {
            let i = (first + k) % n;
            let url = &self.urls[i];
            let request = self.request(method, url, path, query);
            if k == 0 {
                // Logged once, before anything is sent, as the first node is sent it.
                sent_path = path_as_sent(path, request.url());
                self.log(method, &sent_path, &body);
            }
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
                        path: sent_path,
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

/// Whether `e` says the server has no such endpoint: a 404, or the 400 RavenDB 4.1 answers for
/// a path it does not route (`There is no handler for path: GET /admin/stats`).
pub(super) fn no_such_route(e: &ClusterError) -> bool {
    match e {
        ClusterError::Server { status: 404, .. } => true,
        ClusterError::Server {
            status: 400,
            message,
            ..
        } => message.contains("There is no handler for path"),
        _ => false,
    }
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
    /// The path and query as sent.
    path: String,
    /// The body.
    body: Vec<u8>,
    /// Its `Raven-Server-Version` header, e.g. `4.1.0.41001`.
    version: Option<String>,
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
pub(super) fn http_error(url: &str, status: u16, body: &[u8]) -> ClusterError {
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

/// A node url as [`crate::model::cluster_url`] checks and normalizes it: the one check, so the
/// client takes exactly what certs.toml's `[cluster] urls` accept (adopt's `--url` included).
pub(super) fn check_url(url: &str) -> Result<String> {
    crate::model::cluster_url(url).map_err(|problem| ClusterError::BadUrl {
        url: url.to_string(),
        detail: problem.message,
    })
}

/// `path` with the query of `request_url` (the request as built, its query encoded by ureq):
/// what the body log records. Node urls hold no `?` (see [`check_url`]), so the first `?`
/// starts the query.
pub(super) fn path_as_sent(path: &str, request_url: &str) -> String {
    match request_url.split_once('?') {
        Some((_, query)) => format!("{path}?{query}"),
        None => path.to_string(),
    }
}
