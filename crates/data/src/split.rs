//! Train / held-out membership decided by a hash of the problem itself, so the two sets never
//! overlap whatever the seed, the sample size or the order of generation.

use crate::hash::sha256_hex;

/// Share of all problems that are held out.
pub const HELD_OUT_FRACTION: f64 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    HeldOut,
}

/// Which split `key` (a word, a digit string) belongs to.
pub fn split_of(key: &str) -> Split {
    let hex = sha256_hex(key.as_bytes());
    let top = u64::from_str_radix(&hex[..16], 16).expect("hex digest");
    if (top as f64) < HELD_OUT_FRACTION * u64::MAX as f64 {
        Split::HeldOut
    } else {
        Split::Train
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_a_fifth_is_held_out_and_membership_is_stable() {
        let keys: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let held = keys
            .iter()
            .filter(|k| split_of(k) == Split::HeldOut)
            .count();
        assert!((1800..2200).contains(&held), "{held}");
        assert_eq!(split_of("abcd"), split_of("abcd"));
    }
}
