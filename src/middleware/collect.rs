//! Collecting the request body, up to the layer's limit, without copying a body that arrives
//! in one frame.
//!
//! Hand-written rather than `http_body_util::Limited` + `collect`, kept on purpose: the
//! future of those is `Collect<Limited<B>>`, a struct whose definition requires
//! `Limited<B>: Body`, so holding it would force a `B: Body` bound onto the definition of the
//! public [`ResponseFuture`](crate::ResponseFuture) (bounds belong on impls, not on public
//! struct definitions). This loop is a few lines and keeps a one-frame body uncopied.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Body;

use crate::rejection::Rejection;

/// Reads frames into `buf` until the body ends; 413 as soon as it crosses `limit`.
pub(crate) fn collect<B: Body>(
    mut body: Pin<&mut B>,
    buf: &mut Collected,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Rejection>> {
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => return Poll::Ready(Err(Rejection::BodyRead)),
            Some(Ok(frame)) => {
                // Trailers carry nothing for us.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buf.len().saturating_add(data.remaining()) > limit {
                    return Poll::Ready(Err(Rejection::BodyTooLarge { limit }));
                }
                buf.push(data);
            }
        }
    }
}

/// The most a second frame reserves up front for the frames still to come. The announced
/// length is only the client's word: a client that announces 1 MiB and sends a byte at a time
/// must not make the server hold 1 MiB per connection. Past this the buffer grows with the
/// data received (doubling, so a large body still costs few copies).
const RESERVE_CAP: usize = 16 * 1024;

/// The body read so far. A body that arrives in one frame, as a small push over HTTP/1.1
/// does, is kept as that frame (no copy when it is [`Bytes`]); a second frame starts a copy.
pub(crate) enum Collected {
    Empty {
        /// The capacity to copy into if a second frame comes: the body's announced size, at
        /// most [`RESERVE_CAP`].
        expected: usize,
    },
    One(Bytes, usize),
    Many(BytesMut),
}

impl Collected {
    /// Nothing read yet from a body announced to be `announced` bytes long.
    pub(crate) fn new(announced: usize) -> Self {
        Self::Empty {
            expected: announced.min(RESERVE_CAP),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Empty { .. } => 0,
            Self::One(first, _) => first.len(),
            Self::Many(buf) => buf.len(),
        }
    }

    pub(crate) fn push(&mut self, mut data: impl Buf) {
        if !data.has_remaining() {
            return;
        }
        match self {
            Self::Empty { expected } => {
                let expected = *expected;
                *self = Self::One(data.copy_to_bytes(data.remaining()), expected);
            }
            Self::One(first, expected) => {
                let needed = first.len().saturating_add(data.remaining());
                let mut buf = BytesMut::with_capacity(needed.max(*expected));
                buf.extend_from_slice(first);
                buf.put(data);
                *self = Self::Many(buf);
            }
            Self::Many(buf) => buf.put(data),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Empty { .. } => &[],
            Self::One(first, _) => first,
            Self::Many(buf) => buf,
        }
    }
}
