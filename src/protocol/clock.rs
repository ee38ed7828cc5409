//! [`Clock`]: the one time source of the crate, injectable for tests. An
//! [`Endpoint`](crate::Endpoint) (and so the layer) reads it for the timestamp check and the
//! time written into replies; the customer-service client for token expiry.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time. [`SystemClock`] is the default everywhere;
/// [`FixedClock`] stands still, for tests that replay fixed timestamps. An `Arc` of a clock is
/// a clock, so a clock a test moves by hand can be shared with what it drives.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// `time` in Unix seconds (0 before 1970).
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The real clock ([`SystemTime::now`]); the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still at one time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use wechat_push::clock::{Clock, FixedClock};
///
/// let clock = FixedClock::at_unix(1_714_036_504);
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_714_036_504));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(SystemTime);

impl FixedClock {
    /// Stopped at `time`.
    pub fn at(time: SystemTime) -> Self {
        Self(time)
    }

    /// Stopped at `secs` Unix seconds.
    pub fn at_unix(secs: u64) -> Self {
        Self(UNIX_EPOCH + Duration::from_secs(secs))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
