//! The TLS connector: OpenSSL with the client certificate and the pin, and the resolver of
//! `ClientOptions::resolve`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{
    HandshakeError, Ssl, SslConnector, SslContext, SslContextBuilder, SslMethod, SslMode,
    SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use super::{ClusterError, Identity, Pin, Result};
use crate::model::Thumbprint;
use crate::pki;

/// Why our TLS connector refused a node; carried through ureq inside an `io::Error`.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsRefusal {
    #[error("pinned thumbprint mismatch: presented {presented}")]
    Pin {
        expected: Vec<String>,
        presented: String,
    },
    #[error("{0}")]
    Handshake(String),
}

/// ureq's TLS: OpenSSL with the client certificate and the pin.
pub(super) struct OpensslTls {
    sessions: Sessions,
    /// TLS connections opened so far (for the keep-alive checks).
    pub(super) handshakes: Arc<AtomicUsize>,
}

/// How a connection's TLS session is made.
enum Sessions {
    /// [`Pin::Thumbprints`]: checked after the handshake, before any request byte. No CA
    /// store: OpenSSL's chain verdict is not asked for, so the system's CA bundle (20 ms of
    /// parsing at every start, before the first request could go out) is never loaded.
    Pinned {
        context: SslContext,
        thumbprints: Vec<Thumbprint>,
    },
    /// A CA (ours or the system's) verifies the chain and the host name: OpenSSL's connector.
    Verified(SslConnector),
}

impl OpensslTls {
    pub(super) fn new(identity: &Identity, pin: &Pin) -> Result<OpensslTls> {
        let sessions = match pin {
            Pin::Thumbprints(list) => {
                let mut builder = pinned_context().map_err(identity_error)?;
                set_identity(&mut builder, identity)?;
                Sessions::Pinned {
                    context: builder.build(),
                    thumbprints: list.clone(),
                }
            }
            Pin::CaPem(_) | Pin::System => {
                let mut builder =
                    SslConnector::builder(SslMethod::tls_client()).map_err(identity_error)?;
                if let Pin::CaPem(pem) = pin {
                    builder.set_cert_store(ca_store(pem)?);
                }
                set_identity(&mut builder, identity)?;
                Sessions::Verified(builder.build())
            }
        };
        Ok(OpensslTls {
            sessions,
            handshakes: Arc::new(AtomicUsize::new(0)),
        })
    }
}

fn identity_error(e: openssl::error::ErrorStack) -> ClusterError {
    ClusterError::Identity {
        detail: e.to_string(),
    }
}

/// A client context as OpenSSL's connector makes one (its options, modes and cipher list),
/// except for the CA store and the chain verification, which a pinned connection does not use.
fn pinned_context() -> std::result::Result<SslContextBuilder, openssl::error::ErrorStack> {
    let mut builder = SslContextBuilder::new(SslMethod::tls_client())?;
    let options = (SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE)
        & !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    builder.set_options(options);
    builder.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    builder.set_cipher_list(
        "DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK",
    )?;
    // The pin decides; OpenSSL's chain verdict is ignored (a self-issued CA as end entity
    // would fail it anyway).
    builder.set_verify(SslVerifyMode::NONE);
    Ok(builder)
}

/// The client certificate, its key (which must belong to it) and any chain.
fn set_identity(builder: &mut SslContextBuilder, identity: &Identity) -> Result<()> {
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
    Ok(())
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
        // `verified`: OpenSSL's chain verdict decides, so a failed one is the reason given.
        // A pinned session never asks for it (its verdict, against no CA store, is always a
        // failure, and would hide the real reason, e.g. a server refusing the client's
        // certificate).
        let handshake_failed = |e: HandshakeError<Box<dyn ureq::ReadWrite>>, verified: bool| match e
        {
            HandshakeError::WouldBlock(_) => ureq::Error::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
            HandshakeError::SetupFailure(e) => refuse(TlsRefusal::Handshake(e.to_string())),
            HandshakeError::Failure(mid) if verified => {
                refuse(TlsRefusal::Handshake(handshake_detail(&mid)))
            }
            HandshakeError::Failure(mid) => refuse(TlsRefusal::Handshake(mid.error().to_string())),
        };
        let setup_failed =
            |e: openssl::error::ErrorStack| refuse(TlsRefusal::Handshake(e.to_string()));
        let stream = match &self.sessions {
            Sessions::Verified(connector) => connector
                .configure()
                .map_err(setup_failed)?
                .connect(dns_name, io)
                .map_err(|e| handshake_failed(e, true))?,
            Sessions::Pinned {
                context,
                thumbprints,
            } => {
                let mut ssl = Ssl::new(context).map_err(setup_failed)?;
                // SNI, as the connector sends it: for a name, never for an address.
                if dns_name.parse::<IpAddr>().is_err() {
                    ssl.set_hostname(dns_name).map_err(setup_failed)?;
                }
                let stream = ssl.connect(io).map_err(|e| handshake_failed(e, false))?;
                let presented = stream
                    .ssl()
                    .peer_certificate()
                    .and_then(|c| c.to_der().ok())
                    .map(|der| pki::thumbprint(&der));
                if !presented.as_ref().is_some_and(|p| thumbprints.contains(p)) {
                    return Err(refuse(TlsRefusal::Pin {
                        expected: thumbprints.iter().map(Thumbprint::to_string).collect(),
                        presented: presented.map_or_else(|| "(none)".to_string(), String::from),
                    }));
                }
                stream
            }
        };
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
pub(super) struct FixedResolver(pub(super) Vec<(String, SocketAddr)>);

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
    use openssl::ssl::{SslConnector, SslMethod, SslMode};

    #[test]
    fn a_pinned_context_is_made_as_the_connector_makes_one() {
        // The pinned context copies what OpenSSL's connector sets (it differs only in the CA
        // store and the verification): a connector made safer by a newer openssl crate must
        // show here, not fall behind unseen.
        let mut pinned = super::pinned_context().unwrap();
        let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
        assert_eq!(pinned.options(), connector.options());
        // set_mode ORs and answers the mode in force: with nothing added, the mode itself.
        assert_eq!(
            pinned.set_mode(SslMode::empty()),
            connector.set_mode(SslMode::empty())
        );
        assert_eq!(pinned.min_proto_version(), connector.min_proto_version());
        assert_eq!(pinned.max_proto_version(), connector.max_proto_version());
    }
}
