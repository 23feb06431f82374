//! The tokens file (`--tokens-file`, `server::auth::Credentials::parse`), on
//! any text: credentials or an error, never a panic. The error must not
//! echo the file's values (a token pasted where its hash belongs must not
//! reach a log); it may name an entry by its `name`, `subject_cn` or
//! `uri_san`. Checked for every other `"…"` string of 16 or more
//! characters: the file is parsed again with that value replaced by a
//! marker of the same length that appears nowhere else, and the marker
//! must not be in the error. (Checking the value itself would also flag a
//! value that happens to spell some of the message's own wording.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::server::auth::Credentials;

/// The contents of the `"…"` strings of `text` (TOML basic strings, no
/// escapes), 16 characters or longer, but for those on a line that names
/// an entry (errors may quote a name).
fn long_strings(text: &str) -> Vec<&str> {
    let mut found: Vec<&str> = text
        .lines()
        .filter(|line| {
            !["name", "subject_cn", "uri_san"]
                .iter()
                .any(|k| line.contains(k))
        })
        .flat_map(|line| line.split('"').skip(1).step_by(2))
        .filter(|s| s.chars().count() >= 16 && !s.contains('\\'))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(creds) = Credentials::parse(text, "tokens.toml") {
        let (tokens, certs) = creds.counts();
        assert!(tokens + certs <= text.len(), "more entries than bytes");
        return;
    }
    let Some(mark) = ['Q', 'Z', 'X', 'J', 'K', 'V', 'W']
        .into_iter()
        .find(|c| !text.contains(*c))
    else {
        return;
    };
    for value in long_strings(text).into_iter().take(4) {
        let marker: String = std::iter::repeat_n(mark, value.len()).collect();
        let masked = text.replace(value, &marker);
        if let Err(e) = Credentials::parse(&masked, "tokens.toml") {
            let message = e.to_string();
            assert!(
                !message.contains(&marker),
                "the error echoes a value of the file: {message}"
            );
        }
    }
});
