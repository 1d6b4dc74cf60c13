//! The real `openssl` command: fixtures made as a partner would make them, and cross-checks of
//! what ravencert wrote.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::run::Run;

/// Runs `openssl ARGS`; stdout and stderr as bytes.
pub fn openssl_output(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is installed (.ci/run installs it)")
}

/// Runs `openssl ARGS`.
pub fn openssl(args: &[&str]) -> Run {
    Run::new(format!("openssl {}", args.join(" ")), &openssl_output(args))
}

/// `openssl pkcs12 -in PFX -passin pass:PASSWORD EXTRA...`: a bundle opened with its password.
pub fn pkcs12(pfx: &Path, password: &str, extra: &[&str]) -> Run {
    let pass = format!("pass:{password}");
    let mut args = vec!["pkcs12", "-in", pfx.to_str().unwrap(), "-passin", &pass];
    args.extend_from_slice(extra);
    openssl(&args)
}

/// `openssl x509 -fingerprint -sha1` without colons: the RavenDB thumbprint.
pub fn openssl_thumbprint(pem: &Path) -> String {
    let r = openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha1",
    ])
    .success();
    r.stdout.trim().rsplit('=').next().unwrap().replace(':', "")
}

/// The sorted thumbprints of the certificates in a PEM text, each written to
/// `dir/<prefix>-<i>.pem` and read by [`openssl_thumbprint`].
pub fn pem_thumbprints(text: &str, dir: &Path, prefix: &str) -> Vec<String> {
    let mut thumbprints = Vec::new();
    for (i, block) in text.split("-----END CERTIFICATE-----").enumerate() {
        let Some(start) = block.find("-----BEGIN CERTIFICATE-----") else {
            continue;
        };
        let one = dir.join(format!("{prefix}-{i}.pem"));
        std::fs::write(
            &one,
            format!("{}-----END CERTIFICATE-----\n", &block[start..]),
        )
        .unwrap();
        thumbprints.push(openssl_thumbprint(&one));
    }
    thumbprints.sort();
    thumbprints
}

/// `openssl verify -partial_chain -CAfile CA CERT`: whether `cert` chains to `ca`, trusted as
/// it is (a self-signed node certificate, or an intermediate).
pub fn verify_partial_chain(ca: &Path, cert: &Path) -> Run {
    openssl(&[
        "verify",
        "-partial_chain",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ])
}

/// Makes a self-signed EC P-256 certificate (valid a year) with the openssl command, as a
/// partner would send one: `cert` and `key` are written under `dir`; `cn` may be any UTF-8.
/// Returns the certificate's thumbprint.
pub fn self_signed(dir: &Path, cert: &str, key: &str, cn: &str) -> String {
    let (cert, key) = (dir.join(cert), dir.join(key));
    for p in [&cert, &key] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    }
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "365",
        "-utf8",
        "-subj",
        &format!("/CN={cn}"),
    ])
    .success();
    openssl_thumbprint(&cert)
}

/// A partner's upload under `dir`: partner.pem and partner.key (self-signed, CN=partner), the
/// same certificate as partner.der, and both in partner.pfx protected by `password`.
pub fn partner_upload(dir: &Path, password: &str) {
    self_signed(dir, "partner.pem", "partner.key", "partner");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &path("partner.pem"),
        "-inkey",
        &path("partner.key"),
        "-passout",
        &format!("pass:{password}"),
        "-out",
        &path("partner.pfx"),
    ])
    .success();
    openssl(&[
        "x509",
        "-in",
        &path("partner.pem"),
        "-outform",
        "DER",
        "-out",
        &path("partner.der"),
    ])
    .success();
}

/// The unencrypted PKCS#8 DER of a PEM private key, trying each password; None when none
/// opens it.
pub fn key_der(path: &Path, passwords: &[&str]) -> Option<Vec<u8>> {
    passwords.iter().find_map(|pw| {
        let out = openssl_output(&[
            "pkey",
            "-in",
            path.to_str().unwrap(),
            "-outform",
            "DER",
            "-passin",
            &format!("pass:{pw}"),
        ]);
        (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
    })
}
