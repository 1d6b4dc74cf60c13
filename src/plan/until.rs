//! `until` (docs/contract.md §1): when a client's access ends. Pure, like the rest of the
//! planner: every question takes the `now` it is asked at.

use time::OffsetDateTime;

use crate::model::Period;

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

/// `until` as outputs show it: RFC 3339 in UTC.
pub(super) fn shown(until: OffsetDateTime) -> String {
    until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| until.to_string())
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
        assert_eq!(shown(until), "2026-05-01T16:00:00Z");
    }
}
