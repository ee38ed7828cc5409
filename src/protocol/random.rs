//! Random bytes for sealed replies, straight from the operating system's CSPRNG.
//!
//! Every call is one `getrandom::fill` into the caller's array: one request to the operating
//! system (on Linux `getrandom(2)`). Nothing is read ahead, cached or kept between calls in
//! this crate, and the `getrandom` crate keeps no bytes either. A sealed reply draws all its
//! random bytes (the 16-byte prefix and the nonce) in one such call, so the bytes of a reply
//! were handed out by the operating system for that reply alone. A process that forks, after
//! sealing replies or not, leaves its children no unread random bytes to reuse, because there
//! are none.
//!
//! The price is one system call per sealed reply, a fraction of a microsecond. (A per-thread
//! read-ahead saved most of it but handed every child of a fork the same unread bytes.)

use crate::crypto::RandomError;

/// `N` fresh bytes from the operating system's random source, read for this call alone.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| RandomError(()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            assert!(seen.insert(os_random::<24>().unwrap()));
        }
        let big = os_random::<2048>().unwrap();
        assert_ne!(big[..1024], big[1024..]);
    }
}
