//! Last use (docs/contract.md §7, §9): when each registration was last used, as the answering
//! node's statistics say (`GET /admin/stats`, RavenDB 6.x and 7.x). Read for `status`,
//! `watch --listen` and a plan under a policy with `max_unused`: the one request besides the
//! listing a plan may send. Only `max_unused` acts on it.

use super::Target;
use crate::plan::ClusterListing;

impl Target {
    /// Fills `listing.last_used` from the node's statistics. A server that does not say (4.1:
    /// no such field, or a 404) leaves it empty, which every output shows as unknown; a failed
    /// request or an unreadable value is a warning, never an error.
    pub(crate) fn fill_last_used(&self, listing: &mut ClusterListing) {
        let mut notes = self.notes.borrow_mut();
        match self.client.last_used() {
            Ok(None) => {}
            Ok(Some(usage)) => {
                notes.extend(usage.left_out);
                listing.last_used = usage.last_used;
            }
            Err(e) => notes.push(format!(
                "cluster: when each certificate was last used is not known: {e}"
            )),
        }
    }

    /// The warnings the reads so far collected (unreadable entries, last use), for `status`.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.notes.borrow().clone()
    }
}
