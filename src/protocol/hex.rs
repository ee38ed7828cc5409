//! Hex digits, the one encoder and decoder of the crate: signatures, dedupe keys, nonces and
//! percent-encoding all go through here.
//!
//! Encoding writes lowercase digits into a fixed array (or appends to a `String`); decoding
//! takes either case into a fixed array. Neither allocates: the signature check runs on every
//! request.

/// The lowercase digits, by value.
const LOWER: &[u8; 16] = b"0123456789abcdef";

/// The uppercase digits, by value.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Marks a byte that is not a hex digit in [`VALUE`].
const INVALID: u8 = 0x80;

/// The value of each byte as a hex digit of either case, or [`INVALID`].
const VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// `b` as two lowercase hex digits.
pub(crate) fn lower_digits(b: u8) -> [u8; 2] {
    [LOWER[usize::from(b >> 4)], LOWER[usize::from(b & 0x0f)]]
}

/// `b` as two uppercase hex digits, as percent-encoding writes them (RFC 3986 §2.1).
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn upper_digits(b: u8) -> [u8; 2] {
    [UPPER[usize::from(b >> 4)], UPPER[usize::from(b & 0x0f)]]
}

/// `bytes` as lowercase hex digits, two a byte. `M` must be `2 * N` (checked at compile time).
pub(crate) fn encode<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    const { assert!(M == 2 * N, "hex output must be twice the input") };
    let mut out = [0u8; M];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&lower_digits(b));
    }
    out
}

/// Appends `bytes` to `out` as lowercase hex digits.
#[cfg_attr(not(any(feature = "client", feature = "tokio")), allow(dead_code))]
pub(crate) fn push_str(out: &mut String, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    out.extend(bytes.iter().flat_map(|&b| lower_digits(b)).map(char::from));
}

/// Decodes exactly `2 * N` hex digits of either case; `None` for anything else.
///
/// No early exit on a bad digit: its time depends only on the text received, never on what the
/// result is compared with afterwards.
pub(crate) fn decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (VALUE[usize::from(pair[0])], VALUE[usize::from(pair[1])]);
        invalid |= (hi | lo) & INVALID;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    (invalid == 0).then_some(out)
}

/// The value of one hex digit of either case.
pub(crate) fn nibble(c: u8) -> Option<u8> {
    let v = VALUE[usize::from(c)];
    (v & INVALID == 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_agrees_with_to_digit() {
        for b in 0..=255u8 {
            let expected = char::from(b).to_digit(16).map(|d| d as u8);
            assert_eq!(nibble(b), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn agrees_with_the_hex_crate() {
        let bytes: [u8; 256] = std::array::from_fn(|i| i as u8);
        let lower: [u8; 512] = encode(&bytes);
        assert_eq!(lower.as_slice(), ::hex::encode(bytes).as_bytes());
        let mut pushed = String::from("x");
        push_str(&mut pushed, &bytes);
        assert_eq!(pushed, format!("x{}", ::hex::encode(bytes)));
        assert_eq!(decode::<256>(&lower), Some(bytes));
        assert_eq!(
            decode::<256>(::hex::encode_upper(bytes).as_bytes()),
            Some(bytes)
        );
        for b in bytes {
            assert_eq!(upper_digits(b).as_slice(), format!("{b:02X}").as_bytes());
        }
    }

    #[test]
    fn decode_takes_exactly_twice_the_length_in_digits() {
        assert_eq!(decode::<2>(b"0aF9"), Some([0x0a, 0xf9]));
        assert_eq!(decode::<0>(b""), Some([]));
        for bad in [
            &b"0aF"[..],
            b"0aF90",
            b"0aFg",
            b"0a F",
            b"\xff\xff\xff\xff",
            b"",
        ] {
            assert_eq!(decode::<2>(bad), None, "{bad:?}");
        }
    }
}
