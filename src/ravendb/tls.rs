//! The TLS connector: OpenSSL with the client certificate and the pin, and the resolver of
//! `ClientOptions::resolve`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream, SslVerifyMode};
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
    connector: SslConnector,
    /// TLS connections opened so far (for the keep-alive checks).
    pub(super) handshakes: Arc<AtomicUsize>,
    /// `Some` for [`Pin::Thumbprints`]: checked after the handshake, before any request byte.
    thumbprints: Option<Vec<Thumbprint>>,
}

impl OpensslTls {
    pub(super) fn new(identity: &Identity, pin: &Pin) -> Result<OpensslTls> {
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
                Some(list.clone())
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
                .map(|der| pki::thumbprint(&der));
            if !presented.as_ref().is_some_and(|p| expected.contains(p)) {
                return Err(refuse(TlsRefusal::Pin {
                    expected: expected.iter().map(Thumbprint::to_string).collect(),
                    presented: presented.map_or_else(|| "(none)".to_string(), String::from),
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
