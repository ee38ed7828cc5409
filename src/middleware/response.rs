//! The HTTP responses the layer answers with: a rejection, the handshake, a push's answer.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body;
use crate::endpoint::Answer;
use crate::rejection::Rejection;

impl Rejection {
    /// The response: the status, the reason as `text/plain`, and this rejection in the
    /// extensions.
    pub fn into_response(self) -> Response<body::Body> {
        #[cfg(feature = "tracing")]
        tracing::debug!(status = self.status().as_u16(), reason = %self, "wechat push rejected");
        let reason = match self.fixed_reason() {
            Some(reason) => Bytes::from_static(reason.as_bytes()),
            None => Bytes::from(self.to_string()),
        };
        let mut response = text_response(self.status(), reason);
        if self == Self::MethodNotAllowed {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Answers the handshake with `echostr`, verbatim.
pub(crate) fn handshake(echostr: Bytes) -> Response<body::Body> {
    text_response(StatusCode::OK, echostr)
}

/// The 200 carrying a push's answer, or the rejection that stopped it.
pub(crate) fn answer(answer: Result<Answer, Rejection>) -> Response<body::Body> {
    match answer {
        Ok(answer) => {
            let content_type = HeaderValue::from_static(answer.content_type());
            let mut response = Response::new(body::Body::new(answer.into_body()));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            response
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// A 500 with `reason`, for a handler answer the layer could not send.
pub(crate) fn server_error(reason: &'static str) -> Response<body::Body> {
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Bytes::from_static(reason.as_bytes()),
    )
}

fn text_response(status: StatusCode, body: Bytes) -> Response<body::Body> {
    let mut response = Response::new(body::Body::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
