//! The permission path, grant pattern and catalog pattern parsers
//! (`model::permission`, `model::catalog`) and the matching between them.
//!
//! The input is up to four lines: two patterns, a path and a subject. Every
//! line is parsed as each kind; whatever parses must show as it was written
//! and parse again to the same value. Then the relations the rules and the
//! catalog rely on are held to plain matching: `subsumes(a, b)` means every
//! path `b` matches, `a` matches too; two patterns that match one path
//! `overlap`; a catalog entry that covers a path a grant matches `overlaps`
//! that grant; a pattern's exact path is matched by it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::model::catalog::CatalogPattern;
use rampart::model::permission::validate_path;
use rampart::model::rules::{overlaps, subsumes};
use rampart::model::{GrantPattern, PermissionPath};

fn round_trips(line: &str) {
    assert_eq!(
        validate_path(line).is_ok(),
        PermissionPath::parse(line).is_ok(),
        "validate_path and PermissionPath::parse disagree on {line:?}"
    );
    if let Ok(p) = PermissionPath::parse(line) {
        assert_eq!(p.to_string(), line);
        assert_eq!(PermissionPath::parse(&p.to_string()).as_ref(), Ok(&p));
        assert_eq!(p.segments().collect::<Vec<_>>().join(":"), line);
        // A path is also a pattern and a catalog entry that name it exactly.
        let g = GrantPattern::parse(line).map(|g| g.as_exact().map(str::to_owned));
        assert_eq!(g, Ok(Some(line.to_owned())), "{line:?} as a pattern");
        let c = CatalogPattern::parse(line).map(|c| c.as_exact().map(str::to_owned));
        assert_eq!(c, Ok(Some(line.to_owned())), "{line:?} as a catalog entry");
    }
    if let Ok(g) = GrantPattern::parse(line) {
        assert_eq!(g.to_string(), line);
        assert_eq!(GrantPattern::parse(&g.to_string()).as_ref(), Ok(&g));
        if let Some(exact) = g.as_exact() {
            assert!(g.matches(exact, "anyone"), "{line:?} misses its own path");
        }
    }
    if let Ok(c) = CatalogPattern::parse(line) {
        assert_eq!(c.to_string(), line);
        assert_eq!(CatalogPattern::parse(&c.to_string()).as_ref(), Ok(&c));
        if let Some(exact) = c.as_exact() {
            assert!(c.covers_path(exact), "{line:?} does not cover its own path");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let (a, b, path, subject) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    for line in [a, b, path] {
        round_trips(line);
    }

    let (Ok(ga), Ok(path)) = (GrantPattern::parse(a), PermissionPath::parse(path)) else {
        return;
    };
    let path = path.as_str();
    let a_matches = ga.matches(path, subject);
    if let Ok(gb) = GrantPattern::parse(b) {
        let b_matches = gb.matches(path, subject);
        if subsumes(&ga, &gb, subject) && b_matches {
            assert!(
                a_matches,
                "{a:?} subsumes {b:?} but misses {path:?} for {subject:?}"
            );
        }
        if a_matches && b_matches {
            assert!(
                overlaps(&ga, &gb, subject),
                "{a:?} and {b:?} both match {path:?}"
            );
            assert!(
                overlaps(&gb, &ga, subject),
                "{b:?} and {a:?} both match {path:?}"
            );
        }
    }
    if let Ok(cb) = CatalogPattern::parse(b)
        && a_matches
        && cb.covers_path(path)
    {
        assert!(
            cb.overlaps(&ga),
            "catalog {b:?} covers {path:?}, which {a:?} matches"
        );
    }
});
