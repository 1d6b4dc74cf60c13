//! A TLS test double on 127.0.0.1 for what a real RavenDB cannot be made to do on demand: lie
//! in its listing, or answer as a node still starting does. It serves the given certificate,
//! asks for a client certificate and accepts any, and answers every request with the same
//! raw HTTP response.

use ::openssl as ossl;
use std::io::{Read, Write};
use std::path::Path;

/// Starts the double; returns its port. `response` is the whole HTTP/1.1 answer.
pub fn tls_server(cert: &Path, key: &Path, response: String) -> u16 {
    use ossl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor
        .set_private_key_file(key, SslFiletype::PEM)
        .unwrap();
    acceptor.set_certificate_chain_file(cert).unwrap();
    acceptor.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    let acceptor = std::sync::Arc::new(acceptor.build());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (acceptor, response) = (acceptor.clone(), response.clone());
            std::thread::spawn(move || {
                let Ok(mut tls) = acceptor.accept(stream) else {
                    return;
                };
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tls.write_all(response.as_bytes());
                let _ = tls.shutdown();
            });
        }
    });
    port
}

/// What RavenDB 4.1 answers to `GET /admin/certificates` for about a second after it starts:
/// HTTP 500 with an empty body and no version header (observed).
pub const STARTING: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
