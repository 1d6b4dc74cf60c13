//! `until` (docs/contract.md §1): when a client's access ends. Pure, like the rest of the
//! planner: every question takes the `now` it is asked at.

use time::OffsetDateTime;

use crate::config::Desired;
use crate::model::{rfc3339, Period};
use crate::registry::Registry;

/// When a certificate issued at `now` ends: its validity, cut at `until`. Both the projection
/// and the apply use it, so the plan shows what the apply issues.
pub(crate) fn issue_end(
    now: OffsetDateTime,
    validity: Period,
    until: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let end = now + validity.as_duration();
    until.map_or(end, |u| end.min(u))
}

/// Whether a certificate ending at `not_after` was cut at `until`: it is then neither renewed
/// (a renewal cannot go past `until`) nor re-issued for its shorter validity.
pub(super) fn capped(until: Option<OffsetDateTime>, not_after: OffsetDateTime) -> bool {
    until == Some(not_after)
}

/// Whether access that ends at `until` has ended at `now`.
pub(super) fn ended(until: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    until.is_some_and(|u| u <= now)
}

/// Whether moving the end of access from `was` to `want` extends it in time: a later `until`,
/// or none where there was one. Flagged like a raised clearance.
pub(crate) fn extends(was: Option<OffsetDateTime>, want: Option<OffsetDateTime>) -> bool {
    match (was, want) {
        (Some(_), None) => true,
        (Some(a), Some(b)) => b > a,
        (None, _) => false,
    }
}

/// Why a generated certificate ending at `not_after` is issued again for the declared `until`
/// (`recorded` is the one it was issued under). Moving `until` before the certificate's end
/// re-issues it to end by then, and the old one goes at once: an overlap would keep TLS access
/// past `until`. A certificate cut at the old `until` is re-issued when `until` moves later or
/// goes, which extends access. Any other change of `until` is a field edit.
pub(super) fn reissue_reasons(
    recorded: Option<OffsetDateTime>,
    declared: Option<OffsetDateTime>,
    not_after: OffsetDateTime,
) -> Option<String> {
    match declared {
        Some(u) if u < not_after => Some(format!(
            "until {} is before the certificate's end {}: re-issued to end by then (the old certificate goes now, no overlap)",
            rfc3339(u),
            rfc3339(not_after)
        )),
        _ if !capped(recorded, not_after) || recorded == declared => None,
        Some(u) => Some(format!(
            "until {} -> {}: re-issued to extend access",
            recorded.map_or_else(String::new, rfc3339),
            rfc3339(u)
        )),
        None => Some(format!(
            "until {} removed: re-issued for the full validity",
            recorded.map_or_else(String::new, rfc3339)
        )),
    }
}

/// The plan's warning for a certificate cut at `until` once inside its renewal window: it
/// is not renewed past `until`. `left` is the time to `until`.
pub(super) fn ending_warning(key: &str, until: OffsetDateTime, left: time::Duration) -> String {
    format!(
        "client '{key}': access ends {} (in {}; until in certs.toml); it is not renewed past it — move until to extend it",
        rfc3339(until),
        time_left(left)
    )
}

/// The reason of the deletion that ends a client's access at `until`.
pub(crate) fn ended_reason(until: OffsetDateTime) -> String {
    format!("{ENDED} {}", rfc3339(until))
}

/// Whether a deletion's reason is [`ended_reason`]'s: the cluster's unregister then says so.
pub(crate) fn is_ended_reason(reason: &str) -> bool {
    reason
        .strip_prefix(ENDED)
        .is_some_and(|rest| rest.starts_with(' '))
}

const ENDED: &str = "access ended";

/// How long until access ends, as the plan's warning and `status` say it: whole days, else
/// hours, else minutes (at least 1): `3 days`, `1 hour`.
pub(crate) fn time_left(left: time::Duration) -> String {
    let (n, unit) = if left.whole_days() >= 1 {
        (left.whole_days(), "day")
    } else if left.whole_hours() >= 1 {
        (left.whole_hours(), "hour")
    } else {
        (left.whole_minutes().max(1), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The earliest moment after `now` at which access ends by itself: a declared or recorded
/// `until`, or the end of a rotation overlap.
pub(crate) fn next_end(
    desired: &Desired,
    reg: &Registry,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let declared = desired.declared.clients.values().filter_map(|c| c.until);
    let recorded = reg
        .certificates
        .iter()
        .flat_map(|e| [e.until, e.retire_after])
        .flatten();
    declared.chain(recorded).filter(|t| *t > now).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn issue_end_is_the_earlier_of_validity_and_until() {
        let now = datetime!(2026-04-01 12:00 UTC);
        let year = Period::days(365);
        assert_eq!(issue_end(now, year, None), now + year.as_duration());
        let until = datetime!(2026-05-01 0:00 UTC);
        assert_eq!(issue_end(now, year, Some(until)), until);
        let later = datetime!(2030-01-01 0:00 UTC);
        assert_eq!(issue_end(now, year, Some(later)), now + year.as_duration());
    }

    #[test]
    fn capped_ended_and_shown() {
        let until = datetime!(2026-05-01 16:00 UTC);
        assert!(capped(Some(until), until));
        assert!(!capped(None, until));
        assert!(!capped(Some(until), until + time::Duration::SECOND));
        assert!(ended(Some(until), until), "until itself is the end");
        assert!(!ended(Some(until), until - time::Duration::SECOND));
        assert!(!ended(None, until));
        assert_eq!(rfc3339(until), "2026-05-01T16:00:00Z");
    }

    #[test]
    fn extending_is_a_later_until_or_none() {
        let a = datetime!(2026-05-01 16:00 UTC);
        let b = datetime!(2026-05-02 16:00 UTC);
        assert!(extends(Some(a), Some(b)));
        assert!(extends(Some(a), None));
        assert!(!extends(Some(b), Some(a)));
        assert!(!extends(Some(a), Some(a)));
        assert!(!extends(None, Some(a)));
        assert!(!extends(None, None));
    }

    #[test]
    fn reissue_reasons_by_how_until_moves() {
        let a = datetime!(2026-05-01 16:00 UTC);
        let b = datetime!(2026-05-02 16:00 UTC);
        let year = datetime!(2027-04-01 0:00 UTC);
        // Set before the end of an uncapped certificate: re-issued, no overlap.
        assert_eq!(
            reissue_reasons(None, Some(a), year).as_deref(),
            Some("until 2026-05-01T16:00:00Z is before the certificate's end 2027-04-01T00:00:00Z: re-issued to end by then (the old certificate goes now, no overlap)")
        );
        // Moved earlier on a capped one: the same.
        assert!(reissue_reasons(Some(b), Some(a), b)
            .unwrap()
            .contains("no overlap"));
        // Moved later, or removed, on a capped one: extended.
        assert_eq!(
            reissue_reasons(Some(a), Some(b), a).as_deref(),
            Some("until 2026-05-01T16:00:00Z -> 2026-05-02T16:00:00Z: re-issued to extend access")
        );
        assert_eq!(
            reissue_reasons(Some(a), None, a).as_deref(),
            Some("until 2026-05-01T16:00:00Z removed: re-issued for the full validity")
        );
        // Unchanged, or after the end of an uncapped certificate: nothing to issue.
        assert_eq!(reissue_reasons(Some(a), Some(a), a), None);
        assert_eq!(reissue_reasons(None, Some(b), a), None);
        assert_eq!(reissue_reasons(None, None, a), None);
    }

    #[test]
    fn ending_warning_counts_days_hours_or_minutes() {
        let u = datetime!(2026-05-01 16:00 UTC);
        let w = |d| ending_warning("k", u, d);
        assert!(w(time::Duration::days(3)).contains("(in 3 days;"));
        assert!(w(time::Duration::hours(1)).contains("(in 1 hour;"));
        assert!(w(time::Duration::seconds(20)).contains("(in 1 minute;"));
        assert_eq!(
            w(time::Duration::hours(5)),
            "client 'k': access ends 2026-05-01T16:00:00Z (in 5 hours; until in certs.toml); it is not renewed past it — move until to extend it"
        );
    }
}
