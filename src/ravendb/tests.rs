//! The client's unit tests: urls, the listing's decoding and checks, errors, versions.

use std::collections::BTreeMap;

use openssl::pkey::PKey;
use openssl::x509::X509;

use super::client::{check_url, http_error, no_such_route, path_as_sent};
use super::wire::{
    collection_key, decode_build_version, decode_last_used, decode_listing, edit_body,
    version_from_header,
};
use super::*;
use crate::model::{Access, Clearance};
use crate::pki;

#[test]
fn urls_are_checked() {
    assert_eq!(
        check_url("https://a.example.com:443/").unwrap(),
        "https://a.example.com:443"
    );
    assert!(matches!(
        check_url("http://a"),
        Err(ClusterError::BadUrl { .. })
    ));
    // A path: a node behind a reverse proxy, as [cluster] urls allow.
    assert_eq!(check_url("https://a/raven/").unwrap(), "https://a/raven");
    assert!(matches!(
        check_url("https://a/x?y=1"),
        Err(ClusterError::BadUrl { .. })
    ));
    assert!(matches!(
        check_url("https://user@a"),
        Err(ClusterError::BadUrl { .. })
    ));
    assert!(matches!(
        check_url("https://"),
        Err(ClusterError::BadUrl { .. })
    ));
    // One validator: what certs.toml accepts, the client takes, normalized the same way (the
    // client used to refuse `HTTPS://`, which config accepts), and what config refuses, the
    // client refuses (a port out of range, a host that is no host name).
    assert_eq!(
        check_url("HTTPS://a.example.com:8080/").unwrap(),
        "https://a.example.com:8080"
    );
    for bad in [
        "https://a:99999",
        "https://a_b!c",
        "https://a:0",
        "https://[::1",
    ] {
        assert!(crate::model::cluster_url(bad).is_err(), "{bad}");
        assert!(
            matches!(check_url(bad), Err(ClusterError::BadUrl { .. })),
            "{bad}"
        );
    }
}

/// A listing entry for the tests: `der`'s real thumbprint unless `thumbprint` is given.
fn entry(name: &str, der: &[u8], clearance: &str, extra: &str) -> String {
    format!(
        r#"{{"Name":{},"Certificate":"{}","Thumbprint":"{}","SecurityClearance":"{clearance}"{extra}}}"#,
        serde_json::to_string(name).unwrap(),
        openssl::base64::encode_block(der),
        pki::thumbprint(der)
    )
}

fn der(n: u32) -> Vec<u8> {
    test_certificate(n)
}

/// A self-signed certificate, different for each `n`.
fn test_certificate(n: u32) -> Vec<u8> {
    use openssl::{asn1::Asn1Time, bn::BigNum, ec, nid::Nid, x509::X509Name};
    let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", &format!("c{n}")).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_serial_number(&BigNum::from_u32(n + 1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b.build().to_der().unwrap()
}

#[test]
fn listing_decodes_and_ignores_unknown_fields() {
    let (s, a) = (der(1), der(2));
    let body = format!(
        r#"{{"Results":[{},{}],"LoadedServerCert":"{}","WellKnownAdminCerts":["99aa"],"Extra":1}}"#,
        entry(
            "Server Certificate",
            &s,
            "ClusterNode",
            r#","NotAfter":"2027-11-28T17:05:53.0000000","Permissions":{},"CollectionPrimaryKey":"","CollectionSecondaryKeys":[],"NotBefore":"x","PublicKeyPinningHash":"y""#
        ),
        entry(
            "app",
            &a,
            "ValidUser",
            r#","Permissions":{"Orders":"ReadWrite"},"Usage":"Client","Disabled":false"#
        ),
        pki::thumbprint(&s).as_str().to_lowercase(),
    );
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert_eq!(listing.left_out, Vec::<String>::new());
    assert_eq!(
        listing.loaded_server_cert,
        Some(pki::thumbprint(&s).to_string())
    );
    assert_eq!(listing.well_known_admins, vec!["99AA"]);
    assert_eq!(listing.server_version, None);
    let server = &listing.registrations[0];
    assert_eq!(server.clearance, ClusterClearance::ClusterNode);
    assert_eq!(server.collection_primary, None);
    assert_eq!(
        server.not_after,
        Some(time::macros::datetime!(2027-11-28 17:05:53 UTC))
    );
    let app = &listing.registrations[1];
    assert_eq!(app.clearance, ClusterClearance::ValidUser);
    assert_eq!(app.permissions["Orders"], Access::ReadWrite);
}

/// RavenDB 7.2's listing: the newer fields decode, and what ravencert does not manage (an
/// SSO user without a certificate, a well-known issuer) is set apart, not reported as bad.
#[test]
fn a_72_listing_decodes_its_newer_fields() {
    let body = include_bytes!("../../tests/fixtures/ravendb-listings/ravendb-7.2.json");
    let listing = decode_listing(body).unwrap();
    assert_eq!(listing.left_out, Vec::<String>::new());
    let usages: Vec<(&str, &str)> = listing
        .unmanaged
        .iter()
        .map(|u| (u.name.as_str(), u.usage.as_str()))
        .collect();
    assert_eq!(
        usages,
        vec![
            ("alice", "SsoClient"),
            ("Corporate Issuer", "WellKnownIssuer")
        ]
    );
    assert_eq!(
        listing.loaded_server_cert_for_communication.as_deref(),
        Some("6091A4FEA6F248728C6BBD5F0A3E05219E0DFA4B")
    );
    let batch = listing
        .registrations
        .iter()
        .find(|r| r.name == "Batch")
        .unwrap();
    assert_eq!(batch.disabled, Some(true));
    assert_eq!(batch.usage.as_deref(), Some("Client"));
    let legacy = listing
        .registrations
        .iter()
        .find(|r| r.name == "Legacy Entry")
        .unwrap();
    assert_eq!(legacy.usage, None);
    // An unknown usage is left alone and reported, never guessed at.
    let body = String::from_utf8(body.to_vec())
        .unwrap()
        .replace(r#""Usage": "Client""#, r#""Usage": "Robot""#);
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert!(listing.left_out.iter().all(|w| w.contains("\"Robot\"")));
    assert_eq!(listing.left_out.len(), 3, "{:?}", listing.left_out);
}

/// An edit sends no two-factor key (absent keeps the stored one), and sends back the
/// Disabled the listing showed (so it never enables a registration); without one, none.
#[test]
fn an_edit_leaves_two_factor_and_disabled_as_they_are() {
    let perms = BTreeMap::from([("Orders".to_string(), Access::Read)]);
    let body = edit_body("AB", "n", Clearance::ValidUser, &perms, Some(true));
    assert_eq!(body["Disabled"], serde_json::Value::Bool(true));
    assert_eq!(body["Permissions"]["Orders"], "Read");
    assert!(body.get("TwoFactorAuthenticationKey").is_none());
    let body = edit_body("AB", "n", Clearance::ValidUser, &perms, None);
    assert!(body.get("Disabled").is_none());
}

#[test]
fn one_bad_entry_is_left_out_and_the_rest_is_read() {
    let (good, other) = (der(3), der(4));
    let body = format!(
        r#"{{"Results":[{},{},{},{},{}]}}"#,
        entry("good", &good, "ValidUser", ""),
        entry("root?", &other, "Root", ""),
        entry(
            "bad access",
            &other,
            "ValidUser",
            r#","Permissions":{"Orders":"Owner"}"#
        ),
        r#"{"Name":"no thumbprint","SecurityClearance":"ClusterAdmin"}"#,
        r#"{"Name":42}"#,
    );
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert_eq!(listing.registrations.len(), 1);
    assert_eq!(listing.registrations[0].name, "good");
    assert_eq!(listing.left_out.len(), 4, "{:?}", listing.left_out);
    assert!(
        listing.left_out[0].contains("\"Root\""),
        "{:?}",
        listing.left_out
    );
    assert!(listing
        .left_out
        .iter()
        .all(|w| w.ends_with("it is left alone")));
}

#[test]
fn a_raw_control_character_in_a_name_does_not_stop_the_listing() {
    // RavenDB 4.1 writes U+0001 raw inside the string, which JSON forbids.
    let (a, b) = (der(5), der(6));
    let body = format!(
        r#"{{"Results":[{},{}]}}"#,
        entry("xQy", &a, "Operator", ""),
        entry("tab\there", &b, "ValidUser", ""),
    )
    .replace("xQy", "x\u{1}y\ttab\nline")
    .into_bytes();
    assert!(body.contains(&1u8) && body.contains(&b'\n'));
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    let listing = decode_listing(&body).unwrap();
    assert_eq!(listing.registrations[0].name, "x\u{1}y\ttab\nline");
    assert_eq!(listing.registrations[1].name, "tab\there");
    // Pretty-printed JSON (white space between tokens) is left as it is.
    let pretty = b"{\n\t\"Results\": [ ]\r\n}";
    assert!(decode_listing(pretty).unwrap().registrations.is_empty());
}

/// Found by the fuzzer: the same thumbprint twice, once as a plain registration and once
/// as a collection's primary, made the collection check read one entry and the planner the
/// other.
#[test]
fn a_thumbprint_listed_twice_is_left_out() {
    let (p, s) = (der(12), der(13));
    let (tp, ts) = (pki::thumbprint(&p), pki::thumbprint(&s));
    let body = format!(
        r#"{{"Results":[{},{},{}]}}"#,
        entry("Root", &p, "ClusterAdmin", ""),
        entry(
            "Root",
            &p,
            "ClusterAdmin",
            &format!(r#","CollectionSecondaryKeys":["{ts}"]"#)
        ),
        entry(
            "Root",
            &s,
            "ClusterAdmin",
            &format!(r#","CollectionPrimaryKey":"{tp}""#)
        ),
    );
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert!(
        listing.registrations.is_empty(),
        "{:?}",
        listing.registrations
    );
    assert!(
        listing.left_out[0].contains("listed 2 times"),
        "{:?}",
        listing.left_out
    );
    let regression = include_bytes!(
        "../../fuzz/regressions/cluster_listing/crash-2d77f94fff2adcf529f79d325afad214bcdc4d18"
    );
    let listing = decode_listing(regression).unwrap();
    for r in &listing.registrations {
        if let Some(p) = &r.collection_primary {
            let primary = listing.registrations.iter().find(|x| x.thumbprint == *p);
            assert!(primary
                .is_some_and(|x| x.collection_secondaries.iter().any(|s| r.thumbprint == *s)));
        }
    }
}

#[test]
fn a_thumbprint_that_is_not_its_certificates_is_left_out() {
    let (real, other) = (der(7), der(8));
    let lying = entry("Root", &real, "ClusterAdmin", "").replace(
        pki::thumbprint(&real).as_str(),
        pki::thumbprint(&other).as_str(),
    );
    let body = format!(r#"{{"Results":[{lying}]}}"#);
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert!(listing.registrations.is_empty());
    assert!(
        listing.left_out[0].contains("not its Thumbprint"),
        "{:?}",
        listing.left_out
    );
}

#[test]
fn a_collection_claim_the_other_side_does_not_make_is_left_out() {
    let (p, s, stray) = (der(9), der(10), der(11));
    let (tp, ts, tx) = (
        pki::thumbprint(&p),
        pki::thumbprint(&s),
        pki::thumbprint(&stray),
    );
    // The primary lists two secondaries; only one names it back. The stray is a separate
    // ValidUser registration that the ClusterAdmin primary tries to pull in.
    let body = format!(
        r#"{{"Results":[{},{},{}]}}"#,
        entry(
            "Root",
            &p,
            "ClusterAdmin",
            &format!(r#","CollectionSecondaryKeys":["certificates/{ts}","{tx}"]"#)
        ),
        entry(
            "Root",
            &s,
            "ClusterAdmin",
            &format!(r#","CollectionPrimaryKey":"certificates/{tp}""#)
        ),
        entry(
            "Reader",
            &stray,
            "ValidUser",
            r#","Permissions":{"Orders":"ReadWrite"}"#
        ),
    );
    let listing = decode_listing(body.as_bytes()).unwrap();
    let kept: Vec<&str> = listing
        .registrations
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    // The primary is left out; its real secondary then points at nothing and goes too.
    assert_eq!(kept, vec!["Reader"], "{:?}", listing.left_out);
    assert_eq!(
        listing.registrations[0].clearance,
        ClusterClearance::ValidUser
    );
    assert_eq!(listing.left_out.len(), 2, "{:?}", listing.left_out);
    // A consistent collection stays whole.
    let body = format!(
        r#"{{"Results":[{},{}]}}"#,
        entry(
            "Root",
            &p,
            "ClusterAdmin",
            &format!(r#","CollectionSecondaryKeys":["certificates/{ts}"]"#)
        ),
        entry(
            "Root",
            &s,
            "ClusterAdmin",
            &format!(r#","CollectionPrimaryKey":"certificates/{tp}""#)
        ),
    );
    let listing = decode_listing(body.as_bytes()).unwrap();
    assert_eq!(listing.registrations.len(), 2, "{:?}", listing.left_out);
    assert_eq!(
        listing.registrations[1].collection_primary.as_deref(),
        Some(tp.as_str())
    );
}

#[test]
fn server_errors_quote_ravendbs_message() {
    // A node still starting answers 500 with nothing in it: said so, with the way out.
    let e = http_error("https://a", 500, b"");
    assert!(
        matches!(e, ClusterError::Starting { status: 500, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("retry when RavenDB is up"), "{e}");
    let e = http_error("https://a", 500, br#"{"Type":"X","Message":"boom"}"#);
    assert!(
        matches!(e, ClusterError::Server { status: 500, ref message, .. } if message == "boom")
    );
    let e = http_error(
        "https://a",
        403,
        br#"{"Type":"InvalidAuth","Message":"no"}"#,
    );
    assert!(e.to_string().contains("not registered"), "{e}");
}

/// `GET /build/version` reads as the header does; a product version that is not
/// `major.minor` is an error naming the node, not a version that compares as nothing.
#[test]
fn the_version_endpoint_decodes_or_says_why_not() {
    let body = br#"{"ProductVersion":"4.1","BuildVersion":41001,"FullVersion":"4.1.0"}"#;
    let v = decode_build_version("https://a", body).unwrap();
    assert_eq!((v.major, v.minor, v.full.as_str()), (4, 1, "4.1.0"));
    assert_eq!(Some(v), version_from_header("4.1.0.41001"));
    let v = decode_build_version("https://a", br#"{"ProductVersion":"6.0","BuildVersion":1}"#);
    assert_eq!(v.unwrap().full, "6.0");
    let e = decode_build_version("https://a", br#"{"ProductVersion":"x","BuildVersion":1}"#)
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::Decode { ref url, .. } if url == "https://a"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("cannot read the server version"),
        "{e}"
    );
    let e = decode_build_version("https://a", b"{}").unwrap_err();
    assert!(
        matches!(e, ClusterError::Decode { ref url, .. } if url == "https://a/build/version"),
        "{e:?}"
    );
}

/// Query values go through ureq's query builder: whatever a value holds, it stays one value,
/// and the body log records the query as it is sent.
#[test]
fn query_values_cannot_break_out() {
    let sent = |value: &str| {
        let request = ureq::agent()
            .request("DELETE", "https://a:8080/raven/admin/certificates")
            .query("thumbprint", value);
        path_as_sent("/admin/certificates", request.url())
    };
    assert_eq!(sent("AB12"), "/admin/certificates?thumbprint=AB12");
    assert_eq!(sent("a&b=c"), "/admin/certificates?thumbprint=a%26b%3Dc");
    assert_eq!(
        sent("a b+c#d\u{e9}"),
        "/admin/certificates?thumbprint=a+b%2Bc%23d%C3%A9"
    );
    assert_eq!(
        path_as_sent("/build/version", "https://a/build/version"),
        "/build/version"
    );
}

#[test]
fn the_version_header_reads_as_the_version_endpoint_does() {
    let v = version_from_header("4.1.0.41001").unwrap();
    assert_eq!((v.major, v.minor), (4, 1));
    assert_eq!(v.full, "4.1.0");
    assert!(v.at_least(4, 1) && !v.at_least(5, 2));
    let v = version_from_header("6.0.105-nightly").unwrap();
    assert_eq!((v.major, v.minor), (6, 0));
    assert_eq!(version_from_header("5.4").unwrap().full, "5.4.0");
    assert_eq!(version_from_header("garbage"), None);
}

#[test]
fn collection_members_are_read_from_their_document_ids() {
    let t = "06B5AF23480C83FA3AD8ECB3D507EBE474EBE685";
    assert_eq!(collection_key(&format!("certificates/{t}")), t);
    assert_eq!(
        collection_key(&format!("Certificates/{}", t.to_lowercase())),
        t
    );
    assert_eq!(collection_key(t), t);
    assert_eq!(collection_key("cert"), "CE");
}

/// `GET /admin/stats` as RavenDB 6.x and 7.x write it (`ServerStatistics.WriteTo`): each
/// certificate's last use by thumbprint, dates in .NET's round-trip form. What cannot be read
/// (a key that is no thumbprint, a value that is no date, a control character in it) is left
/// out and named, escaped; a 4.1 answer, without the field, says nothing.
#[test]
fn last_used_is_read_and_garbage_is_unknown() {
    let body = br#"{"UpTime":"1.02:03:04.5000000","StartUpTime":"2026-06-01T10:00:00.0000000Z",
        "LastRequestTime":"2026-06-01T11:59:00.0000000Z","LastAuthorizedNonClusterAdminRequestTime":null,
        "LastRequestTimePerCertificate":{
            "CFDBD6120652B8AD91A08F18BBB971A159271F52":"2026-06-01T11:58:30.1234567Z",
            "812383772d393b153b85cf1c470ff72ccea387ad":"2026-05-30T08:00:00.0000000Z",
            "not-a-thumbprint":"2026-06-01T00:00:00.0000000Z",
            "FF507825EE802E6BAF9A60F785DDA74AA38EE019":"yesterday\u001b[31m",
            "22D396A402980E47CB0AD8B42413CF293F3D5B9D":7}}"#;
    let usage = decode_last_used(body).unwrap().expect("7.x says");
    let (last_used, notes) = (usage.last_used, usage.left_out);
    let shown: Vec<(String, String)> = last_used
        .iter()
        .map(|(t, d)| (t.to_string(), crate::render::rfc3339(*d)))
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "812383772D393B153B85CF1C470FF72CCEA387AD".to_string(),
                "2026-05-30T08:00:00Z".to_string()
            ),
            (
                "CFDBD6120652B8AD91A08F18BBB971A159271F52".to_string(),
                "2026-06-01T11:58:30Z".to_string()
            ),
        ]
    );
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("not-a-thumbprint")),
        "{notes:?}"
    );
    assert!(
        notes.iter().all(|n| !n.contains('\u{1b}')),
        "escaped: {notes:?}"
    );
    // RavenDB 4.1's statistics have no such field: unknown, not "never used".
    let old = br#"{"UpTime":"00:05:00","StartUpTime":"2026-06-01T10:00:00.0000000Z","LastRequestTime":null}"#;
    assert_eq!(decode_last_used(old).unwrap(), None);
    assert!(decode_last_used(b"<html>").is_err());
    // No such route: 4.1's 400 (as the live server answers) or a 404; not any other failure.
    let body = br#"{"Url":"/admin/stats","Type":"Raven.Client.Exceptions.RouteNotFoundException","Message":"There is no handler for path: GET /admin/stats"}"#;
    assert!(no_such_route(&http_error("https://a", 400, body)));
    assert!(no_such_route(&http_error("https://a", 404, b"")));
    assert!(!no_such_route(&http_error(
        "https://a",
        400,
        br#"{"Message":"bad"}"#
    )));
    assert!(!no_such_route(&http_error("https://a", 403, body)));
    assert!(decode_last_used(br#"{"LastRequestTimePerCertificate":[1]}"#).is_err());
}

/// A TLS 1.2 server on 127.0.0.1 that serves `cert` and refuses every client certificate in
/// the handshake (as a node whose CA does not know the client's issuer); its port.
fn refusing_server(cert: &pki::Issued) -> u16 {
    use openssl::ssl::{SslAcceptor, SslMethod, SslVersion};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor
        .set_certificate(&X509::from_der(&cert.cert_der).unwrap())
        .unwrap();
    let key = PKey::private_key_from_pem(&cert.key.to_pem().unwrap()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .unwrap();
    acceptor.set_verify_callback(
        openssl::ssl::SslVerifyMode::PEER | openssl::ssl::SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| false,
    );
    let acceptor = acceptor.build();
    std::thread::spawn(move || {
        if let Some(stream) = listener.incoming().flatten().next() {
            let _ = acceptor.accept(stream);
        }
    });
    port
}

#[test]
fn a_pinned_handshake_that_fails_says_why_not_what_no_ca_would_say() {
    // A pinned connection asks OpenSSL for no chain verdict (it has no CA store), so a failed
    // handshake must report the server's reason, not "did not verify" (the verdict against
    // no CA at all, always a failure).
    let now = time::OffsetDateTime::now_utc();
    let later = now + time::Duration::days(1);
    let server = pki::generate_server(
        "node.example.com",
        &[],
        crate::model::KeySpec::EcP256,
        now,
        later,
    )
    .unwrap();
    let admin =
        pki::generate_server("admin", &[], crate::model::KeySpec::EcP256, now, later).unwrap();
    let port = refusing_server(&server);
    let client = Client::new(&ClientOptions {
        urls: vec![format!("https://127.0.0.1:{port}")],
        identity: Identity::Pem {
            cert: pki::der_to_pem(&admin.cert_der).unwrap(),
            key: admin.key.to_pem().unwrap(),
        },
        pin: Pin::Thumbprints(vec![pki::thumbprint(&server.cert_der)]),
        timeout: std::time::Duration::from_secs(10),
        resolve: Vec::new(),
    })
    .unwrap();
    match client.list() {
        Err(ClusterError::Tls { detail, .. }) => {
            assert!(!detail.contains("did not verify"), "{detail}");
            assert!(detail.contains("alert"), "{detail}");
        }
        other => panic!("not a TLS failure: {other:?}"),
    }
}
