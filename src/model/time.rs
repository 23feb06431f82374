//! Instants as whole seconds since the Unix epoch, written as RFC 3339.

use std::fmt;

use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z. Written as
/// RFC 3339; read from RFC 3339 or from whole seconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

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
            Raw::Seconds(s) => Ok(Timestamp(s)),
            // `@SECONDS` is how Display writes an instant outside RFC 3339's years.
            Raw::Text(t) => match t.strip_prefix('@').map(str::parse::<i64>) {
                Some(Ok(s)) => Ok(Timestamp(s)),
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
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|reason| TimestampError {
                text: text.to_owned(),
                reason,
            })
    }

    /// Now, from the system clock.
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Seconds since the epoch.
    pub fn unix(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}", self.0),
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
        let far = Timestamp(253_402_300_800);
        let text = serde_json::to_string(&far).unwrap();
        assert_eq!(
            serde_json::from_str::<Timestamp>(&text).unwrap(),
            far,
            "{text}"
        );
    }
}
