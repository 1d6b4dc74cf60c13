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
//!
//! The module's parts: [`Client`] and its requests (`client.rs`), the wire format of the
//! answers and bodies (`wire.rs`), the TLS connector with the pin (`tls.rs`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::Thumbprint;

pub use crate::plan::{ClusterClearance, Registration, ServerVersion};

mod client;
mod tls;
mod wire;

#[cfg(test)]
mod tests;

pub use client::Client;
pub use wire::{decode_listing_bytes, edit_body};

/// What can go wrong talking to the cluster. Every case names the node URL.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `[cluster] urls` is empty.
    #[error("no cluster url to connect to: list at least one node in [cluster] urls")]
    NoUrls,
    /// A url that is not an `https://` URL.
    #[error("cluster url not usable: {detail}")]
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
    /// Not sent: what the request needs from the store cannot be read (the node is not at
    /// fault).
    #[error("not sent: {detail}")]
    NotSent {
        /// What could not be read, and where.
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
    Thumbprints(Vec<Thumbprint>),
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

/// `GET /admin/stats`: when each certificate was last used, as one node saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// The node that answered: each node counts only the requests it served, since it started.
    pub node: String,
    /// The last request served with each certificate, by thumbprint.
    pub last_used: std::collections::BTreeMap<Thumbprint, time::OffsetDateTime>,
    /// What could not be read (a thumbprint or a date), for the warnings.
    pub left_out: Vec<String>,
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
    /// The thumbprint of the certificate the answering node serves, as listed (upper-case hex
    /// digits, separators dropped; not necessarily a thumbprint: shown as the node sent it).
    pub loaded_server_cert: Option<String>,
    /// `LoadedServerCertForCommunication` (RavenDB 7.1.5 and later): the certificate the node
    /// uses as a client towards other nodes, when it is not the one it serves. Never
    /// unregistered.
    pub loaded_server_cert_for_communication: Option<String>,
    /// The well-known admin thumbprints of the node's settings, as listed (as
    /// `loaded_server_cert`: `adopt` writes them down as the node sent them).
    pub well_known_admins: Vec<String>,
    /// The server's version, from the answer's `Raven-Server-Version` header.
    pub server_version: Option<ServerVersion>,
}

impl Listing {
    /// The nodes' own certificates, each once, in the order they are met: the one the answering
    /// node serves, the one it uses towards other nodes, then every registration with
    /// clearance ClusterNode or a server usage. Never unregistered.
    /// A listed value that is not a thumbprint names no registration, so it is left out.
    pub fn server_thumbprints(&self) -> Vec<Thumbprint> {
        let mut all: Vec<Thumbprint> = self
            .loaded_server_cert
            .iter()
            .chain(&self.loaded_server_cert_for_communication)
            .filter_map(|t| Thumbprint::parse(t).ok())
            .collect();
        for r in &self.registrations {
            if matches!(
                r.usage.as_deref(),
                Some("RavenServer" | "RavenServerForCommunication")
            ) {
                all.push(r.thumbprint.clone());
            }
            if r.clearance == ClusterClearance::ClusterNode {
                all.push(r.thumbprint.clone());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        all.retain(|t| seen.insert(t.clone()));
        all
    }

    /// The well-known admin certificates as thumbprints; a listed value that is not a
    /// thumbprint names no registration, so it is left out (as in [`Self::server_thumbprints`]).
    pub fn well_known_admin_thumbprints(&self) -> Vec<Thumbprint> {
        self.well_known_admins
            .iter()
            .filter_map(|t| Thumbprint::parse(t).ok())
            .collect()
    }
}
