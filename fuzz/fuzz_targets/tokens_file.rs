//! The tokens file (`--tokens-file`, `server::auth::Credentials::parse`), on
//! any text: credentials or an error, never a panic. The error must not
//! echo the file's values (a token pasted where its hash belongs must not
//! reach a log); it may name an entry by its `name`, `subject_cn` or
//! `uri_san`. Checked here for every other `"…"` string of 16 or more
//! characters: none appears in the message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::server::auth::Credentials;

/// The contents of the `"…"` strings of `text` (TOML basic strings, no
/// escapes), 16 characters or longer, but for those on a line that names
/// an entry (errors may quote a name).
fn long_strings(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| {
            !["name", "subject_cn", "uri_san"]
                .iter()
                .any(|k| line.contains(k))
        })
        .flat_map(|line| line.split('"').skip(1).step_by(2))
        .filter(|s| s.chars().count() >= 16 && !s.contains('\\'))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Credentials::parse(text, "tokens.toml") {
        Ok(creds) => {
            let (tokens, certs) = creds.counts();
            assert!(tokens + certs <= text.len(), "more entries than bytes");
        }
        Err(e) => {
            let message = e.to_string();
            for value in long_strings(text) {
                assert!(
                    !message.contains(value),
                    "the error echoes a value of the file: {message}"
                );
            }
        }
    }
});
