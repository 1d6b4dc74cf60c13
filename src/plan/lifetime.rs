//! When a generated certificate (client or server) is issued again for its lifetime: another
//! key type, another validity, inside its renewal window or expired; a certificate cut at its
//! client's `until` is neither renewed nor re-issued for its shorter validity.

use time::OffsetDateTime;

use super::until;
use crate::model::{Period, RenewBefore, BACKDATING};
use crate::registry::{CertEntry, ServerEntry};

/// What a generated certificate (client or server) is declared to be, for [`lifetime_reasons`].
pub(super) struct Lifetime {
    /// The declared key type.
    pub key: crate::model::KeySpec,
    /// The declared validity.
    pub validity: Period,
    /// The declared renewal window.
    pub renew_before: RenewBefore,
    /// When access ends (clients only): a certificate cut at it is not renewed, and its
    /// shorter validity is no change.
    pub until: Option<OffsetDateTime>,
}

/// The registered certificate's facts [`lifetime_reasons`] compares: key type, origin, dates.
pub(super) struct Issued {
    /// The key type, when the registry recorded it.
    pub key_type: Option<crate::model::KeySpec>,
    /// Whether ravencert generated it (only then is its validity ravencert's choice).
    pub generated: bool,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
}

impl From<&CertEntry> for Issued {
    fn from(e: &CertEntry) -> Issued {
        Issued {
            key_type: e.key_type,
            generated: e.source == crate::model::Origin::Generated,
            not_before: e.not_before,
            not_after: e.not_after,
        }
    }
}

impl From<&ServerEntry> for Issued {
    fn from(e: &ServerEntry) -> Issued {
        Issued {
            key_type: e.key_type,
            generated: e.source == crate::model::Origin::Generated,
            not_before: e.not_before,
            not_after: e.not_after,
        }
    }
}

/// The re-issue reasons clients and the server share: another key type, another validity,
/// inside the renewal window or expired.
pub(super) fn lifetime_reasons(was: Issued, want: Lifetime, now: OffsetDateTime) -> Vec<String> {
    let mut reasons = declared_lifetime_reasons(&was, &want);
    if until::capped(want.until, was.not_after) {
        return reasons;
    }
    reasons.extend(renewal_reason(
        was.not_before,
        was.not_after,
        want.renew_before,
        now,
    ));
    reasons
}

/// The part of [`lifetime_reasons`] a change of certs.toml causes: another key type, another
/// validity (not the clock: a renewal).
pub(super) fn declared_lifetime_reasons(was: &Issued, want: &Lifetime) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(k) = was.key_type.filter(|k| *k != want.key) {
        reasons.push(format!("key {k} -> {} forces replacement", want.key));
    }
    // A certificate cut at `until` was issued for less than its validity, on purpose.
    let cut_short = until::capped(want.until, was.not_after)
        && was.not_before + BACKDATING.as_duration() + want.validity.as_duration() >= was.not_after;
    if was.generated && !cut_short {
        reasons.extend(validity_change(
            was.not_before,
            was.not_after,
            want.validity,
        ));
    }
    reasons
}

pub(super) fn renewal_reason(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: RenewBefore,
    now: OffsetDateTime,
) -> Option<String> {
    if not_after <= now {
        return Some(format!("expired on {}", not_after.date()));
    }
    let window = renew.window(not_after - not_before);
    if not_after - now < window {
        let days = (not_after - now).whole_days();
        return Some(format!(
            "expires in {days} day{} (renew_before {renew})",
            if days == 1 { "" } else { "s" }
        ));
    }
    None
}

/// A generated certificate's validity as issued: its lifetime less the back-dating.
/// The change, when certs.toml now declares another (a minute's slack for rounding).
pub(super) fn validity_change(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    want: Period,
) -> Option<String> {
    let issued = (not_after - not_before).whole_seconds() - BACKDATING.seconds;
    ((issued - want.seconds).abs() > 60)
        .then(|| format!("validity {} -> {want}", Period { seconds: issued }))
}
