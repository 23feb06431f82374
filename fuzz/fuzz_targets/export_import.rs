//! The export reader (`replication::export::Reader`, what Import and a
//! follower's bootstrap read), on any bytes fed in chunks: a state or an
//! error, never a panic. The first byte sets the chunk size, so the line
//! reassembly across chunks is exercised too. A state it accepts must
//! export again, and that export must read back to the same state.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::replication::export::{Reader, digest, lines};

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut reader = Reader::new();
    for piece in bytes.chunks(chunk) {
        if reader.feed(piece).is_err() {
            return;
        }
    }
    let Ok((state, read_digest)) = reader.finish(None) else {
        return;
    };
    // The digest is the one stated in the file's own bytes.
    let mut again = Reader::new();
    again.feed(bytes).unwrap();
    let (_, stated) = again.finish(Some(&read_digest)).unwrap();
    assert_eq!(stated, read_digest);

    // Exported again and read back: the same state, the same digest.
    let exported: Vec<u8> = lines(&state)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .concat();
    let mut back = Reader::new();
    back.feed(&exported).unwrap();
    let (state_back, digest_back) = back
        .finish(None)
        .unwrap_or_else(|e| panic!("an accepted export, written again, is refused: {e}"));
    assert!(state_back == state, "an export read back differs");
    assert_eq!(Some(digest_back), digest(&state).ok());
});
