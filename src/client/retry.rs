//! Which failed calls are tried again: those WeChat did not take.

use std::error::Error as StdError;
use std::time::Duration;

use super::error::{ApiErrorKind, Error};

/// The pause before the first retry of a call; it doubles for each further one.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest pause between two retries of a call.
pub(super) const LAST_RETRY: Duration = Duration::from_secs(4);

/// Whether trying `error`'s call again cannot do it twice: WeChat answered `errcode` -1
/// (system busy), or the transport could not connect, so the request was never sent. A
/// request that may have reached WeChat (a timeout waiting for the answer, a connection reset
/// after sending, a transport error that does not say) is not retried.
pub(super) fn worth_retrying(error: &Error) -> bool {
    match error {
        Error::Api(e) => e.kind() == ApiErrorKind::SystemBusy,
        Error::Transport(e) => never_sent(&**e),
        Error::BadResponse { .. } | Error::Store(_) | Error::InvalidInput(_) => false,
    }
}

/// Whether the error chain holds hyper-util's "could not connect".
fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiError;

    #[test]
    fn only_calls_wechat_did_not_take_are_retried() {
        assert!(worth_retrying(&Error::Api(ApiError::new(-1, "busy"))));
        assert!(!worth_retrying(&Error::Api(ApiError::new(45015, "closed"))));
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out");
        assert!(!worth_retrying(&Error::Transport(Box::new(timeout))));
        assert!(!worth_retrying(&Error::InvalidInput("x")));
    }
}
