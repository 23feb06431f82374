//! A cheap pre-scan of YAML text for deeply nested flow collections
//! (`[[[[…` or `{{{{…`), which the YAML parser takes quadratic time over
//! before its own recursion limit applies: refused before parsing.

use thiserror::Error;

/// Deepest nesting of flow collections (`[` / `{`) a YAML document may
/// have. A policy or tests file needs a handful.
pub const MAX_YAML_NESTING: usize = 64;

/// A document nested deeper than [`MAX_YAML_NESTING`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "nesting depth of `[` / `{{` is more than {max} at line {line}: the document is refused before parsing"
)]
pub struct NestingError {
    pub max: usize,
    pub line: usize,
}

/// Refuses YAML text whose flow collections nest deeper than
/// [`MAX_YAML_NESTING`]. Brackets in quoted scalars and comments do not
/// count; a quote opens a quoted scalar only where one may start (after
/// white space, a line start or `[ { , :`), so `don't` is plain text. One
/// pass, linear in the text.
pub fn check_nesting(text: &str) -> Result<(), NestingError> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Plain;
    let mut depth = 0usize;
    let mut line = 1;
    let mut prev = '\n';
    let mut escaped = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        match state {
            In::Comment => {
                if c == '\n' {
                    state = In::Plain;
                }
            }
            In::Single => {
                if c == '\'' {
                    state = In::Plain;
                }
            }
            In::Double => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    state = In::Plain;
                }
            }
            In::Plain => {
                let at_start = prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':');
                match c {
                    '#' if prev.is_whitespace() => state = In::Comment,
                    '\'' if at_start => state = In::Single,
                    '"' if at_start => state = In::Double,
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_YAML_NESTING {
                            return Err(NestingError {
                                max: MAX_YAML_NESTING,
                                line,
                            });
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        prev = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused() {
        let deep = "[".repeat(100_000);
        let e = check_nesting(&deep).unwrap_err();
        assert_eq!(e, NestingError { max: 64, line: 1 });
        assert!(e.to_string().contains("nesting depth"), "{e}");
        let mixed = format!("a:\n  b: {}", "{x: [".repeat(40));
        assert_eq!(check_nesting(&mixed).unwrap_err().line, 2);
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_nesting(&ok).is_ok());
    }

    #[test]
    fn quoted_and_commented_brackets_do_not_count() {
        let many = "[".repeat(1_000);
        for text in [
            format!("a: '{many}'"),
            format!("a: \"{many}\""),
            format!("a: \"x\\\"{many}\""),
            format!("a: 1 # {many}\nb: 2"),
            format!("a: [ '{many}', \"{many}\" ]"),
        ] {
            assert!(check_nesting(&text).is_ok(), "{text:.40}");
        }
        // An apostrophe inside plain text opens no string.
        assert!(check_nesting("a: don't [x]\nb: [[y]]").is_ok());
    }
}
