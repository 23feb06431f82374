//! Why a Watch is refused or ended: one error, whose kind gives the code
//! through the one map (`proto::status`), as every service's errors do. A
//! replica that hears `OUT_OF_RANGE` bootstraps again with Export, so the
//! messages say so; the follower reads the code, never the words.

use thiserror::Error;

use crate::model::{ErrorKind, HasKind, quote};
use crate::store::History;

/// Why a Watch cannot go on from where its client is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WatchError {
    /// The client's changelog is another history's (a restored leader, a
    /// re-bootstrapped node).
    #[error("history `{}` is not this node's (`{have}`): bootstrap again with Export", quote(.asked))]
    ForeignHistory { asked: String, have: String },
    /// The client is past this node's revision.
    #[error(
        "from_revision {from} is ahead of this node's revision {last}: bootstrap again with Export"
    )]
    Ahead { from: u64, last: u64 },
    /// The revision the client needs next was compacted away before the
    /// stream started.
    #[error(
        "revision {wanted} is no longer retained; the oldest retained revision is {oldest}: bootstrap again with Export"
    )]
    NotRetained { wanted: u64, oldest: u64 },
    /// The node installed another history while the stream ran.
    #[error("this node's history changed from `{was}` to `{now}`: bootstrap again with Export")]
    HistoryChanged { was: String, now: String },
    /// A compaction overtook the stream between two pages.
    #[error(
        "revision {wanted} is no longer retained (the next retained is {next}): bootstrap again with Export"
    )]
    Compacted { wanted: u64, next: u64 },
    /// A stream filtered to tenants that would start before the deletion
    /// of one of them: which users that tenant held then is not known
    /// here, so whose profile changes it may send is not either.
    #[error(
        "tenant `{tenant}` was deleted at revision {deleted}, after revision {from}: a stream filtered to it cannot start before that: bootstrap again with Export"
    )]
    DeletedSince {
        tenant: String,
        deleted: u64,
        from: u64,
    },
    /// The server is shutting down: the stream ends, the client reconnects.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl HasKind for WatchError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::ShuttingDown => ErrorKind::Unavailable,
            Self::ForeignHistory { .. }
            | Self::Ahead { .. }
            | Self::NotRetained { .. }
            | Self::HistoryChanged { .. }
            | Self::Compacted { .. }
            | Self::DeletedSince { .. } => ErrorKind::OutOfRange,
        }
    }
}

/// Why a Watch from `from` (in `history`, empty: any) cannot be served by a
/// node whose changelog is `have`; `None` when it can.
pub fn watch_refusal(from: u64, history: &str, have: &History) -> Option<WatchError> {
    if !history.is_empty() && history != have.id {
        return Some(WatchError::ForeignHistory {
            asked: history.to_owned(),
            have: have.id.clone(),
        });
    }
    if from > have.last {
        return Some(WatchError::Ahead {
            from,
            last: have.last,
        });
    }
    if from.saturating_add(1) < have.first {
        return Some(WatchError::NotRetained {
            wanted: from.saturating_add(1),
            oldest: have.first,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::proto;

    fn have() -> History {
        History {
            id: "h1".into(),
            first: 5,
            last: 9,
        }
    }

    /// The code and message a client gets.
    fn answer(e: &WatchError) -> (Code, String) {
        let status = proto::status(e);
        (status.code(), status.message().to_owned())
    }

    #[test]
    fn refusals_are_out_of_range_through_the_one_map() {
        let refused = |from, history| watch_refusal(from, history, &have()).map(|e| answer(&e));
        assert_eq!(refused(4, ""), None, "the oldest retained is next");
        assert_eq!(refused(9, "h1"), None, "caught up");
        assert_eq!(
            refused(1, "h0"),
            Some((
                Code::OutOfRange,
                "history `h0` is not this node's (`h1`): bootstrap again with Export".into()
            ))
        );
        assert_eq!(
            refused(10, ""),
            Some((
                Code::OutOfRange,
                "from_revision 10 is ahead of this node's revision 9: bootstrap again with Export"
                    .into()
            ))
        );
        assert_eq!(
            refused(3, ""),
            Some((
                Code::OutOfRange,
                "revision 4 is no longer retained; the oldest retained revision is 5: bootstrap again with Export".into()
            ))
        );
        // u64::MAX does not overflow: it is ahead.
        assert_eq!(
            refused(u64::MAX, "").map(|(c, _)| c),
            Some(Code::OutOfRange)
        );
    }

    #[test]
    fn a_stream_ends_out_of_range_or_unavailable() {
        let changed = WatchError::HistoryChanged {
            was: "h1".into(),
            now: "h2".into(),
        };
        assert_eq!(
            answer(&changed),
            (
                Code::OutOfRange,
                "this node's history changed from `h1` to `h2`: bootstrap again with Export".into()
            )
        );
        let compacted = WatchError::Compacted { wanted: 6, next: 8 };
        assert_eq!(
            answer(&compacted),
            (
                Code::OutOfRange,
                "revision 6 is no longer retained (the next retained is 8): bootstrap again with Export".into()
            )
        );
        let deleted = WatchError::DeletedSince {
            tenant: "acme".into(),
            deleted: 12,
            from: 7,
        };
        assert_eq!(
            answer(&deleted),
            (
                Code::OutOfRange,
                "tenant `acme` was deleted at revision 12, after revision 7: a stream filtered to it cannot start before that: bootstrap again with Export".into()
            )
        );
        assert_eq!(
            answer(&WatchError::ShuttingDown),
            (Code::Unavailable, "the server is shutting down".into())
        );
    }

    #[test]
    fn the_clients_history_is_quoted() {
        let asked = format!("\u{1b}[2J{}", "x".repeat(5_000));
        let e = watch_refusal(0, &asked, &have()).unwrap();
        let message = e.to_string();
        assert!(message.starts_with("history `\\u{1b}[2Jxxx"), "{message}");
        assert!(message.len() < 200, "{}", message.len());
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
}
