//! The chain the cluster target (docs/contract.md §7) rests on, checked against a real RavenDB 4.1
//! server with ravencert's own output: the store's generated server certificate serves TLS, its
//! generated ClusterAdmin client authenticates as the well-known admin, and a generated client
//! registered with PUT authenticates too, also after a restart.

use crate::common;

use crate::common::ravendb;
use ravendb::{ClientCert, Pin, RavenServer};
use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

/// The base64 of a PEM certificate's DER: its body lines (what RavenDB's `Certificate` takes).
fn pem_base64(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn ravencert_output_runs_a_real_ravendb_41_server() {
    let provisioned = ravendb::provision().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("provisioning took {:?}", provisioned.took);

    let (env, server_thumb) = common::applied_node("app", "Orders App");
    let admin_thumb = env.thumbprint("admin");
    let app_thumb = env.thumbprint("app");
    let store = env.store();

    // ravencert's own bootstrap: `[server] install` wrote the server .pfx in the legacy profile
    // (RavenDB 4.1 reads no other), `ravencert settings` names it and the admin thumbprint.
    let server_pem = store.join("certs").join(format!("{server_thumb}.pem"));
    let settings = common::node_settings(&env);
    assert_eq!(settings.admin_thumbprint, admin_thumb);
    assert_eq!(
        settings.certificate_path,
        std::fs::canonicalize(env.path("node/server.pfx")).unwrap()
    );

    let (admin, app) = (
        ClientCert::issued(&store, "admin"),
        ClientCert::issued(&store, "app"),
    );
    let pin = Pin::localhost(server_pem.clone());

    let started = Instant::now();
    let mut server = RavenServer::start_with_settings(&settings, &admin, &pin);
    eprintln!(
        "server ready after {:?} (probe), start() returned after {:?}, rss {:?} KiB, port {}, pid {}",
        server.ready_after(),
        started.elapsed(),
        server.rss_kib(),
        server.port(),
        server.pid()
    );

    let (code, body) = server.curl_json("GET", "/build/version", None);
    assert_eq!(code, 200, "{body}");
    eprintln!("/build/version: {body}");
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["ProductVersion"], "4.1", "{body}");

    let (code, body) = server.curl_json("GET", "/admin/certificates", None);
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["LoadedServerCert"], server_thumb.as_str(), "{body}");
    assert!(
        list["WellKnownAdminCerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == admin_thumb.as_str()),
        "the admin thumbprint {admin_thumb} is not well-known: {body}"
    );

    // Not registered yet: the server refuses the app's certificate.
    let (code, body) = server.curl_json_as(&app, "GET", "/admin/certificates", None);
    assert_eq!(code, 403, "{body}");

    let app_pem = std::fs::read_to_string(&app.cert).unwrap();
    let put = serde_json::json!({
        "Name": "Orders App",
        "Certificate": pem_base64(&app_pem),
        "SecurityClearance": "ValidUser",
        "Permissions": { "Orders": "ReadWrite" },
    });
    let (code, body) = server.curl_json("PUT", "/admin/certificates", Some(&put.to_string()));
    assert_eq!(code, 201, "{body}");

    let whoami = |server: &RavenServer| {
        let (code, body) = server.curl_json_as(&app, "GET", "/certificates/whoami", None);
        assert_eq!(code, 200, "{body}");
        let me: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(me["Thumbprint"], app_thumb.as_str(), "{body}");
        assert_eq!(me["SecurityClearance"], "ValidUser", "{body}");
        assert_eq!(me["Permissions"]["Orders"], "ReadWrite", "{body}");
    };
    whoami(&server);

    // The registration survives a restart on the same port and data directory.
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    eprintln!("restart ready after {:?}", server.ready_after());
    whoami(&server);
    eprintln!("rss after the requests: {:?} KiB", server.rss_kib());

    // Both starts served the URL, and SIGTERM stops it (no SIGKILL needed).
    let stopping = Instant::now();
    server.stop();
    let exit = server.last_exit().expect("stopped");
    eprintln!("stop took {:?}: {exit}", stopping.elapsed());
    assert_ne!(
        exit.signal(),
        Some(rustix::process::Signal::KILL.as_raw()),
        "{exit}"
    );
    let log = server.log();
    let available = format!("Server available on: {}", server.url());
    assert_eq!(log.matches(&available).count(), 2, "{log}");
}
