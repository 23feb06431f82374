//! The codec of every generated rampart service and client (`build.rs`
//! names it to tonic-prost-build as `codec_path`): tonic-prost's, except
//! that a message that does not decode carries a mark.
//!
//! tonic-prost answers a protobuf decode error with `INTERNAL` and prost's
//! message, which is gRPC's code for a client that cannot parse a
//! response. A server that cannot parse a *request* answers
//! `INVALID_ARGUMENT` (the client sent it wrong), but a decoder cannot tell
//! which side it is on. So it keeps tonic-prost's status and adds the
//! metadata key [`UNDECODABLE`]; the server's wire layer
//! (`server::wire`) turns a response that carries it into
//! `INVALID_ARGUMENT` and drops the key, and a client sees `INTERNAL` as
//! before. The server thus recognises a decode failure by a mark of its
//! own, not by tonic's or prost's wording.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::metadata::MetadataValue;
use tonic_prost::ProstEncoder;

/// The metadata key that marks a status as "this message does not decode".
pub const UNDECODABLE: &str = "rampart-undecodable";

/// Whether a status carries the [`UNDECODABLE`] mark.
pub fn undecodable(status: &Status) -> bool {
    status.metadata().contains_key(UNDECODABLE)
}

/// tonic-prost's codec with [`MarkingDecoder`].
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MarkingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        MarkingDecoder { _type: PhantomData }
    }
}

/// Decodes as tonic-prost does; a decode error is its `INTERNAL` status
/// with the [`UNDECODABLE`] mark.
#[derive(Debug, Clone)]
pub struct MarkingDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for MarkingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            let mut status = Status::internal(e.to_string());
            status
                .metadata_mut()
                .insert(UNDECODABLE, MetadataValue::from_static("1"));
            status
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use tonic::Code;
    use tonic::codec::{Codec as _, Streaming};

    use super::*;
    use crate::proto::CheckRequest;

    /// `message` framed as one gRPC message and read as a server reads a
    /// request, with this codec's decoder.
    async fn read(message: &[u8]) -> Result<Option<CheckRequest>, Status> {
        let mut body = BytesMut::new();
        body.put_u8(0);
        body.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
        body.put_slice(message);
        let body = http_body_util::Full::new(body.freeze());
        let decoder = Codec::<CheckRequest, CheckRequest>::default().decoder();
        Streaming::new_request(decoder, body, None, None)
            .message()
            .await
    }

    #[tokio::test]
    async fn a_message_that_does_not_decode_is_marked() {
        let good = CheckRequest {
            tenant: "acme".into(),
            ..CheckRequest::default()
        };
        let got = read(&good.encode_to_vec()).await.unwrap();
        assert_eq!(got, Some(good));
        let status = read(&[0xff, 0xff, 0xff, 0xff]).await.unwrap_err();
        assert!(undecodable(&status), "{status:?}");
        // The code and message tonic-prost gives, unchanged.
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().is_empty());
        assert!(!undecodable(&Status::internal("the store is corrupt")));
    }
}
