//! Instants as whole seconds since the Unix epoch, written as RFC 3339.

use std::cmp::Ordering;
use std::fmt;
use std::num::NonZeroI64;

use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z. Written as
/// RFC 3339; read from RFC 3339 or from whole seconds.
///
/// Held as the seconds XOR `i64::MAX`, which is never zero: so an
/// `Option<Timestamp>` is 8 bytes, not 16, and a binding (whose expiry is
/// one) 32 bytes, not 40, in every slot of a tenant's bindings.
/// INVARIANT: the seconds are never `i64::MAX`; [`Timestamp::from_unix`]
/// reads that as the second before (292 billion years from now).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp(NonZeroI64);

impl Timestamp {
    /// The latest instant: `i64::MAX - 1` seconds.
    pub const LAST: Timestamp = Timestamp::from_unix(i64::MAX - 1);

    /// The instant `secs` seconds after the epoch (`i64::MAX` reads as
    /// [`Timestamp::LAST`]).
    pub const fn from_unix(secs: i64) -> Self {
        let secs = if secs == i64::MAX { i64::MAX - 1 } else { secs };
        match NonZeroI64::new(secs ^ i64::MAX) {
            Some(raw) => Timestamp(raw),
            // Unreachable: `secs ^ i64::MAX` is zero only for `i64::MAX`.
            None => Timestamp(NonZeroI64::MIN),
        }
    }

    /// Seconds since the epoch.
    pub const fn unix(self) -> i64 {
        self.0.get() ^ i64::MAX
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.unix().cmp(&other.unix())
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Timestamp::from_unix(s)),
            // `@SECONDS` is how Display writes an instant outside RFC 3339's years.
            Raw::Text(t) => match t.strip_prefix('@').map(str::parse::<i64>) {
                Some(Ok(s)) => Ok(Timestamp::from_unix(s)),
                _ => Timestamp::parse(&t).map_err(serde::de::Error::custom),
            },
        }
    }
}

/// Text that is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{}` is not an RFC 3339 time ({reason})", crate::model::quote(.text))]
pub struct TimestampError {
    /// The text as given.
    pub text: String,
    /// What the RFC 3339 parser found wrong.
    pub reason: time::error::Parse,
}

impl Timestamp {
    /// Parses RFC 3339, e.g. `2027-01-01T00:00:00Z` or `2027-01-01T02:00:00+02:00`.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Timestamp::from_unix(t.unix_timestamp()))
            .map_err(|reason| TimestampError {
                text: text.to_owned(),
                reason,
            })
    }

    /// Now, from the system clock.
    pub fn now() -> Self {
        Timestamp::from_unix(OffsetDateTime::now_utc().unix_timestamp())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.unix())
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}", self.unix()),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_instant_is_one_word_and_orders_by_its_seconds() {
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 8);
        let secs = [i64::MIN, -86_400, -1, 0, 1, 1_798_761_600, i64::MAX - 1];
        for (i, a) in secs.iter().enumerate() {
            assert_eq!(Timestamp::from_unix(*a).unix(), *a);
            for (j, b) in secs.iter().enumerate() {
                let (ta, tb) = (Timestamp::from_unix(*a), Timestamp::from_unix(*b));
                assert_eq!(ta.cmp(&tb), i.cmp(&j), "{a} against {b}");
                assert_eq!(ta == tb, i == j);
            }
        }
        // The niche: the last second reads as the one before.
        assert_eq!(Timestamp::from_unix(i64::MAX), Timestamp::LAST);
        assert_eq!(Timestamp::LAST.unix(), i64::MAX - 1);
    }

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(t.unix(), 1_798_761_600);
        assert_eq!(t.to_string(), "2027-01-01T00:00:00Z");
        assert_eq!(Timestamp::parse("2027-01-01T02:00:00+02:00").unwrap(), t);
        assert!(Timestamp::parse("2027-01-01").is_err());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2027-01-01T00:00:00Z\""
        );
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"2027-01-01T00:00:00Z\"").unwrap(),
            t
        );
        assert_eq!(serde_json::from_str::<Timestamp>("1798761600").unwrap(), t);
        // Beyond year 9999 it is written as `@SECONDS` and read back the same.
        let far = Timestamp::from_unix(253_402_300_800);
        let text = serde_json::to_string(&far).unwrap();
        assert_eq!(
            serde_json::from_str::<Timestamp>(&text).unwrap(),
            far,
            "{text}"
        );
    }
}
