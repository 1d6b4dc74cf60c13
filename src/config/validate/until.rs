//! `until`: when a client's access ends (docs/contract.md §1). Read without a clock: whether it
//! has passed is the planner's question, asked with the `now` it is given.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use toml::Spanned;

use crate::config::diagnostics::Checker;

/// `until` at `at` as a UTC time floored to the second, or an error at the value: a TOML local
/// date (00:00 UTC that day), a TOML offset date-time, or a string holding either.
pub(super) fn until_field(
    ck: &mut Checker<'_>,
    v: Option<&Spanned<toml::Value>>,
    at: &str,
) -> Option<OffsetDateTime> {
    let v = v?;
    let text = match v.get_ref() {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => {
            ck.error_at(
                Some(&v.span()),
                at,
                format!("must be a date or a time with a zone, e.g. 2026-05-01 or 2026-05-01T18:00:00Z, not a value of type {}", other.type_str()),
            );
            return None;
        }
    };
    parse_until(text.trim())
        .map_err(|e| ck.error_at(Some(&v.span()), at, e))
        .ok()
}

/// The text of `until`: `YYYY-MM-DD` (00:00:00Z that day) or RFC 3339 with an offset, floored to
/// whole seconds, in UTC. A time without a zone is refused as ambiguous.
pub(crate) fn parse_until(text: &str) -> Result<OffsetDateTime, String> {
    let at = if let Ok(d) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        d.midnight().assume_utc()
    } else if let Ok(t) = OffsetDateTime::parse(&text.replacen(' ', "T", 1), &Rfc3339) {
        t.to_offset(time::UtcOffset::UTC)
    } else if local_time(text) {
        return Err(format!(
            "`until` needs a time zone: write {}Z or +02:00; a time without one is ambiguous",
            text.escape_debug()
        ));
    } else {
        return Err(format!(
            "'{}' is not a date or a time with a zone: write 2026-05-01 (00:00 UTC that day) or 2026-05-01T18:00:00Z",
            text.escape_debug()
        ));
    };
    if !(2000..=9999).contains(&at.year()) {
        return Err(format!(
            "{} is outside the years 2000 to 9999: check the date",
            text.escape_debug()
        ));
    }
    Ok(at.replace_nanosecond(0).expect("0 is a valid nanosecond"))
}

/// Whether `text` is a date-time without an offset (`2026-05-01T18:00:00`, seconds optional).
fn local_time(text: &str) -> bool {
    let t = text.replacen(' ', "T", 1);
    let (date_time, _) = t.split_once('.').unwrap_or((&t, ""));
    [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ]
    .iter()
    .any(|f| PrimitiveDateTime::parse(date_time, f).is_ok())
}
