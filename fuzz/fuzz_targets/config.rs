//! Fuzzes the certs.toml parser and validator: any text must give `Ok` or a list of errors,
//! never a panic. Bytes that are not UTF-8 are skipped: ravencert reads certs.toml into a
//! String, so such bytes never reach `config::parse`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ravencert::config::parse(Path::new("certs.toml"), source, Path::new("/nonexistent"));
});
