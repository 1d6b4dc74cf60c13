//! The cluster's vocabulary: what `GET /admin/certificates` lists and the server's version, as
//! the RavenDB client decodes them and the planner reads them (one set of types for both).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Access, Clearance, Thumbprint};

/// A security clearance as the cluster lists it: a client's, or one ravencert never assigns
/// (the servers' own certificates, the server's default for unknown ones). Spelled as RavenDB
/// spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
pub enum ClusterClearance {
    /// A client's clearance: only the databases in its permissions.
    ValidUser,
    /// A client's clearance: admin of every database.
    Operator,
    /// A client's clearance: no restriction.
    ClusterAdmin,
    /// A server's own certificate; never touched by ravencert.
    ClusterNode,
    /// The server's default for an unknown certificate; never assigned.
    UnauthenticatedClients,
}

impl ClusterClearance {
    /// The client clearance it is, if it is one.
    pub fn client(self) -> Option<Clearance> {
        match self {
            ClusterClearance::ValidUser => Some(Clearance::ValidUser),
            ClusterClearance::Operator => Some(Clearance::Operator),
            ClusterClearance::ClusterAdmin => Some(Clearance::ClusterAdmin),
            ClusterClearance::ClusterNode | ClusterClearance::UnauthenticatedClients => None,
        }
    }
}

impl From<Clearance> for ClusterClearance {
    fn from(c: Clearance) -> ClusterClearance {
        match c {
            Clearance::ValidUser => ClusterClearance::ValidUser,
            Clearance::Operator => ClusterClearance::Operator,
            Clearance::ClusterAdmin => ClusterClearance::ClusterAdmin,
        }
    }
}

/// One certificate registered on the cluster, as `GET /admin/certificates` lists it: what the
/// RavenDB client decodes and the planner reads (one type for both, so nothing converts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// SHA-1 of the certificate.
    pub thumbprint: Thumbprint,
    /// The name the Studio shows.
    pub name: String,
    /// Its security clearance.
    pub clearance: ClusterClearance,
    /// Database access (ValidUser).
    pub permissions: BTreeMap<String, Access>,
    /// For a collection's secondary: the primary's thumbprint, upper-case hex as listed (the
    /// decoder leaves out a registration whose collection claim names no listed one).
    pub collection_primary: Option<String>,
    /// For a collection's primary: its secondaries' thumbprints, as `collection_primary`.
    pub collection_secondaries: Vec<String>,
    /// Disabled in the Studio (RavenDB 7.2.2 and later; None where the server does not say).
    /// An edit sends it back unchanged: ravencert never enables a registration.
    pub disabled: Option<bool>,
    /// The certificate's expiry, when the server lists it.
    pub not_after: Option<OffsetDateTime>,
    /// The public certificate (DER), when the server lists it (`adopt` writes it out).
    pub certificate: Option<Vec<u8>>,
    /// `Usage` (RavenDB 7.2.5 and later): `Client`, `RavenServer`,
    /// `RavenServerForCommunication`; None for older servers and older entries.
    pub usage: Option<String>,
}

/// The RavenDB version a cluster node reports (its `Raven-Server-Version` header, or
/// `GET /build/version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVersion {
    /// The major version (4 in 4.1.0).
    pub major: u32,
    /// The minor version (1 in 4.1.0).
    pub minor: u32,
    /// The full version as the server writes it, for messages.
    pub full: String,
}

impl ServerVersion {
    /// Whether the server is `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// The patch number of [`Self::full`] (2 in 7.2.2), 0 when it gives none.
    pub fn patch(&self) -> u32 {
        self.full
            .split('.')
            .nth(2)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// What the cluster holds, read once per plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterListing {
    /// Every registration (secondaries included).
    pub registrations: Vec<Registration>,
    /// The servers' own certificates: the one the answering node has loaded and every
    /// ClusterNode registration. Never unregistered.
    pub server_thumbprints: Vec<Thumbprint>,
    /// `Security.WellKnownCertificates.Admin` from the server's settings (those that are
    /// thumbprints). Never unregistered.
    pub well_known_admins: Vec<Thumbprint>,
    /// The server's version.
    pub version: ServerVersion,
    /// Whether the server can disable a registration (`Disabled`, RavenDB 7.2.2 and later): a
    /// listed entry carries the field, or the version says so. Where it cannot, a disabled
    /// client is unregistered while disabled (see `disable.rs`).
    pub can_disable: bool,
    /// When each registration was last used, where the server says (`GET /admin/stats`, read
    /// for `status`, `watch --listen` and policy.toml's `max_unused`). Empty when unknown.
    pub last_used: BTreeMap<Thumbprint, OffsetDateTime>,
}

impl ClusterListing {
    /// When each registration the server has a record of was last used, for policy.toml's
    /// `max_unused`; None where the server does not say (RavenDB 4.1, or last use not read). A
    /// registration without a record is left out (unknown, not "never used"): a node keeps
    /// last use only since it started.
    pub fn usage(&self) -> Option<crate::plan::Usage> {
        if self.last_used.is_empty() {
            return None;
        }
        Some(
            self.last_used
                .iter()
                .map(|(t, used)| (t.clone(), Some(*used)))
                .collect(),
        )
    }
}
