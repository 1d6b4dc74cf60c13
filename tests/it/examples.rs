//! The bundled examples run as they are documented.

use crate::common;

use crate::common::json;

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn two_clusters_a_trusts_b_after_both_applies() {
    let env = common::Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-clusters");
    copy_dir(&root.join("cluster-a"), &env.path("cluster-a"));
    copy_dir(&root.join("cluster-b"), &env.path("cluster-b"));

    // A cannot upload B's export before B made it: a clear error, nothing written.
    let early = env.run(&["-c", "cluster-a/certs.toml", "plan"]).failure();
    assert!(
        early.stderr.contains("clients.cluster-b.upload"),
        "{}",
        early.stderr
    );
    assert!(early.stderr.contains("cluster-b.pfx"), "{}", early.stderr);

    env.run(&["-c", "cluster-b/certs.toml", "apply", "--yes"])
        .success();
    env.run(&["-c", "cluster-a/certs.toml", "apply", "--yes"])
        .success();

    let b = env
        .run(&["-c", "cluster-b/certs.toml", "status", "--json"])
        .success()
        .json();
    let a = env
        .run(&["-c", "cluster-a/certs.toml", "status", "--json"])
        .success()
        .json();
    let b_server = b["server"][0]["thumbprint"].as_str().unwrap();
    let trusted = json::find(&a["certificates"], "key", "cluster-b").expect("B is registered in A");
    assert_eq!(trusted["thumbprint"], b_server);
    assert_eq!(trusted["clearance"], "ValidUser");
    assert_eq!(trusted["permissions"]["Orders"], "Read");
    assert_eq!(trusted["source"], "uploaded");
    assert_ne!(a["server"][0]["thumbprint"], b["server"][0]["thumbprint"]);

    // B re-issues its server certificate: A's plan replaces the trust, naming both thumbprints.
    env.run(&[
        "-c",
        "cluster-b/certs.toml",
        "apply",
        "--yes",
        "--replace",
        "server",
    ])
    .success();
    let plan = env
        .run(&["-c", "cluster-a/certs.toml", "plan", "--json"])
        .success()
        .json();
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "replace");
    assert!(
        change["reason"].as_str().unwrap().contains(b_server),
        "{change}"
    );
    env.run(&["-c", "cluster-a/certs.toml", "apply", "--yes"])
        .success();
    env.run(&["-c", "cluster-a/certs.toml", "plan", "--detailed-exitcode"])
        .success();
}
