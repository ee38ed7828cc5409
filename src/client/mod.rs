//! The customer-service API client (docs/protocol.md §7): send messages to a user, show the
//! typing indicator, upload temporary media, all with one shared access token.
//!
//! A mini program cannot answer inside the push's HTTP response. It acknowledges the push
//! (`success`) and answers through `cgi-bin/message/custom/send`, which needs an access
//! token. [`Client`] gets the token right:
//!
//! * it comes from `POST cgi-bin/stable_token` by default (repeated calls return the same
//!   token, so instances do not knock each other's token out), or `GET cgi-bin/token`
//!   ([`TokenEndpoint::Token`]);
//! * it is cached in a [`TokenStore`] until shortly before `expires_in` runs out (5 minutes
//!   before, a quarter of the lifetime for short ones);
//! * with a shared store (Redis: [`TokenStore::is_shared`]) the stored token is read on every
//!   call, so a token that one instance saw rejected and replaced is not spent by another;
//!   with the in-memory store, the process's copy is used while it is valid; when the store
//!   fails, the process's copy (one warning per outage);
//! * concurrent callers without a valid token cause exactly one fetch: in the process, one
//!   caller fetches and the others wait for its outcome; if that caller is cancelled, one of
//!   the waiting ones fetches instead; across instances, refreshes are serialised through
//!   [`TokenStore::try_lock`];
//! * when a fetch fails, the callers waiting for a token are not failed: they wait for the
//!   next fetch (at most one a second for the process, [`ClientBuilder::refresh_backoff`])
//!   until a token comes or their bound passes ([`ClientBuilder::retry_bound`], 30 s), and then
//!   get the last fetch's error (a [`SharedError`] inside [`Error::Transport`] and
//!   [`Error::Store`]); a wrong AppID or secret (40013, 40125) fails them at once;
//! * when a call answers `errcode` 40001, 40014 or 42001 the token is dropped only if it is
//!   still the one that failed, a token is fetched once (never with `force_refresh`), and the
//!   call retried once;
//! * a call answered with `errcode` -1 (system busy), or one that could not connect, is
//!   retried with back-off within the same bound. A call that may have reached WeChat (a
//!   timeout waiting for its answer, a connection reset after sending) is **not** retried: the
//!   message may have been delivered, and a retry would send it twice.
//!
//! The transport is any tower [`Service`](tower::Service) taking `http::Request<`[`Body`](crate::body::Body)`>`, so
//! tower layers (timeout, retry, concurrency limit, tracing) can go around it; the default
//! is [`HttpsTransport`] (hyper-util and rustls).
//!
//! ```no_run
//! use wechat_push::client::{Client, CustomMessage, Error, ApiErrorKind};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("wxAPPID", "APPSECRET")?; // cheap to clone; share it
//!
//! match client.send("OPENID", &CustomMessage::text("你好")).await {
//!     Ok(()) => {}
//!     // The 48-hour window closed, or its quota is used up: nothing to do but drop it.
//!     Err(e) if matches!(
//!         e.api_kind(),
//!         Some(ApiErrorKind::WindowClosed | ApiErrorKind::QuotaExceeded)
//!     ) => {}
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! ```

macro_rules! debug {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::debug!($($t)*);
    };
}

mod builder;
#[allow(clippy::module_inception)]
mod client;
mod error;
mod flight;
mod message;
mod refresh;
mod retry;
mod token;
mod transport;
mod wire;

pub use builder::ClientBuilder;
pub use client::Client;
pub use error::{ApiError, ApiErrorKind, BadResponseKind, BuildError, Error, SharedError};
pub use message::{
    mini_program_link, CustomMessage, Image, Link, Media, MediaType, MiniProgramPage, Text,
    TypingCommand, UploadedMedia,
};
pub use token::{AccessToken, MemoryTokenStore, TokenStore};
// The crate's one clock, read for token expiry.
use crate::clock::{Clock, SystemClock};
pub use transport::{HttpsFuture, HttpsTransport};

/// The default base URL of the WeChat API.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// Which endpoint access tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenEndpoint {
    /// `POST cgi-bin/stable_token` with `force_refresh: false` (recommended): repeated calls
    /// return the same token while it is valid.
    #[default]
    StableToken,
    /// `GET cgi-bin/token`: each call issues a new token and invalidates the previous one
    /// (after at most 5 minutes), so every instance must share one [`TokenStore`].
    Token,
}

impl TokenEndpoint {
    fn key_part(self) -> &'static str {
        match self {
            TokenEndpoint::StableToken => "stable_token",
            TokenEndpoint::Token => "token",
        }
    }
}
