//! Request building and answer reading shared by all calls.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{header, Method, StatusCode};
use http_body::Body as HttpBody;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::Body;
use crate::protocol::hex;
use crate::store::BoxError;

use super::error::{ApiError, BadResponseKind, Error};
use super::message::Media;

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let [hi, lo] = hex::upper_digits(b);
            out.extend(['%', char::from(hi), char::from(lo)]);
        }
    }
    out
}

/// `n` random bytes as lowercase hex. Falls back to time and a counter if the OS RNG fails
/// (these values only need to be unique, not secret).
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = nanos
            ^ (u128::from(std::process::id()) << 64)
            ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed.to_le_bytes()[i % 16] ^ (i as u8);
        }
    }
    let mut out = String::new();
    hex::push_str(&mut out, &buf);
    out
}

/// Reads at most `limit` bytes of `body`.
pub(crate) async fn read_body<B>(body: B, limit: usize, status: StatusCode) -> Result<Bytes, Error>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let too_large = || Error::BadResponse {
        status,
        kind: BadResponseKind::TooLarge { limit },
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::as_mut(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| Error::Transport(e.into()))?;
        if let Ok(mut data) = frame.into_data() {
            if buf.len().saturating_add(data.remaining()) > limit {
                return Err(too_large());
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                let len = chunk.len();
                buf.put_slice(chunk);
                data.advance(len);
            }
        }
    }
    Ok(buf.freeze())
}

/// Parses a WeChat JSON answer: a non-zero `errcode` becomes [`Error::Api`].
pub(crate) fn parse_answer(status: StatusCode, body: &[u8]) -> Result<Map<String, Value>, Error> {
    let bad = |kind| Error::BadResponse { status, kind };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(BadResponseKind::Empty));
    }
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => {
            let end = body.len().min(128);
            let snippet = String::from_utf8_lossy(body.get(..end).unwrap_or(body)).into_owned();
            return Err(bad(BadResponseKind::NotJson { snippet }));
        }
    };
    if let Some(code) = map.get("errcode") {
        let code = as_i64(code).ok_or_else(|| bad(BadResponseKind::MissingField("errcode")))?;
        if code != 0 {
            let message = map
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(Error::Api(ApiError::new(code, message)));
        }
    }
    if !status.is_success() {
        return Err(bad(BadResponseKind::Status));
    }
    Ok(map)
}

/// An integer given as a JSON number or a numeric string.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Builds a `multipart/form-data` body with one part named `media`; returns the body and
/// the boundary.
pub(crate) fn multipart(media: &Media) -> Result<(Bytes, String), Error> {
    if !media
        .content_type
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b))
        || media.content_type.trim().is_empty()
    {
        return Err(Error::InvalidInput(
            "media content type must be non-empty printable ASCII",
        ));
    }
    let mut filename = String::with_capacity(media.filename.len());
    for c in media.filename.chars() {
        match c {
            '"' => filename.push_str("%22"),
            '\r' => filename.push_str("%0D"),
            '\n' => filename.push_str("%0A"),
            c => filename.push(c),
        }
    }
    // A random boundary; make sure the content does not contain it.
    let mut boundary = String::new();
    for _ in 0..8 {
        let candidate = format!("----wechat-push-{}", random_hex(16));
        if !contains(&media.data, candidate.as_bytes()) {
            boundary = candidate;
            break;
        }
    }
    if boundary.is_empty() {
        return Err(Error::InvalidInput(
            "no multipart boundary absent from the media",
        ));
    }
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{filename}\"\r\nContent-Type: {}\r\n\r\n",
        media.content_type
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = BytesMut::with_capacity(head.len() + media.data.len() + tail.len());
    body.put_slice(head.as_bytes());
    body.put_slice(&media.data);
    body.put_slice(tail.as_bytes());
    Ok((body.freeze(), boundary))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| Error::InvalidInput("body not serialisable as JSON"))
}

pub(super) fn build_request(
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<http::Request<Body>, Error> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder
        .body(Body::new(body))
        .map_err(|_| Error::InvalidInput("request URI or header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn answers() {
        let ok = StatusCode::OK;
        assert!(parse_answer(ok, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert_eq!(
            parse_answer(ok, br#"{"errcode":"45015","errmsg":"x"}"#)
                .unwrap_err()
                .api()
                .map(ApiError::code),
            Some(45015)
        );
        assert!(matches!(
            parse_answer(ok, b"  \n"),
            Err(Error::BadResponse {
                kind: BadResponseKind::Empty,
                ..
            })
        ));
        assert!(matches!(
            parse_answer(ok, b"[1]"),
            Err(Error::BadResponse {
                kind: BadResponseKind::NotJson { .. },
                ..
            })
        ));
        // Multi-byte characters cut at the snippet limit don't panic.
        let long = "界".repeat(100);
        assert!(parse_answer(ok, long.as_bytes()).is_err());
        assert!(matches!(
            parse_answer(StatusCode::BAD_GATEWAY, b"{}"),
            Err(Error::BadResponse {
                kind: BadResponseKind::Status,
                ..
            })
        ));
    }
}
