//! ravencert: GitOps for RavenDB certificates.
//!
//! Data flows one way: certs.toml is parsed and validated into a [`config::Desired`], the store
//! is loaded and verified into a [`registry::Actual`], [`plan::plan`] (pure) diffs them into a
//! [`plan::Plan`], and [`apply::apply`] carries it out through [`pki`] and the [`store`].

mod apply;
pub mod cli;
pub mod config;
mod fsutil;
mod git;
pub mod inputs;
pub mod model;
pub mod ops;
pub mod pki;
pub mod plan;
mod progress;
pub mod registry;
pub mod render;
mod saved_plan;
pub mod store;
pub mod watch;

/// The starter `ravencert init` writes: small, commented, and ready to apply.
pub const STARTER: &str = include_str!("starter.toml");

/// The bundled example of every key.
pub const EXAMPLE: &str = include_str!("../certs.toml.example");
