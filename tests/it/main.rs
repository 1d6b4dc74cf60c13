//! The integration tests that need neither a RavenDB server nor Chromium, in one test binary:
//! the harness (`tests/common/`) is built once and openssl and libgit2 are linked once, where each
//! former `tests/NAME.rs` was a binary of its own. One module per area; run one with
//! `cargo test --test it NAME::` (e.g. `cargo test --test it cli::`).
//!
//! The tests share one process: none may set environment variables, change the current folder,
//! install a panic hook or a global tracing subscriber. Each runs the `ravencert` binary in a temp
//! folder of its own and passes variables to that run (`Cmd::env`).

#[path = "../common/mod.rs"]
mod common;

mod bad_configs;
mod bundle;
mod cli;
mod convergence;
mod crash;
mod escaping;
mod examples;
mod gitops;
mod hostile;
mod lifecycle;
mod listen;
mod man;
mod outputs;
mod policy;
mod properties;
mod registry_only;
mod schema;
mod secrets;
mod settings;
mod snapshots;
mod uploads;
