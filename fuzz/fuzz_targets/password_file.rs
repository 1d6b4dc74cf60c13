//! Fuzzes the password-file reader through to OpenSSL: the bytes of a password file become a
//! password (UTF-8, one line, no control character) and open a password-protected .pfx with
//! it. Errors are fine; a panic is not (a NUL byte once reached OpenSSL's C string conversion
//! and aborted with the file's bytes in the message).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A small .pfx protected with the password `x`, one PBKDF2 iteration so that a run tries many
/// passwords a second (fuzz/seeds/cert_file/leaf-password-x-iter1.p12).
const PFX: &[u8] = include_bytes!("../seeds/cert_file/leaf-password-x-iter1.p12");

fuzz_target!(|data: &[u8]| {
    let _ = ravencert::inputs::password_file_opens(data, PFX);
});
