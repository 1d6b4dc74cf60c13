//! Fuzzes the certificate-file reader (PKCS#12, PEM or DER, detected from the content), and on
//! success the RavenDB end-entity rule and `inspect` on every certificate read: errors are
//! fine, a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ravencert::pki;

fn check(data: &[u8], password: Option<&str>) {
    if let Ok(file) = pki::read_cert_file(data, password) {
        let _ = pki::end_entities(&file.certs);
        for der in &file.certs {
            let _ = pki::inspect(der);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, None);
    check(data, Some("x"));
});
