//! A certificate's thumbprint, checked and upper-cased once where it is made, so that no
//! comparison anywhere needs a case fold (one missed fold would be a wrong unregister).
//!
//! Two types: [`Thumbprint`], always 40 upper-case hex digits, and [`EntryThumbprint`], what a
//! registry entry carries: a thumbprint, or in a registry a plan projects (`plan --diff`) or
//! assumes (`plan --base`) a placeholder for one only the apply will know. Text that is called
//! a thumbprint but is none (an SSO entry's GUID, whatever a hostile listing sends) is neither:
//! it stays text where it is listed, and is never compared with these.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A certificate's SHA-1 thumbprint as RavenDB shows it: 40 upper-case hex digits. Made from
/// text in either case ([`Thumbprint::parse`], and so serde) or from a digest
/// ([`Thumbprint::from_sha1`]); equal thumbprints are equal strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Thumbprint(String);

/// Text that is not a thumbprint (not 40 hex digits); says what it was, escaped and capped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' is not a thumbprint (40 hex digits)")]
pub struct ThumbprintError {
    shown: String,
}

impl Thumbprint {
    /// The thumbprint `text` spells, in either case: 40 hex digits, nothing around them.
    pub fn parse(text: &str) -> Result<Thumbprint, ThumbprintError> {
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Thumbprint(text.to_ascii_uppercase()))
        } else {
            let shown: String = text.escape_debug().to_string().chars().take(80).collect();
            Err(ThumbprintError { shown })
        }
    }

    /// The thumbprint of a certificate whose DER has SHA-1 digest `digest`.
    pub fn from_sha1(digest: &[u8; 20]) -> Thumbprint {
        Thumbprint(hex::encode_upper(digest))
    }

    /// Its 40 upper-case hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Thumbprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by thumbprint are looked up with text: equal as `str` iff equal as thumbprints,
/// since the inner text is the one upper-case spelling (Hash and Ord agree with `str`'s).
impl Borrow<str> for Thumbprint {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Thumbprint {
    type Error = ThumbprintError;
    fn try_from(text: String) -> Result<Thumbprint, ThumbprintError> {
        Thumbprint::parse(&text)
    }
}

impl From<Thumbprint> for String {
    fn from(t: Thumbprint) -> String {
        t.0
    }
}

impl PartialEq<str> for Thumbprint {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Thumbprint {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for Thumbprint {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A registry entry's thumbprint: the certificate's, or a placeholder standing for one only the
/// apply will know (in the registry a plan projects, or the store a review plan assumes; never
/// in a store's registry, whose reader refuses anything but 40 upper-case hex digits, as
/// ravencert writes them). A placeholder is never a thumbprint, so the two never compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryThumbprint {
    /// A certificate's thumbprint.
    Known(Thumbprint),
    /// Words standing for a thumbprint not known yet (`(known after apply)`), unique per entry
    /// where entries must be told apart.
    Pending(String),
}

/// The registry reader's refusal: the registry holds thumbprints exactly as ravencert writes
/// them, so any other spelling (lower case included) is a registry edited by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a thumbprint (40 upper-case hex digits)")]
pub struct EntryThumbprintError(pub String);

impl EntryThumbprint {
    /// A placeholder; `words` must not be a thumbprint (it then stands for itself).
    pub fn pending(words: impl Into<String>) -> EntryThumbprint {
        let words = words.into();
        match Thumbprint::parse(&words) {
            Ok(t) if t.as_str() == words => EntryThumbprint::Known(t),
            _ => EntryThumbprint::Pending(words),
        }
    }

    /// The thumbprint, when it is known.
    pub fn known(&self) -> Option<&Thumbprint> {
        match self {
            EntryThumbprint::Known(t) => Some(t),
            EntryThumbprint::Pending(_) => None,
        }
    }

    /// The text: the thumbprint's 40 digits, or the placeholder's words.
    pub fn as_str(&self) -> &str {
        match self {
            EntryThumbprint::Known(t) => t.as_str(),
            EntryThumbprint::Pending(words) => words,
        }
    }

    /// The strict reading of the registry: 40 upper-case hex digits, as ravencert writes them.
    pub fn parse_registered(text: &str) -> Result<EntryThumbprint, EntryThumbprintError> {
        match Thumbprint::parse(text) {
            Ok(t) if t.as_str() == text => Ok(EntryThumbprint::Known(t)),
            _ => Err(EntryThumbprintError(text.to_string())),
        }
    }
}

/// Any text: a thumbprint when it is one as ravencert writes it (40 upper-case hex digits),
/// else a placeholder (see [`EntryThumbprint::pending`]).
impl From<&str> for EntryThumbprint {
    fn from(text: &str) -> EntryThumbprint {
        EntryThumbprint::pending(text)
    }
}

impl From<String> for EntryThumbprint {
    fn from(text: String) -> EntryThumbprint {
        EntryThumbprint::pending(text)
    }
}

impl AsRef<str> for EntryThumbprint {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<Thumbprint> for EntryThumbprint {
    fn from(t: Thumbprint) -> EntryThumbprint {
        EntryThumbprint::Known(t)
    }
}

impl fmt::Display for EntryThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered as their text, so that a registry sorts as it did when thumbprints were strings.
impl Ord for EntryThumbprint {
    fn cmp(&self, other: &EntryThumbprint) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for EntryThumbprint {
    fn partial_cmp(&self, other: &EntryThumbprint) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<Thumbprint> for EntryThumbprint {
    fn eq(&self, other: &Thumbprint) -> bool {
        self.known() == Some(other)
    }
}

impl PartialEq<EntryThumbprint> for Thumbprint {
    fn eq(&self, other: &EntryThumbprint) -> bool {
        other.known() == Some(self)
    }
}

impl Serialize for EntryThumbprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Any text, as [`From<String>`] reads it (a saved plan's placeholder stays one); the
/// registry reads its entries strictly instead ([`EntryThumbprint::deserialize_registered`]).
impl<'de> Deserialize<'de> for EntryThumbprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EntryThumbprint, D::Error> {
        String::deserialize(d).map(EntryThumbprint::from)
    }
}

impl EntryThumbprint {
    /// For `#[serde(deserialize_with)]` on a registry entry's thumbprint:
    /// [`EntryThumbprint::parse_registered`], its refusal naming the text.
    pub fn deserialize_registered<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<EntryThumbprint, D::Error> {
        let text = String::deserialize(d)?;
        EntryThumbprint::parse_registered(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    const UPPER: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    #[test]
    fn lower_case_is_upper_cased_once() {
        let t = Thumbprint::parse(&UPPER.to_ascii_lowercase()).unwrap();
        assert_eq!(t.as_str(), UPPER);
        assert_eq!(t, Thumbprint::parse(UPPER).unwrap());
        assert_eq!(t.to_string(), UPPER);
    }

    #[test]
    fn anything_but_40_hex_digits_is_refused() {
        for bad in [
            "",
            &UPPER[..39],
            &format!("{UPPER}0"),
            &format!(" {}", &UPPER[1..]),
            &UPPER.replace('A', "G"),
            "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "é123456789ABCDEF0123456789ABCDEF0123456",
        ] {
            assert!(Thumbprint::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = Thumbprint::parse("x\u{7}y").unwrap_err().to_string();
        assert_eq!(err, "'x\\u{7}y' is not a thumbprint (40 hex digits)");
    }

    #[test]
    fn from_a_digest() {
        let mut digest = [0u8; 20];
        digest[0] = 0xab;
        digest[19] = 0x0f;
        let t = Thumbprint::from_sha1(&digest);
        assert_eq!(t.as_str(), "AB0000000000000000000000000000000000000F");
    }

    #[test]
    fn serde_round_trip_upper_cases_and_refuses() {
        let t: Thumbprint =
            serde_json::from_str(&format!("\"{}\"", UPPER.to_ascii_lowercase())).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{UPPER}\""));
        let back: Thumbprint = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<Thumbprint>("\"ABC\"").is_err());
        assert!(serde_json::from_str::<Thumbprint>("5").is_err());
    }

    #[test]
    fn maps_keyed_by_thumbprint_are_found_with_any_parsed_spelling() {
        let t = Thumbprint::parse(UPPER).unwrap();
        let sorted = BTreeMap::from([(t.clone(), 1)]);
        let hashed = HashMap::from([(t, 2)]);
        let lookup = Thumbprint::parse(&UPPER.to_ascii_lowercase()).unwrap();
        assert_eq!(sorted.get(&lookup), Some(&1));
        assert_eq!(sorted.get(lookup.as_str()), Some(&1));
        assert_eq!(hashed.get(lookup.as_str()), Some(&2));
    }

    #[test]
    fn an_entry_thumbprint_is_read_strictly_and_sorts_as_text() {
        let known = EntryThumbprint::parse_registered(UPPER).unwrap();
        assert_eq!(known.known().map(Thumbprint::as_str), Some(UPPER));
        let lower = UPPER.to_ascii_lowercase();
        assert_eq!(
            EntryThumbprint::parse_registered(&lower)
                .unwrap_err()
                .to_string(),
            format!("'{lower}' is not a thumbprint (40 upper-case hex digits)")
        );
        let pending = EntryThumbprint::pending("(known after apply)");
        assert_eq!(pending.known(), None);
        assert_eq!(EntryThumbprint::pending(UPPER), known);
        assert_eq!(pending < known, "(known after apply)" < UPPER);
        let toml_text = toml::to_string(&BTreeMap::from([("t", &pending)])).unwrap();
        assert_eq!(toml_text, "t = \"(known after apply)\"\n");
        // Read back as any text (a saved plan), or strictly (the registry).
        let json = serde_json::to_string(&pending).unwrap();
        assert_eq!(
            serde_json::from_str::<EntryThumbprint>(&json).unwrap(),
            pending
        );
        let strict = |text: &str| {
            EntryThumbprint::deserialize_registered(serde_json::Value::String(text.into()))
        };
        assert!(strict("(known after apply)").is_err());
        assert_eq!(strict(UPPER).unwrap(), known);
    }

    #[test]
    fn a_map_keyed_by_thumbprint_round_trips_as_json() {
        let t = Thumbprint::parse(UPPER).unwrap();
        let map = BTreeMap::from([(t, 1u8)]);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, format!("{{\"{UPPER}\":1}}"));
        assert_eq!(
            serde_json::from_str::<BTreeMap<Thumbprint, u8>>(&json).unwrap(),
            map
        );
        let bad = serde_json::from_str::<BTreeMap<Thumbprint, u8>>("{\"nope\":1}");
        assert!(bad.is_err());
    }
}
