//! Free text: the one size and character policy of every free-text field
//! (role, group and catalog descriptions, tenant names, catalog categories,
//! display names), and [`quote`], how an error message shows any input.
//!
//! The model rules, the policy file loader and the server's request
//! conversion all check with [`check_text`], so a field is refused the same
//! way wherever it comes from.

use thiserror::Error;

/// Longest description (role, group, catalog entry), in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Longest short text (tenant name, catalog category, display name), in characters.
pub const MAX_SHORT_TEXT_CHARS: usize = 200;
/// How many characters of an input an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// The most bytes `max_chars` characters take in UTF-8: the cheap bound the
/// edge checks before counting characters.
pub const fn max_text_bytes(max_chars: usize) -> usize {
    max_chars * 4
}

/// Why a free-text field was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    #[error("`{field}` is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("`{field}` has a control character ({})", .found.escape_default())]
    Control { field: &'static str, found: char },
}

/// Checks a free-text field: at most `max_chars` characters, no control
/// characters (no line breaks, tabs, ESC or NUL).
pub fn check_text(field: &'static str, value: &str, max_chars: usize) -> Result<(), TextError> {
    if value.len() > max_text_bytes(max_chars) || value.chars().count() > max_chars {
        return Err(TextError::TooLong {
            field,
            max: max_chars,
        });
    }
    if let Some(found) = value.chars().find(|c| c.is_control()) {
        return Err(TextError::Control { field, found });
    }
    Ok(())
}

/// `` `a`, `b` ``: names (tenant ids, say) as messages list them. Names are
/// validated ids, so they are not shortened or escaped as [`quote`] does.
pub fn backticked(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    names.join(", ")
}

/// An input as an error message shows it: at most [`QUOTE_CHARS`]
/// characters (then `…`), control characters escaped (`\u{1b}`).
pub fn quote(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_bounded_and_printable() {
        assert!(check_text("description", "", MAX_DESCRIPTION_CHARS).is_ok());
        assert!(check_text("description", &"x".repeat(1_000), MAX_DESCRIPTION_CHARS).is_ok());
        // Counted in characters, not bytes.
        assert!(check_text("description", &"é".repeat(1_000), MAX_DESCRIPTION_CHARS).is_ok());
        let e = check_text("description", &"x".repeat(1_001), MAX_DESCRIPTION_CHARS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`description` is longer than 1000 characters"
        );
        let e = check_text("name", &"x".repeat(4_000_000), MAX_SHORT_TEXT_CHARS).unwrap_err();
        assert_eq!(
            e,
            TextError::TooLong {
                field: "name",
                max: 200
            }
        );
        for bad in ["a\u{1b}[2J", "a\rb", "a\0", "line\nbreak", "tab\t"] {
            let e = check_text("description", bad, MAX_DESCRIPTION_CHARS).unwrap_err();
            assert!(
                matches!(
                    e,
                    TextError::Control {
                        field: "description",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        let e = check_text("description", "a\u{1b}", 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`description` has a control character (\\u{1b})"
        );
    }

    #[test]
    fn quote_is_short_and_escaped() {
        assert_eq!(quote("alice"), "alice");
        assert_eq!(quote(&"x".repeat(64)), "x".repeat(64));
        assert_eq!(
            quote(&"x".repeat(3_000_000)),
            format!("{}…", "x".repeat(64))
        );
        assert_eq!(quote(&"é".repeat(100)), format!("{}…", "é".repeat(64)));
        assert_eq!(quote("a\u{1b}[2J\r\0"), "a\\u{1b}[2J\\r\\u{0}");
    }
}
