//! `rampart.v1.BatchCheckRequest` and its `BatchCheckItem`, written by
//! hand so that decoding a batch copies no string (build.rs maps both
//! messages here with `extern_path`; their fields are the generated ones').
//!
//! prost decodes a `string` field into a fresh `String`: for a 1,000-item
//! BatchCheck that was 4,000 allocations, copies and frees, and prost's
//! field-by-field decoding through tonic's buffer cost as much again. Here
//! each item is taken out of the request's buffer whole
//! (`Buf::copy_to_bytes`, which for tonic's buffer shares it instead of
//! copying) and its fields are read straight off that slice: each is a
//! [`Text`], a slice of the same buffer, checked for UTF-8 once. Anything
//! unusual in an item (an unknown field, a key written in more bytes than
//! it needs, bytes that are not UTF-8) goes through prost's own field
//! decoding instead, which refuses what prost refuses, with prost's words.
//! The wire format is the generated messages', field for field (the tests
//! below hold it to prost's own encoding).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::Consistency;

/// A protobuf `string` held as shared bytes (`bytestring`): valid UTF-8,
/// checked once when made; reading it checks nothing again, and cloning it
/// shares the bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(ByteString);

impl Text {
    /// A text of a `'static` string, with no allocation.
    pub const fn from_static(text: &'static str) -> Self {
        Self(ByteString::from_static(text))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes it shares.
    fn bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// The text of `bytes`, if they are UTF-8.
    #[inline]
    fn try_from_bytes(bytes: Bytes) -> Option<Self> {
        ByteString::try_from(bytes).ok().map(Self)
    }
}

impl Deref for Text {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Self(ByteString::from(text))
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Self {
        Self(ByteString::from(text.as_str()))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Self(ByteString::from(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        String::from(text.0)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Merges a length-delimited `string` field into `value` without copying
/// from `buf` (when `buf` can share: `Bytes`, tonic's `BytesMut`), refusing
/// bytes that are not UTF-8 as prost's own `string` fields do.
fn merge_text(
    value: &mut Text,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let mut bytes = Bytes::new();
    encoding::bytes::merge(wire_type, &mut bytes, buf, ctx.clone())?;
    match Text::try_from_bytes(bytes.clone()) {
        Some(text) => *value = text,
        None => {
            // prost's own error for such a field, word for word: decode the
            // same bytes as prost decodes a `String`.
            let mut framed = Vec::with_capacity(bytes.len() + 10);
            encoding::encode_varint(bytes.len() as u64, &mut framed);
            framed.extend_from_slice(&bytes);
            let mut text = String::new();
            encoding::string::merge(
                WireType::LengthDelimited,
                &mut text,
                &mut framed.as_slice(),
                ctx,
            )?;
            *value = Text::from(text);
        }
    }
    Ok(())
}

/// One item of a BatchCheck: `rampart.v1.BatchCheckItem`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct BatchCheckItem {
    /// Field 1.
    pub tenant: Text,
    /// Field 2.
    pub subject: Text,
    /// Field 3.
    pub permission: Text,
    /// Field 4: echoed back in the result, for the caller's bookkeeping.
    pub correlation_id: Text,
}

impl BatchCheckItem {
    /// Reads an item off its encoded bytes: the four string fields, each
    /// a slice of `bytes`. `None` for anything else (an unknown field, a
    /// key or length that runs past the end, bytes that are not UTF-8),
    /// which the caller hands to prost's field-by-field decoding.
    fn parse(bytes: &Bytes) -> Option<Self> {
        let mut item = Self::default();
        let all: &[u8] = bytes;
        let mut at = 0usize;
        while let Some(&key) = all.get(at) {
            // Fields 1 to 4, length-delimited: one-byte keys.
            let field = match key {
                0x0a => &mut item.tenant,
                0x12 => &mut item.subject,
                0x1a => &mut item.permission,
                0x22 => &mut item.correlation_id,
                _ => return None,
            };
            let mut rest = all.get(at + 1..)?;
            let before = rest.len();
            let len = usize::try_from(encoding::decode_varint(&mut rest).ok()?).ok()?;
            let start = at + 1 + (before - rest.len());
            let end = start.checked_add(len)?;
            if end > all.len() {
                return None;
            }
            *field = Text::try_from_bytes(bytes.slice(start..end))?;
            at = end;
        }
        Some(item)
    }

    /// The fields, tagged as `.proto` numbers them.
    fn fields(&self) -> [(u32, &Text); 4] {
        [
            (1, &self.tenant),
            (2, &self.subject),
            (3, &self.permission),
            (4, &self.correlation_id),
        ]
    }
}

impl Message for BatchCheckItem {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for (tag, value) in self.fields() {
            if !value.is_empty() {
                encoding::bytes::encode(tag, value.bytes(), buf);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let (value, name) = match tag {
            1 => (&mut self.tenant, "tenant"),
            2 => (&mut self.subject, "subject"),
            3 => (&mut self.permission, "permission"),
            4 => (&mut self.correlation_id, "correlation_id"),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        merge_text(value, wire_type, buf, ctx).map_err(|mut e| {
            e.push("BatchCheckItem", name);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        self.fields()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(tag, v)| encoding::bytes::encoded_len(*tag, v.bytes()))
            .sum()
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The most items a decoded request makes room for up front.
const MAX_RESERVED: usize = 1024;

/// A BatchCheck: `rampart.v1.BatchCheckRequest`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct BatchCheckRequest {
    /// Field 1.
    pub items: Vec<BatchCheckItem>,
    /// Field 2.
    pub consistency: Option<Consistency>,
    /// Field 3.
    pub explain: bool,
}

impl BatchCheckRequest {
    /// Takes one item off `buf`, positioned after its key, whole (shared,
    /// not copied) and reads it with [`BatchCheckItem::parse`]; `false` if
    /// the item is not in `buf`'s first chunk, and `buf` is left as it was.
    fn take_item(&mut self, buf: &mut impl Buf) -> Result<bool, DecodeError> {
        let mut chunk = buf.chunk();
        let before = chunk.len();
        let Ok(len) = encoding::decode_varint(&mut chunk) else {
            return Ok(false);
        };
        let prefix = before - chunk.len();
        let in_chunk = chunk.len();
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= in_chunk) else {
            return Ok(false);
        };
        buf.advance(prefix);
        if self.items.capacity() == 0 {
            // As many as fit at this one's size, at most a default batch:
            // no growing and copying the list item by item, and no large
            // allocation that a body of tiny items could ask for.
            let fit = (in_chunk / (prefix + len + 1)).min(MAX_RESERVED);
            self.items.reserve(fit);
        }
        let bytes = buf.copy_to_bytes(len);
        match BatchCheckItem::parse(&bytes) {
            Some(item) => self.items.push(item),
            None => {
                // An item holds no message, so no recursion to bound.
                let mut item = BatchCheckItem::default();
                item.merge(bytes)?;
                self.items.push(item);
            }
        }
        Ok(true)
    }
}

impl Message for BatchCheckRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for item in &self.items {
            encoding::message::encode(1, item, buf);
        }
        if let Some(consistency) = &self.consistency {
            encoding::message::encode(2, consistency, buf);
        }
        if self.explain {
            encoding::bool::encode(3, &self.explain, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let (merged, name) = match tag {
            1 => {
                let taken = if wire_type == WireType::LengthDelimited {
                    self.take_item(buf)
                } else {
                    Ok(false)
                };
                let merged = match taken {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        encoding::message::merge_repeated(wire_type, &mut self.items, buf, ctx)
                    }
                    Err(e) => Err(e),
                };
                (merged, "items")
            }
            2 => (
                encoding::message::merge(
                    wire_type,
                    self.consistency.get_or_insert_with(Consistency::default),
                    buf,
                    ctx,
                ),
                "consistency",
            ),
            3 => (
                encoding::bool::merge(wire_type, &mut self.explain, buf, ctx),
                "explain",
            ),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        merged.map_err(|mut e| {
            e.push("BatchCheckRequest", name);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(1, &self.items)
            + self
                .consistency
                .as_ref()
                .map_or(0, |c| encoding::message::encoded_len(2, c))
            + if self.explain {
                encoding::bool::encoded_len(3, &self.explain)
            } else {
                0
            }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// One answer of a BatchCheck: `rampart.v1.BatchCheckResult`, by hand so
/// the item's correlation id is moved into it, not copied.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct BatchCheckResult {
    /// Field 1.
    pub correlation_id: Text,
    /// Fields 2 and 3, a `oneof`.
    pub outcome: Option<batch_check_result::Outcome>,
}

/// The `oneof outcome` of [`BatchCheckResult`].
pub mod batch_check_result {
    use crate::proto::{CheckResponse, ItemError};

    /// The item's answer, or why it has none.
    #[derive(Clone, PartialEq, Debug)]
    pub enum Outcome {
        /// Field 2.
        Response(CheckResponse),
        /// Field 3.
        Error(ItemError),
    }
}

impl Message for BatchCheckResult {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.correlation_id.is_empty() {
            encoding::bytes::encode(1, self.correlation_id.bytes(), buf);
        }
        match &self.outcome {
            Some(batch_check_result::Outcome::Response(r)) => encoding::message::encode(2, r, buf),
            Some(batch_check_result::Outcome::Error(e)) => encoding::message::encode(3, e, buf),
            None => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        use batch_check_result::Outcome;
        let (merged, name) = match tag {
            1 => (
                merge_text(&mut self.correlation_id, wire_type, buf, ctx),
                "correlation_id",
            ),
            2 => {
                let merged = match &mut self.outcome {
                    Some(Outcome::Response(r)) => encoding::message::merge(wire_type, r, buf, ctx),
                    _ => {
                        let mut r = Default::default();
                        let merged = encoding::message::merge(wire_type, &mut r, buf, ctx);
                        self.outcome = Some(Outcome::Response(r));
                        merged
                    }
                };
                (merged, "outcome")
            }
            3 => {
                let merged = match &mut self.outcome {
                    Some(Outcome::Error(e)) => encoding::message::merge(wire_type, e, buf, ctx),
                    _ => {
                        let mut e = Default::default();
                        let merged = encoding::message::merge(wire_type, &mut e, buf, ctx);
                        self.outcome = Some(Outcome::Error(e));
                        merged
                    }
                };
                (merged, "outcome")
            }
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        merged.map_err(|mut e| {
            e.push("BatchCheckResult", name);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        let id = if self.correlation_id.is_empty() {
            0
        } else {
            encoding::bytes::encoded_len(1, self.correlation_id.bytes())
        };
        id + match &self.outcome {
            Some(batch_check_result::Outcome::Response(r)) => encoding::message::encoded_len(2, r),
            Some(batch_check_result::Outcome::Error(e)) => encoding::message::encoded_len(3, e),
            None => 0,
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What prost generates for the message, to hold the hand-written one
    /// to it (named as it is, since prost's errors name the message).
    mod generated {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct BatchCheckItem {
            #[prost(string, tag = "1")]
            pub tenant: String,
            #[prost(string, tag = "2")]
            pub subject: String,
            #[prost(string, tag = "3")]
            pub permission: String,
            #[prost(string, tag = "4")]
            pub correlation_id: String,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct BatchCheckRequest {
            #[prost(message, repeated, tag = "1")]
            pub items: Vec<BatchCheckItem>,
            #[prost(message, optional, tag = "2")]
            pub consistency: Option<crate::proto::Consistency>,
            #[prost(bool, tag = "3")]
            pub explain: bool,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct BatchCheckResult {
            #[prost(string, tag = "1")]
            pub correlation_id: String,
            #[prost(oneof = "Outcome", tags = "2, 3")]
            pub outcome: Option<Outcome>,
        }

        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Outcome {
            #[prost(message, tag = "2")]
            Response(crate::proto::CheckResponse),
            #[prost(message, tag = "3")]
            Error(crate::proto::ItemError),
        }
    }
    use generated::BatchCheckItem as Generated;

    fn pairs() -> Vec<(Generated, BatchCheckItem)> {
        let mut out = Vec::new();
        for (t, s, p, c) in [
            ("acme", "alice", "documents:view", "7"),
            ("", "", "", ""),
            ("acme", "", "x", ""),
            ("ünï", "códe", "a:b", &*"z".repeat(300)),
        ] {
            out.push((
                Generated {
                    tenant: t.into(),
                    subject: s.into(),
                    permission: p.into(),
                    correlation_id: c.into(),
                },
                BatchCheckItem {
                    tenant: t.into(),
                    subject: s.into(),
                    permission: p.into(),
                    correlation_id: c.into(),
                },
            ));
        }
        out
    }

    #[test]
    fn the_wire_format_is_the_generated_messages() {
        for (generated, item) in pairs() {
            let bytes = generated.encode_to_vec();
            assert_eq!(item.encode_to_vec(), bytes);
            assert_eq!(item.encoded_len(), bytes.len());
            assert_eq!(BatchCheckItem::decode(bytes.as_slice()).unwrap(), item);
            assert_eq!(
                BatchCheckItem::decode(Bytes::from(bytes.clone())).unwrap(),
                item
            );
            assert_eq!(
                Generated::decode(item.encode_to_vec().as_slice()).unwrap(),
                generated
            );
        }
    }

    #[test]
    fn decoding_from_bytes_shares_the_buffer() {
        let bytes = Bytes::from(pairs()[0].0.encode_to_vec());
        let item = BatchCheckItem::decode(bytes.clone()).unwrap();
        let at = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(at.contains(&(item.permission.as_ptr() as usize)));
        assert_eq!(item.permission, "documents:view");
    }

    #[test]
    fn unknown_fields_are_skipped_and_the_last_value_wins() {
        let mut bytes = pairs()[0].0.encode_to_vec();
        // Field 9, varint 5; then tenant again.
        bytes.extend_from_slice(&[9 << 3, 5]);
        encoding::string::encode(1, &"beta".to_owned(), &mut bytes);
        let item = BatchCheckItem::decode(bytes.as_slice()).unwrap();
        assert_eq!(item.tenant, "beta");
        assert_eq!(item.subject, "alice");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_as_prost_refuses_them() {
        let mut bytes = Vec::new();
        encoding::bytes::encode(2, &vec![b'a', 0xff, 0xfe], &mut bytes);
        let ours = BatchCheckItem::decode(bytes.as_slice()).unwrap_err();
        let theirs = Generated::decode(bytes.as_slice()).unwrap_err();
        assert_eq!(ours.to_string(), theirs.to_string());
        assert!(ours.to_string().contains("UTF-8"), "{ours}");
        // A wrong wire type, or a length past the end, too.
        for bad in [vec![2 << 3, 1], vec![(2 << 3) | 2, 9, b'a']] {
            let ours = BatchCheckItem::decode(bad.as_slice()).unwrap_err();
            let theirs = Generated::decode(bad.as_slice()).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string());
        }
    }

    fn requests() -> Vec<(generated::BatchCheckRequest, BatchCheckRequest)> {
        let (gen_items, items): (Vec<_>, Vec<_>) = pairs().into_iter().unzip();
        let consistency = crate::proto::Consistency {
            requirement: Some(crate::proto::consistency::Requirement::AtLeastRevision(7)),
        };
        [
            (Vec::new(), None, false),
            ((0..4).collect(), Some(consistency), true),
            ((0..4).rev().collect::<Vec<usize>>(), None, true),
        ]
        .into_iter()
        .map(|(order, consistency, explain)| {
            (
                generated::BatchCheckRequest {
                    items: order.iter().map(|&i| gen_items[i].clone()).collect(),
                    consistency,
                    explain,
                },
                BatchCheckRequest {
                    items: order.iter().map(|&i| items[i].clone()).collect(),
                    consistency,
                    explain,
                },
            )
        })
        .collect()
    }

    #[test]
    fn a_request_encodes_and_decodes_as_the_generated_one() {
        for (generated, ours) in requests() {
            let bytes = generated.encode_to_vec();
            assert_eq!(ours.encode_to_vec(), bytes);
            assert_eq!(ours.encoded_len(), bytes.len());
            assert_eq!(BatchCheckRequest::decode(bytes.as_slice()).unwrap(), ours);
            assert_eq!(
                BatchCheckRequest::decode(Bytes::from(bytes.clone())).unwrap(),
                ours
            );
            // Split into small chunks: items are not in one chunk, and take
            // prost's way.
            let chunked = bytes
                .chunks(3)
                .fold(Box::new(Bytes::new()) as Box<dyn Buf>, |acc, c| {
                    Box::new(acc.chain(Bytes::copy_from_slice(c)))
                });
            assert_eq!(BatchCheckRequest::decode(chunked).unwrap(), ours);
        }
    }

    #[test]
    fn an_unusual_item_takes_prosts_way_and_decodes_the_same() {
        // Unknown field 9 inside the item, tenant given twice, and a key
        // written in two bytes (0x8a 0x00 is field 1, length-delimited).
        let mut item = Vec::new();
        encoding::string::encode(1, &"acme".to_owned(), &mut item);
        item.extend_from_slice(&[9 << 3, 5]);
        encoding::string::encode(2, &"alice".to_owned(), &mut item);
        item.extend_from_slice(&[0x8a, 0x00, 4]);
        item.extend_from_slice(b"beta");
        let mut request = Vec::new();
        encoding::bytes::encode(1, &item, &mut request);
        let ours = BatchCheckRequest::decode(Bytes::from(request.clone())).unwrap();
        let theirs = generated::BatchCheckRequest::decode(request.as_slice()).unwrap();
        assert_eq!(ours.items.len(), 1);
        assert_eq!(ours.items[0].tenant, theirs.items[0].tenant);
        assert_eq!(ours.items[0].tenant, "beta");
        assert_eq!(ours.items[0].subject, "alice");
    }

    #[test]
    fn a_bad_item_is_refused_as_prost_refuses_it() {
        let mut not_utf8 = Vec::new();
        encoding::bytes::encode(3, &vec![b'a', 0xc3], &mut not_utf8);
        for item in [not_utf8, vec![0x0a, 9, b'a'], vec![0x0a]] {
            let mut request = Vec::new();
            encoding::bytes::encode(1, &item, &mut request);
            let ours = BatchCheckRequest::decode(Bytes::from(request.clone())).unwrap_err();
            let theirs = generated::BatchCheckRequest::decode(request.as_slice()).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{item:?}");
        }
        // An item whose length runs past the request.
        let request = vec![0x0a, 50, 0x0a, 1, b'a'];
        assert!(BatchCheckRequest::decode(Bytes::from(request.clone())).is_err());
        assert!(generated::BatchCheckRequest::decode(request.as_slice()).is_err());
    }

    #[test]
    fn decoded_items_share_the_request_buffer() {
        let (generated, _) = requests().swap_remove(1);
        let bytes = Bytes::from(generated.encode_to_vec());
        let ours = BatchCheckRequest::decode(bytes.clone()).unwrap();
        let at = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        for item in &ours.items {
            if !item.permission.is_empty() {
                assert!(at.contains(&(item.permission.as_ptr() as usize)));
            }
        }
    }

    #[test]
    fn a_result_encodes_and_decodes_as_the_generated_one() {
        let response = crate::proto::CheckResponse {
            decision: 1,
            reason: 1,
            revision: 300,
            explanation: None,
        };
        let error = crate::proto::ItemError {
            code: 3,
            message: "`tenant` must not be empty".into(),
        };
        for (id, theirs, ours) in [
            (
                "7",
                Some(generated::Outcome::Response(response.clone())),
                Some(batch_check_result::Outcome::Response(response)),
            ),
            (
                "",
                Some(generated::Outcome::Error(error.clone())),
                Some(batch_check_result::Outcome::Error(error)),
            ),
            ("x", None, None),
        ] {
            let generated = generated::BatchCheckResult {
                correlation_id: id.into(),
                outcome: theirs,
            };
            let ours = BatchCheckResult {
                correlation_id: id.into(),
                outcome: ours,
            };
            let bytes = generated.encode_to_vec();
            assert_eq!(ours.encode_to_vec(), bytes);
            assert_eq!(ours.encoded_len(), bytes.len());
            assert_eq!(BatchCheckResult::decode(bytes.as_slice()).unwrap(), ours);
        }
        // A bad field inside the outcome is refused with prost's words.
        let bad = vec![(2 << 3) | 2, 2, 0x08, 0x80];
        assert_eq!(
            BatchCheckResult::decode(bad.as_slice())
                .unwrap_err()
                .to_string(),
            generated::BatchCheckResult::decode(bad.as_slice())
                .unwrap_err()
                .to_string()
        );
    }
}
