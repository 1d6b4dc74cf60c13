//! All cryptography lives here: key generation (openssl), certificate building and signing
//! (rcgen), PKCS#12 (openssl), thumbprints and pinning hashes. The rest of ravencert sees only
//! DER bytes, thumbprints, names and dates.

use std::fmt;

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use time::OffsetDateTime;

use crate::model::{CertInfo, KeySpec, PfxProfile, Thumbprint};

/// Why a key, certificate or bundle cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// OpenSSL failed (key generation, PKCS#12, parsing).
    #[error("cryptography failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// rcgen could not build or sign a certificate.
    #[error("certificate building failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// An input ravencert cannot use, explained (a DNS name, a date, a key that cannot sign).
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, PkiError>;

/// A private key. Debug never shows it.
pub struct PrivateKey(PKey<Private>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, ***)", self.0.id())
    }
}

impl PrivateKey {
    /// Generates a fresh key of the given type.
    fn generate(spec: KeySpec) -> Result<PrivateKey> {
        let pkey = match spec {
            KeySpec::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?)?,
            KeySpec::Rsa3072 => PKey::from_rsa(Rsa::generate(3072)?)?,
            KeySpec::Rsa4096 => PKey::from_rsa(Rsa::generate(4096)?)?,
            KeySpec::EcP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
            KeySpec::EcP384 => {
                let group = EcGroup::from_curve_name(Nid::SECP384R1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
        };
        Ok(PrivateKey(pkey))
    }

    /// Unencrypted PKCS#8 PEM: only for the store's private files.
    pub(crate) fn to_pem(&self) -> Result<Vec<u8>> {
        Ok(self.0.private_key_to_pem_pkcs8()?)
    }

    /// PKCS#8 PEM, encrypted with AES-256-CBC when a password is given.
    fn to_pem_with(&self, password: Option<&str>) -> Result<Vec<u8>> {
        match password {
            Some(p) => Ok(self
                .0
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p.as_bytes())?),
            None => self.to_pem(),
        }
    }

    /// Reads a PEM private key encrypted with `password`.
    pub(crate) fn from_pem_with(pem: &[u8], password: &str) -> Result<PrivateKey> {
        Ok(PrivateKey(PKey::private_key_from_pem_passphrase(
            pem,
            password.as_bytes(),
        )?))
    }

    pub(crate) fn from_pem(pem: &[u8]) -> Result<PrivateKey> {
        Ok(PrivateKey(PKey::private_key_from_pem(pem)?))
    }

    /// The key type, when it is one ravencert generates.
    fn spec(&self) -> Option<KeySpec> {
        key_spec_of(&self.0)
    }

    /// Hands the key to rcgen as PKCS#8 (ring reads PKCS#8 only), with the matching algorithm.
    fn to_rcgen(&self) -> Result<KeyPair> {
        let der = self.0.private_key_to_pkcs8()?;
        let alg = match self.spec() {
            Some(KeySpec::EcP256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            Some(KeySpec::EcP384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            Some(_) => &rcgen::PKCS_RSA_SHA256,
            None => return Err(PkiError::Invalid(
                "the server key is not RSA (2048-4096 bits) or EC P-256/P-384, so it cannot sign"
                    .into(),
            )),
        };
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
        Ok(KeyPair::from_pkcs8_der_and_sign_algo(&der, alg)?)
    }

    /// Whether this key belongs to the certificate.
    pub(crate) fn matches(&self, cert_der: &[u8]) -> Result<bool> {
        let cert = X509::from_der(cert_der)?;
        Ok(cert.public_key()?.public_eq(&self.0))
    }
}

fn key_spec_of<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Option<KeySpec> {
    match key.id() {
        Id::RSA => match key.bits() {
            2048 => Some(KeySpec::Rsa2048),
            3072 => Some(KeySpec::Rsa3072),
            4096 => Some(KeySpec::Rsa4096),
            _ => None,
        },
        Id::EC => {
            let ec = key.ec_key().ok()?;
            match ec.group().curve_name()? {
                Nid::X9_62_PRIME256V1 => Some(KeySpec::EcP256),
                Nid::SECP384R1 => Some(KeySpec::EcP384),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A certificate with its private key, as issued.
#[derive(Debug)]
pub struct Issued {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key.
    pub key: PrivateKey,
    /// Its facts, when known without parsing it back.
    pub(crate) info: Option<CertInfo>,
}

/// SHA-1 of the DER, 40 upper-case hex digits, as RavenDB and Windows show it. Computed by
/// ring, which cannot fail (OpenSSL's digest returns a Result for an allocation failure).
pub(crate) fn thumbprint(der: &[u8]) -> Thumbprint {
    // A SHA-1 digest is 20 bytes: copied without a length check that could panic.
    let mut sha1 = [0u8; 20];
    for (b, d) in sha1
        .iter_mut()
        .zip(digest(&SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
    {
        *b = *d;
    }
    Thumbprint::from_sha1(&sha1)
}

/// SHA-256 as lower-case hex, for fingerprints of inputs (never of secrets).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

/// What the registry records about a bundle's password: `none`, or HMAC-SHA256 of the client
/// key and the password under the store's own random key. It tells a changed password from the
/// same one, and cannot be turned back into the password without that key (which stays in the
/// store beside the bundles the password protects).
pub(crate) fn password_fingerprint(
    store_key: &[u8],
    client: &str,
    password: Option<&str>,
) -> Result<String> {
    let Some(password) = password else {
        return Ok(crate::model::NO_PASSWORD.to_string());
    };
    let key = PKey::hmac(store_key)?;
    let mut mac = openssl::sign::Signer::new(MessageDigest::sha256(), &key)?;
    mac.update(client.as_bytes())?;
    mac.update(&[0])?;
    mac.update(password.as_bytes())?;
    Ok(format!("hmac-sha256:{}", hex::encode(mac.sign_to_vec()?)))
}

/// The seal of the store's cluster state: HMAC-SHA256 of `bytes` under the store's random
/// `.cluster-state-key`, behind a label of its own (no other MAC of the store can pass for it).
pub(crate) fn cluster_state_seal(store_key: &[u8], bytes: &[u8]) -> Result<String> {
    let key = PKey::hmac(store_key)?;
    let mut mac = openssl::sign::Signer::new(MessageDigest::sha256(), &key)?;
    mac.update(b"ravencert .cluster-state.json\0")?;
    mac.update(bytes)?;
    Ok(format!("hmac-sha256:{}", hex::encode(mac.sign_to_vec()?)))
}

/// Whether two seals are the same, in constant time.
pub(crate) fn seals_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// base64(SHA-256(SubjectPublicKeyInfo DER)), RavenDB's PublicKeyPinningHash.
fn pinning_hash(cert: &X509) -> Result<String> {
    let spki = cert.public_key()?.public_key_to_der()?;
    Ok(openssl::base64::encode_block(&hash(
        MessageDigest::sha256(),
        &spki,
    )?))
}

fn asn1_to_time(t: &openssl::asn1::Asn1TimeRef) -> Result<OffsetDateTime> {
    let epoch = Asn1Time::from_unix(0)?;
    let d = epoch.diff(t)?;
    let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| PkiError::Invalid(format!("certificate date out of range: {e}")))
}

fn name_to_string(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the facts ravencert keeps about a DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo> {
    let cert = X509::from_der(der)?;
    let common_name = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok());
    Ok(CertInfo {
        thumbprint: thumbprint(der),
        public_key_pinning_hash: pinning_hash(&cert)?,
        subject: name_to_string(cert.subject_name()),
        issuer: name_to_string(cert.issuer_name()),
        common_name,
        not_before: asn1_to_time(cert.not_before())?,
        not_after: asn1_to_time(cert.not_after())?,
        key_spec: key_spec_of(&cert.public_key()?),
    })
}

/// A certificate as PEM, the text `openssl x509` writes (64-character lines, LF).
pub fn der_to_pem(der: &[u8]) -> Result<Vec<u8>> {
    // Encoded here rather than through an X.509 parse (OpenSSL 3's decoder/encoder cost
    // more than issuing the certificate).
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config).into_bytes())
}

/// The DER bytes of the first CERTIFICATE block of a PEM text, by base64 alone: no X.509
/// parse (OpenSSL 3's decoder costs ~100x more). Enough to check a thumbprint, since a
/// matching SHA-1 means it is that certificate. None when there is no such block, or when a
/// block is not valid PEM.
pub(crate) fn pem_cert_body(text: &[u8]) -> Option<Vec<u8>> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .filter(|der| !der.is_empty())
}

/// The DER of the first certificate of a PEM text ([`pem_cert_body`]) when it is the one the
/// thumbprint `named` names; None otherwise.
pub(crate) fn pem_cert_named(text: &[u8], named: &str) -> Option<Vec<u8>> {
    pem_cert_body(text).filter(|der| thumbprint(der) == named)
}

/// A random positive 20-byte serial (RFC 5280's maximum), never derived from the key.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero, so exactly 20 bytes
    Ok(SerialNumber::from_slice(&bytes))
}

fn common_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial()?);
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

/// Key Usage by key type: RSA keys sign and encipher (TLS key transport); EC keys only sign,
/// as RFC 5480 section 3 requires (keyEncipherment is not allowed for id-ecPublicKey). A CA
/// (the server certificate, which signs clients) adds keyCertSign.
fn key_usages(key: KeySpec, ca: bool) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    match key {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            usages.push(KeyUsagePurpose::KeyEncipherment)
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {}
    }
    if ca {
        usages.push(KeyUsagePurpose::KeyCertSign);
    }
    usages
}

/// A self-signed server certificate: CA (path length 0) so it can sign clients, serverAuth and
/// clientAuth (RavenDB nodes talk to each other with it).
pub fn generate_server(
    name: &str,
    dns: &[String],
    key: KeySpec,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued> {
    let private = PrivateKey::generate(key)?;
    let kp = private.to_rcgen()?;
    let mut params = common_params(name, not_before, not_after)?;
    params.subject_alt_names = dns
        .iter()
        .map(|d| {
            Ok(rcgen::SanType::DnsName(d.clone().try_into().map_err(
                |_| PkiError::Invalid(format!("'{d}' is not a valid DNS name")),
            )?))
        })
        .collect::<Result<Vec<_>>>()?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = key_usages(key, true);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&kp)?;
    Ok(Issued {
        cert_der: cert.der().to_vec(),
        key: private,
        info: None,
    })
}

/// A client certificate as RavenDB generates it: CN = name, clientAuth, authority key id,
/// signed by the server certificate's key.
pub fn issue_client(
    server_cert_der: &[u8],
    server_key: &PrivateKey,
    name: &str,
    key: KeySpec,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued> {
    ClientSigner::new(server_cert_der, server_key)?.issue(name, key, not_before, not_after)
}

/// The server certificate and its key made ready once to sign many clients: the key handed to
/// rcgen and the certificate read by rcgen and by OpenSSL (an OpenSSL 3 parse of a certificate
/// costs more than issuing one, so none is repeated per client).
pub(crate) struct ClientSigner {
    issuer: Issuer<'static, KeyPair>,
    server: X509,
}

impl fmt::Debug for ClientSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSigner(***)")
    }
}

impl ClientSigner {
    /// Reads the server certificate and hands its key to rcgen.
    pub(crate) fn new(server_cert_der: &[u8], server_key: &PrivateKey) -> Result<ClientSigner> {
        let issuer =
            Issuer::from_ca_cert_der(&server_cert_der.to_vec().into(), server_key.to_rcgen()?)?;
        Ok(ClientSigner {
            issuer,
            server: X509::from_der(server_cert_der)?,
        })
    }

    /// A client certificate as RavenDB generates it (see [`issue_client`]).
    pub(crate) fn issue(
        &self,
        name: &str,
        key: KeySpec,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued> {
        let private = PrivateKey::generate(key)?;
        let kp = private.to_rcgen()?;
        let mut params = common_params(name, not_before, not_after)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages(key, false);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&kp, &self.issuer)?;
        let cert_der = cert.der().to_vec();
        // What ravencert keeps about it, known without parsing it back (an OpenSSL 3 parse and
        // SubjectPublicKeyInfo encode cost more than the signature).
        let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
        let info = CertInfo {
            thumbprint: thumbprint(&cert_der),
            public_key_pinning_hash: openssl::base64::encode_block(digest(&SHA256, &spki).as_ref()),
            subject: format!("CN={name}"),
            issuer: String::new(),
            common_name: Some(name.to_string()),
            // X.509 times have whole seconds.
            not_before: not_before.replace_nanosecond(0).unwrap_or(not_before),
            not_after: not_after.replace_nanosecond(0).unwrap_or(not_after),
            key_spec: Some(key),
        };
        Ok(Issued {
            cert_der,
            key: private,
            info: Some(info),
        })
    }

    /// The bundle of a client this signer issued (see [`client_bundle`]).
    pub(crate) fn bundle(
        &self,
        issued: &Issued,
        friendly_name: &str,
        password: Option<&str>,
        profile: PfxProfile,
    ) -> Result<Bundle> {
        bundle_with(
            issued,
            self.server.clone(),
            friendly_name,
            password,
            profile,
        )
    }
}

/// The files RavenDB hands out for a generated client.
pub(crate) struct Bundle {
    pub(crate) pfx: Vec<u8>,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bundle(***)")
    }
}

fn pkcs12_builder(profile: PfxProfile, has_password: bool) -> openssl::pkcs12::Pkcs12Builder {
    let mut b = Pkcs12::builder();
    if !has_password {
        // The key-derivation iterations protect a password; with none there is nothing to
        // slow down, and 3 x 2,048 PBKDF2 rounds per file were most of an EC client's cost.
        b.key_iter(1).mac_iter(1);
    }
    if profile == PfxProfile::Legacy {
        // 3DES for key and certificates with a SHA-1 MAC; never RC2.
        b.key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .mac_md(MessageDigest::sha1());
    }
    b
}

/// `<key>.pfx` (client certificate + key + the server certificate), `.crt`, `.key`.
pub(crate) fn client_bundle(
    issued: &Issued,
    server_cert_der: &[u8],
    friendly_name: &str,
    password: Option<&str>,
    profile: PfxProfile,
) -> Result<Bundle> {
    let server = X509::from_der(server_cert_der)?;
    bundle_with(issued, server, friendly_name, password, profile)
}

fn bundle_with(
    issued: &Issued,
    server: X509,
    friendly_name: &str,
    password: Option<&str>,
    profile: PfxProfile,
) -> Result<Bundle> {
    let cert = X509::from_der(&issued.cert_der)?;
    let mut chain = Stack::new()?;
    chain.push(server)?;
    let pfx = pkcs12_builder(profile, password.is_some())
        .name(friendly_name)
        .pkey(&issued.key.0)
        .cert(&cert)
        .ca(chain)
        .build2(password.unwrap_or(""))?
        .to_der()?;
    Ok(Bundle {
        pfx,
        cert_pem: der_to_pem(&issued.cert_der)?,
        key_pem: issued.key.to_pem_with(password)?,
    })
}

/// The server certificate(s), public parts only, no password: RavenDB's export.
pub(crate) fn export_pfx(certs_der: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut stack = Stack::new()?;
    for der in certs_der {
        stack.push(X509::from_der(der)?)?;
    }
    Ok(pkcs12_builder(PfxProfile::Modern, false)
        .ca(stack)
        .build2("")?
        .to_der()?)
}

/// The `[server] install` file: the server certificate with its private key (and its chain,
/// if any), as a node loads it, in the declared profile.
pub(crate) fn server_install_pfx(
    cert_der: &[u8],
    key: &PrivateKey,
    chain: &[Vec<u8>],
    password: Option<&str>,
    profile: PfxProfile,
) -> Result<Vec<u8>> {
    let cert = X509::from_der(cert_der)?;
    let mut builder = pkcs12_builder(profile, password.is_some());
    builder.pkey(&key.0).cert(&cert);
    if !chain.is_empty() {
        let mut stack = Stack::new()?;
        for der in chain {
            stack.push(X509::from_der(der)?)?;
        }
        builder.ca(stack);
    }
    Ok(builder.build2(password.unwrap_or(""))?.to_der()?)
}

/// What an install file holds, opened with `password` (empty: none): the certificate its key
/// belongs to, and the profile it was written in.
pub(crate) fn inspect_install(bytes: &[u8], password: &str) -> crate::model::InstalledFile {
    use crate::model::InstalledFile;
    let Ok(parsed) = Pkcs12::from_der(bytes).and_then(|p| p.parse2(password)) else {
        return InstalledFile::Unreadable;
    };
    let thumbprint = match (&parsed.cert, &parsed.pkey) {
        (Some(c), Some(k)) => c
            .public_key()
            .ok()
            .filter(|p| p.public_eq(k))
            .and_then(|_| c.to_der().ok())
            .map(|der| thumbprint(&der).into()),
        _ => None,
    };
    InstalledFile::Holds {
        thumbprint,
        profile: pfx_profile(bytes),
    }
}

/// The profile a PKCS#12 file was written in, told by the algorithm identifiers it carries:
/// only PBES2 (modern), or only 3DES with a SHA-1 MAC (legacy); anything else is neither.
fn pfx_profile(bytes: &[u8]) -> Option<PfxProfile> {
    const PBES2: &[u8] = &[
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05, 0x0D,
    ];
    const TRIPLE_DES: &[u8] = &[
        0x06, 0x0A, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x03,
    ];
    const SHA1: &[u8] = &[0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A];
    let has = |oid: &[u8]| bytes.windows(oid.len()).any(|w| w == oid);
    match (has(PBES2), has(TRIPLE_DES)) {
        (true, false) => Some(PfxProfile::Modern),
        (false, true) if has(SHA1) => Some(PfxProfile::Legacy),
        _ => None,
    }
}

/// Whether bytes are a PKCS#12 file (what an install path may be overwritten from).
pub(crate) fn is_pkcs12(bytes: &[u8]) -> bool {
    Pkcs12::from_der(bytes).is_ok()
}

/// Thumbprints of every certificate in a PKCS#12 file protected by `password`.
pub(crate) fn pfx_thumbprints(pfx: &[u8], password: &str) -> Result<Vec<Thumbprint>> {
    let parsed = Pkcs12::from_der(pfx)?.parse2(password)?;
    let mut out = Vec::new();
    if let Some(c) = parsed.cert {
        out.push(thumbprint(&c.to_der()?));
    }
    if let Some(ca) = parsed.ca {
        for c in &ca {
            out.push(thumbprint(&c.to_der()?));
        }
    }
    Ok(out)
}

/// Whether bytes are an export ravencert could have written: a password-less PKCS#12 with
/// certificates and no private key. Anything else at an export path is not overwritten.
pub(crate) fn is_certificate_export(bytes: &[u8]) -> bool {
    Pkcs12::from_der(bytes)
        .and_then(|p| p.parse2(""))
        .is_ok_and(|p| p.pkey.is_none() && (p.cert.is_some() || p.ca.is_some()))
}

mod read;
pub use read::{end_entities, read_cert_file, CertFile, ReadError};

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn window() -> (OffsetDateTime, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        (now - Duration::days(7), now + Duration::days(365))
    }

    /// The Key Usage line of OpenSSL's text form of a certificate.
    fn key_usage(der: &[u8]) -> String {
        let text = String::from_utf8(X509::from_der(der).unwrap().to_text().unwrap()).unwrap();
        let mut lines = text.lines();
        lines.find(|l| l.contains("X509v3 Key Usage"));
        lines.next().unwrap_or_default().trim().to_string()
    }

    #[test]
    fn ec_certificates_sign_only_and_rsa_ones_also_encipher() {
        let (nb, na) = window();
        let ec = generate_server("ec.example.com", &[], KeySpec::EcP256, nb, na).unwrap();
        assert_eq!(
            key_usage(&ec.cert_der),
            "Digital Signature, Certificate Sign"
        );
        let ec_client = issue_client(&ec.cert_der, &ec.key, "ec", KeySpec::EcP384, nb, na).unwrap();
        assert_eq!(key_usage(&ec_client.cert_der), "Digital Signature");

        let rsa = generate_server("rsa.example.com", &[], KeySpec::Rsa2048, nb, na).unwrap();
        assert_eq!(
            key_usage(&rsa.cert_der),
            "Digital Signature, Key Encipherment, Certificate Sign"
        );
        // The client's own key decides, not the signer's.
        let rsa_client =
            issue_client(&ec.cert_der, &ec.key, "rsa", KeySpec::Rsa2048, nb, na).unwrap();
        assert_eq!(
            key_usage(&rsa_client.cert_der),
            "Digital Signature, Key Encipherment"
        );
    }

    #[test]
    fn client_is_signed_by_server_and_bundles_open() {
        let (nb, na) = window();
        let server = generate_server(
            "cluster.example.com",
            &["cluster.example.com".into()],
            KeySpec::EcP256,
            nb,
            na,
        )
        .unwrap();
        let client = issue_client(
            &server.cert_der,
            &server.key,
            "Orders App",
            KeySpec::EcP384,
            nb,
            na,
        )
        .unwrap();
        let ci = inspect(&client.cert_der).unwrap();
        // What issue_client reports without parsing is what a parse finds.
        let quick = client.info.clone().unwrap();
        assert_eq!(quick.thumbprint, ci.thumbprint);
        assert_eq!(quick.public_key_pinning_hash, ci.public_key_pinning_hash);
        assert_eq!(
            (quick.not_before, quick.not_after),
            (ci.not_before, ci.not_after)
        );
        assert_eq!(quick.key_spec, ci.key_spec);
        assert_eq!(quick.common_name, ci.common_name);
        assert_eq!(
            der_to_pem(&client.cert_der).unwrap(),
            X509::from_der(&client.cert_der).unwrap().to_pem().unwrap()
        );
        assert_eq!(ci.common_name.as_deref(), Some("Orders App"));
        assert_eq!(ci.issuer, "CN=cluster.example.com");
        assert_eq!(ci.key_spec, Some(KeySpec::EcP384));
        assert_eq!(ci.thumbprint.as_str().len(), 40);
        // Signature verifies against the server's public key.
        let c = X509::from_der(&client.cert_der).unwrap();
        let s = X509::from_der(&server.cert_der).unwrap();
        assert!(c.verify(&s.public_key().unwrap()).unwrap());
        assert_eq!(c.serial_number().to_bn().unwrap().num_bytes(), 20);

        for profile in [PfxProfile::Modern, PfxProfile::Legacy] {
            let b = client_bundle(
                &client,
                &server.cert_der,
                "Orders App",
                Some("s3cret"),
                profile,
            )
            .unwrap();
            let tps = pfx_thumbprints(&b.pfx, "s3cret").unwrap();
            assert_eq!(
                tps,
                vec![ci.thumbprint.clone(), thumbprint(&server.cert_der)]
            );
            assert!(pfx_thumbprints(&b.pfx, "wrong").is_err());
            assert!(String::from_utf8_lossy(&b.key_pem).contains("ENCRYPTED PRIVATE KEY"));
        }
    }

    #[test]
    fn pem_body_matches_the_x509_parse() {
        let (nb, na) = window();
        let s =
            generate_server("a.example", &["a.example".into()], KeySpec::EcP256, nb, na).unwrap();
        let pem = der_to_pem(&s.cert_der).unwrap();
        assert_eq!(pem_cert_body(&pem).unwrap(), s.cert_der);
        assert_eq!(
            thumbprint(&s.cert_der).to_string(),
            hex::encode_upper(hash(MessageDigest::sha1(), &s.cert_der).unwrap())
        );
        assert!(
            pem_cert_body(b"-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----").is_none()
        );
        assert!(pem_cert_body(b"no pem here").is_none());
    }

    /// issue 25: a client issued for `min(now + validity, until)` ends exactly then, as a
    /// parse of the certificate reads it.
    #[test]
    fn client_not_after_is_the_until_it_is_given() {
        let (nb, na) = window();
        let server =
            generate_server("a.example", &["a.example".into()], KeySpec::EcP256, nb, na).unwrap();
        let now = time::macros::datetime!(2026-04-30 12:00 UTC);
        let until = time::macros::datetime!(2026-05-01 0:00 UTC);
        let end = crate::plan::until::issue_end(now, crate::model::Period::days(365), Some(until));
        let client = issue_client(
            &server.cert_der,
            &server.key,
            "temp",
            KeySpec::EcP256,
            now - Duration::days(7),
            end,
        )
        .unwrap();
        assert_eq!(inspect(&client.cert_der).unwrap().not_after, until);
        assert_eq!(client.info.unwrap().not_after, until);
    }

    #[test]
    fn serials_are_random() {
        let (nb, na) = window();
        let key = PrivateKey::generate(KeySpec::EcP256).unwrap();
        let s =
            generate_server("a.example", &["a.example".into()], KeySpec::EcP256, nb, na).unwrap();
        let a = issue_client(&s.cert_der, &s.key, "x", KeySpec::EcP256, nb, na).unwrap();
        let b = issue_client(&s.cert_der, &s.key, "x", KeySpec::EcP256, nb, na).unwrap();
        let sa = X509::from_der(&a.cert_der)
            .unwrap()
            .serial_number()
            .to_bn()
            .unwrap();
        let sb = X509::from_der(&b.cert_der)
            .unwrap()
            .serial_number()
            .to_bn()
            .unwrap();
        assert_ne!(sa, sb);
        assert!(!key.matches(&a.cert_der).unwrap());
        assert!(a.key.matches(&a.cert_der).unwrap());
    }

    #[test]
    fn export_holds_public_parts_only() {
        let (nb, na) = window();
        let s =
            generate_server("a.example", &["a.example".into()], KeySpec::EcP256, nb, na).unwrap();
        let pfx = export_pfx(std::slice::from_ref(&s.cert_der)).unwrap();
        let parsed = Pkcs12::from_der(&pfx).unwrap().parse2("").unwrap();
        assert!(parsed.pkey.is_none());
        assert_eq!(
            pfx_thumbprints(&pfx, "").unwrap(),
            vec![thumbprint(&s.cert_der)]
        );
    }
}
