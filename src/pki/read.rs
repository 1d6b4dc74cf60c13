//! Reading certificate files people bring: PKCS#12, PEM or DER, detected from the content.

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::x509::X509;

use super::{thumbprint, PrivateKey, Result};
use crate::model::Thumbprint;

/// What a certificate file holds.
#[derive(Debug)]
pub struct CertFile {
    /// Every certificate, DER, in file order.
    pub certs: Vec<Vec<u8>>,
    /// The private key, when the file has one (only a PKCS#12 or PEM can).
    pub(crate) key: Option<PrivateKey>,
}

/// Why a certificate file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The configured password does not open the file.
    #[error("the password is wrong")]
    WrongPassword,
    /// The file is encrypted and certs.toml gives no password.
    #[error("the file is password-protected and no password is configured")]
    NeedsPassword,
    /// A PKCS#12 in RC2 (old Windows exports) and no OpenSSL legacy provider to open it.
    #[error("it uses RC2 encryption, which needs OpenSSL's legacy provider, and that is not available here; convert it with `openssl pkcs12 -legacy -in OLD.pfx -nodes | openssl pkcs12 -export -out NEW.pfx`")]
    LegacyUnavailable,
    /// Not a certificate file ravencert can read, explained (bad PEM, DER, PKCS#12, too many
    /// certificates).
    #[error("{0}")]
    Unreadable(String),
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The most certificates one file may hold: a collection is a handful, a chain a few more; a file
/// of thousands is an attack on the reader (every certificate is parsed and compared).
const MAX_CERTS_PER_FILE: usize = 1_000;

fn too_many(n: usize) -> ReadError {
    ReadError::Unreadable(format!(
        "it holds {n} certificates, more than the {MAX_CERTS_PER_FILE} one file may hold (a collection or chain has a few); split it or remove what does not belong"
    ))
}

/// Reads certificates (and a private key, if any) from PKCS#12, PEM or DER bytes.
pub fn read_cert_file(
    bytes: &[u8],
    password: Option<&str>,
) -> std::result::Result<CertFile, ReadError> {
    let file = read_cert_file_unbounded(bytes, password)?;
    if file.certs.len() > MAX_CERTS_PER_FILE {
        return Err(too_many(file.certs.len()));
    }
    Ok(file)
}

fn read_cert_file_unbounded(
    bytes: &[u8],
    password: Option<&str>,
) -> std::result::Result<CertFile, ReadError> {
    if is_pem(bytes) {
        return read_pem(bytes, password);
    }
    if let Ok(cert) = X509::from_der(bytes) {
        return read_der(bytes, &cert);
    }
    read_pkcs12(bytes, password)
}

/// PEM text: every certificate, and the private key if there is one.
fn read_pem(bytes: &[u8], password: Option<&str>) -> std::result::Result<CertFile, ReadError> {
    // Counted before anything is parsed.
    let n = bytes
        .windows(27)
        .filter(|w| *w == b"-----BEGIN CERTIFICATE-----")
        .count();
    if n > MAX_CERTS_PER_FILE {
        return Err(too_many(n));
    }
    let certs = X509::stack_from_pem(bytes)
        .map_err(|_| ReadError::Unreadable("the PEM text holds no readable certificate".into()))?;
    let has_key = bytes.windows(11).any(|w| w == b"PRIVATE KEY");
    let encrypted = bytes.windows(19).any(|w| w == b"ENCRYPTED PRIVATE K")
        || bytes.windows(20).any(|w| w == b"Proc-Type: 4,ENCRYPT");
    let key = if has_key {
        match PKey::private_key_from_pem_passphrase(bytes, password.unwrap_or("").as_bytes()) {
            Ok(k) => Some(PrivateKey(k)),
            Err(_) if encrypted && password.is_none() => return Err(ReadError::NeedsPassword),
            Err(_) if encrypted => return Err(ReadError::WrongPassword),
            Err(_) => {
                return Err(ReadError::Unreadable(
                    "the PEM text holds a private key that cannot be read".into(),
                ))
            }
        }
    } else {
        None
    };
    let certs = certs
        .iter()
        .map(|c| c.to_der())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ReadError::Unreadable(e.to_string()))?;
    Ok(CertFile { certs, key })
}

/// A DER certificate: exactly one, nothing after it.
fn read_der(bytes: &[u8], cert: &X509) -> std::result::Result<CertFile, ReadError> {
    let der = cert
        .to_der()
        .map_err(|e| ReadError::Unreadable(e.to_string()))?;
    if der.len() != bytes.len() {
        return Err(ReadError::Unreadable(format!(
            "a DER certificate followed by {} bytes of something else; a DER file holds exactly one certificate (use PEM or PKCS#12 for several)",
            bytes.len().saturating_sub(der.len())
        )));
    }
    Ok(CertFile {
        certs: vec![der],
        key: None,
    })
}

/// A PKCS#12 (.pfx/.p12): its certificate, the CA certificates, and its key.
fn read_pkcs12(bytes: &[u8], password: Option<&str>) -> std::result::Result<CertFile, ReadError> {
    let pkcs12 = Pkcs12::from_der(bytes).map_err(|_| {
        ReadError::Unreadable(
            "it is not a certificate: neither PKCS#12 (.pfx/.p12), PEM nor DER".into(),
        )
    })?;
    let parsed = match pkcs12.parse2(password.unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            let text = e.to_string();
            if text.contains("mac verify failure") || text.contains("mac_verify") {
                return Err(if password.is_some() {
                    ReadError::WrongPassword
                } else {
                    ReadError::NeedsPassword
                });
            }
            // Old files encrypted with RC2-40: read them through the legacy provider, for
            // reading only (ravencert never writes RC2).
            let legacy = openssl::provider::Provider::try_load(None, "legacy", true)
                .map_err(|_| ReadError::LegacyUnavailable)?;
            let again = pkcs12.parse2(password.unwrap_or(""));
            drop(legacy);
            again.map_err(|e| {
                ReadError::Unreadable(format!("the PKCS#12 file cannot be decrypted: {e}"))
            })?
        }
    };
    let mut certs = Vec::new();
    if let Some(c) = &parsed.cert {
        certs.push(
            c.to_der()
                .map_err(|e| ReadError::Unreadable(e.to_string()))?,
        );
    }
    if let Some(ca) = &parsed.ca {
        for c in ca {
            certs.push(
                c.to_der()
                    .map_err(|e| ReadError::Unreadable(e.to_string()))?,
            );
        }
    }
    Ok(CertFile {
        certs,
        key: parsed.pkey.map(PrivateKey),
    })
}

/// RavenDB's collection rule: certificates whose subject issued another certificate in the file
/// are CA/intermediates and are skipped; the rest keep file order (the first is the primary).
/// Linear in the number of certificates: issuers are looked up by name, not tried pairwise.
pub fn end_entities(certs: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    use std::collections::{HashMap, HashSet};
    let parsed = certs
        .iter()
        .map(|d| X509::from_der(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let thumbs: Vec<Thumbprint> = certs.iter().map(|d| thumbprint(d)).collect();
    // Issuer name -> the distinct certificates it issued.
    let mut issued: HashMap<Vec<u8>, HashSet<&str>> = HashMap::new();
    for (c, t) in parsed.iter().zip(&thumbs) {
        issued
            .entry(c.issuer_name().to_der()?)
            .or_default()
            .insert(t.as_str());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for ((c, t), der) in parsed.iter().zip(&thumbs).zip(certs) {
        let issued_another = issued
            .get(&c.subject_name().to_der()?)
            .is_some_and(|by_me| by_me.iter().any(|other| *other != t.as_str()));
        if !issued_another && seen.insert(t.as_str()) {
            out.push(der.clone());
        }
    }
    Ok(out)
}
