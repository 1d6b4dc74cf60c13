//! The integration tests that need the real RavenDB 4.1 server (provisioned by
//! `scripts/ravendb-test-server.sh`, see `tests/common/ravendb.rs`) or headless Chromium
//! (`status_page`), in one test binary: the server is provisioned once per process and the harness
//! built once. Run one area with `cargo test --test live NAME::` (e.g.
//! `cargo test --test live cluster::`).
//!
//! The tests share one process: none may set environment variables, change the current folder,
//! install a panic hook or a global tracing subscriber (`cluster_client` scopes its subscriber to
//! a thread with `tracing::subscriber::with_default`).

#[path = "../common/mod.rs"]
mod common;

mod adopt;
mod cluster;
mod cluster_client;
mod ravendb_smoke;
mod status_page;
