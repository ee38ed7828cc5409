//! Random bytes for sealed replies: the operating system's CSPRNG, read ahead per thread.
//!
//! Every encrypted reply needs 24 fresh bytes (a 16-byte prefix and a nonce). One `getrandom`
//! call per reply costs a system call and the kernel's per-call set-up, about a third of a
//! microsecond here, for 24 bytes. Instead each thread reads [`READ_AHEAD`] bytes from the
//! operating system at once and hands them out in order, each byte once, wiping what it hands
//! out. The bytes are still the operating system's; only the call is shared.
//!
//! A process that forks after sealing replies leaves the unread rest of the forking thread's
//! buffer to both processes. Forking and then running Rust code in the child needs `unsafe`
//! and, in a process with more than one thread, is undefined outside async-signal-safe calls;
//! a pre-fork server that forks before serving starts every child with an empty buffer.

use std::cell::RefCell;

use crate::crypto::RandomError;

/// Bytes fetched from the operating system per call: 42 sealed replies' worth.
const READ_AHEAD: usize = 1024;

struct Pool {
    bytes: [u8; READ_AHEAD],
    /// How many bytes from the start are handed out (and wiped).
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; READ_AHEAD], used: READ_AHEAD })
    };
}

/// `N` bytes from the operating system's random source, none of them handed out before.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    if N > READ_AHEAD {
        getrandom::fill(&mut out).map_err(|_| RandomError(()))?;
        return Ok(out);
    }
    POOL.with_borrow_mut(|pool| {
        if READ_AHEAD - pool.used < N {
            getrandom::fill(&mut pool.bytes).map_err(|_| RandomError(()))?;
            pool.used = 0;
        }
        let fresh = &mut pool.bytes[pool.used..pool.used + N];
        out.copy_from_slice(fresh);
        fresh.fill(0);
        pool.used += N;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_hands_out_the_same_bytes_twice() {
        // Enough draws to cross several refills, with a 13-byte draw that does not divide them.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            assert!(seen.insert(os_random::<24>().unwrap().to_vec()));
            assert!(seen.insert(os_random::<13>().unwrap().to_vec()));
        }
        // Larger than the pool: straight from the operating system.
        let big = os_random::<2048>().unwrap();
        assert_ne!(big[..1024], big[1024..]);
    }

    #[test]
    fn hands_out_bytes_and_wipes_them() {
        let drawn = os_random::<24>().unwrap();
        assert_ne!(drawn, [0; 24]);
        POOL.with_borrow(|pool| {
            assert!(pool.bytes[..pool.used].iter().all(|&b| b == 0));
            assert!(pool.used >= 24);
        });
    }
}
