//! A large, valid store made quickly, for the no-op plan benchmark (benches/noop_plan.rs
//! includes this file) and the test that keeps it converged. Test code: it uses only the
//! library's public API and ships in no build of the product.

use std::path::Path;

use ravencert::model::{Access, Clearance, KeySpec, Origin};
use ravencert::pki;
use ravencert::registry::{CertEntry, Registry, ServerEntry};
use ravencert::store::Store;

/// Writes `dir/certs.toml` declaring `n` generated clients and `dir/store` holding exactly
/// them (a plan there is a no-op). Files are written without fsync: a fixture, not a store to
/// keep.
pub fn synthetic_store(dir: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let now = time::OffsetDateTime::now_utc();
    let (nb, na) = (
        now - time::Duration::days(7),
        now + time::Duration::days(365),
    );
    let mut config = String::from(
        "version = 1\n[store]\npath = \"store\"\n[defaults]\nkey = \"ec-p256\"\nvalidity = \"1y\"\n\
         [server]\ngenerate = true\nname = \"bench.example.com\"\nkey = \"ec-p256\"\n",
    );
    let store = Store::new(dir.join("store"));
    store.ensure_root()?;
    let server = pki::generate_server(
        "bench.example.com",
        &["bench.example.com".to_string()],
        KeySpec::EcP256,
        nb,
        na,
    )?;
    let info = pki::inspect(&server.cert_der)?;
    let st = store.write_cert(&server.cert_der)?;
    store.write_server_key(st.as_str(), &server.key)?;
    let mut reg = Registry::new();
    reg.server.push(ServerEntry {
        name: "bench.example.com".into(),
        thumbprint: st.into(),
        public_key_pinning_hash: info.public_key_pinning_hash,
        dns: vec!["bench.example.com".into()],
        not_before: info.not_before,
        not_after: info.not_after,
        source: Origin::Generated,
        key_type: Some(KeySpec::EcP256),
        revision: None,
        has_key: true,
    });
    let certs = dir.join("store/certs");
    for i in 0..n {
        let key = format!("client-{i:05}");
        let db = format!("Db{}", i % 50);
        config.push_str(&format!(
            "[clients.{key}]\nclearance = \"ValidUser\"\ndatabases = {{ {db} = \"Read\" }}\n"
        ));
        let issued =
            pki::issue_client(&server.cert_der, &server.key, &key, KeySpec::EcP256, nb, na)?;
        let info = pki::inspect(&issued.cert_der)?;
        let pem = pki::der_to_pem(&issued.cert_der)?;
        std::fs::write(certs.join(format!("{}.pem", info.thumbprint)), &pem)?;
        let bundle = dir.join("store/issued").join(&key);
        std::fs::create_dir_all(&bundle)?;
        std::fs::write(bundle.join(format!("{key}.crt")), &pem)?;
        // The planner checks that the .pfx and .key are there; their content is not read.
        std::fs::write(bundle.join(format!("{key}.pfx")), b"bench")?;
        std::fs::write(bundle.join(format!("{key}.key")), b"bench")?;
        reg.certificates.push(CertEntry {
            key: key.clone(),
            name: key,
            thumbprint: info.thumbprint.into(),
            public_key_pinning_hash: info.public_key_pinning_hash,
            clearance: Clearance::ValidUser,
            protect: false,
            until: None,
            disabled: false,
            not_before: info.not_before,
            not_after: info.not_after,
            source: Origin::Generated,
            key_type: Some(KeySpec::EcP256),
            collection_primary: None,
            collection_secondaries: vec![],
            retire_after: None,
            revision: None,
            permissions: [(db, Access::Read)].into(),
            pfx: Default::default(),
            bundle_password: Some("none".into()),
            subject: None,
        });
    }
    // Files written above by hand: same modes an apply gives them (before the cache records
    // their stamps: a chmod changes the ctime).
    let _ = std::process::Command::new("chmod")
        .args(["-R", "go-rwx"])
        .arg(dir.join("store"))
        .status();
    store.write_registry(&reg)?;
    store.write_cache(&reg)?;
    std::fs::write(dir.join("certs.toml"), config)?;
    Ok(())
}
