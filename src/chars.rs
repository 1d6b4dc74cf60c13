//! The one table of invisible characters: code points that can rewrite a terminal (ESC, CR),
//! hide or reorder text (bidi controls, zero-width marks) or split a line where none is seen.
//! Everything else derives from it: the output boundary escapes every one of them
//! (`render::is_unsafe_char`), a certificate name may hold none of them (`model::check_name`),
//! the JSON schema's name pattern refuses the same set ([`REGEX_CLASS`]), a config line
//! quoted in an error shows them escaped, and the certs.toml `adopt` writes holds them only as
//! `\uXXXX` escapes. A leaf module (it imports nothing from the crate), so that `model` and
//! `render` can both use it without importing each other.

use std::fmt;

/// An inclusive range of code points, `first..=last`.
pub(crate) type CodePoints = (u32, u32);

/// The invisible characters, sorted and disjoint: Unicode's control characters (Cc), format
/// characters (Cf), the line and paragraph separators (Zl, Zp), and the reserved code point in
/// the middle of the bidi block. Unicode adds format characters rarely; a new one goes here.
pub(crate) const INVISIBLE: &[CodePoints] = &[
    // C0 controls, NUL to US: ESC starts terminal sequences, CR rewrites a line, LF splits it.
    (0x0000, 0x001F),
    // DEL and the C1 controls (NEL U+0085 ends a line, CSI U+009B starts a terminal sequence).
    (0x007F, 0x009F),
    // Soft hyphen: invisible unless a line breaks there.
    (0x00AD, 0x00AD),
    // Arabic number sign, sanah, footnote marker, safha, samvat, number mark above.
    (0x0600, 0x0605),
    // Arabic letter mark: a bidi control.
    (0x061C, 0x061C),
    // Arabic end of ayah.
    (0x06DD, 0x06DD),
    // Syriac abbreviation mark.
    (0x070F, 0x070F),
    // Arabic pound and piastre marks above.
    (0x0890, 0x0891),
    // Arabic disputed end of ayah.
    (0x08E2, 0x08E2),
    // Mongolian vowel separator.
    (0x180E, 0x180E),
    // Zero width space, non-joiner and joiner, left-to-right and right-to-left marks.
    (0x200B, 0x200F),
    // Line and paragraph separators (Zl, Zp), then the bidi embeddings and overrides (LRE,
    // RLE, PDF, LRO, RLO: U+202E makes `exe.txt` read `txt.exe`).
    (0x2028, 0x202E),
    // Word joiner, invisible function application, times, separator and plus; U+2065
    // (reserved, default-ignorable); the bidi isolates (LRI, RLI, FSI, PDI); the deprecated
    // shaping and digit-shape controls.
    (0x2060, 0x206F),
    // Zero width no-break space, the byte-order mark.
    (0xFEFF, 0xFEFF),
    // Interlinear annotation anchor, separator and terminator.
    (0xFFF9, 0xFFFB),
    // Kaithi number sign.
    (0x110BD, 0x110BD),
    // Kaithi number sign above.
    (0x110CD, 0x110CD),
    // Egyptian hieroglyph format controls (joiners, segment and cartouche marks).
    (0x13430, 0x1343F),
    // Shorthand format letter overlap, continuing overlap, step up and down.
    (0x1BCA0, 0x1BCA3),
    // Musical symbol begin and end beam, tie, slur and phrase.
    (0x1D173, 0x1D17A),
    // Language tag.
    (0xE0001, 0xE0001),
    // Tag characters: invisible ASCII look-alikes that can smuggle text.
    (0xE0020, 0xE007F),
];

/// Whether `c` is in [`INVISIBLE`].
pub(crate) fn is_invisible(c: char) -> bool {
    let c = u32::from(c);
    // Printable ASCII, most of every output, without a search.
    if (0x20..0x7F).contains(&c) {
        return false;
    }
    INVISIBLE
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// [`INVISIBLE`] as the inside of a regular-expression character class, for the JSON schema:
/// `\u0000-\u001F\u007F-\u009F...`, with `\u{XXXXX}` beyond the Basic Multilingual Plane (as
/// ECMA-262 reads it with the `u` flag, and the Rust `regex` crate always).
pub(crate) const REGEX_CLASS: RegexClass = RegexClass(INVISIBLE);

/// Ranges of code points written as a character class body (see [`REGEX_CLASS`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegexClass(&'static [CodePoints]);

impl fmt::Display for RegexClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn point(f: &mut fmt::Formatter<'_>, c: u32) -> fmt::Result {
            if c <= 0xFFFF {
                write!(f, "\\u{c:04X}")
            } else {
                write!(f, "\\u{{{c:X}}}")
            }
        }
        for &(first, last) in self.0 {
            point(f, first)?;
            if last != first {
                f.write_str("-")?;
                point(f, last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for w in INVISIBLE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
        }
        let (first, last) = INVISIBLE[INVISIBLE.len() - 1];
        assert!(first <= last && last <= 0x10FFFF);
    }

    /// The schema's character class and the predicate agree on every code point.
    #[test]
    fn the_regex_class_matches_exactly_the_table() {
        let class = REGEX_CLASS.to_string();
        assert!(
            class.starts_with(r"\u0000-\u001F\u007F-\u009F\u00AD"),
            "{class}"
        );
        assert!(class.contains(r"\u{E0020}-\u{E007F}"), "{class}");
        let re = regex::Regex::new(&format!("^[{class}]$")).expect("the class is a valid regex");
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                re.is_match(c.encode_utf8(&mut buf)),
                is_invisible(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    /// Every control, format and separator character Rust's own tables know is in the table
    /// (Cc is `char::is_control`; the format characters are checked by name above).
    #[test]
    fn controls_and_known_format_characters_are_invisible() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if c.is_control() {
                assert!(is_invisible(c), "U+{:04X}", u32::from(c));
            }
        }
        for c in [
            '\u{ad}',
            '\u{61c}',
            '\u{200b}',
            '\u{200d}',
            '\u{200e}',
            '\u{2028}',
            '\u{2029}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
        for c in [
            'a',
            ' ',
            '\u{a0}',
            'й',
            '–',
            '\u{1f600}',
            '\u{2070}',
            '\u{fffc}',
        ] {
            assert!(!is_invisible(c), "U+{:04X}", u32::from(c));
        }
    }
}
