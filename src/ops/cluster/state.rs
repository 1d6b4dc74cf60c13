//! The store's cluster state, `.cluster-state.json`: what ravencert last set on each cluster,
//! and the server certificates its nodes were seen serving, sealed against edits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ClusterSetupError;
use crate::config::ClusterSettings;
use crate::model::Thumbprint;
use crate::ops::error::{Error, Result};
use crate::plan::{ClusterListing, ClusterPlan, RegistrationFields};
use crate::registry::Registry;
use crate::store::Store;

/// `.cluster-state.json`: per cluster (its urls, as certs.toml lists them), what ravencert last
/// set on each registration it manages. Its thumbprints are unregistered once the store no
/// longer holds them, whatever `prune` says, and its `servers` are pinned: so it is sealed
/// (`"seal"`, HMAC-SHA256 under the store's `.cluster-state-key` of the canonical bytes of the
/// rest, see [`State::seal`]), and a state that fails the seal is refused, never used.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// Always [`STATE_FORMAT`] (1 was the unsealed state of older ravencert).
    format_version: u32,
    /// Cluster id (urls joined by a space) -> thumbprint -> fields.
    clusters: BTreeMap<String, BTreeMap<Thumbprint, RegistrationFields>>,
    /// Cluster id -> the server certificates its nodes were last seen serving or registering
    /// (pinned beside the store's own, so that a re-issued server certificate does not lock
    /// ravencert out before the nodes restart with it).
    #[serde(default)]
    servers: BTreeMap<String, Vec<Thumbprint>>,
    /// When it was last written.
    #[serde(default, with = "time::serde::rfc3339::option")]
    written_at: Option<OffsetDateTime>,
}

/// The cluster state's format: 2, sealed.
const STATE_FORMAT: u32 = 2;

/// Why the cluster state is not trusted, for [`ClusterSetupError::State`].
fn untrusted(what: &str) -> Error {
    ClusterSetupError::State(format!(
        "{what}: ravencert will not trust which registrations it says ravencert made (apply would unregister them) nor which server certificates it pins"
    ))
    .into()
}

impl State {
    pub(super) fn read(store: &Store) -> Result<State> {
        let Some(bytes) = store.read_cluster_state()? else {
            return Ok(State {
                format_version: STATE_FORMAT,
                ..State::default()
            });
        };
        let unreadable =
            |e: serde_json::Error| ClusterSetupError::State(format!("is not readable: {e}"));
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(unreadable)?;
        let seal = value
            .as_object_mut()
            .and_then(|o| o.shift_remove("seal"))
            .and_then(|s| s.as_str().map(str::to_string));
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if version.is_some_and(|v| v > u64::from(STATE_FORMAT)) {
            return Err(ClusterSetupError::State(format!(
                "has format version {}, this ravencert reads {STATE_FORMAT}",
                version.unwrap_or_default()
            ))
            .into());
        }
        let Some(seal) = seal else {
            return Err(untrusted(
                "has no seal (it was written by an older ravencert, or edited)",
            ));
        };
        let Some(key) = store.cluster_state_key()? else {
            return Err(untrusted(
                "is sealed, but the key of its seal (.cluster-state-key) is gone",
            ));
        };
        if !crate::pki::seals_match(&seal, &State::seal(&key, &value)?) {
            return Err(untrusted(
                "was changed outside ravencert (its seal does not match)",
            ));
        }
        let state: State = serde_json::from_value(value).map_err(unreadable)?;
        if state.format_version != STATE_FORMAT {
            return Err(ClusterSetupError::State(format!(
                "has format version {}, this ravencert reads {STATE_FORMAT}",
                state.format_version
            ))
            .into());
        }
        Ok(state)
    }

    /// The seal of the state's JSON (without its `"seal"`): HMAC-SHA256 of its canonical bytes
    /// (compact, every object's keys sorted), so that whitespace and key order may change but
    /// no value, key or entry can be added, removed or edited.
    fn seal(key: &[u8], value: &serde_json::Value) -> Result<String> {
        let bytes = serde_json::to_vec(&canonical(value)).map_err(Error::Encode)?;
        Ok(crate::pki::cluster_state_seal(key, &bytes)?)
    }

    /// The state of the cluster at `settings.urls`: a state recorded under another url list
    /// that shares a url (a node added, removed or reordered) is the same cluster's and carries
    /// over.
    pub(super) fn load(store: &Store, settings: &ClusterSettings) -> Result<State> {
        let mut state = State::read(store)?;
        let id = State::id(settings);
        if !state.clusters.contains_key(&id) {
            let shares =
                |key: &String| key.split(' ').any(|u| settings.urls.iter().any(|s| s == u));
            if let Some(old) = state.clusters.keys().find(|k| shares(k)).cloned() {
                if let Some(set) = state.clusters.remove(&old) {
                    state.clusters.insert(id.clone(), set);
                }
                if let Some(servers) = state.servers.remove(&old) {
                    state.servers.insert(id, servers);
                }
            }
        }
        Ok(state)
    }

    fn id(settings: &ClusterSettings) -> String {
        settings.urls.join(" ")
    }

    pub(super) fn servers_for(&self, settings: &ClusterSettings) -> &[Thumbprint] {
        self.servers
            .get(&State::id(settings))
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn for_cluster(
        &self,
        settings: &ClusterSettings,
    ) -> &BTreeMap<Thumbprint, RegistrationFields> {
        static EMPTY: BTreeMap<Thumbprint, RegistrationFields> = BTreeMap::new();
        self.clusters.get(&State::id(settings)).unwrap_or(&EMPTY)
    }

    pub(super) fn for_cluster_mut(
        &mut self,
        settings: &ClusterSettings,
    ) -> &mut BTreeMap<Thumbprint, RegistrationFields> {
        self.clusters.entry(State::id(settings)).or_default()
    }

    /// After a cluster phase: every store certificate the plan left alone is as declared on
    /// the cluster now (the plan found it so), and is recorded as ravencert's. What is neither
    /// in the store nor on the cluster any more is forgotten.
    pub(super) fn settle(
        &mut self,
        settings: &ClusterSettings,
        registry: &Registry,
        listing: &ClusterListing,
        plan: &ClusterPlan,
    ) {
        let touched: BTreeSet<&Thumbprint> = plan
            .changes
            .iter()
            .filter_map(|c| c.thumbprint.as_ref())
            .collect();
        let mut keep: BTreeSet<Thumbprint> = listing
            .registrations
            .iter()
            .map(|r| r.thumbprint.clone())
            .collect();
        // The servers seen: the store's, and those the cluster still serves or registers.
        let mut servers: Vec<Thumbprint> = registry
            .server
            .iter()
            .filter_map(|s| s.thumbprint.known().cloned())
            .collect();
        for t in self.servers_for(settings) {
            let still = listing.server_thumbprints.contains(t);
            if still && !servers.contains(t) {
                servers.push(t.clone());
            }
        }
        self.servers.insert(State::id(settings), servers);
        let set = self.for_cluster_mut(settings);
        for e in &registry.certificates {
            let Some(t) = e.thumbprint.known() else {
                continue;
            };
            keep.insert(t.clone());
            if !touched.contains(t) && listing_holds(listing, t) {
                set.insert(t.clone(), RegistrationFields::from(e));
            }
        }
        set.retain(|t, _| keep.contains(t));
    }

    /// Seals and writes the state (apply only, under the store's lock; the key is made on
    /// the first write).
    pub(super) fn write(&mut self, store: &Store) -> Result<()> {
        self.format_version = STATE_FORMAT;
        self.written_at = Some(
            OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        );
        let mut value = serde_json::to_value(&*self).map_err(Error::Encode)?;
        let seal = State::seal(&store.cluster_state_key_or_create()?, &value)?;
        if let Some(o) = value.as_object_mut() {
            o.insert("seal".into(), serde_json::Value::String(seal));
        }
        let bytes = serde_json::to_vec_pretty(&value).map_err(Error::Encode)?;
        store.write_cluster_state(&bytes)?;
        Ok(())
    }
}

/// `value` with every object's keys in sorted order (serde_json keeps insertion order here).
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(o) => {
            let mut entries: Vec<(&String, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Whether the listing holds `thumbprint`.
fn listing_holds(listing: &ClusterListing, thumbprint: &Thumbprint) -> bool {
    listing
        .registrations
        .iter()
        .any(|r| r.thumbprint == *thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_state_is_sealed_and_any_edit_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        store.ensure_root().unwrap();
        let mut state = State::read(&store).unwrap();
        state.servers.insert(
            "https://a".into(),
            vec![Thumbprint::parse(&"A".repeat(40)).unwrap()],
        );
        state.write(&store).unwrap();
        assert_eq!(State::read(&store).unwrap().servers, state.servers);
        let path = dir.path().join("store/.cluster-state.json");
        let text = std::fs::read_to_string(&path).unwrap();
        // Layout is not content: compact, the same state is read.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        assert!(State::read(&store).is_ok());
        // One more pinned server, or an unknown key: refused.
        for edited in [
            text.replace(&"A".repeat(40), &"B".repeat(40)),
            text.replacen('{', "{\"extra\": 1,", 1),
        ] {
            std::fs::write(&path, edited).unwrap();
            let err = State::read(&store).unwrap_err().to_string();
            assert!(err.contains("seal does not match"), "{err}");
        }
    }
}
