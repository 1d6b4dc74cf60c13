//! ravencert: GitOps for RavenDB certificates. Certificates are declared in certs.toml,
//! reviewed as a plan, and applied to an on-disk certificate store (certificates, keys, client
//! bundles, and a registry of what is registered, as RavenDB's own registry keeps it).
//!
//! This library is the `ravencert` binary's internals, split out for tests and benchmarks; it is
//! not a stable API. The product contract is `docs/contract.md`, the layers `docs/architecture.md`.
//!
//! Data flows one way:
//!
//! ```text
//! certs.toml --parse--> Declared --resolve--> Desired --.
//!                                                       +--plan--> Plan --render--> text | json | markdown
//! store/ --------load + verify--------------> Actual ---'           |
//!                                                                   '--apply--> store/ (atomic, locked)
//! ```
//!
//! [`config::parse`] validates certs.toml into a [`config::Declared`], which
//! [`config::Declared::resolve`] completes with the certificate files it names into a
//! [`config::Desired`]. [`store::Store::load`] reads and verifies the store into a
//! [`registry::Actual`]. [`plan::plan`], a pure function, diffs the two into a [`plan::Plan`],
//! which [`render`] shows and the apply carries out through `pki` and the store. [`ops`] has one
//! function per command (what the binary calls); main does all printing and prompting.
//!
//! Modules (those without a link are private):
//! - [`cli`]: the command line (clap definitions); parsing only.
//! - [`ravendb`]: the RavenDB REST client (certificate endpoints, TLS pinning, node failover).
//! - [`ops`]: one function per command: load, call the core, return what to print.
//! - [`config`]: certs.toml's schema and its validation into `Declared` and `Desired`.
//! - [`inputs`]: the certificate files and secrets certs.toml refers to.
//! - [`model`]: the shared vocabulary: clearances, access levels, key types, durations.
//! - [`registry`]: the registry as data (entries, text form, seal, drift) and `Actual`.
//! - [`store`]: the on-disk store (verified loads, lock, atomic commits, registry last).
//! - [`pki`]: all cryptography: keys, signing, PKCS#12, thumbprints, certificate files.
//! - [`plan`]: the pure planner, and the registry as it will be after a plan.
//! - `apply`: carries out a plan through pki and the store.
//! - [`render`]: plan text, JSON and Markdown, status tables, the apply report.
//! - `saved_plan`: `plan --out` files, refused when stale.
//! - [`watch`]: the `watch` loop (file watch or git polling, ticks, backoff).
//! - [`listen`]: `watch --listen`: /metrics, /healthz and the status page over HTTP.
//! - `git`: certs.toml at a revision, provenance, following a remote branch.
//! - `fsutil`: bounded reads of regular files and the one atomic writer, never through a link.
//! - `chars`: the one table of invisible characters that output, names and the schema share.
//! - `progress`: the progress bar of long applies, on a terminal only.
//! - `thumbprint`: [`model::Thumbprint`], checked and upper-cased once where it is made.

#![warn(missing_docs)]
// Printing belongs to the binary (main.rs); the library returns what to print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod chars;
pub mod cli;
pub mod config;
mod fsutil;
mod git;
pub mod inputs;
pub mod listen;
pub mod model;
pub mod ops;
pub mod pki;
pub mod plan;
mod progress;
pub mod ravendb;
pub mod registry;
pub mod render;
mod saved_plan;
pub mod store;
mod threads;
mod thumbprint;
pub mod watch;

// Errors of private modules that the public errors (`ops::Error` and its sources) carry.
pub use apply::{ApplyError, InstallError};
pub use fsutil::ReadError;
pub use git::GitError;
pub use saved_plan::SavedPlanError;

/// The starter `ravencert init` writes: small, commented, and ready to apply.
pub(crate) const STARTER: &str = include_str!("starter.toml");

/// The bundled example of every key.
pub const EXAMPLE: &str = include_str!("../certs.toml.example");

/// The environment variable `name` read as a whole number; None when it is unset or is not one.
/// (RAVENCERT_JOBS, and the `test-hooks` builds' fault and limit switches.)
pub(crate) fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}
